"""OpenAI-compatible providers as they really answer: Azure OpenAI, OpenRouter, Perplexity, Groq.

The official SDK is pointed at the provider's own host and sent through a forward proxy that
is the fake server on 127.0.0.1 (``http_client=httpx2.Client(proxy=...)``), so llmspend sees
the provider's host and path, and the server answers in that provider's wire format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest

import llmspend
from llmspend.pricing.table import PriceTable
from llmspend.testing import FakeLLMServer, FakeRequest, FakeResponse

from .conftest import Spans

AZURE_KEY = "azure-SECRET-key-0123456789abcdef"
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}


def _usd(model: str, provider: str, usage: dict[str, int] = USAGE) -> float:
    row = PriceTable.default().lookup(model, provider=provider)
    assert row is not None
    return (usage["prompt_tokens"] * row.input + usage["completion_tokens"] * row.output) / 1e6


def _chunk(model: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 5, "model": model,
            "choices": choices, **extra}


def _delta(text: str) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": {"content": text}, "finish_reason": None}]


FINISH = [{"index": 0, "delta": {}, "finish_reason": "stop"}]


def _completion(model: str, usage: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {"id": "gen-1", "object": "chat.completion", "created": 5, "model": model, **extra,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": usage}


@pytest.fixture
def answer(server: FakeLLMServer) -> Iterator[Callable[[Callable[[FakeRequest], FakeResponse]], None]]:
    """Set how the server answers every POST (the proxied request's path is the full URL)."""
    handlers: list[Callable[[FakeRequest], FakeResponse]] = []
    server.route_pattern("POST", r"http://.*", lambda request: handlers[-1](request))
    yield handlers.append


def _sync_http(server: FakeLLMServer) -> httpx2.Client:
    return httpx2.Client(proxy=server.url)


def _async_http(server: FakeLLMServer) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(proxy=server.url)


# -- Azure OpenAI ----------------------------------------------------------------------------

def _azure_stream(request: FakeRequest) -> FakeResponse:
    """Azure's stream: a first event for the prompt's content filter, with an empty id and model
    and no choices, then the chunks naming the model the deployment runs."""
    include_usage = (request.json().get("stream_options") or {}).get("include_usage") is True
    model = "gpt-4o-2024-11-20"
    events: list[dict[str, Any]] = [
        {"choices": [], "created": 0, "id": "", "model": "", "object": "",
         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
        _chunk(model, [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                        "content_filter_results": {}}]),
        _chunk(model, _delta("Hello")),
        _chunk(model, FINISH),
    ]
    if include_usage:
        events = [{**event, "usage": None} for event in events] + [_chunk(model, [], usage=USAGE)]
    return FakeResponse.events([*events, "data: [DONE]\n\n"])


@pytest.mark.parametrize("is_async", [False, True])
def test_azure_stream_is_priced_from_the_model_its_chunks_name(
        server: FakeLLMServer, spans: Spans, answer: Any, is_async: bool) -> None:
    # The deployment's name is not a model: the price comes from the model the answer names.
    answer(_azure_stream)
    options = dict(azure_endpoint="http://myres.openai.azure.com", api_version="2024-10-21", api_key=AZURE_KEY)

    if is_async:
        async def run() -> list[Any]:
            client = llmspend.wrap(openai.AsyncAzureOpenAI(**options, http_client=_async_http(server)),
                                   tracer_provider=spans.provider)
            stream = await client.chat.completions.create(model="prod-chat", messages=[{"role": "user", "content": "hi"}],
                                                          stream=True)
            return [chunk async for chunk in stream]
        chunks = asyncio.run(run())
    else:
        client = llmspend.wrap(openai.AzureOpenAI(**options, http_client=_sync_http(server)), tracer_provider=spans.provider)
        chunks = list(client.chat.completions.create(model="prod-chat", messages=[{"role": "user", "content": "hi"}],
                                                     stream=True))
    assert [c.model for c in chunks] == ["", "gpt-4o-2024-11-20", "gpt-4o-2024-11-20", "gpt-4o-2024-11-20"]
    a = spans.attrs()
    assert a["gen_ai.provider.name"] == "azure.ai.openai"
    assert a["gen_ai.request.model"] == "prod-chat"
    assert a["gen_ai.response.model"] == "gpt-4o-2024-11-20"
    assert a["gen_ai.response.id"] == "chatcmpl-9"
    assert a["llmspend.cost.status"] == "ok"
    assert a["llmspend.cost.usd"] == pytest.approx(_usd("gpt-4o", "openai"))


def _azure_completion(request: FakeRequest) -> FakeResponse:
    return FakeResponse.json(_completion("gpt-4o-2024-11-20", USAGE,
                                         prompt_filter_results=[{"prompt_index": 0, "content_filter_results": {}}]))


@pytest.mark.parametrize("host", ["myres.openai.azure.com", "myres.cognitiveservices.azure.com",
                                  "myproject.services.ai.azure.com"])
def test_every_azure_openai_host_is_azure(server: FakeLLMServer, spans: Spans, answer: Any, host: str) -> None:
    # Azure OpenAI answers on a resource's openai.azure.com and cognitiveservices.azure.com
    # hosts and on an AI Foundry resource's services.ai.azure.com, classic path and v1 path.
    answer(_azure_completion)
    azure = llmspend.wrap(openai.AzureOpenAI(azure_endpoint=f"http://{host}", api_version="2024-10-21", api_key=AZURE_KEY,
                                             http_client=_sync_http(server)), tracer_provider=spans.provider)
    v1 = llmspend.wrap(openai.OpenAI(base_url=f"http://{host}/openai/v1/", api_key=AZURE_KEY, http_client=_sync_http(server)),
                       tracer_provider=spans.provider)
    azure.chat.completions.create(model="prod-chat", messages=[{"role": "user", "content": "hi"}])
    v1.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert [r.path.split("/", 3)[3] for r in server.requests] == [
        "openai/deployments/prod-chat/chat/completions", "openai/v1/chat/completions"]
    assert server.requests[0].headers["api-key"] == AZURE_KEY
    for a in (spans.attrs(0), spans.attrs(1)):
        assert a["gen_ai.provider.name"] == "azure.ai.openai"
        assert a["llmspend.cost.usd"] == pytest.approx(_usd("gpt-4o", "openai"))


def test_azure_ai_model_inference_is_named_apart(server: FakeLLMServer, spans: Spans, answer: Any) -> None:
    # A Foundry resource's /models route serves other vendors' models (the Azure AI Model
    # Inference API): not Azure OpenAI.
    answer(lambda request: FakeResponse.json(_completion("DeepSeek-R1", USAGE)))
    client = llmspend.wrap(openai.OpenAI(base_url="http://myproject.services.ai.azure.com/models", api_key=AZURE_KEY,
                                         http_client=_sync_http(server)), tracer_provider=spans.provider)
    client.chat.completions.create(model="DeepSeek-R1", messages=[{"role": "user", "content": "hi"}])
    a = spans.attrs()
    assert a["gen_ai.provider.name"] == "azure.ai.inference"
    assert a["llmspend.cost.status"] == "unknown_model" and "llmspend.cost.usd" not in a


# -- costs the provider reports --------------------------------------------------------------

def _openrouter_stream(model: str, usage: dict[str, Any]) -> Callable[[FakeRequest], FakeResponse]:
    # OpenRouter always ends a stream with a usage chunk, asked for or not
    return lambda request: FakeResponse.events([_chunk(model, _delta("hi")), _chunk(model, FINISH),
                                                _chunk(model, [], usage=usage), "data: [DONE]\n\n"])


OPENROUTER = "http://openrouter.ai/api/v1"


@pytest.mark.parametrize("stream", [False, True])
def test_openrouter_cost_is_the_one_it_reports(server: FakeLLMServer, spans: Spans, answer: Any, stream: bool) -> None:
    # OpenRouter routes an open model to whichever host it picks, at that host's price, and
    # says what it charged in usage.cost (its credits are USD). A table row for the same model
    # name on another host (Groq's) is not that price.
    model = "meta-llama/llama-4-scout-17b-16e-instruct"
    usage = {**USAGE, "cost": 0.000113, "is_byok": False, "cost_details": {"upstream_inference_cost": None}}
    answer(_openrouter_stream(model, usage) if stream else lambda request: FakeResponse.json(_completion(model, usage)))
    client = llmspend.wrap(openai.OpenAI(base_url=OPENROUTER, api_key="sk-or-v1-SECRET0123456789",
                                         http_client=_sync_http(server)), tracer_provider=spans.provider)
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=stream)
    if stream:
        list(r)  # type: ignore[call-overload]
    a = spans.attrs()
    assert a["gen_ai.provider.name"] == "openrouter"
    assert PriceTable.default().lookup(model, provider="openrouter") is not None  # a row the call is not priced from
    assert a["llmspend.cost.status"] == "ok"
    assert a["llmspend.cost.usd"] == pytest.approx(0.000113)
    assert a["llmspend.cost.reported"] is True
    assert "llmspend.cost.input_usd" not in a  # no parts: the provider gives none


def test_openrouter_byok_cost_adds_what_the_upstream_provider_billed(server: FakeLLMServer, spans: Spans, answer: Any) -> None:
    # With the user's own provider key, usage.cost is OpenRouter's fee and
    # cost_details.upstream_inference_cost what the provider billed that key: both are spent.
    usage = {**USAGE, "cost": 0.0001, "is_byok": True, "cost_details": {"upstream_inference_cost": 0.002}}
    answer(lambda request: FakeResponse.json(_completion("openai/gpt-4o", usage)))
    client = llmspend.wrap(openai.OpenAI(base_url=OPENROUTER, api_key="sk-or-v1-SECRET0123456789",
                                         http_client=_sync_http(server)), tracer_provider=spans.provider)
    client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert spans.attrs()["llmspend.cost.usd"] == pytest.approx(0.0021)


def test_perplexity_cost_includes_its_request_fee(server: FakeLLMServer, spans: Spans, answer: Any) -> None:
    # Perplexity bills a search fee per request on top of tokens and reports the whole in
    # usage.cost.total_cost (USD); no table row prices its models.
    cost = {"input_tokens_cost": 0.001, "output_tokens_cost": 0.0001, "request_cost": 0.005, "total_cost": 0.0061}
    answer(lambda request: FakeResponse.json(_completion("sonar", {**USAGE, "search_context_size": "low", "cost": cost})))
    client = llmspend.wrap(openai.OpenAI(base_url="http://api.perplexity.ai", api_key="pplx-SECRET0123456789",
                                         http_client=_sync_http(server)), tracer_provider=spans.provider)
    client.chat.completions.create(model="sonar", messages=[{"role": "user", "content": "hi"}])
    a = spans.attrs()
    assert a["gen_ai.provider.name"] == "perplexity"
    assert a["llmspend.cost.status"] == "ok" and a["llmspend.cost.usd"] == pytest.approx(0.0061)


@pytest.mark.parametrize("cost", ["0.01", -1, None, {"total_cost": "n/a"}, True, float("inf"),
                                  # each an amount, their sum none (before: an infinite cost, status ok)
                                  {"cost": 1e308, "cost_details": {"upstream_inference_cost": 1e308}}])
def test_a_reported_cost_that_is_no_amount_is_ignored(server: FakeLLMServer, spans: Spans, answer: Any, cost: Any) -> None:
    # OpenRouter's (a server whose usage.cost is taken as the bill): the table prices the call
    fields = cost if isinstance(cost, dict) and "cost" in cost else {"cost": cost}
    answer(lambda request: FakeResponse.json(_completion("gpt-4o", {**USAGE, **fields})))
    client = llmspend.wrap(openai.OpenAI(base_url=OPENROUTER, api_key="sk-or-v1-SECRET0123456789",
                                         http_client=_sync_http(server)), tracer_provider=spans.provider)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    a = spans.attrs()
    assert a["llmspend.cost.usd"] == pytest.approx(_usd("gpt-4o", "openai")) and "llmspend.cost.reported" not in a


@pytest.mark.parametrize("base_url", ["http://api.openai.com/v1", "http://llm-gateway.internal:4000/v1"])
def test_a_cost_reported_by_another_server_is_not_taken_as_the_bill(server: FakeLLMServer, spans: Spans,
                                                                    answer: Any, base_url: str) -> None:
    # Only OpenRouter and Perplexity are known to state their bill in dollars; a gateway's
    # usage.cost may be credits, cents or its own estimate: the call is priced from the table.
    answer(lambda request: FakeResponse.json(_completion("gpt-4o", {**USAGE, "cost": 42.0})))
    client = llmspend.wrap(openai.OpenAI(base_url=base_url, api_key="sk-SECRET0123456789",
                                         http_client=_sync_http(server)), tracer_provider=spans.provider)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    a = spans.attrs()
    assert a["llmspend.cost.usd"] == pytest.approx(_usd("gpt-4o", "openai")) and "llmspend.cost.reported" not in a


# -- usage where each server puts it ---------------------------------------------------------

def test_groq_stream_usage_is_read_from_x_groq(server: FakeLLMServer, spans: Spans, answer: Any) -> None:
    # Groq puts a stream's usage in its own x_groq object on the last chunk, asked for or not:
    # an adapter told not to ask for usage (add_stream_usage=False) still has the exact count.
    from llmspend.providers.openai import OpenAIAdapter

    model = "llama-3.3-70b-versatile"
    answer(lambda request: FakeResponse.events([
        _chunk(model, _delta("hi"), x_groq={"id": "req_1"}),
        _chunk(model, FINISH, x_groq={"id": "req_1", "usage": {**USAGE, "queue_time": 0.01, "total_time": 0.2}}),
        "data: [DONE]\n\n"]))
    client = llmspend.wrap(openai.OpenAI(base_url="http://api.groq.com/openai/v1", api_key="gsk_SECRET0123456789",
                                         http_client=_sync_http(server)),
                           tracer_provider=spans.provider, provider=OpenAIAdapter(add_stream_usage=False))
    list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "stream_options" not in server.requests[-1].json()
    a = spans.attrs()
    assert a["gen_ai.provider.name"] == "groq"
    assert a["gen_ai.usage.input_tokens"] == 1000 and a["gen_ai.usage.output_tokens"] == 100
    assert a["llmspend.cost.status"] == "ok" and a["llmspend.cost.estimated"] is False
    assert a["llmspend.cost.usd"] == pytest.approx(_usd(model, "groq"))


# -- self-hosted servers ---------------------------------------------------------------------

@pytest.mark.parametrize("prices", [None, {"llama3.2:3b": {"input": 0.05, "output": 0.2}}])
def test_a_self_hosted_model_is_unknown_until_priced(server: FakeLLMServer, spans: Spans, answer: Any,
                                                     prices: dict[str, Any] | None) -> None:
    answer(lambda request: FakeResponse.json(_completion("llama3.2:3b", USAGE)))
    client = llmspend.wrap(openai.OpenAI(base_url="http://localhost:11434/v1", api_key="ollama",
                                         http_client=_sync_http(server)), tracer_provider=spans.provider, prices=prices)
    client.chat.completions.create(model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}])
    a = spans.attrs()
    assert a["gen_ai.provider.name"] == "openai" and a["server.port"] == 11434
    if prices is None:
        assert a["llmspend.cost.status"] == "unknown_model" and "llmspend.cost.usd" not in a
    else:
        assert a["llmspend.cost.status"] == "ok"
        assert a["llmspend.cost.usd"] == pytest.approx((1000 * 0.05 + 100 * 0.2) / 1e6)
