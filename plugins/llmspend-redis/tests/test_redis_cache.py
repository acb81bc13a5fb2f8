"""The Redis cache backend through the public API: found by URL scheme through its entry
points, shared by clients as machines would share it, and failing open when Redis is down,
slow or holds garbage. Every test talks to a real redis-server it started itself."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import redis

import llmspend
from llmspend import plugins
from llmspend.cli import main
from llmspend.telemetry import recorder
from llmspend.testing import FakeLLMServer
from llmspend_redis import RedisCache
from llmspend_redis.testing import RedisServer, free_port, redis_server_binary

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("entry_points_installed")]

API_KEY = "sk-redis-test-0123456789"
ASK: dict[str, Any] = dict(model="gpt-4o-mini", temperature=0, messages=[{"role": "user", "content": "Where is my order?"}])


@pytest.fixture
def wrap(server: FakeLLMServer, spans: Any) -> Iterator[Any]:
    made: list[Any] = []

    def factory(cache: Any, api_key: str = API_KEY, **options: Any) -> openai.OpenAI:
        client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=api_key), cache=cache,
                               tracer_provider=spans.provider, **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def test_found_through_entry_points_by_url_scheme() -> None:
    plugins.reload()
    found = plugins.cache_backends()
    assert found["redis"] is RedisCache and found["rediss"] is RedisCache
    backend = llmspend.cache.open_backend("rediss://:hunter2@cache.example:6380/1", timeout_s=0.05)
    assert isinstance(backend, RedisCache)
    assert backend.describe() == "rediss://:***@cache.example:6380/1"  # never the password
    backend.close()
    from llmspend.ledger import redact_url as redact

    assert redact("unix:///run/redis.sock?db=2&password=hunter2") == "unix:///run/redis.sock?db=2&password=***"
    assert redact("redis://app:hunter2@cache:6379/0") == "redis://app:***@cache:6379/0"
    assert redact("redis://cache:6379/0") == "redis://cache:6379/0"


def test_hit_is_shared_by_clients_on_different_machines(wrap: Any, redis_server: RedisServer, server: FakeLLMServer, spans: Any) -> None:
    first = wrap(redis_server.url).chat.completions.create(**ASK)
    second = wrap(redis_server.url).chat.completions.create(**ASK)  # another client, as on another machine
    assert len(server.requests) == 1
    assert second.model_dump() == first.model_dump()
    miss, hit = spans.attrs(0), spans.attrs(1)
    assert miss["llmspend.cache.hit"] is False and hit["llmspend.cache.hit"] is True
    assert hit["llmspend.cost.usd"] == 0.0 and hit["llmspend.cost.saved_usd"] == miss["llmspend.cost.usd"]
    stored = redis_server.client().keys("llmspend:cache:e:*")
    assert len(stored) == 1 and 0 < redis_server.client().pttl(stored[0]) <= 7 * 24 * 3600 * 1000


async def test_async_hit_and_stream_replay(redis_server: RedisServer, server: FakeLLMServer, spans: Any) -> None:
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY),
                           cache=RedisCache(redis_server.url), tracer_provider=spans.provider)
    answers = [(await client.chat.completions.create(**ASK)).model_dump() for _ in range(2)]
    runs = []
    for _ in range(2):
        stream = await client.chat.completions.create(**ASK, stream=True)
        runs.append([c.model_dump() async for c in stream])
    await client.close()
    assert answers[0] == answers[1] and runs[0] == runs[1]
    assert len(server.requests) == 2
    assert [spans.attrs(i)["llmspend.cache.hit"] for i in range(4)] == [False, True, False, True]
    assert spans.attrs(3)["llmspend.cost.saved_usd"] == spans.attrs(2)["llmspend.cost.usd"]


def test_stream_replay(wrap: Any, redis_server: RedisServer, server: FakeLLMServer) -> None:
    client = wrap(redis_server.url)
    runs = [[c.model_dump() for c in client.chat.completions.create(**ASK, stream=True)] for _ in range(2)]
    assert runs[0] == runs[1] and all(c["choices"] for c in runs[1])
    assert len(server.requests) == 1


def test_tenants_are_kept_apart(wrap: Any, redis_server: RedisServer, server: FakeLLMServer) -> None:
    wrap(redis_server.url, api_key="sk-tenant-a").chat.completions.create(**ASK)
    wrap(redis_server.url, api_key="sk-tenant-b").chat.completions.create(**ASK)
    wrap(redis_server.url, api_key="sk-tenant-a").chat.completions.create(**ASK)
    assert len(server.requests) == 2


def test_ttl_expiry(wrap: Any, redis_server: RedisServer, server: FakeLLMServer) -> None:
    client = wrap(redis_server.url)
    client.chat.completions.create(**ASK, extra_headers={"x-llmspend-cache-ttl": "0.3"})
    client.chat.completions.create(**ASK)
    assert len(server.requests) == 1
    time.sleep(0.45)
    client.chat.completions.create(**ASK)
    assert len(server.requests) == 2


def test_redis_down_fails_open_and_warns_once(wrap: Any, redis_server: RedisServer, server: FakeLLMServer,
                                              spans: Any, caplog: pytest.LogCaptureFixture) -> None:
    client = wrap(f"redis://:s3cret-pass@127.0.0.1:{redis_server.port}/0")
    client.chat.completions.create(**ASK)
    redis_server.stop()
    recorder._warned.clear()
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        started = time.monotonic()
        for _ in range(3):
            assert client.chat.completions.create(**ASK).choices[0].message.content
        elapsed = time.monotonic() - started
    assert len(server.requests) == 4
    a = spans.attrs()
    assert a["llmspend.cache.hit"] is False and "unreachable" in a["llmspend.cache.error"]
    assert "ConnectionError" in spans.attrs(1)["llmspend.cache.error"]
    warnings = [r.getMessage() for r in caplog.records if "cache fault" in r.getMessage()]
    assert len(warnings) == 1 and "s3cret" not in warnings[0] and ":***@" in warnings[0]
    assert elapsed < 3.0  # bounded waits, and no wait at all once Redis is known to be down


def test_slow_redis_is_given_up_on_after_the_timeout(wrap: Any, redis_server: RedisServer, server: FakeLLMServer, spans: Any) -> None:
    client = wrap(RedisCache(redis_server.url, timeout_s=0.1))
    client.chat.completions.create(**ASK)
    redis_server.client().execute_command("CLIENT", "PAUSE", "3000", "ALL")  # the server stops answering
    started = time.monotonic()
    answer = client.chat.completions.create(**ASK)
    elapsed = time.monotonic() - started
    assert answer.choices[0].message.content
    assert "Timeout" in spans.attrs()["llmspend.cache.error"]
    assert elapsed < 2.0  # did not wait for the 3 s pause


def test_garbage_in_redis_fails_open_and_heals(wrap: Any, redis_server: RedisServer, server: FakeLLMServer, spans: Any) -> None:
    client = wrap(redis_server.url)
    expected = client.chat.completions.create(**ASK).model_dump()
    raw = redis_server.client()
    (key,) = raw.keys("llmspend:cache:e:*")
    raw.set(key, b"\x80\x04\x95 a pickle, say")
    for _ in range(2):
        assert client.chat.completions.create(**ASK).model_dump() == expected
    assert len(server.requests) == 2
    assert "CorruptCacheEntryError" in spans.attrs(1)["llmspend.cache.error"]
    assert spans.attrs(2)["llmspend.cache.hit"] is True


def test_cli_stats_and_clear(wrap: Any, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    client = wrap(redis_server.url)
    for question in ("a", "b", "a"):
        client.chat.completions.create(model="gpt-4o", temperature=0, messages=[{"role": "user", "content": question}])
    client.close()
    unrelated = redis_server.client()
    unrelated.set("app:session:1", b"keep me")
    assert main(["cache", "stats", "--url", redis_server.url, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["hits"], stats["misses"], stats["stores"]) == (2, 1, 2, 2)
    assert stats["saved_usd"] > 0 and stats["server_used_memory_bytes"] > 0
    assert main(["cache", "clear", "--url", redis_server.url]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert unrelated.get("app:session:1") == b"keep me"  # only the cache's own keys go


def test_cli_reads_a_cache_of_another_prefix(wrap: Any, redis_server: RedisServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    client = wrap(RedisCache(redis_server.url, prefix="team-a:"))
    client.chat.completions.create(model="gpt-4o", temperature=0, messages=[{"role": "user", "content": "a"}])
    client.close()
    assert main(["cache", "stats", "--url", redis_server.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0  # the default prefix holds nothing
    assert main(["cache", "stats", "--url", redis_server.url, "--prefix", "team-a:", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 1
    assert main(["cache", "clear", "--url", redis_server.url, "--prefix", "team-a:"]) == 0
    assert "removed 1 entr" in capsys.readouterr().out
    assert main(["cache", "stats", "--prefix", "team-a:"]) == 2  # a disk cache has no prefix
    assert "--prefix goes with --url" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["stats", "clear"])
def test_cli_says_in_one_line_when_redis_cannot_be_reached(command: str, redis_server: RedisServer,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    redis_server.client().config_set("requirepass", "right-pw")
    closed = free_port()
    for url, reason in ((f"redis://:s3cret-pw@127.0.0.1:{closed}/0", "Connection refused"),
                        (f"redis://:s3cret-pw@127.0.0.1:{redis_server.port}/0", "invalid username-password")):
        assert main(["cache", command, "--url", url]) == 2
        printed = capsys.readouterr()
        assert printed.out == "" and printed.err.count("\n") == 1 and printed.err.startswith("llmspend: error: ")
        assert url.replace("s3cret-pw", "***") in printed.err and reason in printed.err
        assert "s3cret-pw" not in printed.err


def test_configuration_errors() -> None:
    with pytest.raises(llmspend.ConfigError, match="maxmemory"):
        RedisCache("redis://localhost:6379/0", size_limit_bytes=10**6)
    with pytest.raises(llmspend.ConfigError, match="timeout_s"):
        RedisCache("redis://localhost:6379/0", timeout_s=0)
    with pytest.raises(llmspend.ConfigError, match="not a valid Redis URL: redis://localhost:notaport/0"):
        RedisCache("redis://localhost:notaport/0")


def test_an_unknown_client_option_is_refused_at_construction(server: FakeLLMServer, redis_server: RedisServer) -> None:
    bare = openai.OpenAI(base_url=server.base_url, api_key=API_KEY)
    refused = r"does not take the option 'bogus_opt'.*remove or correct it"
    with pytest.raises(llmspend.ConfigError, match=refused):
        llmspend.wrap(bare, cache={"location": redis_server.url, "options": {"bogus_opt": 1}})
    with pytest.raises(llmspend.ConfigError, match=refused):
        RedisCache(redis_server.url, bogus_opt=1)
    # options redis-py does take still pass, and the cache works with them
    client = llmspend.wrap(bare, cache={"location": redis_server.url, "options": {"health_check_interval": 30}})
    client.chat.completions.create(**ASK)
    client.chat.completions.create(**ASK)
    client.close()
    assert len(server.requests) == 1


@pytest.mark.parametrize("url", ["redis://:s3cret-pw@cache:notaport/0", "redis://s3cret-pw@cache:notaport/0",
                                 "redis://app:s3cret-pw@[::1/0", "rediss://:s3cret/pw@cache:x/0"])
def test_a_bad_url_says_so_without_its_password(url: str, server: FakeLLMServer, capsys: pytest.CaptureFixture[str]) -> None:
    from llmspend.ledger import redact_url

    assert "s3cret" not in redact_url(url) and "***@" in redact_url(url)
    with pytest.raises(llmspend.ConfigError, match="not a valid Redis URL") as raised:
        llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), cache=url)
    assert "s3cret" not in str(raised.value) and raised.value.__cause__ is None and redact_url(url) in str(raised.value)
    assert main(["cache", "stats", "--url", url]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith("llmspend: error: not a valid Redis URL") and printed.err.count("\n") == 1
    assert "s3cret" not in printed.err + printed.out


def test_redaction_never_raises_and_hides_any_user_part() -> None:
    from llmspend.ledger import redact_url as redact

    assert redact("redis://s3cret@cache:6379/0") == "redis://***@cache:6379/0"  # redis-py reads it as a username
    assert redact("redis://app:s3c@ret@cache/0") == "redis://app:***@cache/0"
    assert redact("redis://:pw@h/0?Password=x&db=1") == "redis://:***@h/0?Password=***&db=1"
    for text in ("", "not a url", "redis://[::1", "redis://:pw@host:notaport/0", "://@"):
        assert "pw" not in redact(text)


def test_values_are_stored_as_json(wrap: Any, redis_server: RedisServer) -> None:
    wrap(redis_server.url).chat.completions.create(**ASK)
    raw = redis_server.client()
    (key,) = raw.keys("llmspend:cache:e:*")
    entry = json.loads(raw.get(key))  # plain JSON, nothing else
    assert entry["status"] == 200 and json.loads(entry["body"])["object"] == "chat.completion"
    assert API_KEY not in raw.get(key).decode() and "Where is my order" not in raw.get(key).decode()
    assert isinstance(redis.Redis, type)


def test_a_prefix_with_glob_characters_clears_and_counts_its_own_entries_only(redis_server: RedisServer) -> None:
    """``clear`` and ``stats`` find entries by a SCAN pattern: the prefix in it is taken
    literally, so a cache never removes (or counts) another prefix's entries."""
    mine, other = RedisCache(redis_server.url, prefix="app[1]*:"), RedisCache(redis_server.url, prefix="app1-x:")
    try:
        mine.set("a" * 64, b"{}", 60)
        other.set("b" * 64, b"{}", 60)
        assert (mine.stats()["entries"], other.stats()["entries"]) == (1, 1)
        assert mine.clear() == 1
        assert other.get("b" * 64) == b"{}" and mine.get("a" * 64) is None
    finally:
        mine.close()
        other.close()


def test_one_cache_used_from_many_event_loops_keeps_few_connections(redis_server: RedisServer, server: FakeLLMServer) -> None:
    """A worker that runs each job in ``asyncio.run`` (a new event loop each time) and shares one
    RedisCache: the connections of loops that have closed are let go, not kept one per job until
    the server's maxclients refuses everyone (the ledger on the same Redis included)."""
    backend = RedisCache(redis_server.url)

    async def job() -> None:
        client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), cache=backend)
        await client.chat.completions.create(**ASK)
        await client.close()  # the cache is the caller's: closing the client leaves it open

    def connections() -> int:
        return len(redis_server.client().client_list()) - 1  # less the one asking

    try:
        gc.collect()
        before = connections()  # the server is shared: other tests' clients may still be there
        for _ in range(12):
            asyncio.run(job())
        gc.collect()
        # a socket closed by the collector reaches redis-server a moment later: wait for it
        deadline = time.monotonic() + 10
        while (connected := connections() - before) > 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connected <= 2, f"{connected} connections left open by 12 closed event loops"
        assert len(server.requests) == 1  # and the cache was used all along
    finally:
        backend.close()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_connections_the_server_closed_are_replaced_without_a_miss(asynchronous: bool, redis_server: RedisServer, server: FakeLLMServer,
                                                                  spans: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Redis closes connections under a client: its ``timeout`` for idle clients (managed
    services close idle ones after minutes), a restart, a failover. The next lookup opens a new
    connection and hits; it is not a miss, a warning and a second of no cache."""
    backend = RedisCache(redis_server.url)
    kill = lambda: redis_server.client().client_kill_filter(_type="normal", skipme=True)  # noqa: E731
    recorder._warned.clear()
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        if asynchronous:
            async def calls() -> None:
                client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), cache=backend,
                                       tracer_provider=spans.provider)
                await client.chat.completions.create(**ASK)
                kill()
                await asyncio.sleep(0.05)  # the loop sees the connection close, as a running app's would
                await client.chat.completions.create(**ASK)
                await client.close()

            asyncio.run(calls())
        else:
            client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), cache=backend,
                                   tracer_provider=spans.provider)
            client.chat.completions.create(**ASK)
            kill()
            client.chat.completions.create(**ASK)
            client.close()
    backend.close()
    assert spans.attrs()["llmspend.cache.hit"] is True and "llmspend.cache.error" not in spans.attrs()
    assert len(server.requests) == 1
    assert not [r for r in caplog.records if "cache fault" in r.getMessage()]


def test_a_unix_socket_url_opens_the_cache_and_the_ledger(tmp_path: Any, server: FakeLLMServer) -> None:
    """``unix:///path`` (a Redis on the same host, e.g. a sidecar) is a URL redis-py takes and the
    error messages name: the plugin handles it for ``cache=`` and ``ledger=``, not a ConfigError
    telling to install the plugin that is installed."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    sock = tmp_path / "redis.sock"
    with RedisServer("--unixsocket", str(sock), "--unixsocketperm", "700"):
        url = f"unix://{sock}?db=0"
        client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), cache=url)
        with llmspend.track(feature="sidecar", budget_usd=1.0, period="day", ledger=url):
            for _ in range(2):
                client.chat.completions.create(**ASK)
        client.close()
        assert len(server.requests) == 1
        assert llmspend.spent("sidecar", period="day", ledger=url).calls == 2  # the hit too, at $0
