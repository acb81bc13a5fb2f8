"""Per-call state shared by the stages of one call.

Each request entering the pipeline gets one :class:`CallContext`; every ``Request.replace``
keeps it. Stages write what they did into it (a cache hit, a retry, tokens trimmed) and the
telemetry stage turns it into span attributes and events. Keeping this on the request, not in
globals, is what lets concurrent calls through one client stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._redact import error_text

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .pricing.cost import Cost
    from .providers.base import Outcome

__all__ = ["CallContext"]

AttributeValue = str | bool | int | float | tuple[str, ...]


@dataclass(eq=False)
class CallContext:
    #: the CLIENT span of this call, once the telemetry stage has started it
    span: Span | None = None
    #: who answered instead of the provider: "cache", "batch", ... (None: the provider)
    served_from: str | None = None
    #: USD that stages saved on this call, by stage name ("cache", "trim", ...)
    savings: dict[str, float] = field(default_factory=dict)
    #: attributes set by stages, kept so outer code can read them as well
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    #: what the provider's answer said (usage, ids), once known
    outcome: Outcome | None = None
    #: the priced cost once known; ``cost.total_usd is None`` means unknown, never $0
    cost: Cost | None = None
    #: free slots for stages and plugins (keyed by their own names)
    extra: dict[str, Any] = field(default_factory=dict)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.attributes[key] = value
        # a stage may finish after the span (a stream closed by the garbage collector ends
        # the telemetry stage's first): an ended span takes no more attributes
        if self.span is not None and self.span.is_recording():
            self.span.set_attribute(key, value)

    def set_attributes(self, attributes: dict[str, AttributeValue]) -> None:
        """Several at once: one lock and one validation pass on the span."""
        self.attributes.update(attributes)
        if self.span is not None and self.span.is_recording():
            self.span.set_attributes(attributes)

    def add_event(self, name: str, attributes: dict[str, AttributeValue] | None = None) -> None:
        if self.span is not None:
            self.span.add_event(name, attributes or {})

    def add_saving(self, stage: str, usd: float) -> None:
        self.savings[stage] = self.savings.get(stage, 0.0) + usd

    def record_fault(self, stage: str, exc: BaseException) -> None:
        """Note a fail-open fault of an optimisation stage: the call went on without it."""
        self.set_attribute(f"llmspend.{stage}.error", error_text(exc))
