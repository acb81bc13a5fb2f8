"""Streamed Messages: usage from message_start and message_delta, the caller's bytes untouched,
streams stopped early or broken mid-way still priced (input exact, output estimated)."""

from __future__ import annotations

import anthropic
import pytest
from helpers_anthropic import MODEL, Spans, async_client, price, sync_client

from llmspend.pricing.table import ModelPrice
from llmspend.testing import FakeLLMServer
from llmspend_anthropic.testing import FakeAnthropicAPI

LONG = [{"role": "user", "content": "Tell me everything about refunds."}]
CACHED_SYSTEM = [{"type": "text", "text": "Refund policy: thirty days, original payment method. " * 120,
                  "cache_control": {"type": "ephemeral"}}]


def _exact(attrs: dict[str, object], usage: anthropic.types.Usage, row: ModelPrice) -> None:
    read, write = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
    assert attrs["gen_ai.usage.input_tokens"] == usage.input_tokens + read + write
    assert attrs["gen_ai.usage.output_tokens"] == usage.output_tokens
    assert attrs["llmspend.cost.status"] == "ok"
    assert attrs["llmspend.stream.complete"] is True
    assert attrs["llmspend.cost.usd"] == pytest.approx(
        price(row, uncached=usage.input_tokens, write_5m=write, read=read, output=usage.output_tokens), rel=1e-12)


def test_stream_costs_what_the_same_call_costs_unstreamed(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = sync_client(server, spans)
    plain = client.messages.create(model=MODEL, max_tokens=300, system=CACHED_SYSTEM, messages=LONG)
    api.reset()  # the streamed call writes the cache again, as the first did
    spans.clear()
    with client.messages.stream(model=MODEL, max_tokens=300, system=CACHED_SYSTEM, messages=LONG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text  # type: ignore[union-attr]  # every byte reached the caller
    assert final.usage.cache_creation_input_tokens == plain.usage.cache_creation_input_tokens > 0
    span = spans.one()
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attrs["gen_ai.response.time_to_first_chunk"] > 0
    _exact(attrs, final.usage, row)
    assert attrs["llmspend.cost.usd"] == pytest.approx(price(
        row, uncached=plain.usage.input_tokens, write_5m=plain.usage.cache_creation_input_tokens or 0,
        output=plain.usage.output_tokens), rel=1e-12)


def test_raw_event_stream(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    events = list(sync_client(server, spans).messages.create(model=MODEL, max_tokens=300, messages=LONG, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    start, delta = events[0], events[-2]
    assert isinstance(start, anthropic.types.RawMessageStartEvent) and isinstance(delta, anthropic.types.RawMessageDeltaEvent)
    usage = start.message.usage.model_copy(update={"output_tokens": delta.usage.output_tokens})
    _exact(spans.attrs(), usage, row)


async def test_stream_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = async_client(server, spans)
    async with client.messages.stream(model=MODEL, max_tokens=300, messages=LONG) as stream:
        async for _ in stream.text_stream:
            pass
        final = await stream.get_final_message()
    _exact(spans.attrs(), final.usage, row)


def test_tool_use_stream(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    tool = {"name": "lookup_order", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}
    with sync_client(server, spans).messages.stream(model=MODEL, max_tokens=300, tools=[tool], messages=LONG) as stream:
        final = stream.get_final_message()
    (block,) = final.content
    assert block.type == "tool_use" and block.input  # rebuilt by the SDK from our untouched bytes
    attrs = spans.attrs()
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_use",)
    _exact(attrs, final.usage, row)


def _stopped_early(attrs: dict[str, object], start: anthropic.types.Usage, row: ModelPrice) -> None:
    assert attrs["llmspend.stream.complete"] is False
    assert attrs["llmspend.cost.status"] == "estimated" and attrs["llmspend.cost.estimated"] is True
    # input is what message_start reported, exactly; output is counted from what arrived
    assert attrs["gen_ai.usage.input_tokens"] == start.input_tokens + (start.cache_creation_input_tokens or 0)
    output = attrs["gen_ai.usage.output_tokens"]
    assert isinstance(output, int) and 0 < output
    assert attrs["llmspend.cost.usd"] == pytest.approx(price(
        row, uncached=start.input_tokens, write_5m=start.cache_creation_input_tokens or 0, output=output), rel=1e-12)


def test_stream_stopped_early(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = sync_client(server, spans)
    full = client.messages.create(model=MODEL, max_tokens=300, system=CACHED_SYSTEM, messages=LONG)
    api.reset()
    spans.clear()
    stream = client.messages.create(model=MODEL, max_tokens=300, system=CACHED_SYSTEM, messages=LONG, stream=True)
    start = None
    deltas = 0
    for event in stream:
        if event.type == "message_start":
            start = event.message.usage
        if event.type == "content_block_delta":
            deltas += 1
            if deltas == 3:
                break
    stream.close()
    assert start is not None
    attrs = spans.attrs()
    _stopped_early(attrs, start, row)
    assert attrs["gen_ai.usage.output_tokens"] < full.usage.output_tokens  # type: ignore[operator]


async def test_stream_stopped_early_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    stream = await async_client(server, spans).messages.create(model=MODEL, max_tokens=300, messages=LONG, stream=True)
    start = None
    async for event in stream:
        if event.type == "message_start":
            start = event.message.usage
        if event.type == "content_block_delta":
            break
    await stream.close()
    assert start is not None
    _stopped_early(spans.attrs(), start, row)


def test_error_event_mid_stream(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    stream = sync_client(server, spans).messages.create(
        model=MODEL, max_tokens=300, messages=LONG, stream=True, extra_headers={"x-fake-stream-error": "1"})
    start = None
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):  # the SDK's reaction, unchanged
        for event in stream:
            if event.type == "message_start":
                start = event.message.usage
    assert start is not None
    attrs = spans.attrs()
    _stopped_early(attrs, start, row)
    assert attrs["error.type"] == "overloaded_error"  # the API's error type, as the SDK's own span says
    assert spans.one().status.status_code.name == "ERROR"


def _streamed_text(events: object) -> str:
    return "".join(getattr(getattr(e, "delta", None), "text", None) or "" for e in events)  # type: ignore[attr-defined]


def test_stream_without_usage_estimates_the_output_that_arrived(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                                 spans: Spans) -> None:
    """A proxy that drops usage: the stream still ends with message_delta, so the reader must
    not take that as "the output count is known" and skip the text it then has to count
    (before: 0 output tokens, the output left out of the cost)."""
    client = sync_client(server, spans)
    plain = client.messages.create(model=MODEL, max_tokens=300, messages=LONG, extra_headers={"x-fake-usage": "omit"})
    unstreamed = spans.attrs()
    assert unstreamed["gen_ai.usage.output_tokens"] > 0
    spans.clear()
    text = _streamed_text(client.messages.create(model=MODEL, max_tokens=300, messages=LONG, stream=True,
                                                 extra_headers={"x-fake-usage": "omit"}))
    assert text == plain.content[0].text  # type: ignore[union-attr]
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "estimated"
    assert attrs["gen_ai.usage.output_tokens"] == unstreamed["gen_ai.usage.output_tokens"]
    assert attrs["llmspend.cost.usd"] == pytest.approx(unstreamed["llmspend.cost.usd"], rel=1e-12)


async def test_stream_without_usage_estimates_the_output_async(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                               spans: Spans) -> None:
    client = async_client(server, spans)
    stream = await client.messages.create(model=MODEL, max_tokens=300, messages=LONG, stream=True,
                                          extra_headers={"x-fake-usage": "omit"})
    text = "".join([getattr(getattr(e, "delta", None), "text", None) or "" async for e in stream])
    attrs = spans.attrs()
    assert text and attrs["llmspend.cost.status"] == "estimated" and attrs["gen_ai.usage.output_tokens"] > 0


def test_message_delta_without_usage_does_not_make_the_placeholder_exact(server: FakeLLMServer, spans: Spans) -> None:
    """message_start's output count is a placeholder (1); a message_delta that carries no
    usage must not turn it into the exact count (before: output 1, status ok)."""
    from llmspend.testing import FakeResponse
    from llmspend_anthropic.stream import encode_events, events_from_message

    text = "thirty days from the day the parcel comes back to the warehouse"
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "stop_reason": "end_turn",
               "stop_sequence": None, "content": [{"type": "text", "text": text}],
               "usage": {"input_tokens": 12, "output_tokens": 40}}
    events = events_from_message(message)
    assert events[-2]["type"] == "message_delta"
    del events[-2]["usage"]
    server.route("POST", "/v1/messages", lambda _: FakeResponse(200, b"".join(encode_events(events)),
                                                                {"content-type": "text/event-stream"}))
    client = sync_client(server, spans)
    assert _streamed_text(client.messages.create(model=MODEL, max_tokens=300, messages=LONG, stream=True)) == text
    attrs = spans.attrs()
    assert attrs["gen_ai.usage.input_tokens"] == 12  # exact, from message_start
    assert attrs["llmspend.cost.status"] == "estimated" and attrs["gen_ai.usage.output_tokens"] > 1


@pytest.mark.parametrize(("counts", "status"), [((12.0, 40.0), "ok"), (("12", 40), "estimated")])
async def test_stream_token_counts_as_whole_floats_or_junk(server: FakeLLMServer, spans: Spans, row: ModelPrice,
                                                            counts: tuple[object, object], status: str) -> None:
    """Whole floats are counts (before: read as 0, the stream cost $0.00 with status ok); a
    count that is not one leaves the stream's cost estimated from its text, never short."""
    from llmspend.testing import FakeResponse
    from llmspend_anthropic.stream import encode_events, events_from_message

    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "stop_reason": "end_turn",
               "stop_sequence": None, "content": [{"type": "text", "text": "thirty days from the day it is back"}],
               "usage": {"input_tokens": 12, "output_tokens": 40}}
    events = events_from_message(message)
    events[0]["message"]["usage"]["input_tokens"] = events[-2]["usage"]["input_tokens"] = counts[0]
    events[-2]["usage"]["output_tokens"] = counts[1]
    server.route("POST", "/v1/messages", lambda _: FakeResponse(200, b"".join(encode_events(events)),
                                                                {"content-type": "text/event-stream"}))
    stream = await async_client(server, spans).messages.create(model=MODEL, max_tokens=300, messages=LONG, stream=True)
    assert [event async for event in stream]
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == status and attrs["llmspend.cost.usd"] > 0
    if status == "ok":
        assert attrs["llmspend.cost.usd"] == pytest.approx(price(row, uncached=12, output=40), rel=1e-12)
