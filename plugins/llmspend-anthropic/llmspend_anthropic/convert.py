"""Messages API <-> OpenAI chat completions, both ways, for requests and answers.

A cascade whose steps mix OpenAI-compatible models and Claude sends the caller's request to
another API and must hand the answer back in the caller's format. OpenAI's chat-completions
JSON is the common form: every conversion here goes to or from it. Pure functions on parsed
JSON; what one API has and the other lacks is dropped (thinking blocks, server tools, ``n``),
never guessed.

Mapped: system prompt (Anthropic's top-level ``system`` / OpenAI's system and developer
messages), text and image parts, tool definitions and ``tool_choice``, tool calls
(``tool_use`` blocks / ``tool_calls``) and their results (``tool_result`` blocks / ``tool``
messages), ``max_tokens``, ``temperature`` and ``top_p`` (for API versions that still take
them), stop sequences, ``stream``, structured output (OpenAI's ``response_format`` of type
``json_schema`` / Anthropic's ``output_config.format``), finish reasons and usage (cache reads
included in ``prompt_tokens``, as OpenAI counts them). OpenAI's ``json_object`` mode has no
Messages API twin (a schema is required): :func:`schemaless_json` finds it, so a caller can
refuse the request rather than lose the JSON it asked for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .content import content_text

__all__ = [
    "openai_chat_request",
    "messages_request",
    "openai_chat_completion",
    "message_from_chat_completion",
    "DEFAULT_MAX_TOKENS",
    "NO_SAMPLING_VERSION",
    "takes_sampling",
    "schemaless_json",
]

#: Anthropic requires ``max_tokens``; an OpenAI request often has none.
DEFAULT_MAX_TOKENS = 4096
#: the API version that removed the sampling parameters (``temperature``, ``top_p``,
#: ``top_k``: a 400 even for ``temperature: 1``), the anthropic SDK 2.x default
NO_SAMPLING_VERSION = "2026-10-21"


def takes_sampling(api_version: str | None) -> bool:
    """Whether requests under ``anthropic-version: api_version`` may carry sampling parameters
    (no version: the SDK's current one, which does not)."""
    return api_version is not None and api_version < NO_SAMPLING_VERSION

_STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                   "function_call": "tool_use", "content_filter": "refusal"}


def _with_tools(body: dict[str, Any], tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
    if tools:
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice
    return body


# -- structured output: the same JSON schema under two names ------------------------------
def schemaless_json(body: Mapping[str, Any]) -> bool:
    """Whether an OpenAI chat body asks for JSON without a schema (``json_object``), which the
    Messages API cannot be asked for."""
    fmt = body.get("response_format")
    return isinstance(fmt, Mapping) and fmt.get("type") == "json_object"


def _anthropic_output(fmt: Any) -> dict[str, Any] | None:
    """OpenAI's ``response_format`` json_schema as Anthropic's ``output_config``."""
    spec = fmt.get("json_schema") if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" else None
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    return {"format": {"type": "json_schema", "schema": schema}} if isinstance(schema, Mapping) else None


def _openai_response_format(config: Any) -> dict[str, Any] | None:
    """Anthropic's ``output_config.format`` as OpenAI's ``response_format`` (not ``strict``:
    OpenAI's strict mode refuses schemas that Anthropic takes, e.g. with optional properties)."""
    fmt = config.get("format") if isinstance(config, Mapping) else None
    schema = fmt.get("schema") if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" else None
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}} if isinstance(schema, Mapping) else None


# -- requests: Anthropic -> OpenAI ------------------------------------------------------
def _openai_part(block: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": str(block.get("text") or "")}
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            return {"type": "image_url", "image_url": {"url": f"data:{source.get('media_type')};base64,{source.get('data')}"}}
        if source.get("type") == "url":
            return {"type": "image_url", "image_url": {"url": source.get("url")}}
    return None


def _openai_messages(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    role, content = message.get("role"), message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = [b for b in content or () if isinstance(b, Mapping)]
    if role == "assistant":
        text = "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
        calls = [
            {"id": b.get("id"), "type": "function",
             "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})}}
            for b in blocks if b.get("type") == "tool_use"
        ]
        out: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            out["tool_calls"] = calls
        return [out]
    # user: tool results become tool messages, which OpenAI wants right after the call
    results = [{"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": content_text(b.get("content"))}
               for b in blocks if b.get("type") == "tool_result"]
    parts = [p for p in (_openai_part(b) for b in blocks if b.get("type") != "tool_result") if p is not None]
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        results.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return results


def _openai_tool_choice(choice: Any) -> Any:
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind or "", None)


def openai_chat_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Messages request body as an OpenAI chat-completions body."""
    messages: list[dict[str, Any]] = []
    system = content_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in body.get("messages") or ():
        if isinstance(message, Mapping):
            messages.extend(_openai_messages(message))
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    for key in ("max_tokens", "temperature", "top_p", "stream"):
        if key in body:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    response_format = _openai_response_format(body.get("output_config"))
    if response_format is not None:
        out["response_format"] = response_format
    tools = [
        {"type": "function", "function": {"name": t.get("name"), "description": t.get("description", ""),
                                          "parameters": t.get("input_schema") or {"type": "object"}}}
        for t in body.get("tools") or () if isinstance(t, Mapping) and "input_schema" in t  # client tools only
    ]
    return _with_tools(out, tools, _openai_tool_choice(body.get("tool_choice")))


# -- requests: OpenAI -> Anthropic ------------------------------------------------------
def _anthropic_part(part: Any) -> dict[str, Any] | None:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, Mapping):
        return None
    if part.get("type") == "text":
        return {"type": "text", "text": str(part.get("text") or "")}
    if part.get("type") == "image_url":
        url = str((part.get("image_url") or {}).get("url") or "")
        if url.startswith("data:") and ";base64," in url:
            media, data = url[5:].split(";base64,", 1)
            return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
        return {"type": "image", "source": {"type": "url", "url": url}}
    return None


def _anthropic_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    role, content = message.get("role"), message.get("content")
    if role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": content_text(content)}]
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        blocks.extend(b for b in map(_anthropic_part, content) if b is not None)
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = {}
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
    return blocks


def _anthropic_tool_choice(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    return {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]} if choice in ("auto", "required", "none") else None


def messages_request(body: Mapping[str, Any], *, model: str | None = None, sampling: bool = True) -> dict[str, Any]:
    """An OpenAI chat-completions body as a Messages request body. Consecutive turns of one
    role are merged (the Messages API wants user and assistant turns to alternate).
    ``sampling=False`` leaves out ``temperature`` and ``top_p``, for API versions without them."""
    systems: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        if message.get("role") in ("system", "developer"):
            systems.append(content_text(message.get("content")))
            continue
        role = "assistant" if message.get("role") == "assistant" else "user"
        blocks = _anthropic_blocks(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    out: dict[str, Any] = {
        "model": model or body.get("model"),
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if systems:
        out["system"] = "\n\n".join(systems)
    if sampling and isinstance(body.get("temperature"), int | float):
        out["temperature"] = min(1.0, float(body["temperature"]))  # OpenAI allows up to 2
    for key in ("top_p", "stream") if sampling else ("stream",):
        if key in body:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    output = _anthropic_output(body.get("response_format"))
    if output is not None:
        out["output_config"] = output
    tools = [
        {"name": f.get("name"), "description": f.get("description", ""),
         "input_schema": f.get("parameters") or {"type": "object", "properties": {}}}
        for f in (t.get("function") or {} for t in body.get("tools") or () if isinstance(t, Mapping))
    ]
    return _with_tools(out, tools, _anthropic_tool_choice(body.get("tool_choice")))


# -- answers ----------------------------------------------------------------------------
def openai_chat_completion(message: Mapping[str, Any]) -> dict[str, Any]:
    """A Messages response (a Message object) as an OpenAI ``chat.completion``."""
    blocks = [b for b in message.get("content") or () if isinstance(b, Mapping)]
    text = "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
    calls = [{"id": b.get("id"), "type": "function",
              "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})}}
             for b in blocks if b.get("type") == "tool_use"]
    reply: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    usage = message.get("usage") or {}
    read = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + read + int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": _STOP_TO_FINISH.get(str(message.get("stop_reason")), "stop")}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": read}},
    }


def message_from_chat_completion(completion: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` (its first choice) as a Messages response object."""
    choices: Iterable[Any] = completion.get("choices") or ()
    choice = next((c for c in choices if isinstance(c, Mapping)), {})
    blocks = _anthropic_blocks({**(choice.get("message") or {}), "role": "assistant"})
    usage = completion.get("usage") or {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "id": completion.get("id"),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": blocks,
        "stop_reason": _FINISH_TO_STOP.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - cached),
                  "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0,
                  "output_tokens": int(usage.get("completion_tokens") or 0)},
    }
