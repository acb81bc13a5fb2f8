"""``llmspend demo``: the main job, offline, on an embedded server."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the offline demo (no keys, no network)",
        description="Start an embedded OpenAI-compatible server, run a sample support app through "
        "llmspend.wrap(), and print what every call cost, by model, from the spans.",
    )
    parser.add_argument("--rounds", type=int, default=2, help="how many times the sample app runs its day (default 2)")
    parser.add_argument("--show-spans", type=int, default=8, metavar="N", help="print the first N spans (default 8)")
    parser.add_argument("--spans-out", metavar="FILE", help="also write every span as a JSON line to FILE")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(rounds=args.rounds, show_spans=args.show_spans, spans_out=args.spans_out)
    return 0
