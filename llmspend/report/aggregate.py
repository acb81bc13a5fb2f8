"""Where the money went: spans folded into counters as they are read, never held.

Only LLM call spans count: those with ``gen_ai.operation.name`` (llmspend's CLIENT spans and
other GenAI instrumentations'). A tracked scope's parent span carries totals of the calls
inside it and has no ``gen_ai.operation.name``, and an SDK's own span around llmspend's (the
anthropic SDK's) is marked ``llmspend.priced_in_child``, and a merged batch request's span
``llmspend.batch.merged`` (its callers' spans carry the shares), so nothing is counted twice.

A call is one of:

- **priced**: it has ``llmspend.cost.usd`` (or the conventions' ``gen_ai.usage.cost``);
- **failed**: no cost, and ``error.type`` says the provider call failed (nothing to bill);
- **unknown cost**: no cost and no error (an unpriced model, an unreadable response, a span
  from an instrumentation that does not price): counted apart, never as $0, with the reason
  from ``llmspend.cost.status`` where there is one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .spans import ReadStats, SpanRecord
from .stages import STAGES, stage_savings

__all__ = ["Totals", "SpendReport", "DIMENSIONS", "NONE", "OTHER"]

#: what a report breaks spend down by, and the span attribute each reads
DIMENSIONS = ("model", "feature", "user", "day")
NONE = "(none)"
OTHER = "(other)"

_OPERATION = "gen_ai.operation.name"
_PRICED_IN_CHILD = "llmspend.priced_in_child"
_BATCH_MERGED = "llmspend.batch.merged"
_BATCH_UNCLAIMED = "llmspend.batch.unclaimed"
_COST = ("llmspend.cost.usd", "gen_ai.usage.cost")
_DEFAULT_MAX_KEYS = 10_000


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _tokens(value: Any) -> int:
    return value if type(value) is int else 0


@dataclass(slots=True)
class Totals:
    """Counters for one group of calls (a model, a feature, a day, or all of them)."""

    calls: int = 0
    priced_calls: int = 0
    unknown_cost_calls: int = 0
    failed_calls: int = 0
    #: priced from a local token count, not the provider's usage
    estimated_calls: int = 0
    #: answered by a stage (cache, batch, ...) without a provider call
    served_by_stage: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0

    @property
    def mean_cost_usd(self) -> float | None:
        """Mean cost of the priced calls (``None``: none priced)."""
        return self.cost_usd / self.priced_calls if self.priced_calls else None

    def add(self, call: Totals) -> None:
        """Add another group's counters (or one call's, see :func:`call_totals`)."""
        self.calls += call.calls
        self.priced_calls += call.priced_calls
        self.unknown_cost_calls += call.unknown_cost_calls
        self.failed_calls += call.failed_calls
        self.estimated_calls += call.estimated_calls
        self.served_by_stage += call.served_by_stage
        self.cost_usd += call.cost_usd
        self.saved_usd += call.saved_usd
        self.input_tokens += call.input_tokens
        self.cached_input_tokens += call.cached_input_tokens
        self.output_tokens += call.output_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "priced_calls": self.priced_calls,
            "unknown_cost_calls": self.unknown_cost_calls,
            "failed_calls": self.failed_calls,
            "estimated_calls": self.estimated_calls,
            "served_by_stage": self.served_by_stage,
            # None when nothing in the group could be priced: unknown, not $0
            "cost_usd": None if self.unknown_cost_calls and not self.priced_calls else self.cost_usd,
            "mean_cost_usd": self.mean_cost_usd,
            "saved_usd": self.saved_usd,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
        }


def call_totals(cost: float | None, failed: bool, saved: float, attrs: Mapping[str, Any]) -> Totals:
    """One call as counters, worked out once and then added to every group it belongs to."""
    priced = cost is not None
    get = attrs.get
    return Totals(  # positional: this runs once a span
        1,
        int(priced),
        int(not priced and not failed),
        int(not priced and failed),
        int(priced and get("llmspend.cost.estimated") is True),
        int(bool(get("llmspend.served_from"))),
        cost or 0.0,
        saved,
        _tokens(get("gen_ai.usage.input_tokens")),
        _tokens(get("gen_ai.usage.cache_read.input_tokens")),
        _tokens(get("gen_ai.usage.output_tokens")),
    )


@dataclass
class StageSaving:
    usd: float = 0.0
    calls: int = 0


@dataclass
class SpendReport:
    """Spend by model, feature, user and day, and savings by stage.

    Each dimension keeps at most ``max_keys`` groups; calls beyond that are folded into
    ``(other)`` (and counted in ``overflow``), so memory stays bounded by ``max_keys``, not by
    the number of spans or of distinct users.
    """

    max_keys: int = _DEFAULT_MAX_KEYS
    total: Totals = field(default_factory=Totals)
    groups: dict[str, dict[str, Totals]] = field(default_factory=lambda: {d: {} for d in DIMENSIONS})
    savings: dict[str, StageSaving] = field(default_factory=dict)
    unknown_reasons: dict[str, int] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=dict)
    #: non-LLM spans read and left out (parents, HTTP spans, ...)
    other_spans: int = 0
    read: ReadStats = field(default_factory=ReadStats)

    # -- building ---------------------------------------------------------------------
    def add(self, record: SpanRecord) -> bool:
        """Count one span; returns whether it was an LLM call."""
        attrs = record.attributes
        # the child llmspend span counts it; a merged batch request's callers count their shares
        # (unless every one of them gave up: then the merged request counts as the call it was)
        merged = attrs.get(_BATCH_MERGED) and not attrs.get(_BATCH_UNCLAIMED)
        if _OPERATION not in attrs or attrs.get(_PRICED_IN_CHILD) or merged:
            self.other_spans += 1
            return False
        cost = None
        for name in _COST:
            cost = _number(attrs.get(name))
            if cost is not None:
                break
        failed = cost is None and bool(attrs.get("error.type"))
        if cost is None and not failed:
            reason = str(attrs.get("llmspend.cost.status") or "no cost attribute")
            self.unknown_reasons[reason] = self.unknown_reasons.get(reason, 0) + 1
        by_stage = stage_savings(attrs)
        saved = sum(by_stage.values())
        for stage, usd in by_stage.items():
            entry = self.savings.get(stage)
            if entry is None:
                entry = self.savings[stage] = StageSaving()
            entry.usd += usd
            entry.calls += 1
        call = call_totals(cost, failed, saved, attrs)
        self.total.add(call)
        keys = (
            attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model"),
            attrs.get("llmspend.feature"),
            attrs.get("llmspend.user"),
            record.day,
        )
        for dimension, key in zip(DIMENSIONS, keys):
            self._group(dimension, str(key) if key not in (None, "") else NONE).add(call)
        return True

    def _group(self, dimension: str, key: str) -> Totals:
        groups = self.groups[dimension]
        totals = groups.get(key)
        if totals is None:
            if len(groups) >= self.max_keys and key != OTHER:
                self.overflow[dimension] = self.overflow.get(dimension, 0) + 1
                return self._group(dimension, OTHER)
            totals = groups[key] = Totals()
        return totals

    def extend(self, records: Iterable[SpanRecord]) -> SpendReport:
        for record in records:
            self.add(record)
        return self

    # -- reading ----------------------------------------------------------------------
    def by(self, dimension: str, *, top: int | None = None) -> list[tuple[str, Totals]]:
        """Groups of ``dimension`` by cost, highest first, the ``top`` first with the rest
        summed into ``(other)``. Days are in date order, the ``top`` latest kept and the
        earlier ones summed into an ``(other)`` row before them."""
        if dimension not in self.groups:
            raise KeyError(f"no dimension {dimension!r}; one of {', '.join(DIMENSIONS)}")
        items = list(self.groups[dimension].items())
        if dimension == "day":
            items.sort(key=lambda kv: kv[0])
        else:
            items.sort(key=lambda kv: (-kv[1].cost_usd, -kv[1].calls, kv[0]))
        if top is not None and len(items) > top:
            rest = Totals()
            if dimension == "day":  # the latest days are the ones a reader looks for
                for _, t in items[:-top]:
                    rest.add(t)
                return [(f"{OTHER} {len(items) - top} earlier", rest)] + items[-top:]
            for _, t in items[top:]:
                rest.add(t)
            items = items[:top] + [(f"{OTHER} {len(items) - top} more", rest)]
        return items

    def savings_by_stage(self) -> list[tuple[str, StageSaving]]:
        order = {s: i for i, s in enumerate(STAGES)}
        return sorted(self.savings.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))

    def mean_cost_usd(self, feature: str | None = None) -> float | None:
        """Mean cost of a priced call (of one ``feature``); ``None`` when none was priced."""
        totals = self.total if feature is None else self.groups["feature"].get(feature)
        return totals.mean_cost_usd if totals is not None else None

    def as_dict(self, *, top: int | None = None) -> dict[str, Any]:
        return {
            "total": self.total.as_dict(),
            **{f"by_{d}": {k: t.as_dict() for k, t in self.by(d, top=top)} for d in DIMENSIONS},
            "saved_by_stage": {s: {"usd": v.usd, "calls": v.calls} for s, v in self.savings_by_stage()},
            "unknown_cost_reasons": dict(self.unknown_reasons),
            "other_spans": self.other_spans,
            "overflow": dict(self.overflow),
            "read": self.read.as_dict(),
        }

