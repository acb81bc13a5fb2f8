"""Ledgers under contention: many threads and processes reserving against one budget never
spend past it by more than the documented bound, and no update is lost."""

from __future__ import annotations

import functools
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmspend.ledger import DiskLedger, Ledger, MemoryLedger
from llmspend.ledger.base import from_nano, to_nano
from llmspend.periods import Window
from llmspend.testing.ledgers import LedgerRun, hammer_in_process, hammer_ledger

LIMIT = 0.5
FOREVER = Window("none", 0, None)


def run_threads(make: Callable[[], Ledger], clients: int, **options: Any) -> list[LedgerRun]:
    # A client that fails before the barrier would leave the others waiting at it for ever:
    # the barrier times out, and the first client's error is raised here.
    barrier = threading.Barrier(clients, timeout=60)
    runs: list[LedgerRun] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        try:
            run = hammer_ledger(make, "feature/none", limit_usd=LIMIT, seed=seed, barrier=barrier, **options)
        except BaseException as exc:
            barrier.abort()
            with lock:
                errors.append(exc)
            return
        with lock:
            runs.append(run)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0] if errors else None)
    if first is not None:
        raise first
    return runs


def run_processes(make: Callable[[], Ledger], clients: int, **options: Any) -> list[LedgerRun]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(clients, timeout=60)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=hammer_in_process,
                    args=((make, "feature/none", {"limit_usd": LIMIT, "seed": seed, "barrier": barrier, **options}), queue))
        for seed in range(clients)
    ]
    for p in procs:
        p.start()
    runs = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return runs


def check(ledger: Ledger, runs: list[LedgerRun]) -> None:
    totals = ledger.spent("feature/none", FOREVER)
    charged = sum(to_nano(r.charged_usd) for r in runs)
    # every settlement landed exactly once: no lost or doubled update
    assert to_nano(totals.spent_usd) == charged
    assert totals.calls == sum(r.calls for r in runs)
    assert totals.reserved_usd == 0
    # the bound: the limit, plus what calls cost beyond their reservations
    assert totals.spent_usd <= LIMIT + sum(r.excess_usd for r in runs) + 1e-9
    # and the budget was really contended: everyone was refused at the end, close to the limit
    assert all(r.refusals > 0 for r in runs)
    assert totals.spent_usd > LIMIT * 0.5


def test_memory_ledger_threads() -> None:
    ledger = MemoryLedger()
    runs = run_threads(lambda: ledger, 8)
    check(ledger, runs)
    assert sum(r.excess_usd for r in runs) == 0  # nothing cost more than reserved ...
    assert ledger.spent("feature/none", FOREVER).spent_usd <= LIMIT  # ... so never over


def test_memory_ledger_threads_with_overruns_stay_within_the_bound() -> None:
    ledger = MemoryLedger()
    runs = run_threads(lambda: ledger, 8, overrun=0.2)
    check(ledger, runs)
    assert sum(r.excess_usd for r in runs) > 0  # the overrun case really happened


def test_a_fresh_disk_ledger_opened_by_many_at_once(tmp_path: Path) -> None:
    # Workers starting together on a new ledger: SQLite answers "database is locked" at once,
    # without its busy timeout, to a connection turning on WAL while another does. Before, about
    # one such start in fifteen failed with LedgerError (and a client thread died).
    for trial in range(60):
        path = tmp_path / f"ledger-{trial}"
        barrier = threading.Barrier(6, timeout=60)
        errors: list[BaseException] = []

        def open_it() -> None:
            barrier.wait()
            try:
                DiskLedger(path).reserve("feature/none", 0.001, LIMIT, FOREVER)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"trial {trial}"


def test_disk_ledger_threads(tmp_path: Path) -> None:
    runs = run_threads(lambda: DiskLedger(tmp_path / "ledger"), 6)
    ledger = DiskLedger(tmp_path / "ledger")
    check(ledger, runs)
    assert ledger.spent("feature/none", FOREVER).spent_usd <= LIMIT


def test_disk_ledger_processes(tmp_path: Path) -> None:
    make = functools.partial(DiskLedger, tmp_path / "ledger")
    runs = run_processes(make, 3, overrun=0.1)
    check(DiskLedger(tmp_path / "ledger"), runs)


def test_to_nano_rounds_reservations_up_and_costs_to_nearest() -> None:
    assert to_nano(1e-9 / 3, up=True) == 1
    assert to_nano(1e-9 / 3) == 0
    assert to_nano(0.1, up=True) == 100_000_000  # no float noise rounding up a whole number
    assert from_nano(to_nano(2.5)) == 2.5
