"""``llmspend report SPANS``: where the money went, from exported spans (docs/report.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..exceptions import ConfigError
from ..report import DIMENSIONS, SpendReport, Totals, build_report
from ._table import format_table, usd


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "report",
        help="cost by model, feature, user and day, and what each stage saved, from span files",
        description="Read exported spans (console-exporter JSON lines, e.g. from `llmspend demo --spans-out FILE`, or "
        "the OpenTelemetry Collector's OTLP JSON file exporter; .gz read as is; - for stdin), streaming, and print "
        "cost by model, feature, user and day and what each stage saved. Calls whose cost is unknown are counted "
        "apart, never as $0.",
    )
    parser.add_argument("spans", nargs="+", metavar="SPANS", help="span file(s)")
    parser.add_argument("--by", default=",".join(DIMENSIONS), metavar="DIMS",
                        help=f"breakdowns to print, comma-separated (default {','.join(DIMENSIONS)})")
    parser.add_argument("--top", type=int, default=20, help="rows per breakdown before the rest is summed (default 20; for days, the latest)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw cost by model, day, feature and savings by stage")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="always show a progress bar (needs tqdm)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show one")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    dims = [d.strip() for d in args.by.split(",") if d.strip()]
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ConfigError(f"--by: unknown breakdown {', '.join(unknown)}; choose from {', '.join(DIMENSIONS)}")
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    report = build_report(args.spans, progress=args.progress)
    if args.plot:
        from ..report.plot import plot_report

        plot_report(report, args.plot)
    if args.json:
        print(json.dumps(report.as_dict(top=args.top), indent=2))
        return 0
    print(render(report, dims=dims, top=args.top))
    if args.plot:
        print(f"\nChart written to {args.plot}")
    return 0


def _cost(t: Totals) -> tuple[str, str]:
    """A group's cost and share columns: ``unknown`` for a group none of whose calls could be
    priced (its $0 would be a figure nobody measured)."""
    if t.unknown_cost_calls and not t.priced_calls:
        return "unknown", "-"
    return usd(t.cost_usd), ""


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole > 0 else "-"


def render(report: SpendReport, *, dims: list[str] | None = None, top: int = 20) -> str:
    """The report as text tables."""
    total = report.total
    read = report.read
    formats = ", ".join(f"{n:,} {k}" for k, n in read.formats.items()) or "no spans"
    out = [f"{total.calls:,} LLM calls in {len(read.files)} file{'s' if len(read.files) != 1 else ''} ({formats}; "
           f"{read.lines:,} lines, {read.bytes / 1e6:,.1f} MB)"]
    if read.malformed:
        out.append(f"{read.malformed:,} malformed lines skipped (first at {', '.join(read.malformed_at)})")
    parts = [f"{total.priced_calls:,} priced"]
    if total.unknown_cost_calls:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(report.unknown_reasons.items()))
        parts.append(f"{total.unknown_cost_calls:,} of unknown cost ({reasons}), not counted as $0")
    if total.failed_calls:
        parts.append(f"{total.failed_calls:,} failed")
    if total.served_by_stage:
        parts.append(f"{total.served_by_stage:,} answered by a stage without a provider call")
    out.append(f"\nCost {_cost(total)[0]}; saved {usd(total.saved_usd)}; calls: {', '.join(parts)}.")
    headers = ["calls", "unknown", "input tok", "cached tok", "output tok", "cost", "share", "saved"]
    for dim in dims or list(DIMENSIONS):
        rows = []
        for key, t in report.by(dim, top=top):
            cost, share = _cost(t)
            rows.append((key, f"{t.calls:,}", f"{t.unknown_cost_calls:,}" if t.unknown_cost_calls else "",
                         f"{t.input_tokens:,}", f"{t.cached_input_tokens:,}", f"{t.output_tokens:,}", cost,
                         share or _share(t.cost_usd, total.cost_usd), usd(t.saved_usd) if t.saved_usd else ""))
        title = f"By {dim}" + (" (UTC, from span start)" if dim == "day" else "")
        out.append(f"\n{title}\n" + format_table([dim, *headers], rows, right=tuple(range(1, 9))))
        overflow = report.overflow.get(dim)
        if overflow:
            out.append(f"({overflow:,} calls beyond {report.max_keys:,} distinct values folded into '(other)')")
    stages = report.savings_by_stage()
    out.append("\nSaved by stage")
    if stages:
        saved = sum(s.usd for _, s in stages)
        out.append(format_table(["stage", "calls", "saved", "share"],
                                [(name, f"{s.calls:,}", usd(s.usd), _share(s.usd, saved)) for name, s in stages],
                                right=(1, 2, 3)))
        gross = total.cost_usd + saved
        out.append(f"Without these stages the priced calls would have cost {usd(gross)}: "
                   f"{_share(saved, gross)} less.")
    else:
        out.append("(no savings recorded on these spans: no cache, cascade, trim or batch stage saved anything)")
    return "\n".join(out)
