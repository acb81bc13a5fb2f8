"""``llmspend cascade fit`` and ``llmspend cascade eval``: learn a cascade plan from judged
answers, and measure it on held-out data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

from ..exceptions import ConfigError
from ._table import format_table, usd

_N = TypeVar("_N", int, float)


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
    scorer.add_argument("--scorer", metavar="DIR",
                        help="use a trained ONNX scorer (its P(correct) becomes a feature of numeric step scorers) "
                        "instead of training step scorers")
    scorer.add_argument("--numeric-scorers", action="store_true",
                        help="fast numeric step scorers held in the plan (no text, no llmspend[train] needed) "
                        "instead of ONNX scorer directories")
    fit.add_argument("--encoder", choices=("minilm", "tiny"), default="minilm",
                     help="text encoder of the ONNX step scorers (default minilm; tiny: random weights, for tests)")
    fit.add_argument("--max-length", default="auto", metavar="N",
                     help="tokens of (query, answer) the encoder reads, or 'auto' to suit the training pairs (default)")
    fit.add_argument("--quantize", action="store_true", help="write int8 encoders in the step scorers that read text")
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


def _auto_or(kind: Callable[[str], _N], value: str, flag: str, unit: str) -> _N | str:
    if value == "auto":
        return value
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{flag} takes a number of {unit} or 'auto', got {value!r}") from None


def run_fit(args: argparse.Namespace) -> int:
    from ..cascade.data import load_table
    from ..cascade.fit import TextScorerSource, fit_plan
    from ..cascade.plan import OnnxStepScorer
    from ..cascade.scorers import StepScorerExport, remove_unused_scorers, scorer_dir
    from ..scoring.features import CONF_FEATURES, STEP_FEATURES

    out = Path(args.out)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    table = load_table(args.train, models=models)
    text: TextScorerSource | None = None
    export: StepScorerExport | None = None
    if args.scorer:
        from ..cascade.scorers import pretrained_text_scorer

        text = pretrained_text_scorer(args.scorer, plan_dir=out.parent)
    elif not args.numeric_scorers:
        export = StepScorerExport(scorer_dir(out), encoder=args.encoder, max_length=_auto_or(int, args.max_length, "--max-length", "tokens"),
                                  quantize=args.quantize, progress=sys.stderr.isatty())
    features = [f for f in STEP_FEATURES if not (args.no_logprobs and f in CONF_FEATURES)]
    plan = fit_plan(
        table,
        budget=args.budget,
        max_accuracy_drop=args.max_accuracy_drop,
        max_depth=args.max_depth,
        orderings=args.orderings,
        folds=args.folds,
        seed=args.seed,
        margin_z=_auto_or(float, args.margin, "--margin", "standard errors"),
        features=features,
        alias=args.alias,
        feature=args.feature,
        text_scorer=text,
        step_scorers=export,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    plan.save(out)
    cv = plan.cv
    print(f"wrote {out}: {' -> '.join(plan.models)}")
    if export is not None:
        removed = remove_unused_scorers(plan, export.directory)
        used = {s for s in plan.used_scorers.values() if isinstance(s, OnnxStepScorer)}
        print(f"step scorers in {export.directory}/: {len(used)} ({sum(s.text for s in used)} read the text)"
              + (f"; {removed} left from an earlier fit removed" if removed else ""))
    print(
        f"cross-validated on {len(table)} rows: accuracy {cv['accuracy']:.3f}, {usd(cv['cost_usd_per_query'], 7)} per query; "
        f"best single {cv['best_single']['model']} {cv['best_single']['accuracy']:.3f}, "
        f"{usd(cv['best_single']['cost_usd_per_query'], 7)} per query"
    )
    _say_dropped(table.dropped)
    return 0


def _say_dropped(dropped: int) -> None:
    if dropped:
        print(f"{dropped} queries were left out: some model had no outcome for them", file=sys.stderr)


def run_eval(args: argparse.Namespace) -> int:
    from ..cascade.data import load_table
    from ..cascade.evaluate import evaluate_plan, feature_table, frontier_curve
    from ..cascade.plan import load_plan

    plan = load_plan(args.plan)
    table = load_table(args.test)
    result = evaluate_plan(plan, table)
    _say_dropped(table.dropped)
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
