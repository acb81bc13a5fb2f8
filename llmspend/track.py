"""``llmspend.track``: what each feature and user costs, and budgets that stop overspending.

    @llmspend.track(feature="support-reply")
    def reply(ticket): ...                      # every LLM call inside carries the feature

    @llmspend.track(feature="digest", budget_usd=5, period="day")
    async def digest(): ...                     # cannot spend more than $5 a UTC day

    with llmspend.track(feature="import", user=user_id, tags={"tenant": "acme"}) as scope:
        ...
    scope.total_usd                             # what the calls inside cost

It works on functions, methods, async functions, generators and async generators, and as a
context manager (``with`` / ``async with``). Attribution is a context variable: it follows the
code into asyncio tasks and into threads started through ``contextvars.copy_context().run``.
Nested tracks compose: the inner feature and user win, tags merge, every budget applies, and
each track's span totals the calls of its own subtree once.

Each run of tracked code gets an INTERNAL span (``llmspend.track <feature>``) made current, so
the calls' CLIENT spans nest under it; when it ends it carries ``llmspend.cost.total_usd``,
``llmspend.calls``, ``llmspend.cost.saved_usd`` (and ``llmspend.cost.saved.<stage>_usd``),
``llmspend.calls_from.<stage>`` for calls a stage answered, and ``llmspend.cost.unknown_calls``
with ``llmspend.cost.complete``: a total with calls of unknown cost says it is incomplete
rather than quietly counting them as $0. Spans go to the global tracer provider unless
``tracer_provider=`` is given. See docs/track.md.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._version import __version__
from .attribution import Attribution, current_attribution, metric_feature, reset_attribution, set_attribution
from .budgets import Budget
from .exceptions import ConfigError
from .periods import check_period
from .telemetry.recorder import start_span

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

    from .context import CallContext
    from .ledger import LedgerSpec
    from .pricing.cost import Cost

__all__ = ["track", "TrackedScope"]

logger = logging.getLogger("llmspend")

F = TypeVar("F", bound=Callable[..., Any])

TOTAL_USD = "llmspend.cost.total_usd"
CALLS = "llmspend.calls"
UNKNOWN_CALLS = "llmspend.cost.unknown_calls"
COMPLETE = "llmspend.cost.complete"
SAVED_USD = "llmspend.cost.saved_usd"
SAVED_BY_STAGE = "llmspend.cost.saved.{}_usd"
CALLS_FROM = "llmspend.calls_from.{}"
BUDGET_NAME = "llmspend.budget.name"
BUDGET_LIMIT = "llmspend.budget.limit_usd"
BUDGET_PERIOD = "llmspend.budget.period"


class TrackedScope:
    """One run of tracked code: its span, and the totals of the LLM calls finished inside it
    (a call still running in another thread when the scope ends is not counted)."""

    def __init__(self, spec: track, label: str | None) -> None:
        self._spec = spec
        self._label = label
        self._lock = threading.Lock()
        self.attribution = Attribution()
        self.span: Span | None = None
        self.total_usd = 0.0
        self.calls = 0
        self.unknown_calls = 0
        self.saved_usd_by_stage: dict[str, float] = {}
        self.calls_from: dict[str, int] = {}

    @property
    def complete(self) -> bool:
        """False when some call's cost was unknown: ``total_usd`` then counts the others only."""
        return self.unknown_calls == 0

    @property
    def saved_usd(self) -> float:
        return sum(self.saved_usd_by_stage.values(), 0.0)

    # CostSink: the telemetry recorder calls this for every priced call inside the scope.
    def add_call(self, cost: Cost, context: CallContext) -> None:
        with self._lock:
            self.calls += 1
            if cost.total_usd is None:
                self.unknown_calls += 1
            else:
                self.total_usd += cost.total_usd
            if context.served_from is not None:
                self.calls_from[context.served_from] = self.calls_from.get(context.served_from, 0) + 1
            for stage, usd in context.savings.items():
                self.saved_usd_by_stage[stage] = self.saved_usd_by_stage.get(stage, 0.0) + usd

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        spec, parent = self._spec, current_attribution()
        feature = spec.feature if spec.feature is not None else parent.feature
        user = spec.user if spec.user is not None else parent.user
        budgets = parent.budgets
        if spec.budget is not None:
            assert spec.feature is not None  # checked at construction
            budgets = (*budgets, spec.budget.bind(spec.feature, user))
        self.attribution = Attribution(
            feature=feature,
            user=user,
            tags={**parent.tags, **spec.tags},
            sinks=(*parent.sinks, self),
            metric_feature=metric_feature(feature),
            budgets=budgets,
        )
        attrs = self.attribution.span_attributes()
        if spec.budget is not None:
            active = budgets[-1]
            attrs[BUDGET_NAME] = active.name
            attrs[BUDGET_PERIOD] = active.budget.period
            if active.limit_usd is not None:
                attrs[BUDGET_LIMIT] = active.limit_usd
        name = f"llmspend.track {feature or self._label}" if (feature or self._label) else "llmspend.track"
        self.span = start_span(spec.tracer, name, kind=SpanKind.INTERNAL, attributes=attrs)

    @contextmanager
    def active(self) -> Iterator[None]:
        """The scope's attribution and span are current inside (for one step of a generator,
        or the whole of a function)."""
        assert self.span is not None
        attribution_token = set_attribution(self.attribution)
        span_token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            yield
        finally:
            otel_context.detach(span_token)
            reset_attribution(attribution_token)

    @contextmanager
    def lifetime(self, *, started: bool = False) -> Iterator[TrackedScope]:
        """Start (unless ``started``), then finish (marking the span with any error but a
        generator's close)."""
        if not started:
            self.start()
        try:
            yield self
        except BaseException as exc:
            self.finish(exc)
            raise
        self.finish()

    @contextmanager
    def running(self) -> Iterator[TrackedScope]:
        """The whole life of a function's scope: active from start to finish."""
        with self.lifetime(), self.active():
            yield self

    def finish(self, error: BaseException | None = None) -> None:
        span = self.span
        if span is None:
            return
        try:
            self._end_span(span, error)
        except Exception:  # telemetry never breaks the tracked code
            logger.exception("llmspend: could not end the span of a tracked scope")

    def _end_span(self, span: Span, error: BaseException | None) -> None:
        with self._lock:
            span.set_attribute(TOTAL_USD, self.total_usd)
            span.set_attribute(CALLS, self.calls)
            span.set_attribute(UNKNOWN_CALLS, self.unknown_calls)
            span.set_attribute(COMPLETE, self.complete)
            span.set_attribute(SAVED_USD, self.saved_usd)
            for stage, usd in sorted(self.saved_usd_by_stage.items()):
                span.set_attribute(SAVED_BY_STAGE.format(stage), usd)
            for source, count in sorted(self.calls_from.items()):
                span.set_attribute(CALLS_FROM.format(source), count)
        if error is not None and not isinstance(error, GeneratorExit):
            error_type = type(error).__qualname__
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()


class track:
    """Attribute the LLM calls of a block of code to a feature, user and tags; optionally
    hold them to a budget. Use as a decorator or a context manager (see the module docstring).

    ``budget_usd`` with ``period`` (``"minute"``, ``"hour"``, ``"day"``, ``"month"`` or
    ``"none"``, UTC boundaries) limits what the feature may spend; ``per_user=True`` gives each
    user their own budget. A call that would not fit raises :class:`llmspend.BudgetExceededError`
    before anything is sent, or goes to ``fallback_model`` if that fits (a cascade's own steps
    are refused, never redirected: see docs/cascade.md). ``on_unknown``: what to
    do with a call whose most possible cost cannot be known (``"refuse"``, the default, or
    ``"allow"``). A ``period`` without ``budget_usd`` counts spending without limiting it.
    ``ledger``: where the budget is kept (``"memory"``, a directory, ``"redis://..."`` with the
    Redis plugin, or a Ledger); default: :func:`llmspend.set_default_ledger`'s.
    """

    def __init__(
        self,
        feature: str | None = None,
        *,
        user: str | None = None,
        tags: Mapping[str, str | int | float | bool] | None = None,
        budget_usd: float | None = None,
        period: str | None = None,
        per_user: bool = False,
        fallback_model: str | None = None,
        on_unknown: str = "refuse",
        ledger: LedgerSpec | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        for label, value in (("feature", feature), ("user", user)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"track {label}= takes a non-empty string, got {value!r}")
        self.feature = feature
        self.user = user
        self.tags = _check_tags(tags)
        self.budget: Budget | None = None
        if budget_usd is not None or period is not None:
            if period is None:
                raise ConfigError(
                    f"track(budget_usd={budget_usd!r}) needs a period: 'minute', 'hour', 'day', 'month' or 'none'"
                )
            check_period(period)
            if feature is None:
                raise ConfigError("a budget is named after its feature: pass feature= to the track that has the budget")
            self.budget = Budget.create(budget_usd, period, per_user=per_user, fallback_model=fallback_model,
                                        on_unknown=on_unknown, ledger=ledger)
        else:
            extras = {"per_user": per_user, "fallback_model": fallback_model, "ledger": ledger,
                      "on_unknown": None if on_unknown == "refuse" else on_unknown}
            given = [name for name, value in extras.items() if value not in (None, False)]
            if given:
                raise ConfigError(f"track {', '.join(given)}= only apply to a budget: add period= (to count spending) "
                                  "and budget_usd= (to limit it)")
        self.tracer = trace.get_tracer("llmspend", __version__, tracer_provider=tracer_provider)
        # the scopes this object has entered as a context manager, per context (task, thread)
        self._entered: ContextVar[tuple[AbstractContextManager[TrackedScope], ...]] = ContextVar(
            "llmspend_track", default=()
        )

    def __repr__(self) -> str:
        budget = f", budget_usd={self.budget.limit_usd}, period={self.budget.period!r}" if self.budget else ""
        return f"track(feature={self.feature!r}{budget})"

    # -- context manager -----------------------------------------------------------------
    def __enter__(self) -> TrackedScope:
        running = TrackedScope(self, None).running()
        scope = running.__enter__()
        self._entered.set((*self._entered.get(), running))
        return scope

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        entered = self._entered.get()
        self._entered.set(entered[:-1])
        entered[-1].__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> TrackedScope:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator -----------------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        if isinstance(fn, classmethod | staticmethod):
            return type(fn)(self(fn.__func__))  # type: ignore[return-value]
        if not callable(fn):
            raise ConfigError(f"llmspend.track decorates functions and methods, not {type(fn).__name__}")
        wrap: Callable[[track, Callable[..., Any], str | None], Callable[..., Any]]
        if inspect.isasyncgenfunction(fn):
            wrap = _wrap_async_generator
        elif inspect.isgeneratorfunction(fn):
            wrap = _wrap_generator
        elif inspect.iscoroutinefunction(fn):
            wrap = _wrap_coroutine
        else:
            wrap = _wrap_function
        return cast(F, functools.wraps(fn)(wrap(self, fn, getattr(fn, "__qualname__", None))))


def _wrap_function(spec: track, fn: Callable[..., Any], label: str | None) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = TrackedScope(spec, label)
        scope.start()
        try:
            with scope.active():
                result = fn(*args, **kwargs)
        except BaseException as exc:
            scope.finish(exc)
            raise
        if inspect.iscoroutine(result):
            # An async function behind a plain callable (a sync decorator under track, an object
            # with an async __call__): its LLM calls run when it is awaited, so the scope (and
            # its budget) must still be in effect then.
            return _finish_when_awaited(scope, result)
        if inspect.isgenerator(result):  # the same for a generator: its calls run as it is iterated
            return _drive(scope, result, started=True)
        if inspect.isasyncgen(result):  # and for an async generator
            return _wrap_async_generator(spec, lambda: result, label, started=scope)()
        scope.finish()
        return result

    return wrapper


async def _finish_when_awaited(scope: TrackedScope, coroutine: Coroutine[Any, Any, Any]) -> Any:
    try:
        with scope.active():
            result = await coroutine
    except BaseException as exc:
        scope.finish(exc)
        raise
    scope.finish()
    return result


def _wrap_coroutine(spec: track, fn: Callable[..., Any], label: str | None) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with TrackedScope(spec, label).running():
            return await fn(*args, **kwargs)

    return wrapper


def _wrap_generator(spec: track, fn: Callable[..., Any], label: str | None) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        return (yield from _drive(TrackedScope(spec, label), fn(*args, **kwargs)))

    return wrapper


def _wrap_async_generator(spec: track, fn: Callable[..., Any], label: str | None,
                          started: TrackedScope | None = None) -> Callable[..., Any]:
    # The steps of _drive, for async generators. Written out (an async generator cannot
    # delegate with ``yield from``) so the wrapper is itself an async generator function, as
    # frameworks that inspect it expect. ``started``: the scope of a plain call that returned
    # the async generator (``fn`` then hands that one back).
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        scope = started if started is not None else TrackedScope(spec, label)
        agen = fn(*args, **kwargs)
        with scope.lifetime(started=started is not None):
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                with scope.active():
                    try:
                        item = await (agen.athrow(thrown) if thrown is not None else agen.asend(sent))
                    except StopAsyncIteration:
                        return
                sent, thrown = None, None
                try:
                    sent = yield item
                except GeneratorExit:
                    with scope.active():
                        await agen.aclose()
                    raise
                except BaseException as exc:
                    thrown = exc

    return wrapper


def _check_tags(tags: Mapping[str, str | int | float | bool] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise ConfigError(f"track tags= takes a dict of str to str, got {type(tags).__name__}")
    checked: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"track tag names must be non-empty strings, got {key!r}")
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(f"track tag {key!r} must be a string or number, got {type(value).__name__}")
        checked[key] = str(value)
    return checked


def _drive(scope: TrackedScope, gen: Generator[Any, Any, Any], *, started: bool = False) -> Generator[Any, Any, Any]:
    """Run ``gen`` step by step with the scope active during each step only, so the scope never
    leaks into the consumer's code between items (``started``: the scope was started already)."""
    with scope.lifetime(started=started):
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            with scope.active():
                try:
                    item = gen.throw(thrown) if thrown is not None else gen.send(sent)
                except StopIteration as stop:
                    return stop.value
            sent, thrown = None, None
            try:
                sent = yield item
            except GeneratorExit:
                with scope.active():
                    gen.close()
                raise
            except BaseException as exc:
                thrown = exc
