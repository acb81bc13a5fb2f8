"""wrap(): same client type, settings kept, options validated, both HTTP libraries."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import openai
import pytest

import llmspend
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Spans

MESSAGES = [{"role": "user", "content": "hello"}]


def test_wrap_returns_same_type_and_keeps_settings(server: FakeLLMServer, spans: Spans) -> None:
    http = httpx2.Client(
        timeout=httpx2.Timeout(12.5),
        headers={"x-team": "search"},
        limits=httpx2.Limits(max_connections=7),
    )
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, http_client=http, default_headers={"x-app": "demo"})
    wrapped = llmspend.wrap(client, tracer_provider=spans.provider)
    assert type(wrapped) is openai.OpenAI
    assert wrapped.base_url == client.base_url
    assert wrapped.timeout == client.timeout
    assert wrapped._client.timeout == httpx2.Timeout(12.5)
    assert wrapped._client.headers["x-team"] == "search"
    # limits live in the connection pool, which the wrapped client shares
    assert wrapped._client._transport.inner is http._transport
    wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    sent = server.requests[-1].headers
    assert sent["x-team"] == "search" and sent["x-app"] == "demo"
    # the client passed in is untouched: no pipeline, its own retries
    assert client._client._transport is http._transport
    assert client.max_retries == 2 and wrapped.max_retries == 0


def test_proxy_mounts_are_wrapped_too() -> None:
    http = httpx2.Client(mounts={"http://internal.example": httpx2.HTTPTransport()})
    wrapped = llmspend.wrap(http)
    (transport,) = wrapped._mounts.values()
    assert type(transport).__name__ == "PipelineTransport"
    assert next(iter(http._mounts.values())) is transport.inner


async def test_async_client(server: FakeLLMServer, spans: Spans) -> None:
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    assert type(client) is openai.AsyncOpenAI
    response = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response.usage is not None
    assert spans.attrs()["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens


@pytest.mark.parametrize("library", [httpx2, httpx])
def test_sdk_on_either_http_library(server: FakeLLMServer, spans: Spans, library: object) -> None:
    http = library.Client()  # type: ignore[attr-defined]
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY, http_client=http), tracer_provider=spans.provider)
    assert isinstance(client._client, library.Client)  # type: ignore[attr-defined]
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert spans.attrs()["gen_ai.usage.output_tokens"] == response.usage.completion_tokens  # type: ignore[union-attr]
    assert spans.attrs()["llmspend.cost.usd"] > 0


@pytest.mark.parametrize("library", [httpx2, httpx])
def test_plain_http_clients_sync(server: FakeLLMServer, spans: Spans, library: object) -> None:
    client = llmspend.wrap(library.Client(base_url=server.base_url), tracer_provider=spans.provider)  # type: ignore[attr-defined]
    assert isinstance(client, library.Client)  # type: ignore[attr-defined]
    body = client.post("/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}).json()
    assert spans.attrs()["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"]
    assert spans.one().name == "chat gpt-4o"


@pytest.mark.parametrize("library", [httpx2, httpx])
async def test_plain_http_clients_async(server: FakeLLMServer, spans: Spans, library: object) -> None:
    client = llmspend.wrap(library.AsyncClient(base_url=server.base_url), tracer_provider=spans.provider)  # type: ignore[attr-defined]
    response = await client.post("/embeddings", json={"model": "text-embedding-3-small", "input": "abc"})
    assert spans.attrs()["gen_ai.usage.input_tokens"] == response.json()["usage"]["prompt_tokens"]
    await client.aclose()


@pytest.mark.parametrize("module_name", ["httpx2", "httpx"])
def test_transport_used_directly(server: FakeLLMServer, spans: Spans, module_name: str) -> None:
    import importlib

    lib = importlib.import_module(module_name)
    transports = importlib.import_module(f"llmspend.transports.{module_name}")
    pipeline = llmspend.build_pipeline(tracer_provider=spans.provider)
    with lib.Client(base_url=server.base_url, transport=transports.PipelineTransport(pipeline)) as client:
        client.post("/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES})
    assert spans.attrs()["llmspend.cost.status"] == "ok"


def test_unknown_option_is_a_clear_error() -> None:
    with pytest.raises(llmspend.ConfigError, match=r"unknown option 'cach'.*Did you mean 'cache'|unknown option 'cach'"):
        llmspend.wrap(openai.OpenAI(api_key=API_KEY), cach=True)
    with pytest.raises(llmspend.ConfigError, match="Known options"):
        llmspend.wrap(openai.OpenAI(api_key=API_KEY), tracer=None)


def test_bad_option_values_fail_at_construction() -> None:
    client = openai.OpenAI(api_key=API_KEY)
    with pytest.raises(llmspend.ConfigError, match="retry"):
        llmspend.wrap(client, retry="often")
    with pytest.raises(llmspend.ConfigError, match="max_attempts"):
        llmspend.wrap(client, retry={"max_attempts": 0})
    with pytest.raises(llmspend.ConfigError, match="prices="):
        llmspend.wrap(client, prices=42)
    with pytest.raises(llmspend.ConfigError, match="capture_content"):
        llmspend.wrap(client, capture_content="yes")


def test_wrap_rejects_what_it_cannot_instrument() -> None:
    with pytest.raises(llmspend.ConfigError, match="httpx2/httpx client"):
        llmspend.wrap(object())


def test_rewrapping_replaces_the_pipeline(server: FakeLLMServer, spans: Spans) -> None:
    once = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    twice = llmspend.wrap(once, tracer_provider=spans.provider)
    twice.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(spans.finished) == 1  # not two stacked pipelines
    assert twice._client._transport.inner is once._client._transport.inner


def test_unknown_endpoints_pass_through_untouched(server: FakeLLMServer, spans: Spans) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    page = client.models.list()
    assert list(page) == []
    assert spans.finished == []


def _gzipped_answers_with_a_non_ascii_header(server: FakeLLMServer) -> None:
    """Chat answers gzip-compressed (streams too), with a header the server writes in UTF-8."""
    import gzip

    from llmspend.testing.server import FakeResponse

    chat = server._chat

    def compressed(request: Any) -> FakeResponse:
        answer = chat(request)
        body = answer.body if isinstance(answer.body, bytes) else b"".join(answer.body)
        return FakeResponse(answer.status, gzip.compress(body),
                            {**answer.headers, "content-encoding": "gzip", "x-region": "Zürich"})

    server.route("POST", "/v1/chat/completions", compressed)


@pytest.mark.parametrize("library", [httpx2, httpx])
def test_a_non_ascii_header_survives_a_response_the_transport_rebuilds(server: FakeLLMServer, spans: Spans,
                                                                       library: Any) -> None:
    """A compressed stream is handed back decoded, in a response of the transport's own making;
    the library refuses a text header that is not ASCII there, which failed the call."""
    _gzipped_answers_with_a_non_ascii_header(server)
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY, http_client=library.Client()),
                           tracer_provider=spans.provider)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert raw.headers["x-region"] == "Zürich"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert spans.attrs()["llmspend.stream.complete"] is True


class _TeamHeader(llmspend.Stage):
    name = "team_header"

    def handle(self, request: Any, call_next: Any) -> Any:
        return call_next(request.replace(headers=request.headers.set("x-team", "ads")))


@pytest.mark.parametrize("module_name", ["httpx2", "httpx"])
def test_a_non_ascii_header_survives_a_request_a_stage_changed(server: FakeLLMServer, module_name: str) -> None:
    import importlib

    lib = importlib.import_module(module_name)
    transports = importlib.import_module(f"llmspend.transports.{module_name}")
    pipeline = llmspend.Pipeline([_TeamHeader()], llmspend.build_pipeline().adapters)
    with lib.Client(base_url=server.base_url, transport=transports.PipelineTransport(pipeline)) as client:
        client.post("/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES},
                    headers={"x-user": "Zoë".encode()})
    sent = server.requests[-1].headers
    assert sent["x-team"] == "ads"
    assert sent["x-user"].encode("latin-1").decode() == "Zoë"  # http.server reads header bytes as latin-1


@pytest.mark.parametrize("library", [httpx2, httpx])
async def test_a_non_ascii_header_survives_a_response_the_transport_rebuilds_async(server: FakeLLMServer, spans: Spans,
                                                                                   library: Any) -> None:
    _gzipped_answers_with_a_non_ascii_header(server)
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY,
                                              http_client=library.AsyncClient()), tracer_provider=spans.provider)
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert raw.headers["x-region"] == "Zürich"
    assert [c async for c in raw.parse()]
    assert spans.attrs()["llmspend.stream.complete"] is True


@pytest.mark.parametrize("retry", [True, False])
def test_with_options_http_client_keeps_the_pipeline(server: FakeLLMServer, spans: Spans, retry: bool) -> None:
    """`client.with_options(http_client=...)` (the SDKs' idiom for a proxy per use) gave a copy
    that bypassed llmspend: no span, no cost, no budget, and no retries at all with llmspend's on."""
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           retry={"initial_backoff_s": 0} if retry else False)
    own = httpx2.Client(headers={"x-route": "proxy-b"})
    copied = client.with_options(http_client=own, timeout=20)
    assert copied.max_retries == (0 if retry else 2)
    server.fail_next(500, headers={"retry-after-ms": "1"})
    response = copied.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 2 and server.requests[-1].headers["x-route"] == "proxy-b"
    last = spans.attrs()
    assert last["gen_ai.usage.output_tokens"] == response.usage.completion_tokens  # type: ignore[union-attr]
    assert last["llmspend.cost.usd"] > 0
    assert len(spans.finished) == (1 if retry else 2)  # the SDK's retries: one span per attempt
    assert own._transport is copied._client._transport.inner  # the client given is left as it was
    copied.with_options(timeout=5).chat.completions.create(model="gpt-4o", messages=MESSAGES)  # a copy of the copy
    assert len(spans.finished) == (2 if retry else 3)


async def test_async_with_options_http_client_keeps_the_pipeline(server: FakeLLMServer, spans: Spans) -> None:
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    copied = client.copy(http_client=httpx2.AsyncClient())
    await copied.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert spans.attrs()["llmspend.cost.usd"] > 0
    await copied.close()
