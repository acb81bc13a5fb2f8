"""A budget ledger in Redis, for budgets shared by many machines.

Each check-and-reserve is one Lua script, which Redis runs atomically: no other client's
command runs between reading what is spent and reserved and adding the new reservation, so
clients on any number of machines can never reserve past a limit between them. Reservations
expire on the *server's* clock (``TIME``), so a client with a skewed clock cannot keep or drop
another's hold early. A reservation also carries, in server time, when its client stops waiting
for the answer: one that Redis gets to later (it stalled) holds nothing, where it would have held
budget for a lease that no call settles.

Layout, under ``prefix`` (default ``llmspend:ledger``), for budget key K and window start S:

- ``{prefix}:{K|S}:totals``  hash: ``spent``, ``reserved``, ``calls``, ``unknown`` (nano-USD)
- ``{prefix}:{K|S}:holds``   hash: reservation id -> nano-USD held
- ``{prefix}:{K|S}:expiry``  sorted set: reservation id -> expiry (server Unix time)
- ``{prefix}:budgets``       hash: K -> ``{"period": ..., "limit": nano-USD or null}``

The braces are a hash tag: one account's three keys live in one Redis Cluster slot, as a
script needs. Windows that have ended expire a day after their end.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis

from llmspend.exceptions import ConfigError, LedgerError
from llmspend.ledger import BudgetKey, Ledger, Reservation, Totals, redact_url
from llmspend.ledger.base import DEFAULT_LEASE_S, from_nano, to_nano
from llmspend.periods import Window

from .connection import RedisClients, seconds

__all__ = ["RedisLedger"]

# After a window ends, its totals stay this long (for late settlements), then Redis drops them.
_KEEP_ENDED_S = 86400

# Drop expired holds of one account (KEYS: totals, holds, expiry).
_PURGE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, rid in ipairs(expired) do
  local held = redis.call('HGET', KEYS[2], rid)
  if held and held ~= '0' then
    redis.call('HINCRBY', KEYS[1], 'reserved', '-' .. held)
  end
  redis.call('HDEL', KEYS[2], rid)
  redis.call('ZREM', KEYS[3], rid)
end
"""

# ARGV: id, amount, limit ('' = none), lease seconds, ttl seconds ('' = keep), the server time
# after which the client no longer waits for the answer ('' = it waits for ever)
# Returns {reserved (1, 0 when it would not fit, -1 when it came too late), fresh (1 when the
# account did not exist: a new window, or a flushed or restarted server, whose budgets hash must
# be written again), the server's TIME (seconds, microseconds)}.
_RESERVE = _PURGE + """
local amount = ARGV[2]
local fresh = 1 - redis.call('EXISTS', KEYS[1])
if ARGV[6] ~= '' and now > tonumber(ARGV[6]) then
  return {-1, fresh, now_parts[1], now_parts[2]}
end
if ARGV[3] ~= '' then
  local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
  if spent + reserved + tonumber(amount) > tonumber(ARGV[3]) then
    return {0, fresh, now_parts[1], now_parts[2]}
  end
end
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
redis.call('HSET', KEYS[2], ARGV[1], amount)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
if ARGV[5] ~= '' then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
end
return {1, fresh, now_parts[1], now_parts[2]}
"""

# ARGV: id
_DROP_HOLD = """
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
  if held ~= '0' then redis.call('HINCRBY', KEYS[1], 'reserved', '-' .. held) end
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
"""

# ARGV: id, charge, unknown (0|1), ttl seconds ('' = keep)
_SETTLE = _DROP_HOLD + """
redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'calls', 1)
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'unknown', 1) end
if ARGV[4] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""

_STATUS = _PURGE + """
return redis.call('HMGET', KEYS[1], 'spent', 'reserved', 'calls', 'unknown')
"""


#: A reservation that cannot be made refuses the call (a budget fails closed), so the ledger
#: waits longer than the cache (0.1 s, which fails open into a provider call): a busy Redis
#: must not refuse calls that a reachable one would allow.
DEFAULT_TIMEOUT_S = 1.0

#: A reservation carries the server time after which its client no longer waits for the answer,
#: less this share of the timeout for the answer's way back; Redis refuses it after that time.
_DEADLINE_MARGIN = 0.1


class RedisLedger(Ledger):
    """See the module docstring. ``url``: ``redis://[:password@]host:port/db`` or
    ``rediss://`` for TLS (any URL ``redis.Redis.from_url`` takes); ``client``: an existing
    ``redis.Redis`` to use instead; ``lease_s``: how long an unsettled reservation holds budget;
    ``timeout_s``: how long each command waits to connect and for its reply (default 1 s;
    not retried: a reservation sent twice would hold twice) before it fails with a
    :class:`~llmspend.LedgerError`. A reservation that Redis only gets to after its client
    gave up (a stall longer than ``timeout_s``) holds nothing: it carries its deadline in
    server time (the offset of the server's clock is learnt from each answer)."""

    blocking = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "llmspend:ledger",
        lease_s: float = DEFAULT_LEASE_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if client is None:
            if not url:
                raise ConfigError("RedisLedger needs a URL such as redis://localhost:6379/0, or client=")
            client = RedisClients(url, timeout_s=seconds("RedisLedger timeout_s", timeout_s)).sync
        # how long a command is waited for: a reservation Redis runs later holds nothing
        pool = getattr(client, "connection_pool", None)  # a cluster client has none
        self._gives_up_after_s: float | None = pool.connection_kwargs.get("socket_timeout") if pool is not None else None
        # the server's clock less time.monotonic(), from its last answer (it lags by that
        # answer's way back, which makes a deadline early, never late)
        self._clock_offset: float | None = None
        self.url = redact_url(url) if url else repr(client)
        self.client = client
        self.prefix = prefix
        self.lease_s = lease_s
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_DROP_HOLD)
        self._status = client.register_script(_STATUS)
        self._registered: set[tuple[str, int, str]] = set()

    def _keys(self, key: str, window: Window) -> list[str]:
        account = f"{self.prefix}:{{{key}|{window.start}}}"
        return [f"{account}:totals", f"{account}:holds", f"{account}:expiry"]

    @staticmethod
    def _ttl(window: Window) -> str:
        if window.end is None:
            return ""
        return str(max(60, int(window.end - time.time()) + _KEEP_ENDED_S))

    def _run(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise LedgerError(f"budget ledger {self.url}: could not {what}: {type(exc).__name__}: {exc}") from exc

    def reserve(self, key: str, amount_usd: float, limit_usd: float | None, window: Window) -> Reservation | None:
        amount = to_nano(amount_usd, up=True)
        limit = "" if limit_usd is None else str(to_nano(limit_usd))
        rid = uuid.uuid4().hex
        registered = (key, window.start, limit)
        if registered not in self._registered:  # once per key, window and limit: saves a round trip
            self._register(key, window, limit_usd)
        args = [rid, str(amount), limit, repr(float(self.lease_s)), self._ttl(window)]
        reserved, fresh = self._reserve_in_time(self._keys(key, window), args)
        if fresh and registered in self._registered:  # the server lost its data since (FLUSHDB, restart)
            self._register(key, window, limit_usd)
        self._registered.add(registered)
        return Reservation(key, window, from_nano(amount), rid) if reserved else None

    def _reserve_in_time(self, keys: list[str], args: list[str]) -> tuple[int, int]:
        """Run the reserve script with a deadline. An answer that says it came too late (it
        came in time after all, or the server's clock moved) is asked again, with the offset
        it brought; nothing was held."""
        for _ in range(2):
            sent = time.monotonic()
            reserved, fresh, secs, usecs = self._run("reserve", self._reserve, keys=keys, args=[*args, self._deadline(sent)])
            self._clock_offset = int(secs) + int(usecs) / 1e6 - time.monotonic()
            if reserved >= 0:
                return int(reserved), int(fresh)
        raise LedgerError(f"budget ledger {self.url}: could not reserve: Redis answered after {self._gives_up_after_s}s, twice")

    def _deadline(self, sent: float) -> str:
        if self._gives_up_after_s is None:
            return ""
        if self._clock_offset is None:
            secs, usecs = self._run("read the server's clock", self.client.time)
            self._clock_offset = secs + usecs / 1e6 - time.monotonic()
        return repr(sent + self._clock_offset + (1 - _DEADLINE_MARGIN) * self._gives_up_after_s)

    def _register(self, key: str, window: Window, limit_usd: float | None) -> None:
        """Record the budget's period and limit, for ``keys()`` (``llmspend budget status``)."""
        record = json.dumps({"period": window.period, "limit": None if limit_usd is None else to_nano(limit_usd)})
        self._run("register a budget", self.client.hset, f"{self.prefix}:budgets", key, record)

    def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        charge = to_nano(reservation.amount_usd if actual_usd is None else actual_usd)
        args = [reservation.id, str(charge), "1" if actual_usd is None else "0", self._ttl(reservation.window)]
        self._run("settle", self._settle, keys=self._keys(reservation.key, reservation.window), args=args)

    def release(self, reservation: Reservation) -> None:
        self._run("release", self._release, keys=self._keys(reservation.key, reservation.window), args=[reservation.id])

    def spent(self, key: str, window: Window) -> Totals:
        spent, reserved, calls, unknown = self._run("read", self._status, keys=self._keys(key, window))
        raw = self._run("read", self.client.hget, f"{self.prefix}:budgets", key)
        limit = json.loads(raw)["limit"] if raw else None
        return Totals(
            from_nano(int(spent or 0)),
            from_nano(int(reserved or 0)),
            int(calls or 0),
            int(unknown or 0),
            None if limit is None else from_nano(limit),
        )

    def keys(self) -> list[BudgetKey]:
        found = self._run("list budgets", self.client.hgetall, f"{self.prefix}:budgets")
        out = []
        for raw_key, raw in sorted(found.items()):
            record = json.loads(raw)
            limit = record.get("limit")
            out.append(BudgetKey(raw_key.decode(), record["period"], None if limit is None else from_nano(limit)))
        return out

    def close(self) -> None:
        self.client.close()
