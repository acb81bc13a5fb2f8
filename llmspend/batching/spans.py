"""The batch stage's telemetry: the merged request's own span and what goes on the callers'.

The merged request gets a CLIENT span ``batch {operation} {model}`` of its own, linked to every
caller's span (and each caller's back to it), a child of the callers' common parent when they
have one, else a root: it belongs to no single caller. Its totals go under ``llmspend.batch.*``
rather than ``gen_ai.usage.*``: the callers' spans carry the shares, and a backend that adds up
``gen_ai.usage.cost`` over spans must count each token once. Each caller's span gets its place
in the batch, why its question was asked again, and what it saved against asking alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanKind, Status, StatusCode, Tracer

from ..context import CallContext
from ..pricing.table import PriceTable
from ..providers.base import Call, Outcome, Usage
from ..telemetry import attributes as A
from ..telemetry.recorder import end_span, price_call, start_span
from ..tokens import count_chat_messages

__all__ = [
    "SIZE", "INDEX", "RESENT", "SAVED_INPUT_TOKENS", "MERGED_INPUT_TOKENS", "MERGED_OUTPUT_TOKENS",
    "MERGED_CACHED_TOKENS", "MERGED_COST_USD", "ANSWERED", "NOT_MERGED", "MERGED", "UNCLAIMED",
    "start_merged_span", "end_merged_span", "end_failed", "link", "note_saving",
]

# Span attributes, on the callers' spans and the merged request's.
SIZE = "llmspend.batch.size"
INDEX = "llmspend.batch.index"
RESENT = "llmspend.batch.resent"
SAVED_INPUT_TOKENS = "llmspend.batch.saved_input_tokens"
MERGED_INPUT_TOKENS = "llmspend.batch.input_tokens"
MERGED_OUTPUT_TOKENS = "llmspend.batch.output_tokens"
MERGED_CACHED_TOKENS = "llmspend.batch.cache_read.input_tokens"
MERGED_COST_USD = "llmspend.batch.cost_usd"
#: on a merged request whose every caller gave up before it answered: no caller's span carries
#: a share, so this span carries the cost (as ``llmspend.cost.usd``) and reports count it
UNCLAIMED = "llmspend.batch.unclaimed"
ANSWERED = "llmspend.batch.answered"
#: why a call that could have been merged was sent on its own ("budget": held to a limit)
NOT_MERGED = "llmspend.batch.not_merged"
#: on the merged request's span: its tokens and cost are on the callers' spans (shares), so
#: a reader that counts calls (llmspend report) leaves it out
MERGED = "llmspend.batch.merged"


def start_merged_span(tracer: Tracer, call: Call, callers: Sequence[Span | None]) -> Span:
    """The merged request's span, for the first caller's ``call`` asked with ``callers``'
    questions (their spans, None where a caller has none)."""
    links = [Link(s.get_span_context()) for s in callers if s is not None and s.get_span_context().is_valid]
    # Child of the callers' common parent when they have one (say, a request handler
    # that gathered them), else a root span: it belongs to no single caller.
    parents = [getattr(s, "parent", None) for s in callers]
    ids = {(p.trace_id, p.span_id) if p is not None else None for p in parents}
    parent = parents[0] if len(ids) == 1 else None
    ctx = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else otel_context.Context()
    attributes: dict[str, Any] = {
        A.OPERATION_NAME: call.operation,
        A.PROVIDER_NAME: call.provider,
        A.SERVER_ADDRESS: call.server_address,
        A.SERVER_PORT: call.server_port,
        SIZE: len(callers),
        MERGED: True,
    }
    if call.model:
        attributes[A.REQUEST_MODEL] = call.model
    return start_span(tracer, f"batch {call.span_name}", context=ctx, kind=SpanKind.CLIENT,
                      attributes=attributes, links=links)


def end_merged_span(
    span: Span,
    prices: PriceTable,
    *,
    answers: Mapping[int, str],
    failures: Mapping[int, str],
    usage: Usage | None,
    call: Call | None,
    outcome: Outcome | None,
    data: Mapping[str, Any],
    unclaimed: bool = False,
) -> None:
    """Record what the merged request answered, asked again and cost, and end its span.
    ``unclaimed``: every caller gave up, so the cost is this span's to report (it was paid)."""
    span.set_attribute(ANSWERED, len(answers))
    if unclaimed:
        span.set_attribute(UNCLAIMED, True)
    if isinstance(data.get("id"), str):
        span.set_attribute(A.RESPONSE_ID, data["id"])
    for index, kind in sorted(failures.items()):
        span.add_event("llmspend.batch.resend", {INDEX: index, "llmspend.batch.reason": kind})
    if usage is not None:
        span.set_attribute(MERGED_INPUT_TOKENS, usage.input_tokens)
        span.set_attribute(MERGED_OUTPUT_TOKENS, usage.output_tokens)
        span.set_attribute(MERGED_CACHED_TOKENS, usage.cache_read_tokens)
        if call is not None and outcome is not None:
            cost = price_call(prices, call, outcome, usage)
            if cost.total_usd is not None:
                span.set_attribute(MERGED_COST_USD, cost.total_usd)
                if unclaimed:
                    span.set_attribute(A.COST_USD, cost.total_usd)
            if unclaimed:
                span.set_attribute(A.COST_STATUS, cost.status)
    elif unclaimed:
        span.set_attribute(A.COST_STATUS, "no_usage")  # paid, at a cost nobody can know
    end_span(span)


def end_failed(span: Span, error: str) -> None:
    """End the merged request's span as failed (its callers then send their own calls)."""
    span.set_attribute(A.ERROR_TYPE, error)
    span.set_status(Status(StatusCode.ERROR, error))
    end_span(span)


def link(caller: Span | None, merged: Span) -> None:
    """Link the caller's span back to the merged request's (both ways, so either finds the other)."""
    if caller is None:
        return
    try:
        caller.add_link(merged.get_span_context())
    except Exception:  # pragma: no cover - an API without add_link: the merged span's links remain
        pass


def note_saving(
    context: CallContext,
    call: Call,
    prices: PriceTable,
    stage: str,
    *,
    merged_estimate: int,
    usage: Usage | None,
    share: Usage | None,
    outcome: Outcome | None,
) -> None:
    """What the caller of ``call`` saved against asking alone (an estimate: the input it would
    have paid, counted locally and scaled to the provider's count of the merged prompt, whose
    local count is ``merged_estimate``), recorded on its ``context`` as ``stage``'s saving."""
    if usage is None or share is None or outcome is None or not usage.input_tokens:
        return
    alone = round(count_chat_messages(call.body["messages"], call.model) * usage.input_tokens / max(1, merged_estimate))
    cached_ratio = usage.cache_read_tokens / usage.input_tokens
    alone_usage = replace(share, input_tokens=alone, cache_read_tokens=round(alone * cached_ratio),
                          cache_write_tokens=0, cache_write_1h_tokens=0, estimated=True)
    context.set_attribute(SAVED_INPUT_TOKENS, alone - share.input_tokens)
    alone_cost = price_call(prices, call, outcome, alone_usage).total_usd
    share_cost = price_call(prices, call, outcome, share).total_usd
    if alone_cost is not None and share_cost is not None and alone_cost > share_cost:
        context.add_saving(stage, alone_cost - share_cost)
