"""The retry stage: transient provider failures retried with tenacity.

Retried: HTTP 408, 409, 429, 500, 502, 503, 504 and 529 (Anthropic's "overloaded"), connection
errors and timeouts. A provider's ``x-should-retry`` header overrides the status list either
way, as the official SDKs honour it. The wait is the provider's ``retry-after-ms`` /
``retry-after`` when it sends one (capped), else full-jitter exponential backoff; attempts and
total time are both bounded. Each retry is an event on the call's span.

The SDKs retry on their own (``max_retries``, default 2), so ``wrap()`` turns theirs off when
this stage is on, and leaves theirs alone with ``retry=False``: attempts never multiply. A copy
of the wrapped client made with ``with_options(max_retries=N)`` keeps the SDK's off too and
sends :data:`MAX_RETRIES_HEADER` with its requests, which this stage reads as "at most N
retries" for them (and removes before sending). An error that is not retried, or the last one,
reaches the caller unchanged (the SDK raises its own exception type for it).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import tenacity
from tenacity import RetryCallState
from tenacity.wait import wait_base

from .._http import Headers, Request, Response
from ..exceptions import ConfigError
from ..pipeline import AsyncCallNext, BuildContext, CallNext, Stage, StageSpec
from ..telemetry.recorder import warn_once
from ..transports import transient_errors

__all__ = ["RetryPolicy", "RetryStage", "retry_after_seconds", "should_retry_status", "MAX_RETRIES_HEADER"]

#: per-request cap on retries, set by a wrapped SDK client's ``with_options(max_retries=N)``
MAX_RETRIES_HEADER = "x-llmspend-max-retries"

DEFAULT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry. ``max_attempts`` counts the first try (3 = up to 2 retries, like the
    SDKs' default); ``max_time_s`` bounds the whole call, waits included."""

    max_attempts: int = 3
    max_time_s: float = 60.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 60.0
    statuses: frozenset[int] = field(default=DEFAULT_STATUSES)

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError(f"retry max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("max_time_s", "initial_backoff_s", "max_backoff_s", "max_retry_after_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"retry {name} must be a number >= 0, got {value!r}")
        try:
            statuses: frozenset[object] = frozenset(self.statuses)
        except TypeError:  # a lone number
            statuses = frozenset({None})
        # "429" or 429.0 would never equal a response's status: that retries nothing, silently
        if not all(type(status) is int and 100 <= status <= 599 for status in statuses):
            raise ConfigError(f"retry statuses must be HTTP status codes (ints 100-599), e.g. {{429, 503}}; "
                              f"got {self.statuses!r}")
        object.__setattr__(self, "statuses", statuses)


# -- decisions (pure) ----------------------------------------------------------------------
def should_retry_status(status: int, headers: Headers, statuses: Collection[int]) -> bool:
    """Whether an HTTP answer is worth another try. ``x-should-retry`` wins when present."""
    hint = (headers.get("x-should-retry") or "").lower()
    if hint == "true":
        return True
    if hint == "false":
        return False
    return status in statuses


def retry_after_seconds(headers: Headers, now: float | None = None) -> float | None:
    """The wait the provider asked for, from ``retry-after-ms`` or ``retry-after`` (seconds
    or an HTTP date); ``None`` when absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class wait_retry_after(wait_base):
    """The provider's requested wait if it sent one (capped), else ``fallback``'s."""

    def __init__(self, fallback: wait_base, cap_s: float) -> None:
        self.fallback = fallback
        self.cap_s = cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            response = outcome.result()
            if isinstance(response, Response):
                asked = retry_after_seconds(response.headers)
                if asked is not None and asked <= self.cap_s:
                    return asked
        return float(self.fallback(retry_state))


def _reason(retry_state: RetryCallState) -> str:
    outcome = retry_state.outcome
    if outcome is None:
        return "unknown"
    if outcome.failed:
        exc = outcome.exception()
        return type(exc).__qualname__ if exc is not None else "unknown"
    response = outcome.result()
    return str(response.status_code) if isinstance(response, Response) else "unknown"


class RetryStage(Stage):
    """See the module docstring. ``sleep``/``asleep`` are injectable for tests."""

    name = "retry"

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._asleep = asleep
        policy = self.policy
        self._stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(policy.max_attempts) | tenacity.stop_before_delay(
            policy.max_time_s)
        self._wait = wait_retry_after(
            tenacity.wait_random_exponential(multiplier=policy.initial_backoff_s, max=policy.max_backoff_s),
            policy.max_retry_after_s,
        )
        self._transient = transient_errors()
        self._retry = tenacity.retry_if_exception_type(self._transient) | tenacity.retry_if_result(
            self._retry_response
        )
        #: whether any request may carry MAX_RETRIES_HEADER (a client copy asked for it):
        #: until then no call pays for looking
        self.reads_max_retries = False
        self._stops: dict[int, tenacity.stop.stop_base] = {}

    def _stop_for(self, request: Request) -> tuple[Request, tenacity.stop.stop_base]:
        """The request without :data:`MAX_RETRIES_HEADER`, and the stop it asks for (else the
        policy's)."""
        raw = request.headers.get(MAX_RETRIES_HEADER)
        if raw is None:
            return request, self._stop
        request = request.replace(headers=request.headers.without(MAX_RETRIES_HEADER))
        try:
            retries = int(raw)
        except ValueError:
            retries = -1
        if retries < 0:
            warn_once(("retry-header", raw), "llmspend: ignoring %s: %r is not a number of retries >= 0",
                      MAX_RETRIES_HEADER, raw)
            return request, self._stop
        stop = self._stops.get(retries)
        if stop is None:
            stop = self._stops[retries] = tenacity.stop_after_attempt(retries + 1) | tenacity.stop_before_delay(
                self.policy.max_time_s)
        return request, stop

    def _retry_response(self, response: object) -> bool:
        # Only errors are retried (the SDKs consult x-should-retry on errors alone), and a
        # success must not pay for reading its headers.
        return isinstance(response, Response) and response.status_code >= 400 and should_retry_status(
            response.status_code, response.headers, self.policy.statuses
        )

    # The loop is ours and the decisions are tenacity's strategies (stop, wait, retry). Driving
    # them by hand keeps the first attempt, which nearly always succeeds, free of tenacity's
    # per-call machinery: that attempt is on every LLM call's path.
    def _next_wait(self, request: Request, state: RetryCallState | None, start: float,
                   outcome: Response | BaseException, stop: tenacity.stop.stop_base) -> tuple[RetryCallState, float | None]:
        """Record a failed attempt; the wait before the next one, or None to give up."""
        if state is None:
            state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
            state.start_time = start
        else:
            state.prepare_for_next_attempt()
        if isinstance(outcome, BaseException):
            state.set_exception((type(outcome), outcome, outcome.__traceback__))
        else:
            state.set_result(outcome)
        if not self._retry(state):
            return state, None
        state.upcoming_sleep = self._wait(state)
        if stop(state):
            return state, None
        self._record(request, state)
        state.idle_for += state.upcoming_sleep
        return state, state.upcoming_sleep

    @staticmethod
    def _record(request: Request, retry_state: RetryCallState) -> None:
        request.context.add_event(
            "llmspend.retry",
            {
                "llmspend.retry.attempt": retry_state.attempt_number,
                "llmspend.retry.reason": _reason(retry_state),
                "llmspend.retry.wait_s": float(retry_state.upcoming_sleep),
            },
        )

    def handle(self, request: Request, call_next: CallNext) -> Response:
        start, state, stop = time.monotonic(), None, self._stop
        if self.reads_max_retries:
            request, stop = self._stop_for(request)
        while True:
            try:
                response = call_next(request)
            except self._transient as exc:
                state, wait = self._next_wait(request, state, start, exc, stop)
                if wait is None:
                    raise
            else:
                if not self._retry_response(response):
                    return response
                state, wait = self._next_wait(request, state, start, response, stop)
                if wait is None:
                    return response  # the last answer, as the provider gave it
                response.close()  # release the connection before waiting
            self._sleep(wait)

    async def ahandle(self, request: Request, call_next: AsyncCallNext) -> Response:
        start, state, stop = time.monotonic(), None, self._stop
        if self.reads_max_retries:
            request, stop = self._stop_for(request)
        while True:
            try:
                response = await call_next(request)
            except self._transient as exc:
                state, wait = self._next_wait(request, state, start, exc, stop)
                if wait is None:
                    raise
            else:
                if not self._retry_response(response):
                    return response
                state, wait = self._next_wait(request, state, start, response, stop)
                if wait is None:
                    return response
                await response.aclose()
            await self._asleep(wait)


def _build(value: Any, context: BuildContext) -> Stage:
    if value is True:
        return RetryStage()
    if isinstance(value, RetryPolicy):
        return RetryStage(value)
    if isinstance(value, RetryStage):
        return value
    if isinstance(value, Mapping):
        try:
            return RetryStage(replace(RetryPolicy(), **value))
        except TypeError as exc:
            raise ConfigError(f"retry= options: {exc}; known: max_attempts, max_time_s, initial_backoff_s, "
                              "max_backoff_s, max_retry_after_s, statuses") from exc
    if isinstance(value, int) and not isinstance(value, bool):
        return RetryStage(RetryPolicy(max_attempts=value + 1))
    raise ConfigError(
        f"retry= takes True, False, a number of retries, a dict of RetryPolicy fields or a RetryPolicy; got {value!r}"
    )


SPEC = StageSpec(option="retry", order=600, build=_build, default=True, doc="retries of transient failures")
