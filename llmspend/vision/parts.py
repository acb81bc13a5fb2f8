"""Finding the images in a request's content, whatever its wire format, and counting them.

Recognised parts (anything else counts 0 here):

- OpenAI chat: ``{"type": "image_url", "image_url": {"url": ..., "detail": ...}}``;
- OpenAI Responses API: ``{"type": "input_image", "image_url": ... | "file_id": ..., "detail":
  ...}`` in a message's ``content`` or a tool output's ``output`` list, and a computer-use
  screenshot ``{"type": "computer_screenshot", "image_url": ...}``;
- Anthropic: ``{"type": "image", "source": {"type": "base64", "data": ...} | {"type": "url"} |
  {"type": "file"}}``, also inside a ``tool_result``'s ``content``.

Base64 data URLs and Anthropic base64 sources are sized from their header bytes
(:mod:`llmspend.vision.size`); anything else (an http(s) URL, a file id, unreadable data) gets
the rule's upper bound. Text is never decoded or scanned: a string content costs one type check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .rules import anthropic_image_tokens, openai_image_tokens
from .size import base64_image_size, data_url_size

__all__ = ["content_image_tokens", "item_image_tokens", "without_images"]

_OPENAI_IMAGE_PARTS = frozenset({"input_image", "computer_screenshot"})
# A tool result nests content blocks; deeper nesting is not a shape any API sends.
_MAX_DEPTH = 4


def content_image_tokens(content: Any, model: str | None, _depth: int = 0) -> int:
    """Image input tokens in a message's ``content`` (a string has none)."""
    if isinstance(content, str) or _depth > _MAX_DEPTH:
        return 0
    if isinstance(content, Mapping):
        return _part_tokens(content, model, _depth)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if isinstance(part, Mapping):
            total += _part_tokens(part, model, _depth)
    return total


def item_image_tokens(item: Any, model: str | None) -> int:
    """Image input tokens in one conversation item: a chat message's or an Anthropic message's
    ``content``, a Responses tool output's ``output``."""
    if not isinstance(item, Mapping):
        return 0
    total = content_image_tokens(item.get("content"), model)
    output = item.get("output")
    if output is not None and not isinstance(output, str):
        total += content_image_tokens(output, model)
    return total


def _part_tokens(part: Mapping[str, Any], model: str | None, depth: int) -> int:
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, Mapping):
            return _openai(image.get("url"), image.get("detail"), model)
        return _openai(image, None, model)
    if kind in _OPENAI_IMAGE_PARTS:
        return _openai(part.get("image_url"), part.get("detail"), model)
    if kind == "image":
        source = part.get("source")
        size = None
        if isinstance(source, Mapping) and source.get("type") == "base64" and isinstance(source.get("data"), str):
            size = base64_image_size(source["data"])
        return anthropic_image_tokens(model, size)
    if kind == "tool_result":
        return content_image_tokens(part.get("content"), model, depth + 1)
    return 0


def _openai(url: Any, detail: Any, model: str | None) -> int:
    size = data_url_size(url) if isinstance(url, str) else None
    return openai_image_tokens(model, size, detail if isinstance(detail, str) else None)


def without_images(value: Any, _depth: int = 0) -> Any:
    """``value`` (parsed JSON) with every recognised image part replaced by ``{"type": ...}``:
    for counting the text around images when a whole structure is serialised (an image's
    base64 is not text the model reads). ``value`` itself when it holds no image."""
    if isinstance(value, list):
        parts = [without_images(v, _depth + 1) for v in value]
        return parts if any(new is not old for new, old in zip(parts, value)) else value
    if not isinstance(value, Mapping) or _depth > 2 * _MAX_DEPTH:
        return value
    kind = value.get("type")
    if kind == "image_url" or kind in _OPENAI_IMAGE_PARTS or (kind == "image" and "source" in value):
        return {"type": kind}
    changed = {}
    for key, inner in value.items():
        if isinstance(inner, list | Mapping):
            new = without_images(inner, _depth + 1)
            if new is not inner:
                changed[key] = new
    return {**value, **changed} if changed else value
