"""Charts for the command line, drawn headless.

matplotlib is optional (``pip install 'llmspend[plot]'``) and imported only when a chart is
asked for. Figures are built with ``matplotlib.figure.Figure`` directly, not pyplot: nothing
global changes (no backend switch, no open figures), so a chart drawn from a notebook or a
server leaves the caller's matplotlib as it was, and PNGs render with Agg.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .exceptions import ConfigError

__all__ = ["new_figure", "save_figure", "usd_formatter", "count_formatter", "plain"]


def new_figure(width: float = 10.0, height: float = 6.0) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError("plots need matplotlib: pip install 'llmspend[plot]'") from exc
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in {".png", ".svg", ".pdf"}:
        raise ConfigError(f"--plot writes .png, .svg or .pdf files; got {str(path)!r}")
    try:
        figure.savefig(path, dpi=110)
    except OSError as exc:
        raise ConfigError(f"cannot write the plot to {str(path)!r}: {exc.strerror or exc}") from exc
    return path


def plain(text: str) -> str:
    """``text`` shown as written: matplotlib reads a pair of ``$`` as mathtext."""
    return text.replace("$", r"\$")


def usd_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    def fmt(value: float, _pos: int) -> str:
        size = abs(value)
        sign = "-" if value < 0 else ""
        if size >= 1e6:
            text = f"${size / 1e6:,.1f}M"
        elif size >= 1e3:
            text = f"${size / 1e3:,.0f}k"
        elif size >= 10 or size == 0:
            text = f"${size:,.0f}"
        elif size >= 1:
            text = f"${size:,.1f}"
        else:
            text = f"${size:.2g}"
        return plain(sign + text)

    return FuncFormatter(fmt)


def count_formatter() -> Any:
    """1500000 -> 1.5M, 20000 -> 20k."""
    from matplotlib.ticker import FuncFormatter

    def fmt(value: float, _pos: int) -> str:
        for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:g}{suffix}"
        return f"{value:g}"

    return FuncFormatter(fmt)
