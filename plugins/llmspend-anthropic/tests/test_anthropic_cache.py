"""The cache stage with Anthropic Messages requests, through the official SDK, sync and async,
with a real disk cache: repeated calls at temperature 0 are answered from the cache at no cost
(the span says so, and what the original call cost as the saving); streams are stored only when
the provider finished them and replayed as the same events; keys are scoped by credential
(``x-api-key`` or ``Authorization: Bearer``) and change with ``anthropic-version`` and
``anthropic-beta``, but not with ``cache_control`` markers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from helpers_anthropic import API_KEY, MODEL, Spans, price

import llmspend
from llmspend.pricing.table import ModelPrice
from llmspend.testing import FakeLLMServer
from llmspend_anthropic.testing import NO_SAMPLING_VERSION, FakeAnthropicAPI

SYSTEM = [{"type": "text", "text": "You answer questions about Example Store's refund policy. " * 120,
           "cache_control": {"type": "ephemeral"}}]
QUESTION = [{"role": "user", "content": "How long does a refund take?"}]
# API version 2026-10-21 (the SDK 2.x default) has no sampling parameters: temperature 0 is
# asked for under the version before it, which the SDK no longer types (hence extra_body).
LEGACY = {"anthropic-version": "2023-06-01"}
ASK: dict[str, Any] = dict(model=MODEL, max_tokens=200, system=SYSTEM, messages=QUESTION, extra_body={"temperature": 0})

Make = Callable[..., anthropic.Anthropic]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def make(server: FakeLLMServer, spans: Spans, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    """``make(api_key=..., auth_token=..., headers=..., legacy=True)``: a wrapped sync client
    with a cache in the test's directory (on API version 2023-06-01 unless not ``legacy``),
    closed at the end. Without ``auth_token`` or an ``X-Api-Key`` in ``headers``, the SDK
    sends ``api_key`` (default: the tests' key) as ``Authorization: Bearer``."""
    # a client with a key only in its headers must find no credentials of the machine's own
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "ANTHROPIC_CONFIG_DIR",
                 "ANTHROPIC_FEDERATION_RULE_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, str(cache_dir.parent / "home"))
    made: list[anthropic.Anthropic] = []

    def factory(*, headers: dict[str, str] | None = None, legacy: bool = True, **credentials: Any) -> anthropic.Anthropic:
        headers = {**(LEGACY if legacy else {}), **(headers or {})}
        if not credentials and "X-Api-Key" not in headers:
            credentials["api_key"] = API_KEY
        raw = anthropic.Anthropic(base_url=server.url, open_telemetry=False, default_headers=headers, **credentials)
        client = llmspend.wrap(raw, cache=str(cache_dir), tracer_provider=spans.provider)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def header(request: Any, name: str) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == name), None)


def attrs(spans: Spans, index: int = -1) -> dict[str, Any]:
    return dict(spans.finished()[index].attributes or {})


def messages_sent(server: FakeLLMServer) -> int:
    return sum(1 for r in server.requests if r.path == "/v1/messages")


def miss_then_hit(spans: Spans) -> tuple[dict[str, Any], dict[str, Any]]:
    miss, hit = attrs(spans, 0), attrs(spans, 1)
    assert miss["llmspend.cache.status"] == "miss" and miss["llmspend.cache.stored"] is True
    assert hit["llmspend.cache.hit"] is True and hit["llmspend.served_from"] == "cache"
    assert hit["gen_ai.provider.name"] == "anthropic" and hit["gen_ai.request.model"] == MODEL
    assert hit["llmspend.cost.usd"] == 0.0 and hit["gen_ai.usage.cost"] == 0.0
    assert miss["llmspend.cost.usd"] > 0
    assert hit["llmspend.cost.saved_usd"] == miss["llmspend.cost.usd"]  # what the original call cost
    assert "gen_ai.usage.input_tokens" not in hit  # nothing was bought
    return miss, hit


# -- hits ------------------------------------------------------------------------------------
def test_repeat_is_served_from_cache_at_no_cost(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI,
                                                spans: Spans, row: ModelPrice) -> None:
    client = make()
    first = client.messages.create(**ASK)
    second = client.messages.create(**ASK)
    assert messages_sent(server) == 1  # nothing left the machine the second time
    assert second.model_dump() == first.model_dump()
    miss, _ = miss_then_hit(spans)
    usage = first.usage  # the original call wrote the system prompt to Anthropic's cache: priced as such
    assert usage.cache_creation_input_tokens and usage.cache_creation_input_tokens > 0
    assert miss["llmspend.cost.usd"] == pytest.approx(price(row, uncached=usage.input_tokens, output=usage.output_tokens,
                                                            write_5m=usage.cache_creation_input_tokens))


async def test_async_repeat_is_served_from_cache(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                 cache_dir: Path) -> None:
    raw = anthropic.AsyncAnthropic(base_url=server.url, api_key=API_KEY, open_telemetry=False, default_headers=LEGACY)
    client = llmspend.wrap(raw, cache=str(cache_dir), tracer_provider=spans.provider)
    first = await client.messages.create(**ASK)
    second = await client.messages.create(**ASK)
    await client.close()
    assert messages_sent(server) == 1 and second.model_dump() == first.model_dump()
    miss_then_hit(spans)


def test_only_reproducible_requests_by_default(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = make()
    varied = {k: v for k, v in ASK.items() if k != "extra_body"}  # the API's default temperature is 1
    client.messages.create(**varied)
    client.messages.create(**varied)
    assert messages_sent(server) == 2
    assert attrs(spans)["llmspend.cache.status"] == "uncacheable"


def test_current_api_version_caches_when_asked(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = make(legacy=False)
    with pytest.raises(anthropic.BadRequestError, match="temperature"):  # gone from 2026-10-21 on
        client.messages.create(**ASK)
    current = {k: v for k, v in ASK.items() if k != "extra_body"}
    client.messages.create(**current)
    assert attrs(spans)["llmspend.cache.status"] == "uncacheable"  # sampled: not reproducible
    always = {"x-llmspend-cache": "always"}
    first = client.messages.create(**current, extra_headers=always)
    second = client.messages.create(**current, extra_headers=always)
    assert messages_sent(server) == 3 and second.model_dump() == first.model_dump()
    assert attrs(spans)["llmspend.cache.hit"] is True
    assert header(server.requests[-1], "anthropic-version") == NO_SAMPLING_VERSION


def test_what_changes_the_answer_changes_the_key(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI) -> None:
    client = make()
    client.messages.create(**ASK)
    client.messages.create(**{**ASK, "max_tokens": 100})
    client.messages.create(**{**ASK, "system": "Be brief."})
    client.messages.create(**{**ASK, "messages": [{"role": "user", "content": "And for gift cards?"}]})
    assert messages_sent(server) == 4
    client.messages.create(**{**ASK, "metadata": {"user_id": "u-17"}})  # who asked: not the answer
    assert messages_sent(server) == 4


def test_cache_control_markers_are_not_part_of_the_key(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI,
                                                       spans: Spans) -> None:
    client = make()
    marked = client.messages.create(**ASK)
    plain_system = [{k: v for k, v in block.items() if k != "cache_control"} for block in SYSTEM]
    marked_turn = [{"role": "user", "content": [{"type": "text", "text": "How long does a refund take?",
                                                 "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]
    unmarked = client.messages.create(**{**ASK, "system": plain_system})
    automatic = client.messages.create(**{**ASK, "system": plain_system}, cache_control={"type": "ephemeral"})
    assert messages_sent(server) == 1  # same answer whatever the provider may keep of the prompt
    assert unmarked.model_dump() == automatic.model_dump() == marked.model_dump()
    assert attrs(spans)["llmspend.cache.hit"] is True
    # content as a list of blocks instead of a string is another request (the API reads both
    # alike, but the cache does not guess); the marker on a block is not what keys it apart
    client.messages.create(**{**ASK, "messages": marked_turn})
    unmarked_turn = [{"role": "user", "content": [{"type": "text", "text": "How long does a refund take?"}]}]
    client.messages.create(**{**ASK, "messages": unmarked_turn})
    assert messages_sent(server) == 2


def test_a_property_named_cache_control_in_a_tool_schema_still_counts(make: Make, server: FakeLLMServer,
                                                                      api: FakeAnthropicAPI) -> None:
    client = make()

    def tool(properties: dict[str, Any]) -> dict[str, Any]:
        return {"name": "set_header", "input_schema": {"type": "object", "properties": properties}}

    client.messages.create(**ASK, tools=[tool({"cache_control": {"type": "string"}})])
    client.messages.create(**ASK, tools=[tool({})])
    assert messages_sent(server) == 2


# -- what scopes and varies the key -------------------------------------------------------------
def test_scoped_per_bearer_credential(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI) -> None:
    make(api_key="sk-ant-tenant-a").messages.create(**ASK)
    make(auth_token="oauth-token-b").messages.create(**ASK)
    assert messages_sent(server) == 2  # one tenant's answer is never served to another
    assert [header(r, "authorization") for r in server.requests] == ["Bearer sk-ant-tenant-a", "Bearer oauth-token-b"]
    make(api_key="sk-ant-tenant-a").messages.create(**ASK)
    assert messages_sent(server) == 2  # ... and is served to the same one again


def test_scoped_per_x_api_key(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI) -> None:
    make(headers={"X-Api-Key": "sk-ant-tenant-a"}).messages.create(**ASK)
    make(headers={"X-Api-Key": "sk-ant-tenant-b"}).messages.create(**ASK)
    assert messages_sent(server) == 2
    assert [header(r, "x-api-key") for r in server.requests] == ["sk-ant-tenant-a", "sk-ant-tenant-b"]
    assert [header(r, "authorization") for r in server.requests] == [None, None]
    make(headers={"X-Api-Key": "sk-ant-tenant-b"}).messages.create(**ASK)
    assert messages_sent(server) == 2


def test_both_credential_headers_scope_together(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI) -> None:
    # The API reads x-api-key before Authorization: two callers sharing a bearer token but not
    # the key are two tenants
    make(api_key="sk-ant-shared", headers={"X-Api-Key": "sk-ant-tenant-a"}).messages.create(**ASK)
    make(api_key="sk-ant-shared", headers={"X-Api-Key": "sk-ant-tenant-b"}).messages.create(**ASK)
    make(api_key="sk-ant-shared").messages.create(**ASK)
    assert messages_sent(server) == 3
    make(api_key="sk-ant-shared", headers={"X-Api-Key": "sk-ant-tenant-a"}).messages.create(**ASK)
    assert messages_sent(server) == 3


def test_api_version_and_beta_headers_change_the_key(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI,
                                                     spans: Spans) -> None:
    client = make()
    client.messages.create(**ASK)
    client.beta.messages.create(**ASK, betas=["context-1m-2025-08-07"])
    client.beta.messages.create(**ASK, betas=["context-1m-2025-08-07", "token-efficient-tools-2025-02-19"])
    make(headers={"anthropic-version": "2023-01-01"}).messages.create(**ASK)
    assert messages_sent(server) == 4
    assert [header(r, "anthropic-beta") for r in server.requests] == [
        None, "context-1m-2025-08-07", "context-1m-2025-08-07,token-efficient-tools-2025-02-19", None]
    assert [header(r, "anthropic-version") for r in server.requests] == ["2023-06-01"] * 3 + ["2023-01-01"]
    client.beta.messages.create(**ASK, betas=["context-1m-2025-08-07"])  # the same beta again: a hit
    client.messages.create(**ASK)
    assert messages_sent(server) == 4
    assert attrs(spans, -2)["llmspend.cache.hit"] is True and attrs(spans)["llmspend.cache.hit"] is True


def test_no_secret_or_prompt_is_stored(make: Make, cache_dir: Path, api: FakeAnthropicAPI) -> None:
    secret = "sk-ant-very-secret-0123456789"
    prompt = "my private question about order 4411"
    ask = {**ASK, "messages": [{"role": "user", "content": prompt}]}
    make(api_key=secret).messages.create(**ask)
    make(headers={"X-Api-Key": secret}).messages.create(**ask)
    stored = b"".join(p.read_bytes() for p in cache_dir.rglob("*") if p.is_file())
    assert stored
    for needle in (secret, "sk-ant-very", prompt, "Bearer", "refund policy"):
        assert needle.encode() not in stored


# -- streams ---------------------------------------------------------------------------------
def events(client: anthropic.Anthropic, **extra: Any) -> list[dict[str, Any]]:
    return [event.model_dump() for event in client.messages.create(**ASK, stream=True, **extra)]


def test_stream_is_replayed_as_the_same_events(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = make()
    first, second = events(client), events(client)
    assert messages_sent(server) == 1
    assert second == first and first[-1]["type"] == "message_stop"
    assert [e["type"] for e in first].count("content_block_delta") > 3
    miss, hit = miss_then_hit(spans)
    assert hit["llmspend.stream.complete"] is True and miss["llmspend.cost.estimated"] is False
    # the stream helper reads the replay as it reads the API
    with client.messages.stream(**ASK) as stream:
        final = stream.get_final_message()
    assert messages_sent(server) == 1 and final.usage.output_tokens > 0
    assert final.content[0].text == "".join(e["delta"]["text"] for e in first if e["type"] == "content_block_delta")


async def test_async_stream_replay(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, cache_dir: Path) -> None:
    raw = anthropic.AsyncAnthropic(base_url=server.url, api_key=API_KEY, open_telemetry=False, default_headers=LEGACY)
    client = llmspend.wrap(raw, cache=str(cache_dir), tracer_provider=spans.provider)
    runs = []
    for _ in range(2):
        stream = await client.messages.create(**ASK, stream=True)
        runs.append([event.model_dump() async for event in stream])
    async with client.messages.stream(**ASK) as helper:
        final = await helper.get_final_message()
    await client.close()
    assert runs[0] == runs[1] and messages_sent(server) == 1
    assert final.stop_reason == runs[0][-2]["delta"]["stop_reason"]
    miss_then_hit(spans)
    assert attrs(spans)["llmspend.cache.hit"] is True


def test_stream_stopped_early_is_not_stored(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = make()
    stream = client.messages.create(**ASK, stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            break
    stream.close()
    assert attrs(spans)["llmspend.cache.stored"] is False
    events(client)
    assert messages_sent(server) == 2 and attrs(spans)["llmspend.cache.stored"] is True
    events(client)
    assert messages_sent(server) == 2


def test_stream_with_an_error_event_is_not_stored(make: Make, server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = make()
    for _ in range(2):
        with pytest.raises(anthropic.APIStatusError):
            events(client, extra_headers={"x-fake-stream-error": "1"})
    assert messages_sent(server) == 2
    assert attrs(spans)["llmspend.cache.stored"] is False and attrs(spans)["error.type"] == "overloaded_error"
