"""Budget ledgers: where budgets keep what was spent and what is reserved.

Choose one by what shares the budget:

====================  =======================================  ===========================
``"memory"``          the threads and tasks of one process      :class:`MemoryLedger`
a directory path      the processes of one machine (SQLite)     :class:`DiskLedger`
``redis://...``       many machines (``pip install llmspend-redis``)  a plugin's ledger
====================  =======================================  ===========================

``track(..., ledger=...)`` takes any of these (or a :class:`Ledger`); without one, budgets use
the process default: what :func:`set_default_ledger` set, else the ``LLMSPEND_LEDGER``
environment variable, else ``"memory"``. Ledgers are opened once per process and name, so every
budget naming the same Redis URL shares one connection pool.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Union

from ..exceptions import ConfigError, PluginError
from .base import DEFAULT_LEASE_S, BudgetKey, Ledger, Reservation, Totals
from .disk import DiskLedger
from .memory import MemoryLedger

__all__ = [
    "Ledger",
    "Reservation",
    "Totals",
    "BudgetKey",
    "MemoryLedger",
    "DiskLedger",
    "LedgerSpec",
    "LEDGER_ENV",
    "DEFAULT_LEASE_S",
    "open_ledger",
    "default_ledger",
    "set_default_ledger",
    "redact_url",
]

LEDGER_ENV = "LLMSPEND_LEDGER"

LedgerSpec = Union[str, "os.PathLike[str]", Ledger]

_lock = threading.Lock()
_opened: dict[str, Ledger] = {}
_default: Ledger | None = None


def redact_url(url: str) -> str:
    """``url`` without its secrets, for messages and ``Ledger.url``: the password of the user
    part (``user:***@``), the whole user part when it has no colon (``redis://SECRET@host``
    reads as a username but is most often a password; ``***@``), and a ``password=`` query
    parameter. Never raises, whatever ``url`` holds: it runs where a bad URL is reported."""
    head, sep, rest = url.partition("://")
    if sep:
        # The user part ends at the last "@" before the query: a password may hold "/" or "@".
        authority_end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
        at = rest.rfind("@", 0, authority_end)
        if at >= 0:
            user, colon, _ = rest[:at].partition(":")
            rest = (f"{user}:***" if colon else "***") + rest[at:]
        url = head + sep + rest
    return re.sub(r"([?&;]password=)[^&#;]*", r"\1***", url, flags=re.IGNORECASE)


def open_ledger(spec: LedgerSpec) -> Ledger:
    """The ledger ``spec`` names (see the module docstring), opened once per process."""
    if isinstance(spec, Ledger):
        return spec
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(
            f"ledger= takes 'memory', a directory path, a URL such as 'redis://host:6379/0', or a Ledger; got {spec!r}"
        )
    if spec == "memory":
        name = "memory"
    elif "://" in spec:
        name = spec
    else:
        name = str(Path(spec).expanduser().resolve())
    with _lock:
        ledger = _opened.get(name)
        if ledger is None:
            ledger = _opened[name] = _make(spec, name)
    return ledger


def _make(spec: str, name: str) -> Ledger:
    if name == "memory":
        return MemoryLedger()
    if "://" not in spec:
        return DiskLedger(name)
    scheme = spec.split("://", 1)[0].lower()
    from ..plugins import ledger_backends

    factory = ledger_backends().get(scheme)
    if factory is None:
        hint = " (pip install llmspend-redis)" if scheme in ("redis", "rediss", "unix") else ""
        known = ", ".join(f"{s}://" for s in sorted(ledger_backends())) or "none installed"
        raise ConfigError(
            f"no budget ledger handles {scheme}:// URLs{hint}; ledger plugins: {known}. "
            f"Without a plugin use 'memory' or a directory path"
        )
    ledger = factory(spec)
    if not isinstance(ledger, Ledger):
        raise PluginError(f"the {scheme}:// ledger plugin returned {type(ledger).__name__}, not a llmspend.ledger.Ledger")
    return ledger


def set_default_ledger(spec: LedgerSpec | None) -> Ledger | None:
    """Make ``spec`` the ledger of budgets that name none (``None``: back to the default).
    Returns the opened ledger, so a bad name fails here, not at the first call."""
    global _default
    ledger = None if spec is None else open_ledger(spec)
    with _lock:
        _default = ledger
    return ledger


def default_ledger() -> Ledger:
    """The ledger of budgets that name none: see :func:`set_default_ledger`."""
    ledger = _default
    if ledger is not None:
        return ledger
    return open_ledger(os.environ.get(LEDGER_ENV) or "memory")
