"""Prompt caching with cache_control: a write, then a read, each kind of token priced once at
its own rate (5-minute and 1-hour writes apart). Peers charge cache writes twice (as input and
again as writes); the last test pins that this never happens here."""

from __future__ import annotations

from typing import Any

import pytest
from helpers_anthropic import MODEL, Spans, async_client, price, sync_client

from llmspend.pricing.table import ModelPrice
from llmspend.testing import FakeLLMServer
from llmspend_anthropic.testing import FakeAnthropicAPI

POLICY = "Refunds go back to the original payment method within five to seven business days. " * 90
TOOLS = [{"name": "lookup_order", "description": "Find an order by number",
          "input_schema": {"type": "object", "properties": {"number": {"type": "string"}}}}]


def _system(ttl: str | None = None) -> list[dict[str, Any]]:
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        control["ttl"] = ttl
    return [{"type": "text", "text": POLICY, "cache_control": control}]


def _ask(question: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": question}]


@pytest.mark.parametrize("ttl", [None, "5m", "1h"])
def test_write_then_read(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice, ttl: str | None) -> None:
    client = sync_client(server, spans)
    first = client.messages.create(model=MODEL, max_tokens=200, system=_system(ttl), messages=_ask("Refund time?"))
    second = client.messages.create(model=MODEL, max_tokens=200, system=_system(ttl), messages=_ask("And for gifts?"))
    written = first.usage.cache_creation_input_tokens or 0
    assert written > 1000 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == written and second.usage.cache_creation_input_tokens == 0
    one_hour = ttl == "1h"
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == (written if one_hour else 0)

    write_span, read_span = (dict(s.attributes or {}) for s in spans.finished())
    total_in = first.usage.input_tokens + written
    assert write_span["gen_ai.usage.input_tokens"] == total_in  # all input, the write included
    assert write_span["gen_ai.usage.cache_creation.input_tokens"] == written
    assert write_span["gen_ai.usage.cache_write.input_tokens"] == written  # the renamed convention, same count
    assert write_span.get("llmspend.usage.cache_write_1h.input_tokens", 0) == (written if one_hour else 0)
    assert "gen_ai.usage.cache_read.input_tokens" not in write_span
    expected_write = price(row, uncached=first.usage.input_tokens, output=first.usage.output_tokens,
                           **({"write_1h": written} if one_hour else {"write_5m": written}))
    assert write_span["llmspend.cost.usd"] == pytest.approx(expected_write, rel=1e-12)
    rate = row.cache_write_1h if one_hour else row.cache_write
    assert rate is not None
    assert write_span["llmspend.cost.cache_write_usd"] == pytest.approx(written * rate / 1e6, rel=1e-12)
    assert write_span["llmspend.cost.input_usd"] == pytest.approx(first.usage.input_tokens * row.input / 1e6, rel=1e-12)

    assert read_span["gen_ai.usage.input_tokens"] == second.usage.input_tokens + written
    assert read_span["gen_ai.usage.cache_read.input_tokens"] == written
    assert "gen_ai.usage.cache_creation.input_tokens" not in read_span
    expected_read = price(row, uncached=second.usage.input_tokens, read=written, output=second.usage.output_tokens)
    assert read_span["llmspend.cost.usd"] == pytest.approx(expected_read, rel=1e-12)
    assert read_span["llmspend.cost.usd"] < write_span["llmspend.cost.usd"] / 3  # what caching is for


async def test_write_then_read_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = async_client(server, spans)
    first = await client.messages.create(model=MODEL, max_tokens=200, system=_system(), messages=_ask("Refund time?"))
    second = await client.messages.create(model=MODEL, max_tokens=200, system=_system(), messages=_ask("Refund time?"))
    written = first.usage.cache_creation_input_tokens or 0
    assert second.usage.cache_read_input_tokens == written > 0
    costs = [s.attributes["llmspend.cost.usd"] for s in spans.finished()]  # type: ignore[index]
    assert costs == [
        pytest.approx(price(row, uncached=first.usage.input_tokens, write_5m=written, output=first.usage.output_tokens), rel=1e-12),
        pytest.approx(price(row, uncached=second.usage.input_tokens, read=written, output=second.usage.output_tokens), rel=1e-12),
    ]


def test_mixed_lifetimes_and_tools(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    """A 1-hour breakpoint on the tools, a 5-minute one on the system prompt: both written in
    one call, each part at its own rate; the next call reads both."""
    tools = [{**TOOLS[0], "description": TOOLS[0]["description"] + " " + "order lookup " * 700,
              "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    client = sync_client(server, spans)
    first = client.messages.create(model=MODEL, max_tokens=200, tools=tools, system=_system("5m"), messages=_ask("Where is 1182?"))
    breakdown = first.usage.cache_creation
    assert breakdown is not None and breakdown.ephemeral_1h_input_tokens > 0 and breakdown.ephemeral_5m_input_tokens > 0
    second = client.messages.create(model=MODEL, max_tokens=200, tools=tools, system=_system("5m"), messages=_ask("And 1183?"))
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    write_span, read_span = (dict(s.attributes or {}) for s in spans.finished())
    assert write_span["llmspend.usage.cache_write_1h.input_tokens"] == breakdown.ephemeral_1h_input_tokens
    assert write_span["llmspend.cost.usd"] == pytest.approx(price(
        row, uncached=first.usage.input_tokens, write_5m=breakdown.ephemeral_5m_input_tokens,
        write_1h=breakdown.ephemeral_1h_input_tokens, output=first.usage.output_tokens), rel=1e-12)
    assert read_span["llmspend.cost.usd"] == pytest.approx(price(
        row, uncached=second.usage.input_tokens, read=second.usage.cache_read_input_tokens or 0,
        output=second.usage.output_tokens), rel=1e-12)


def test_top_level_cache_control(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    """The SDK's request-level ``cache_control`` (a breakpoint on the last block) is priced the same way."""
    client = sync_client(server, spans)
    messages = _ask(POLICY + " So, how long?")
    first = client.messages.create(model=MODEL, max_tokens=100, cache_control={"type": "ephemeral"}, messages=messages)
    second = client.messages.create(model=MODEL, max_tokens=100, cache_control={"type": "ephemeral"}, messages=messages)
    assert (first.usage.cache_creation_input_tokens or 0) > 1000
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    write_span, read_span = (dict(s.attributes or {}) for s in spans.finished())
    assert write_span["llmspend.cost.cache_write_usd"] > 0 and read_span["llmspend.cost.cache_read_usd"] > 0


def test_cache_writes_are_not_charged_twice(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    first = sync_client(server, spans).messages.create(model=MODEL, max_tokens=50, system=_system(), messages=_ask("Hi"))
    written = first.usage.cache_creation_input_tokens or 0
    assert written > 0
    attrs = spans.attrs()
    assert row.cache_write is not None
    charged_twice = price(row, uncached=first.usage.input_tokens + written, write_5m=written, output=first.usage.output_tokens)
    right = price(row, uncached=first.usage.input_tokens, write_5m=written, output=first.usage.output_tokens)
    assert attrs["llmspend.cost.usd"] == pytest.approx(right, rel=1e-12)
    assert charged_twice - attrs["llmspend.cost.usd"] == pytest.approx(written * row.input / 1e6, rel=1e-9)
