"""Argument checks shared by the economics functions: a wrong input is a ConfigError that
names the argument and says what it must be."""

from __future__ import annotations

import math

from ..exceptions import ConfigError


def finite(name: str, value: object, *, minimum: float | None = 0.0) -> float:
    """``value`` as a float, finite and at least ``minimum`` (``None``: any sign)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be >= {minimum:g}, got {number:g}")
    return number
