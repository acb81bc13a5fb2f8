"""Anthropic's ``usage`` object read into llmspend's :class:`~llmspend.providers.base.Usage`.

Anthropic reports input in three parts that do not overlap: ``input_tokens`` (uncached),
``cache_read_input_tokens`` and ``cache_creation_input_tokens``, the last split by lifetime in
``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``. The OpenTelemetry
conventions (and llmspend's pricing) want ``input_tokens`` to be *all* input, so the three are
added here, once; the pricing rules then charge each part at its own rate and nothing twice.
Peers that add the cache write to the input and *also* charge it at the write rate bill it twice.

The server tool calls ``usage.server_tool_use`` counts (web search, billed per search on top of
the tokens) are read here too, by llmspend's tool names, for their fees per call; and the server
tools a request enables, with their ``max_uses``, for a budget's bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmspend.providers.base import NO_TOOL_CALLS, Call, ToolCallLimit, Usage, token_count, usage_count

__all__ = ["usage_from_json", "usage_attributes", "merge_usage", "usage_string", "server_tool_calls",
           "server_tool_blocks", "tool_call_limits"]

#: request tool types with which code execution is free (platform.claude.com/docs/en/about-claude/pricing,
#: "Code execution tool": "When web_search_20260209 or web_fetch_20260209 is included in your API
#: request, there are no additional charges for code execution tool calls"); other versions,
#: later ones included, are not taken to waive it until the page says so
_FREE_CODE_EXECUTION_WITH = frozenset({"web_search_20260209", "web_fetch_20260209"})
CODE_EXECUTION = "code_execution"
# the server tools a request names by type (``web_search_20250305``), by llmspend's tool name
_SERVER_TOOL_TYPES = ("web_search", "web_fetch", CODE_EXECUTION)
# what a ``server_tool_use`` block's name says ran, by llmspend's tool name
_BLOCK_TOOLS = {"web_search": "web_search", "web_fetch": "web_fetch", CODE_EXECUTION: CODE_EXECUTION,
                "bash_code_execution": CODE_EXECUTION, "text_editor_code_execution": CODE_EXECUTION}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_json(usage: Mapping[str, Any], *, estimated: bool = False) -> Usage:
    """The :class:`Usage` that an Anthropic ``usage`` object reports.

    Cache writes without a lifetime breakdown (older API versions, or a proxy that drops it)
    are taken as 5-minute writes, the API's default lifetime. The ``compaction`` entries of
    ``usage.iterations`` (context management, beta) are added: the API leaves a compaction's
    tokens out of the top-level counts, and bills them, at the same model's rates.

    Counts written as whole floats (``900.0``, by a gateway that keeps numbers as doubles) are
    read; a count that is not one (text, a fraction, below 0) raises ``ResponseParseError``.
    """
    uncached, read, write, one_hour, output = _counts(usage)
    iterations = usage.get("iterations")
    for entry in iterations if isinstance(iterations, list) else ():
        if isinstance(entry, Mapping) and entry.get("type") == "compaction":
            more = _counts(entry)
            uncached, read, write, one_hour, output = (a + b for a, b in zip((uncached, read, write, one_hour, output), more))
    details = usage.get("output_tokens_details")
    thinking = usage_count(details, "thinking_tokens") if isinstance(details, Mapping) else 0
    return Usage(
        input_tokens=uncached + read + write,
        output_tokens=output,
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=one_hour,
        reasoning_tokens=thinking,
        estimated=estimated,
    )


def _counts(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """(uncached input, cache reads, cache writes, of which 1-hour, output) of one usage object."""
    breakdown = usage.get("cache_creation")
    five_min = one_hour = 0
    if isinstance(breakdown, Mapping):
        five_min = usage_count(breakdown, "ephemeral_5m_input_tokens")
        one_hour = usage_count(breakdown, "ephemeral_1h_input_tokens")
    written = usage.get("cache_creation_input_tokens")
    # The total is the authority; the breakdown only says which part had which lifetime.
    write = usage_count(usage, "cache_creation_input_tokens") if written is not None else five_min + one_hour
    return (usage_count(usage, "input_tokens"), usage_count(usage, "cache_read_input_tokens"), write,
            min(one_hour, write), usage_count(usage, "output_tokens"))


def usage_attributes(usage: Any) -> dict[str, str | int]:
    """Span attributes for what ``usage`` says beyond token counts: server-side tool requests
    (web search, which Anthropic bills per search on top of the tokens, web fetch, code
    execution; priced from :func:`server_tool_calls`) and the
    service tier, where inference ran and which speed served the call (fast mode). Names follow
    the anthropic SDK's own spans."""
    attributes: dict[str, str | int] = {}
    if not isinstance(usage, Mapping):
        return attributes
    server = usage.get("server_tool_use")
    if isinstance(server, Mapping):
        for key, value in server.items():
            if _int(value):
                attributes[f"anthropic.usage.server_tool_use.{key}"] = value
    for key in ("service_tier", "inference_geo", "speed"):
        value = usage_string(usage, key)
        if value is not None:
            attributes[f"anthropic.response.{key}"] = value
    return attributes


def _tool_types(body: Any) -> list[str]:
    tools = body.get("tools") if isinstance(body, Mapping) else None
    return [t["type"] for t in tools if isinstance(t, Mapping) and isinstance(t.get("type"), str)] \
        if isinstance(tools, list) else []


def _free(tool: str, body: Any) -> bool:
    """Whether the request ``body`` makes ``tool``'s calls free (code execution beside the
    web search and fetch tools that filter their results with it)."""
    return tool == CODE_EXECUTION and not _FREE_CODE_EXECUTION_WITH.isdisjoint(_tool_types(body))


def server_tool_calls(usage: Any, body: Any) -> Mapping[str, int | None]:
    """The server tool calls ``usage.server_tool_use`` counts (``web_search_requests``: 2 is
    ``{"web_search": 2}``), by llmspend's tool name; ``body`` is the request (see :func:`_free`).
    Every counter is taken, so a tool Anthropic bills in the future is not priced as free."""
    server = usage.get("server_tool_use") if isinstance(usage, Mapping) else None
    if not isinstance(server, Mapping):
        return NO_TOOL_CALLS
    counts: dict[str, int | None] = {}
    for key, value in server.items():
        if value is None or value == 0 or not isinstance(key, str) or not key.endswith("_requests"):
            continue
        tool = key[: -len("_requests")]
        if not _free(tool, body):
            counts[tool] = token_count(value)  # None for a count that is not one: unknown, not 0
    return counts or NO_TOOL_CALLS


def server_tool_blocks(content: Any, body: Any) -> Mapping[str, int | None]:
    """The server tool calls an answer's ``server_tool_use`` blocks show: what a stream cut
    short before its final usage did call (an estimate: a call that failed is not billed)."""
    counts: dict[str, int | None] = {}
    for block in content if isinstance(content, list) else ():
        if isinstance(block, Mapping) and block.get("type") == "server_tool_use":
            tool = _BLOCK_TOOLS.get(str(block.get("name")))
            if tool is not None and not _free(tool, body):
                counts[tool] = (counts.get(tool) or 0) + 1
    return counts or NO_TOOL_CALLS


def tool_call_limits(call: Call) -> tuple[ToolCallLimit, ...]:
    """The server tools ``call`` enables, each with its ``max_uses`` (None: no limit)."""
    limits = []
    tools = call.body.get("tools") if isinstance(call.body, Mapping) else None
    for tool in tools if isinstance(tools, list) else ():
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        name = next((n for n in _SERVER_TOOL_TYPES if isinstance(kind, str) and kind.startswith(n + "_")), None)
        if name is None or _free(name, call.body):
            continue
        uses = tool.get("max_uses")
        limits.append(ToolCallLimit((name,), uses if isinstance(uses, int) and not isinstance(uses, bool) and uses >= 0 else None))
    return tuple(limits)


def usage_string(usage: Any, key: str) -> str | None:
    """A text field of ``usage`` (``service_tier``, ``inference_geo``, ``speed``), if it has one."""
    value = usage.get(key) if isinstance(usage, Mapping) else None
    return value if isinstance(value, str) else None


def merge_usage(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the non-null fields of ``update`` (a stream's ``message_delta`` usage,
    whose counts are cumulative and so replace, never add to, those of ``message_start``)."""
    merged = dict(base)
    for key, value in update.items():
        if value is not None:
            merged[key] = value
    return merged
