"""``llmspend cache stats`` and ``llmspend cache clear``: look into a cache, or empty it."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from ..cache import CacheBackend, default_cache_dir, open_backend
from ..cache.disk import holds_cache
from ..exceptions import CacheError, ConfigError
from ..ledger import redact_url
from ._table import usd

T = TypeVar("T")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "cache",
        help="show or clear a cache of LLM answers",
        description="Show what a cache holds and what it saved, or empty it. The disk cache in "
        f"{default_cache_dir()} by default; --dir for another directory, --url for a cache "
        "backend plugin (redis://... with llmspend-redis).",
    )
    commands = parser.add_subparsers(dest="cache_command", metavar="COMMAND")
    parser.set_defaults(parser=parser)
    for name, help_text, func in (
        ("stats", "entries, size, hits, misses and USD saved since the last clear", _stats),
        ("clear", "remove every entry and reset the counters", _clear),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
        where = command.add_mutually_exclusive_group()
        where.add_argument("--dir", help=f"a disk cache directory (default {default_cache_dir()})")
        where.add_argument("--url", help="a cache URL handled by a plugin, e.g. redis://localhost:6379/0")
        command.add_argument("--prefix", help="with --url: the key prefix the app's cache was given "
                             "(CacheConfig options={'prefix': ...}), if not the backend's default")
        if name == "stats":
            command.add_argument("--json", action="store_true", help="print JSON")
        command.set_defaults(func=func, parser=command)


def _on_backend(
    args: argparse.Namespace, doing: str, action: Callable[[CacheBackend], T]
) -> tuple[CacheBackend, T] | None:
    """Open the cache the arguments name, run ``action`` on it and close it; None (said so)
    when the default or given directory does not exist or holds no cache (looking must not
    create one). A fault of
    the backend (a Redis that is down, a wrong password) becomes a :class:`CacheError` naming
    the cache and the reason, printed as one line rather than a traceback."""
    if args.prefix is not None and not args.url:
        raise ConfigError("--prefix goes with --url (a disk cache has no key prefix)")
    if args.url:
        backend = open_backend(args.url, **({"prefix": args.prefix} if args.prefix is not None else {}))
    else:
        directory = args.dir or default_cache_dir()
        if not os.path.isdir(os.path.expanduser(str(directory))):
            print(f"no cache in {directory} (nothing has been stored there yet)")
            return None
        if not holds_cache(directory):  # a directory of the user's: do not make it a cache
            print(f"no llmspend cache in {directory} (it holds none of a cache's files; left as it is)")
            return None
        backend = open_backend(str(directory))
    try:
        return backend, action(backend)
    except Exception as exc:  # whatever the backend's client raises: we only report it
        reason = f"{type(exc).__name__}: {exc}"
        if args.url:
            reason = reason.replace(args.url, redact_url(args.url))
        raise CacheError(f"could not {doing} the cache at {backend.describe()}: {reason}") from exc
    finally:
        backend.close()


def _stats(args: argparse.Namespace) -> int:
    done = _on_backend(args, "read", lambda backend: backend.stats())
    if done is None:
        return 0
    stats = done[1]
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    looked_up = stats["hits"] + stats["misses"]
    rows: list[tuple[str, str]] = [
        ("backend", f"{stats['backend']} at {stats['location']}"),
        ("entries", f"{stats['entries']:,}"),
    ]
    if stats.get("bytes") is not None:
        limit = stats.get("size_limit_bytes")
        rows.append(("size", f"{stats['bytes']:,} bytes" + (f" of {limit:,}" if limit else "")))
    for key, value in stats.items():
        if key.startswith("server_") and value is not None:
            rows.append((key.removeprefix("server_").replace("_", " "), str(value)))
    rows += [
        ("hits", f"{stats['hits']:,}" + (f" ({stats['hits'] / looked_up:.0%} of lookups)" if looked_up else "")),
        ("misses", f"{stats['misses']:,}"),
        ("stored", f"{stats['stores']:,}"),
        ("errors", f"{stats['errors']:,}"),
        ("saved", usd(stats["saved_usd"])),
    ]
    for key, value in rows:
        print(f"{key:>22}  {value}")
    print("\nCounts are since the last `llmspend cache clear`, written by running apps about once a second.")
    return 0


def _clear(args: argparse.Namespace) -> int:
    done = _on_backend(args, "clear", lambda backend: backend.clear())
    if done is not None:
        print(f"removed {done[1]:,} entries from {done[0].describe()}")
    return 0
