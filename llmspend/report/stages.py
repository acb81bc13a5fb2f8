"""Which stage saved what on a call: the one place that maps span attributes to stage names.

A call span says what llmspend's stages saved in one of two ways:

1. **Per stage** (exact): ``llmspend.cost.saved.<stage>_usd`` (``llmspend.cost.saved.cache_usd``,
   ``llmspend.cost.saved.trim_usd``, ...), one attribute for each stage that saved something.
2. **In total** (``llmspend.cost.saved_usd``), with markers saying which stage acted:

   ============================================  =========
   attribute                                     stage
   ============================================  =========
   ``llmspend.served_from = "<stage>"``          that stage (``cache``, ``batch``, ...)
   ``llmspend.cache.*`` (``llmspend.cache.hit``)  cache
   ``llmspend.cascade.*``                        cascade
   ``llmspend.trim.*``                           trim
   ``llmspend.batch.*``                          batch
   ============================================  =========

   ``llmspend.<stage>.error`` (a stage that failed open) and ``llmspend.cache.hit = false`` are
   not markers: that stage saved nothing. When exactly one stage is marked the total is its;
   when none or several are, the total goes to ``unattributed``, so it is counted once and
   never guessed.

When both are present, the per-stage figures are used and any part of the total they do not
cover goes through the markers as above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["STAGES", "UNATTRIBUTED", "SAVED_TOTAL", "SAVED_PREFIX", "stage_savings", "marked_stages"]

#: the built-in stages that save money, in the order reports list them
STAGES = ("cache", "cascade", "trim", "batch")
UNATTRIBUTED = "unattributed"
SAVED_TOTAL = "llmspend.cost.saved_usd"
SAVED_PREFIX = "llmspend.cost.saved."
SERVED_FROM = "llmspend.served_from"

_MARKER_PREFIXES = tuple((f"llmspend.{stage}.", stage) for stage in STAGES)
# Differences below this are float noise between a total and the sum of its parts.
_EPSILON = 1e-12


def _usd(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _stage_name(key: str) -> str:
    name = key[len(SAVED_PREFIX):]
    return name[: -len("_usd")] if name.endswith("_usd") else name


def marked_stages(attributes: Mapping[str, Any]) -> set[str]:
    """The stages a call's attributes say acted on it (see the table above)."""
    stages: set[str] = set()
    served = attributes.get(SERVED_FROM)
    if isinstance(served, str) and served:
        stages.add(served)
    for key, value in attributes.items():
        if not key.startswith("llmspend.") or key.endswith(".error"):
            continue
        for prefix, stage in _MARKER_PREFIXES:
            if key.startswith(prefix):
                if key == "llmspend.cache.hit" and value is not True:
                    break
                stages.add(stage)
                break
    return stages


def stage_savings(attributes: Mapping[str, Any]) -> dict[str, float]:
    """USD saved on one call, by stage name (empty when nothing was saved)."""
    per_stage: dict[str, float] = {}
    for key in attributes:
        if key.startswith(SAVED_PREFIX):
            usd = _usd(attributes[key])
            if usd:
                stage = _stage_name(key)
                per_stage[stage] = per_stage.get(stage, 0.0) + usd
    total = _usd(attributes.get(SAVED_TOTAL))
    if not total and not per_stage:
        return per_stage
    rest = (total or 0.0) - sum(per_stage.values())
    if rest > _EPSILON * max(1.0, abs(total or 0.0)):
        marked = marked_stages(attributes) - set(per_stage) if per_stage else marked_stages(attributes)
        stage = next(iter(marked)) if len(marked) == 1 else UNATTRIBUTED
        per_stage[stage] = per_stage.get(stage, 0.0) + rest
    return per_stage
