"""Budget periods: which window of time a moment falls in, and when that window ends.

Windows are aligned to UTC boundaries, so every process and machine sharing a ledger agrees on
them without talking to each other::

    >>> from datetime import datetime, timezone
    >>> w = period_window("day", datetime(2025, 3, 31, 22, 15, tzinfo=timezone.utc))
    >>> (w.start_at.isoformat(), w.resets_at.isoformat())
    ('2025-03-31T00:00:00+00:00', '2025-04-01T00:00:00+00:00')
    >>> period_window("none", datetime(2025, 3, 31, tzinfo=timezone.utc)).resets_at is None
    True

Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .exceptions import ConfigError

__all__ = ["PERIODS", "Window", "period_window", "check_period"]

#: every period a budget may have; "none" never resets
PERIODS = ("minute", "hour", "day", "month", "none")


@dataclass(frozen=True)
class Window:
    """One period's span of time: ``[start, end)`` in Unix seconds; ``end`` is ``None`` for
    the period "none" (one window for all time, starting at 0)."""

    period: str
    start: int
    end: int | None

    @property
    def start_at(self) -> datetime:
        return datetime.fromtimestamp(self.start, timezone.utc)

    @property
    def resets_at(self) -> datetime | None:
        return None if self.end is None else datetime.fromtimestamp(self.end, timezone.utc)


def check_period(period: object) -> str:
    """``period`` if it is one of :data:`PERIODS`, else a ConfigError that lists them."""
    if not isinstance(period, str) or period not in PERIODS:
        raise ConfigError(f"period must be one of {', '.join(map(repr, PERIODS))}; got {period!r}")
    return period


def period_window(period: str, now: datetime | float) -> Window:
    """The window of ``period`` that contains ``now`` (a timezone-aware datetime or Unix time)."""
    check_period(period)
    if period == "none":
        return Window("none", 0, None)
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("period_window needs a timezone-aware datetime (or Unix time)")
        moment = now.astimezone(timezone.utc)
    else:
        moment = datetime.fromtimestamp(now, timezone.utc)
    if period == "minute":
        start = moment.replace(second=0, microsecond=0)
        end = start + timedelta(minutes=1)
    elif period == "hour":
        start = moment.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    else:  # month
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return Window(period, int(start.timestamp()), int(end.timestamp()))
