"""Charts of the economics results: cost against volume, net savings against volume."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .._plot import count_formatter, new_figure, plain, save_figure, usd_formatter
from .breakeven import BreakevenResult
from .encs import EncsResult

__all__ = ["plot_breakeven", "plot_encs"]


def _geomspace(low: float, high: float, n: int = 200) -> list[float]:
    ratio = (high / low) ** (1 / (n - 1))
    return [low * ratio**i for i in range(n)]


def plot_breakeven(result: BreakevenResult, path: str | Path) -> Path:
    """API and self-hosting cost a day against requests a day (log scales), crossing marked."""
    volumes = [p.requests_per_day for p in result.points if p.requests_per_day > 0]
    crossing = result.crossover_requests_per_day
    low = min(volumes + ([crossing] if crossing else []), default=100.0)
    high = max(volumes + ([crossing] if crossing else []), default=1e7)
    grid = _geomspace(low / 2, high * 2)
    points = [result.at(v) for v in grid]
    figure = new_figure(9, 5.5)
    ax = figure.subplots()
    ax.plot(grid, [p.api_usd_per_day for p in points], label=plain(f"API (${result.api_usd_per_request:.6g} a request)"))
    ax.plot(grid, [p.self_host_usd_per_day for p in points],
            label=plain(f"self-hosting (${result.instance_usd_per_day:,.2f} a day an instance + "
                        f"${result.self_host_usd_per_request:.3g} a request)"))
    if crossing:
        at = result.at(crossing)
        ax.axvline(crossing, color="grey", linestyle="--", linewidth=1)
        ax.plot([crossing], [at.api_usd_per_day], "o", color="black")
        ax.annotate(plain(f"crossing: {crossing:,.0f} requests/day\n(${at.api_usd_per_day:,.2f} a day each)"),
                    (crossing, at.api_usd_per_day), textcoords="offset points", xytext=(10, -30))
    else:
        ax.text(0.02, 0.95, "self-hosting never costs less at these prices", transform=ax.transAxes, va="top")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests a day")
    ax.xaxis.set_major_formatter(count_formatter())
    ax.set_ylabel("cost a day (USD)")
    ax.yaxis.set_major_formatter(usd_formatter())
    ax.set_title("API or self-hosting: cost against volume")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return save_figure(figure, path)


def plot_encs(results: Mapping[str, EncsResult], path: str | Path, *, max_volume: float | None = None) -> Path:
    """Net savings (volume x ENCS - set-up cost) against responses a year, one line per
    option, break-even volumes marked."""
    candidates = [max_volume or 0.0]
    for r in results.values():
        candidates.append(r.annual_volume or 0.0)
        if r.breakeven_volume:
            candidates.append(r.breakeven_volume * 2)
    top = max(candidates) or 1e6
    grid = [top * i / 200 for i in range(201)]
    figure = new_figure(9, 5.5)
    ax = figure.subplots()
    ax.axhline(0, color="black", linewidth=0.8)
    for name, r in results.items():
        (line,) = ax.plot(grid, [r.net_savings_usd(v) for v in grid],
                          label=plain(f"{name}: ENCS {r.encs_usd * 100:.4g}¢, set-up ${r.setup_cost_usd:,.0f}"))
        if r.breakeven_volume and r.breakeven_volume <= top:
            ax.plot([r.breakeven_volume], [0], "o", color=line.get_color())
            ax.annotate(f"break-even {r.breakeven_volume:,.0f}", (r.breakeven_volume, 0),
                        textcoords="offset points", xytext=(5, 8), fontsize="small")
        if r.annual_volume:
            ax.axvline(r.annual_volume, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("responses a year")
    ax.xaxis.set_major_formatter(count_formatter())
    ax.set_ylabel("net savings (USD)")
    ax.yaxis.set_major_formatter(usd_formatter())
    ax.set_title("Expected net savings against volume")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return save_figure(figure, path)
