"""One provider call's span, cost and metrics, from the request to the end of its body.

The recorder is shared by the sync and async telemetry stage and by stream observers, so the
bookkeeping lives in one place. Everything it does is guarded: a fault in telemetry is logged
and never reaches the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer

from .._redact import error_text
from ..attribution import UNATTRIBUTED, current_attribution
from ..pricing.cost import (NO_USAGE, UNKNOWN_MODEL, UNKNOWN_SPEED, UNKNOWN_TOOL_FEE, Cost, price_usage,
                            unknown_cost, unpriced_tool)
from ..providers.base import Call, Outcome, Usage
from ..tokens import count_text
from . import attributes as A
from .content import content_json, text_output

if TYPE_CHECKING:
    from .._http import Request
    from ..pricing.table import PriceTable
    from ..providers.base import ProviderAdapter
    from .instruments import Instruments

__all__ = ["CallRecorder", "price_call", "usage_or_estimate", "warn_once"]

logger = logging.getLogger("llmspend")

_warned: set[tuple[str, ...]] = set()
_warned_lock = threading.Lock()

def warn_once(key: tuple[str, ...], message: str, *args: object) -> None:
    """Log ``message`` at WARNING the first time ``key`` is seen in this process."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


#: providers whose answers state what the call cost, in US dollars (OpenRouter's credits are
#: dollars; Perplexity's ``usage.cost``). Another server's ``usage.cost`` (a proxy, a local
#: gateway) may be in credits or cents, or an estimate of its own: it is not taken as the bill.
REPORTS_COST_USD = frozenset({"openrouter", "perplexity"})


def price_call(prices: PriceTable, call: Call, outcome: Outcome, usage: Usage, *, batch: bool = False) -> Cost:
    """Price ``usage`` for ``call``: what the provider says it billed when its answer says so,
    else from the table by the response's model first (a dated snapshot may be priced apart
    from its alias), then the requested one. Unknown models get no number."""
    if outcome.reported_cost_usd is not None and usage is outcome.usage and call.provider in REPORTS_COST_USD:
        # A router's price for a model is that of the host it picked, which no table row knows
        # (OpenRouter), and a provider's search fees depend on what it searched (Perplexity).
        # The figure is for the usage it came with: a batch caller's share of it is not.
        return Cost(total_usd=outcome.reported_cost_usd, reported=True)
    row = None
    for model in (outcome.response_model, call.model):
        if model:
            row = prices.lookup(model, provider=call.provider)
            if row is not None:
                break
    if row is None:
        model = call.model or outcome.response_model or "<none>"
        warn_once(
            ("unknown_model", call.provider, model),
            "llmspend: no price for model %r (provider %r); its cost is reported as unknown. "
            "Add it with wrap(..., prices={%r: {'input': USD_PER_1M, 'output': USD_PER_1M}})",
            model,
            call.provider,
            model,
        )
        return unknown_cost(UNKNOWN_MODEL)
    cost = price_usage(usage, row, batch=batch, service_tier=outcome.service_tier,
                       inference_geo=outcome.inference_geo, speed=outcome.speed, tool_calls=outcome.tool_calls)
    if cost.status == UNKNOWN_TOOL_FEE:
        tool = unpriced_tool(row, outcome.tool_calls) or "?"
        if outcome.tool_calls.get(tool) is None:
            warn_once(("unknown_tool_calls", call.provider, row.model, tool),
                      "llmspend: a %r answer used the provider's %r tool without saying how many calls it made, "
                      "and the provider bills it per call; its cost is reported as unknown", row.model, tool)
        else:
            warn_once(
                ("unknown_tool_fee", call.provider, row.model, tool),
                "llmspend: no fee per call for the provider's %r tool with model %r (its price row's tool_fees "
                "has none); the cost of calls that use it is reported as unknown. Add one with "
                "wrap(..., prices={%r: {'tool_fees': {%r: USD_PER_CALL}}})",
                tool, row.model, row.model, tool,
            )
    if cost.status == UNKNOWN_SPEED:
        warn_once(
            ("unknown_speed", call.provider, row.model, str(outcome.speed)),
            "llmspend: no price for model %r at speed %r (its price row has no factor for it); its cost is "
            "reported as unknown. Add one with wrap(..., prices={%r: {'speed_multipliers': {%r: FACTOR}}})",
            row.model,
            outcome.speed,
            row.model,
            outcome.speed,
        )
    return cost


def usage_or_estimate(adapter: ProviderAdapter, call: Call, outcome: Outcome) -> Usage:
    """The provider's usage, or, when it reported none, a local count marked as an estimate."""
    if outcome.usage is not None:
        return outcome.usage
    return Usage(
        input_tokens=adapter.estimate_input_tokens(call),
        output_tokens=count_text(outcome.output_text, call.model),
        estimated=True,
    )


def start_span(tracer: Tracer, name: str, **options: Any) -> Span:
    """``tracer.start_span(name, **options)``, or a non-recording span when the tracing SDK
    fails (a span processor's ``on_start`` that raises runs inside ``start_span``): telemetry
    never breaks the call, which goes on without its span; the fault is logged once."""
    try:
        return tracer.start_span(name, **options)
    except Exception as exc:
        warn_once(("start_span", type(exc).__name__),
                  "llmspend: the tracer failed to start a span (%s); the call goes on without it", error_text(exc))
        return INVALID_SPAN


def end_span(span: Span) -> None:
    """``span.end()``; a span processor's ``on_end`` that raises is logged once, never passed
    to the caller."""
    try:
        span.end()
    except Exception as exc:
        warn_once(("end_span", type(exc).__name__),
                  "llmspend: telemetry failed while ending a span (%s); the call goes on", error_text(exc))


def mark_sdk_parent(parent: Any) -> None:
    """An SDK that traces its own calls (anthropic >= 2) has its GenAI span current when the
    request reaches llmspend, so llmspend's span nests under it. Mark that span as priced in
    its child, so that a report over both counts the call once (llmspend's own report skips it)."""
    try:
        if not parent.is_recording() or getattr(getattr(parent, "instrumentation_scope", None), "name", None) == "llmspend":
            return
        attributes = getattr(parent, "attributes", None)
        if isinstance(attributes, Mapping) and A.OPERATION_NAME in attributes:
            parent.set_attribute(A.PRICED_IN_CHILD, True)
    except Exception:  # pragma: no cover - someone else's span: never fail the call over it
        logger.debug("llmspend: could not mark the parent span", exc_info=True)


class CallRecorder:
    """Span and bookkeeping of one call. Create it when the request enters the telemetry
    stage; call :meth:`finish`, :meth:`fail` or :meth:`finish_status` exactly once after."""

    def __init__(
        self,
        instruments: Instruments,
        prices: PriceTable,
        adapter: ProviderAdapter,
        request: Request,
        call: Call,
        *,
        capture_content: bool,
    ) -> None:
        self.instruments = instruments
        self.prices = prices
        self.adapter = adapter
        self.call = call
        self.context = request.context
        self.capture_content = capture_content
        self.started = time.perf_counter()
        self._ended = False
        self._first_chunk_at: float | None = None
        attrs: dict[str, Any] = {
            A.OPERATION_NAME: call.operation,
            A.PROVIDER_NAME: call.provider,
            A.SERVER_ADDRESS: call.server_address,
            A.SERVER_PORT: call.server_port,
            A.ENDPOINT: call.endpoint,
        }
        if call.model:
            attrs[A.REQUEST_MODEL] = call.model
        if call.stream:
            attrs[A.REQUEST_STREAM] = True
        for key, value in call.params.items():
            attrs["gen_ai." + key if key == "output.type" else "gen_ai.request." + key] = value
        self.attribution = attribution = current_attribution()
        if attribution is not UNATTRIBUTED:  # outside track() there is nothing to add
            attrs.update(attribution.span_attributes())
        if self.context.attributes:  # what outer stages noted before the span existed
            attrs.update(self.context.attributes)
        mark_sdk_parent(trace.get_current_span())
        self.span = start_span(instruments.tracer, call.span_name, kind=SpanKind.CLIENT, attributes=attrs)
        self.context.span = self.span
        if capture_content and self.span.is_recording():
            self._record_input(adapter, call)

    def _record_input(self, adapter: ProviderAdapter, call: Call) -> None:
        """``gen_ai.system_instructions`` and ``gen_ai.input.messages`` (content capture is on);
        an adapter that cannot read the request costs the span its content, never the call."""
        try:
            content = adapter.input_content(call)
            if content is None:
                return
            attrs = {}
            if content.system_instructions:
                attrs[A.SYSTEM_INSTRUCTIONS] = content_json(content.system_instructions)
            if content.messages:
                attrs[A.INPUT_MESSAGES] = content_json(content.messages)
            self.span.set_attributes(attrs)
        except Exception as exc:
            warn_once(("input_content", adapter.name, type(exc).__name__),
                      "llmspend: could not read the content of a %s request for its span (%s); the call goes on without it",
                      # the type only: a message could quote the prompt, which stays off logs
                      adapter.name or type(adapter).__name__, type(exc).__name__)

    def activate(self) -> object:
        """Make the span current while the rest of the chain runs (so spans below nest);
        undo with :meth:`deactivate`. The telemetry stage calls the two in a ``try``/``finally``
        of its own: a context manager would cost a generator on every call."""
        return otel_context.attach(trace.set_span_in_context(self.span))

    @staticmethod
    def deactivate(token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]


    @property
    def ended(self) -> bool:
        return self._ended

    def first_chunk(self) -> None:
        if self._first_chunk_at is None:
            self._first_chunk_at = time.perf_counter()
            self._guard(
                self.span.set_attribute, A.RESPONSE_TIME_TO_FIRST_CHUNK, self._first_chunk_at - self.started
            )

    # -- endings -----------------------------------------------------------------------
    def fail(self, exc: BaseException, *, answered: bool = False) -> None:
        """The call raised: before a response arrived (connection error, timeout, ...), or,
        with ``answered``, while its successful answer was being read. The provider has then
        billed a call whose usage was never seen: its cost is unknown, not $0."""
        if self._ended:
            return
        self._ended = True
        try:
            error = type(exc).__qualname__
            self.span.set_attribute(A.ERROR_TYPE, error)
            self.span.set_status(Status(StatusCode.ERROR, error))
            if answered:
                cost = unknown_cost(NO_USAGE)
                self.context.cost = cost
                self.span.set_attribute(A.COST_STATUS, cost.status)
                if self.attribution.sinks:
                    self.attribution.record(cost, self.context)
            self._metrics(None, None, error_type=error)
            self.span.end()
        except Exception:  # pragma: no cover - telemetry must never fail the call
            logger.exception("llmspend: telemetry failed while recording an error")

    def finish_status(self, status_code: int) -> None:
        """The provider answered with an HTTP error; the caller gets it unchanged."""
        if self._ended:
            return
        self._ended = True
        try:
            error = str(status_code)
            self.span.set_attribute(A.ERROR_TYPE, error)
            self.span.set_status(Status(StatusCode.ERROR, f"HTTP {status_code}"))
            self._metrics(None, None, error_type=error)
            self.span.end()
        except Exception:  # pragma: no cover
            logger.exception("llmspend: telemetry failed while recording an HTTP error")

    def finish(self, outcome: Outcome | None, *, error: BaseException | None = None) -> None:
        """The body has been read (or the stream ended). ``outcome is None`` means the body
        could not be read as the provider's format: its cost stays unknown."""
        if self._ended:
            return
        self._ended = True
        try:
            self._finish(outcome, error)
        except Exception:  # pragma: no cover - telemetry must never fail the call
            logger.exception("llmspend: telemetry failed while finishing a span")
            try:
                self.span.end()
            except Exception:
                pass

    def _finish(self, outcome: Outcome | None, error: BaseException | None) -> None:
        span, call, context = self.span, self.call, self.context
        if outcome is None:
            cost: Cost = unknown_cost(NO_USAGE)
            usage = None
        else:
            usage = usage_or_estimate(self.adapter, call, outcome)
            cost = price_call(self.prices, call, outcome, usage, batch=bool(context.extra.get("batch_api")))
        served_from = context.served_from
        if served_from is not None:
            # Nothing was bought, so this call's cost is known: $0. What the answer cost when it
            # was bought is the saving; when that is unknown (an unpriced model) no saving is
            # claimed, and the status says why.
            if cost.total_usd is not None:
                context.add_saving(served_from, cost.total_usd)
            else:
                context.set_attribute(A.SAVED_STATUS, cost.status)
            cost = Cost(total_usd=0.0, status="ok")
            reported_usage = None
        else:
            reported_usage = usage
        context.outcome = outcome
        context.cost = cost
        error_type = type(error).__qualname__ if error is not None else outcome.error_type if outcome else None
        if error_type is not None:
            span.set_status(Status(StatusCode.ERROR, error_type))
        # Only a recording span keeps attributes: without an SDK, or for a call the sampler
        # left out, building them would be work thrown away on every call.
        if span.is_recording():
            span.set_attributes(self._span_attributes(outcome, reported_usage, cost, error_type))
        self._metrics(
            reported_usage,
            cost.total_usd,
            error_type=error_type,
            response_model=outcome.response_model if outcome else None,
        )
        if self.attribution.sinks:
            self.attribution.record(cost, context)
        span.end()

    def _span_attributes(
        self, outcome: Outcome | None, usage: Usage | None, cost: Cost, error_type: str | None
    ) -> dict[str, Any]:
        """The span's attributes at its end (set in one go: one lock and one validation pass
        on the span). ``usage`` is what the call used, None when it bought nothing."""
        call, context = self.call, self.context
        attrs: dict[str, Any] = {}
        if outcome is not None:
            if outcome.response_id:
                attrs[A.RESPONSE_ID] = outcome.response_id
            if outcome.response_model:
                attrs[A.RESPONSE_MODEL] = outcome.response_model
            if outcome.finish_reasons:
                attrs[A.RESPONSE_FINISH_REASONS] = outcome.finish_reasons
            if outcome.service_tier and call.provider == "openai":
                attrs[A.OPENAI_SERVICE_TIER] = outcome.service_tier
            if call.stream:
                attrs[A.STREAM_COMPLETE] = outcome.complete
            attrs.update(outcome.attributes)
            if usage is not None:  # a call answered by a stage called no tool
                for tool, count in outcome.tool_calls.items():
                    if count:
                        attrs[A.USAGE_TOOL_CALLS.format(tool=tool)] = count
            if self.capture_content:
                content = self._output_content(outcome)
                if content is not None:
                    attrs[A.OUTPUT_MESSAGES] = content
        if context.served_from is not None:
            attrs[A.SERVED_FROM] = context.served_from
        if usage is not None:
            attrs[A.USAGE_INPUT_TOKENS] = usage.input_tokens
            attrs[A.USAGE_OUTPUT_TOKENS] = usage.output_tokens
            if usage.cache_read_tokens:
                attrs[A.USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
            if usage.cache_write_tokens:
                attrs[A.USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
                attrs[A.USAGE_CACHE_WRITE_INPUT_TOKENS] = usage.cache_write_tokens
            if usage.cache_write_1h_tokens:
                attrs[A.USAGE_CACHE_WRITE_1H_TOKENS] = usage.cache_write_1h_tokens
            if usage.reasoning_tokens:
                attrs[A.USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
        attrs[A.COST_STATUS] = cost.status
        attrs[A.COST_ESTIMATED] = cost.estimated
        if cost.reported and cost.total_usd is not None:  # the provider's total, without parts
            attrs[A.USAGE_COST] = attrs[A.COST_USD] = cost.total_usd
            attrs[A.COST_REPORTED] = True
        elif cost.total_usd is not None:
            attrs[A.USAGE_COST] = cost.total_usd
            attrs[A.COST_USD] = cost.total_usd
            attrs[A.COST_INPUT_USD] = cost.input_usd
            attrs[A.COST_CACHE_READ_USD] = cost.cache_read_usd
            attrs[A.COST_CACHE_WRITE_USD] = cost.cache_write_usd
            attrs[A.COST_OUTPUT_USD] = cost.output_usd
            if cost.request_usd:
                attrs[A.COST_REQUEST_USD] = cost.request_usd
            if cost.tools_usd:
                attrs[A.COST_TOOLS_USD] = cost.tools_usd
            if cost.batch:
                attrs[A.COST_BATCH] = True
        saved = sum(context.savings.values()) if context.savings else 0.0
        if saved:
            attrs[A.COST_SAVED_USD] = saved
            for stage, usd in context.savings.items():  # so reports can say which stage saved what
                attrs[A.COST_SAVED_STAGE_USD.format(stage=stage)] = usd
        if error_type is not None:
            attrs[A.ERROR_TYPE] = error_type
        return attrs

    def _output_content(self, outcome: Outcome) -> str | None:
        """``gen_ai.output.messages`` as JSON, or None. Runs after the cost is known and before
        the metrics and attribution are recorded: a fault here (an answer nested too deep for
        the size cap's walk) costs the span its content, never the call's cost."""
        try:
            if outcome.output_messages is not None:
                return content_json(outcome.output_messages)
            if outcome.output_text:
                return content_json(text_output(outcome.output_text, outcome.finish_reasons))
        except Exception as exc:
            warn_once(("output_content_json", self.call.provider, type(exc).__name__),
                      "llmspend: could not record a %s answer's content on its span (%s); its cost is recorded",
                      self.call.provider, type(exc).__name__)
        return None

    def _metrics(
        self,
        usage: Usage | None,
        cost_usd: float | None,
        *,
        error_type: str | None,
        response_model: str | None = None,
    ) -> None:
        call, feature = self.call, self.attribution.metric_feature
        # everything _metric_attributes reads: the same kind, the same attributes
        kind = (call.operation, call.provider, call.server_address, call.server_port, call.model,
                response_model, error_type, feature, self.context.served_from)
        self.instruments.record_call(
            self.instruments.attribute_sets(kind, self._metric_attributes, response_model, error_type),
            duration_s=time.perf_counter() - self.started,
            first_chunk_s=self._first_chunk_at - self.started if self._first_chunk_at is not None else None,
            # Counted locally, not reported: the conventions' token histogram is for reported
            # usage only (the span carries the estimate, marked llmspend.cost.estimated)
            input_tokens=usage.input_tokens if usage and not usage.estimated else None,
            # an embedding has no output tokens to count (the conventions define none)
            output_tokens=usage.output_tokens if usage and not usage.estimated and call.operation != "embeddings" else None,
            cost_usd=cost_usd,
            savings=self.context.savings,
        )

    def _metric_attributes(self, response_model: str | None, error_type: str | None) -> dict[str, str | int]:
        call = self.call
        attrs: dict[str, str | int] = {
            A.OPERATION_NAME: call.operation,
            A.PROVIDER_NAME: call.provider,
            A.SERVER_ADDRESS: call.server_address,
            A.SERVER_PORT: call.server_port,
        }
        if call.model:
            attrs[A.REQUEST_MODEL] = call.model
        if response_model:
            attrs[A.RESPONSE_MODEL] = response_model
        if error_type:
            attrs[A.ERROR_TYPE] = error_type
        served_from = self.context.served_from
        if served_from is not None:  # a hit's duration is not the provider's: keep them apart
            attrs[A.SERVED_FROM] = served_from
        attrs.update(self.attribution.metric_attributes())
        return attrs

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # pragma: no cover
            logger.exception("llmspend: telemetry call failed")
