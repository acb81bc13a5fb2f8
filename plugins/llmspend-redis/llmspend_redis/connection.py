"""Redis connections that never hold a call up for long, shared by this plugin's parts.

Every command waits at most ``timeout_s`` for the connection and for the reply, and the client
does not retry: llmspend decides what a failure means (the cache goes on without Redis).
After a connection failure or a timeout the :class:`Breaker` makes further commands fail at
once for ``retry_after_s``, so a Redis that is down costs one timeout, not one per call.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from llmspend.exceptions import CacheError, ConfigError
from llmspend.ledger import redact_url

__all__ = ["Breaker", "RedisClients"]

T = TypeVar("T")

#: what counts as "Redis is not there" (as opposed to a command error)
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


class Breaker:
    """Fails fast for ``retry_after_s`` after Redis was unreachable."""

    def __init__(self, where: str, retry_after_s: float) -> None:
        self.where = where
        self.retry_after_s = retry_after_s
        self._open_until = 0.0

    def check(self) -> None:
        wait = self._open_until - time.monotonic()
        if wait > 0:
            raise CacheError(f"redis at {self.where} was unreachable; trying again in {wait:.1f}s")

    def record(self, exc: BaseException) -> None:
        if isinstance(exc, UNREACHABLE):
            self._open_until = time.monotonic() + self.retry_after_s

    def call(self, fn: Callable[[], T]) -> T:
        self.check()
        try:
            return fn()
        except BaseException as exc:
            self.record(exc)
            raise

    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        self.check()
        try:
            return await fn()
        except BaseException as exc:
            self.record(exc)
            raise


class RedisClients:
    """A sync client, and one asyncio client per event loop (an asyncio connection belongs to
    the loop that opened it), all for one URL with bounded timeouts."""

    def __init__(self, url: str, *, timeout_s: float, **options: Any) -> None:
        self.url = url
        self._options: dict[str, Any] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "retry": Retry(NoBackoff(), 0),
            **options,
        }
        try:
            self.sync = redis.Redis.from_url(url, **self._options)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"cannot use the Redis URL {redact_url(url)}: {exc}") from exc
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def for_loop(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            with self._lock:
                client = self._async.get(loop)
                if client is None:
                    client = redis.asyncio.Redis.from_url(self.url, **self._options)
                    self._async[loop] = client
        return client

    def close(self) -> None:
        """Close the sync client. An async client can only be closed on its own event loop:
        :meth:`aclose` does that for the running loop's (an async llmspend client calls it
        when it closes); others close their connections when they are collected."""
        self.sync.close()

    async def aclose(self) -> None:
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()
