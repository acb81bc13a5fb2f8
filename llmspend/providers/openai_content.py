"""The OpenAI API's messages as the GenAI conventions' parts, for opt-in content capture.

Chat completions: every message of ``messages`` goes to ``gen_ai.input.messages`` in order,
``system`` and ``developer`` messages included (the conventions keep instructions that are part
of the chat history there); an assistant's ``tool_calls`` become ``tool_call`` parts, a ``tool``
message a ``tool_call_response`` part; images, audio and files become ``uri``/``blob``/``file``
parts. The Responses API's ``instructions`` go to ``gen_ai.system_instructions``; its input
items are read like chat messages (``function_call`` and ``function_call_output`` items as tool
parts; the tools OpenAI runs itself, such as web search, as ``server_tool_call`` parts, a
generated image by its size, not its bytes). Answers: one output message per choice (chat,
completions), or one for a Response.

Pure functions of parsed JSON (see :mod:`llmspend.telemetry.content`); none raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..telemetry.content import (
    InputContent,
    Message,
    Part,
    decoded_size,
    generic_part,
    media_part,
    message,
    output_message,
    parts_of,
    prompt_messages,
    reasoning_part,
    server_tool_call_part,
    text_part,
    tool_call_part,
    tool_call_response_part,
    tool_response,
)

__all__ = ["chat_input", "chat_output", "choices_from_deltas", "input_content", "responses_input", "responses_output"]

_TEXT_TYPES = frozenset({"text", "input_text", "output_text"})


def input_content(endpoint: str, body: Mapping[str, Any]) -> InputContent | None:
    """What a request to ``endpoint`` (``chat.completions``, ``responses``, ``completions``,
    ``embeddings``) tells the model."""
    if endpoint == "chat.completions":
        messages = body.get("messages")
        return InputContent(messages=chat_input(messages)) if isinstance(messages, list) else None
    if endpoint == "responses":
        return responses_input(body)
    prompt = body.get("prompt") if endpoint == "completions" else body.get("input")
    return InputContent(messages=prompt_messages(prompt))


def content_parts(content: Any) -> list[Part]:
    """A message's ``content`` (a string, or a list of content parts of chat or the Responses
    API) as parts."""
    return parts_of(content, _part)


def _items(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else none: a field of an odd shape is skipped."""
    return value if isinstance(value, list) else []


def _part(item: Mapping[str, Any]) -> Part:
    kind = item.get("type")
    if isinstance(kind, str) and kind in _TEXT_TYPES and isinstance(item.get("text"), str):
        return text_part(item["text"])
    if kind == "image_url":  # chat: {"image_url": {"url": ...}}
        image = item.get("image_url")
        return media_part("image", url=image.get("url") if isinstance(image, Mapping) else image)
    if kind == "input_image":  # Responses: {"image_url": "..."} or {"file_id": "..."}
        return media_part("image", url=item.get("image_url"), file_id=item.get("file_id"))
    if kind == "input_audio":
        audio = item.get("input_audio")
        if isinstance(audio, Mapping):
            audio_format = audio.get("format")
            return media_part("audio", data=audio.get("data"),
                              mime_type=f"audio/{audio_format}" if isinstance(audio_format, str) else None)
    if kind in ("file", "input_file"):  # chat nests the fields under "file"; Responses does not
        found = item.get("file") if kind == "file" else item
        if isinstance(found, Mapping):
            data = found.get("file_data")
            url = found.get("file_url") or (data if isinstance(data, str) and data.startswith("data:") else None)
            return media_part("document", url=url, data=None if url else data, file_id=found.get("file_id"))
    return generic_part(item)


def _tool_response(content: Any) -> Any:
    return tool_response(content, content_parts(content))


def _assistant_parts(found: Mapping[str, Any]) -> list[Part]:
    """An assistant message's (or a streamed choice's) text, refusal and tool calls."""
    parts = content_parts(found.get("content"))
    if isinstance(found.get("refusal"), str):
        parts.append({"type": "refusal", "content": found["refusal"]})
    for call in _items(found.get("tool_calls")):
        if not isinstance(call, Mapping):
            continue
        function = call.get("function") or call.get("custom")  # custom tools: {"name", "input"}
        if isinstance(function, Mapping):
            parts.append(tool_call_part(call.get("id"), function.get("name"), function.get("arguments", function.get("input"))))
    legacy = found.get("function_call")
    if isinstance(legacy, Mapping):
        parts.append(tool_call_part(None, legacy.get("name"), legacy.get("arguments")))
    audio = found.get("audio")
    if isinstance(audio, Mapping) and ("data" in audio or "transcript" in audio or "byte_size" in audio):  # a spoken answer
        size = audio.get("byte_size")
        part = media_part("audio", data=audio.get("data") if isinstance(audio.get("data"), str) else None,
                          byte_size=size if isinstance(size, int) else 0)
        if isinstance(audio.get("transcript"), str):
            part["transcript"] = audio["transcript"]  # the conventions' BlobPart field for it
        parts.append(part)
    return parts


def chat_input(messages: Iterable[Any]) -> list[Message]:
    """Chat ``messages`` as ``gen_ai.input.messages``, in order."""
    found = []
    for item in messages:
        if not isinstance(item, Mapping):
            continue
        role = item.get("role")
        if role == "tool":
            parts = [tool_call_response_part(item.get("tool_call_id"), _tool_response(item.get("content")))]
        elif role == "function":  # the legacy function-calling form: no id, the result under the name
            parts = [tool_call_response_part(None, _tool_response(item.get("content")))]
        else:
            parts = _assistant_parts(item)
        found.append(message(role, parts, item.get("name")))
    return found


def chat_output(choices: Any) -> list[Message]:
    """The ``choices`` of a chat completion (``message``) or a completion (``text``) as
    ``gen_ai.output.messages``, one message per choice."""
    found = []
    for choice in _items(choices):
        if not isinstance(choice, Mapping):
            continue
        if isinstance(choice.get("text"), str):
            found.append(output_message([text_part(choice["text"])], choice.get("finish_reason")))
            continue
        answer = choice.get("message")
        answer = answer if isinstance(answer, Mapping) else {}
        found.append(output_message(_assistant_parts(answer), choice.get("finish_reason"), answer.get("role") or "assistant"))
    return found


def choices_from_deltas(deltas: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The choices a chat or completions stream built, from the ``choices`` entries of its
    chunks in order: text and refusal joined, tool calls put together by their index (the id
    and name come once, the arguments in pieces). Pieces are gathered in lists and joined once
    at the end: a long stream has tens of thousands of them."""
    built: dict[int, dict[str, Any]] = {}
    texts: dict[tuple[int, str], list[str]] = {}  # (choice, "text" | "content" | "refusal") -> pieces
    calls: dict[int, dict[int, dict[str, Any]]] = {}  # choice -> call index -> id and pieces
    for delta in deltas:
        index = delta.get("index", 0)
        index = index if isinstance(index, int) else 0
        choice = built.setdefault(index, {"index": index, "finish_reason": None})
        if isinstance(delta.get("finish_reason"), str):
            choice["finish_reason"] = delta["finish_reason"]
        if isinstance(delta.get("text"), str):  # completions
            texts.setdefault((index, "text"), []).append(delta["text"])
            continue
        piece = delta.get("delta")
        if not isinstance(piece, Mapping):
            continue
        answer = choice.setdefault("message", {"role": "assistant"})
        if isinstance(piece.get("role"), str):
            answer["role"] = piece["role"]
        for key in ("content", "refusal"):
            if isinstance(piece.get(key), str) and piece[key]:  # the opening delta's "" is no text
                texts.setdefault((index, key), []).append(piece[key])
        legacy = piece.get("function_call")  # the functions API: one call, in pieces like a tool call's
        if isinstance(legacy, Mapping):
            slot = calls.setdefault(index, {}).setdefault(-1, {"id": None, "name": [], "arguments": []})
            for key in ("name", "arguments"):
                if isinstance(legacy.get(key), str):
                    slot[key].append(legacy[key])
        audio = piece.get("audio")
        if isinstance(audio, Mapping):  # a spoken answer: its transcript in pieces, its bytes only counted
            if isinstance(audio.get("transcript"), str):
                texts.setdefault((index, "audio.transcript"), []).append(audio["transcript"])
            if isinstance(audio.get("data"), str):
                sound = answer.setdefault("audio", {})
                sound["byte_size"] = sound.get("byte_size", 0) + decoded_size(audio["data"])
        for call in _items(piece.get("tool_calls")):
            if not isinstance(call, Mapping):
                continue
            number = call.get("index", 0)
            slot = calls.setdefault(index, {}).setdefault(number if isinstance(number, int) else 0,
                                                          {"id": None, "name": [], "arguments": []})
            if isinstance(call.get("id"), str):
                slot["id"] = call["id"]
            function = call.get("function")
            if isinstance(function, Mapping):
                for key in ("name", "arguments"):
                    if isinstance(function.get(key), str):
                        slot[key].append(function[key])
    for (index, key), pieces in texts.items():
        if key == "text":
            built[index]["text"] = "".join(pieces)
        elif key.startswith("audio."):
            built[index]["message"].setdefault("audio", {})[key[6:]] = "".join(pieces)
        else:
            built[index]["message"][key] = "".join(pieces)
    for index, slots in calls.items():
        answer = built[index].setdefault("message", {"role": "assistant"})
        joined = {n: {"name": "".join(slot["name"]), "arguments": "".join(slot["arguments"])} for n, slot in slots.items()}
        if -1 in joined:
            answer["function_call"] = joined.pop(-1)
        if joined:
            answer["tool_calls"] = [{"id": slots[n]["id"], "function": joined[n]} for n in sorted(joined)]
    return [built[i] for i in sorted(built)]


# -- the Responses API -----------------------------------------------------------------------
def responses_input(body: Mapping[str, Any]) -> InputContent:
    """A Responses request: ``instructions`` as system instructions, ``input`` as messages."""
    instructions = body.get("instructions")
    system: list[Part] | None = None
    if isinstance(instructions, str):
        system = [text_part(instructions)]
    elif isinstance(instructions, list):  # input items, as a reusable prompt expands to
        system = [part for item in responses_items(instructions) for part in item["parts"]]
    source = body.get("input")
    messages = prompt_messages(source) if isinstance(source, str) else responses_items(source) if isinstance(source, list) else None
    return InputContent(messages=messages, system_instructions=system)


def responses_items(items: Iterable[Any]) -> list[Message]:
    """Responses input items as messages, one per item."""
    found = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind in (None, "message"):
            found.append(message(item.get("role"), content_parts(item.get("content"))))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            found.append(message("tool", [tool_call_response_part(item.get("call_id"), _tool_response(item.get("output")))]))
        else:
            found.append(message("assistant", _output_item_parts(item)))
    return found


def _output_item_parts(item: Mapping[str, Any]) -> list[Part]:
    kind = item.get("type")
    if kind == "message":
        return content_parts(item.get("content"))
    if kind in ("function_call", "custom_tool_call"):
        return [tool_call_part(item.get("call_id"), item.get("name"), item.get("arguments", item.get("input")))]
    if kind == "reasoning":
        summary = [str(s["text"]) for s in _items(item.get("summary")) if isinstance(s, Mapping) and isinstance(s.get("text"), str)]
        return [reasoning_part("\n".join(summary))] if summary else []
    if isinstance(kind, str) and kind in _SERVER_TOOLS:
        return [_server_tool_call(kind, item)]
    return [generic_part(item)]  # what this module has no part for (computer use, ...)


# The Responses API's tools that OpenAI runs itself: an output item is the call and its outcome.
_SERVER_TOOLS = frozenset({"web_search_call", "file_search_call", "code_interpreter_call", "image_generation_call",
                           "mcp_call"})


def _server_tool_call(kind: str, item: Mapping[str, Any]) -> Part:
    details = {k: v for k, v in item.items() if k not in ("id", "type")}
    details["type"] = kind.removesuffix("_call")
    result = details.get("result")
    if kind == "image_generation_call" and isinstance(result, str):
        # the image in base64: megabytes that would fill the attribute's cap; its size is kept
        details["result"] = media_part("image", data=result, mime_type=f"image/{item.get('output_format') or 'png'}")
    name = item.get("name") if kind == "mcp_call" else details["type"]  # an MCP call names its remote tool
    return server_tool_call_part(item.get("id"), name, details)


def responses_output(response: Mapping[str, Any]) -> list[Message]:
    """A Response's ``output`` items as one output message (a Response is one generation);
    its finish reason is the Response's ``status``, as on ``gen_ai.response.finish_reasons``."""
    parts = [part for item in _items(response.get("output")) if isinstance(item, Mapping) for part in _output_item_parts(item)]
    return [output_message(parts, response.get("status"))]
