"""Anthropic's server tools through the official anthropic SDK, wrapped: web search billed per
search on top of tokens ($10 per 1,000, platform.claude.com/docs/en/about-claude/pricing), web
fetch for tokens only, code execution (billed by container time) leaving the cost unknown
unless the request's web search or fetch version makes it free. Sync and async, streamed and
not; the cache's saving and a budget's bound include the fee. Spans through the in-memory
exporter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest
from helpers_anthropic import API_KEY, MODEL, Spans, async_client, price, sync_client

import llmspend
from llmspend.ledger import MemoryLedger
from llmspend.pricing.table import ModelPrice
from llmspend.testing import FakeLLMServer, FakeResponse
from llmspend_anthropic.stream import encode_events, events_from_message
from llmspend_anthropic.testing import FakeAnthropicAPI

ASK: Any = [{"role": "user", "content": "What changed in the refund policy this week?"}]
SEARCH = {"type": "web_search_20250305", "name": "web_search"}
FETCH = {"type": "web_fetch_20250910", "name": "web_fetch"}
CODE = {"type": "code_execution_20250825", "name": "code_execution"}
SEARCH_FILTERED = {"type": "web_search_20260209", "name": "web_search"}  # code execution free beside it


def _tokens(row: ModelPrice, usage: Any) -> float:
    return price(row, uncached=usage.input_tokens, write_5m=usage.cache_creation_input_tokens or 0,
                 read=usage.cache_read_input_tokens or 0, output=usage.output_tokens)


def _create(client: anthropic.Anthropic, stream: bool, tools: list[Any], calls: int = 1) -> Any:
    """One call; the final message."""
    options: dict[str, Any] = dict(model=MODEL, max_tokens=200, messages=ASK, tools=tools,
                                   extra_headers={"x-fake-server-tool-calls": str(calls)})
    if stream:
        with client.messages.stream(**options) as events:
            return events.get_final_message()
    return client.messages.create(**options)


def test_shipped_fees_are_the_published_ones(row: ModelPrice) -> None:
    """Web search $10 per 1,000 searches; web fetch "no additional charges beyond standard token
    costs"; code execution billed by execution time, so no fee per call."""
    assert dict(row.tool_fees) == {"web_search": 10 / 1000, "web_fetch": 0.0}
    assert "platform.claude.com/docs/en/about-claude/pricing" in row.tool_fees_source


@pytest.mark.parametrize("stream", [False, True])
def test_web_searches_are_priced_on_top_of_the_tokens(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                      row: ModelPrice, stream: bool) -> None:
    """Before: counted on the span, left out of the cost, status ok."""
    message = _create(sync_client(server, spans), stream, [SEARCH], calls=3)
    assert message.usage.server_tool_use.web_search_requests == 3
    assert [b.type for b in message.content].count("web_search_tool_result") == 3
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "ok"
    assert attrs["anthropic.usage.server_tool_use.web_search_requests"] == attrs["llmspend.usage.tool_calls.web_search"] == 3
    assert attrs["llmspend.cost.tools_usd"] == pytest.approx(3 * 10 / 1000)
    assert attrs["llmspend.cost.usd"] == pytest.approx(_tokens(row, message.usage) + 3 * 10 / 1000, rel=1e-12)
    assert attrs["gen_ai.usage.cost"] == attrs["llmspend.cost.usd"]


@pytest.mark.parametrize("stream", [False, True])
async def test_web_searches_are_priced_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                             row: ModelPrice, stream: bool) -> None:
    client = async_client(server, spans)
    options: dict[str, Any] = dict(model=MODEL, max_tokens=200, messages=ASK, tools=[SEARCH])
    if stream:
        async with client.messages.stream(**options) as events:
            message = await events.get_final_message()
    else:
        message = await client.messages.create(**options)
    attrs = spans.attrs()
    assert attrs["llmspend.cost.usd"] == pytest.approx(_tokens(row, message.usage) + 10 / 1000, rel=1e-12)


def test_a_search_over_max_uses_errors_and_is_not_billed(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                         row: ModelPrice) -> None:
    message = _create(sync_client(server, spans), False, [{**SEARCH, "max_uses": 2}], calls=3)
    errors = [b for b in message.content if b.type == "web_search_tool_result" and not isinstance(b.content, list)]
    assert len(errors) == 1 and errors[0].content.error_code == "max_uses_exceeded"
    attrs = spans.attrs()
    assert attrs["llmspend.usage.tool_calls.web_search"] == 2
    assert attrs["llmspend.cost.usd"] == pytest.approx(_tokens(row, message.usage) + 2 * 10 / 1000, rel=1e-12)


@pytest.mark.parametrize("stream", [False, True])
def test_web_fetch_costs_its_tokens_only(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                         row: ModelPrice, stream: bool) -> None:
    message = _create(sync_client(server, spans), stream, [FETCH], calls=2)
    assert message.usage.server_tool_use.web_fetch_requests == 2
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "ok" and attrs["llmspend.usage.tool_calls.web_fetch"] == 2
    assert "llmspend.cost.tools_usd" not in attrs
    assert attrs["llmspend.cost.usd"] == pytest.approx(_tokens(row, message.usage), rel=1e-12)


@pytest.mark.parametrize("stream", [False, True])
def test_code_execution_alone_leaves_the_cost_unknown(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                      stream: bool) -> None:
    """Billed by container time after an organisation's free hours: no answer says what it
    cost, so no figure is given (the tokens alone would be reported as exact)."""
    _create(sync_client(server, spans), stream, [CODE])
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "unknown_tool_fee"
    assert "llmspend.cost.usd" not in attrs and "gen_ai.usage.cost" not in attrs
    assert attrs["anthropic.usage.server_tool_use.code_execution_requests"] == 1


def test_code_execution_is_free_beside_the_filtering_web_search(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                                spans: Spans, row: ModelPrice) -> None:
    """"When web_search_20260209 or web_fetch_20260209 is included in your API request, there
    are no additional charges for code execution tool calls" (the pricing page)."""
    message = _create(sync_client(server, spans), False, [SEARCH_FILTERED, CODE])
    attrs = spans.attrs()
    assert attrs["anthropic.usage.server_tool_use.code_execution_requests"] == 1
    assert attrs["llmspend.cost.status"] == "ok" and "llmspend.usage.tool_calls.code_execution" not in attrs
    assert attrs["llmspend.cost.usd"] == pytest.approx(_tokens(row, message.usage) + 10 / 1000, rel=1e-12)


def test_a_users_fee_prices_code_execution(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    client = sync_client(server, spans, prices={MODEL: {"tool_fees": {"code_execution": 0.05 / 12}}})  # 5 minutes
    message = _create(client, False, [CODE, SEARCH])
    attrs = spans.attrs()
    assert attrs["llmspend.cost.tools_usd"] == pytest.approx(0.05 / 12 + 10 / 1000)  # the search's fee kept
    assert attrs["llmspend.cost.usd"] == pytest.approx(_tokens(row, message.usage) + 0.05 / 12 + 10 / 1000, rel=1e-12)


def test_a_stream_cut_before_its_final_usage_counts_the_searches_it_showed(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                                           spans: Spans) -> None:
    """message_start's counts are not final; the ``server_tool_use`` blocks that did arrive
    show the searches made (an estimate, as the tokens are)."""
    message = api.message({"model": MODEL, "max_tokens": 200, "messages": ASK, "tools": [SEARCH]}, server_tool_calls=2)
    events = events_from_message(message)
    start = events[0]["message"]["usage"]
    start["server_tool_use"] = {"web_search_requests": 0, "web_fetch_requests": 0}  # not final yet
    cut = [e for e in events if e["type"] not in ("message_delta", "message_stop")]
    server.route("POST", "/v1/messages", lambda _: FakeResponse(200, b"".join(encode_events(cut)),
                                                                {"content-type": "text/event-stream"}))
    client = sync_client(server, spans)
    for _ in client.messages.create(model=MODEL, max_tokens=200, messages=ASK, tools=[SEARCH], stream=True):
        pass
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "estimated"
    assert attrs["llmspend.usage.tool_calls.web_search"] == 2 and attrs["llmspend.cost.tools_usd"] == pytest.approx(2 * 10 / 1000)


def test_a_cache_hit_saves_the_searches_too(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                           tmp_path: Path) -> None:
    raw = anthropic.Anthropic(base_url=server.url, api_key=API_KEY, open_telemetry=False,
                              default_headers={"anthropic-version": "2023-06-01"})
    client = llmspend.wrap(raw, cache=str(tmp_path / "cache"), tracer_provider=spans.provider)
    ask: dict[str, Any] = dict(model=MODEL, max_tokens=200, messages=ASK, tools=[SEARCH], extra_body={"temperature": 0})
    client.messages.create(**ask)
    first = spans.attrs()
    assert first["llmspend.cost.tools_usd"] == pytest.approx(10 / 1000)
    spans.clear()
    client.messages.create(**ask)
    hit = spans.attrs()
    assert len(server.requests) == 1 and hit["llmspend.cache.hit"] is True and hit["llmspend.cost.usd"] == 0.0
    assert "llmspend.usage.tool_calls.web_search" not in hit
    assert hit["llmspend.cost.saved_usd"] == pytest.approx(first["llmspend.cost.usd"], rel=1e-12)


def test_a_budget_bounds_the_searches_by_max_uses(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = sync_client(server, spans)
    with llmspend.track(feature="research", budget_usd=1.0, period="day", ledger=MemoryLedger()):
        client.messages.create(model=MODEL, max_tokens=200, messages=ASK, tools=[FETCH])  # free: no limit needed
        plain = spans.attrs()["llmspend.budget.reserved_usd"]
        spans.clear()
        client.messages.create(model=MODEL, max_tokens=200, messages=ASK, tools=[{**SEARCH, "max_uses": 4}])
        searched = spans.attrs()
    # the two requests' tool definitions differ in length, and so do their input bounds, by
    # far less than a search's fee
    assert searched["llmspend.budget.reserved_usd"] - plain == pytest.approx(4 * 10 / 1000, abs=1e-4)
    assert searched["llmspend.cost.usd"] <= searched["llmspend.budget.reserved_usd"]


@pytest.mark.parametrize("tools", [[SEARCH], [CODE]])
async def test_a_budget_refuses_tools_it_cannot_bound(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                     tools: list[Any]) -> None:
    client = async_client(server, spans)
    with pytest.raises(llmspend.BudgetUnknownCostError) as refused:
        async with llmspend.track(feature="research", budget_usd=1.0, period="day", ledger=MemoryLedger()):
            await client.messages.create(model=MODEL, max_tokens=200, messages=ASK, tools=tools)
    assert server.requests == []
    assert ("max_uses" if tools == [SEARCH] else "no fee per call") in str(refused.value)
