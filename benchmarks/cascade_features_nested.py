"""Which features a cascade's scorers should read, judged on the training splits alone.

Nested cross-validation on ``*_train.csv`` (never the test files): for each outer fold, the
whole search runs on the other folds and its plan is scored on the outer fold. Compared: the
provider log-probability alone (what FrugalGPT scores with), plus the answer's length, plus the
agreement with earlier steps' answers (the default).

    PYTHONPATH=$PWD python benchmarks/cascade_features_nested.py [--data ../shared/data/cascade]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmspend.cascade.data import load_table
from llmspend.cascade.fit import FeatureTable, _nested_margin, _Searches, _SearchOptions
from llmspend.scoring.features import ANSWER_FEATURES, CONF_FEATURES, STEP_FEATURES

ROOT = Path(__file__).resolve().parents[1]
SETS = {"log-probability": CONF_FEATURES, "+ length": ANSWER_FEATURES, "+ agreement (default)": STEP_FEATURES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cascade")
    parser.add_argument("--share", type=float, default=0.4, help="budget as a share of the best training model's cost")
    args = parser.parse_args()
    if not (args.data / "mmlu_train.csv").exists():
        print(f"skipped: no benchmark data at {args.data}")
        return 0
    print(f"budget {args.share:.0%} of the best training model's cost; nested 5x5-fold CV on the training rows, margin z=0")
    print("dataset   | features               | outer-fold accuracy | cost vs best")
    for name in ("mmlu", "triviaqa", "gsm8k"):
        train = load_table(args.data / f"{name}_train.csv")
        best = train.best_single()
        for label, features in SETS.items():
            searches = _Searches(FeatureTable(train, features), _SearchOptions(4, "cheapest_first", 1.0), folds=5, seed=0)
            _, report = _nested_margin(searches, budget=args.share * best["cost_usd_per_query"], max_drop=None,
                                       reference=best["accuracy"])
            row = next(r for r in report if r["margin_z"] == 0.0)
            print(f"{name:<9} | {label:<22} | {row['accuracy']:.3f}               | "
                  f"{row['cost_usd_per_query'] / best['cost_usd_per_query']:.0%}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
