"""A ledger in this process's memory: one lock, dicts, no I/O.

Right for one process (threads and asyncio tasks share it safely). Processes do not see each
other's spending: use the disk ledger for several processes of one machine, Redis for several
machines.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from ..periods import Window
from .base import DEFAULT_LEASE_S, BudgetKey, Ledger, Reservation, Totals, from_nano, to_nano

__all__ = ["MemoryLedger"]


@dataclass
class _Account:
    end: int | None
    spent: int = 0
    calls: int = 0
    unknown_calls: int = 0
    #: reservation id -> (nano-dollars held, expiry as time.monotonic())
    holds: dict[str, tuple[int, float]] = field(default_factory=dict)

    def reserved(self, now: float) -> int:
        expired = [rid for rid, (_, expires) in self.holds.items() if expires <= now]
        for rid in expired:
            del self.holds[rid]
        return sum(amount for amount, _ in self.holds.values())


class MemoryLedger(Ledger):
    """See the module docstring. ``lease_s``: how long an unsettled reservation holds budget."""

    def __init__(self, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.url = "memory"
        self.lease_s = lease_s
        self._lock = threading.Lock()
        self._accounts: dict[tuple[str, int], _Account] = {}
        self._keys: dict[str, BudgetKey] = {}

    def _account(self, key: str, window: Window) -> _Account:
        account = self._accounts.get((key, window.start))
        if account is None:
            # A new window for this key: the key's windows that are over are no longer needed.
            now = time.time()
            for old in [k for k, a in self._accounts.items() if k[0] == key and a.end is not None and a.end <= now]:
                del self._accounts[old]
            account = self._accounts[(key, window.start)] = _Account(window.end)
        return account

    def reserve(self, key: str, amount_usd: float, limit_usd: float | None, window: Window) -> Reservation | None:
        amount = to_nano(amount_usd, up=True)
        now = time.monotonic()
        with self._lock:
            self._keys[key] = BudgetKey(key, window.period, limit_usd)
            account = self._account(key, window)
            if limit_usd is not None and account.spent + account.reserved(now) + amount > to_nano(limit_usd):
                return None
            rid = uuid.uuid4().hex
            account.holds[rid] = (amount, now + self.lease_s)
        return Reservation(key, window, from_nano(amount), rid)

    def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        with self._lock:
            account = self._account(reservation.key, reservation.window)
            account.holds.pop(reservation.id, None)
            charge = to_nano(reservation.amount_usd) if actual_usd is None else to_nano(actual_usd)
            account.spent += charge
            account.calls += 1
            if actual_usd is None:
                account.unknown_calls += 1

    def release(self, reservation: Reservation) -> None:
        with self._lock:
            account = self._accounts.get((reservation.key, reservation.window.start))
            if account is not None:
                account.holds.pop(reservation.id, None)

    def spent(self, key: str, window: Window) -> Totals:
        with self._lock:
            known = self._keys.get(key)
            limit = known.limit_usd if known is not None else None
            account = self._accounts.get((key, window.start))
            if account is None:
                return Totals(limit_usd=limit)
            reserved = account.reserved(time.monotonic())
            return Totals(from_nano(account.spent), from_nano(reserved), account.calls, account.unknown_calls, limit)

    def keys(self) -> list[BudgetKey]:
        with self._lock:
            return list(self._keys.values())
