"""The accuracy-against-cost picture of a cascade (matplotlib, imported only when drawn)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_tradeoff"]


def plot_tradeoff(
    path: str | Path,
    *,
    singles: Sequence[Mapping[str, Any]],
    curves: Mapping[str, Sequence[tuple[float, float]]],
    points: Mapping[str, tuple[float, float]] | None = None,
    title: str = "Accuracy against cost",
) -> Path:
    """Write a PNG: each single model as a labelled dot, each curve of (USD per query,
    accuracy) as a line, each named point as a star. The cost axis is logarithmic."""
    from matplotlib.ticker import NullFormatter

    from .._plot import new_figure, plain, save_figure, usd_formatter

    fig = new_figure(7.5, 5.0)
    ax = fig.add_subplot()
    for single in singles:
        x, y = single["cost_usd_per_query"], single["accuracy"]
        ax.scatter([x], [y], color="0.35", s=22, zorder=3)
        ax.annotate(plain(str(single["model"])), (x, y), textcoords="offset points", xytext=(4, -9), fontsize=7, color="0.3")
    for name, curve in curves.items():
        ordered = sorted(curve)
        ax.plot([c for c, _ in ordered], [a for _, a in ordered], marker="o", markersize=3.5, linewidth=1.6, label=plain(name))
    for name, (x, y) in (points or {}).items():
        ax.scatter([x], [y], marker="*", s=160, zorder=4, label=plain(name), edgecolors="black", linewidths=0.5)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(usd_formatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("mean cost per query (USD, log scale)")
    ax.set_ylabel("accuracy")
    ax.set_title(plain(title))
    ax.grid(True, which="both", alpha=0.25)
    if curves or points:
        ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
