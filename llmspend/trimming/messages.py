"""How the trimmer reads a conversation, whatever its wire format.

Three shapes are recognised item by item, so adapters can hand over their lists as they are:

- OpenAI chat messages: ``{"role": "system" | "developer" | "user" | "assistant" | "tool",
  "content": str | [parts], "tool_calls": [{"id": ...}], "tool_call_id": ...}`` (and the legacy
  ``function_call`` / ``role: "function"`` pair);
- OpenAI Responses API input items: messages (``{"role": ..., "content": ...}``, with or without
  ``"type": "message"``), tool calls (``{"type": "function_call", "call_id": ...}``, and the other
  ``*_call`` items) and their outputs (``{"type": "function_call_output", "call_id": ...}``);
- messages made of Anthropic-style content blocks: ``{"type": "tool_use", "id": ...}`` in an
  assistant message, ``{"type": "tool_result", "tool_use_id": ...}`` in a user message.

Few-shot examples are messages named ``example``, ``example_user`` or ``example_assistant``
(OpenAI's own convention puts them in ``system`` messages with the latter two names).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..tokens import TOKENS_PER_MESSAGE, count_text, message_text
from ..vision.parts import item_image_tokens, without_images

__all__ = ["Shape", "read", "map_text", "item_text", "item_tokens", "SYSTEM", "USER", "ASSISTANT", "TOOL", "OTHER"]

SYSTEM, USER, ASSISTANT, TOOL, OTHER = "system", "user", "assistant", "tool", "other"

EXAMPLE_NAMES = frozenset({"example", "example_user", "example_assistant"})

# content parts whose "text" is prose the trimmer may rewrite
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


@dataclass(frozen=True, slots=True)
class Shape:
    """What the trimmer needs to know of one item."""

    role: str  #: SYSTEM, USER, ASSISTANT, TOOL or OTHER
    opens: tuple[str, ...] = ()  #: tool-call ids this item issues
    closes: tuple[str, ...] = ()  #: tool-call ids this item answers
    example: bool = False  #: a few-shot example message
    example_start: bool = False  #: the first message of an example (its question side)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def read(item: Any) -> Shape:
    """The :class:`Shape` of one conversation item (``OTHER`` for anything unrecognised)."""
    if not isinstance(item, Mapping):
        return Shape(OTHER)
    kind = _str(item.get("type"))
    if kind is not None and kind != "message":
        call_id = _str(item.get("call_id"))
        if kind.endswith("_call_output"):
            return Shape(TOOL, closes=(call_id,) if call_id else ())
        if kind.endswith("_call") or kind == "reasoning":
            return Shape(ASSISTANT, opens=(call_id,) if call_id else ())
        return Shape(OTHER)
    role = _str(item.get("role"))
    name = _str(item.get("name"))
    if name in EXAMPLE_NAMES and role in ("system", "developer", "user", "assistant"):
        start = name == "example_user" or (name == "example" and role == "user")
        return Shape(USER if start else ASSISTANT, example=True, example_start=start)
    content = item.get("content")
    blocks = [p for p in content if isinstance(p, Mapping)] if isinstance(content, list) else []
    if role in ("system", "developer"):
        return Shape(SYSTEM)
    if role == "assistant":
        opens = [c.get("id") for c in item.get("tool_calls") or () if isinstance(c, Mapping)]
        opens += [b.get("id") for b in blocks if b.get("type") == "tool_use"]
        function_call = item.get("function_call")
        if isinstance(function_call, Mapping) and isinstance(function_call.get("name"), str):
            opens.append("function:" + function_call["name"])
        return Shape(ASSISTANT, opens=tuple(i for i in opens if isinstance(i, str)))
    if role == "tool":
        call_id = _str(item.get("tool_call_id"))
        return Shape(TOOL, closes=(call_id,) if call_id else ())
    if role == "function":
        return Shape(TOOL, closes=("function:" + name,) if name else ())
    if role == "user":
        results = [b for b in blocks if b.get("type") == "tool_result"]
        closes = tuple(i for i in (b.get("tool_use_id") for b in results) if isinstance(i, str))
        # a user message made only of tool results is the tool's answer, not a new question
        only_results = bool(results) and len(results) == len(blocks) == len(content or ())
        return Shape(TOOL if only_results else USER, closes=closes)
    return Shape(OTHER)


def map_text(item: Any, rewrite: Callable[[str, bool], str]) -> Any:
    """``item`` with ``rewrite(text, is_tool_output)`` applied to each piece of its prose: string
    contents, text parts, tool outputs. Tool-call arguments, images and unknown parts are left
    alone. Returns ``item`` itself when nothing changed."""
    if not isinstance(item, Mapping):
        return item
    shape_is_tool = item.get("role") in ("tool", "function") or str(item.get("type", "")).endswith("_call_output")
    changed: dict[str, Any] = {}
    for key in ("content", "output"):
        if key not in item or (key == "output" and not shape_is_tool):
            continue
        new = _map_content(item[key], rewrite, shape_is_tool)
        if new is not item[key]:
            changed[key] = new
    return {**item, **changed} if changed else item


def _map_content(content: Any, rewrite: Callable[[str, bool], str], is_tool: bool) -> Any:
    if isinstance(content, str):
        new = rewrite(content, is_tool)
        return content if new == content else new
    if not isinstance(content, list):
        return content
    parts: list[Any] = []
    changed = False
    for part in content:
        new_part = part
        if isinstance(part, Mapping):
            kind = part.get("type")
            if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
                text = rewrite(part["text"], is_tool)
                if text != part["text"]:
                    new_part = {**part, "text": text}
            elif kind == "tool_result" and "content" in part:
                inner = _map_content(part["content"], rewrite, True)
                if inner is not part["content"]:
                    new_part = {**part, "content": inner}
        elif isinstance(part, str):
            text = rewrite(part, is_tool)
            new_part = part if text == part else text
        changed = changed or new_part is not part
        parts.append(new_part)
    return parts if changed else content


def item_text(item: Any) -> str:
    """All the text of one item that the model reads, for counting tokens."""
    if not isinstance(item, Mapping):
        return json.dumps(item, ensure_ascii=False, default=str)
    pieces = [message_text(item)]
    if item.get("type") not in (None, "message"):  # Responses tool items and reasoning
        for key in ("arguments", "output", "summary"):
            value = item.get(key)
            if isinstance(value, str):
                pieces.append(value)
            elif value is not None:  # images are counted by item_image_tokens, not as text
                pieces.append(json.dumps(without_images(value), ensure_ascii=False, default=str))
    content = item.get("content")
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "tool_use":
                pieces.append(str(part.get("name", "")))
                pieces.append(json.dumps(part.get("input"), ensure_ascii=False, default=str))
    return "\n".join(pieces) if len(pieces) > 1 else pieces[0]


def item_tokens(item: Any, model: str | None) -> int:
    """Estimated prompt tokens of one item, by OpenAI's chat rule (text + 3 per message), plus
    its images by the provider's rule (:mod:`llmspend.vision`)."""
    return TOKENS_PER_MESSAGE + count_text(item_text(item), model) + item_image_tokens(item, model)
