"""Changes to the cascade fit that might reach the issue's goal, judged on the training splits
alone; each finished candidate then evaluated once on the test split. An analysis, not a method:
nothing here changes llmspend.

The variants are subclasses of the fit's own search (``llmspend.cascade.fit``), swapped in for
one run:

- ``vote``: when every step rejects, return the answer most of the called models gave (equal
  normalised final answers, as the agreement features compare them; a tie goes to the answer of
  the later step, and the answer returned is the latest step's of the winning group), instead of
  the last model's answer. No extra call: the earlier answers are paid for.
- extra scorer features: ``agree_first`` (agreement with the first step's answer),
  ``agree_min``/``agree_max`` (over the earlier steps), ``plural`` (the answer is in the largest
  group of equal answers so far) and ``top_share`` (that group's share).
- ``pool``: every step scorer is also trained on the other training splits' rows (same nine
  models; the other splits' rows are other questions, so no held-out row leaks).
- ``depth``, ``l2``: the longest chain searched, the scorers' L2 penalty.
- selection rules (``--selection``): the current one (most accurate within the budget), bagged
  (the candidate most often best over 100 bootstrap resamples of the rows) and one-SE (the
  cheapest within one standard error of the most accurate).

``--nested``: each variant by nested 5x5-fold cross-validation on ``*_train.csv`` (MMLU,
TriviaQA, GSM8K), margin z=0, at four objectives: the default (within 1 point of the best
training model), a budget of 40% of the best training model's cost, and 20% and 40% of the
dearest model's. ``--test NAME``: one held-out evaluation of a named variant on ``*_test.csv``
(numeric scorers, margin chosen by nested cross-validation as ``cascade fit`` does), appended
to ``benchmarks/results/cascade_ideas_test_log.jsonl``; run it once per candidate, after the
candidate was chosen on train, never as a tuning loop.

    PYTHONPATH=$PWD python benchmarks/cascade_ideas.py --nested
    PYTHONPATH=$PWD python benchmarks/cascade_ideas.py --selection
    PYTHONPATH=$PWD python benchmarks/cascade_ideas.py --test vote
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import llmspend.cascade.plan as plan_module
from llmspend.cascade import fit as F
from llmspend.cascade.data import OutcomeTable, load_table
from llmspend.cascade.heads import fit_step_head
from llmspend.cascade.plan import Plan
from llmspend.scoring.features import STEP_FEATURES, normalise_answer
from llmspend.scoring.logistic import LogisticScorer, fit_logistic

ROOT = Path(__file__).resolve().parents[1]
EXTRA = ("agree_min", "agree_max", "agree_first", "plural", "top_share")


@dataclass(frozen=True)
class Variant:
    vote: bool = False
    extra: tuple[str, ...] = ()
    pool: bool = False
    depth: int = 4
    l2: float = 1.0


VARIANTS = {
    "base": Variant(),
    "vote": Variant(vote=True),
    "agree_min_max": Variant(extra=("agree_min", "agree_max")),
    "agree_first": Variant(extra=("agree_first",)),
    "plural": Variant(extra=("plural", "top_share")),
    "vote+agree_first": Variant(vote=True, extra=("agree_first",)),
    "pool": Variant(pool=True),
    "vote+pool": Variant(vote=True, pool=True),
    "depth2": Variant(depth=2),
    "depth3": Variant(depth=3),
    "l2=10": Variant(l2=10.0),
    "l2=0.1": Variant(l2=0.1),
}
# other splits whose rows a pooled scorer may read: the log-probability means a self-check's
# P("Y") on TriviaQA and GSM8K, and the answer letter's probability on MMLU
POOL_WITH = {"mmlu": ("triviaqa", "gsm8k"), "triviaqa": ("gsm8k",), "gsm8k": ("triviaqa",)}


# -- answers grouped for the vote ---------------------------------------------------------
def answer_groups(table: OutcomeTable) -> np.ndarray:
    """(rows, models): a group number per answer, equal for equal normalised answers in a row;
    an empty answer is a group of its own."""
    groups = np.zeros((len(table), len(table.models)), dtype=np.int64)
    for i, row in enumerate(table.answers):
        seen: dict[tuple[str, ...], int] = {}
        for j, answer in enumerate(row):
            tokens = normalise_answer(answer)
            groups[i, j] = seen.setdefault(tokens, len(seen)) if tokens else 1000 + j
    return groups


def vote_position(groups: np.ndarray) -> np.ndarray:
    """(rows, steps) groups -> each row's returned step: the latest of the largest group (a tie
    between groups goes to the one with the later step)."""
    k = groups.shape[-1]
    counts = (groups[..., :, None] == groups[..., None, :]).sum(-1)
    return (counts * (k + 1) + np.arange(k)).argmax(-1)  # type: ignore[no-any-return]


class IdeaFeatures(F.FeatureTable):
    """The fit's features plus the EXTRA ones and the answer groups the vote reads."""

    def __init__(self, table: OutcomeTable, extra: Sequence[str] = ()) -> None:
        super().__init__(table, STEP_FEATURES)
        self.groups = answer_groups(table)
        self.features = (*STEP_FEATURES, *extra)

    def names(self, prefix: Sequence[int]) -> tuple[str, ...]:
        return tuple(n for n in super().names(prefix) if prefix or n not in EXTRA)

    def matrix(self, model: int, prefix: Sequence[int], names: Sequence[str] | None = None) -> np.ndarray:
        names = self.names(prefix) if names is None else names
        base = [n for n in names if n not in EXTRA]
        x = super().matrix(model, prefix, base)
        columns = {n: x[:, i] for i, n in enumerate(base)}
        if prefix and len(base) < len(names):
            agree = self.agree[model, list(prefix)]
            columns.update(agree_min=agree.min(0), agree_max=agree.max(0), agree_first=agree[0])
            groups = self.groups[:, [*prefix, model]]
            counts = (groups[:, :, None] == groups[:, None, :]).sum(-1)
            top = counts.max(1)
            columns.update(plural=(counts[:, -1] == top).astype(float), top_share=top / groups.shape[1])
        return np.stack([columns[n] for n in names], axis=1)

    def vote_correct(self, chain: Sequence[int], rows: np.ndarray) -> np.ndarray:
        """Right or wrong, on ``rows``, of the answer the vote over ``chain``'s answers returns."""
        c = list(chain)
        position = vote_position(self.groups[rows][:, c])
        return self.table.correct[rows][:, c][np.arange(len(rows)), position]  # type: ignore[no-any-return]


def search_class(vote: bool, pool: Sequence[IdeaFeatures]) -> type[F._Search]:
    """The fit's search with the vote as the last step's answer and/or pooled scorer rows."""

    class IdeaSearch(F._Search):
        feats: IdeaFeatures

        def arrays(self, chains: Sequence[F.Chain]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            scores, correct, cumcost = super().arrays(chains)
            if vote:
                correct = correct.copy()
                for b, chain in enumerate(chains):
                    if len(chain) > 2:
                        correct[b, :, -1] = self.feats.vote_correct(chain, self.rows)
            return scores, correct, cumcost

        def apply(self, chain: F.Chain, g: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            right, spent = super().apply(chain, g, rows)
            if vote and len(chain) > 2:
                columns = [self.scorer((m, chain[:k])).predict(self.feats.matrix(m, chain[:k])[rows], None)
                           for k, m in enumerate(chain[:-1])]
                step = F.accepted_steps(np.stack(columns, axis=1)[None], self.thresholds(chain, g)[None, None])[0, 0]
                right = np.where(step == len(chain) - 1, self.feats.vote_correct(chain, rows), right)
            return right, spent

        def _pooled(self, context: F.Context) -> tuple[list[np.ndarray], list[np.ndarray]]:
            model, prefix = context
            models = self.feats.table.models
            xs, ys = [], []
            for other in pool:
                t = other.table
                j = t.index(models[model])
                xs.append(other.matrix(j, [t.index(models[p]) for p in prefix], self.feats.names(prefix)))
                ys.append(t.correct[:, j])
            return xs, ys

        def _cross_fit(self, context: F.Context) -> np.ndarray:
            if not pool:
                return super()._cross_fit(context)
            x, y = self.x(context), self.correct[:, context[0]]
            xs, ys = self._pooled(context)
            out = np.empty(len(y))
            for f in range(self.n_folds):
                held = self.folds == f
                out[held] = fit_logistic(np.vstack([x[~held], *xs]), np.concatenate([y[~held], *ys]),
                                         features=self.feats.names(context[1]), l2=self.l2).predict(x[held])
            self.text_l2[context] = math.inf
            return out

        def _fit(self, context: F.Context, train: Any, text_l2: float) -> Any:
            if not pool:
                return super()._fit(context, train, text_l2)
            model, prefix = context
            xs, ys = self._pooled(context)
            models = self.feats.table.models
            return fit_step_head(
                np.vstack([self.x(context)[train], *xs]), np.concatenate([self.correct[train, model], *ys]),
                features=self.feats.names(prefix), l2=self.l2, text=None, text_l2=math.inf, basis=None,
                models=(models[model],), after=tuple(models[p] for p in prefix),
            )

    return IdeaSearch


@contextmanager
def variant_searches(data: Path, name: str, variant: Variant) -> Iterator[tuple[OutcomeTable, F._Searches]]:
    train = load_table(data / f"{name}_train.csv")
    pool = [IdeaFeatures(load_table(data / f"{o}_train.csv"), variant.extra) for o in POOL_WITH[name]] if variant.pool else []
    original, known = F._Search, plan_module._KNOWN_FEATURES
    F._Search = search_class(variant.vote, pool)  # type: ignore[misc]
    plan_module._KNOWN_FEATURES = frozenset(known) | set(EXTRA)  # type: ignore[attr-defined]
    try:
        options = F._SearchOptions(variant.depth, "cheapest_first", variant.l2)
        yield train, F._Searches(IdeaFeatures(train, variant.extra), options, folds=5, seed=0)
    finally:
        F._Search, plan_module._KNOWN_FEATURES = original, known  # type: ignore[misc, attr-defined]


def objectives(train: OutcomeTable) -> dict[str, tuple[float | None, float | None]]:
    best, dearest = train.best_single()["cost_usd_per_query"], float(train.cost.mean(axis=0).max())
    return {"default (1 point)": (None, 0.01), "budget 40% of best": (0.4 * best, None),
            "budget 20% of dearest": (0.2 * dearest, None), "budget 40% of dearest": (0.4 * dearest, None)}


# -- train only ---------------------------------------------------------------------------
def nested(data: Path) -> list[dict[str, Any]]:
    rows = []
    for name in ("mmlu", "triviaqa", "gsm8k"):
        for label, variant in VARIANTS.items():
            with variant_searches(data, name, variant) as (train, searches):
                dearest = float(train.cost.mean(axis=0).max())
                cells = {}
                for goal, (budget, drop) in objectives(train).items():
                    _, report = F._nested_margin(searches, budget=budget, max_drop=drop,
                                                 reference=train.best_single()["accuracy"])
                    r = next(r for r in report if r["margin_z"] == 0.0)
                    cells[goal] = {"accuracy": r["accuracy"], "cost_vs_dearest": r["cost_usd_per_query"] / dearest}
            rows.append({"dataset": name, "variant": label, "outer_folds": cells})
            print(f"{name:<9} {label:<17} " + " | ".join(
                f"{c['accuracy']:.3f} @{c['cost_vs_dearest']:4.0%}" for c in cells.values()), flush=True)
    return rows


def held_out_outcomes(search: F._Search) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate's held-out right/cost per row: (chains, prices, rows) each."""
    g, n = len(search.lam), len(search.rows)
    right = np.zeros((len(search.chains), g, n), dtype=np.float32)
    spent = np.zeros_like(right)
    start = 0
    for depth, group in itertools.groupby(search.chains, key=len):
        chains = list(group)
        batch = max(1, F._BATCH_FLOATS // (g * n * depth))
        for lo in range(0, len(chains), batch):
            scores, correct, cumcost = search.arrays(chains[lo : lo + batch])
            span = slice(start + lo, start + lo + len(chains[lo : lo + batch]))
            for f in range(search.n_folds):
                held = search.folds == f
                t = F.tune_thresholds(scores[:, ~held], correct[:, ~held], cumcost[:, ~held], search.lam)
                r, s, _ = F.policy_outcomes(scores[:, held], correct[:, held], cumcost[:, held], t)
                right[span][:, :, np.flatnonzero(held)] = r
                spent[span][:, :, np.flatnonzero(held)] = s
        start += len(chains)
    return right, spent


def _pick(key: np.ndarray, tie: np.ndarray) -> tuple[int, int]:
    """The index of the largest ``key``, ties broken by the largest ``tie`` (as the fit's ``_select``)."""
    tied = np.where(key >= key.max() - 1e-15, tie, -np.inf)
    c, g = np.unravel_index(int(tied.argmax()), tied.shape)
    return int(c), int(g)


def select(right: np.ndarray, spent: np.ndarray, cands: Any, rule: str, budget: float) -> tuple[int, int]:
    """The candidate a selection rule picks within ``budget`` from held-out per-row outcomes;
    ties go to the cheaper, then the shorter chain, as in the fit."""
    if rule == "most accurate":
        chosen = F._select(cands, budget=budget, max_drop=None, margin_z=0.0)
        assert chosen is not None
        return chosen
    acc, cost = right.mean(-1, dtype=np.float64), spent.mean(-1, dtype=np.float64)
    depth = np.array([len(c) for c in cands.chains], dtype=float)[:, None]
    feasible = (cands.spread <= F._MAX_SPREAD) & (cost <= budget * (1 + 1e-9))
    if rule == "bagged":
        n = right.shape[-1]
        short = np.argwhere(feasible & (acc >= acc[feasible].max() - 0.03))
        r, s = right[short[:, 0], short[:, 1]].astype(np.float64), spent[short[:, 0], short[:, 1]].astype(np.float64)
        wins = np.zeros(len(short))
        rng = np.random.default_rng(0)
        for _ in range(100):
            w = np.bincount(rng.integers(0, n, n), minlength=n) / n
            a, c = r @ w, s @ w
            key = np.where(c <= budget * (1 + 1e-9), a, -np.inf)[:, None]
            wins[_pick(key, (-c - 1e-12 * depth[short[:, 0], 0])[:, None])[0]] += 1
        c0, g0 = short[int(wins.argmax())]
        return int(c0), int(g0)
    # one standard error: the cheapest within one SE (of the paired difference) of the most accurate
    top = _pick(np.where(feasible, acc, -np.inf), -cost - 1e-12 * depth)
    d = right.astype(np.float64) - right[top]
    se = np.sqrt(np.maximum((d**2).mean(-1) - d.mean(-1) ** 2, 0) / right.shape[-1])
    return _pick(np.where(feasible & (d.mean(-1) >= -se), -cost, -np.inf), acc - 1e-12 * depth)


def selection(data: Path) -> list[dict[str, Any]]:
    rules = ("most accurate", "bagged", "one SE")
    rows = []
    for name in ("mmlu", "triviaqa", "gsm8k"):
        with variant_searches(data, name, VARIANTS["base"]) as (train, searches):
            dearest = float(train.cost.mean(axis=0).max())
            budgets = {k: b for k, (b, _) in objectives(train).items() if b is not None}
            right = {(r, b): np.zeros(len(train)) for r in rules for b in budgets}
            spent = {(r, b): np.zeros(len(train)) for r in rules for b in budgets}
            for inner, cands, held in searches.nested:
                r_all, s_all = held_out_outcomes(inner)
                for rule, (label, budget) in itertools.product(rules, budgets.items()):
                    c, g = select(r_all, s_all, cands, rule, budget)
                    right[rule, label][held], spent[rule, label][held] = inner.apply(cands.chains[c], g, held)
        for rule in rules:
            cells = {b: {"accuracy": float(right[rule, b].mean()), "cost_vs_dearest": float(spent[rule, b].mean()) / dearest}
                     for b in budgets}
            rows.append({"dataset": name, "rule": rule, "outer_folds": cells})
            print(f"{name:<9} {rule:<14} " + " | ".join(
                f"{c['accuracy']:.3f} @{c['cost_vs_dearest']:4.0%}" for c in cells.values()), flush=True)
    return rows


# -- one evaluation on test ---------------------------------------------------------------
def replay(plan: Plan, test: OutcomeTable, vote: bool) -> tuple[float, float]:
    """Accuracy and USD per query of a plan with scorers held in it, on ``test``."""
    feats = IdeaFeatures(test)
    index = [test.index(s.model) for s in plan.steps]
    n = len(test)
    step = np.full(n, len(index) - 1)
    reaching = np.arange(n)
    for k, s in enumerate(plan.steps[:-1]):
        scorer = plan.scorers[s.scorer or ""]
        assert isinstance(scorer, LogisticScorer) and s.threshold is not None
        take = scorer.predict(feats.matrix(index[k], index[:k], scorer.features)[reaching]) >= s.threshold
        step[reaching[take]] = k
        reaching = reaching[~take]
    right = test.correct[np.arange(n), np.array(index)[step]]
    if vote and len(index) > 2:
        right = np.where(step == len(index) - 1, feats.vote_correct(index, np.arange(n)), right)
    return float(right.mean()), float(np.cumsum(test.cost[:, index], axis=1)[np.arange(n), step].mean())


def test_once(data: Path, label: str, datasets: Sequence[str], log: Path) -> None:
    variant = VARIANTS[label]
    for name in datasets:
        test = load_table(data / f"{name}_test.csv")
        best = test.best_single()
        with variant_searches(data, name, variant) as (train, searches):
            for goal, (budget, drop) in objectives(train).items():
                if goal == "budget 20% of dearest":
                    continue
                plan = F._plan(searches, budget=budget, max_drop=drop, margin_z="auto", frontier_points=2,
                               step_scorers=None, training={},
                               route={"alias": "cascade", "feature": None, "text_scorer": None})
                accuracy, cost = replay(plan, test, variant.vote)
                entry = {"time": time.strftime("%Y-%m-%d %H:%M"), "variant": label, "dataset": name, "objective": goal,
                         "chain": list(plan.models), "margin_z": plan.objective["margin_z"],
                         "train_cv_accuracy": plan.cv["accuracy"], "test_accuracy": accuracy,
                         "test_points_vs_best": 100 * (accuracy - best["accuracy"]),
                         "test_cost_vs_best": cost / best["cost_usd_per_query"]}
                print(json.dumps(entry), flush=True)
                with log.open("a") as f:
                    f.write(json.dumps(entry) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cascade")
    parser.add_argument("--nested", action="store_true", help="every variant by nested CV on the training splits")
    parser.add_argument("--selection", action="store_true", help="selection rules by nested CV on the training splits")
    parser.add_argument("--test", choices=sorted(VARIANTS), help="evaluate one variant once on the test splits")
    parser.add_argument("--datasets", default="mmlu,triviaqa", help="for --test")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cascade_ideas.json")
    args = parser.parse_args()
    if not (args.data / "mmlu_train.csv").exists():
        print(f"skipped: no benchmark data at {args.data}")
        return 0
    if args.test:
        test_once(args.data, args.test, args.datasets.split(","), args.out.with_name("cascade_ideas_test_log.jsonl"))
        return 0
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    results |= {"date": time.strftime("%Y-%m-%d"), "objectives": list(objectives(load_table(
        args.data / "mmlu_train.csv")))}
    print("outer-fold accuracy @ cost as a share of the dearest model's; objectives: " + " | ".join(results["objectives"]))
    if args.nested:
        results["nested"] = nested(args.data)
    if args.selection:
        results["selection"] = selection(args.data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
