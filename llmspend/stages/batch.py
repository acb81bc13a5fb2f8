"""The batch stage: concurrent chat calls that share a prompt prefix, asked as one request.

Calls to the same model with the same system message and few-shot examples (the same
*prefix*) that arrive within ``window_ms`` of each other are merged, up to ``max_size`` at a
time, into one request in the Batch Prompting format (``Q[i]:`` in, ``A[i]:`` out; see
:mod:`llmspend.batching`). The prefix is then paid for once. Each caller gets an ordinary chat
completion carrying only its own answer and its share of the usage, so the telemetry stage
prices each share on the caller's own span; the merged request has a span of its own, linked
to every caller's.

No answer is lost or moved to the wrong caller: an answer whose tag is missing, duplicated or
malformed is asked again on its own, and a merged request that fails is replaced by the
callers' own requests. It needs an async client (merging concurrent calls needs them to be
concurrent), and sits below the cache (a cache hit is never batched) and above retries.

Which calls are batched: per call, the header ``x-llmspend-batch: on|off`` (removed before
sending); per feature, ``features={"faq": True, "chat": False}`` matched against the call's
``llmspend`` feature; otherwise, with ``auto`` on, calls with no tools, n = 1, no streaming
and a ``max_tokens`` bound. Calls that cannot be merged (tools, streams, JSON mode, a last
message that is not plain user text, a web search) are never batched, whatever they are marked.

Layout: this module holds the stage (which calls are held, grouping them and the window
timer, sending the merged request and the questions asked again), its pure decisions
(:func:`marking`, :func:`wants_batch`) and its ``SPEC``; :mod:`llmspend.batching.merge` which
bodies merge and the merged body; :mod:`llmspend.batching.reply` reading the merged reply into
each caller's response and usage share; :mod:`llmspend.batching.spans` the merged request's
span and the ``llmspend.batch.*`` attributes on it and on the callers' spans.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from .._redact import error_text
from .._http import Request, Response, dumps
from .._version import __version__
from ..attribution import current_attribution
from ..batching.merge import HEADER, bounded, group_key, merged_body, mergeable
from ..batching.prompt import BatchFormat, TaggedFormat, split_question
from ..batching.reply import (
    answer_response,
    caller_shares,
    deliver,
    read_outcome,
    read_reply,
    reported_cost_shares,
    resent_response,
)
from ..batching.spans import (
    INDEX,
    NOT_MERGED,
    RESENT,
    SIZE,
    end_failed,
    end_merged_span,
    link,
    note_saving,
    start_merged_span,
)
from ..context import CallContext
from ..exceptions import ConfigError
from ..pipeline import AsyncCallNext, BuildContext, CallNext, Stage, StageSpec
from ..pricing.table import PriceTable
from ..providers.base import Call
from ..telemetry.recorder import warn_once
from ..tokens import count_chat_messages
from .budget import LIMITED as BUDGET_LIMITED

__all__ = ["BatchOptions", "BatchStage", "HEADER", "wants_batch", "marking", "searches"]

_ON = frozenset({"on", "true", "1", "yes"})
_OFF = frozenset({"off", "false", "0", "no"})

# Headers that differ from call to call without changing what is asked; they must not keep
# otherwise identical calls apart.
_PER_CALL_HEADERS = frozenset({
    "content-length", "x-stainless-retry-count", "x-stainless-read-timeout", "x-stainless-timeout",
    "idempotency-key", "traceparent", "tracestate", "baggage",
})

@dataclass(frozen=True)
class BatchOptions:
    """How the batch stage groups calls.

    ``window_ms``: how long the first call of a group waits for others (the latency a merged
    call may add). ``max_size``: the most questions in one request (Batch Prompting advises
    3 to 4; accuracy drops at 6 and more). ``auto``: batch unmarked calls that look safe to
    (no tools, n = 1, no streaming, a ``max_tokens`` bound). ``features``: per feature, True
    to batch its calls (bounded or not) or False never to; a list of names means True for
    each. ``format``: how questions are asked and answers read (:class:`TaggedFormat`).
    """

    window_ms: float = 20.0
    max_size: int = 4
    auto: bool = True
    features: Mapping[str, bool] | Collection[str] = field(default_factory=dict)
    format: BatchFormat = field(default_factory=TaggedFormat)

    def __post_init__(self) -> None:
        window = self.window_ms
        if isinstance(window, bool) or not isinstance(window, int | float) or not 0 < window <= 60_000 or math.isnan(window):
            raise ConfigError(f"batch window_ms must be a number of milliseconds in (0, 60000], got {window!r}")
        size = self.max_size
        if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= 64:
            raise ConfigError(f"batch max_size must be an int from 2 to 64 (3 to 4 is advised), got {size!r}")
        if not isinstance(self.auto, bool):
            raise ConfigError(f"batch auto must be True or False, got {self.auto!r}")
        features = self.features
        if isinstance(features, str) or not isinstance(features, Mapping | Collection):
            raise ConfigError(f"batch features must be a dict of feature name -> bool or a list of names, got {features!r}")
        if not isinstance(features, Mapping):
            features = dict.fromkeys(features, True)
        if not all(isinstance(k, str) and isinstance(v, bool) for k, v in features.items()):
            raise ConfigError(f"batch features must map feature names (str) to True or False, got {features!r}")
        object.__setattr__(self, "features", dict(features))
        if not callable(getattr(self.format, "build", None)) or not callable(getattr(self.format, "parse", None)):
            raise ConfigError(f"batch format must have build(questions) and parse(text, count) methods, got {self.format!r}")


# -- decisions (pure) ----------------------------------------------------------------------
def marking(header: str | None, feature: str | None, options: BatchOptions) -> bool | None:
    """Whether a call was marked for batching (True), against it (False) or not at all
    (None): the call's header wins over its feature's setting."""
    if header is not None:
        value = header.strip().lower()
        if value in _ON:
            return True
        if value in _OFF:
            return False
        warn_once(("batch_header", value[:40]),
                  "llmspend: ignoring %s: %r (use on or off)", HEADER, header[:40])
    marks = options.features  # a dict once BatchOptions has checked it
    if feature is not None and isinstance(marks, Mapping) and feature in marks:
        return bool(marks[feature])
    return None


def wants_batch(body: Any, marked: bool | None, options: BatchOptions, *, budget_limited: bool = False,
                searches: bool = False) -> bool:
    """Whether to hold a chat call for batching. Unmergeable calls never are, nor calls held
    to a budget's limit: a merged request's share (the batch instruction, an answer longer
    than the caller's own ``max_tokens``) could cost more than the budget reserved. Nor calls
    that ``searches`` (:func:`searches`)."""
    if budget_limited or searches or not mergeable(body):
        return False
    if marked is not None:
        return marked
    return options.auto and bounded(body)


#: finish reasons of a reply stopped before its end (the token limit; a content filter, as Azure
#: OpenAI's stops an answer it flags): the answer written last may be cut short
_CUT_SHORT = frozenset({"length", "content_filter"})

#: providers that search the web for every chat call: an answer cites its own request's
#: search results (``citations``, ``search_results`` beside the choices)
_SEARCHING_PROVIDERS = frozenset({"perplexity"})


def searches(request: Request, call: Call) -> bool:
    """Whether ``call`` runs a server-side tool (a search model's web search, a built-in tool
    billed per call) or goes to a provider that searches on every call. Its answer then rests
    on, and cites, what its own request found: a merged request would search once for every
    question, and the citations (``annotations``, Perplexity's ``citations``) would belong to
    no single caller."""
    if call.provider in _SEARCHING_PROVIDERS:
        return True
    adapter = request.adapter
    return adapter is not None and bool(adapter.tool_call_limits(call))


def _timeouts(request: Request) -> str:
    """The caller's own timeouts (its HTTP library request's ``timeout`` extension). A merged
    request goes out with its first caller's, so callers with other timeouts are grouped
    apart: each then waits no longer than it asked to."""
    extensions = getattr(request.template, "extensions", None)
    timeout = extensions.get("timeout") if isinstance(extensions, Mapping) else None
    return repr(sorted(timeout.items())) if isinstance(timeout, Mapping) else repr(timeout)


# -- the stage -----------------------------------------------------------------------------
class _SendAlone:
    """What a waiting caller is told when its call is to go out on its own after all."""


_SEND_ALONE = _SendAlone()


@dataclass(eq=False)
class _Member:
    request: Request
    call: Call
    question: str
    future: asyncio.Future[Response | _SendAlone]
    #: the caller's contextvars (attribution, current span), for sending on its behalf
    context: contextvars.Context


@dataclass(eq=False)
class _Group:
    call_next: AsyncCallNext
    members: list[_Member] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class BatchStage(Stage):
    """See the module docstring. Built by ``wrap(async_client, batch=True | {...} | BatchOptions)``."""

    name = "batch"
    supports_sync = False

    def __init__(
        self,
        options: BatchOptions | None = None,
        *,
        prices: PriceTable | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.options = options or BatchOptions()
        self.prices = prices if prices is not None else PriceTable.default()
        self.tracer = trace.get_tracer("llmspend", __version__, tracer_provider=tracer_provider)
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def handle(self, request: Request, call_next: CallNext) -> Response:
        # Only reached through a pipeline built without saying it is sync (build_pipeline()
        # with is_async unset): nothing to merge with, but the header must not reach the provider.
        if HEADER in request.headers:
            request = request.replace(headers=request.headers.without(HEADER))
        return call_next(request)

    async def ahandle(self, request: Request, call_next: AsyncCallNext) -> Response:
        call = request.call
        header = request.headers.get(HEADER)
        if header is not None:
            request = request.replace(headers=request.headers.without(HEADER))
        if call is None or call.endpoint != "chat.completions":
            return await call_next(request)
        marked = marking(header, current_attribution().feature, self.options)
        limited = bool(request.context.extra.get(BUDGET_LIMITED))
        searching = searches(request, call)
        if not wants_batch(call.body, marked, self.options, budget_limited=limited, searches=searching):
            if limited and wants_batch(call.body, marked, self.options, searches=searching):  # the budget alone kept it out
                request.context.set_attribute(NOT_MERGED, "budget")
            return await call_next(request)
        result = await self._join(request, call, call_next)
        if isinstance(result, _SendAlone):
            return await call_next(request)
        return result

    # -- grouping ------------------------------------------------------------------------
    async def _join(self, request: Request, call: Call, call_next: AsyncCallNext) -> Response | _SendAlone:
        loop = asyncio.get_running_loop()
        headers = [(k.lower(), v) for k, v in request.headers.items() if k.lower() not in _PER_CALL_HEADERS]
        key = (loop, call_next, request.url, group_key(call.body, headers), _timeouts(request))
        _, question = split_question(call.body["messages"]) or ([], "")
        member = _Member(request, call, question, loop.create_future(), contextvars.copy_context())
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(call_next)
            group.timer = loop.call_later(self.options.window_ms / 1000, self._flush, key)
        group.members.append(member)
        if len(group.members) >= self.options.max_size:
            self._flush(key)
        return await member.future

    def _flush(self, key: tuple[Any, ...]) -> None:
        group = self._groups.pop(key, None)
        if group is None:
            return
        if group.timer is not None:
            group.timer.cancel()
        members = [m for m in group.members if not m.future.done()]  # callers may have given up
        if len(members) == 1:
            members[0].future.set_result(_SEND_ALONE)
        elif members:
            # A context of its own: the merged request belongs to no single caller.
            task = asyncio.get_running_loop().create_task(
                self._run(members, group.call_next), context=contextvars.Context()
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, members: list[_Member], call_next: AsyncCallNext) -> None:
        try:
            await self._merge(members, call_next)
        except Exception as exc:  # our own fault: fail open, each caller sends its own call
            for member in members:
                if not member.future.done():
                    member.request.context.record_fault(self.name, exc)
            warn_once(("batch_fault", type(exc).__name__),
                      "llmspend: batching failed (%s); the calls were sent one by one", error_text(exc))
        finally:
            for member in members:
                if not member.future.done():
                    member.future.set_result(_SEND_ALONE)

    # -- one merged request ----------------------------------------------------------------
    async def _merge(self, members: list[_Member], call_next: AsyncCallNext) -> None:
        body = merged_body([m.call.body for m in members], self.options.format)
        span = start_merged_span(self.tracer, members[0].call, [m.request.context.span for m in members])
        try:
            await self._ask(members, body, span, call_next)
        except BaseException as exc:
            if span.is_recording():  # not ended yet: a fault of ours, or cancelled
                end_failed(span, type(exc).__qualname__)
            raise

    async def _ask(self, members: list[_Member], body: dict[str, Any], span: Span, call_next: AsyncCallNext) -> None:
        """Send the merged request, read its answers, ask again what is in doubt, and hand
        every caller its response. Ends ``span``."""
        first = members[0]
        merged = Request(
            first.request.method,
            first.request.url,
            first.request.headers.without("idempotency-key"),
            dumps(body),
            context=CallContext(span=span),
            adapter=first.request.adapter,
            template=first.request.template,
        )
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                response = await call_next(merged)
                content = await response.aread()
        except Exception as exc:  # the provider could not be reached: every caller tries on its own
            end_failed(span, type(exc).__qualname__)
            return
        if not response.is_success:
            end_failed(span, str(response.status_code))
            return
        read = read_reply(content)
        if read is None:
            end_failed(span, "unreadable_response")
            return
        data, text, finish_reason = read
        parsed = self.options.format.parse(text, len(members), truncated=finish_reason in _CUT_SHORT)
        merged_call = merged.call
        outcome = read_outcome(merged, merged_call, content)
        usage = outcome.usage if outcome is not None else None

        # (a caller that gave up meanwhile is not asked for again)
        failed = [(i, m) for i, m in enumerate(members, 1) if i in parsed.failures and not m.future.done()]
        resent = await asyncio.gather(*(self._resend(m, call_next) for _, m in failed), return_exceptions=True)
        resent_by_index = {i: r for (i, _), r in zip(failed, resent)}

        model = first.call.model
        merged_estimate = count_chat_messages(body["messages"], model)
        # A caller that gave up meanwhile has ended its span: its share of the merged call,
        # paid all the same, goes to the callers still waiting, and nothing is written on it.
        waiting = {i for i, m in enumerate(members, 1) if not m.future.done()}
        answers = {i: a for i, a in parsed.answers.items() if i in waiting}
        resent_waiting = {i: r for i, r in resent_by_index.items() if i in waiting}
        shares = caller_shares(usage, [m.question for m in members], answers, resent_waiting, model)
        costs = reported_cost_shares(data, merged_call, outcome, shares, self.prices)

        for i, member in enumerate(members, 1):
            if i not in waiting:
                continue
            context = member.request.context
            context.set_attribute(SIZE, len(members))
            context.set_attribute(INDEX, i)
            link(context.span, span)
            if i in parsed.answers:
                note_saving(context, member.call, self.prices, self.name, merged_estimate=merged_estimate,
                            usage=usage, share=shares.get(i), outcome=outcome)
                deliver(member.future, answer_response(response, data, i, parsed.answers[i], shares.get(i), model,
                                                        costs.get(i)))
                continue
            context.set_attribute(RESENT, parsed.failures[i])
            result = resent_by_index.get(i)
            if result is None:
                continue
            if isinstance(result, asyncio.CancelledError):
                member.future.cancel()
                continue
            if isinstance(result, BaseException):
                member.future.set_exception(result)
                continue
            deliver(member.future, resent_response(result, shares.get(i), costs.get(i)))

        end_merged_span(span, self.prices, answers=parsed.answers, failures=parsed.failures,
                        usage=usage, call=merged_call, outcome=outcome, data=data, unclaimed=not waiting)

    async def _resend(self, member: _Member, call_next: AsyncCallNext) -> Response:
        """The caller's own request, sent on its behalf (in its context) and read."""

        async def send() -> Response:
            response = await call_next(member.request)
            await response.aread()
            return response

        return await asyncio.get_running_loop().create_task(send(), context=member.context)


def _build(value: Any, context: BuildContext) -> Stage:
    if value is True:
        options = BatchOptions()
    elif isinstance(value, BatchOptions):
        options = value
    elif isinstance(value, Mapping):
        try:
            options = BatchOptions(**value)
        except TypeError as exc:
            raise ConfigError(f"batch= options: {exc}; known: window_ms, max_size, auto, features, format") from exc
    else:
        raise ConfigError(f"batch= takes True, a dict of BatchOptions fields or a BatchOptions; got {value!r}")
    return BatchStage(options, prices=context.prices, tracer_provider=context.tracer_provider)


SPEC = StageSpec(option="batch", order=500, build=_build,
                 doc="merge concurrent calls that share a prompt prefix into one request (async clients)")
