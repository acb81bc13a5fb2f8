"""``llmspend cascade fit`` and ``llmspend cascade eval``: learn a cascade plan from judged
answers, and measure it on held-out data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError
from ._table import format_table, usd


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "cascade",
        help="fit and evaluate model cascades (cheap model first, escalate when unsure)",
        description="Learn which models to chain, in which order, and when to accept each one's answer, "
        "from data where every model answered every query (docs/cascade.md); then measure the plan on "
        "held-out data.",
    )
    parser.set_defaults(parser=parser)
    commands = parser.add_subparsers(dest="cascade_command", metavar="COMMAND")

    fit = commands.add_parser(
        "fit",
        help="learn a plan from training data",
        description="Search chains of 1 to --max-depth models and each step's threshold, tuned by "
        "cross-validation on TRAIN, and write the plan as JSON. Give --budget, or --max-accuracy-drop "
        "(default 0.01) relative to the best single model on TRAIN.",
    )
    fit.add_argument("--train", required=True, metavar="TRAIN", help="wide CSV or JSONL of logged calls")
    fit.add_argument("--out", required=True, metavar="PLAN", help="where to write the plan (JSON)")
    goal = fit.add_mutually_exclusive_group()
    goal.add_argument("--budget", type=float, metavar="USD", help="mean USD per query the plan may spend")
    goal.add_argument("--max-accuracy-drop", type=float, metavar="D",
                      help="accuracy the plan may give up against the best single model (default 0.01)")
    fit.add_argument("--models", metavar="M1,M2,...", help="only these models (default: every model in TRAIN)")
    fit.add_argument("--max-depth", type=int, default=4, help="longest chain (1-4, default 4)")
    fit.add_argument("--orderings", choices=("cheapest_first", "all"), default="cheapest_first",
                     help="cheaper models first with any model last (default), or every ordering (slower)")
    fit.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    fit.add_argument("--margin", default="auto", metavar="Z",
                     help="safety margin in standard errors, or 'auto' to choose it by nested cross-validation (default)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the fold split (default 0)")
    fit.add_argument("--alias", default="cascade", help="model name that runs the plan in wrap(cascade=...) (default: cascade)")
    fit.add_argument("--feature", help="also run the plan for every request of this tracked feature")
    fit.add_argument("--no-logprobs", action="store_true",
                     help="do not use the provider's log-probabilities (for providers that cannot return them)")
    scorer = fit.add_mutually_exclusive_group()
    scorer.add_argument("--scorer", metavar="DIR", help="a trained ONNX scorer whose P(correct) becomes a feature")
    scorer.add_argument("--train-text-scorer", action="store_true",
                        help="train ONNX text scorers (llmspend[train]) per fold and save the last beside the plan")
    fit.set_defaults(func=run_fit, parser=fit)

    ev = commands.add_parser(
        "eval",
        help="measure a plan on test data",
        description="Replay the plan on TEST: accuracy, mean USD per query and calls per query, beside "
        "every single model.",
    )
    ev.add_argument("--plan", required=True, metavar="PLAN", help="a plan written by cascade fit")
    ev.add_argument("--test", required=True, metavar="TEST", help="wide CSV or JSONL of logged calls")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--plot", metavar="FILE.png", help="draw accuracy against cost (needs matplotlib)")
    ev.set_defaults(func=run_eval, parser=ev)


def _margin(value: str) -> float | str:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"--margin takes a number of standard errors or 'auto', got {value!r}") from None


def run_fit(args: argparse.Namespace) -> int:
    from ..cascade.data import load_table
    from ..cascade.fit import TextScorerSource, fit_plan
    from ..scoring.features import CONF_FEATURES, STEP_FEATURES

    out = Path(args.out)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    table = load_table(args.train, models=models)
    text: TextScorerSource | None = None
    if args.scorer:
        from ..cascade.scorers import pretrained_text_scorer

        text = pretrained_text_scorer(args.scorer, plan_dir=out.parent)
    elif args.train_text_scorer:
        from ..cascade.scorers import trained_text_scorer

        text = trained_text_scorer(out.parent / f"{out.stem}.scorer")
    features = [f for f in STEP_FEATURES if not (args.no_logprobs and f in CONF_FEATURES)]
    plan = fit_plan(
        table,
        budget=args.budget,
        max_accuracy_drop=args.max_accuracy_drop,
        max_depth=args.max_depth,
        orderings=args.orderings,
        folds=args.folds,
        seed=args.seed,
        margin_z=_margin(args.margin),
        features=features,
        alias=args.alias,
        feature=args.feature,
        text_scorer=text,
    )
    if plan.text_scorer is not None and text is not None and text.save_dir is not None:
        # the plan points at the saved scorer relative to itself
        from dataclasses import replace

        plan = replace(plan, text_scorer={"kind": "onnx", "path": text.save_dir.name})
    out.parent.mkdir(parents=True, exist_ok=True)
    plan.save(out)
    cv = plan.cv
    print(f"wrote {out}: {' -> '.join(plan.models)}")
    print(
        f"cross-validated on {len(table)} rows: accuracy {cv['accuracy']:.3f}, {usd(cv['cost_usd_per_query'], 7)} per query; "
        f"best single {cv['best_single']['model']} {cv['best_single']['accuracy']:.3f}, "
        f"{usd(cv['best_single']['cost_usd_per_query'], 7)} per query"
    )
    if table.dropped:
        print(f"{table.dropped} queries were left out: some model had no outcome for them", file=sys.stderr)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ..cascade.data import load_table
    from ..cascade.evaluate import evaluate_plan, feature_table, frontier_curve
    from ..cascade.plan import load_plan

    plan = load_plan(args.plan)
    table = load_table(args.test)
    result = evaluate_plan(plan, table)
    if args.plot:
        from ..cascade.plot import plot_tradeoff

        plot_tradeoff(
            args.plot,
            singles=result["singles"],
            curves={"cascade across budgets": frontier_curve(plan, feature_table(plan, table))},
            points={"cascade (this plan)": (result["cost_usd_per_query"], result["accuracy"])},
            title=f"{Path(args.test).name}: accuracy against cost",
        )
    if args.json:
        print(json.dumps(result))
        return 0
    best = result["best_single"]
    print(f"plan: {' -> '.join(plan.models)} on {Path(args.test).name} ({len(table)} queries)\n")
    rows: list[tuple[object, ...]] = [("cascade", f"{result['accuracy']:.3f}", usd(result["cost_usd_per_query"], 7),
                                       f"{result['cost_usd_per_query'] / best['cost_usd_per_query']:.0%}" if best["cost_usd_per_query"] else "")]
    for single in sorted(result["singles"], key=lambda s: s["cost_usd_per_query"]):
        mark = " (best)" if single["model"] == best["model"] else ""
        share = single["cost_usd_per_query"] / best["cost_usd_per_query"] if best["cost_usd_per_query"] else 0.0
        rows.append((single["model"] + mark, f"{single['accuracy']:.3f}", usd(single["cost_usd_per_query"], 7), f"{share:.0%}"))
    print(format_table(["", "accuracy", "USD per query", "cost vs best"], rows, right=(1, 2, 3)))
    calls = ", ".join(f"{m} {v:.2f}" for m, v in result["calls_per_query"].items())
    print(f"\ncalls per query: {calls}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0
