"""The disk cache backend: diskcache, made safe to share.

- **JSON only, never pickle.** The stage hands this backend finished JSON entries as bytes,
  and they are stored as raw bytes. diskcache unpickles values by default, so anyone who can
  write the cache can run code in the app that reads it (CVE-2025-69872); the ``Disk`` here
  never writes a pickle and refuses to load one: such a row reads as a corrupt entry.
- **Owner-only directory.** It is created with mode 0700; an existing one with wider
  permissions is narrowed when opened, and one owned by another user is refused. Inside it,
  what llmspend and diskcache create (shard directories, the counters, SQLite's files, value
  files) must be plain files and directories of the same user: a symlink there (planted while
  the directory was open to others) is refused, and the rest is narrowed to 0600 / 0700.
- **Many writers.** A ``FanoutCache`` spreads keys over SQLite shards, so concurrent writers
  rarely queue on one lock; diskcache gives each thread its own connection and SQLite's locking
  (in WAL mode) keeps processes that share the directory consistent.
- **Bounded.** ``size_limit_bytes`` with eviction of the least recently stored entries, and a
  TTL per entry (diskcache's ``expire``). A write waits at most ``timeout_s`` for a lock.

    >>> import tempfile
    >>> cache = DiskCache(tempfile.mkdtemp() + "/llmspend")
    >>> cache.set("a" * 64, b'{"v": 1}', ttl_s=60)
    >>> cache.get("a" * 64)
    b'{"v": 1}'
    >>> cache.get("b" * 64) is None
    True
    >>> oct(os.stat(cache.directory).st_mode & 0o777)
    '0o700'
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import diskcache  # type: ignore[import-untyped]
from diskcache.core import MODE_BINARY, MODE_RAW, UNKNOWN  # type: ignore[import-untyped]

from ..exceptions import CacheError, ConfigError, CorruptCacheEntryError
from .base import COUNTERS, CacheBackend

__all__ = ["DiskCache", "default_cache_dir", "holds_cache", "secure_directory", "secure_contents"]

DEFAULT_SIZE_LIMIT = 2**30  # 1 GiB
DEFAULT_SHARDS = 8
DEFAULT_TIMEOUT_S = 0.25
# diskcache keeps values below this size inside SQLite and larger ones in files of their own.
MIN_FILE_SIZE = 2**15
# The savings counter is kept in nano-USD: diskcache counters are integers.
_NANO = 1e9


def default_cache_dir() -> Path:
    """``$LLMSPEND_CACHE_DIR``, else ``$XDG_CACHE_HOME/llmspend``, else ``~/.cache/llmspend``."""
    explicit = os.environ.get("LLMSPEND_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "llmspend"


def holds_cache(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a disk cache: the counters' database, which opening a
    :class:`DiskCache` creates. Looking into a directory that does not must leave it alone:
    opening a cache there would write shards into it and narrow its permissions."""
    return (Path(directory).expanduser() / "stats" / "cache.db").is_file()


def secure_directory(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` owner-only (0700), or check an existing one: narrow wider permissions,
    refuse a directory another user owns (they could plant entries in it)."""
    directory = Path(path).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"the cache location {directory} is not a directory")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        raise ConfigError(f"cannot create the cache directory {directory}: {exc}") from exc
    getuid = getattr(os, "getuid", None)  # POSIX only
    if getuid is not None and info.st_uid != getuid():
        raise ConfigError(
            f"the cache directory {directory} belongs to another user (uid {info.st_uid}); llmspend only "
            "uses a cache directory of its own user. Choose another directory (cache=PATH)"
        )
    if info.st_mode & 0o077:
        try:
            os.chmod(directory, 0o700)
        except OSError as exc:
            raise ConfigError(f"cannot make the cache directory {directory} owner-only (0700): {exc}") from exc
    return directory


# What llmspend and diskcache create at the top of a cache directory: the shard directories
# (000, 001, ...), the counters' directory, SQLite's files. Anything else there is the user's.
_OWN_NAMES = re.compile(r"\d{3}|stats|cache\.db(-wal|-shm|-journal)?")


def secure_contents(directory: Path, *, depth: int | None = None) -> None:
    """Refuse a cache ``directory`` in which what llmspend and diskcache create (see
    ``_OWN_NAMES``, and everything under those, down to ``depth`` levels; None: all) is a
    symlink, not a plain file or directory, or another user's; narrow the rest to owner-only
    (0600 files, 0700 directories). Called once ``directory`` itself is owner-only, so that no
    one else can reach inside it while this looks."""
    getuid = getattr(os, "getuid", None)  # POSIX only
    uid = getuid() if getuid is not None else None
    try:
        pending = [(Path(e.path), 0) for e in os.scandir(directory) if _OWN_NAMES.fullmatch(e.name)]
        while pending:
            path, level = pending.pop()
            try:
                _check_entry(path, level, depth, uid, pending)
            except FileNotFoundError:
                # another process sharing the directory removed it meanwhile (a value file
                # evicted, SQLite's -wal/-shm files): nothing left to check
                continue
    except OSError as exc:
        raise ConfigError(f"cannot check or narrow the cache directory {directory}: {exc}") from exc


def _check_entry(path: Path, level: int, depth: int | None, uid: int | None, pending: list[tuple[Path, int]]) -> None:
    """One entry of :func:`secure_contents`; a directory adds its entries to ``pending``."""
    info = os.lstat(path)
    mode = info.st_mode
    if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        what = f"a symbolic link to {os.readlink(path)}" if stat.S_ISLNK(mode) else "not a file or directory"
        raise ConfigError(
            f"{path} in the cache directory is {what}; llmspend writes only into files and directories "
            f"of its own there. Remove it, or choose another cache directory (cache=PATH)"
        )
    if uid is not None and info.st_uid != uid:
        raise ConfigError(
            f"{path} in the cache directory belongs to another user (uid {info.st_uid}); remove it, or "
            "choose another cache directory (cache=PATH)"
        )
    if stat.S_ISDIR(mode):
        if mode & 0o077:
            os.chmod(path, 0o700)
        if depth is None or level < depth:
            pending += ((Path(e.path), level + 1) for e in os.scandir(path))
    elif mode & 0o077:
        os.chmod(path, 0o600)


class _JSONOnlyDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache serialisation for llmspend: ``str`` keys, ``bytes`` values (and ``int``
    counters), stored as they are. Nothing is pickled on write or unpickled on read."""

    def __init__(self, directory: str, min_file_size: int = MIN_FILE_SIZE, **_settings: Any) -> None:
        # Other disk_* settings found in the directory (pickle_protocol, ...) do not apply.
        super().__init__(directory, min_file_size=min_file_size)

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"llmspend cache keys are str, not {type(key).__name__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise CorruptCacheEntryError("a pickled key (llmspend never writes one)")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> Any:
        if read or type(value) not in (bytes, int):
            raise TypeError(f"the llmspend disk cache stores bytes, not {type(value).__name__}")
        return super().store(value, read, key=key)

    def _write(self, full_path: str, iterator: Any, mode: str, encoding: str | None = None) -> int:
        # diskcache makes a value file's directories and the file with the umask's modes
        # (0755/0644): make them owner-only, as the rest of the cache directory.
        leaf = os.path.dirname(full_path)
        for directory in (os.path.dirname(leaf), leaf):  # makedirs gives mode= to the leaf only
            with suppress(OSError):
                os.mkdir(directory, 0o700)
        size = int(super()._write(full_path, iterator, mode, encoding))
        os.chmod(full_path, 0o600)
        return size

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode not in (MODE_RAW, MODE_BINARY) or read:
            raise CorruptCacheEntryError(
                f"stored in diskcache mode {mode} (pickle or text), which llmspend never writes or loads"
            )
        return super().fetch(mode, filename, value, read)


class DiskCache(CacheBackend):
    """Cached answers in a local directory (see the module docstring).

    ``directory`` defaults to :func:`default_cache_dir`. Several processes and threads may
    share one directory.
    """

    kind = "disk"

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        size_limit_bytes: int = DEFAULT_SIZE_LIMIT,
        shards: int = DEFAULT_SHARDS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        for name, value, low in (("size_limit_bytes", size_limit_bytes, 1), ("shards", shards, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"DiskCache {name} must be an int >= {low}, got {value!r}")
        if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or timeout_s <= 0:
            raise ConfigError(f"DiskCache timeout_s must be a number of seconds > 0, got {timeout_s!r}")
        self.directory = secure_directory(directory if directory is not None else default_cache_dir())
        secure_contents(self.directory)
        self.size_limit_bytes = size_limit_bytes
        self.timeout_s = float(timeout_s)
        try:
            self._entries = diskcache.FanoutCache(
                str(self.directory), shards=shards, timeout=self.timeout_s, disk=_JSONOnlyDisk,
                size_limit=size_limit_bytes, eviction_policy="least-recently-stored",
            )
            self._counters = diskcache.Cache(str(self.directory / "stats"), timeout=self.timeout_s, disk=_JSONOnlyDisk)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the cache in {self.directory}: {exc}") from exc
        # what diskcache just made (shard directories, databases) has the umask's modes; SQLite
        # gives the -wal and -shm files it makes later the mode of their database
        try:
            secure_contents(self.directory, depth=1)
        except ConfigError:
            self.close()
            raise

    def describe(self) -> str:
        return str(self.directory)

    def get(self, key: str) -> bytes | None:
        value = self._entries.get(key)
        if value is not None and type(value) is not bytes:
            raise CorruptCacheEntryError(f"a {type(value).__name__} where bytes were stored")
        return value

    def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        if not self._entries.set(key, value, expire=ttl_s):
            raise CacheError(f"the disk cache was locked by other writers for over {self.timeout_s}s; not stored")

    def delete(self, key: str) -> None:
        self._entries.delete(key)

    def clear(self) -> int:
        removed = int(self._entries.clear(retry=True))
        self._counters.clear(retry=True)
        return removed

    def add_counts(self, counts: Mapping[str, float]) -> None:
        for name, value in counts.items():
            if name == "saved_usd":
                self._counters.incr("saved_nusd", round(value * _NANO))
            elif value:
                self._counters.incr(name, int(value))

    def stats(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "backend": self.kind,
            "location": str(self.directory),
            "entries": len(self._entries),
            "bytes": int(self._entries.volume()),
            "size_limit_bytes": self.size_limit_bytes,
        }
        for name in COUNTERS:
            if name == "saved_usd":
                found[name] = int(self._counters.get("saved_nusd", 0)) / _NANO
            else:
                found[name] = int(self._counters.get(name, 0))
        return found

    def close(self) -> None:
        self._entries.close()
        self._counters.close()
