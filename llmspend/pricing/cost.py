"""Pricing a call: usage times prices, each kind of token at its own rate.

Pure functions, no I/O. The rules that peers have got wrong are spelled out here:

- ``Usage.input_tokens`` already includes cached reads and cache writes, so uncached input is
  what is left after taking both out; cached tokens are never charged twice.
- Cache writes are charged at the write rate *instead of* the input rate, not on top of it;
  one-hour writes at their own rate.
- Reasoning tokens are part of the output count; they are charged at the reasoning rate where
  one exists, otherwise as output, and never counted a second time.
- A call served from llmspend's cache costs nothing; what it would have cost is the saving.
- An unknown model or a call without usage gets no number (``total_usd is None``), never $0;
  so does a call served at a speed (Anthropic's fast mode) whose factor the row does not give:
  the standard price would be a fraction of the bill.
- Server-side tools the provider bills per call (web search, file search) are charged at the
  row's ``tool_fees``, once per call, on top of the tokens and at the same fee whatever the
  batch, tier, speed or geography. A call that used a tool the row has no fee for, or that
  does not say how many calls it made, gets no number either (``unknown_tool_fee``): the
  tokens alone would be a figure short of the bill, reported as exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .._frozen import quick_init
from ..providers.base import Usage
from .table import ModelPrice

__all__ = ["Cost", "price_usage", "speed_multiplier", "tier_rates", "tool_fees_usd", "unknown_cost", "unpriced_tool"]

_PER_TOKEN = 1e-6  # table prices are per million tokens

# llmspend.cost.status values
OK = "ok"
ESTIMATED = "estimated"
UNKNOWN_MODEL = "unknown_model"
NO_USAGE = "no_usage"
UNKNOWN_SPEED = "unknown_speed"
UNKNOWN_TOOL_FEE = "unknown_tool_fee"

#: another name a response may give a row's tier: OpenAI renamed priority processing "fast"
#: and takes ``service_tier: "fast"`` and ``"priority"`` interchangeably (the Vercel AI SDK's
#: @ai-sdk/openai 3.0.93 changelog); a "fast" answer priced at standard would be a fraction of
#: the bill
_TIER_ALIASES = {"fast": "priority"}

#: the speed every row's prices are for (Anthropic's ``usage.speed`` when fast mode is off or
#: fell back)
STANDARD_SPEED = "standard"


@quick_init  # built on every call: see llmspend._frozen
@dataclass(frozen=True)
class Cost:
    """A call's cost in USD, by part. ``total_usd is None`` when it cannot be known."""

    total_usd: float | None
    input_usd: float = 0.0
    cache_read_usd: float = 0.0
    cache_write_usd: float = 0.0
    output_usd: float = 0.0
    request_usd: float = 0.0
    #: server-side tool calls, at the row's fee per call
    tools_usd: float = 0.0
    status: str = OK
    estimated: bool = False
    batch: bool = False
    #: the provider's own figure for the call (``Outcome.reported_cost_usd``): a total without parts
    reported: bool = False

    @property
    def known(self) -> bool:
        return self.total_usd is not None


def unknown_cost(status: str) -> Cost:
    return Cost(total_usd=None, status=status)


def tier_rates(row: ModelPrice, service_tier: str | None) -> Mapping[str, float] | None:
    """The rates ``row`` lists for ``service_tier`` (by its name or an alias), if any."""
    if not service_tier:
        return None
    return row.tiers.get(service_tier) or row.tiers.get(_TIER_ALIASES.get(service_tier, ""))


def speed_multiplier(row: ModelPrice, speed: str | None) -> float | None:
    """What ``row``'s prices are multiplied by at ``speed``: 1 at the standard speed (or none
    said), the row's factor otherwise, ``None`` when the row has no factor for that speed."""
    if speed is None:
        return 1.0
    return row.speed_multipliers.get(speed, 1.0 if speed == STANDARD_SPEED else None)


def unpriced_tool(row: ModelPrice, tool_calls: Mapping[str, int | None]) -> str | None:
    """The first tool ``tool_calls`` used whose calls cannot be priced at ``row``'s fees (none
    listed, or a count the answer did not give), if any."""
    for tool, count in tool_calls.items():
        if count is None or (count and tool not in row.tool_fees):
            return tool
    return None


def tool_fees_usd(row: ModelPrice, tool_calls: Mapping[str, int | None]) -> float | None:
    """What ``tool_calls`` cost at ``row``'s fees per call; None when one cannot be priced."""
    if unpriced_tool(row, tool_calls) is not None:
        return None
    return sum(count * row.tool_fees[tool] for tool, count in tool_calls.items() if count)


def price_usage(usage: Usage, row: ModelPrice, *, batch: bool = False, service_tier: str | None = None,
                inference_geo: str | None = None, speed: str | None = None,
                tool_calls: Mapping[str, int | None] | None = None) -> Cost:
    """What ``usage`` costs at ``row``'s prices.

    ``batch`` applies the provider's batch prices where the row has them (the Batch APIs of
    OpenAI and Anthropic charge half); ``service_tier`` applies a tier's prices (``flex``,
    ``priority``) where the row lists that tier; ``inference_geo`` (where the response says
    inference ran) applies the row's factor for that geography to every token price; ``speed``
    (which speed the response says served the call) the row's factor for that speed, on top of
    the others. A speed other than ``"standard"`` that the row has no factor for gives an
    unknown cost (status ``unknown_speed``). ``tool_calls`` (the answer's server-side tool
    calls, by tool) are charged at the row's ``tool_fees``; one it cannot price gives an
    unknown cost (status ``unknown_tool_fee``).
    """
    speed_factor = speed_multiplier(row, speed)
    if speed_factor is None:
        return unknown_cost(UNKNOWN_SPEED)
    tools_usd = tool_fees_usd(row, tool_calls) if tool_calls else 0.0
    if tools_usd is None:
        return unknown_cost(UNKNOWN_TOOL_FEE)
    input_rate, output_rate = row.input, row.output
    read_rate = row.cache_read if row.cache_read is not None else row.input
    write_rate, write_1h_rate = row.cache_write, row.cache_write_1h
    reasoning_rate = row.reasoning if row.reasoning is not None else None

    long_context = row.long_context
    # what the long-context tier multiplies each standard rate by (1: it does not apply)
    long_in = long_out = long_read = 1.0
    if long_context is not None and usage.input_tokens > long_context.threshold:
        # A write costs a fixed multiple of the input rate (Anthropic: 1.25x for 5 minutes, 2x
        # for an hour; OpenAI: 1.25x): a rate the tier does not give scales as input does.
        ratio = long_context.input / row.input if row.input else None
        long_in = ratio if ratio is not None else 1.0
        long_out = long_context.output / row.output if row.output else 1.0
        long_read = long_in
        if long_context.cache_read is not None and row.cache_read:
            long_read = long_context.cache_read / row.cache_read
        input_rate, output_rate = long_context.input, long_context.output
        if long_context.cache_read is not None:
            read_rate = long_context.cache_read
        if long_context.cache_write is not None:
            write_rate = long_context.cache_write
        elif write_rate is not None and ratio is not None:
            write_rate *= ratio
        if long_context.cache_write_1h is not None:
            write_1h_rate = long_context.cache_write_1h
        elif write_1h_rate is not None and ratio is not None:
            write_1h_rate *= ratio
    # no write rate: writes at the input rate that applies (long-context included)
    if write_rate is None:
        write_rate = input_rate
    if write_1h_rate is None:
        write_1h_rate = write_rate

    tier = tier_rates(row, service_tier)
    if tier:
        # A tier's rates are its standard-context rates; above the long-context threshold they
        # rise as the standard ones do (OpenAI: "2x input and 1.5x output ... for standard,
        # batch, and flex"), never falling back to the short-context figure.
        input_rate = tier["input"] * long_in if "input" in tier else input_rate
        output_rate = tier["output"] * long_out if "output" in tier else output_rate
        read_rate = tier["cache_read"] * long_read if "cache_read" in tier else read_rate

    applied_batch = False
    if batch and row.batch_input is not None and row.batch_output is not None:
        # The batch discount scales whatever rates apply to this request (long-context rates
        # included), input side by one factor and output side by the other.
        in_scale = row.batch_input / row.input if row.input else 1.0
        out_scale = row.batch_output / row.output if row.output else 1.0
        input_rate = input_rate * in_scale if row.input else row.batch_input
        output_rate = output_rate * out_scale if row.output else row.batch_output
        read_rate, write_rate, write_1h_rate = read_rate * in_scale, write_rate * in_scale, write_1h_rate * in_scale
        if reasoning_rate is not None:
            reasoning_rate *= out_scale
        applied_batch = True

    # Geography and speed scale every token rate that applies, cache and batch rates included
    # (Anthropic: fast mode "stacks with other pricing modifiers"); never the per-request fee.
    geo = row.geo_multipliers.get(inference_geo) if inference_geo else None
    factor = (geo or 1.0) * speed_factor
    if factor != 1.0:
        input_rate, output_rate, read_rate = input_rate * factor, output_rate * factor, read_rate * factor
        write_rate, write_1h_rate = write_rate * factor, write_1h_rate * factor
        if reasoning_rate is not None:
            reasoning_rate *= factor

    write_5m_tokens = max(0, usage.cache_write_tokens - usage.cache_write_1h_tokens)
    reasoning = min(usage.reasoning_tokens, usage.output_tokens)
    visible_output = usage.output_tokens - reasoning

    input_usd = usage.uncached_input_tokens * input_rate * _PER_TOKEN
    cache_read_usd = usage.cache_read_tokens * read_rate * _PER_TOKEN
    cache_write_usd = (write_5m_tokens * write_rate + usage.cache_write_1h_tokens * write_1h_rate) * _PER_TOKEN
    output_usd = (visible_output * output_rate + reasoning * (reasoning_rate if reasoning_rate is not None else output_rate)) * _PER_TOKEN
    request_usd = row.per_request
    total = input_usd + cache_read_usd + cache_write_usd + output_usd + request_usd + tools_usd
    return Cost(
        total_usd=total,
        input_usd=input_usd,
        cache_read_usd=cache_read_usd,
        cache_write_usd=cache_write_usd,
        output_usd=output_usd,
        request_usd=request_usd,
        tools_usd=tools_usd,
        status=ESTIMATED if usage.estimated else OK,
        estimated=usage.estimated,
        batch=applied_batch,
    )
