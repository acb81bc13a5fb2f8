"""The Messages API through the official anthropic SDK, wrapped: plain calls, system prompts,
tools, thinking, count_tokens, missing usage and unreadable bodies, sync and async."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx2
import pytest
from helpers_anthropic import API_KEY, MODEL, Spans, async_client, price, sync_client

import llmspend
from llmspend.pricing.table import ModelPrice
from llmspend.testing import FakeLLMServer, FakeResponse
from llmspend_anthropic.testing import FakeAnthropicAPI

HI = [{"role": "user", "content": "How long does a refund take?"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _assert_exact(attrs: dict[str, object], usage: anthropic.types.Usage, row: ModelPrice) -> None:
    """The span says what the response's usage says, priced once per kind of token."""
    read = usage.cache_read_input_tokens or 0
    write = usage.cache_creation_input_tokens or 0
    assert attrs["gen_ai.usage.input_tokens"] == usage.input_tokens + read + write
    assert attrs["gen_ai.usage.output_tokens"] == usage.output_tokens
    assert attrs["llmspend.cost.status"] == "ok" and attrs["llmspend.cost.estimated"] is False
    expected = price(row, uncached=usage.input_tokens, write_5m=write, read=read, output=usage.output_tokens)
    assert attrs["llmspend.cost.usd"] == pytest.approx(expected, rel=1e-12)
    assert attrs["gen_ai.usage.cost"] == attrs["llmspend.cost.usd"]


def test_plain_call(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = sync_client(server, spans)
    assert isinstance(client, anthropic.Anthropic)  # same type, same settings
    assert client.base_url == anthropic.Anthropic(base_url=server.url, api_key=API_KEY).base_url
    message = client.messages.create(model=MODEL, max_tokens=256, stop_sequences=["###"], messages=HI)
    assert message.content[0].type == "text" and message.stop_reason == "end_turn"
    span = spans.one()
    attrs = dict(span.attributes or {})
    assert span.name == f"chat {MODEL}"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["llmspend.endpoint"] == "messages"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.request.max_tokens"] == 256
    assert attrs["gen_ai.request.stop_sequences"] == ("###",)
    assert attrs["gen_ai.response.id"] == message.id
    assert attrs["gen_ai.response.model"] == message.model != MODEL  # a dated snapshot, priced by its family
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == server.port
    assert attrs["anthropic.response.service_tier"] == "standard"
    assert "gen_ai.usage.cache_read.input_tokens" not in attrs  # nothing cached: no zero noise
    _assert_exact(attrs, message.usage, row)
    # the key went to the server, and nowhere on the span
    sent = {k.lower(): v for k, v in server.requests[-1].headers.items()}
    assert API_KEY in (sent.get("x-api-key") or sent.get("authorization") or "")
    assert API_KEY not in json.dumps({k: str(v) for k, v in attrs.items()})


async def test_plain_call_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = async_client(server, spans)
    assert isinstance(client, anthropic.AsyncAnthropic)
    message = await client.messages.create(model=MODEL, max_tokens=256, messages=HI)
    _assert_exact(spans.attrs(), message.usage, row)


def test_system_prompt_counts_as_input(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = sync_client(server, spans)
    bare = client.messages.create(model=MODEL, max_tokens=64, messages=HI)
    system = "You are the support assistant of Example Store. Be brief and precise. " * 20
    with_system = client.messages.create(model=MODEL, max_tokens=64, system=system, messages=HI)
    assert json.loads(server.requests[-1].body)["system"] == system  # sent as the SDK sent it
    assert with_system.usage.input_tokens > bare.usage.input_tokens + 200
    first, second = spans.finished()
    assert second.attributes["gen_ai.usage.input_tokens"] - first.attributes["gen_ai.usage.input_tokens"] == (  # type: ignore[index, operator]
        with_system.usage.input_tokens - bare.usage.input_tokens)
    _assert_exact(dict(second.attributes or {}), with_system.usage, row)


def test_tools_round_trip(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = sync_client(server, spans)
    first = client.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER], messages=[{"role": "user", "content": "Weather in Oslo?"}])
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and first.stop_reason == "tool_use"
    attrs = spans.attrs()
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_use",)
    _assert_exact(attrs, first.usage, row)
    spans.clear()
    answer = client.messages.create(
        model=MODEL, max_tokens=256, tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "4 C, rain"}]},
        ],
    )
    assert answer.content[0].type == "text" and answer.stop_reason == "end_turn"
    _assert_exact(spans.attrs(), answer.usage, row)


def test_thinking_tokens_are_output_priced_once(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = sync_client(server, spans)
    message = client.messages.create(model=MODEL, max_tokens=2048, thinking={"type": "adaptive"}, messages=HI)
    assert message.content[0].type == "thinking"
    details = message.usage.output_tokens_details
    assert details is not None and 0 < details.thinking_tokens < message.usage.output_tokens
    attrs = spans.attrs()
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == details.thinking_tokens
    # thinking is part of output_tokens: charged in it, not on top of it
    _assert_exact(attrs, message.usage, row)


def test_count_tokens_passes_through_unmeasured(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = sync_client(server, spans)
    counted = client.messages.count_tokens(model=MODEL, messages=HI)
    message = client.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert counted.input_tokens == message.usage.input_tokens  # the same prompt, the same count
    assert json.loads(server.requests[0].body) == {"model": MODEL, "messages": HI}  # untouched
    assert [s.name for s in spans.finished()] == [f"chat {MODEL}"]  # free: no span, no cost


async def test_count_tokens_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    counted = await async_client(server, spans).messages.count_tokens(model=MODEL, messages=HI)
    assert counted.input_tokens > 0
    assert spans.finished() == []


def test_missing_usage_is_estimated(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = sync_client(server, spans)
    message = client.messages.create(model=MODEL, max_tokens=256, messages=HI, extra_headers={"x-fake-usage": "omit"})
    assert message.content
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "estimated" and attrs["llmspend.cost.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["llmspend.cost.usd"] > 0


def test_unreadable_body_passes_through_with_unknown_cost(server: FakeLLMServer, spans: Spans) -> None:
    server.route("POST", "/v1/messages", lambda request: FakeResponse(200, b'{"id": "msg_1", "content": ', {"content-type": "application/json"}))
    client = sync_client(server, spans)
    with pytest.raises(json.JSONDecodeError):  # the SDK's own reaction to the body it got unchanged
        client.messages.create(model=MODEL, max_tokens=64, messages=HI)
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "no_usage"
    assert "llmspend.cost.usd" not in attrs  # unknown, never $0


def test_server_tool_requests_on_span(server: FakeLLMServer, spans: Spans) -> None:
    message = {
        "id": "msg_web", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": "It is sunny."}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 900, "output_tokens": 40, "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0}},
    }
    server.route("POST", "/v1/messages", lambda request: FakeResponse.json(message))
    sync_client(server, spans).messages.create(model=MODEL, max_tokens=64, messages=HI)
    attrs = spans.attrs()
    assert attrs["anthropic.usage.server_tool_use.web_search_requests"] == 2
    assert "anthropic.usage.server_tool_use.web_fetch_requests" not in attrs


# A compaction (context management, beta) reports its own tokens in usage.iterations and, as
# the API reference says, leaves them out of the top-level counts; they are billed all the same.
COMPACTED_USAGE = {
    "input_tokens": 300, "output_tokens": 80, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 100,
    "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 0},
    "iterations": [
        {"type": "compaction", "input_tokens": 150000, "output_tokens": 3000, "cache_read_input_tokens": 40000,
         "cache_creation_input_tokens": 1000, "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000}},
        {"type": "message", "input_tokens": 300, "output_tokens": 80, "cache_read_input_tokens": 2000,
         "cache_creation_input_tokens": 100},
    ],
}


def _compacted_price(row: ModelPrice) -> float:
    return (price(row, uncached=300, write_5m=100, read=2000, output=80)
            + price(row, uncached=150000, write_1h=1000, read=40000, output=3000))


def test_compaction_tokens_are_counted_and_priced(server: FakeLLMServer, spans: Spans, row: ModelPrice) -> None:
    """Before: the compaction's 194,000 tokens were left out (the cost under by most of itself)."""
    message = {"id": "msg_c", "type": "message", "role": "assistant", "model": MODEL,
               "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": COMPACTED_USAGE}
    server.route("POST", "/v1/messages", lambda request: FakeResponse.json(message))
    answer = sync_client(server, spans).beta.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert answer.usage.iterations is not None  # the SDK reads the field this test is about
    attrs = spans.attrs()
    assert attrs["gen_ai.usage.input_tokens"] == 300 + 2000 + 100 + 150000 + 40000 + 1000
    assert attrs["gen_ai.usage.output_tokens"] == 80 + 3000
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 42000
    assert attrs["llmspend.usage.cache_write_1h.input_tokens"] == 1000
    assert attrs["llmspend.cost.status"] == "ok"
    assert attrs["llmspend.cost.usd"] == pytest.approx(_compacted_price(row), rel=1e-12)


async def test_compaction_tokens_in_a_stream_async(server: FakeLLMServer, spans: Spans, row: ModelPrice) -> None:
    """Streamed, the iterations come in message_delta's cumulative usage."""
    from llmspend_anthropic.stream import encode_events, events_from_message

    top = {k: v for k, v in COMPACTED_USAGE.items() if k != "iterations"}
    message = {"id": "msg_c", "type": "message", "role": "assistant", "model": MODEL,
               "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn", "stop_sequence": None, "usage": top}
    events = events_from_message(message)
    events[-2]["usage"]["iterations"] = COMPACTED_USAGE["iterations"]
    server.route("POST", "/v1/messages", lambda _: FakeResponse(200, b"".join(encode_events(events)),
                                                                {"content-type": "text/event-stream"}))
    client = async_client(server, spans)
    async with client.beta.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        await stream.get_final_message()
    attrs = spans.attrs()
    assert attrs["gen_ai.usage.output_tokens"] == 80 + 3000 and attrs["llmspend.cost.status"] == "ok"
    assert attrs["llmspend.cost.usd"] == pytest.approx(_compacted_price(row), rel=1e-12)


@pytest.mark.parametrize("stream", [False, True])
def test_us_only_inference_is_priced_at_its_rate(server: FakeLLMServer, spans: Spans, stream: bool) -> None:
    """usage.inference_geo "us" on Claude Opus 4.6: every token at 1.1x (before: standard)."""
    from llmspend.pricing.table import coerce_prices
    from llmspend_anthropic.stream import encode_events, events_from_message

    model = "claude-opus-4-6"
    row = coerce_prices(None).lookup(model, provider="anthropic")
    assert row is not None
    usage = {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 0}
    for geo, factor in (("us", 1.1), ("global", 1.0)):
        message = {"id": "msg_g", "type": "message", "role": "assistant", "model": model,
                   "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {**usage, "inference_geo": geo}}
        body = b"".join(encode_events(events_from_message(message)))
        server.route("POST", "/v1/messages", lambda _, m=message, b=body: FakeResponse(
            200, b, {"content-type": "text/event-stream"}) if stream else FakeResponse.json(m))
        client = sync_client(server, spans)
        if stream:
            with client.messages.stream(model=model, max_tokens=64, messages=HI) as events:
                assert events.get_final_message().usage.inference_geo == geo
        else:
            assert client.messages.create(model=model, max_tokens=64, messages=HI).usage.inference_geo == geo
        attrs = spans.attrs()
        spans.clear()
        assert attrs["anthropic.response.inference_geo"] == geo
        assert attrs["llmspend.cost.usd"] == pytest.approx(
            factor * price(row, uncached=1000, read=500, output=200), rel=1e-12)


def test_plain_httpx2_client_is_read_by_the_plugin(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    """Without an SDK, every installed adapter is asked; /v1/messages is the plugin's."""
    http = llmspend.wrap(httpx2.Client(base_url=server.url), tracer_provider=spans.provider)
    response = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 64, "messages": HI},
                         headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"})
    usage = anthropic.types.Usage.model_validate(response.json()["usage"])
    attrs = spans.attrs()
    assert attrs["gen_ai.provider.name"] == "anthropic"
    _assert_exact(attrs, usage, row)


@pytest.mark.parametrize("stream", [False, True])
def test_content_capture_is_opt_in(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, stream: bool) -> None:
    system = "You are the support desk."
    quiet = sync_client(server, spans)
    loud = sync_client(server, spans, capture_content=True)
    for client in (quiet, loud):
        if stream:
            with client.messages.stream(model=MODEL, max_tokens=64, system=system, messages=HI) as events:
                text = events.get_final_text()
        else:
            text = client.messages.create(model=MODEL, max_tokens=64, system=system, messages=HI).content[0].text  # type: ignore[union-attr]
    off, on = (dict(s.attributes or {}) for s in spans.finished())
    assert "gen_ai.input.messages" not in off and "gen_ai.output.messages" not in off
    # the top-level system is given apart from the conversation: the conventions' system instructions
    assert json.loads(on["gen_ai.system_instructions"]) == [{"type": "text", "content": system}]
    assert json.loads(on["gen_ai.input.messages"]) == [{"role": "user", "parts": [{"type": "text", "content": HI[0]["content"]}]}]
    assert json.loads(on["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "end_turn"}]


@pytest.mark.parametrize("stream", [False, True])
async def test_captured_tool_use_and_results_are_tool_parts(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                           stream: bool) -> None:
    """System blocks, a tool_use turn, its tool_result and thinking, in the conventions' parts;
    the answer's tool_use a tool_call part, streamed or not (async: the same recorder)."""
    client = async_client(server, spans, capture_content=True)
    system = [{"type": "text", "text": "You are a weather desk."}, {"type": "text", "text": "Use the tool."}]
    history = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "Call the tool.", "signature": "sig"},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "4 C, rain"}]}]},
        {"role": "assistant", "content": "4 C and rain."},
        {"role": "user", "content": [{"type": "text", "text": "And in Bergen?"}]},
    ]
    body = {"model": MODEL, "max_tokens": 256, "system": system, "tools": [WEATHER], "messages": history}
    if stream:
        async with client.messages.stream(**body) as events:
            answer = await events.get_final_message()
    else:
        answer = await client.messages.create(**body)
    (call,) = [b for b in answer.content if b.type == "tool_use"]
    attrs = spans.attrs()
    assert json.loads(attrs["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You are a weather desk."}, {"type": "text", "content": "Use the tool."}]
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]},
        {"role": "assistant", "parts": [{"type": "reasoning", "content": "Call the tool."},
                                        {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Oslo"}}]},
        {"role": "user", "parts": [{"type": "tool_call_response", "id": "toolu_1", "response": "4 C, rain"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "4 C and rain."}]},
        {"role": "user", "parts": [{"type": "text", "content": "And in Bergen?"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [{"role": "assistant", "finish_reason": "tool_use", "parts": [
        {"type": "tool_call", "id": call.id, "name": "get_weather", "arguments": call.input}]}]


def _answer_with_usage(server: FakeLLMServer, usage: dict[str, object]) -> None:
    message = {"id": "msg_u", "type": "message", "role": "assistant", "model": MODEL,
               "content": [{"type": "text", "text": "Five days."}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": usage}
    server.route("POST", "/v1/messages", lambda request: FakeResponse.json(message))


@pytest.mark.parametrize("is_async", [False, True])
def test_token_counts_written_as_whole_floats_are_read(server: FakeLLMServer, spans: Spans, row: ModelPrice,
                                                       is_async: bool) -> None:
    """A gateway that keeps numbers as doubles writes 900.0. Before, each such count was read
    as 0: the call was priced at $0.00 with status ok."""
    _answer_with_usage(server, {"input_tokens": 900.0, "output_tokens": 40.0, "cache_read_input_tokens": 100.0,
                                "cache_creation_input_tokens": 0.0})
    if is_async:
        asyncio.run(async_client(server, spans).messages.create(model=MODEL, max_tokens=64, messages=HI))
    else:
        sync_client(server, spans).messages.create(model=MODEL, max_tokens=64, messages=HI)
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "ok"
    assert attrs["gen_ai.usage.input_tokens"] == 1000 and attrs["gen_ai.usage.output_tokens"] == 40
    assert attrs["llmspend.cost.usd"] == pytest.approx(price(row, uncached=900, read=100, output=40), rel=1e-12)


@pytest.mark.parametrize("bad", ["900", -900, 900.5, True])
def test_a_token_count_that_is_not_one_makes_the_cost_unknown(server: FakeLLMServer, spans: Spans, bad: object) -> None:
    """Before, a count that was not a whole number >= 0 was read as 0 and the call priced short
    (the others' tokens only) with status ok; the caller still gets the answer unchanged."""
    _answer_with_usage(server, {"input_tokens": 900, "output_tokens": 40, "cache_read_input_tokens": bad})
    message = sync_client(server, spans).messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert message.usage.input_tokens == 900
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "no_usage"
    assert "llmspend.cost.usd" not in attrs
