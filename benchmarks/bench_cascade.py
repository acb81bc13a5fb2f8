"""Cascade benchmark on ../shared/data/cascade (MMLU, TriviaQA): tuned on *_train.csv only,
reported on *_test.csv.

For each dataset it prints and writes (``--out``, JSON) the best single model on test, the
cascade at its operating points (the default objective, and a budget of 40% of the best
training model's cost), a FrugalGPT-style baseline on the same data, and both across a grid of
budgets; it draws the trade-off plot (``--img-dir``).

The baseline follows FrugalGPT's search (stanford-futuredata/FrugalGPT): chains of exactly 3
models in every order, the provider's log-probability (``conf_raw``) as the score, thresholds
from a 40-point quantile grid per step, tuned on the training rows themselves (in-sample), the
most accurate chain within the budget. Missing log-probabilities (NaN, -inf) never accept.

    PYTHONPATH=$PWD python benchmarks/bench_cascade.py [--data ../shared/data/cascade]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from llmspend.cascade.data import OutcomeTable, load_table
from llmspend.cascade.evaluate import evaluate_plan, evaluate_steps, feature_table
from llmspend.cascade.fit import fit_plan, policy_outcomes
from llmspend.cascade.plot import plot_tradeoff

ROOT = Path(__file__).resolve().parents[1]
GRID = 40


class FrugalBaseline:
    """Every 3-chain and every pair of quantile thresholds, scored in-sample once."""

    def __init__(self, train: OutcomeTable) -> None:
        self.train = train
        score = _scores(train)
        self.options: list[tuple[float, float, tuple[int, ...], np.ndarray]] = []
        for chain in itertools.permutations(range(len(train.models)), 3):
            c = list(chain)
            grids = []
            for k in range(2):
                finite = score[:, c[k]][np.isfinite(score[:, c[k]])]
                grids.append(np.unique(np.quantile(finite, np.linspace(0, 1, GRID))) if finite.size else np.array([np.inf]))
            pairs = np.array([[a, b] for a in (*grids[0], np.inf) for b in (*grids[1], np.inf)])
            right, spent, _ = policy_outcomes(
                score[:, c[:2]][None], train.correct[:, c][None], np.cumsum(train.cost[:, c], axis=1)[None], pairs[None]
            )
            for acc, cost, t in zip(right[0].mean(-1), spent[0].mean(-1), pairs):
                self.options.append((float(acc), float(cost), chain, t))

    def pick(self, budget: float) -> tuple[tuple[int, ...], np.ndarray] | None:
        fits = [o for o in self.options if o[1] <= budget]
        if not fits:
            return None
        acc, cost, chain, t = max(fits, key=lambda o: (o[0], -o[1]))
        return chain, t

    def test(self, table: OutcomeTable, choice: tuple[tuple[int, ...], np.ndarray]) -> dict[str, Any]:
        chain, t = choice
        names = [self.train.models[i] for i in chain]
        cols = [table.index(m) for m in names]
        right, spent, _ = policy_outcomes(
            _scores(table)[:, cols[:2]][None], table.correct[:, cols][None],
            np.cumsum(table.cost[:, cols], axis=1)[None], t[None, None],
        )
        return {"chain": names, "accuracy": float(right.mean()), "cost_usd_per_query": float(spent.mean())}


def equal_cost(sweep: list[dict[str, Any]]) -> dict[str, Any]:
    """Each method's test points against the other's best test accuracy at no more cost."""
    def points(key: str) -> list[tuple[float, float]]:
        return [(s[key]["cost_usd_per_query"], s[key]["accuracy"]) for s in sweep if s[key] is not None]

    def envelope(curve: list[tuple[float, float]], cost: float) -> float | None:
        within = [a for c, a in curve if c <= cost * (1 + 1e-9)]
        return max(within) if within else None

    ours, theirs = points("cascade"), points("frugalgpt")
    rows = []
    for label, mine, other in (("cascade", ours, theirs), ("frugalgpt", theirs, ours)):
        for cost, acc in mine:
            rival = envelope(other, cost)
            rows.append({"point_of": label, "cost_usd_per_query": cost, "accuracy": acc, "other_best_at_no_more_cost": rival})
    mine_rows = [r for r in rows if r["point_of"] == "cascade" and r["other_best_at_no_more_cost"] is not None]
    return {
        "points": rows,
        "cascade_points_more_accurate": sum(r["accuracy"] > r["other_best_at_no_more_cost"] + 1e-9 for r in mine_rows),
        "cascade_points_less_accurate": sum(r["accuracy"] < r["other_best_at_no_more_cost"] - 1e-9 for r in mine_rows),
        "cascade_points_compared": len(mine_rows),
        "mean_accuracy_gain_points": 100 * float(np.mean([r["accuracy"] - r["other_best_at_no_more_cost"] for r in mine_rows]))
        if mine_rows else None,
    }


def _scores(table: OutcomeTable) -> np.ndarray:
    score = table.conf.copy()
    score[~np.isfinite(score)] = -np.inf
    return score


def run_dataset(data: Path, name: str, img_dir: Path | None, budgets: int) -> dict[str, Any]:
    train, test = load_table(data / f"{name}_train.csv"), load_table(data / f"{name}_test.csv")
    best_test, best_train = test.best_single(), train.best_single()
    out: dict[str, Any] = {"dataset": name, "rows": {"train": len(train), "test": len(test)},
                           "best_single_test": best_test, "best_single_train": best_train, "singles_test": test.singles()}

    started = time.perf_counter()
    plan = fit_plan(train)  # the default: max accuracy drop 0.01, margin by nested CV
    fit_s = time.perf_counter() - started
    feats = feature_table(plan, test)
    out["default"] = _report(plan, evaluate_plan(plan, test), best_test, fit_s)

    goal_budget = 0.4 * best_train["cost_usd_per_query"]
    budget_plan = fit_plan(train, budget=goal_budget)
    out["budget_40pct_of_train_best"] = {"budget_usd_per_query": goal_budget,
                                         **_report(budget_plan, evaluate_plan(budget_plan, test), best_test, None)}

    baseline = FrugalBaseline(train)
    costs = train.cost.mean(axis=0)
    grid = np.geomspace(np.sort(costs)[2], costs.max(), budgets)  # from the third-cheapest model up
    sweep = []
    for budget in grid:
        ours = fit_plan(train, budget=float(budget))
        mine = evaluate_steps(ours, ours.steps, feats)
        pick = baseline.pick(float(budget))
        theirs = baseline.test(test, pick) if pick is not None else None
        sweep.append({
            "budget_usd_per_query": float(budget),
            "cascade": {"chain": list(ours.models), "accuracy": mine["accuracy"], "cost_usd_per_query": mine["cost_usd_per_query"],
                        "cv_accuracy": ours.cv["accuracy"], "margin_z": ours.objective["margin_z"]},
            "frugalgpt": theirs,
        })
    out["sweep"] = sweep
    out["equal_cost"] = equal_cost(sweep)
    pick = baseline.pick(goal_budget)
    out["frugalgpt_at_40pct_budget"] = baseline.test(test, pick) if pick is not None else None
    if img_dir is not None:
        img_dir.mkdir(parents=True, exist_ok=True)
        path = img_dir / f"cascade_{name}.png"
        plot_tradeoff(
            path,
            singles=test.singles(),
            curves={
                "cascade (ours), tuned on train": [(s["cascade"]["cost_usd_per_query"], s["cascade"]["accuracy"]) for s in sweep],
                "FrugalGPT-style baseline": [(s["frugalgpt"]["cost_usd_per_query"], s["frugalgpt"]["accuracy"])
                                             for s in sweep if s["frugalgpt"] is not None],
            },
            points={"cascade, default objective": (out["default"]["cost_usd_per_query"], out["default"]["accuracy"])},
            title=f"{name} test: accuracy against cost (tuned on train)",
        )
        out["plot"] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    return out


def _report(plan: Any, result: dict[str, Any], best: dict[str, Any], fit_s: float | None) -> dict[str, Any]:
    report = {
        "chain": list(plan.models),
        "thresholds": [s.threshold for s in plan.steps],
        "accuracy": result["accuracy"],
        "cost_usd_per_query": result["cost_usd_per_query"],
        "accuracy_vs_best_points": 100 * (result["accuracy"] - best["accuracy"]),
        "cost_vs_best": result["cost_usd_per_query"] / best["cost_usd_per_query"],
        "calls_per_query": result["calls_per_query"],
        "cv_accuracy": plan.cv["accuracy"],
        "cv_cost_usd_per_query": plan.cv["cost_usd_per_query"],
        "margin_z": plan.objective["margin_z"],
    }
    if fit_s is not None:
        report["fit_seconds"] = fit_s
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cascade")
    parser.add_argument("--datasets", default="mmlu,triviaqa")
    parser.add_argument("--budgets", type=int, default=8, help="points on the budget sweep (default 8)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cascade.json")
    parser.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    if not (args.data / "mmlu_train.csv").exists():
        print(f"skipped: no benchmark data at {args.data} (see ../shared/data/README.md)")
        return 0
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
        "command": "PYTHONPATH=$PWD python " + " ".join(sys.argv),
        "datasets": [],
    }
    for name in args.datasets.split(","):
        r = run_dataset(args.data, name, args.img_dir, args.budgets)
        results["datasets"].append(r)
        b, d, g = r["best_single_test"], r["default"], r["budget_40pct_of_train_best"]
        print(f"\n== {name}: best single on test {b['model']} {b['accuracy']:.3f} at ${b['cost_usd_per_query']:.3g}/query "
              f"(best on train: {r['best_single_train']['model']})")
        for label, row in (("default objective", d), ("budget 40% of train best", g)):
            print(f"cascade, {label}: {' -> '.join(row['chain'])}: test {row['accuracy']:.3f} "
                  f"({row['accuracy_vs_best_points']:+.1f} pts) at {row['cost_vs_best']:.0%} of the best single's cost; "
                  f"CV on train {row['cv_accuracy']:.3f}; margin z={row['margin_z']}")
        print(f"fit time (default objective, 9 models, depth 4): {d['fit_seconds']:.1f} s")
        f40 = r["frugalgpt_at_40pct_budget"]
        if f40:
            print(f"FrugalGPT-style at the same budget: {' -> '.join(f40['chain'])}: test {f40['accuracy']:.3f} "
                  f"at {f40['cost_usd_per_query'] / b['cost_usd_per_query']:.0%}")
        print("budget sweep (test): budget | cascade acc, cost | FrugalGPT-style acc, cost")
        for s in r["sweep"]:
            c, f = s["cascade"], s["frugalgpt"]
            ftxt = f"{f['accuracy']:.3f} ${f['cost_usd_per_query']:.3g}" if f else "-"
            print(f"  ${s['budget_usd_per_query']:.3g} | {c['accuracy']:.3f} ${c['cost_usd_per_query']:.3g} | {ftxt}")
        e = r["equal_cost"]
        print(f"at equal cost (each cascade point against the baseline's best test point costing no more): "
              f"{e['cascade_points_more_accurate']} more accurate, {e['cascade_points_less_accurate']} less, "
              f"of {e['cascade_points_compared']}; mean {e['mean_accuracy_gain_points']:+.1f} points")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
