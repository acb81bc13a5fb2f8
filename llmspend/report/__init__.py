"""Where the money went, from exported spans: cost by model, feature, user and day, and what
each stage saved (docs/report.md).

    from llmspend.report import build_report

    report = build_report("spans.jsonl")          # console JSON lines or OTLP JSON, streamed
    report.total.cost_usd, report.by("feature"), report.savings_by_stage()

The command line: ``llmspend report spans.jsonl [--json] [--plot spend.png]``.
"""

from __future__ import annotations

from pathlib import Path

from .aggregate import DIMENSIONS, NONE, OTHER, SpendReport, StageSaving, Totals
from .spans import ReadStats, SpanRecord, iter_spans
from .stages import STAGES, UNATTRIBUTED, marked_stages, stage_savings

__all__ = [
    "build_report",
    "SpendReport",
    "Totals",
    "StageSaving",
    "DIMENSIONS",
    "NONE",
    "OTHER",
    "iter_spans",
    "SpanRecord",
    "ReadStats",
    "STAGES",
    "UNATTRIBUTED",
    "stage_savings",
    "marked_stages",
]


def build_report(
    paths: str | Path | list[str | Path],
    *,
    progress: bool | None = None,
    max_keys: int = 10_000,
) -> SpendReport:
    """Read span files (``-`` for stdin; ``.gz`` is decompressed) into a :class:`SpendReport`,
    one span at a time. ``progress``: a progress bar on stderr (``None``: for large files on a
    terminal). Lines without ``gen_ai.operation.name`` are skipped unparsed. Raises
    :class:`llmspend.ConfigError` for a file that cannot be read or holds no LLM call at all."""
    from ..exceptions import ConfigError

    report = SpendReport(max_keys=max_keys)
    report.extend(iter_spans(paths, stats=report.read, progress=progress))
    read = report.read
    if report.total.calls == 0 and read.lines > 0:
        where = f" (malformed JSON at {', '.join(read.malformed_at)})" if read.malformed else ""
        raise ConfigError(
            f"no LLM call spans (spans with gen_ai.operation.name) in {', '.join(read.files)}{where}: "
            "expected the console exporter's JSON lines "
            "(llmspend demo --spans-out FILE, configure_telemetry('console', out=...)) or OTLP JSON "
            "(the Collector's file exporter); see docs/report.md"
        )
    return report
