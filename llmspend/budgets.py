"""Budgets: a limit in USD per feature (optionally per user) and period, kept in a ledger.

A :class:`Budget` is what ``llmspend.track(..., budget_usd=5, period="day")`` configures; when
the tracked code runs, it is bound to the feature (and user) in effect as an
:class:`ActiveBudget`, which the budget stage reserves against before each call. A period
without ``budget_usd`` counts spending without limiting it, so :func:`spent` can report it.

Budget keys name what is counted: ``support-reply/day`` or, per user,
``support-reply/user=u42/day``. Inside a ledger each part is percent-quoted, so any feature or
user name is safe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote

from .exceptions import ConfigError
from .ledger import Ledger, LedgerSpec, default_ledger, open_ledger
from .periods import Window, check_period, period_window

__all__ = [
    "Budget",
    "ActiveBudget",
    "BudgetStatus",
    "ON_UNKNOWN",
    "MAX_LIMIT_USD",
    "budget_key",
    "parse_budget_key",
    "budget_status",
    "spent",
]

#: the largest limit a budget takes: ledgers keep integer nano-dollars in 64-bit integers
#: (SQLite, Redis), which end at about $9.2 billion
MAX_LIMIT_USD = 1e9

#: what a budget does with a call whose most possible cost cannot be known
ON_UNKNOWN = ("refuse", "allow")


def budget_key(feature: str, period: str, user: str | None = None) -> str:
    """The ledger key of a budget: ``feature[/user=USER]/period``, parts percent-quoted."""
    parts = [quote(feature, safe="")]
    if user is not None:
        parts.append("user=" + quote(user, safe=""))
    parts.append(period)
    return "/".join(parts)


def parse_budget_key(key: str) -> tuple[str, str | None, str]:
    """``(feature, user, period)`` of a key made by :func:`budget_key`."""
    parts = key.split("/")
    user = unquote(parts[1][5:]) if len(parts) == 3 and parts[1].startswith("user=") else None
    return unquote(parts[0]), user, parts[-1]


def _display(feature: str, period: str, user: str | None) -> str:
    return f"{feature}/user={user}/{period}" if user is not None else f"{feature}/{period}"


@dataclass(frozen=True)
class Budget:
    """A budget as configured. ``limit_usd=None`` counts without limiting.

    ``per_user``: one budget per user (the user in effect when the tracked code runs) instead
    of one for the whole feature. ``fallback_model``: a call that would not fit is sent to this
    (cheaper) model instead of being refused, if it fits (not a cascade's step, which is
    refused: its cascade chose the model). ``on_unknown``: ``"refuse"`` a call
    whose most possible cost cannot be known (unpriced model, no output limit), or ``"allow"``
    it uncounted until its real cost is known. ``ledger``: where it is kept (``None``: the
    process default at the time the tracked code runs).
    """

    limit_usd: float | None
    period: str
    per_user: bool = False
    fallback_model: str | None = None
    on_unknown: str = "refuse"
    ledger: Ledger | None = None

    def __post_init__(self) -> None:
        limit = self.limit_usd
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)
                                  or not 0 <= limit <= MAX_LIMIT_USD):
            raise ConfigError(f"budget_usd must be a number of USD from 0 to {MAX_LIMIT_USD:,.0f}, got {limit!r} "
                              f"(leave it out to count spending without a limit)")
        check_period(self.period)
        if not isinstance(self.per_user, bool):
            raise ConfigError(f"per_user must be True or False, got {self.per_user!r}")
        if self.fallback_model is not None and (not isinstance(self.fallback_model, str) or not self.fallback_model):
            raise ConfigError(f"fallback_model must be a model name, got {self.fallback_model!r}")
        if self.on_unknown not in ON_UNKNOWN:
            raise ConfigError(f"on_unknown must be 'refuse' or 'allow', got {self.on_unknown!r}")
        if self.limit_usd is not None:
            object.__setattr__(self, "limit_usd", float(self.limit_usd))

    @classmethod
    def create(
        cls,
        limit_usd: float | None,
        period: str,
        *,
        per_user: bool = False,
        fallback_model: str | None = None,
        on_unknown: str = "refuse",
        ledger: LedgerSpec | None = None,
    ) -> Budget:
        """A budget whose ledger is opened now, so a bad ledger name fails at construction."""
        return cls(limit_usd, period, per_user, fallback_model, on_unknown, None if ledger is None else open_ledger(ledger))

    def bind(self, feature: str, user: str | None) -> ActiveBudget:
        """This budget for ``feature`` (and ``user`` when per user), with its ledger resolved."""
        if self.per_user and user is None:
            raise ConfigError(
                f"the budget of feature {feature!r} is per user but no user is set: pass user= to this "
                f"track or an enclosing one"
            )
        who = user if self.per_user else None
        return ActiveBudget(
            self,
            budget_key(feature, self.period, who),
            _display(feature, self.period, who),
            self.ledger if self.ledger is not None else default_ledger(),
        )


@dataclass(frozen=True)
class ActiveBudget:
    """A budget bound to its feature (and user): what the budget stage reserves against."""

    budget: Budget
    key: str
    #: the name errors and reports use, e.g. ``support-reply/day``
    name: str
    ledger: Ledger

    @property
    def limit_usd(self) -> float | None:
        return self.budget.limit_usd


@dataclass(frozen=True)
class BudgetStatus:
    """What a budget has spent in its current period and what is left.

    ``limit_usd`` is the limit it was last used with (``None``: counted only, or never seen);
    ``remaining_usd`` is what a new call may still reserve (``None`` without a limit);
    ``resets_at`` is ``None`` for the period "none". ``unknown_calls`` counts calls whose cost
    could not be known: they are charged what was reserved for them.
    """

    budget: str
    feature: str
    user: str | None
    period: str
    spent_usd: float
    reserved_usd: float
    limit_usd: float | None
    remaining_usd: float | None
    resets_at: datetime | None
    calls: int
    unknown_calls: int
    ledger: str

    def as_dict(self) -> dict[str, object]:
        out = dict(self.__dict__)
        out["resets_at"] = self.resets_at.isoformat() if self.resets_at else None
        return out


def budget_status(ledger: Ledger, key: str, window: Window) -> BudgetStatus:
    """The status of ledger key ``key`` in ``window``."""
    feature, user, period = parse_budget_key(key)
    totals = ledger.spent(key, window)
    remaining = None
    if totals.limit_usd is not None:
        remaining = max(0.0, totals.limit_usd - totals.spent_usd - totals.reserved_usd)
    return BudgetStatus(
        budget=_display(feature, period, user),
        feature=feature,
        user=user,
        period=period,
        spent_usd=totals.spent_usd,
        reserved_usd=totals.reserved_usd,
        limit_usd=totals.limit_usd,
        remaining_usd=remaining,
        resets_at=window.resets_at,
        calls=totals.calls,
        unknown_calls=totals.unknown_calls,
        ledger=ledger.url,
    )


def spent(
    feature: str,
    *,
    user: str | None = None,
    period: str = "day",
    ledger: LedgerSpec | None = None,
    now: datetime | float | None = None,
) -> BudgetStatus:
    """What ``feature`` (for ``user``, if its budget is per user) has spent this ``period``
    and what is left, from ``ledger`` (default: the process default ledger).

    Only tracked code with a budget or a period writes to a ledger::

        @llmspend.track(feature="support-reply", budget_usd=5, period="day")
        ...
        llmspend.spent(feature="support-reply", period="day").remaining_usd
    """
    if not isinstance(feature, str) or not feature:
        raise ConfigError(f"spent() needs a feature name, got {feature!r}")
    check_period(period)
    book = default_ledger() if ledger is None else open_ledger(ledger)
    window = period_window(period, time.time() if now is None else now)
    return budget_status(book, budget_key(feature, period, user), window)
