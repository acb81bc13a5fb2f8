"""The Redis budget ledger against a real redis-server that this module starts itself:
atomic reservations across clients and processes, expiry of abandoned holds, the entry point
that ``ledger="redis://..."`` goes through, and budgets enforced end to end."""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import redis

import llmspend
from llmspend import plugins
from llmspend.ledger import Ledger, open_ledger
from llmspend.ledger.base import to_nano
from llmspend.periods import Window, period_window
from llmspend.testing import FakeLLMServer
from llmspend.testing.ledgers import LedgerRun, hammer_in_process, hammer_ledger
from llmspend_redis.ledger import RedisLedger
from llmspend_redis.testing import RedisServer, free_port, redis_server_binary

FOREVER = Window("none", 0, None)
LIMIT = 0.5

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); the Redis ledger needs a real server")
    with RedisServer("--protected-mode", "yes") as server:
        yield server.url


@pytest.fixture
def ledger(redis_url: str) -> Iterator[RedisLedger]:
    redis.Redis.from_url(redis_url).flushdb()
    book = RedisLedger(redis_url)
    yield book
    book.close()


def test_reserve_settle_release_and_status(ledger: RedisLedger) -> None:
    window = period_window("day", time.time())
    first = ledger.reserve("chat/day", 0.3, 1.0, window)
    assert first is not None
    second = ledger.reserve("chat/day", 0.6, 1.0, window)
    assert second is not None
    assert ledger.reserve("chat/day", 0.2, 1.0, window) is None  # 0.3 + 0.6 + 0.2 > 1.0
    totals = ledger.spent("chat/day", window)
    assert (totals.spent_usd, totals.reserved_usd, totals.limit_usd) == (0.0, pytest.approx(0.9), 1.0)
    ledger.settle(first, 0.1)
    ledger.release(second)
    totals = ledger.spent("chat/day", window)
    assert (totals.spent_usd, totals.reserved_usd, totals.calls) == (pytest.approx(0.1), 0.0, 1)
    assert ledger.reserve("chat/day", 0.85, 1.0, window) is not None  # room again
    [known] = ledger.keys()
    assert (known.key, known.period, known.limit_usd) == ("chat/day", "day", 1.0)


def test_unknown_cost_charges_the_reservation(ledger: RedisLedger) -> None:
    r = ledger.reserve("k/none", 0.25, None, FOREVER)
    assert r is not None
    ledger.settle(r, None)
    totals = ledger.spent("k/none", FOREVER)
    assert (totals.spent_usd, totals.unknown_calls, totals.limit_usd) == (0.25, 1, None)


def test_windows_are_counted_apart_and_expire(ledger: RedisLedger, redis_url: str) -> None:
    now = time.time()
    this, next_ = period_window("minute", now), period_window("minute", now + 60)
    assert ledger.reserve("k/minute", 1.0, 1.0, this) is not None
    assert ledger.reserve("k/minute", 0.5, 1.0, this) is None
    assert ledger.reserve("k/minute", 1.0, 1.0, next_) is not None  # a new window starts empty
    client = redis.Redis.from_url(redis_url)
    ttl = client.ttl(ledger._keys("k/minute", this)[0])
    assert 0 < ttl <= 60 + 86400  # dropped a day after the window ends


def test_abandoned_hold_expires_on_the_server_clock(redis_url: str) -> None:
    book = RedisLedger(redis_url, prefix="lease-test", lease_s=0.2)
    assert book.reserve("k/none", 1.0, 1.0, FOREVER) is not None  # its client "dies" here
    assert book.reserve("k/none", 0.1, 1.0, FOREVER) is None
    time.sleep(0.3)
    assert book.reserve("k/none", 0.1, 1.0, FOREVER) is not None
    assert book.spent("k/none", FOREVER).reserved_usd == pytest.approx(0.1)


def test_a_flushed_server_lists_the_budget_again(ledger: RedisLedger, redis_url: str) -> None:
    # The budgets hash was written once per process; before, after a FLUSHDB (or a restart
    # without persistence) the budget vanished from keys() and its status showed no limit.
    window = period_window("day", time.time())
    first = ledger.reserve("chat/day", 0.1, 1.0, window)
    assert first is not None
    ledger.settle(first, 0.05)
    redis.Redis.from_url(redis_url).flushdb()
    again = ledger.reserve("chat/day", 0.1, 1.0, window)
    assert again is not None
    ledger.settle(again, 0.05)
    assert [(k.key, k.limit_usd) for k in ledger.keys()] == [("chat/day", 1.0)]
    totals = ledger.spent("chat/day", window)
    assert (totals.spent_usd, totals.calls, totals.limit_usd) == (pytest.approx(0.05), 1, 1.0)


def test_large_amounts_stay_exact(ledger: RedisLedger) -> None:
    # Lua numbers turn into strings with 14 digits; amounts must never go through that.
    r = ledger.reserve("big/none", 123_456.789012345, 1e7, FOREVER)
    assert r is not None
    ledger.settle(r, 123_456.789012345)
    assert to_nano(ledger.spent("big/none", FOREVER).spent_usd) == to_nano(123_456.789012345)


def test_unreachable_server_is_a_ledger_error() -> None:
    book = RedisLedger(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(llmspend.LedgerError, match="could not"):
        book.reserve("k/none", 0.1, 1.0, FOREVER)


def test_password_never_in_the_ledger_name() -> None:
    book = RedisLedger("redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in book.url and "***" in book.url
    with pytest.raises(llmspend.ConfigError, match=r"not a valid Redis URL: redis://:\*\*\*@h:notaport/0") as raised:
        RedisLedger("redis://:hunter2@h:notaport/0")
    assert "hunter2" not in str(raised.value)


def test_waits_are_bounded(redis_url: str) -> None:
    from llmspend_redis import cache, ledger

    book = RedisLedger(redis_url)
    kwargs = book.client.connection_pool.connection_kwargs
    # bounded, and longer than the cache's: a reservation that fails refuses the call
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == ledger.DEFAULT_TIMEOUT_S == 1.0
    assert ledger.DEFAULT_TIMEOUT_S > cache.DEFAULT_TIMEOUT_S
    with pytest.raises(llmspend.ConfigError, match="timeout_s"):
        RedisLedger(redis_url, timeout_s=0)
    # a server that does not answer in time: the reservation fails within the bound, not after 5 s
    book = RedisLedger(redis_url, timeout_s=0.2)
    pauser = redis.Redis.from_url(redis_url)
    pauser.client_pause(1500)
    started = time.monotonic()
    with pytest.raises(llmspend.LedgerError, match="Timeout"):
        book.reserve("paused/none", 0.1, 1.0, FOREVER)
    assert time.monotonic() - started < 1.0
    time.sleep(max(0.0, started + 1.6 - time.monotonic()))  # the pause holds every client, its own unpause too
    book.close()
    pauser.close()


# -- many clients ----------------------------------------------------------------------
def _check(book: Ledger, runs: list[LedgerRun]) -> None:
    totals = book.spent("feature/none", FOREVER)
    assert to_nano(totals.spent_usd) == sum(to_nano(r.charged_usd) for r in runs)  # nothing lost
    assert totals.spent_usd <= LIMIT + sum(r.excess_usd for r in runs) + 1e-9  # the bound
    assert all(r.refusals > 0 for r in runs) and totals.spent_usd > LIMIT / 2  # really contended


def test_many_clients_in_threads_never_overspend(ledger: RedisLedger, redis_url: str) -> None:
    clients = 8
    barrier = threading.Barrier(clients, timeout=60)  # a client that dies first fails the test, never hangs it
    runs: list[LedgerRun] = []

    def client(seed: int) -> None:  # each thread its own client and connection pool
        runs.append(hammer_ledger(lambda: RedisLedger(redis_url), "feature/none", limit_usd=LIMIT, seed=seed,
                                  barrier=barrier))

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check(ledger, runs)
    assert ledger.spent("feature/none", FOREVER).spent_usd <= LIMIT


def test_many_processes_never_overspend(ledger: RedisLedger, redis_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    clients = 3
    barrier, queue = ctx.Barrier(clients, timeout=60), ctx.Queue()
    make = functools.partial(RedisLedger, redis_url)
    procs = [ctx.Process(target=hammer_in_process,
                         args=((make, "feature/none", {"limit_usd": LIMIT, "seed": s, "barrier": barrier,
                                                       "overrun": 0.1}), queue))
             for s in range(clients)]
    for p in procs:
        p.start()
    runs = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    _check(ledger, runs)


# -- through the entry point and the public API ------------------------------------------
def test_redis_urls_open_through_the_ledger_entry_points(entry_points_installed: None, redis_url: str) -> None:
    assert {"redis", "rediss"} <= set(plugins.ledger_backends())
    book = open_ledger(redis_url)
    assert isinstance(book, RedisLedger)
    assert open_ledger(redis_url) is book  # one connection pool per URL and process


def test_budget_in_redis_refuses_before_sending(ledger: RedisLedger) -> None:
    tracked = llmspend.track(feature="bulk", budget_usd=0.0004, period="day", ledger=ledger)
    with FakeLLMServer() as server:
        client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key="sk-test"))
        sent = 0
        with pytest.raises(llmspend.BudgetExceededError) as refused:
            with tracked:
                for _ in range(100):
                    client.chat.completions.create(model="gpt-4o-mini", max_tokens=100,
                                                   messages=[{"role": "user", "content": "hello " * 20}])
                    sent += 1
        assert len(server.requests) == sent > 0  # the refused call never reached the server
    assert refused.value.budget == "bulk/day"
    status = llmspend.spent("bulk", period="day", ledger=ledger)
    assert status.calls == sent and 0 < status.spent_usd <= 0.0004
    assert status.remaining_usd == pytest.approx(0.0004 - status.spent_usd)


def test_an_absurd_max_tokens_is_refused_or_counted_in_redis(ledger: RedisLedger) -> None:
    """A cost bound of infinity (max_tokens=2**1023) is reserved as more than any budget holds,
    in nano-dollars that Redis's 64-bit integers take: refused under a limit, counted without."""
    ask = dict(model="gpt-4o-mini", max_tokens=2**1023, messages=[{"role": "user", "content": "hello"}])
    with FakeLLMServer() as server:
        client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key="sk-test"))
        with pytest.raises(llmspend.BudgetExceededError):
            with llmspend.track(feature="bulk", budget_usd=1e9, period="day", ledger=ledger):
                client.chat.completions.create(**ask)  # type: ignore[call-overload]
        assert not server.requests
        with llmspend.track(feature="count", period="day", ledger=ledger):
            client.chat.completions.create(**ask)  # type: ignore[call-overload]
        assert len(server.requests) == 1
    status = llmspend.spent("count", period="day", ledger=ledger)
    assert status.calls == 1 and 0 < status.spent_usd < 0.01 and status.reserved_usd == 0


def test_a_reservation_redis_runs_after_the_client_gave_up_holds_nothing() -> None:
    """Redis stalls past the ledger's timeout_s (a snapshot's fork, a failover, a slow script):
    the call is refused with a LedgerError. When Redis gets to that reservation afterwards, it
    holds nothing; before, it held the call's whole cost bound for lease_s (an hour) that no
    call would ever settle, and the budget refused calls it had room for."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    ask: dict[str, Any] = dict(model="gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "hello"}])
    with RedisServer("--enable-debug-command", "yes") as redis_server, FakeLLMServer() as server:
        book = RedisLedger(redis_server.url, timeout_s=0.2)
        client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key="sk-test"))
        stall = threading.Thread(target=lambda: redis_server.client().execute_command("DEBUG", "SLEEP", "0.6"))
        with llmspend.track(feature="stall", budget_usd=0.01, period="day", ledger=book):
            client.chat.completions.create(**ask)
            spent = llmspend.spent("stall", period="day", ledger=book).spent_usd
            stall.start()
            time.sleep(0.1)  # the server is asleep now
            with pytest.raises(llmspend.LedgerError, match="Timeout"):
                client.chat.completions.create(**ask)
            stall.join()
            status = llmspend.spent("stall", period="day", ledger=book)
            assert (status.reserved_usd, status.spent_usd, status.calls) == (0, spent, 1)
            client.chat.completions.create(**ask)  # and the ledger goes on as before
        assert len(server.requests) == 2
        assert llmspend.spent("stall", period="day", ledger=book).calls == 2
        book._clock_offset -= 3600  # as if the server's clock had jumped an hour: asked again, reserved
        assert book.reserve("stall/none", 0.001, 1.0, FOREVER) is not None
        book.close()
