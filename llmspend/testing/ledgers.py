"""A workload for ledger concurrency tests: many clients reserving against one budget.

Each client reserves random amounts until it has been refused a number of times, settling every
reservation to a random real cost. The caller runs it in threads, processes or on several
Redis clients at once and checks the ledger against what the clients say they were charged::

    runs = [hammer_ledger(make, "k", limit_usd=1.0, seed=i) for i in ...]   # concurrently
    spent = make().spent("k", window).spent_usd
    assert spent == sum(r.charged_usd for r in runs)            # no update was lost
    assert spent <= 1.0 + sum(r.excess_usd for r in runs)       # the documented bound

Module-level and picklable, so ``multiprocessing`` with the spawn method can run it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..ledger.base import Ledger, from_nano, to_nano
from ..periods import Window

__all__ = ["LedgerRun", "hammer_ledger", "hammer_in_process"]


@dataclass(frozen=True)
class LedgerRun:
    """What one client did: calls it got through, refusals, and what it was charged."""

    calls: int
    refusals: int
    charged_usd: float
    #: the sum over its calls of what each cost beyond its reservation
    excess_usd: float


def hammer_ledger(
    make_ledger: Callable[[], Ledger],
    key: str,
    *,
    limit_usd: float,
    window: Window | None = None,
    seed: int = 0,
    max_refusals: int = 5,
    max_calls: int = 10_000,
    reserve_usd: tuple[float, float] = (0.001, 0.01),
    overrun: float = 0.0,
    barrier: Any = None,
) -> LedgerRun:
    """Reserve amounts drawn from ``reserve_usd`` and settle each to between half of it and
    ``1 + overrun`` times it (``overrun > 0`` plays a call that cost more than its estimate),
    until refused ``max_refusals`` times. ``barrier`` (if given) is waited on first, so
    every client starts at once."""
    rng = random.Random(seed)
    window = window or Window("none", 0, None)
    ledger = make_ledger()
    if barrier is not None:
        barrier.wait()
    calls = refusals = 0
    charged = excess = 0
    while refusals < max_refusals and calls < max_calls:
        amount = rng.uniform(*reserve_usd)
        reservation = ledger.reserve(key, amount, limit_usd, window)
        if reservation is None:
            refusals += 1
            continue
        actual = reservation.amount_usd * rng.uniform(0.5, 1.0 + overrun)
        ledger.settle(reservation, actual)
        calls += 1
        charged += to_nano(actual)
        excess += max(0, to_nano(actual) - to_nano(reservation.amount_usd))
    return LedgerRun(calls, refusals, from_nano(charged), from_nano(excess))


def hammer_in_process(args: tuple[Callable[[], Ledger], str, dict[str, Any]], queue: Any) -> None:
    """:func:`hammer_ledger` for a ``multiprocessing`` child: the result goes on ``queue``."""
    make_ledger, key, options = args
    queue.put(hammer_ledger(make_ledger, key, **options))
