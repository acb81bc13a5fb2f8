"""The OpenAI-compatible adapter through the official SDK: every endpoint it reads."""

from __future__ import annotations

import json
import logging

import openai
import pytest

import llmspend
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Spans

SYSTEM = {"role": "system", "content": "You are terse."}
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]


@pytest.fixture
def client(server: FakeLLMServer, spans: Spans) -> openai.OpenAI:
    return llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)


def test_chat_attributes(client: openai.OpenAI, spans: Spans, server: FakeLLMServer) -> None:
    r = client.chat.completions.create(
        model="gpt-4o", messages=[SYSTEM, {"role": "user", "content": "hi"}],
        temperature=0.2, top_p=0.9, max_tokens=50, seed=7, stop=["\n\n"], frequency_penalty=0.1, presence_penalty=0.2,
    )
    span = spans.one()
    a = dict(span.attributes or {})
    assert span.name == "chat gpt-4o"
    assert span.kind.name == "CLIENT"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == server.port
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 50 and a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.stop_sequences"] == ("\n\n",)
    assert a["gen_ai.request.frequency_penalty"] == 0.1 and a["gen_ai.request.presence_penalty"] == 0.2
    assert a["gen_ai.response.id"] == r.id
    assert a["gen_ai.response.model"] == r.model == "gpt-4o-2024-08-06"
    assert a["gen_ai.response.finish_reasons"] == (r.choices[0].finish_reason,)
    assert a["gen_ai.usage.input_tokens"] == r.usage.prompt_tokens  # type: ignore[union-attr]
    assert a["gen_ai.usage.output_tokens"] == r.usage.completion_tokens  # type: ignore[union-attr]


def test_tools_and_n_choices(client: openai.OpenAI, spans: Spans) -> None:
    r = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "where is order 7?"}], tools=TOOLS, n=3,  # type: ignore[arg-type]
    )
    assert len(r.choices) == 3 and r.choices[0].message.tool_calls
    a = spans.attrs()
    assert a["gen_ai.request.choice.count"] == 3
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",) * 3
    assert a["gen_ai.usage.output_tokens"] == r.usage.completion_tokens  # type: ignore[union-attr]


def test_json_mode(client: openai.OpenAI, spans: Spans) -> None:
    r = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "json please"}], response_format={"type": "json_object"},
    )
    assert json.loads(r.choices[0].message.content or "")["answer"]
    assert spans.attrs()["gen_ai.output.type"] == "json"


def test_legacy_completions(client: openai.OpenAI, spans: Spans) -> None:
    r = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=5)
    a = spans.attrs()
    assert spans.one().name == "text_completion gpt-3.5-turbo-instruct"
    assert a["gen_ai.operation.name"] == "text_completion"
    assert a["gen_ai.usage.input_tokens"] == r.usage.prompt_tokens  # type: ignore[union-attr]
    # $1.50 in / $2.00 out per million, from the model's page
    usd = r.usage.prompt_tokens * 1.5e-6 + r.usage.completion_tokens * 2.0e-6  # type: ignore[union-attr]
    assert a["llmspend.cost.status"] == "ok" and a["llmspend.cost.usd"] == pytest.approx(usd)


def test_embeddings(client: openai.OpenAI, spans: Spans) -> None:
    r = client.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
    a = spans.attrs()
    assert spans.one().name == "embeddings text-embedding-3-small"
    assert a["gen_ai.usage.input_tokens"] == r.usage.prompt_tokens
    assert a["llmspend.cost.usd"] == pytest.approx(r.usage.prompt_tokens * 0.02e-6)


def test_responses_api(client: openai.OpenAI, spans: Spans) -> None:
    r = client.responses.create(model="o3-mini", instructions="be brief", input="hello there")
    a = spans.attrs()
    assert a["llmspend.endpoint"] == "responses"
    assert a["gen_ai.response.id"] == r.id
    assert a["gen_ai.usage.input_tokens"] == r.usage.input_tokens  # type: ignore[union-attr]
    assert a["gen_ai.usage.output_tokens"] == r.usage.output_tokens  # type: ignore[union-attr]
    assert a["gen_ai.usage.reasoning.output_tokens"] == r.usage.output_tokens_details.reasoning_tokens > 0  # type: ignore[union-attr]


def test_responses_api_streaming(client: openai.OpenAI, spans: Spans) -> None:
    events = list(client.responses.create(model="gpt-4o", input="hello there", stream=True))
    completed = [e for e in events if e.type == "response.completed"][0]
    a = spans.attrs()
    assert a["gen_ai.usage.output_tokens"] == completed.response.usage.output_tokens  # type: ignore[union-attr]
    assert a["llmspend.stream.complete"] is True and a["llmspend.cost.estimated"] is False


def test_malformed_response_passes_through_with_one_warning(
    client: openai.OpenAI, spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    from llmspend.telemetry import recorder

    recorder._warned.clear()
    raw = []
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        for _ in range(2):
            response = client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}], extra_headers={"x-fake-malformed": "1"},
            )
            raw.append(response.http_response.content)
    # the caller gets exactly what the server sent
    assert raw == [b'{"id": "chatcmpl-broken", "choices": ['] * 2
    assert len([r for r in caplog.records if "could not read" in r.getMessage()]) == 1
    a = spans.attrs()
    assert a["llmspend.cost.status"] == "no_usage"
    assert "llmspend.cost.usd" not in a and "gen_ai.usage.cost" not in a


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("usage", [
    {"total_tokens": 120},  # no input count at all
    {"prompt_tokens": "100", "completion_tokens": 20, "total_tokens": 120},
    {"prompt_tokens": 100, "completion_tokens": -20, "total_tokens": 80},
    {"prompt_tokens": 100.5, "completion_tokens": 20, "total_tokens": 120.5},
])
def test_usage_without_readable_counts_is_never_zero(server: FakeLLMServer, spans: Spans, usage: dict[str, object], stream: bool) -> None:
    # Before, a count that was missing, a string or negative was read as 0 (or taken as is):
    # the call was priced $0 (or less than nothing) with status "ok".
    from llmspend.testing import FakeResponse

    answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
              "usage": usage}
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
             "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
    server.route("POST", "/v1/chat/completions", lambda request: FakeResponse.events(
        [chunk, {**chunk, "choices": [], "usage": usage}, "data: [DONE]\n\n"]) if stream else FakeResponse.json(answer))
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    if stream:
        assert [c.choices[0].delta.content for c in client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True)] == ["hi"]
    else:
        assert client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}]).id == "c1"
    a = spans.attrs()
    # no number from a usage that says none: unknown, or a local count marked as an estimate
    assert a["llmspend.cost.status"] in ("no_usage", "estimated")
    if "llmspend.cost.usd" in a:
        assert a["llmspend.cost.estimated"] is True and a["llmspend.cost.usd"] > 0


def test_provider_name_follows_the_host_or_the_option(server: FakeLLMServer, spans: Spans) -> None:
    from llmspend.providers.openai import provider_for_host

    assert provider_for_host("api.groq.com") == "groq"
    assert provider_for_host("myres.openai.azure.com") == "azure.ai.openai"
    assert provider_for_host("localhost") == "openai"
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider, provider="together")
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert spans.attrs()["gen_ai.provider.name"] == "together"
