"""``llmspend budget status``: what budgets have spent this period and what is left."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..budgets import BudgetStatus, budget_key, budget_status, parse_budget_key, spent
from ..exceptions import ConfigError
from ..ledger import LEDGER_ENV, open_ledger
from ..ledger.disk import DB_NAME
from ..periods import PERIODS, period_window
from ._table import format_table, usd


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "budget",
        help="show what budgets have spent and what is left",
        description="Budgets set with llmspend.track(budget_usd=..., period=...) and kept in a shared ledger.",
    )
    commands = parser.add_subparsers(dest="budget_command", metavar="COMMAND")
    status = commands.add_parser(
        "status",
        help="spent and left for each budget in its current period",
        description="What each budget in the ledger has spent in its current period (UTC), what it holds for "
        "calls in flight, and what is left. The ledger is a directory (one machine) or a redis:// URL "
        f"(needs llmspend-redis); default: ${LEDGER_ENV}.",
    )
    status.add_argument("--ledger", metavar="PATH|URL", help=f"the ledger to read (default: ${LEDGER_ENV})")
    status.add_argument("--feature", help="only this feature")
    status.add_argument("--user", help="only this user's budgets (for per-user budgets)")
    status.add_argument("--period", choices=PERIODS, help="only budgets of this period")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=run_status, parser=status)
    parser.set_defaults(parser=parser)


def _statuses(args: argparse.Namespace) -> list[BudgetStatus]:
    spec = args.ledger or os.environ.get(LEDGER_ENV)
    if not spec or spec == "memory":
        raise ConfigError(
            f"budget status reads a ledger that processes share: pass --ledger DIR or --ledger redis://HOST:PORT/DB, "
            f"or set {LEDGER_ENV} (a 'memory' ledger lives inside one process and cannot be read from here)"
        )
    if "://" not in spec and not (Path(spec).expanduser() / DB_NAME).is_file():
        # A status is a read: opening a mistyped path would create an empty ledger there and
        # report "nothing spent", which looks like an answer.
        raise ConfigError(
            f"no ledger at {spec}: a disk ledger is created by the first tracked call with a budget or a period "
            f"that names it (track(..., ledger={spec!r}) or ${LEDGER_ENV}); check the path"
        )
    if args.feature and args.period:  # one budget, even one that has not spent anything yet
        _say_if_unknown(spec, budget_key(args.feature, args.period, args.user))
        return [spent(args.feature, user=args.user, period=args.period, ledger=spec)]
    ledger = open_ledger(spec)
    now = time.time()
    found = []
    for known in ledger.keys():
        feature, user, period = parse_budget_key(known.key)
        if args.feature not in (None, feature) or args.period not in (None, period) or args.user not in (None, user):
            continue
        found.append(budget_status(ledger, known.key, period_window(period, now)))
    return found


def _say_if_unknown(spec: str, key: str) -> None:
    """A note on stderr when the ledger has never seen ``key``: the status printed is then of a
    budget nothing has written to (a per-user key asked of a feature-wide budget, a typo), and
    should not read as "nothing spent"."""
    ledger = open_ledger(spec)
    try:
        known = [k.key for k in ledger.keys()]
    finally:
        ledger.close()
    if key in known:
        return
    feature = parse_budget_key(key)[0]
    same = sorted(k for k in known if parse_budget_key(k)[0] == feature)
    print(f"note: this ledger has no budget {key!r}" + (f"; it has {', '.join(same)}" if same else "")
          + " (the figures below are of nothing recorded)", file=sys.stderr)


def run_status(args: argparse.Namespace) -> int:
    statuses = _statuses(args)
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return 0
    if not statuses:
        print("no budgets in this ledger yet" + (" match" if args.feature or args.user or args.period else ""))
        return 0
    rows = []
    for s in statuses:
        spent_text = usd(s.spent_usd) + (f" + {s.unknown_calls} of unknown cost" if s.unknown_calls else "")
        resets = s.resets_at.strftime("%Y-%m-%d %H:%M UTC") if s.resets_at else "never"
        limit = usd(s.limit_usd) if s.limit_usd is not None else "no limit"
        left = usd(s.remaining_usd) if s.remaining_usd is not None else "-"
        rows.append((s.budget, s.calls, spent_text, usd(s.reserved_usd), limit, left, resets))
    print(format_table(["budget", "calls", "spent", "in flight", "limit", "left", "resets"], rows, right=(1, 2, 3, 4, 5)))
    return 0
