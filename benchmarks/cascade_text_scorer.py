"""Does a MiniLM text scorer help the cascade? The 40%-of-budget operating point of
``bench_cascade.py`` fitted with and without ``text_score`` (all-MiniLM-L6-v2 frozen, logistic
head, trained per fold by ``llmspend.cascade.scorers.trained_text_scorer``), tuned on
``*_train.csv``, reported on ``*_test.csv``. Needs ``llmspend[train]``; takes minutes on CPU.

    PYTHONPATH=$PWD python benchmarks/cascade_text_scorer.py [--datasets triviaqa,mmlu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from llmspend.cascade.data import load_table
from llmspend.cascade.evaluate import evaluate_plan
from llmspend.cascade.fit import fit_plan
from llmspend.cascade.scorers import trained_text_scorer

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cascade")
    parser.add_argument("--datasets", default="triviaqa,mmlu")
    args = parser.parse_args()
    if not (args.data / "mmlu_train.csv").exists():
        print(f"skipped: no benchmark data at {args.data}")
        return 0
    for name in args.datasets.split(","):
        train, test = load_table(args.data / f"{name}_train.csv"), load_table(args.data / f"{name}_test.csv")
        budget = 0.4 * train.best_single()["cost_usd_per_query"]
        best = test.best_single()
        with tempfile.TemporaryDirectory() as tmp:
            for label in ("logistic step scorers only", "+ MiniLM text scorer"):
                started = time.perf_counter()
                source = trained_text_scorer(Path(tmp) / "scorer") if label.startswith("+") else None
                plan = fit_plan(train, budget=budget, text_scorer=source)
                fitted = time.perf_counter() - started
                result = evaluate_plan(plan, test)
                evaluated = time.perf_counter() - started - fitted
                print(f"{name}, budget ${budget:.3g}, {label}: {' -> '.join(plan.models)}; CV on train "
                      f"{plan.cv['accuracy']:.3f} at ${plan.cv['cost_usd_per_query']:.3g}; test {result['accuracy']:.3f} at "
                      f"{result['cost_usd_per_query'] / best['cost_usd_per_query']:.0%} of {best['model']}'s cost; "
                      f"fit {fitted:.0f} s, eval {evaluated:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
