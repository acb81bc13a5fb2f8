"""Cascade benchmark on ../shared/data/cascade (MMLU, TriviaQA): tuned on *_train.csv only,
reported on *_test.csv.

For each dataset it prints and writes (``--out``, JSON) the best single model on test, the
cascade at its operating points (the default objective, as ``llmspend cascade fit`` with no
options writes it and timed end to end; and a budget of 40% of the best training model's
cost), the same with ``--numeric-scorers``, a FrugalGPT-style baseline on the same data, and
all of them across a grid of budgets; it draws the trade-off plot (``--img-dir``). Nothing is
chosen by looking at the test files: they are read only to report.

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
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from llmspend.cascade.data import OutcomeTable, load_table
from llmspend.cascade.evaluate import evaluate_steps, feature_table
from llmspend.cascade.fit import fit_plans, policy_outcomes
from llmspend.cascade.plan import load_plan
from llmspend.cascade.plot import plot_tradeoff
from llmspend.cascade.scorers import StepScorerExport

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


def run_dataset(data: Path, name: str, img_dir: Path | None, budgets: int, work: Path) -> dict[str, Any]:
    train, test = load_table(data / f"{name}_train.csv"), load_table(data / f"{name}_test.csv")
    best_test, best_train = test.best_single(), train.best_single()
    out: dict[str, Any] = {"dataset": name, "rows": {"train": len(train), "test": len(test)},
                           "best_single_test": best_test, "best_single_train": best_train, "singles_test": test.singles()}

    # The default, exactly as a user runs it: `llmspend cascade fit` with no options (ONNX step
    # scorers, all-MiniLM-L6-v2 embeddings, margin by nested cross-validation), timed end to end.
    plan_path = work / f"{name}.json"
    command = [sys.executable, "-m", "llmspend", "cascade", "fit", "--train", str(data / f"{name}_train.csv"),
               "--out", str(plan_path)]
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    cli_s = time.perf_counter() - started
    default = load_plan(plan_path)
    onnx_feats = feature_table(default, test)
    out["default"] = _report(default, evaluate_steps(default, default.steps, onnx_feats), best_test, cli_s)

    # Every other operating point from one search per kind of step scorer (fit_plans).
    goal_budget = 0.4 * best_train["cost_usd_per_query"]
    costs = train.cost.mean(axis=0)
    grid = np.geomspace(np.sort(costs)[2], costs.max(), budgets)  # from the third-cheapest model up
    objectives = [{"max_accuracy_drop": 0.01}, {"budget": goal_budget}, *({"budget": float(b)} for b in grid)]
    started = time.perf_counter()
    onnx = fit_plans(train, objectives, step_scorers=StepScorerExport(work / f"{name}.scorers"))
    onnx_s = time.perf_counter() - started
    started = time.perf_counter()
    numeric = fit_plans(train, objectives)
    numeric_s = time.perf_counter() - started
    numeric_feats = feature_table(numeric[0], test)
    out["fit_seconds"] = {"cli_default": cli_s, "onnx_all_objectives": onnx_s, "numeric_all_objectives": numeric_s,
                          "objectives": len(objectives)}
    out["numeric_default"] = _report(numeric[0], evaluate_steps(numeric[0], numeric[0].steps, numeric_feats), best_test, None)
    out["budget_40pct_of_train_best"] = {"budget_usd_per_query": goal_budget,
                                         **_report(onnx[1], evaluate_steps(onnx[1], onnx[1].steps, onnx_feats), best_test, None)}
    out["numeric_budget_40pct_of_train_best"] = _report(
        numeric[1], evaluate_steps(numeric[1], numeric[1].steps, numeric_feats), best_test, None)
    out["text_read_by"] = {label: sorted(k for k, s in plan.used_scorers.items() if getattr(s, "text", False))
                           for label, plan in (("default", default), ("budget_40pct", onnx[1]))}

    baseline = FrugalBaseline(train)
    sweep = []
    for budget, ours, plain in zip(grid, onnx[2:], numeric[2:]):
        mine = evaluate_steps(ours, ours.steps, onnx_feats)
        simple = evaluate_steps(plain, plain.steps, numeric_feats)
        pick = baseline.pick(float(budget))
        theirs = baseline.test(test, pick) if pick is not None else None
        sweep.append({
            "budget_usd_per_query": float(budget),
            "cascade": {"chain": list(ours.models), "accuracy": mine["accuracy"], "cost_usd_per_query": mine["cost_usd_per_query"],
                        "cv_accuracy": ours.cv["accuracy"], "margin_z": ours.objective["margin_z"]},
            "numeric": {"chain": list(plain.models), "accuracy": simple["accuracy"],
                        "cost_usd_per_query": simple["cost_usd_per_query"]},
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
                "cascade (ONNX step scorers, default), tuned on train": [
                    (s["cascade"]["cost_usd_per_query"], s["cascade"]["accuracy"]) for s in sweep],
                "cascade (--numeric-scorers)": [(s["numeric"]["cost_usd_per_query"], s["numeric"]["accuracy"]) for s in sweep],
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
    work = Path(tempfile.mkdtemp(prefix="bench-cascade-"))
    for name in args.datasets.split(","):
        r = run_dataset(args.data, name, args.img_dir, args.budgets, work)
        results["datasets"].append(r)
        b, d, g = r["best_single_test"], r["default"], r["budget_40pct_of_train_best"]
        print(f"\n== {name}: best single on test {b['model']} {b['accuracy']:.3f} at ${b['cost_usd_per_query']:.3g}/query "
              f"(best on train: {r['best_single_train']['model']})")
        rows = (("default objective", d), ("budget 40% of train best", g),
                ("default objective, --numeric-scorers", r["numeric_default"]),
                ("budget 40% of train best, --numeric-scorers", r["numeric_budget_40pct_of_train_best"]))
        for label, row in rows:
            print(f"cascade, {label}: {' -> '.join(row['chain'])}: test {row['accuracy']:.3f} "
                  f"({row['accuracy_vs_best_points']:+.1f} pts) at {row['cost_vs_best']:.0%} of the best single's cost; "
                  f"CV on train {row['cv_accuracy']:.3f}; margin z={row['margin_z']}")
        t = r["fit_seconds"]
        print(f"fit time: `llmspend cascade fit` default {t['cli_default']:.1f} s; fit_plans for {t['objectives']} objectives: "
              f"ONNX step scorers {t['onnx_all_objectives']:.1f} s, numeric {t['numeric_all_objectives']:.1f} s; "
              f"scorers reading text: {r['text_read_by']}")
        f40 = r["frugalgpt_at_40pct_budget"]
        if f40:
            print(f"FrugalGPT-style at the same budget: {' -> '.join(f40['chain'])}: test {f40['accuracy']:.3f} "
                  f"at {f40['cost_usd_per_query'] / b['cost_usd_per_query']:.0%}")
        print("budget sweep (test): budget | cascade acc, cost | --numeric-scorers acc, cost | FrugalGPT-style acc, cost")
        for s in r["sweep"]:
            c, m, f = s["cascade"], s["numeric"], s["frugalgpt"]
            ftxt = f"{f['accuracy']:.3f} ${f['cost_usd_per_query']:.3g}" if f else "-"
            print(f"  ${s['budget_usd_per_query']:.3g} | {c['accuracy']:.3f} ${c['cost_usd_per_query']:.3g} | "
                  f"{m['accuracy']:.3f} ${m['cost_usd_per_query']:.3g} | {ftxt}")
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
