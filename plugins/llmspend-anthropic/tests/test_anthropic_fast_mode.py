"""Fast mode (``speed: "fast"``) through the official anthropic SDK, wrapped: priced at the
model's fast-mode multiple when ``usage.speed`` says the fast tier served the call, at the
standard rates when it fell back, and left unknown (never the standard price) on a model whose
fast factor the price table does not have. Sync and async, streamed and not; spans through the
in-memory exporter."""

from __future__ import annotations

import json
import logging
from typing import Any

import anthropic
import pytest
from helpers_anthropic import Spans, async_client, price, sync_client

from llmspend.pricing.table import ModelPrice, coerce_prices
from llmspend.testing import FakeLLMServer, FakeResponse
from llmspend_anthropic.stream import encode_events, events_from_message
from llmspend_anthropic.testing import FakeAnthropicAPI

HI: Any = [{"role": "user", "content": "How long does a refund take?"}]
BETA = "fast-mode-2026-02-01"
OPUS_4_6 = "claude-opus-4-6"  # 6x: $30 / $150 per MTok fast


def _row(model: str) -> ModelPrice:
    row = coerce_prices(None).lookup(model, provider="anthropic")
    assert row is not None
    return row


def _standard_price(row: ModelPrice, usage: Any) -> float:
    """What the response's usage costs at the row's standard rates."""
    return price(row, uncached=usage.input_tokens, write_5m=usage.cache_creation_input_tokens or 0,
                 read=usage.cache_read_input_tokens or 0, output=usage.output_tokens)


def _create(client: anthropic.Anthropic, stream: bool, model: str = OPUS_4_6, **options: Any) -> Any:
    """One fast-mode call as the fast-mode page writes it (``client.beta.messages``, the beta
    header); the final usage."""
    if stream:
        with client.beta.messages.stream(model=model, max_tokens=64, messages=HI, speed="fast",
                                         betas=[BETA], **options) as events:
            return events.get_final_message().usage
    return client.beta.messages.create(model=model, max_tokens=64, messages=HI, speed="fast",
                                       betas=[BETA], **options).usage


@pytest.mark.parametrize("stream", [False, True])
def test_fast_mode_is_priced_at_six_times_on_opus_4_6(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                      spans: Spans, stream: bool) -> None:
    """Before: the span said the standard price, a sixth of the bill."""
    client = sync_client(server, spans)
    usage = _create(client, stream)
    sent = server.requests[-1]
    assert json.loads(sent.body)["speed"] == "fast"
    assert BETA in {k.lower(): v for k, v in sent.headers.items()}["anthropic-beta"]
    assert usage.speed == "fast"
    attrs = spans.attrs()
    assert attrs["anthropic.response.speed"] == "fast"
    assert attrs["llmspend.cost.status"] == "ok"
    assert attrs["llmspend.cost.usd"] == pytest.approx(6 * _standard_price(_row(OPUS_4_6), usage), rel=1e-12)
    assert attrs["gen_ai.usage.cost"] == attrs["llmspend.cost.usd"]


@pytest.mark.parametrize("stream", [False, True])
async def test_fast_mode_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, stream: bool) -> None:
    client = async_client(server, spans)
    model = "claude-opus-4-8"  # 2x: $10 / $50 per MTok fast
    if stream:
        async with client.beta.messages.stream(model=model, max_tokens=64, messages=HI, speed="fast",
                                               betas=[BETA]) as events:
            usage = (await events.get_final_message()).usage
    else:
        usage = (await client.beta.messages.create(model=model, max_tokens=64, messages=HI, speed="fast",
                                                   betas=[BETA])).usage
    attrs = spans.attrs()
    assert usage.speed == attrs["anthropic.response.speed"] == "fast"
    assert attrs["llmspend.cost.usd"] == pytest.approx(2 * _standard_price(_row(model), usage), rel=1e-12)


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_that_fell_back_is_priced_at_standard_rates(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                              spans: Spans, stream: bool) -> None:
    """The API bills the speed that served the call, not the one asked for: usage.speed says it."""
    client = sync_client(server, spans)
    usage = _create(client, stream, extra_headers={"x-fake-speed": "standard"})
    assert json.loads(server.requests[-1].body)["speed"] == "fast" and usage.speed == "standard"
    attrs = spans.attrs()
    assert attrs["anthropic.response.speed"] == "standard"
    assert attrs["llmspend.cost.usd"] == pytest.approx(_standard_price(_row(OPUS_4_6), usage), rel=1e-12)


@pytest.mark.parametrize("stream", [False, True])
def test_fast_mode_stacks_with_cache_reads_writes_and_us_only_inference(server: FakeLLMServer, spans: Spans,
                                                                         stream: bool) -> None:
    """Prompt-caching and data-residency multipliers apply on top of the fast rates: every part
    of a fast, US-only call with cache reads and 5-minute and 1-hour writes, at 2 x 1.1 on Opus 4.8."""
    model = "claude-opus-4-8"
    usage = {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 3000,
             "cache_creation_input_tokens": 1500,
             "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 500},
             "inference_geo": "us", "speed": "fast", "service_tier": "standard"}
    message = {"id": "msg_fast", "type": "message", "role": "assistant", "model": model,
               "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": usage}
    body = b"".join(encode_events(events_from_message(message)))
    server.route("POST", "/v1/messages", lambda _: FakeResponse(200, body, {"content-type": "text/event-stream"})
                 if stream else FakeResponse.json(message))
    answered = _create(sync_client(server, spans), stream, model=model)
    assert (answered.speed, answered.inference_geo) == ("fast", "us")
    attrs = spans.attrs()
    assert (attrs["anthropic.response.speed"], attrs["anthropic.response.inference_geo"]) == ("fast", "us")
    assert attrs["gen_ai.usage.input_tokens"] == 1000 + 3000 + 1500
    row = _row(model)
    assert attrs["llmspend.cost.usd"] == pytest.approx(
        2 * 1.1 * price(row, uncached=1000, read=3000, write_5m=1000, write_1h=500, output=200), rel=1e-12)
    assert attrs["llmspend.cost.cache_read_usd"] == pytest.approx(2 * 1.1 * 3000 * row.cache_read / 1e6, rel=1e-12)  # type: ignore[operator]


def test_fast_mode_on_a_model_without_a_known_factor_has_no_cost(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                                 spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    """No fast-mode price in the table: the span reports the tokens but no cost, and says why,
    with one warning that says how to add the factor (never the standard price)."""
    client = sync_client(server, spans)
    model = "claude-opus-4-1"  # fast mode was never offered on it: the table has no factor
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        for stream in (False, True):
            usage = _create(client, stream, model=model)
            assert usage.speed == "fast"
            attrs = spans.attrs()
            spans.clear()
            assert attrs["llmspend.cost.status"] == "unknown_speed"
            assert "llmspend.cost.usd" not in attrs and "gen_ai.usage.cost" not in attrs
            assert attrs["gen_ai.usage.output_tokens"] == usage.output_tokens
            assert attrs["anthropic.response.speed"] == "fast"
    warnings = [r.getMessage() for r in caplog.records if "speed_multipliers" in r.getMessage()]
    assert len(warnings) == 1 and repr(model) in warnings[0] and "'fast'" in warnings[0]
    # with a factor of the user's own, the same call is priced
    client = sync_client(server, spans, prices={model: {"speed_multipliers": {"fast": 3}}})
    usage = _create(client, False, model=model)
    assert spans.attrs()["llmspend.cost.usd"] == pytest.approx(3 * _standard_price(_row(model), usage), rel=1e-12)


@pytest.mark.parametrize("is_async", [False, True])
def test_a_budget_bounds_a_fast_us_only_request_at_its_price(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                             spans: Spans, is_async: bool) -> None:
    """The bill is fast x US-only (6 x 1.1 on Opus 4.6); before, the bound left the geography
    out, so a budget reserved less than a long answer could cost."""
    import asyncio

    import llmspend
    from llmspend.ledger import MemoryLedger

    def spend(geo: dict[str, str]) -> dict[str, Any]:
        with llmspend.track("fast-geo", budget_usd=10, period="day", ledger=MemoryLedger()):
            if is_async:
                asyncio.run(async_client(server, spans).beta.messages.create(
                    model=OPUS_4_6, max_tokens=64, messages=HI, speed="fast", betas=[BETA], extra_body=geo))
            else:
                sync_client(server, spans).beta.messages.create(
                    model=OPUS_4_6, max_tokens=64, messages=HI, speed="fast", betas=[BETA], extra_body=geo)
        attrs = spans.attrs()
        spans.clear()
        return attrs

    fast, us = spend({}), spend({"inference_geo": "us"})
    assert us["anthropic.response.inference_geo"] == "us"
    assert us["llmspend.cost.usd"] == pytest.approx(1.1 * fast["llmspend.cost.usd"], rel=1e-12)
    assert us["llmspend.budget.reserved_usd"] == pytest.approx(1.1 * fast["llmspend.budget.reserved_usd"], rel=1e-12)
