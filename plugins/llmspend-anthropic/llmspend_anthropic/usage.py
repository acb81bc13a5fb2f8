"""Anthropic's ``usage`` object read into llmspend's :class:`~llmspend.providers.base.Usage`.

Anthropic reports input in three parts that do not overlap: ``input_tokens`` (uncached),
``cache_read_input_tokens`` and ``cache_creation_input_tokens``, the last split by lifetime in
``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``. The OpenTelemetry
conventions (and llmspend's pricing) want ``input_tokens`` to be *all* input, so the three are
added here, once; the pricing rules then charge each part at its own rate and nothing twice.
Peers that add the cache write to the input and *also* charge it at the write rate bill it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmspend.providers.base import Usage

__all__ = ["usage_from_json", "usage_attributes", "merge_usage", "usage_string"]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_json(usage: Mapping[str, Any], *, estimated: bool = False) -> Usage:
    """The :class:`Usage` that an Anthropic ``usage`` object reports.

    Cache writes without a lifetime breakdown (older API versions, or a proxy that drops it)
    are taken as 5-minute writes, the API's default lifetime. The ``compaction`` entries of
    ``usage.iterations`` (context management, beta) are added: the API leaves a compaction's
    tokens out of the top-level counts, and bills them, at the same model's rates.
    """
    uncached, read, write, one_hour, output = _counts(usage)
    iterations = usage.get("iterations")
    for entry in iterations if isinstance(iterations, list) else ():
        if isinstance(entry, Mapping) and entry.get("type") == "compaction":
            more = _counts(entry)
            uncached, read, write, one_hour, output = (a + b for a, b in zip((uncached, read, write, one_hour, output), more))
    details = usage.get("output_tokens_details")
    thinking = _int(details.get("thinking_tokens")) if isinstance(details, Mapping) else 0
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
        five_min = _int(breakdown.get("ephemeral_5m_input_tokens"))
        one_hour = _int(breakdown.get("ephemeral_1h_input_tokens"))
    written = usage.get("cache_creation_input_tokens")
    # The total is the authority; the breakdown only says which part had which lifetime.
    write = _int(written) if written is not None else five_min + one_hour
    return (_int(usage.get("input_tokens")), _int(usage.get("cache_read_input_tokens")), write,
            min(one_hour, write), _int(usage.get("output_tokens")))


def usage_attributes(usage: Any) -> dict[str, str | int]:
    """Span attributes for what ``usage`` says beyond token counts: server-side tool requests
    (web search and fetch, which Anthropic bills per request, outside the token price) and the
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
