"""Opt-in content on spans, in the OpenTelemetry GenAI conventions' shapes.

With ``wrap(client, capture_content=True)`` a span carries what the model was told and what it
answered, as JSON that follows the conventions' schemas (``open-telemetry/semantic-conventions-genai``,
``model/gen-ai/gen-ai-{input-messages,output-messages,system-instructions}.json``)::

    gen_ai.system_instructions  [part, ...]              instructions given apart from the chat
    gen_ai.input.messages       [{"role", "parts": [part, ...]}, ...]
    gen_ai.output.messages      [{"role": "assistant", "parts": [...], "finish_reason"}, ...]  one per choice

A part is a ``TextPart`` ``{"type": "text", "content"}``, a ``ToolCallRequestPart``
``{"type": "tool_call", "id", "name", "arguments"}``, a ``ToolCallResponsePart``
``{"type": "tool_call_response", "id", "response"}``, a ``ReasoningPart``, a media part
(``uri``, ``file``, ``blob``) or a ``GenericPart`` that keeps the provider's own ``type``.

This module holds the provider-neutral pieces: part builders, the data-URL reading for media,
and :func:`content_json`, which keeps the JSON under a size cap without breaking it or the
shape. Provider adapters turn their wire format into these parts (hooks ``input_content`` and
``output_messages`` on :class:`~llmspend.providers.base.ProviderAdapter`). Pure functions; none
raises on an odd shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_CONTENT_CHARS",
    "InputContent",
    "Message",
    "Part",
    "content_json",
    "decoded_size",
    "generic_part",
    "media_part",
    "message",
    "output_message",
    "parts_of",
    "prompt_messages",
    "reasoning_part",
    "server_tool_call_part",
    "server_tool_response_part",
    "text_output",
    "text_part",
    "tool_arguments",
    "tool_call_part",
    "tool_call_response_part",
    "tool_response",
]

#: one part of a message (``{"type": ..., ...}``), as the conventions' schemas define it
Part = dict[str, Any]
#: ``{"role", "parts"}`` (input) or ``{"role", "parts", "finish_reason"}`` (output)
Message = dict[str, Any]

# Content is opt-in; when on, cap it so one huge prompt cannot swamp an exporter.
MAX_CONTENT_CHARS = 64_000


@dataclass(frozen=True)
class InputContent:
    """What a request tells the model, in the conventions' shapes: ``messages`` for
    ``gen_ai.input.messages`` (the chat history, in the order sent, system messages that are part
    of it included) and ``system_instructions`` for ``gen_ai.system_instructions`` (what the API
    takes apart from the history: Anthropic's top-level ``system``, the Responses API's
    ``instructions``). None where the request has none."""

    messages: list[Message] | None = None
    system_instructions: list[Part] | None = None


# -- parts -----------------------------------------------------------------------------------
def text_part(text: str) -> Part:
    return {"type": "text", "content": text}


def reasoning_part(text: str) -> Part:
    return {"type": "reasoning", "content": text}


def tool_arguments(raw: Any) -> Any:
    """Tool-call arguments as an object when they are a JSON text of one (as the conventions'
    examples record them); otherwise as given (a model may stream half an object)."""
    if isinstance(raw, str):
        try:
            return _ARGUMENTS.decode(raw)
        except (ValueError, RecursionError):  # model output: nothing bounds its nesting ([[[[...)
            return raw
    return raw


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: json.dumps would write them back


# NaN/Infinity kept as the text they came in: read as floats, they would make the attribute invalid JSON
_ARGUMENTS = json.JSONDecoder(parse_constant=_no_constant)


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> Part:
    return {
        "type": "tool_call",
        "id": call_id if isinstance(call_id, str) else None,
        "name": name if isinstance(name, str) else "",
        "arguments": tool_arguments(arguments),
    }


def tool_call_response_part(call_id: Any, response: Any) -> Part:
    return {"type": "tool_call_response", "id": call_id if isinstance(call_id, str) else None, "response": response}


def parts_of(content: Any, read_block: Callable[[Mapping[str, Any]], Part]) -> list[Part]:
    """A message's ``content`` as parts: a string is one text part, a list of blocks one part
    per block (read by the provider's ``read_block``); anything else none."""
    if isinstance(content, str):
        return [text_part(content)]
    if not isinstance(content, list):
        return []
    return [read_block(block) for block in content if isinstance(block, Mapping)]


def tool_response(content: Any, parts: list[Part]) -> Any:
    """A tool's answer: ``content`` as it came when it is not a list of blocks, else the text
    of ``parts`` (the blocks read as parts) when they are all text, else the parts."""
    if not isinstance(content, list):
        return content
    if all(part.get("type") == "text" for part in parts):
        return "".join(str(part.get("content") or "") for part in parts)
    return parts


def server_tool_call_part(call_id: Any, name: Any, details: Mapping[str, Any]) -> Part:
    """A tool the provider ran itself (web search, code interpreter, ...): ``details`` is the
    provider's own description of the call, typed by the tool (its ``type``)."""
    part: Part = {"type": "server_tool_call", "name": name if isinstance(name, str) else "unknown",
                  "server_tool_call": _typed(details, name)}
    if isinstance(call_id, str):
        part["id"] = call_id
    return part


def server_tool_response_part(call_id: Any, details: Mapping[str, Any]) -> Part:
    """What a tool the provider ran returned."""
    part: Part = {"type": "server_tool_call_response", "server_tool_call_response": _typed(details, None)}
    if isinstance(call_id, str):
        part["id"] = call_id
    return part


def _typed(details: Mapping[str, Any], fallback: Any) -> dict[str, Any]:
    found = dict(details)
    if not isinstance(found.get("type"), str):
        found["type"] = fallback if isinstance(fallback, str) else "unknown"
    return found


# The part types the conventions define, each with fields of its own: a block of one of these
# types that reached generic_part lacks them, and kept under its type it would not match the schema.
_DEFINED_TYPES = frozenset({"text", "tool_call", "tool_call_response", "server_tool_call", "server_tool_call_response",
                            "blob", "file", "uri", "reasoning", "compaction"})


def generic_part(block: Mapping[str, Any]) -> Part:
    """A block this module has no part for, kept as it is (its ``type`` preserved, unless it is
    one of the conventions' own types without that type's fields: then ``llmspend.unknown``,
    the block's type under ``block_type``)."""
    part = dict(block)
    kind = part.get("type")
    if not isinstance(kind, str):
        part["type"] = "unknown"
    elif kind in _DEFINED_TYPES:
        part["type"], part["block_type"] = "llmspend.unknown", kind
    return part


def media_part(modality: str, *, url: Any = None, data: Any = None, mime_type: Any = None, file_id: Any = None,
               byte_size: int | None = None) -> Part:
    """An image, audio clip or document given by URL (a ``data:`` URL is inline data), by
    inline base64 ``data``, or by a provider ``file_id``.

    Inline data becomes a ``blob`` part whose ``content`` is left empty, its size in
    ``byte_size``: base64 media would take the whole size cap of the attribute (and a cut one
    decodes to nothing useful), and an image is rarely what a trace is read for."""
    mime = mime_type if isinstance(mime_type, str) else None
    if isinstance(url, str) and url.startswith("data:"):
        header, _, payload = url[5:].partition(",")
        mime = header.split(";", 1)[0] or mime
        return _blob(modality, mime, decoded_size(payload) if header.endswith(";base64") else len(payload))
    if isinstance(url, str):
        part: Part = {"type": "uri", "modality": modality, "uri": url}
    elif isinstance(data, str):
        return _blob(modality, mime, decoded_size(data))
    elif isinstance(file_id, str):
        part = {"type": "file", "modality": modality, "file_id": file_id}
    elif byte_size is not None:  # inline data already counted (a stream's pieces)
        return _blob(modality, mime, byte_size)
    else:
        return {"type": modality}  # nothing to point to: say what it was
    if mime:
        part["mime_type"] = mime
    return part


def decoded_size(base64: str) -> int:
    """How many bytes the base64 text ``base64`` holds (without decoding it)."""
    padding = len(base64) - len(base64.rstrip("="))
    return max(0, len(base64) * 3 // 4 - padding)


def _blob(modality: str, mime: str | None, byte_size: int) -> Part:
    part: Part = {"type": "blob", "modality": modality, "content": "", "byte_size": byte_size}
    if mime:
        part["mime_type"] = mime
    return part


# -- messages --------------------------------------------------------------------------------
def message(role: Any, parts: list[Part], name: Any = None) -> Message:
    found: Message = {"role": role if isinstance(role, str) else "user", "parts": parts}
    if isinstance(name, str):
        found["name"] = name
    return found


def output_message(parts: list[Part], finish_reason: Any = None, role: Any = "assistant") -> Message:
    """One choice of the answer. ``finish_reason`` is the provider's, as on
    ``gen_ai.response.finish_reasons`` (the current schema marks the field deprecated in favour
    of that attribute; readers of its earlier versions require it)."""
    return {"role": role if isinstance(role, str) else "assistant", "parts": parts,
            "finish_reason": finish_reason if isinstance(finish_reason, str) else None}


def text_output(text: str, finish_reasons: tuple[str, ...] = ()) -> list[Message]:
    """The answer as one assistant message of text: for adapters that read no more of it."""
    return [output_message([text_part(text)], finish_reasons[0] if len(finish_reasons) == 1 else None)]


def prompt_messages(prompt: Any) -> list[Message] | None:
    """A plain prompt (legacy completions, embeddings): a string, or a list of them, as user
    messages, one per prompt; token-id lists kept as a generic part."""
    if isinstance(prompt, str):
        return [message("user", [text_part(prompt)])]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(item, int) for item in prompt):  # one prompt given as token ids
            return [message("user", [{"type": "tokens", "content": prompt}])]
        return [message("user", [text_part(item) if isinstance(item, str) else {"type": "tokens", "content": item}])
                for item in prompt]
    return None


# -- the size cap ----------------------------------------------------------------------------
# Values that give a part or message its shape: never cut (a cut "tool_call_response" or id
# would be another shape, or point nowhere).
_STRUCTURAL_KEYS = frozenset({"type", "role", "id", "name", "mime_type", "modality", "finish_reason", "file_id"})
_MIN_CAP = 16


def content_json(value: Any, limit: int = MAX_CONTENT_CHARS) -> str:
    """``value`` as JSON of at most ``limit`` characters, still valid JSON of the same shape:
    when too long, the longest strings in it are cut (each ending in ``…[N more characters]``;
    types, roles, ids and names are never cut) and, if that is not enough, the oldest items of
    the top-level list are left out (the latest message is the one to keep). In the last resort
    the list keeps one generic part saying how long the content was."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return text
    try:
        return _cut_to(value, text, limit)
    except RecursionError:  # nested deeper than the walks below go (a model's tool arguments)
        return json.dumps(_truncated(value, len(text)))


def _cut_to(value: Any, text: str, limit: int) -> str:
    lengths = sorted(_string_lengths(value), reverse=True)
    # The largest cap whose cut strings fit, from the lengths alone (one json.dumps to check,
    # not one per guess).
    low, high = _MIN_CAP, lengths[0] if lengths else _MIN_CAP
    while low < high:
        cap = (low + high + 1) // 2
        if len(text) - sum(n - cap - 30 for n in lengths if n > cap) <= limit:
            low = cap
        else:
            high = cap - 1
    items = value
    for _ in range(32):
        cut = json.dumps(_cut_strings(items, low), ensure_ascii=False, default=str)
        if len(cut) <= limit:
            return cut
        if isinstance(items, list | tuple) and len(items) > 1:
            items = list(items)[len(items) // 2:]  # drop the older half
        elif low > _MIN_CAP:
            low //= 2
        else:
            break
    return json.dumps(_truncated(value, len(text)))


def _truncated(value: Any, characters: int) -> Any:
    marker: Part = {"type": "llmspend.truncated", "characters": characters}
    if isinstance(value, list | tuple) and value and isinstance(value[-1], Mapping) and "parts" in value[-1]:
        last = value[-1]
        kept = {key: last[key] for key in ("role", "finish_reason") if key in last and isinstance(last[key], str | None)}
        return [{**kept, "parts": [marker]}]
    return [marker]


def _string_lengths(value: Any, shaped: bool = True) -> Iterator[int]:
    # ``shaped``: a message or a part (an item of the top-level list or of a ``parts`` list),
    # whose structural keys are kept whole; below them (tool arguments, a tool's response, a
    # provider's block) a key named "name" or "id" is the user's data and is cut like any other.
    if isinstance(value, str):
        yield len(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not (shaped and key in _STRUCTURAL_KEYS and isinstance(item, str)):
                yield from _string_lengths(item, shaped and key == "parts")
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _string_lengths(item, shaped)


def _cut_strings(value: Any, cap: int, shaped: bool = True) -> Any:
    if isinstance(value, str):
        return value if len(value) <= cap else f"{value[:cap]}…[{len(value) - cap} more characters]"
    if isinstance(value, Mapping):
        return {k: v if shaped and k in _STRUCTURAL_KEYS and isinstance(v, str) else _cut_strings(v, cap, shaped and k == "parts")
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cut_strings(v, cap, shaped) for v in value]
    return value
