"""Who a call is for: the feature, user and tags of the code that made it.

Attribution travels in a :class:`contextvars.ContextVar`, so it follows the code into asyncio
tasks and into threads started through ``contextvars.copy_context()``, and never leaks between
concurrent requests. ``llmspend.track`` sets it; the telemetry stage reads it for every call,
and the budget stage reads the budgets in effect.

Spans always carry the real feature, user and tags. Metrics carry only the feature, and only
the first :func:`set_max_metric_features` distinct values a process sees (default 100); later
ones are counted under ``llmspend.feature="_other"``. Every distinct attribute value is a new
time series in a metrics backend, so an unbounded set (say, a feature named after each
document) would swamp it; users never go on metrics at all.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .exceptions import ConfigError

if TYPE_CHECKING:
    from .budgets import ActiveBudget
    from .context import CallContext
    from .pricing.cost import Cost

__all__ = [
    "Attribution",
    "UNATTRIBUTED",
    "CostSink",
    "current_attribution",
    "set_attribution",
    "reset_attribution",
    "metric_feature",
    "set_max_metric_features",
    "DEFAULT_MAX_METRIC_FEATURES",
    "OTHER_FEATURE",
]

DEFAULT_MAX_METRIC_FEATURES = 100
#: the metric value of every feature past the cardinality guard's limit
OTHER_FEATURE = "_other"


class CostSink(Protocol):
    """Something that wants every priced call made inside it (a tracked scope's totals)."""

    def add_call(self, cost: Cost, context: CallContext) -> None: ...


@dataclass(frozen=True)
class Attribution:
    feature: str | None = None
    user: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    #: the tracked scopes this call is inside, innermost last
    sinks: tuple[CostSink, ...] = ()
    #: the feature value as it may go on metrics (None when over the cardinality guard)
    metric_feature: str | None = None
    #: the budgets in effect, outermost first: a call must fit every one of them
    budgets: tuple[ActiveBudget, ...] = ()

    def span_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.feature is not None:
            attrs["llmspend.feature"] = self.feature
        if self.user is not None:
            attrs["llmspend.user"] = self.user
        for key, value in self.tags.items():
            attrs[f"llmspend.tag.{key}"] = value
        return attrs

    def metric_attributes(self) -> dict[str, str]:
        return {"llmspend.feature": self.metric_feature} if self.metric_feature is not None else {}

    def record(self, cost: Cost, context: CallContext) -> None:
        for sink in self.sinks:
            sink.add_call(cost, context)


#: the attribution of a call made outside any ``track()``: no feature, user, tags, sinks or
#: budgets (the telemetry stage skips its attribution work for it by identity)
UNATTRIBUTED = Attribution()
_current: ContextVar[Attribution] = ContextVar("llmspend_attribution", default=UNATTRIBUTED)


def current_attribution() -> Attribution:
    return _current.get()


def set_attribution(attribution: Attribution) -> Token[Attribution]:
    """Make ``attribution`` current; undo with :func:`reset_attribution` in the same context."""
    return _current.set(attribution)


def reset_attribution(token: Token[Attribution]) -> None:
    _current.reset(token)


class _FeatureGuard:
    """Admits the first ``limit`` distinct feature names onto metrics; the rest are _other."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, feature: str | None) -> str | None:
        if feature is None:
            return None
        if feature in self._seen:  # the common case, without the lock
            return feature
        with self._lock:
            if feature in self._seen or len(self._seen) < self.limit:
                self._seen.add(feature)
                return feature
        return OTHER_FEATURE


_guard = _FeatureGuard(DEFAULT_MAX_METRIC_FEATURES)


def metric_feature(feature: str | None) -> str | None:
    """The value ``feature`` may take on metrics under the cardinality guard."""
    return _guard.admit(feature)


def set_max_metric_features(limit: int) -> None:
    """Allow at most ``limit`` distinct ``llmspend.feature`` values on metrics in this process
    (default 100); later features are counted as ``"_other"``. Call it at start-up: it also
    forgets the features seen so far. ``0`` counts every feature as ``"_other"``."""
    global _guard
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigError(f"set_max_metric_features takes a whole number >= 0, got {limit!r}")
    _guard = _FeatureGuard(limit)
