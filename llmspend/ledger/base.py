"""The ledger contract: where budgets keep what has been spent and what is reserved.

A ledger keeps, per budget key and period window, the USD spent and the USD reserved by calls
still in flight. Reserving is an atomic check-and-add: it succeeds only if what is spent, plus
what is reserved, plus the new amount stays within the limit. So concurrent callers (threads,
processes, machines, depending on the ledger) can never reserve more than the limit between
them. After the call, the reservation is *settled* to what the call really cost, or *released*
when nothing was bought.

Contract for implementers (built-in ledgers and plugins under ``llmspend.ledgers`` alike):

- ``reserve`` is atomic with respect to every other user of the same store, and stores the
  key's period and limit so ``keys()`` can list budgets for ``llmspend budget status``.
- ``settle(reservation, None)`` (cost unknown) charges the reserved amount and counts the call
  as one of unknown cost; ``settle`` of a reservation that expired still charges the cost.
- A reservation expires after the ledger's ``lease_s`` (so a crashed process cannot hold a
  budget forever); ``settle``/``release`` are called at most once per reservation.
- Amounts are kept as integer nano-dollars inside a ledger so sums are exact and every store
  (SQLite, Redis' Lua numbers) agrees on the arithmetic; the API speaks USD floats.
- Methods raise :class:`~llmspend.exceptions.LedgerError` when the store cannot be reached.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..periods import Window

__all__ = ["Ledger", "Reservation", "Totals", "BudgetKey", "to_nano", "from_nano", "DEFAULT_LEASE_S"]

#: how long a reservation holds budget if it is never settled (its process died)
DEFAULT_LEASE_S = 3600.0

_NANO = 1_000_000_000


def to_nano(usd: float, *, up: bool = False) -> int:
    """USD as integer nano-dollars; ``up`` rounds up (reservations never round down)."""
    scaled = round(usd * _NANO, 3)  # drop float noise before rounding up
    return math.ceil(scaled) if up else round(scaled)


def from_nano(nano: int) -> float:
    return nano / _NANO


@dataclass(frozen=True)
class Reservation:
    """Budget held for one call in flight, until it is settled or released."""

    key: str
    window: Window
    amount_usd: float
    id: str


@dataclass(frozen=True)
class Totals:
    """One budget key's window: what was spent, what is held, and the limit last used."""

    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    calls: int = 0
    unknown_calls: int = 0
    limit_usd: float | None = None


@dataclass(frozen=True)
class BudgetKey:
    """A budget the ledger knows: its key, period and the limit it was last used with."""

    key: str
    period: str
    limit_usd: float | None


class Ledger(ABC):
    """See the module docstring."""

    #: how the ledger was named (a path, ``memory``, a URL without its password)
    url: str = ""
    #: True when calls wait on I/O (disk, network): async code runs them in a worker thread
    blocking: bool = False
    lease_s: float = DEFAULT_LEASE_S

    @abstractmethod
    def reserve(self, key: str, amount_usd: float, limit_usd: float | None, window: Window) -> Reservation | None:
        """Hold ``amount_usd`` in ``key``'s ``window`` if spent + reserved + amount stays within
        ``limit_usd`` (``None``: no limit, always succeeds). ``None`` when it would not fit."""

    @abstractmethod
    def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        """Replace the hold by what the call cost (``None``: unknown, charge the hold)."""

    @abstractmethod
    def release(self, reservation: Reservation) -> None:
        """Drop the hold: nothing was bought."""

    @abstractmethod
    def spent(self, key: str, window: Window) -> Totals:
        """What ``key`` has spent and holds in ``window``."""

    @abstractmethod
    def keys(self) -> list[BudgetKey]:
        """Every budget key this ledger has seen, with its period and last limit."""

    def close(self) -> None:
        """Release connections and files."""
