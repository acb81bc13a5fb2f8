"""How far could any cascade of these models go on the test files? An analysis, not a method.

This script reads the TEST files to measure ceilings; nothing it computes is used to fit,
choose or tune a plan (``bench_cascade.py`` tunes on ``*_train.csv`` only). For each dataset,
at the goal's budget (40% of the best test model's cost), it reports:

1. **Perfect scorers**: the best chain of 1 to 4 models (any order) if every step's scorer
   knew whether its answer was right: a query costs its steps up to the first right answer.
2. **This method, trained on the test distribution**: the fit's search run on the test file
   itself with 5-fold cross-validation (scorers and thresholds tuned on four fifths, scored on
   the fifth), numeric step scorers. What the cascade reaches when its training rows come from
   the same distribution as the rows it is judged on, and are 1,000-1,500 instead of 300.
3. **This method, in-sample on test**: scorers and thresholds fitted on every test row and
   scored on the same rows; an optimistic ceiling of this scorer family.
4. **Train against test**: each model's accuracy on both splits, with standard errors.

    PYTHONPATH=$PWD python benchmarks/cascade_upper_bound.py [--data ../shared/data/cascade]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from llmspend.cascade.data import OutcomeTable, load_table
from llmspend.cascade.fit import (
    _BATCH_FLOATS,
    FeatureTable,
    _Search,
    _SearchOptions,
    _select,
    policy_outcomes,
    tune_thresholds,
)

ROOT = Path(__file__).resolve().parents[1]
SHARE = 0.4


def perfect_scorers(table: OutcomeTable, budget: float) -> dict[str, Any]:
    best: dict[str, Any] = {"accuracy": 0.0}
    m = len(table.models)
    for depth in range(1, 5):
        for chain in itertools.permutations(range(m), depth):
            right = table.correct[:, list(chain)]
            first = np.where(right.any(axis=1), right.argmax(axis=1), depth - 1)
            cost = float(np.cumsum(table.cost[:, list(chain)], axis=1)[np.arange(len(table)), first].mean())
            accuracy = float(right.any(axis=1).mean())
            if cost <= budget and (accuracy, -cost) > (best["accuracy"], -best.get("cost_usd_per_query", 0.0)):
                best = {"chain": [table.models[j] for j in chain], "accuracy": accuracy, "cost_usd_per_query": cost}
    return best


def cross_validated_on_test(table: OutcomeTable, budget: float) -> dict[str, Any]:
    search = _Search(FeatureTable(table), np.arange(len(table)), _SearchOptions(4, "cheapest_first", 1.0), folds=5, seed=0)
    cands = search.cross_validate()
    c, g = _select(cands, budget=budget, max_drop=None, margin_z=0.0) or (0, 0)
    st = cands.stats()
    return {"chain": [table.models[j] for j in cands.chains[c]], "accuracy": float(st["accuracy"][c, g]),
            "cost_usd_per_query": float(st["cost"][c, g])}


def in_sample_on_test(table: OutcomeTable, budget: float) -> dict[str, Any]:
    search = _Search(FeatureTable(table), np.arange(len(table)), _SearchOptions(4, "cheapest_first", 1.0), folds=5, seed=0)
    # every score from a scorer fitted on every row, thresholds tuned on the rows they are scored on
    search.oof = {ctx: search.scorer(ctx).predict(search.x(ctx)) for ctx in search.oof}
    best: dict[str, Any] = {"accuracy": 0.0}
    n, g = len(table), len(search.lam)
    for depth, group in itertools.groupby(search.chains, key=len):
        chains = list(group)
        batch = max(1, _BATCH_FLOATS // (g * n * depth))
        for lo in range(0, len(chains), batch):
            part = chains[lo:lo + batch]
            scores, correct, cumcost = search.arrays(part)
            t = tune_thresholds(scores, correct, cumcost, search.lam)
            right, spent, _ = policy_outcomes(scores, correct, cumcost, t)
            acc, cost = right.mean(-1), spent.mean(-1)
            key = np.where(cost <= budget, acc, -np.inf)
            i, j = np.unravel_index(int(key.argmax()), key.shape)
            if key[i, j] > best["accuracy"]:
                best = {"chain": [table.models[k] for k in part[i]], "accuracy": float(acc[i, j]),
                        "cost_usd_per_query": float(cost[i, j])}
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cascade")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cascade_upper_bound.json")
    args = parser.parse_args()
    if not (args.data / "mmlu_test.csv").exists():
        print(f"skipped: no benchmark data at {args.data}")
        return 0
    results = []
    for name in ("mmlu", "triviaqa"):
        train, test = load_table(args.data / f"{name}_train.csv"), load_table(args.data / f"{name}_test.csv")
        best = test.best_single()
        budget, target = SHARE * best["cost_usd_per_query"], best["accuracy"] - 0.01
        row: dict[str, Any] = {"dataset": name, "best_single_test": best, "budget_usd_per_query": budget,
                               "target_accuracy": target}
        print(f"\n== {name} test: best single {best['model']} {best['accuracy']:.3f}; goal: >= {target:.3f} "
              f"at <= ${budget:.3g} per query (40% of its cost)")
        for label, fn in (("perfect scorers", perfect_scorers), ("cross-validated on test", cross_validated_on_test),
                          ("in-sample on test", in_sample_on_test)):
            r = fn(test, budget)
            row[label] = r
            print(f"{label:>24}: {r['accuracy']:.3f} at {r['cost_usd_per_query'] / best['cost_usd_per_query']:.0%} "
                  f"({' -> '.join(r['chain'])})")
        n_tr, n_te = len(train), len(test)
        split = []
        print(f"{'model':<28} {'train':>14} {'test':>14}")
        for j, model in enumerate(test.models):
            a, b = float(train.correct[:, train.index(model)].mean()), float(test.correct[:, j].mean())
            se = lambda p, n: math.sqrt(p * (1 - p) / n)  # noqa: E731
            split.append({"model": model, "train": a, "train_se": se(a, n_tr), "test": b, "test_se": se(b, n_te)})
            print(f"{model:<28} {a:.3f} ± {se(a, n_tr):.3f}  {b:.3f} ± {se(b, n_te):.3f}")
        row["train_vs_test"] = split
        results.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
