"""The Messages API's content blocks as the GenAI conventions' parts, for opt-in content capture.

The top-level ``system`` (a string or text blocks) is given apart from the conversation, so it
goes to ``gen_ai.system_instructions``; ``messages`` go to ``gen_ai.input.messages`` in order,
each block a part: ``text`` a text part, ``tool_use`` a ``tool_call``, ``tool_result`` a
``tool_call_response`` (in the user turn that carries it, as sent), ``thinking`` a reasoning
part, images and documents ``blob``/``uri``/``file`` parts, ``server_tool_use`` and the
``*_tool_result`` blocks of tools Anthropic runs itself ``server_tool_call`` /
``server_tool_call_response`` parts, anything else (``redacted_thinking``, ...) a generic part
of its own type. An answer is one output message.

Pure functions of parsed JSON (see :mod:`llmspend.telemetry.content`); none raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmspend.telemetry.content import (
    InputContent,
    Message,
    Part,
    generic_part,
    media_part,
    message,
    output_message,
    parts_of,
    reasoning_part,
    server_tool_call_part,
    server_tool_response_part,
    text_part,
    tool_call_part,
    tool_call_response_part,
    tool_response,
)

__all__ = ["block_parts", "input_content", "output_messages"]

_MEDIA = {"image": "image", "document": "document"}


def input_content(body: Mapping[str, Any]) -> InputContent:
    """A Messages request: ``system`` as system instructions, ``messages`` as messages."""
    system = body.get("system")
    instructions = block_parts(system) if system else None
    messages = body.get("messages")
    found = [message(m.get("role"), block_parts(m.get("content"))) for m in messages if isinstance(m, Mapping)] \
        if isinstance(messages, list) else None
    return InputContent(messages=found, system_instructions=instructions)


def output_messages(answer: Mapping[str, Any]) -> list[Message]:
    """A Message (the API's answer, or what a stream built) as one output message; its finish
    reason is the ``stop_reason``, as on ``gen_ai.response.finish_reasons``."""
    return [output_message(block_parts(answer.get("content")), answer.get("stop_reason"), answer.get("role") or "assistant")]


def block_parts(content: Any) -> list[Part]:
    """A ``content`` (a string or a list of blocks) as parts."""
    return parts_of(content, _part)


def _part(block: Mapping[str, Any]) -> Part:
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return text_part(block["text"])
    if kind == "tool_use":
        return tool_call_part(block.get("id"), block.get("name"), block.get("input"))
    if kind == "tool_result":
        content = block.get("content")
        return tool_call_response_part(block.get("tool_use_id"), tool_response(content, block_parts(content)))
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return reasoning_part(block["thinking"])
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking"}  # its data is encrypted: nothing a reader can use
    if isinstance(kind, str) and kind in _MEDIA and isinstance(block.get("source"), Mapping):
        return _media(_MEDIA[kind], block["source"])
    if kind == "server_tool_use":  # a tool Anthropic runs itself (web search, code execution, ...)
        return server_tool_call_part(block.get("id"), block.get("name"), {"type": block.get("name"), "input": block.get("input")})
    if isinstance(kind, str) and kind.endswith("_tool_result") and "tool_use_id" in block:  # what it returned
        return server_tool_response_part(block.get("tool_use_id"), {k: v for k, v in block.items() if k != "tool_use_id"})
    return generic_part(block)


def _media(modality: str, source: Mapping[str, Any]) -> Part:
    kind = source.get("type")
    if kind == "base64":
        return media_part(modality, data=source.get("data"), mime_type=source.get("media_type"))
    if kind == "url":
        return media_part(modality, url=source.get("url"))
    if kind == "file":
        return media_part(modality, file_id=source.get("file_id"))
    if kind == "text" and isinstance(source.get("data"), str):  # a plain-text document
        return text_part(source["data"])
    return generic_part({"type": modality, "source": dict(source)})

