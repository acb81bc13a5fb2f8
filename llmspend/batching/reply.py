"""A merged request's reply, read back into each caller's own response.

The batch stage (:mod:`llmspend.stages.batch`) sends the merged request and the questions it
asks again; what it gets back is read here: the merged chat completion's answer text, its
usage as the provider's adapter reads it, each caller's share of that usage, and the plain
chat completion each caller receives (its own answer with its share, or its own resent
call's response with its share of the merged call added). Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .._http import Headers, Request, Response, dumps
from ..pricing.table import PriceTable
from ..providers.base import Call, Outcome, Usage
from ..telemetry.recorder import REPORTS_COST_USD, price_call
from ..tokens import count_text
from .apportion import apportion_usage
from .merge import COST_KEYS, add_usage, answer_completion, question_line, scale_cost

__all__ = [
    "read_reply", "read_outcome", "usage_body", "caller_shares", "reported_cost_shares",
    "answer_response", "resent_response", "deliver",
]

_T = TypeVar("_T")


def read_reply(content: bytes) -> tuple[Mapping[str, Any], str, str | None] | None:
    """``(body, answer text, finish reason)`` of a chat completion, or None if it is not one."""
    try:
        data = json.loads(content)
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(data, Mapping) or not isinstance(text, str):
        return None
    reason = choice.get("finish_reason")
    return data, text, reason if isinstance(reason, str) else None


def read_outcome(request: Request, call: Call | None, content: bytes) -> Outcome | None:
    """The merged reply as ``request``'s adapter reads it; None when it cannot (the merged
    call then has no usage to share, and its callers' spans price nothing they were not sent)."""
    if call is None or request.adapter is None:
        return None
    try:
        return request.adapter.parse_response(call, content)
    except Exception:  # any shape the adapter did not foresee: no usage to share, never a resend
        return None


def usage_body(result: object) -> Mapping[str, Any] | None:
    """A resent call's body when it is a successful chat completion with usage."""
    if not isinstance(result, Response) or not result.is_success or result.content is None:
        return None
    try:
        body = json.loads(result.content)
    except ValueError:
        return None
    if isinstance(body, Mapping) and isinstance(body.get("usage"), Mapping):
        return body
    return None


def caller_shares(
    usage: Usage | None,
    questions: Sequence[str],
    answers: Mapping[int, str],
    resent: Mapping[int, object],
    model: str | None,
) -> dict[int, Usage | None]:
    """Each caller's share of the merged call's ``usage``, by 1-based index, for the callers
    that end with a good answer: one the merged reply held (``answers``) or a successful
    resent call with usage (``resent``); a caller left with neither has no response to carry
    a share. Each gets an even part of the shared prompt plus its own question's and answer's
    tokens (:func:`~.apportion.apportion_usage`). Shares are None when no usage was read."""
    carriers = [i for i in range(1, len(questions) + 1) if i in answers or usage_body(resent.get(i)) is not None]
    shares: dict[int, Usage | None] = dict.fromkeys(carriers)
    if usage is not None and carriers:
        own_in = [count_text(question_line(i, questions[i - 1]), model) for i in carriers]
        own_out = [count_text(f"A[{i}]: {answers[i]}\n", model) if i in answers else 0 for i in carriers]
        shares.update(zip(carriers, apportion_usage(usage, own_in, own_out)))
    return shares


def reported_cost_shares(
    data: Mapping[str, Any],
    call: Call | None,
    outcome: Outcome | None,
    shares: Mapping[int, Usage | None],
    prices: PriceTable,
) -> dict[int, dict[str, Any]]:
    """Each caller's part of the cost the provider reported for the merged call (OpenRouter's
    ``usage.cost``, which the telemetry stage takes as the bill), as usage fields in the
    provider's shape. The parts add up to the bill: in proportion to what each share costs at
    the table's prices, or, for a model the table does not price, to its tokens. Empty when
    the provider reported no cost to be taken as the bill."""
    usage = data.get("usage")
    carriers = {i: s for i, s in shares.items() if s is not None}
    if (call is None or outcome is None or outcome.reported_cost_usd is None or call.provider not in REPORTS_COST_USD
            or not isinstance(usage, Mapping) or not carriers):
        return {}
    fields = {k: usage[k] for k in COST_KEYS if k in usage}
    priced = any(prices.lookup(m, provider=call.provider) for m in (outcome.response_model, call.model) if m)
    costs = [price_call(prices, call, outcome, s).total_usd for s in carriers.values()] if priced else []
    weights: list[float] = [c for c in costs if c is not None]
    if len(weights) != len(carriers) or sum(weights) <= 0:
        weights = [float(s.input_tokens + s.output_tokens) for s in carriers.values()]
    total = sum(weights)
    return {i: scale_cost(fields, w / total if total else 1 / len(carriers)) for i, w in zip(carriers, weights)}


def answer_response(merged: Response, data: Mapping[str, Any], index: int, answer: str,
                    share: Usage | None, model: str | None, cost: Mapping[str, Any] | None = None) -> Response:
    """The response a caller whose answer the merged reply held gets: a plain chat completion."""
    reply = answer_completion(data, index, answer, share, model, cost)
    return Response(merged.status_code, _json_headers(merged), content=dumps(reply))


def resent_response(result: Response, share: Usage | None, cost: Mapping[str, Any] | None = None) -> Response:
    """A resent call's response with the caller's share of the merged call (and of a cost the
    provider reported for it) added to its usage (the caller paid for both), or unchanged when
    either has no usage."""
    body = usage_body(result)
    if body is None or share is None:
        return result
    return Response(result.status_code, _json_headers(result), content=dumps(add_usage(body, share, cost)))


def deliver(future: asyncio.Future[_T], result: _T) -> None:
    """Hand a waiting caller its result, unless it has given up meanwhile."""
    if not future.done():
        future.set_result(result)


def _json_headers(response: Response) -> Headers:
    # The body is rewritten: its old length and encoding no longer hold.
    return response.headers.without_body_framing().set("content-type", "application/json")
