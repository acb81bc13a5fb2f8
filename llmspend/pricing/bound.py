"""The most a call can cost, known before it is sent: what a budget reserves.

Input is the local token estimate plus a safety margin (a tokenizer count is an estimate: the
provider's own count can be a few percent higher); output is the request's own limit
(``max_completion_tokens``, ``max_tokens``, ``max_output_tokens``) or, without one, the model's
output limit from the price table, times the number of choices asked for. Every token is priced
at the dearest rate it could be billed at: long-context rates when the input could cross the
threshold, the requested service tier's rates, cache-write rates when the request asks the
provider to write its cache, the reasoning rate where it is higher than output, and the row's
factor for the requested ``speed`` (Anthropic's fast mode: a fast request may be served fast,
so it is bounded at that price; a speed the row has no factor for has no bound) times its
factor for the requested ``inference_geo`` (Anthropic's US-only inference). Server-side
tools the request enables add the most calls it allows them (Anthropic's ``max_uses``, OpenAI's
``max_tool_calls``) at the dearest of their fees; a tool with a fee and no such limit, or with
no known fee, leaves the call without a bound. What the tools bring into the context (search
results, fetched pages) is billed as input tokens the request cannot show: the bound leaves
those out.

    >>> from llmspend.pricing.table import ModelPrice
    >>> row = ModelPrice("m", "p", input=1.0, output=4.0, max_output_tokens=1000)
    >>> from llmspend.providers.base import Call
    >>> call = Call("p", "chat", "chat.completions", "m", False, "h", 443, body={"max_tokens": 100})
    >>> max_call_cost(call, row, 1000, input_margin=0.1).usd   # 1100 in at $1/M + 100 out at $4/M
    0.0015

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..providers.base import Call, ToolCallLimit
from .cost import speed_multiplier, tier_rates
from .table import ModelPrice

__all__ = ["CostBound", "max_call_cost", "output_limit"]

_PER_TOKEN = 1e-6
# Request fields that cap output tokens, by API: chat (new, old), Responses API and Anthropic.
_OUTPUT_LIMITS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


@dataclass(frozen=True)
class CostBound:
    """The most a call can cost (``usd``), or ``None`` with the ``reason`` it cannot be known."""

    usd: float | None
    input_tokens: int = 0
    output_tokens: int = 0
    reason: str = ""


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def output_limit(body: Mapping[str, Any]) -> int | None:
    """The output-token cap a request body sets for each choice, if any."""
    for key in _OUTPUT_LIMITS:
        value = _count(body.get(key))
        if value is not None:
            return value
    return None


def max_call_cost(
    call: Call,
    row: ModelPrice | None,
    estimated_input_tokens: int,
    *,
    input_margin: float,
    writes_cache: bool = False,
    tool_limits: tuple[ToolCallLimit, ...] = (),
) -> CostBound:
    """The most ``call`` can cost at ``row``'s prices (see the module docstring).

    ``estimated_input_tokens`` is the local count; it is raised by ``input_margin`` (0.1 =
    10%). ``writes_cache``: the request asks the provider to write its prompt cache (Anthropic's
    ``cache_control``), so input may be billed at the cache-write rate. ``tool_limits``: the
    server-side tools the request enables (the adapter's ``tool_call_limits``).
    """
    if row is None:
        return CostBound(None, reason=f"no price for model {call.model!r}")
    body = call.body if isinstance(call.body, Mapping) else {}
    input_tokens = math.ceil(estimated_input_tokens * (1.0 + input_margin))
    choices = max([1, *(n for n in (_count(body.get("n")), _count(body.get("best_of"))) if n is not None)])
    if call.operation == "embeddings":
        per_choice = 0
    else:
        limit = output_limit(body)
        if limit is None:
            limit = row.max_output_tokens
        if limit is None:
            return CostBound(
                None,
                input_tokens,
                reason=f"the request sets no max_tokens and the price table has no output limit for {row.model!r}",
            )
        per_choice = limit
    output_tokens = per_choice * choices

    speed = body.get("speed")
    speed_factor = speed_multiplier(row, speed if isinstance(speed, str) else None)
    if speed_factor is None:
        return CostBound(None, input_tokens, output_tokens,
                         reason=f"the price table has no factor for {row.model!r} at speed {speed!r} (speed_multipliers)")
    geo = body.get("inference_geo")
    # stacks with speed, as in the bill (a geography set for the whole workspace is not in the
    # request: the bound cannot see it)
    token_factor = speed_factor * (row.geo_multipliers.get(geo, 1.0) if isinstance(geo, str) else 1.0)

    input_rate, output_rate = row.input, row.output
    write_rates = [row.cache_write, row.cache_write_1h]
    long_context = row.long_context
    if long_context is not None and input_tokens > long_context.threshold:
        input_rate, output_rate = long_context.input, long_context.output
        write_rates += [long_context.cache_write, long_context.cache_write_1h]
    tier_name = body.get("service_tier")
    tier = tier_rates(row, tier_name) if isinstance(tier_name, str) else None
    if tier:
        input_rate = max(input_rate, tier.get("input", input_rate))
        output_rate = max(output_rate, tier.get("output", output_rate))
    if writes_cache:
        input_rate = max([input_rate, *(rate for rate in write_rates if rate is not None)])
    if row.reasoning is not None:
        output_rate = max(output_rate, row.reasoning)
    tools_usd = 0.0
    for allowed in tool_limits:
        fees = []
        for tool in allowed.tools:
            fee = row.tool_fees.get(tool)
            if fee is None:
                return CostBound(None, input_tokens, output_tokens,
                                 reason=f"the request enables the provider's {tool!r} tool and the price table has no "
                                        f"fee per call for it with {row.model!r} (tool_fees)")
            fees.append(fee)
        dearest = max(fees, default=0.0)
        if not dearest:
            continue  # billed nothing beyond tokens, however often it is called
        if allowed.max_calls is None:
            names = ", ".join(map(repr, allowed.tools)) + (" tool" if len(allowed.tools) == 1 else " tools")
            return CostBound(None, input_tokens, output_tokens,
                             reason=f"the request enables the provider's {names}, billed per call, and sets no limit "
                                    "on their calls (Anthropic: the tool's max_uses; OpenAI Responses: max_tool_calls)")
        tools_usd += allowed.max_calls * dearest
    usd = (input_tokens * input_rate + output_tokens * output_rate) * token_factor * _PER_TOKEN + row.per_request + tools_usd
    return CostBound(usd, input_tokens, output_tokens)
