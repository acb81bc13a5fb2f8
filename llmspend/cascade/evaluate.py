"""Running a plan over a table of outcomes: what it would have answered, and at what cost.

This replays the stage's decisions offline: each step's scorer reads the same features the
stage computes at run time (ONNX step scorers run in onnxruntime, as in the stage), a step is
accepted when its score reaches the threshold, and the cost is what every step called so far
cost on that query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import ConfigError
from ..scoring.base import Scorer
from .data import OutcomeTable
from .fit import FeatureTable
from .plan import OnnxStepScorer, Plan, Step

__all__ = ["evaluate_plan", "evaluate_steps", "feature_table", "frontier_curve", "step_scores"]


def _scores(plan: Plan, steps: Sequence[Step], k: int, feats: FeatureTable, rows: np.ndarray) -> np.ndarray:
    """Step ``k``'s P(correct) on ``rows``. ONNX scorers are loaded once per table and each row is
    scored once per scorer (the frontier's chains share scorers), and only rows that reach
    the step are scored at all."""
    table = feats.table
    index = [table.index(s.model) for s in steps]
    model, prefix = index[k], index[:k]
    spec = plan.scorers[steps[k].scorer or ""]
    if not isinstance(spec, OnnxStepScorer):
        return spec.predict(feats.matrix(model, prefix, spec.features)[rows])  # type: ignore[no-any-return]
    path = str(spec.resolve(plan.base_dir).resolve())
    memo = feats.scored.setdefault((path, model, tuple(prefix)), np.full(len(table), np.nan))
    todo = rows[np.isnan(memo[rows])]
    if len(todo):
        if path not in feats.scorers:
            from .scorers import load_onnx_scorer

            feats.scorers[path] = load_onnx_scorer(path)
        x = feats.matrix(model, prefix, spec.features)[todo]
        memo[todo] = feats.scorers[path].score(
            [table.queries[i] for i in todo], [table.answers[i][model] for i in todo],
            model=table.models[model], features=x.tolist(),
        )
    scores: np.ndarray = memo[rows]
    return scores


def step_scores(plan: Plan, steps: Sequence[Step], feats: FeatureTable) -> np.ndarray:
    """(rows, len(steps)-1): each non-final step's P(correct) on every row of ``feats``."""
    rows = np.arange(len(feats.table))
    columns = [_scores(plan, steps, k, feats, rows) for k in range(len(steps) - 1)]
    return np.stack(columns, axis=1) if columns else np.zeros((len(rows), 0))


def evaluate_steps(plan: Plan, steps: Sequence[Step], feats: FeatureTable) -> dict[str, Any]:
    """Accuracy, mean USD per query and calls per query of the chain ``steps`` on ``feats``."""
    table = feats.table
    missing = [s.model for s in steps if s.model not in table.models]
    if missing:
        raise ConfigError(f"{table.source or 'the data'} has no outcomes for {', '.join(missing)}, which the plan calls")
    index = np.array([table.index(s.model) for s in steps])
    n = len(table)
    accepted = np.full(n, len(steps) - 1)
    reaching = np.arange(n)
    for k, step in enumerate(steps[:-1]):
        take = _scores(plan, steps, k, feats, reaching) >= float(step.threshold if step.threshold is not None else np.inf)
        accepted[reaching[take]] = k
        reaching = reaching[~take]
    every = np.arange(n)
    right = table.correct[every, index[accepted]]
    spent = np.cumsum(table.cost[:, index], axis=1)[every, accepted]
    return {
        "accuracy": float(right.mean()),
        "cost_usd_per_query": float(spent.mean()),
        "calls_per_query": {s.model: float((accepted >= k).mean()) for k, s in enumerate(steps)},
        "accepted_at": {s.model: float((accepted == k).mean()) for k, s in enumerate(steps)},
    }


def feature_table(plan: Plan, table: OutcomeTable, *, text_scorer: Scorer | None = None) -> FeatureTable:
    """The table's features, with text scores when the plan reads them (from ``text_scorer``,
    else from the scorer the plan names)."""
    feats = FeatureTable(table)
    if plan.text_scorer is not None or text_scorer is not None:
        if text_scorer is None:
            from .scorers import load_text_scorer

            assert plan.text_scorer is not None
            text_scorer = load_text_scorer(plan.text_scorer, plan.base_dir)
        feats.text = feats.score_text(text_scorer, range(len(table)))
    return feats


def evaluate_plan(plan: Plan, table: OutcomeTable, *, text_scorer: Scorer | None = None) -> dict[str, Any]:
    """The plan on ``table`` beside every single model: the JSON of ``llmspend cascade eval``."""
    result = evaluate_steps(plan, plan.steps, feature_table(plan, table, text_scorer=text_scorer))
    return {
        "accuracy": result["accuracy"],
        "cost_usd_per_query": result["cost_usd_per_query"],
        "calls_per_query": result["calls_per_query"],
        "best_single": table.best_single(),
        "singles": table.singles(),
    }


def frontier_curve(plan: Plan, feats: FeatureTable) -> list[tuple[float, float]]:
    """(USD per query, accuracy) on ``feats`` of every operating point the fit kept, the
    plan's own included: the cascade's curve across budgets."""
    points = [evaluate_steps(plan, p.steps, feats) for p in plan.frontier]
    points.append(evaluate_steps(plan, plan.steps, feats))
    return sorted((p["cost_usd_per_query"], p["accuracy"]) for p in points)
