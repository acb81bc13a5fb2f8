"""Expected net cost savings (ENCS) of an LLM feature that drafts responses for people.

The method is LivePerson's (Howell et al., "The economic trade-offs of large language models:
A case study", ACL 2023 industry track, arXiv 2306.07402). A drafted response is *used* as is,
*edited* and then used, or *ignored* by the agent it was drafted for. Each action saves agent
time (or, when a draft is read and thrown away, costs some), and agent time has a price::

    S(k)  = hourly_rate / 3600 * seconds_saved(k)              k in {use, edit, ignore}
    ENCS  = sum_k P(k) * S(k)  -  C                            C: the model's cost per response

Over a year of ``V`` responses with a one-off set-up cost ``F`` (training, distillation,
integration), the net saving is ``V * ENCS - F``; it pays back from ``V = F / ENCS`` on, and
never when ``ENCS <= 0``.

Pure functions; :func:`read_action_log` turns a CSV of agent decisions into the action rates
(and, with a ``seconds`` column, the time each action took).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError
from ._check import finite as _finite

__all__ = [
    "ACTIONS",
    "EncsResult",
    "ActionLog",
    "encs",
    "read_action_log",
    "saving_per_action_usd",
]

#: what an agent can do with a drafted response
ACTIONS = ("use", "edit", "ignore")

# Spellings accepted in an action log, so exports from agent tools load as they are.
_ACTION_ALIASES = {
    "use": "use", "used": "use", "sent": "use", "send": "use", "accept": "use", "accepted": "use",
    "edit": "edit", "edited": "edit", "modify": "edit", "modified": "edit",
    "ignore": "ignore", "ignored": "ignore", "dismiss": "ignore", "dismissed": "ignore",
    "reject": "ignore", "rejected": "ignore",
}

# Rates are shares; accept the rounding of a hand-typed set such as 0.33/0.33/0.34.
_RATE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class EncsResult:
    """ENCS per response and what it adds up to over a year. Money in USD."""

    #: expected net saving per response: ``gross_saving_usd - cost_per_response_usd``
    encs_usd: float
    #: expected agent-time saving per response, before the model's cost; also the most a
    #: response may cost before the feature loses money
    gross_saving_usd: float
    cost_per_response_usd: float
    hourly_rate_usd: float
    action_rates: Mapping[str, float]
    seconds_saved: Mapping[str, float]
    #: ``S(k)``: what one response acted on with ``k`` saves (negative: costs)
    saving_per_action_usd: Mapping[str, float]
    #: responses a year (``None``: not given)
    annual_volume: float | None = None
    setup_cost_usd: float = 0.0

    @property
    def annual_savings_usd(self) -> float | None:
        """``annual_volume * encs_usd``: the yearly net saving before set-up costs."""
        return None if self.annual_volume is None else self.annual_volume * self.encs_usd

    @property
    def first_year_net_usd(self) -> float | None:
        """The yearly saving less the set-up cost."""
        return None if self.annual_volume is None else self.net_savings_usd(self.annual_volume)

    @property
    def breakeven_volume(self) -> float | None:
        """Responses needed to recover the set-up cost: ``setup / ENCS``; ``None`` when ENCS
        is not positive (no volume ever pays it back)."""
        if self.encs_usd <= 0:
            return None
        return self.setup_cost_usd / self.encs_usd

    @property
    def pays_back(self) -> bool | None:
        """Whether ``annual_volume`` responses recover the set-up cost within the year."""
        net = self.first_year_net_usd
        return None if net is None else net >= 0

    def net_savings_usd(self, volume: float) -> float:
        """Net saving over ``volume`` responses: ``volume * ENCS - setup``."""
        return volume * self.encs_usd - self.setup_cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "encs_usd": self.encs_usd,
            "gross_saving_usd": self.gross_saving_usd,
            "cost_per_response_usd": self.cost_per_response_usd,
            "hourly_rate_usd": self.hourly_rate_usd,
            "action_rates": dict(self.action_rates),
            "seconds_saved": dict(self.seconds_saved),
            "saving_per_action_usd": dict(self.saving_per_action_usd),
            "annual_volume": self.annual_volume,
            "annual_savings_usd": self.annual_savings_usd,
            "setup_cost_usd": self.setup_cost_usd,
            "first_year_net_usd": self.first_year_net_usd,
            "breakeven_volume": self.breakeven_volume,
            "pays_back": self.pays_back,
        }


def _action(name: str, where: str) -> str:
    action = _ACTION_ALIASES.get(str(name).strip().lower())
    if action is None:
        raise ConfigError(f"{where}: unknown action {name!r}; use one of {', '.join(ACTIONS)}")
    return action


def _normalise_rates(action_rates: Mapping[str, float]) -> dict[str, float]:
    if not action_rates:
        raise ConfigError("action_rates is empty: give the share of responses used, edited and ignored, "
                          "e.g. {'use': 0.6, 'edit': 0.25, 'ignore': 0.15}")
    rates: dict[str, float] = {}
    for key, value in action_rates.items():
        action = _action(key, "action_rates")
        rate = _finite(f"action_rates[{key!r}]", value)
        if rate > 1:
            raise ConfigError(f"action_rates[{key!r}] is a share of responses, between 0 and 1; got {rate:g}")
        rates[action] = rates.get(action, 0.0) + rate
    total = sum(rates.values())
    if abs(total - 1.0) > _RATE_TOLERANCE:
        raise ConfigError(
            f"action_rates must add up to 1 (every response is used, edited or ignored); they add up to "
            f"{total:g}. Give the missing share to the action it belongs to, e.g. ignore={max(0.0, 1 - total):g}"
        )
    return {a: rates.get(a, 0.0) for a in ACTIONS}


def saving_per_action_usd(hourly_rate_usd: float, seconds_saved: Mapping[str, float]) -> dict[str, float]:
    """``S(k) = hourly_rate / 3600 * seconds_saved(k)`` for each action given."""
    rate = _finite("hourly_rate_usd", hourly_rate_usd)
    return {
        _action(k, "seconds_saved"): rate / 3600.0 * _finite(f"seconds_saved[{k!r}]", v, minimum=None)
        for k, v in seconds_saved.items()
    }


def encs(
    *,
    action_rates: Mapping[str, float],
    seconds_saved: Mapping[str, float],
    hourly_rate_usd: float,
    cost_per_response_usd: float,
    annual_volume: float | None = None,
    setup_cost_usd: float = 0.0,
) -> EncsResult:
    """Expected net cost savings per response, and what it comes to at ``annual_volume``.

    ``action_rates``: share of responses used / edited / ignored (they add up to 1), from
    observation (:func:`read_action_log`) or an estimate. ``seconds_saved``: agent seconds
    each action saves against writing the message unaided (negative when it costs time, e.g.
    reading a draft and ignoring it); an action with a zero rate may be left out.
    ``cost_per_response_usd``: the model's cost of one response, e.g. the mean
    ``llmspend.cost.usd`` of its spans (:meth:`llmspend.report.SpendReport.mean_cost_usd`).

    >>> r = encs(action_rates={"use": 0.5, "ignore": 0.5}, seconds_saved={"use": 36, "ignore": 0},
    ...          hourly_rate_usd=10, cost_per_response_usd=0.01, annual_volume=1000)
    >>> round(r.encs_usd, 6), round(r.annual_savings_usd, 2)
    (0.04, 40.0)
    """
    rates = _normalise_rates(action_rates)
    savings = saving_per_action_usd(hourly_rate_usd, seconds_saved)
    missing = [a for a in ACTIONS if rates[a] > 0 and a not in savings]
    if missing:
        raise ConfigError(
            f"seconds_saved has no entry for {', '.join(missing)} but action_rates gives "
            f"{'it' if len(missing) == 1 else 'them'} a share: say how many seconds "
            f"{'that action saves' if len(missing) == 1 else 'each saves'} (0 if none, negative if it costs time)"
        )
    cost = _finite("cost_per_response_usd", cost_per_response_usd)
    volume = None if annual_volume is None else _finite("annual_volume", annual_volume)
    setup = _finite("setup_cost_usd", setup_cost_usd)
    gross = sum(rates[a] * savings.get(a, 0.0) for a in ACTIONS)
    return EncsResult(
        encs_usd=gross - cost,
        gross_saving_usd=gross,
        cost_per_response_usd=cost,
        hourly_rate_usd=float(hourly_rate_usd),
        action_rates=rates,
        seconds_saved={_action(k, "seconds_saved"): float(v) for k, v in seconds_saved.items()},
        saving_per_action_usd=savings,
        annual_volume=volume,
        setup_cost_usd=setup,
    )


@dataclass(frozen=True)
class ActionLog:
    """What agents did with drafted responses, counted from a log of their decisions."""

    counts: Mapping[str, int]
    #: mean seconds an agent spent on a message, by action, where the log gave it
    mean_seconds: Mapping[str, float] = field(default_factory=dict)
    #: rows left out by ``where``
    filtered_out: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def rates(self) -> dict[str, float]:
        total = self.total
        return {a: self.counts.get(a, 0) / total for a in ACTIONS} if total else {}

    def seconds_saved(self, baseline_seconds: float) -> dict[str, float]:
        """Seconds each action saved against ``baseline_seconds``, the time an agent takes to
        write a message unaided: ``baseline - mean seconds spent``. Needs a ``seconds`` column."""
        baseline = _finite("baseline_seconds", baseline_seconds)
        missing = [a for a in ACTIONS if self.counts.get(a) and a not in self.mean_seconds]
        if missing:
            raise ConfigError(
                f"the action log has no seconds for {', '.join(missing)}: add a 'seconds' column "
                "(time the agent spent on that message) or give seconds saved per action directly"
            )
        return {a: baseline - s for a, s in self.mean_seconds.items()}


def read_action_log(path: str | Path, *, where: Mapping[str, str] | None = None) -> ActionLog:
    """Count agent decisions in a CSV with a header row.

    Columns: ``action`` (required; ``use``, ``edit`` or ``ignore``, also ``used``/``sent``,
    ``edited``, ``ignored``/``dismissed``), ``seconds`` (optional; time the agent spent on
    that message). Other columns are kept only for ``where``, e.g. ``{"model": "gpt2"}``
    counts the rows whose ``model`` column is ``gpt2``. Streams the file.
    """
    path = Path(path)
    try:
        # utf-8-sig: spreadsheets (Excel's "CSV UTF-8") start the file with a byte-order mark
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read the action log {str(path)!r}: {exc.strerror or exc}") from exc
    counts = {a: 0 for a in ACTIONS}
    seconds_sum = {a: 0.0 for a in ACTIONS}
    seconds_n = {a: 0 for a in ACTIONS}
    filtered = 0
    with handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "action" not in fields:
            raise ConfigError(
                f"{path}: the action log needs a header row with an 'action' column "
                f"(found: {', '.join(fields) or 'no header'})"
            )
        reader.fieldnames = fields
        conditions = {k.strip().lower(): str(v) for k, v in (where or {}).items()}
        for key in conditions:
            if key not in fields:
                raise ConfigError(f"{path}: where= names column {key!r}, which the log does not have")
        for line, row in enumerate(reader, start=2):
            if any((row.get(k) or "").strip() != v for k, v in conditions.items()):
                filtered += 1
                continue
            action = _action(row.get("action") or "", f"{path}, line {line}")
            counts[action] += 1
            raw = (row.get("seconds") or "").strip()
            if raw:
                seconds_sum[action] += _finite(f"{path}, line {line}: seconds", raw)
                seconds_n[action] += 1
    if not sum(counts.values()):
        raise ConfigError(f"{path}: no agent decisions to count" + (" after where=" if where else ""))
    mean = {a: seconds_sum[a] / seconds_n[a] for a in ACTIONS if seconds_n[a]}
    return ActionLog(counts=counts, mean_seconds=mean, filtered_out=filtered)
