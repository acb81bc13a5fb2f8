"""Redis connections that never hold a call up for long, shared by this plugin's parts.

Every command waits at most ``timeout_s`` for the connection and for the reply, and the client
does not retry a command that failed or timed out: llmspend decides what a failure means (the
cache goes on without Redis). Only a connection the server had closed is replaced, once, for
the cache's commands.
After a connection failure or a timeout the :class:`Breaker` makes further commands fail at
once for ``retry_after_s``, so a Redis that is down costs one timeout, not one per call.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from llmspend.exceptions import CacheError, ConfigError
from llmspend.ledger import redact_url

__all__ = ["Breaker", "RedisClients", "seconds"]

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


def seconds(what: str, value: Any) -> float:
    """``value`` as a timeout: a number of seconds > 0, or a ConfigError saying so."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _reason(exc: BaseException, url: str) -> str:
    """What ``exc`` says, unless that would show part of the URL's secrets."""
    text = str(exc)
    user_part = url.partition("://")[2].rpartition("@")[0]
    secrets = [piece for piece in re.split(r"[:/@]", user_part) if piece]  # a bad port may be a password's tail
    return "" if any(piece in text for piece in secrets) else f" ({text})"


def _client(url: str, options: dict[str, Any]) -> redis.Redis:
    """A client of ``url``, checked as far as can be without connecting: redis-py reads the URL
    here, but hands the options to each connection as it opens it, so an unknown one would fail
    every command. Building a connection object does not connect, and checks them now."""
    if not isinstance(url, str):
        raise ConfigError(f"a Redis URL is a str such as redis://host:6379/0, got {type(url).__name__}")
    try:
        client = redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigError(
            f"not a valid Redis URL: {redact_url(url)}{_reason(exc, url)}; "
            "expected redis://[[user]:password@]host[:port][/db], rediss://... or unix:///path"
        ) from None  # the cause would repeat the URL, password included
    except TypeError as exc:
        raise _bad_option(exc) from exc
    pool = client.connection_pool
    try:
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as exc:
        client.close()
        raise _bad_option(exc) from exc
    return client


def _bad_option(exc: TypeError) -> ConfigError:
    found = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
    what = f"the option {found.group(1)!r}" if found else f"these options ({exc})"
    return ConfigError(
        f"the Redis client does not take {what}; options other than timeout_s, retry_after_s and prefix go "
        "to redis.Redis.from_url (e.g. username, ssl_ca_certs, health_check_interval): remove or correct it"
    )


class RedisClients:
    """A sync client, and one asyncio client per event loop (an asyncio connection belongs to
    the loop that opened it), all for one URL with bounded timeouts.

    ``reconnect``: a command whose connection the server had closed (its idle ``timeout``, a
    restart, a failover) is sent once more on a new connection, for commands that may run twice
    (the cache's). A timeout is never retried: that would double the bounded wait."""

    def __init__(self, url: str, *, timeout_s: float, reconnect: bool = False, **options: Any) -> None:
        self.url = url
        retries = 1 if reconnect else 0
        bounded = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        self._options: dict[str, Any] = {
            **bounded, "retry": Retry(NoBackoff(), retries, supported_errors=(redis.ConnectionError,)), **options,
        }
        # the asyncio client awaits its own Retry; given the sync one, it would never retry
        self._async_options: dict[str, Any] = {
            **bounded, "retry": AsyncRetry(NoBackoff(), retries, supported_errors=(redis.ConnectionError,)), **options,
        }
        self.sync = _client(url, self._options)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def for_loop(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            with self._lock:
                client = self._async.get(loop)
                if client is None:
                    self._forget_closed_loops()
                    client = redis.asyncio.Redis.from_url(self.url, **self._async_options)
                    self._async[loop] = client
        return client

    def _forget_closed_loops(self) -> None:
        """Drop the clients of event loops that have closed (``asyncio.run`` per task, a test's
        loop). A client's connections refer to its loop, so its entry would never leave the weak
        dict by itself, and each loop would keep its connections open for good. Once dropped,
        they close when collected (a closed loop can no longer run ``aclose``)."""
        for loop in [loop for loop in self._async if loop.is_closed()]:
            self._async.pop(loop, None)

    def close(self) -> None:
        """Close the sync client. An async client can only be closed on its own event loop:
        :meth:`aclose` does that for the running loop's (an async llmspend client calls it
        when it closes); those of loops that have closed are dropped when another loop asks for
        one, and close their connections when they are collected."""
        self.sync.close()

    async def aclose(self) -> None:
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()
