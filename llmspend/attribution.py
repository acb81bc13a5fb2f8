"""Who a call is for: the feature, user and tags of the code that made it.

Attribution travels in a :class:`contextvars.ContextVar`, so it follows the code into asyncio
tasks and into threads started through ``contextvars.copy_context()``, and never leaks between
concurrent requests. ``llmspend.track`` sets it; the telemetry stage reads it for every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .context import CallContext
    from .pricing.cost import Cost

__all__ = ["Attribution", "CostSink", "current_attribution"]


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


_EMPTY = Attribution()
_current: ContextVar[Attribution] = ContextVar("llmspend_attribution", default=_EMPTY)


def current_attribution() -> Attribution:
    return _current.get()
