"""A ledger in a SQLite file, for the processes of one machine.

Every reservation is one ``BEGIN IMMEDIATE`` transaction: SQLite takes the database's write
lock before reading, so check-and-reserve is atomic across threads and processes without a
server. WAL journaling lets readers (``llmspend budget status``) work while a writer holds the
lock. The database lives in a directory only its owner may enter (0700); a directory that others
can write to is refused, since whoever can write the ledger can lift a budget. Stdlib only.

A network file system (NFS, SMB) does not give SQLite the locks it needs: use Redis to share a
budget between machines.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..exceptions import ConfigError, LedgerError
from ..periods import Window
from .base import DEFAULT_LEASE_S, BudgetKey, Ledger, Reservation, Totals, from_nano, to_nano

__all__ = ["DiskLedger", "DB_NAME"]

DB_NAME = "ledger.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets (
    key TEXT PRIMARY KEY, period TEXT NOT NULL, limit_nano INTEGER);
CREATE TABLE IF NOT EXISTS accounts (
    key TEXT NOT NULL, window_start INTEGER NOT NULL, window_end INTEGER,
    spent INTEGER NOT NULL DEFAULT 0, calls INTEGER NOT NULL DEFAULT 0,
    unknown_calls INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key, window_start));
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, window_start INTEGER NOT NULL,
    amount INTEGER NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS holds_by_account ON holds (key, window_start);
"""

# Windows that ended this long ago are dropped now and then (status only shows current ones).
_KEEP_ENDED_S = 7 * 86400
_PRUNE_EVERY = 1000


def _wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Turn on WAL journaling, waiting up to ``timeout_s`` for the lock it needs: while another
    connection switches a new database to WAL, SQLite says "database is locked" at once,
    without waiting its busy timeout (several workers opening a fresh ledger together failed
    so about one time in fifteen)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class DiskLedger(Ledger):
    """See the module docstring. ``path`` is a directory (created 0700) for the database;
    ``timeout_s`` is how long a writer waits for another's lock before giving up."""

    blocking = True

    def __init__(self, path: str | os.PathLike[str], *, lease_s: float = DEFAULT_LEASE_S, timeout_s: float = 30.0) -> None:
        self.directory = Path(path).expanduser()
        self.url = str(self.directory)
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        _owner_only_directory(self.directory)
        self.path = self.directory / DB_NAME
        self._local = threading.local()
        self._reserves = 0
        with self._transaction() as db:  # fails here, at construction, if the file is unusable
            self._prune(db)

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # One connection per thread and process: sqlite3 connections must not cross either.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
            _wal(conn, self.timeout_s)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the budget ledger {self.path}: {exc}") from exc
        os.chmod(self.path, 0o600)
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(f"budget ledger {self.path}: {exc}") from exc

    # -- the contract ------------------------------------------------------------------
    def reserve(self, key: str, amount_usd: float, limit_usd: float | None, window: Window) -> Reservation | None:
        amount = to_nano(amount_usd, up=True)
        limit = None if limit_usd is None else to_nano(limit_usd)
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO budgets (key, period, limit_nano) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET period = excluded.period, limit_nano = excluded.limit_nano",
                (key, window.period, limit),
            )
            db.execute("DELETE FROM holds WHERE key = ? AND window_start = ? AND expires <= ?", (key, window.start, now))
            if limit is not None:
                spent, reserved = self._sums(db, key, window.start)
                if spent + reserved + amount > limit:
                    return None
            rid = uuid.uuid4().hex
            db.execute(
                "INSERT INTO accounts (key, window_start, window_end) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (key, window.start, window.end),
            )
            db.execute(
                "INSERT INTO holds (id, key, window_start, amount, expires) VALUES (?, ?, ?, ?, ?)",
                (rid, key, window.start, amount, now + self.lease_s),
            )
            self._reserves += 1
            if self._reserves % _PRUNE_EVERY == 0:
                self._prune(db)
        return Reservation(key, window, from_nano(amount), rid)

    def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        charge = to_nano(reservation.amount_usd if actual_usd is None else actual_usd)
        unknown = 1 if actual_usd is None else 0
        window = reservation.window
        with self._transaction() as db:
            db.execute("DELETE FROM holds WHERE id = ?", (reservation.id,))
            db.execute(
                "INSERT INTO accounts (key, window_start, window_end, spent, calls, unknown_calls) "
                "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (key, window_start) DO UPDATE SET "
                "spent = spent + excluded.spent, calls = calls + 1, unknown_calls = unknown_calls + excluded.unknown_calls",
                (reservation.key, window.start, window.end, charge, unknown),
            )

    def release(self, reservation: Reservation) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM holds WHERE id = ?", (reservation.id,))

    def spent(self, key: str, window: Window) -> Totals:
        with self._transaction(write=False) as db:
            row = db.execute("SELECT limit_nano FROM budgets WHERE key = ?", (key,)).fetchone()
            counts = db.execute(
                "SELECT calls, unknown_calls FROM accounts WHERE key = ? AND window_start = ?", (key, window.start)
            ).fetchone()
            spent, reserved = self._sums(db, key, window.start, now=time.time())
        limit = None if row is None or row[0] is None else from_nano(row[0])
        calls, unknown = counts if counts is not None else (0, 0)
        return Totals(from_nano(spent), from_nano(reserved), calls, unknown, limit)

    def keys(self) -> list[BudgetKey]:
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT key, period, limit_nano FROM budgets ORDER BY key").fetchall()
        return [BudgetKey(k, p, None if n is None else from_nano(n)) for k, p, n in rows]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _sums(db: sqlite3.Connection, key: str, start: int, now: float | None = None) -> tuple[int, int]:
        spent_row = db.execute("SELECT spent FROM accounts WHERE key = ? AND window_start = ?", (key, start)).fetchone()
        if now is None:  # the caller already dropped expired holds
            held = db.execute("SELECT COALESCE(SUM(amount), 0) FROM holds WHERE key = ? AND window_start = ?", (key, start))
        else:
            held = db.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM holds WHERE key = ? AND window_start = ? AND expires > ?",
                (key, start, now),
            )
        return (spent_row[0] if spent_row else 0), held.fetchone()[0]

    @staticmethod
    def _prune(db: sqlite3.Connection) -> None:
        now = time.time()
        db.execute("DELETE FROM holds WHERE expires <= ?", (now,))
        db.execute("DELETE FROM accounts WHERE window_end IS NOT NULL AND window_end < ?", (now - _KEEP_ENDED_S,))


def _owner_only_directory(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot create the budget ledger directory {path}: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"the budget ledger path {path} is not a directory; give a directory for the ledger")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError(f"the budget ledger directory {path} belongs to another user; use a directory of your own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"the budget ledger directory {path} can be written by other users, who could lift a budget; "
            f"run: chmod 700 {path}"
        )
