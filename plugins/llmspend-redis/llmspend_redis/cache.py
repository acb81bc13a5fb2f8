"""The Redis cache backend.

    llmspend.wrap(client, cache="redis://cache.internal:6379/0")
    llmspend.wrap(client, cache=RedisCache("rediss://:PASSWORD@cache:6380/0", timeout_s=0.05))

Entries are the JSON bytes the cache stage hands over, stored under ``PREFIX + "e:" + KEY``
with their TTL; the counters of ``llmspend cache stats`` live in the hash ``PREFIX + "stats"``.
Nothing here deserialises what it reads: bytes in, bytes out.

Waiting is bounded (see :mod:`llmspend_redis.connection`). The size limit is Redis's own:
give the server a ``maxmemory`` and an LRU ``maxmemory-policy`` (``allkeys-lru``, or
``volatile-lru`` when the database holds other data: every entry has a TTL).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llmspend.cache import COUNTERS, CacheBackend
from llmspend.exceptions import ConfigError, CorruptCacheEntryError
from llmspend.ledger import redact_url

from .connection import Breaker, RedisClients, seconds

__all__ = ["RedisCache"]

DEFAULT_PREFIX = "llmspend:cache:"
DEFAULT_TIMEOUT_S = 0.1
DEFAULT_RETRY_AFTER_S = 1.0
_SCAN_BATCH = 1000


def _glob_literal(text: str) -> str:
    """``text`` as a SCAN pattern that matches itself only (a prefix may hold ``*?[]\\``)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stored(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    raise CorruptCacheEntryError(f"redis returned a {type(value).__name__}, not bytes")


class RedisCache(CacheBackend):
    """Cached answers in Redis, shared by every process and machine that uses the same URL
    (and ``prefix``). ``timeout_s`` bounds every command (connect and reply); after a failure
    Redis is left alone for ``retry_after_s``. Further keyword arguments go to
    ``redis.Redis.from_url`` (TLS settings, ``username``, ...)."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
        prefix: str = DEFAULT_PREFIX,
        size_limit_bytes: int | None = None,
        **client_options: Any,
    ) -> None:
        if size_limit_bytes is not None:
            raise ConfigError(
                "the Redis cache's size limit is the server's: set maxmemory and maxmemory-policy allkeys-lru "
                "(or volatile-lru) on the Redis server instead of size_limit_bytes"
            )
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError(f"RedisCache prefix must be a non-empty str, got {prefix!r}")
        self.url = url
        self.prefix = prefix
        self.timeout_s = seconds("RedisCache timeout_s", timeout_s)
        self._clients = RedisClients(url, timeout_s=self.timeout_s, reconnect=True, **client_options)
        self._breaker = Breaker(redact_url(url), seconds("RedisCache retry_after_s", retry_after_s))
        self._stats_key = prefix + "stats"
        self._entries_pattern = _glob_literal(prefix) + "e:*"

    def describe(self) -> str:
        return redact_url(self.url)

    def _key(self, key: str) -> str:
        return self.prefix + "e:" + key

    @staticmethod
    def _px(ttl_s: float | None) -> int | None:
        return max(1, round(ttl_s * 1000)) if ttl_s is not None else None

    # -- sync ----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        return _stored(self._breaker.call(lambda: self._clients.sync.get(self._key(key))))

    def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        self._breaker.call(lambda: self._clients.sync.set(self._key(key), value, px=self._px(ttl_s)))

    def delete(self, key: str) -> None:
        self._breaker.call(lambda: self._clients.sync.delete(self._key(key)))

    def _queue_counts(self, pipe: Any, counts: Mapping[str, float]) -> Any:
        for name, value in counts.items():
            if name == "saved_usd":
                pipe.hincrbyfloat(self._stats_key, name, value)
            else:
                pipe.hincrby(self._stats_key, name, int(value))
        return pipe

    def add_counts(self, counts: Mapping[str, float]) -> None:
        pipe = self._queue_counts(self._clients.sync.pipeline(transaction=False), counts)
        self._breaker.call(pipe.execute)

    def clear(self) -> int:
        client = self._clients.sync
        removed = 0
        batch: list[bytes] = []
        for name in client.scan_iter(match=self._entries_pattern, count=_SCAN_BATCH):
            batch.append(name)
            if len(batch) >= _SCAN_BATCH:
                removed += int(client.unlink(*batch))
                batch.clear()
        if batch:
            removed += int(client.unlink(*batch))
        client.delete(self._stats_key)
        return removed

    def stats(self) -> dict[str, Any]:
        client = self._clients.sync
        entries = sum(1 for _ in client.scan_iter(match=self._entries_pattern, count=_SCAN_BATCH))
        counters = {_text(k): _text(v) for k, v in client.hgetall(self._stats_key).items()}
        memory = client.info("memory")
        found: dict[str, Any] = {
            "backend": self.kind,
            "location": self.describe(),
            "entries": entries,
            "bytes": None,  # Redis does not tell a prefix's size cheaply
            "server_used_memory_bytes": memory.get("used_memory"),
            "server_maxmemory_bytes": memory.get("maxmemory"),
            "server_maxmemory_policy": memory.get("maxmemory_policy"),
        }
        for name in COUNTERS:
            raw = counters.get(name, "0")
            found[name] = float(raw) if name == "saved_usd" else int(raw)
        return found

    def close(self) -> None:
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()

    # -- async ---------------------------------------------------------------------------
    async def aget(self, key: str) -> bytes | None:
        client = self._clients.for_loop()
        return _stored(await self._breaker.acall(lambda: client.get(self._key(key))))

    async def aset(self, key: str, value: bytes, ttl_s: float | None) -> None:
        client = self._clients.for_loop()
        await self._breaker.acall(lambda: client.set(self._key(key), value, px=self._px(ttl_s)))

    async def adelete(self, key: str) -> None:
        client = self._clients.for_loop()
        await self._breaker.acall(lambda: client.delete(self._key(key)))

    async def aadd_counts(self, counts: Mapping[str, float]) -> None:
        pipe = self._queue_counts(self._clients.for_loop().pipeline(transaction=False), counts)
        await self._breaker.acall(pipe.execute)
