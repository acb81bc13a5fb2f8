"""The budget stage: no call leaves unless its budget can pay for the most it can cost.

It is always in the pipeline (order 250, just inside telemetry, so a refused call still gets a
span saying why) and does nothing unless the code making the call runs inside
``llmspend.track(..., budget_usd=..., period=...)`` (or a period alone, which counts without
limiting). Then, for every budget in effect (nested tracks' budgets all apply):

1. Before sending: the most the call can cost (:func:`~llmspend.pricing.bound.max_call_cost`)
   is reserved in the budget's ledger, atomically. If it does not fit, the call goes to the
   budget's ``fallback_model`` if that fits, or raises :class:`~llmspend.BudgetExceededError`;
   either way nothing over budget is sent. A request whose model a stage above chose (a
   cascade's step, marked :data:`FIXED_MODEL`) is refused, never redirected: its stage decides
   what to do without it.
2. After the response: the reservation is settled to the real cost (0 for a cache hit); for a
   stream, when the stream ends. An HTTP error or a failure before any answer releases it (the
   provider bills neither). A stream the caller closes early, or one that breaks, is charged
   its full reservation unless the provider had already reported usage: the provider may bill
   tokens it generated after the client stopped listening, so anything less could overspend.

A ledger that cannot be reached when reserving raises :class:`~llmspend.LedgerError` (the call
is not sent: a budget that cannot be checked is not enforced by sending anyway). One that fails
when settling is recorded on the call's span and logged; the caller still gets the answer it
paid for.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from .._redact import error_text
from .._http import Request, Response
from ..attribution import current_attribution
from ..budgets import MAX_LIMIT_USD, ActiveBudget
from ..exceptions import BudgetExceededError, BudgetUnknownCostError, ConfigError
from ..ledger import Ledger, Reservation
from ..periods import period_window
from ..pipeline import AsyncCallNext, BuildContext, CallNext, Stage, StageSpec
from ..pricing.bound import CostBound, max_call_cost
from ..pricing.table import PriceTable
from ..providers.base import Call, Outcome, ProviderAdapter, StreamReader
from ..telemetry.recorder import price_call, usage_or_estimate, warn_once

__all__ = ["BudgetStage", "DEFAULT_INPUT_MARGIN"]

#: how much the local input-token estimate is raised before pricing a reservation: providers
#: counted up to 23.5% more input tokens than the local estimate on 17,080 real prompts
#: (OpenAI models up to 5.1%); see docs/track.md and benchmarks/budget_estimate.py
DEFAULT_INPUT_MARGIN = 0.25

RESERVED_USD = "llmspend.budget.reserved_usd"
#: the most one reservation holds: more than any budget's limit (so a call that may cost more
#: is refused under every limit), and few enough nano-dollars for a ledger's integers (a
#: request with an absurd ``max_tokens`` bounds its cost at 1e300 USD, or at infinity)
_MAX_RESERVATION_USD = 2 * MAX_LIMIT_USD

#: CallContext.extra key: the call holds a reservation under a budget with a limit
LIMITED = "budget_limited"
#: CallContext.extra key, set by a stage above: the request's model is the one it must be sent
#: to or not at all (a cascade's step: a fallback would repeat a step already bought or break
#: the plan's order), so a call that does not fit is refused without trying ``fallback_model``
FIXED_MODEL = "budget_fixed_model"
FALLBACK_MODEL = "llmspend.budget.fallback_model"
REFUSED = "llmspend.budget.refused"


class _Hold:
    """The reservations of one call in every budget in effect; settled or released once."""

    __slots__ = ("request", "call", "adapter", "held", "bound", "open")

    def __init__(self, request: Request, call: Call, adapter: ProviderAdapter,
                 held: list[tuple[Ledger, Reservation]], bound: CostBound) -> None:
        self.request = request
        self.call = call
        self.adapter = adapter
        self.held = held
        self.bound = bound
        self.open = True

    @property
    def blocking(self) -> bool:
        return any(ledger.blocking for ledger, _ in self.held)

    def settle(self, actual_usd: float | None) -> None:
        self._close(lambda ledger, r: ledger.settle(r, actual_usd))

    def release(self) -> None:
        self._close(lambda ledger, r: ledger.release(r))

    def _close(self, action: Callable[[Ledger, Reservation], None]) -> None:
        if not self.open:
            return
        self.open = False
        for ledger, reservation in self.held:
            try:
                action(ledger, reservation)
            except Exception as exc:  # the answer is paid for: never fail the call now
                self.request.context.record_fault("budget", exc)
                warn_once(("budget_settle", ledger.url), "llmspend: could not settle a budget reservation in "
                          "ledger %s (%s); this call's cost is missing from the ledger", ledger.url, error_text(exc))


class BudgetStage(Stage):
    """See the module docstring. ``input_margin`` raises the local input-token estimate
    (0.1 = 10%); ``clock`` gives Unix time (tests move it to cross period boundaries)."""

    name = "budget"

    def __init__(
        self,
        prices: PriceTable | None = None,
        *,
        input_margin: float = DEFAULT_INPUT_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(input_margin, bool) or not isinstance(input_margin, int | float) or not 0 <= input_margin <= 10:
            raise ConfigError(f"budget input_margin must be a number from 0 to 10 (0.1 = 10%), got {input_margin!r}")
        self.prices = prices if prices is not None else PriceTable.default()
        self.input_margin = float(input_margin)
        self.clock = clock

    # -- before the call ---------------------------------------------------------------
    @staticmethod
    def _budgets(request: Request) -> tuple[ActiveBudget, ...]:
        budgets = current_attribution().budgets  # first: outside a budget, do nothing at all
        if not budgets or request.adapter is None or request.call is None:
            return ()
        return budgets

    def _bound(self, request: Request, call: Call, adapter: ProviderAdapter) -> CostBound:
        row = self.prices.lookup(call.model, provider=call.provider) if call.model else None
        estimate = adapter.estimate_input_tokens(call) if row is not None else 0
        return max_call_cost(call, row, estimate, input_margin=self.input_margin,
                             writes_cache=b'"cache_control"' in request.content,
                             tool_limits=adapter.tool_call_limits(call) if row is not None else ())

    def _reserve(self, request: Request, budgets: Sequence[ActiveBudget]) -> _Hold:
        """Reserve in every budget, for the request's model or else a fallback; or raise."""
        adapter = request.adapter
        assert adapter is not None
        now = self.clock()
        refusal: tuple[ActiveBudget, CostBound] | None = None
        # A request the SDK signed (AWS SigV4) cannot be rewritten to a fallback model: AWS
        # would reject the changed body; it is refused instead
        fixed = bool(request.context.extra.get(FIXED_MODEL)) or _signed(request)
        for model in _candidates(request.call, budgets, fixed=fixed):
            candidate = request if model is None else adapter.with_model(request, model)
            call = candidate.call
            if call is None:
                continue
            bound = self._bound(candidate, call, adapter)
            held: list[tuple[Ledger, Reservation]] = []
            refused = _refuses_unknown(budgets) if bound.usd is None else None
            accounts = _accounts(budgets) if refused is None else []
            try:
                for active in accounts:
                    window = period_window(active.budget.period, now)
                    amount = min(bound.usd or 0.0, _MAX_RESERVATION_USD)
                    reservation = active.ledger.reserve(active.key, amount, active.limit_usd, window)
                    if reservation is None:
                        refused = active
                        break
                    held.append((active.ledger, reservation))
            except BaseException:
                _Hold(candidate, call, adapter, held, bound).release()
                raise
            if refused is None:
                context = request.context
                if any(active.limit_usd is not None for active in budgets):
                    # Held to a limit: stages below must not make the call dearer than this
                    # reservation (the batch stage then sends it on its own).
                    context.extra[LIMITED] = True
                if bound.usd is not None:
                    context.set_attribute(RESERVED_USD, bound.usd)
                if model is not None:
                    context.set_attribute(FALLBACK_MODEL, model)
                return _Hold(candidate, call, adapter, held, bound)
            _Hold(candidate, call, adapter, held, bound).release()
            refusal = refusal or (refused, bound)
        assert refusal is not None
        active, bound = refusal
        request.context.set_attribute(REFUSED, active.name)
        raise _refusal_error(active, bound, now)

    # -- after the call ----------------------------------------------------------------
    def _actual_usd(self, hold: _Hold, outcome: Outcome | None) -> float | None:
        """What the call cost: 0 when a stage answered it, ``None`` when unknowable."""
        context = hold.request.context
        if context.served_from is not None:
            return 0.0
        if outcome is None:
            return None
        usage = usage_or_estimate(hold.adapter, hold.call, outcome)
        return price_call(self.prices, hold.call, outcome, usage, batch=bool(context.extra.get("batch_api"))).total_usd

    def _body_cost(self, hold: _Hold, body: bytes) -> float | None:
        try:
            return self._actual_usd(hold, hold.adapter.parse_response(hold.call, body))
        except Exception:  # a response of a shape no adapter foresaw: unknown, charged as reserved
            return self._actual_usd(hold, None)

    def _stream_cost(self, hold: _Hold, reader: StreamReader, complete: bool) -> float | None:
        try:
            outcome = reader.outcome(complete=complete)
            final_usage = outcome.usage is not None and not outcome.usage.estimated
            if not outcome.complete and not final_usage and hold.request.context.served_from is None:
                # Cut short before the final usage (none yet, or a partial count such as
                # Anthropic's message_start): charge the whole reservation (module docstring).
                return None
            return self._actual_usd(hold, outcome)
        except Exception:  # unreadable events: unknown, charged as reserved
            return self._actual_usd(hold, None)

    # -- the twins ---------------------------------------------------------------------
    def handle(self, request: Request, call_next: CallNext) -> Response:
        budgets = self._budgets(request)
        if not budgets:
            return call_next(request)
        hold = self._reserve(request, budgets)
        try:
            response = call_next(hold.request)
        except BaseException:
            hold.release()
            raise
        if not response.is_success:
            hold.release()
            return response
        if hold.call.stream and response.is_event_stream:
            return response.with_stream(_SettlingStream(response, hold, self))
        try:
            body = response.read()
        except BaseException:
            hold.settle(None)
            raise
        hold.settle(self._body_cost(hold, body))
        return response

    async def ahandle(self, request: Request, call_next: AsyncCallNext) -> Response:
        budgets = self._budgets(request)
        if not budgets:
            return await call_next(request)
        if any(active.ledger.blocking for active in budgets):
            hold = await self._areserve(request, budgets)
        else:
            hold = self._reserve(request, budgets)
        try:
            response = await call_next(hold.request)
        except BaseException:
            hold.release()
            raise
        if not response.is_success:
            await _offload(hold, hold.release)
            return response
        if hold.call.stream and response.is_event_stream:
            return response.with_stream(_AsyncSettlingStream(response, hold, self))
        try:
            body = await response.aread()
        except BaseException:
            hold.settle(None)
            raise
        await _offload(hold, hold.settle, self._body_cost(hold, body))
        return response


    async def _areserve(self, request: Request, budgets: Sequence[ActiveBudget]) -> _Hold:
        """:meth:`_reserve` in a worker thread. A caller cancelled while it waits does not stop
        the thread, which may still reserve: whichever of the two finishes last releases that
        reservation, so a cancelled call holds no budget (not until its lease runs out)."""
        lock = threading.Lock()
        state: dict[str, Any] = {"cancelled": False, "hold": None}

        def reserve() -> _Hold:
            hold = self._reserve(request, budgets)
            with lock:
                orphaned = state["cancelled"]
                state["hold"] = None if orphaned else hold
            if orphaned:
                hold.release()
            return hold

        try:
            return await asyncio.to_thread(reserve)
        except asyncio.CancelledError:
            with lock:
                state["cancelled"] = True
                finished, state["hold"] = state["hold"], None
            if finished is not None:  # reserved before the cancellation reached us
                if finished.blocking:  # the ledger waits on I/O: not on the event loop
                    asyncio.get_running_loop().run_in_executor(None, finished.release)
                else:
                    finished.release()
            raise


async def _offload(hold: _Hold, fn: Callable[..., None], *args: Any) -> None:
    """Run a ledger update off the event loop when the ledger waits on I/O."""
    if hold.blocking:
        await asyncio.to_thread(fn, *args)
    else:
        fn(*args)


def _refuses_unknown(budgets: Sequence[ActiveBudget]) -> ActiveBudget | None:
    """The first budget with a limit that refuses a call whose most possible cost is unknown."""
    for active in budgets:
        if active.limit_usd is not None and active.budget.on_unknown == "refuse":
            return active
    return None


def _accounts(budgets: Sequence[ActiveBudget]) -> list[ActiveBudget]:
    """One budget per ledger account, outermost first. Nested tracks naming the same feature
    and period (a recursive tracked function, a helper tracked like its caller) share one
    account: a call is reserved and charged there once, against the tightest of their limits."""
    chosen: dict[tuple[int, str], ActiveBudget] = {}
    for active in budgets:
        account = (id(active.ledger), active.key)
        kept = chosen.get(account)
        if kept is None or (active.limit_usd is not None and (kept.limit_usd is None or active.limit_usd < kept.limit_usd)):
            chosen[account] = active
    return list(chosen.values())


def _signed(request: Request) -> bool:
    """Whether the SDK signed ``request`` over its bytes (AWS SigV4)."""
    return (request.headers.get("authorization") or "").startswith("AWS4-HMAC-SHA256")


def _candidates(call: Call | None, budgets: Sequence[ActiveBudget], *, fixed: bool = False) -> list[str | None]:
    """The request's own model (``None``), then each budget's fallback, innermost first; the
    request's own only when its model is ``fixed`` (:data:`FIXED_MODEL`)."""
    models: list[str | None] = [None]
    if fixed:
        return models
    own = call.model if call is not None else None
    for active in reversed(budgets):
        fallback = active.budget.fallback_model
        if fallback is not None and fallback != own and fallback not in models:
            models.append(fallback)
    return models


def _refusal_error(active: ActiveBudget, bound: CostBound, now: float) -> BudgetExceededError:
    window = period_window(active.budget.period, now)
    limit = active.limit_usd if active.limit_usd is not None else 0.0
    try:
        totals = active.ledger.spent(active.key, window)
        remaining = max(0.0, limit - totals.spent_usd - totals.reserved_usd)
    except Exception:  # the refusal stands; only the figure for the message is missing
        remaining = float("nan")
    if bound.usd is None:
        return BudgetUnknownCostError(active.name, reason=bound.reason, limit_usd=limit,
                                      remaining_usd=remaining, resets_at=window.resets_at)
    return BudgetExceededError(active.name, limit_usd=limit, remaining_usd=remaining,
                               requested_usd=bound.usd, resets_at=window.resets_at)


class _StreamSettlement:
    """Hands on the provider's bytes unchanged; settles the hold when the stream ends."""

    def __init__(self, source: Response, hold: _Hold, stage: BudgetStage) -> None:
        self._source = source
        self._hold = hold
        self._stage = stage
        self._reader = hold.adapter.stream_reader(hold.call, hold.request)

    def _cost(self, complete: bool) -> float | None:
        return self._stage._stream_cost(self._hold, self._reader, complete)

    def _end(self, complete: bool) -> None:
        if self._hold.open:  # a no-op once the stream has ended
            self._hold.settle(self._cost(complete))


class _SettlingStream(_StreamSettlement):
    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._source.iter_bytes():
                self._reader.feed(chunk)
                yield chunk
            self._reader.flush()
        except BaseException:  # GeneratorExit included: the caller stopped early
            self._end(complete=False)
            raise
        self._end(complete=True)

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            self._end(complete=False)


class _AsyncSettlingStream(_StreamSettlement):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._source.aiter_bytes():
                self._reader.feed(chunk)
                yield chunk
            self._reader.flush()
        except BaseException:
            self._end(complete=False)  # not awaited: a cancellation must not skip the settlement
            raise
        if self._hold.open:
            await _offload(self._hold, self._hold.settle, self._cost(True))

    async def aclose(self) -> None:
        try:
            await self._source.aclose()
        finally:
            self._end(complete=False)


def _build(value: Any, context: BuildContext) -> Stage:
    if value is True:
        return BudgetStage(context.prices)
    if isinstance(value, BudgetStage):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"input_margin"}
        if unknown:
            raise ConfigError(f"budget= options: unknown {sorted(unknown)}; known: input_margin")
        return BudgetStage(context.prices, **value)
    raise ConfigError(f"budget= takes True, False, {{'input_margin': 0.1}} or a BudgetStage; got {value!r}")


SPEC = StageSpec(
    option="budget",
    order=250,
    build=_build,
    default=True,
    doc="enforce llmspend.track(budget_usd=...) budgets (does nothing outside a budgeted track)",
)
