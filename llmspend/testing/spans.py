"""Synthetic span files for tests and benchmarks of ``llmspend report``.

Each line is a span in the console exporter's JSON form (``ReadableSpan.to_json(indent=None)``),
shaped like the spans llmspend's telemetry stage writes: a CLIENT span with ``gen_ai.*`` usage,
``llmspend.cost.*``, a feature and a user, some served from a cache or trimmed, a few with no
price (cost unknown) and a few failed. The figures the lines carry are returned as well, so a
test can check a report against them without re-reading the file.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

__all__ = ["SyntheticTruth", "synthetic_spans", "write_synthetic_spans"]

_MODELS = (("gpt-4o-mini-2024-07-18", 0.15, 0.60), ("gpt-4o-2024-08-06", 2.50, 10.0), ("o4-mini", 1.10, 4.40))
_FEATURES = ("support.answer", "support.classify", "search.summarise", "billing.explain")
_START = datetime(2025, 3, 1, tzinfo=UTC)


@dataclass
class SyntheticTruth:
    """What the generated spans add up to."""

    calls: int = 0
    cost_usd: float = 0.0
    unknown: int = 0
    failed: int = 0
    saved: dict[str, float] = field(default_factory=dict)
    by_day: dict[str, float] = field(default_factory=dict)
    by_feature: dict[str, float] = field(default_factory=dict)


def synthetic_spans(n: int, *, seed: int = 0, users: int = 1000, days: int = 30,
                    truth: SyntheticTruth | None = None) -> Iterator[str]:
    """``n`` span lines (without newlines), deterministic for a ``seed``."""
    rng = random.Random(seed)
    truth = truth if truth is not None else SyntheticTruth()
    step = timedelta(days=days) / max(n, 1)
    for i in range(n):
        model, price_in, price_out = _MODELS[rng.randrange(3)]
        feature = _FEATURES[rng.randrange(len(_FEATURES))]
        start = _START + step * i
        day = start.date().isoformat()
        tokens_in, tokens_out = rng.randint(20, 3000), rng.randint(5, 600)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model.split("-2024")[0],
            "gen_ai.response.model": model,
            "llmspend.feature": feature,
            "llmspend.user": f"user-{rng.randrange(users)}",
            "gen_ai.usage.input_tokens": tokens_in,
            "gen_ai.usage.output_tokens": tokens_out,
        }
        roll = rng.random()
        if roll < 0.01:
            attrs["error.type"] = "429"
            truth.failed += 1
        elif roll < 0.02:
            attrs["llmspend.cost.status"] = "unknown_model"
            truth.unknown += 1
        else:
            cost = (tokens_in * price_in + tokens_out * price_out) / 1e6
            if roll < 0.12:  # served from the cache: nothing bought, the price is the saving
                attrs.update({"llmspend.served_from": "cache", "llmspend.cost.saved_usd": cost,
                              "llmspend.cost.saved.cache_usd": cost})
                truth.saved["cache"] = truth.saved.get("cache", 0.0) + cost
                cost = 0.0
            elif roll < 0.20:  # trimmed: a quarter of the input not sent
                trimmed = tokens_in // 3 * price_in / 1e6
                attrs.update({"llmspend.trim.tokens_removed": tokens_in // 3, "llmspend.cost.saved_usd": trimmed})
                truth.saved["trim"] = truth.saved.get("trim", 0.0) + trimmed
            attrs.update({"llmspend.cost.status": "ok", "llmspend.cost.usd": cost, "gen_ai.usage.cost": cost})
            truth.cost_usd += cost
            truth.by_day[day] = truth.by_day.get(day, 0.0) + cost
            truth.by_feature[feature] = truth.by_feature.get(feature, 0.0) + cost
        truth.calls += 1
        yield json.dumps({
            "name": f"chat {attrs['gen_ai.request.model']}",
            "context": {"trace_id": f"0x{rng.getrandbits(128):032x}", "span_id": f"0x{rng.getrandbits(64):016x}",
                        "trace_state": "[]"},
            "kind": "SpanKind.CLIENT",
            "parent_id": None,
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "end_time": (start + timedelta(milliseconds=300)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "status": {"status_code": "ERROR" if "error.type" in attrs else "UNSET"},
            "attributes": attrs,
            "events": [],
            "links": [],
            "resource": {"attributes": {"service.name": "synthetic"}, "schema_url": ""},
        })


def write_synthetic_spans(path: str | Path | IO[str], n: int, *, seed: int = 0, **kwargs: Any) -> SyntheticTruth:
    """Write ``n`` span lines to ``path`` and return what they add up to."""
    truth = SyntheticTruth()
    handle = path if not isinstance(path, str | Path) else open(path, "w", encoding="utf-8")
    try:
        for line in synthetic_spans(n, seed=seed, truth=truth, **kwargs):
            handle.write(line + "\n")
    finally:
        if handle is not path:
            handle.close()
    return truth
