"""Sharing one merged call's usage among the callers it answered, in whole tokens.

The shared part of the prompt (system message, few-shot examples, the batching instruction)
is split evenly; each question's own tokens and its answer's tokens go to its caller. Shares
are integers and add up *exactly* to what the provider reported (largest-remainder rounding),
so the callers' costs add up to the merged call's cost. Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..providers.base import Usage

__all__ = ["largest_remainder", "split_shared", "apportion_usage"]


def largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split into integers in proportion to ``weights`` that add up to ``total``
    exactly (Hamilton's method: floor every quota, then give the units left to the largest
    remainders, ties to the earlier). All-zero weights split evenly."""
    if not weights:
        raise ValueError("no one to share among")
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("total and weights must not be negative")
    weight_sum = float(sum(weights))
    if weight_sum <= 0:
        weights, weight_sum = [1.0] * len(weights), float(len(weights))
    quotas = [total * w / weight_sum for w in weights]
    shares = [int(q) for q in quotas]
    left = total - sum(shares)
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - shares[i]), i))
    for i in by_remainder[:left]:
        shares[i] += 1
    return shares


def split_shared(total: int, own: Sequence[int]) -> list[int]:
    """``total`` split so that each party pays its ``own`` tokens plus an even part of the
    rest. When the counts of ``own`` (local estimates) exceed ``total``, it is split in
    proportion to them instead."""
    shared = total - sum(own)
    if shared < 0:
        return largest_remainder(total, own)
    return largest_remainder(total, [shared / len(own) + o for o in own])


def apportion_usage(usage: Usage, own_input: Sequence[int], own_output: Sequence[int]) -> list[Usage]:
    """One :class:`Usage` per party. Input and output are split with :func:`split_shared`;
    cached input and reasoning tokens in proportion to each party's input and output share
    (so no share has more cached tokens than input tokens)."""
    if len(own_input) != len(own_output):
        raise ValueError("own_input and own_output must have one entry per party")
    inputs = split_shared(usage.input_tokens, own_input)
    outputs = split_shared(usage.output_tokens, own_output)
    cached = largest_remainder(usage.cache_read_tokens, inputs)
    written = largest_remainder(usage.cache_write_tokens, inputs)
    written_1h = largest_remainder(usage.cache_write_1h_tokens, written)
    reasoning = largest_remainder(usage.reasoning_tokens, outputs)
    return [
        Usage(
            input_tokens=inputs[i],
            output_tokens=outputs[i],
            cache_read_tokens=cached[i],
            cache_write_tokens=written[i],
            cache_write_1h_tokens=written_1h[i],
            reasoning_tokens=reasoning[i],
            estimated=usage.estimated,
        )
        for i in range(len(inputs))
    ]
