"""One chart of a :class:`SpendReport`: cost by model, by day, by feature, and saved by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._plot import new_figure, plain, save_figure, usd_formatter
from .aggregate import SpendReport

__all__ = ["plot_report"]


def _bars(ax: Any, items: list[tuple[str, float]], title: str, empty: str) -> None:
    ax.set_title(title)
    if not items:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    labels = [plain(k if len(k) <= 28 else k[:27] + "…") for k, _ in items][::-1]
    ax.barh(labels, [v for _, v in items][::-1], color="#4C72B0")
    ax.xaxis.set_major_formatter(usd_formatter())


def plot_report(report: SpendReport, path: str | Path, *, top: int = 8) -> Path:
    """Write the chart to ``path`` (.png, .svg or .pdf) and return the path."""
    figure = new_figure(12, 8)
    (model_ax, day_ax), (feature_ax, stage_ax) = figure.subplots(2, 2)
    total = report.total
    figure.suptitle(plain(
        f"LLM spend: ${total.cost_usd:,.4f} over {total.calls:,} calls"
        + (f" ({total.unknown_cost_calls:,} of unknown cost, not shown)" if total.unknown_cost_calls else "")
        + f"; saved ${total.saved_usd:,.4f}"
    ))
    _bars(model_ax, [(k, t.cost_usd) for k, t in report.by("model", top=top)], "Cost by model", "no calls")
    _bars(feature_ax, [(k, t.cost_usd) for k, t in report.by("feature", top=top)], "Cost by feature", "no calls")
    _bars(stage_ax, [(k, s.usd) for k, s in report.savings_by_stage()], "Saved by stage",
          "no savings recorded on these spans")
    days = report.by("day")
    day_ax.set_title("Cost by day (UTC)")
    if days:
        day_ax.bar(range(len(days)), [t.cost_usd for _, t in days], color="#55A868")
        step = max(1, len(days) // 8)
        day_ax.set_xticks(range(0, len(days), step), [d for d, _ in days][::step], rotation=30, ha="right")
        day_ax.yaxis.set_major_formatter(usd_formatter())
    return save_figure(figure, path)
