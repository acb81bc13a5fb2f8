"""Reading the Messages API's request and message shapes: text for local token estimates.

A request has a top-level ``system`` (a string or a list of text blocks) and ``messages`` whose
``content`` is a string or a list of blocks (``text``, ``image``, ``document``, ``tool_use``,
``tool_result``, ``thinking``, ...). Pure functions; nothing here raises on an odd shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from llmspend.tokens import TOKENS_PER_MESSAGE, TOKENS_REPLY_PRIMER, count_text
from llmspend.vision import content_image_tokens

__all__ = [
    "block_text",
    "content_text",
    "estimate_overhead_tokens",
    "estimate_request_tokens",
    "without_cache_control",
]


def block_text(block: Any) -> str:
    """The text a content block carries (what the model reads or wrote), as far as text goes.
    Images have no text here (:func:`estimate_request_tokens` counts them by Anthropic's rule);
    a document has the text of a plain-text or custom-content source (with its title and
    context), a PDF none: its tokens are not estimated offline."""
    if isinstance(block, str):
        return block
    if not isinstance(block, Mapping):
        return ""
    kind = block.get("type")
    if kind == "text" or (kind is None and isinstance(block.get("text"), str)):
        return str(block.get("text") or "")
    if kind in ("thinking", "redacted_thinking"):
        return str(block.get("thinking") or block.get("data") or "")
    if kind in ("tool_use", "server_tool_use"):
        return str(block.get("name") or "") + json.dumps(block.get("input") or {}, ensure_ascii=False)
    if kind == "tool_result" or kind is not None and kind.endswith("_tool_result"):
        return content_text(block.get("content"))
    if kind == "document":
        return _document_text(block)
    return ""


def _document_text(block: Mapping[str, Any]) -> str:
    """What a ``document`` block puts in the prompt as text: a plain-text source's ``data`` or a
    custom-content source's blocks, and the ``title`` and ``context`` the model reads with it."""
    source = block.get("source")
    source = source if isinstance(source, Mapping) else {}
    data = source.get("data") if source.get("type") == "text" else None
    body = data if isinstance(data, str) else content_text(source.get("content")) if source.get("type") == "content" else ""
    extras = [block.get(k) for k in ("title", "context")]
    return "\n".join(t for t in (*extras, body) if isinstance(t, str) and t)


def content_text(content: Any) -> str:
    """All the text of a message's ``content`` (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(text for text in map(block_text, content) if text)
    return ""


def _messages(body: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    messages = body.get("messages")
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        for message in messages:
            if isinstance(message, Mapping):
                yield message


def estimate_overhead_tokens(body: Mapping[str, Any], model: str | None = None) -> int:
    """Input tokens of a Messages request outside its ``messages``: the top-level ``system``
    and the tool definitions, counted locally (an estimate)."""
    total = count_text(content_text(body.get("system")), model)
    tools = body.get("tools")
    if tools:
        total += count_text(json.dumps(tools, ensure_ascii=False), model)
    return total


def estimate_request_tokens(body: Mapping[str, Any], model: str | None = None) -> int:
    """Input tokens of a Messages request counted locally: an estimate (Claude's tokenizer is
    not available offline, so llmspend's offline encoding stands in for it). Images, in a
    message or a tool result, count by Anthropic's published rule (:mod:`llmspend.vision`)."""
    total = TOKENS_REPLY_PRIMER + estimate_overhead_tokens(body, model)
    for message in _messages(body):
        content = message.get("content")
        total += TOKENS_PER_MESSAGE + count_text(content_text(content), model)
        if not isinstance(content, str):
            total += content_image_tokens(content, model)
    return total


def _unmarked(item: Any) -> Any:
    """A block or tool without its ``cache_control`` (a tool result's own blocks too)."""
    if not isinstance(item, Mapping):
        return item
    out = {k: v for k, v in item.items() if k != "cache_control"} if "cache_control" in item else item
    inner = out.get("content")
    if out.get("type") == "tool_result" and isinstance(inner, list):
        out = {**out, "content": [_unmarked(b) for b in inner]}
    return out


def _unmarked_list(items: Any) -> Any:
    return [_unmarked(item) for item in items] if isinstance(items, list) else items


def without_cache_control(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """``body`` without its prompt-caching markers: the top-level ``cache_control`` and those on
    tools, system blocks and message content blocks (where the API reads them, and nowhere
    else: a tool's input schema may well have a property of that name). A copy where anything
    was removed; ``body`` itself is never changed."""
    out = {k: v for k, v in body.items() if k != "cache_control"}
    for key in ("tools", "system"):
        if key in out:
            out[key] = _unmarked_list(out[key])
    messages = out.get("messages")
    if isinstance(messages, list):
        out["messages"] = [
            {**m, "content": _unmarked_list(m["content"])} if isinstance(m, Mapping) and isinstance(m.get("content"), list) else m
            for m in messages
        ]
    return out
