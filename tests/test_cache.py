"""The cache stage through the public API, with the official openai SDK against a real local
server: hits and misses, what a hit reports, tenant isolation, policy, per-request controls,
TTL and size limits, streams, and errors that fail open."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import llmspend
from llmspend.telemetry import recorder
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Metrics, Spans

MESSAGES = [{"role": "user", "content": "How long does a refund take?"}]
ASK = dict(model="gpt-4o-mini", temperature=0, messages=MESSAGES)

Wrap = Callable[..., openai.OpenAI]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def make(server: FakeLLMServer, spans: Spans, cache_dir: Path) -> Iterator[Wrap]:
    """``make(cache=..., api_key=..., **options)``: a wrapped sync client on the test server,
    closed at the end; ``cache`` defaults to the test's directory."""
    made: list[openai.OpenAI] = []

    def factory(cache: Any = None, api_key: str = API_KEY, **options: Any) -> openai.OpenAI:
        client = llmspend.wrap(
            openai.OpenAI(base_url=server.base_url, api_key=api_key),
            cache=str(cache_dir) if cache is None else cache,
            tracer_provider=spans.provider,
            **options,
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def cache_attrs(spans: Spans, index: int = -1) -> dict[str, Any]:
    return {k: v for k, v in spans.attrs(index).items() if k.startswith("llmspend.cache") or k.startswith("llmspend.cost")}


# -- hits and misses -----------------------------------------------------------------------
def test_repeat_is_served_from_cache_at_no_cost(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    client = make()
    first = client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    second = client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 1  # nothing left the machine the second time
    assert second.model_dump() == first.model_dump()
    miss, hit = spans.attrs(0), spans.attrs(1)
    assert miss["llmspend.cache.hit"] is False and miss["llmspend.cache.status"] == "miss"
    assert miss["llmspend.cache.stored"] is True
    assert miss["llmspend.cost.usd"] > 0 and "llmspend.cost.saved_usd" not in miss
    assert hit["llmspend.cache.hit"] is True and hit["llmspend.served_from"] == "cache"
    assert hit["llmspend.cost.usd"] == 0.0 and hit["gen_ai.usage.cost"] == 0.0
    assert hit["llmspend.cost.saved_usd"] == miss["llmspend.cost.usd"]
    assert "gen_ai.usage.input_tokens" not in hit  # nothing was bought
    assert hit["gen_ai.response.id"] == miss["gen_ai.response.id"]


def test_a_hit_is_its_own_series_in_the_metrics(make: Wrap, metrics: Metrics) -> None:
    """A hit's duration (a millisecond) must not pull down the provider's latency figures."""
    client = make(meter_provider=metrics.provider)
    for _ in range(3):
        client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    found = metrics.collect()
    durations = {p.attributes.get("llmspend.served_from"): p.count
                 for p in found["gen_ai.client.operation.duration"].data.data_points}
    assert durations == {None: 1, "cache": 2}
    tokens = found["gen_ai.client.token.usage"].data.data_points
    assert all("llmspend.served_from" not in p.attributes and p.count == 1 for p in tokens)  # hits bought none
    saved = {p.attributes.get("llmspend.served_from"): p.value for p in found["llmspend.cost.saved"].data.data_points}
    assert set(saved) == {"cache"} and saved["cache"] > 0


async def test_async_repeat_is_served_from_cache(server: FakeLLMServer, spans: Spans, cache_dir: Path) -> None:
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY),
                           cache=str(cache_dir), tracer_provider=spans.provider)
    first = await client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    second = await client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    await client.close()
    assert len(server.requests) == 1
    assert second.model_dump() == first.model_dump()
    assert spans.attrs(1)["llmspend.cache.hit"] is True
    assert spans.attrs(1)["llmspend.cost.saved_usd"] == spans.attrs(0)["llmspend.cost.usd"]


def test_hit_of_an_unpriced_model_costs_nothing_and_claims_no_saving(make: Wrap, server: FakeLLMServer,
                                                                    spans: Spans) -> None:
    client = make()
    ask = {**ASK, "model": "my-private-finetune"}
    client.chat.completions.create(**ask)  # type: ignore[call-overload]
    client.chat.completions.create(**ask)  # type: ignore[call-overload]
    miss, hit = spans.attrs(0), spans.attrs(1)
    assert miss["llmspend.cost.status"] == "unknown_model" and "llmspend.cost.usd" not in miss
    assert len(server.requests) == 1 and hit["llmspend.cache.hit"] is True
    # the hit bought nothing, so its cost is known: $0; what it saved is not, and is not claimed
    assert hit["llmspend.cost.status"] == "ok" and hit["llmspend.cost.usd"] == 0.0
    assert hit["llmspend.cost.saved_status"] == "unknown_model" and "llmspend.cost.saved_usd" not in hit


def test_hit_says_so_in_its_headers(make: Wrap) -> None:
    client = make()
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    raw = client.chat.completions.with_raw_response.create(**ASK)  # type: ignore[call-overload]
    assert raw.headers["x-llmspend-cache"] == "hit"
    assert int(raw.headers["age"]) >= 0
    assert raw.headers["content-type"] == "application/json"
    assert raw.parse().choices[0].message.content


def test_a_new_client_on_the_same_directory_hits(make: Wrap, server: FakeLLMServer) -> None:
    make().chat.completions.create(**ASK)  # type: ignore[call-overload]
    make().chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 1


def test_what_changes_the_answer_changes_the_key(make: Wrap, server: FakeLLMServer) -> None:
    client = make()
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    client.chat.completions.create(**{**ASK, "model": "gpt-4o"})  # type: ignore[call-overload]
    client.chat.completions.create(**{**ASK, "max_tokens": 5})  # type: ignore[call-overload]
    client.chat.completions.create(**{**ASK, "response_format": {"type": "json_object"}})  # type: ignore[call-overload]
    client.chat.completions.create(  # type: ignore[call-overload]
        **ASK, tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    )
    assert len(server.requests) == 5
    # ... and what does not change it does not: who asked, 0.0 for 0
    client.chat.completions.create(**{**ASK, "temperature": 0.0}, user="u-17", metadata={"team": "a"})  # type: ignore[call-overload]
    assert len(server.requests) == 5


def test_embeddings_and_responses_are_cached(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    client = make()
    for _ in range(2):
        client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        client.responses.create(model="gpt-4o-mini", input="Summarise: all good", temperature=0)
    assert len(server.requests) == 2
    assert [a["llmspend.cache.hit"] for a in (spans.attrs(i) for i in range(4))] == [False, False, True, True]


# -- tenants -----------------------------------------------------------------------------
def test_one_tenants_answer_is_never_served_to_another(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    make(api_key="sk-tenant-a").chat.completions.create(**ASK)  # type: ignore[call-overload]
    make(api_key="sk-tenant-b").chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 2
    assert spans.attrs(1)["llmspend.cache.hit"] is False
    make(api_key="sk-tenant-a").chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 2  # the same tenant still hits


@pytest.mark.parametrize("header", ["x-goog-api-key", "x-litellm-api-key", "ocp-apim-subscription-key",
                                    "proxy-authorization", "cookie", "x-auth-token", "x-custom-gateway-token"])
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_credential_in_any_header_scopes_the_cache(server: FakeLLMServer, spans: Spans, cache_dir: Path,
                                                           header: str, is_async: bool) -> None:
    import httpx

    async def ask(who: str) -> str:
        headers = {header: f"secret-of-{who}"}
        if is_async:
            aclient = llmspend.wrap(httpx.AsyncClient(base_url=server.base_url, headers=headers), cache=str(cache_dir))
            response = await aclient.post("/chat/completions", json=ASK)
            await aclient.aclose()
        else:
            client = llmspend.wrap(httpx.Client(base_url=server.base_url, headers=headers), cache=str(cache_dir))
            response = client.post("/chat/completions", json=ASK)
            client.close()
        return response.headers.get("x-llmspend-cache", "provider")

    assert [await ask("tenant-a"), await ask("tenant-b"), await ask("tenant-a")] == ["provider", "provider", "hit"]
    assert len(server.requests) == 2
    stored = b"".join(p.read_bytes() for p in cache_dir.rglob("*") if p.is_file())
    assert b"secret-of" not in stored


def test_openai_organization_and_project_scope_the_cache(server: FakeLLMServer, cache_dir: Path) -> None:
    def ask(organization: str | None, project: str | None) -> None:
        client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key="sk-one-key", organization=organization,
                                             project=project), cache=str(cache_dir))
        client.chat.completions.create(**ASK)  # type: ignore[call-overload]
        client.close()

    for organization, project in (("org-a", "proj-a"), ("org-b", "proj-a"), ("org-a", "proj-b"), (None, None)):
        ask(organization, project)
    assert len(server.requests) == 4  # one key, four accounts: no answer crossed over
    ask("org-a", "proj-a")
    assert len(server.requests) == 4  # the same account still hits


def test_namespace_replaces_the_credential_and_a_header_narrows_it(make: Wrap, server: FakeLLMServer, cache_dir: Path) -> None:
    config = llmspend.CacheConfig(str(cache_dir), namespace="app-1")
    make(config, api_key="sk-old-key").chat.completions.create(**ASK)  # type: ignore[call-overload]
    rotated = make(config, api_key="sk-new-key")
    rotated.chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 1  # a key rotation keeps the cache
    rotated.chat.completions.create(**ASK, extra_headers={"x-llmspend-cache-namespace": "customer-7"})  # type: ignore[call-overload]
    rotated.chat.completions.create(**ASK, extra_headers={"x-llmspend-cache-namespace": "customer-8"})  # type: ignore[call-overload]
    assert len(server.requests) == 3
    rotated.chat.completions.create(**ASK, extra_headers={"x-llmspend-cache-namespace": "customer-7"})  # type: ignore[call-overload]
    assert len(server.requests) == 3
    make(api_key="sk-old-key").chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 4  # without the namespace: the credential's own scope


def test_no_secret_or_prompt_is_stored(make: Wrap, cache_dir: Path) -> None:
    secret = "sk-very-secret-key-0123456789"
    prompt = "my private question about order 4411"
    make(api_key=secret).chat.completions.create(  # type: ignore[call-overload]
        model="gpt-4o-mini", temperature=0, messages=[{"role": "user", "content": prompt}]
    )
    stored = b"".join(p.read_bytes() for p in cache_dir.rglob("*") if p.is_file())
    assert stored  # something was written ...
    for needle in (secret, "sk-very-secret", prompt, "Bearer"):
        assert needle.encode() not in stored  # ... but neither key nor prompt, in any file


# -- policy ------------------------------------------------------------------------------
def test_only_reproducible_requests_by_default(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    client = make()
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # default temperature 1
        client.chat.completions.create(model="gpt-4o-mini", temperature=0.7, messages=MESSAGES)
    assert len(server.requests) == 4
    assert spans.attrs()["llmspend.cache.status"] == "uncacheable"
    assert spans.attrs()["llmspend.cache.hit"] is False
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", temperature=0.7, seed=7, messages=MESSAGES)
    assert len(server.requests) == 5  # a fixed seed is reproducible


@pytest.mark.parametrize("policy", ["all", lambda call: call.model == "gpt-4o-mini"])
def test_policy_is_configurable(make: Wrap, server: FakeLLMServer, cache_dir: Path, policy: Any) -> None:
    client = make({"location": str(cache_dir), "policy": policy})
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", temperature=1, messages=MESSAGES)
    assert len(server.requests) == 1


def test_a_policy_that_raises_skips_the_cache_and_says_why(make: Wrap, server: FakeLLMServer, cache_dir: Path,
                                                           spans: Spans) -> None:
    client = make({"location": str(cache_dir), "policy": lambda call: call.params["temperature"] == 0})
    for _ in range(2):  # no temperature in the request: the policy raises KeyError
        assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    assert len(server.requests) == 2
    a = spans.attrs()
    assert a["llmspend.cache.status"] == "uncacheable" and "KeyError" in a["llmspend.cache.error"]
    client.chat.completions.create(model="gpt-4o-mini", temperature=0, messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o-mini", temperature=0, messages=MESSAGES)
    assert len(server.requests) == 3 and spans.attrs()["llmspend.cache.hit"] is True


# -- per-request controls ----------------------------------------------------------------
def test_skip_refresh_and_always(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    client = make()
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    client.chat.completions.create(**ASK, extra_headers={"x-llmspend-cache": "skip"})  # type: ignore[call-overload]
    assert len(server.requests) == 2 and spans.attrs()["llmspend.cache.status"] == "skip"
    client.chat.completions.create(**ASK, extra_headers={"x-llmspend-cache": "refresh"})  # type: ignore[call-overload]
    assert len(server.requests) == 3 and spans.attrs()["llmspend.cache.stored"] is True
    refreshed_at = spans.attrs()
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 3 and spans.attrs()["llmspend.cache.hit"] is True
    assert spans.attrs()["llmspend.cost.saved_usd"] == refreshed_at["llmspend.cost.usd"]
    hot = dict(model="gpt-4o-mini", temperature=1.2, messages=MESSAGES)
    for _ in range(2):
        client.chat.completions.create(**hot, extra_headers={"x-llmspend-cache": "always"})  # type: ignore[call-overload]
    assert len(server.requests) == 4
    # the control headers are llmspend's own: the provider never sees them
    for request in server.requests:
        assert not any(k.lower().startswith("x-llmspend") for k in request.headers)


def test_skip_writes_nothing(make: Wrap, server: FakeLLMServer) -> None:
    client = make()
    client.chat.completions.create(**ASK, extra_headers={"x-llmspend-cache": "skip"})  # type: ignore[call-overload]
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 2


def test_ttl_expiry_and_per_request_ttl(make: Wrap, server: FakeLLMServer, cache_dir: Path, spans: Spans) -> None:
    client = make(llmspend.CacheConfig(str(cache_dir), ttl_s=0.3))
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    client.chat.completions.create(**ASK, extra_headers={"x-llmspend-cache-ttl": "60"}, max_tokens=9)  # type: ignore[call-overload]
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 2
    time.sleep(0.45)
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 3 and spans.attrs()["llmspend.cache.status"] == "miss"
    client.chat.completions.create(**ASK, max_tokens=9)  # type: ignore[call-overload]
    assert len(server.requests) == 3  # kept for its own 60 s


@pytest.mark.parametrize("header,value", [
    ("x-llmspend-cache-ttl", "soon"), ("x-llmspend-cache-ttl", "-1"), ("x-llmspend-cache", "maybe"),
    ("x-llmspend-cache-tll", "60"),
])
def test_bad_control_header_fails_open_and_says_why(make: Wrap, server: FakeLLMServer, spans: Spans, header: str, value: str) -> None:
    client = make()
    for _ in range(2):
        answer = client.chat.completions.create(**ASK, extra_headers={header: value})  # type: ignore[call-overload]
        assert answer.choices[0].message.content
    assert len(server.requests) == 2  # not cached, not served from cache
    a = spans.attrs()
    assert a["llmspend.cache.status"] == "skip"
    assert header in a["llmspend.cache.error"]
    assert not any(k.lower().startswith("x-llmspend") for k in server.requests[-1].headers)


# -- what is stored ----------------------------------------------------------------------
def test_errors_are_not_stored(make: Wrap, server: FakeLLMServer) -> None:
    client = make(retry=False)
    server.fail_next(400)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert len(server.requests) == 2


def test_malformed_answers_are_not_stored(make: Wrap, server: FakeLLMServer) -> None:
    client = make()
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(**ASK, extra_headers={"x-fake-malformed": "1"})  # type: ignore[call-overload]
        assert raw.http_response.content.startswith(b'{"id": "chatcmpl-broken"')
    assert len(server.requests) == 2


def test_size_limit_evicts_old_entries(make: Wrap, server: FakeLLMServer, cache_dir: Path) -> None:
    backend = llmspend.DiskCache(cache_dir, size_limit_bytes=200_000, shards=1)
    client = make(backend)
    inputs = [f"text number {i}" for i in range(8)]
    for text in inputs:  # each answer ~37 KB of JSON
        client.embeddings.create(model="text-embedding-3-small", input=text, dimensions=6000)
    stats = backend.stats()
    assert 2 <= stats["entries"] < len(inputs)
    assert stats["bytes"] <= 200_000 + 50_000  # culled on the way, one entry over at most
    client.embeddings.create(model="text-embedding-3-small", input=inputs[-1], dimensions=6000)
    assert len(server.requests) == len(inputs)  # the newest is still there
    client.embeddings.create(model="text-embedding-3-small", input=inputs[0], dimensions=6000)
    assert len(server.requests) == len(inputs) + 1  # the oldest was evicted
    backend.close()


def test_max_entry_bytes(make: Wrap, server: FakeLLMServer, cache_dir: Path, spans: Spans) -> None:
    client = make({"location": str(cache_dir), "max_entry_bytes": 2_000})
    for _ in range(2):
        client.embeddings.create(model="text-embedding-3-small", input="big", dimensions=500)
    assert len(server.requests) == 2 and spans.attrs()["llmspend.cache.stored"] is False
    for _ in range(2):
        client.embeddings.create(model="text-embedding-3-small", input="small", dimensions=4)
    assert len(server.requests) == 3


# -- streams -----------------------------------------------------------------------------
def _stream(client: openai.OpenAI, **extra: Any) -> list[dict[str, Any]]:
    return [c.model_dump() for c in client.chat.completions.create(**ASK, stream=True, **extra)]  # type: ignore[call-overload]


def test_stream_is_replayed_with_the_same_chunks(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    client = make()
    first = _stream(client)
    second = _stream(client)
    assert len(server.requests) == 1
    assert second == first and len(first) > 5
    assert all(chunk["choices"] for chunk in second)  # the usage chunk telemetry asked for stays hidden
    miss, hit = spans.attrs(0), spans.attrs(1)
    assert hit["llmspend.cache.hit"] is True and hit["llmspend.stream.complete"] is True
    assert hit["llmspend.cost.usd"] == 0.0
    assert hit["llmspend.cost.saved_usd"] == miss["llmspend.cost.usd"] and miss["llmspend.cost.estimated"] is False


def test_callers_with_and_without_usage_share_one_stream_entry(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    bare = openai.OpenAI(base_url=server.base_url, api_key=API_KEY)
    with_usage = [c.model_dump() for c in bare.chat.completions.create(  # type: ignore[call-overload]
        **ASK, stream=True, stream_options={"include_usage": True})]
    without_usage = [c.model_dump() for c in bare.chat.completions.create(**ASK, stream=True)]  # type: ignore[call-overload]
    server.reset()
    client = make()
    assert _stream(client) == without_usage
    assert _stream(client, stream_options={"include_usage": True}) == with_usage
    assert _stream(client) == without_usage
    assert len(server.requests) == 1
    assert with_usage[-1]["usage"]["completion_tokens"] > 0


def test_without_telemetry_streams_with_and_without_usage_are_keyed_apart(make: Wrap, server: FakeLLMServer) -> None:
    client = make(telemetry=False)
    plain = _stream(client)
    counted = _stream(client, stream_options={"include_usage": True})
    assert len(server.requests) == 2
    assert counted[-1]["usage"] is not None and all(c["choices"] for c in plain)
    assert _stream(client) == plain and _stream(client, stream_options={"include_usage": True}) == counted
    assert len(server.requests) == 2


def test_stream_stopped_early_is_not_stored(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    client = make()
    stream = client.chat.completions.create(**ASK, stream=True)  # type: ignore[call-overload]
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    assert spans.attrs()["llmspend.cache.stored"] is False
    _stream(client)
    assert len(server.requests) == 2 and spans.attrs()["llmspend.cache.stored"] is True
    _stream(client)
    assert len(server.requests) == 2


def test_stream_that_breaks_is_not_stored(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    from llmspend.testing.server import FakeResponse

    def cut_short(request: Any) -> FakeResponse:
        return FakeResponse.events([
            {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": None}]},
        ])  # no finish_reason, no [DONE]: the provider went away

    server.route("POST", "/v1/chat/completions", cut_short)
    client = make()
    for _ in range(2):
        list(client.chat.completions.create(**ASK, stream=True))  # type: ignore[call-overload]
    assert len(server.requests) == 2 and spans.attrs()["llmspend.cache.stored"] is False


async def test_async_stream_replay(server: FakeLLMServer, spans: Spans, cache_dir: Path) -> None:
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY),
                           cache=str(cache_dir), tracer_provider=spans.provider)
    runs = []
    for _ in range(2):
        stream = await client.chat.completions.create(**ASK, stream=True)  # type: ignore[call-overload]
        runs.append([c.model_dump() async for c in stream])
    await client.close()
    assert runs[0] == runs[1] and len(server.requests) == 1
    assert spans.attrs(1)["llmspend.cache.hit"] is True
    assert "error.type" not in spans.attrs(0) and "error.type" not in spans.attrs(1)
    assert spans.attrs(1)["llmspend.cost.saved_usd"] == spans.attrs(0)["llmspend.cost.usd"]


def test_responses_stream_replay(make: Wrap, server: FakeLLMServer, spans: Spans) -> None:
    client = make()
    runs = [[e.model_dump() for e in client.responses.create(model="gpt-4o-mini", input="hi", temperature=0, stream=True)]
            for _ in range(2)]
    assert runs[0] == runs[1] and runs[0][-1]["type"] == "response.completed"
    assert len(server.requests) == 1 and spans.attrs()["llmspend.cache.hit"] is True


def _failed_response_stream(request: Any) -> Any:
    """A Responses stream that ends with ``response.failed``: the provider's own end event, but
    of an answer that failed."""
    from llmspend.testing.server import FakeResponse

    failed = {"id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-4o-mini", "status": "failed",
              "output": [], "usage": None, "error": {"code": "server_error", "message": "The server had an error"}}
    started = {**failed, "status": "in_progress", "error": None}
    return FakeResponse.events([
        f"event: response.created\ndata: {json.dumps({'type': 'response.created', 'sequence_number': 0, 'response': started})}\n\n",
        f"event: response.failed\ndata: {json.dumps({'type': 'response.failed', 'sequence_number': 1, 'response': failed})}\n\n",
    ])


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_failed_response_stream_is_not_stored(server: FakeLLMServer, spans: Spans, cache_dir: Path,
                                                      use_async: bool) -> None:
    server.route("POST", "/v1/responses", _failed_response_stream)
    ask: dict[str, Any] = dict(model="gpt-4o-mini", input="hi", temperature=0, stream=True)
    for _ in range(2):
        if use_async:
            aclient = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY),
                                    cache=str(cache_dir), tracer_provider=spans.provider)
            events = [e.type async for e in await aclient.responses.create(**ask)]
            await aclient.close()
        else:
            client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                                   cache=str(cache_dir), tracer_provider=spans.provider)
            events = [e.type for e in client.responses.create(**ask)]
            client.close()
        assert events == ["response.created", "response.failed"]
    assert len(server.requests) == 2  # the failure was not served again from the cache
    assert spans.attrs()["llmspend.cache.stored"] is False and spans.attrs()["error.type"] == "server_error"


def _chat_stream_with_an_error_event(request: Any) -> Any:
    """A chat stream that reports an error and then ends with ``[DONE]`` (as vLLM and LiteLLM
    do), all in one read: the SDK raises, but the end event has passed the cache."""
    from llmspend.testing.server import FakeResponse

    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": None}]}
    error = {"error": {"message": "The server had an error", "type": "server_error", "code": None}}
    return FakeResponse.events([f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(error)}\n\ndata: [DONE]\n\n".encode()])


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_chat_stream_with_an_error_event_is_not_stored(server: FakeLLMServer, spans: Spans, cache_dir: Path,
                                                               use_async: bool) -> None:
    server.route("POST", "/v1/chat/completions", _chat_stream_with_an_error_event)
    for _ in range(2):
        with pytest.raises(openai.APIError, match="The server had an error"):
            if use_async:
                aclient = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY),
                                        cache=str(cache_dir), tracer_provider=spans.provider)
                try:
                    [c async for c in await aclient.chat.completions.create(**ASK, stream=True)]  # type: ignore[call-overload]
                finally:
                    await aclient.close()
            else:
                with llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                                   cache=str(cache_dir), tracer_provider=spans.provider) as client:
                    list(client.chat.completions.create(**ASK, stream=True))  # type: ignore[call-overload]
    assert len(server.requests) == 2  # the error was not served again from the cache
    assert spans.attrs()["llmspend.cache.stored"] is False and spans.attrs()["error.type"] == "server_error"


# -- failing open ------------------------------------------------------------------------
def _raw_shards(cache_dir: Path) -> Any:
    """The cache's database opened with diskcache's defaults, as an attacker or a bug would."""
    import diskcache  # type: ignore[import-untyped]

    return diskcache.FanoutCache(str(cache_dir), shards=8)


class _PlantedPickle:
    """Unpickling this creates a file: the proof that code ran (CVE-2025-69872)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


_OK_ENTRY = {"v": 1, "status": 200, "created": 1.0, "cost_usd": None, "headers": [["content-type", "application/json"]],
             "body": '{"id": "c", "object": "chat.completion", "model": "gpt-4o-mini", "choices": []}'}
#: entries another writer (a shared Redis or directory, an older or buggy llmspend) may leave
BAD_ENTRIES = {
    "garbage": b"\x00\x01 not json",
    "json": b'{"v": 1, "status": 200}',
    "nested": b"[" * 200_000,
    "created-nan": json.dumps({**_OK_ENTRY, "created": float("nan")}).encode(),
    "created-neg-inf": json.dumps({**_OK_ENTRY, "created": float("-inf")}).encode(),
    "cost-inf": json.dumps({**_OK_ENTRY, "cost_usd": float("inf")}).encode(),
    "header-crlf": json.dumps({**_OK_ENTRY, "headers": [["x-a", "b\r\nset-cookie: x"]]}).encode(),
}


@pytest.mark.parametrize("planted", [*BAD_ENTRIES, "pickle"])
def test_corrupt_or_planted_entry_fails_open(make: Wrap, server: FakeLLMServer, spans: Spans, cache_dir: Path,
                                             tmp_path: Path, caplog: pytest.LogCaptureFixture, planted: str) -> None:
    client = make()
    expected = client.chat.completions.create(**ASK).model_dump()  # type: ignore[call-overload]
    marker = tmp_path / "code-ran"
    raw = _raw_shards(cache_dir)
    (key,) = list(raw)
    value = _PlantedPickle(marker) if planted == "pickle" else BAD_ENTRIES[planted]
    raw.set(key, value)
    raw.close()
    recorder._warned.clear()
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        for _ in range(2):
            assert client.chat.completions.create(**ASK).model_dump() == expected  # type: ignore[call-overload]
    assert not marker.exists()  # nothing was unpickled
    assert len(server.requests) == 2  # the corrupt entry sent the call to the provider ...
    failed, healed = spans.attrs(1), spans.attrs(2)
    assert failed["llmspend.cache.hit"] is False and "CorruptCacheEntryError" in failed["llmspend.cache.error"]
    assert failed["llmspend.cache.stored"] is True  # ... and its answer replaced the entry
    assert healed["llmspend.cache.hit"] is True and "llmspend.cache.error" not in healed
    assert len([r for r in caplog.records if "cache fault" in r.getMessage()]) == 1


def test_a_bad_control_header_does_not_hide_a_later_backend_fault(make: Wrap, cache_dir: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Warnings are once per place: the request's headers are a place of their own, so the
    caller's typo cannot use up the one warning a broken cache gets."""
    client = make()
    recorder._warned.clear()
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        client.chat.completions.create(**ASK, extra_headers={"x-llmspend-cache-ttl": "soon"})  # type: ignore[call-overload]
        client.chat.completions.create(**ASK)  # type: ignore[call-overload]
        raw = _raw_shards(cache_dir)
        (key,) = list(raw)
        raw.set(key, BAD_ENTRIES["garbage"])
        raw.close()
        client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    faults = [r.getMessage() for r in caplog.records if "cache fault" in r.getMessage()]
    assert len(faults) == 2
    assert "the request's cache headers" in faults[0] and str(cache_dir) in faults[1]


class MemoryBackend(llmspend.CacheBackend):
    """A backend of the user's own, in a dict (the contract's simplest implementation)."""

    kind = "memory"

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.deleted: list[str] = []

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        self.data.pop(key, None)

    def clear(self) -> int:
        removed = len(self.data)
        self.data.clear()
        return removed

    def stats(self) -> dict[str, Any]:
        return {"entries": len(self.data)}


@pytest.mark.parametrize("planted", [*BAD_ENTRIES, "replay-raises"])
@pytest.mark.parametrize("is_async", [False, True])
async def test_any_fault_reading_an_entry_fails_open_and_deletes_it(
        server: FakeLLMServer, spans: Spans, monkeypatch: pytest.MonkeyPatch, planted: str, is_async: bool) -> None:
    backend = MemoryBackend()
    sync_client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    async_client = openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    client = llmspend.wrap(async_client if is_async else sync_client, cache=backend, tracer_provider=spans.provider)

    async def ask() -> Any:
        if is_async:
            return (await client.chat.completions.create(**ASK)).model_dump()  # type: ignore[call-overload,misc]
        return client.chat.completions.create(**ASK).model_dump()  # type: ignore[call-overload]

    expected = await ask()
    (key,) = backend.data
    if planted == "replay-raises":  # a fault past decoding (a bug of ours, say): the entry is still to blame
        def broken(entry: Any) -> Any:
            raise KeyError("from the replay")
        monkeypatch.setattr("llmspend.stages.cache.CacheStage._replay", staticmethod(broken))
    else:
        backend.data[key] = BAD_ENTRIES[planted]
    assert await ask() == expected  # the call went on to the provider ...
    failed = spans.attrs()
    assert failed["llmspend.cache.hit"] is False and "CorruptCacheEntryError" in failed["llmspend.cache.error"]
    assert backend.deleted == [key] and failed["llmspend.cache.stored"] is True  # ... and the entry was replaced
    monkeypatch.undo()
    assert await ask() == expected
    assert spans.attrs()["llmspend.cache.hit"] is True and len(server.requests) == 2
    if is_async:
        await async_client.close()
    sync_client.close()


def test_full_disk_fails_open(make: Wrap, server: FakeLLMServer, spans: Spans, cache_dir: Path) -> None:
    import sqlite3

    client = make()
    client.chat.completions.create(model="gpt-4o-mini", temperature=0, messages=[{"role": "user", "content": "warm up"}])
    # SQLite's own limit on the database size: the same "database or disk is full" as a full disk
    for shard in cache_dir.glob("0*/cache.db"):
        with sqlite3.connect(shard) as db:
            db.execute("INSERT OR REPLACE INTO Settings VALUES ('sqlite_max_page_count', "
                       "(SELECT page_count FROM pragma_page_count()))")
    client = make()  # a process that opens the full cache
    for _ in range(2):  # an answer of ~12 KB needs new pages
        answer = client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=2000)
        assert len(answer.data[0].embedding) == 2000
    assert len(server.requests) == 3
    a = spans.attrs()
    assert a["llmspend.cache.stored"] is False and "full" in a["llmspend.cache.error"]


def test_cache_directory_is_owner_only(make: Wrap, cache_dir: Path) -> None:
    import stat

    make().chat.completions.create(**ASK)  # type: ignore[call-overload]
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    cache_dir.chmod(0o777)
    make()  # opening it again narrows it
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700


def _modes(cache_dir: Path) -> dict[str, int]:
    import stat

    return {str(p.relative_to(cache_dir)): stat.S_IMODE(p.lstat().st_mode) for p in cache_dir.rglob("*")}


def test_everything_inside_the_cache_directory_is_owner_only(make: Wrap, cache_dir: Path) -> None:
    client = make()
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=8000)  # a value file of its own
    modes = _modes(cache_dir)
    assert any(name.endswith(".val") for name in modes) and any(name.endswith("cache.db") for name in modes)
    for name, mode in modes.items():
        assert mode == (0o700 if (cache_dir / name).is_dir() else 0o600), (name, oct(mode))
    # a cache directory once open to others: its files 0644 and 0777, its directories 0755
    database = next(cache_dir.glob("0*/cache.db"))
    database.chmod(0o644)
    database.parent.chmod(0o755)
    next(cache_dir.rglob("*.val")).chmod(0o777)
    make()  # opening it narrows them again
    assert set(_modes(cache_dir).values()) <= {0o600, 0o700}


@pytest.mark.parametrize("where", ["000", "stats", "000/cache.db", "001/ab", "cache.db-wal"])
def test_a_symlink_planted_in_the_cache_directory_is_refused(server: FakeLLMServer, tmp_path: Path, where: str) -> None:
    import os

    cache_dir = tmp_path / "cache"
    llmspend.DiskCache(cache_dir, shards=2).close()
    planted = tmp_path / "planted"  # stands for a directory of another user's
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    link = cache_dir / where
    if link.is_dir():
        os.rename(link, tmp_path / "moved")
    elif link.exists():
        link.unlink()
    link.symlink_to(planted)
    with pytest.raises(llmspend.ConfigError, match=rf"{where} in the cache directory is a symbolic link to {planted}"):
        llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), cache=str(cache_dir))
    assert list(planted.iterdir()) == [] and planted.stat().st_mode & 0o777 == 0o777  # nothing written, nothing changed
    # a link of the user's own among files that are not llmspend's is theirs to keep
    link.unlink()
    (cache_dir / "notes").symlink_to(planted)
    llmspend.DiskCache(cache_dir, shards=2).close()


def test_an_entry_of_another_user_inside_the_cache_directory_is_refused(tmp_path: Path) -> None:
    import os

    cache_dir = tmp_path / "cache"
    llmspend.DiskCache(cache_dir, shards=2).close()
    if os.getuid() != 0:  # only root can give a file away; the check is the same either way
        assert os.stat(cache_dir / "000").st_uid == os.getuid()
        return
    os.chown(cache_dir / "000" / "cache.db", 4242, 4242)
    with pytest.raises(llmspend.ConfigError, match=r"000/cache.db in the cache directory belongs to another user"):
        llmspend.DiskCache(cache_dir, shards=2)


def test_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    import os

    if os.getuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 4242, 4242)
    else:
        theirs = Path("/")  # exists, and root's
    with pytest.raises(llmspend.ConfigError, match="belongs to another user"):
        llmspend.DiskCache(theirs)


def test_configuration_errors_say_what_to_fix(server: FakeLLMServer, tmp_path: Path) -> None:
    bare = openai.OpenAI(base_url=server.base_url, api_key=API_KEY)
    with pytest.raises(llmspend.ConfigError, match="pip install llmspend-redis"):
        llmspend.wrap(bare, cache="redis-cluster://cache:7000")
    with pytest.raises(llmspend.ConfigError, match="memcached://"):
        llmspend.wrap(bare, cache="memcached://cache:11211")
    with pytest.raises(llmspend.ConfigError, match="policy"):
        llmspend.wrap(bare, cache={"location": str(tmp_path), "policy": "sometimes"})
    with pytest.raises(llmspend.ConfigError, match="ttl_s"):
        llmspend.wrap(bare, cache=llmspend.CacheConfig(str(tmp_path), ttl_s=-5))
    with pytest.raises(llmspend.ConfigError, match="known: location"):
        llmspend.wrap(bare, cache={"directory": str(tmp_path)})
    with pytest.raises(llmspend.ConfigError, match="does not take"):
        llmspend.wrap(bare, cache={"location": str(tmp_path), "options": {"shard_count": 3}})
    with pytest.raises(llmspend.ConfigError, match="not a directory"):
        (tmp_path / "file").write_text("x")
        llmspend.wrap(bare, cache=str(tmp_path / "file"))
    with pytest.raises(llmspend.ConfigError, match="cache= takes"):
        llmspend.wrap(bare, cache=42)


def test_redis_without_its_plugin_says_how_to_get_it(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmspend import plugins

    monkeypatch.setenv(plugins.AUTOLOAD_ENV, "1")  # as if llmspend-redis were not installed
    plugins.reload()
    try:
        with pytest.raises(llmspend.ConfigError, match=r"no cache backend handles redis:// URLs.*pip install llmspend-redis"):
            llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), cache="redis://localhost:6379/0")
    finally:
        monkeypatch.undo()
        plugins.reload()


def test_default_directory(server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LLMSPEND_CACHE_DIR", raising=False)
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), cache=True)
    client.chat.completions.create(**ASK)  # type: ignore[call-overload]
    client.close()
    assert (tmp_path / "xdg" / "llmspend").is_dir()
    assert llmspend.DiskCache(tmp_path / "xdg" / "llmspend").stats()["entries"] == 1
