"""Cascades: call a cheap model first, score its answer, escalate only when needed.

    from llmspend.cascade import load_table, fit_plan, evaluate_plan

    plan = fit_plan(load_table("train.csv"), budget=0.0002)     # or max_accuracy_drop=0.01
    plan.save("plan.json")
    evaluate_plan(plan, load_table("test.csv"))
    client = llmspend.wrap(openai.OpenAI(), cascade="plan.json")  # model="cascade" runs it

Plans (:mod:`.plan`) and the pipeline stage need nothing beyond llmspend itself; fitting and
evaluating (:mod:`.data`, :mod:`.fit`, :mod:`.evaluate`) need numpy (``llmspend[cascade]``)
and are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .plan import FrontierPoint, Plan, Step, load_plan

__all__ = [
    "Plan",
    "Step",
    "FrontierPoint",
    "load_plan",
    "OutcomeTable",
    "load_table",
    "fit_plan",
    "fit_plans",
    "evaluate_plan",
    "TextScorerSource",
]

_LAZY = {
    "OutcomeTable": "data",
    "load_table": "data",
    "fit_plan": "fit",
    "fit_plans": "fit",
    "TextScorerSource": "fit",
    "evaluate_plan": "evaluate",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
