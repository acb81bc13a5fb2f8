"""Fees of OpenAI's own tools (web search, file search), billed per call on top of tokens,
through the official openai SDK against the fake server: priced on the span, streamed and not,
sync and async; a tool without a known fee leaves the cost unknown, never a short figure; a
cache hit's saving includes the fee; a budget bounds the fee by ``max_tool_calls``. The
pricing and bound rules themselves are checked as pure functions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import openai
import pytest

import llmspend
from llmspend import ConfigError
from llmspend.ledger import MemoryLedger
from llmspend.pricing.bound import max_call_cost
from llmspend.pricing.cost import price_usage
from llmspend.pricing.table import ModelPrice, PriceTable
from llmspend.providers.base import Call, ToolCallLimit, Usage
from llmspend.telemetry import recorder
from llmspend.testing import FakeLLMServer, FakeResponse

from .conftest import API_KEY, Spans

WEB_SEARCH = [{"type": "web_search"}]
PREVIEW = [{"type": "web_search_preview"}]


def _client(server: FakeLLMServer, spans: Spans, **options: Any) -> openai.OpenAI:
    return llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0),
                         tracer_provider=spans.provider, retry=False, **options)


def _aclient(server: FakeLLMServer, spans: Spans, **options: Any) -> openai.AsyncOpenAI:
    return llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0),
                         tracer_provider=spans.provider, retry=False, **options)


def _row(model: str) -> ModelPrice:
    row = PriceTable.default().lookup(model, provider="openai")
    assert row is not None
    return row


def _token_usd(row: ModelPrice, usage: Any) -> float:
    """What the response's tokens cost at the row's published rates, worked by hand."""
    cached = usage.input_tokens_details.cached_tokens
    read = row.cache_read if row.cache_read is not None else row.input
    return ((usage.input_tokens - cached) * row.input + cached * read + usage.output_tokens * row.output) / 1e6


def _final(result: Any, stream: bool) -> Any:
    """The response of a create() call; for a stream, the one its completed event carries."""
    if not stream:
        return result
    events = list(result)
    assert events[-1].type == "response.completed"
    return events[-1].response


def test_shipped_fees_are_the_published_ones() -> None:
    """developers.openai.com/api/docs/pricing, Tools: web search $10.00 / 1k calls (all models;
    the preview on reasoning models), $25.00 / 1k for the preview on non-reasoning models, file
    search $2.50 / 1k calls. Each row that could call them has them."""
    for model in ("gpt-5", "o3", "gpt-5.4-mini", "gpt-6.2-sol"):
        assert dict(_row(model).tool_fees) == {"web_search": 10 / 1000, "web_search_preview": 10 / 1000, "file_search": 2.5 / 1000}
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"):
        assert dict(_row(model).tool_fees) == {"web_search": 10 / 1000, "web_search_preview": 25 / 1000, "file_search": 2.5 / 1000}
    assert "developers.openai.com/api/docs/pricing" in _row("gpt-5").tool_fees_source
    assert "code_interpreter" not in _row("gpt-5").tool_fees  # billed by the container session


@pytest.mark.parametrize("stream", [False, True])
def test_web_search_calls_are_priced_on_top_of_the_tokens(server: FakeLLMServer, spans: Spans, stream: bool) -> None:
    """Before: the searches were missing from the cost, and the status said ok. A reasoning
    model also opens a page (an ``open_page`` action): OpenAI bills search actions only."""
    client = _client(server, spans)
    result = client.responses.create(model="gpt-5", input="What changed in the refund policy?", tools=WEB_SEARCH,
                                     stream=stream, extra_headers={"x-fake-tool-calls": "2"})
    response = _final(result, stream)
    actions = [item.action.type for item in response.output if item.type == "web_search_call"]
    assert actions == ["search", "search", "open_page"]
    row = _row("gpt-5")
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "ok"
    assert attrs["llmspend.usage.tool_calls.web_search"] == 2
    assert attrs["llmspend.cost.tools_usd"] == pytest.approx(2 * 10 / 1000)
    assert attrs["llmspend.cost.usd"] == pytest.approx(_token_usd(row, response.usage) + 2 * 10 / 1000, rel=1e-12)
    assert attrs["gen_ai.usage.cost"] == attrs["llmspend.cost.usd"]


@pytest.mark.parametrize("stream", [False, True])
async def test_web_search_calls_are_priced_async(server: FakeLLMServer, spans: Spans, stream: bool) -> None:
    client = _aclient(server, spans)
    result = await client.responses.create(model="gpt-5-mini", input="Latest on the parcel strike?", tools=WEB_SEARCH,
                                           stream=stream)
    if stream:
        events = [event async for event in result]
        response = events[-1].response
    else:
        response = result
    attrs = spans.attrs()
    assert attrs["llmspend.usage.tool_calls.web_search"] == 1
    assert attrs["llmspend.cost.usd"] == pytest.approx(_token_usd(_row("gpt-5-mini"), response.usage) + 10 / 1000, rel=1e-12)


@pytest.mark.parametrize(("model", "fee"), [("gpt-4o", 25 / 1000), ("gpt-5", 10 / 1000)])
def test_the_preview_tool_costs_more_on_non_reasoning_models(server: FakeLLMServer, spans: Spans,
                                                             model: str, fee: float) -> None:
    client = _client(server, spans)
    response = client.responses.create(model=model, input="Any news on refunds?", tools=PREVIEW)
    attrs = spans.attrs()
    assert attrs["llmspend.usage.tool_calls.web_search_preview"] == 1
    assert attrs["llmspend.cost.tools_usd"] == pytest.approx(fee)
    assert attrs["llmspend.cost.usd"] == pytest.approx(_token_usd(_row(model), response.usage) + fee, rel=1e-12)


def test_file_search_calls_are_priced(server: FakeLLMServer, spans: Spans) -> None:
    client = _client(server, spans)
    response = client.responses.create(model="gpt-4.1", input="What do our terms say about refunds?",
                                       tools=[{"type": "file_search", "vector_store_ids": ["vs_terms"]}],
                                       extra_headers={"x-fake-tool-calls": "3"})
    attrs = spans.attrs()
    assert attrs["llmspend.usage.tool_calls.file_search"] == 3
    assert attrs["llmspend.cost.usd"] == pytest.approx(_token_usd(_row("gpt-4.1"), response.usage) + 3 * 2.5 / 1000, rel=1e-12)


def test_no_tool_call_no_fee(server: FakeLLMServer, spans: Spans) -> None:
    """A request that enables web search but whose answer made no call pays tokens only."""
    client = _client(server, spans)
    response = client.responses.create(model="gpt-5", input="Say hi", tools=WEB_SEARCH, extra_headers={"x-fake-tool-calls": "0"})
    assert [item.type for item in response.output] == ["message"]
    attrs = spans.attrs()
    assert "llmspend.cost.tools_usd" not in attrs and not any(k.startswith("llmspend.usage.tool_calls") for k in attrs)
    assert attrs["llmspend.cost.usd"] == pytest.approx(_token_usd(_row("gpt-5"), response.usage), rel=1e-12)


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_without_a_fee_per_call_leaves_the_cost_unknown(server: FakeLLMServer, spans: Spans, stream: bool,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Code Interpreter is billed by the container session, which one answer cannot show: the
    tokens alone would be reported as the exact cost of a call that cost more."""
    client = _client(server, spans)
    recorder._warned.clear()  # one warning per tool and model per process: this test's
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        _final(client.responses.create(model="gpt-5", input="Compute 6 * 7", stream=stream,
                                       tools=[{"type": "code_interpreter", "container": {"type": "auto"}}]), stream)
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "unknown_tool_fee"
    assert "llmspend.cost.usd" not in attrs and "gen_ai.usage.cost" not in attrs
    assert attrs["llmspend.usage.tool_calls.code_interpreter"] == 1
    assert attrs["gen_ai.usage.input_tokens"] > 0  # the tokens are still reported
    assert "'code_interpreter'" in caplog.text and "tool_fees" in caplog.text


def test_a_users_fee_prices_a_tool_and_keeps_the_others(server: FakeLLMServer, spans: Spans) -> None:
    client = _client(server, spans, prices={"gpt-5": {"tool_fees": {"code_interpreter": 0.03}}})
    response = client.responses.create(model="gpt-5", input="Look it up and compute it",
                                       tools=[{"type": "code_interpreter", "container": {"type": "auto"}}, *WEB_SEARCH])
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "ok"
    assert attrs["llmspend.cost.tools_usd"] == pytest.approx(0.03 + 10 / 1000)  # web search's fee kept
    assert attrs["llmspend.cost.usd"] == pytest.approx(_token_usd(_row("gpt-5"), response.usage) + 0.03 + 10 / 1000, rel=1e-12)


@pytest.mark.parametrize(
    ("fees", "message"),
    [
        ({"web_search": -0.01}, r"tool_fees\['web_search'\] must be a fee in USD per call"),
        ({"web_search": float("nan")}, r"tool_fees\['web_search'\] must be a fee"),
        ({"web_search": True}, r"tool_fees\['web_search'\] must be a fee"),
        ({"web_search": "0.01"}, r"tool_fees\['web_search'\] must be a fee"),
        ({"web_search": None}, r"tool_fees\['web_search'\] must be a fee"),
        ({"": 0.01}, "tool_fees must map a tool's name"),
        ([0.01], "tool_fees must map a tool's name"),
    ],
)
def test_malformed_tool_fees_fail_at_wrap_time(server: FakeLLMServer, fees: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), prices={"gpt-5": {"tool_fees": fees}})
    with pytest.raises(ConfigError, match="price row p/m: " + message):
        PriceTable.from_dict({"providers": {"p": {"m": {"input": 1, "output": 2, "tool_fees": fees}}}})
    with pytest.raises(ConfigError, match="tool_fees_source must be a string"):
        PriceTable.default().with_overrides({"gpt-5": {"tool_fees_source": 5}})


def test_a_replacing_row_without_tool_fees_keeps_the_providers() -> None:
    """A LiteLLM file's rows carry token prices only: loaded over the shipped table they must
    not drop the tool fees (every search would then leave its call unknown)."""
    replaced = PriceTable.default().with_overrides(PriceTable([ModelPrice("gpt-5", "openai", input=1.0, output=2.0)]))
    row = replaced.lookup("gpt-5", provider="openai")
    assert row is not None and row.input == 1.0 and row.tool_fees == _row("gpt-5").tool_fees


def test_a_cache_hit_saves_the_fee_too(server: FakeLLMServer, spans: Spans, tmp_path: Path) -> None:
    """A hit buys no search: what the first call cost, fee included, is the saving."""
    client = _client(server, spans, cache=str(tmp_path / "cache"))
    ask: dict[str, Any] = dict(model="gpt-5", input="Who won yesterday?", tools=WEB_SEARCH, temperature=0)
    client.responses.create(**ask)
    first = spans.attrs()
    assert first["llmspend.cost.tools_usd"] == pytest.approx(10 / 1000)
    client.responses.create(**ask)
    hit = spans.attrs()
    assert len(server.requests) == 1 and hit["llmspend.cache.hit"] is True
    assert hit["llmspend.cost.usd"] == 0.0 and "llmspend.cost.tools_usd" not in hit
    assert not any(k.startswith("llmspend.usage.tool_calls") for k in hit)  # the hit called no tool
    assert hit["llmspend.cost.saved_usd"] == pytest.approx(first["llmspend.cost.usd"], rel=1e-12)


def test_a_stream_cut_short_still_counts_the_searches_it_made(server: FakeLLMServer, spans: Spans) -> None:
    """No ``response.completed`` (no usage): the tokens are estimated, and the searches that
    finished (``response.output_item.done``) are still charged."""
    search = {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}}
    start = {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": "gpt-5",
             "output": [], "tools": WEB_SEARCH, "parallel_tool_calls": True, "tool_choice": "auto"}
    events = [
        {"type": "response.created", "sequence_number": 0, "response": start},
        {"type": "response.output_item.done", "sequence_number": 1, "output_index": 0, "item": search},
        {"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_1", "output_index": 1,
         "content_index": 0, "delta": "The match ended"},
    ]
    server.route("POST", "/v1/responses", lambda _: FakeResponse.events(events))
    client = _client(server, spans)
    assert [e.type for e in client.responses.create(model="gpt-5", input="Who won?", tools=WEB_SEARCH, stream=True)][-1] \
        == "response.output_text.delta"
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "estimated"
    assert attrs["llmspend.usage.tool_calls.web_search"] == 1 and attrs["llmspend.cost.tools_usd"] == pytest.approx(10 / 1000)


def test_a_chat_search_model_has_an_unknown_cost(server: FakeLLMServer, spans: Spans) -> None:
    """Chat Completions' search models are billed per search, and the answer does not say how
    many it made: even with a price row, the cost is unknown, never the tokens alone."""
    client = _client(server, spans, prices={"gpt-4o-search-preview": {"provider": "openai", "input": 2.5, "output": 10.0,
                                                                      "tool_fees": {"web_search": 0.025}}})
    client.chat.completions.create(model="gpt-4o-search-preview", messages=[{"role": "user", "content": "News?"}],
                                   web_search_options={})
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "unknown_tool_fee" and "llmspend.cost.usd" not in attrs
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "News?"}])
    assert spans.attrs()["llmspend.cost.status"] == "ok"  # no search, no fee


# -- budgets ------------------------------------------------------------------------------
def test_a_budget_bounds_the_fee_by_max_tool_calls(server: FakeLLMServer, spans: Spans) -> None:
    client = _client(server, spans)
    ask: dict[str, Any] = dict(model="gpt-5", input="What is new?", max_output_tokens=200)
    with llmspend.track(feature="search", budget_usd=1.0, period="day", ledger=MemoryLedger()):
        client.responses.create(**ask)
        plain = spans.attrs()["llmspend.budget.reserved_usd"]
        client.responses.create(**ask, tools=WEB_SEARCH, max_tool_calls=3)
        searched = spans.attrs()
    assert searched["llmspend.budget.reserved_usd"] == pytest.approx(plain + 3 * 10 / 1000)
    assert searched["llmspend.cost.usd"] <= searched["llmspend.budget.reserved_usd"]


async def test_a_budget_refuses_a_search_it_cannot_bound(server: FakeLLMServer, spans: Spans) -> None:
    """Without ``max_tool_calls`` the model may search without end: the most the call can cost
    is unknown, and a budget refuses it by default (``on_unknown="allow"`` lets it through)."""
    client = _aclient(server, spans)
    with pytest.raises(llmspend.BudgetUnknownCostError, match="max_tool_calls"):
        async with llmspend.track(feature="search", budget_usd=1.0, period="day", ledger=MemoryLedger()):
            await client.responses.create(model="gpt-5", input="What is new?", max_output_tokens=200, tools=WEB_SEARCH)
    assert server.requests == []
    book = MemoryLedger()
    async with llmspend.track(feature="search", budget_usd=1.0, period="day", ledger=book, on_unknown="allow"):
        await client.responses.create(model="gpt-5", input="What is new?", max_output_tokens=200, tools=WEB_SEARCH)
    assert llmspend.spent("search", period="day", ledger=book).spent_usd == pytest.approx(spans.attrs()["llmspend.cost.usd"])


# -- the rules, as pure functions -----------------------------------------------------------
ROW = ModelPrice("m", "p", input=2.0, output=8.0, batch_input=1.0, batch_output=4.0, max_output_tokens=1000,
                 tiers={"priority": {"input": 4.0, "output": 16.0}}, speed_multipliers={"fast": 6.0},
                 geo_multipliers={"us": 1.1}, tool_fees={"web_search": 0.01, "web_fetch": 0.0})


def test_tool_fees_are_never_discounted_nor_multiplied() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=100)
    plain = price_usage(usage, ROW)
    for options in ({}, {"batch": True}, {"service_tier": "priority"}, {"speed": "fast"}, {"inference_geo": "us"}):
        tokens = price_usage(usage, ROW, **options)
        cost = price_usage(usage, ROW, tool_calls={"web_search": 3, "web_fetch": 2}, **options)
        assert cost.tools_usd == pytest.approx(0.03) and cost.status == "ok", options
        assert cost.total_usd == pytest.approx(tokens.total_usd + 0.03), options  # type: ignore[operator]
    assert plain.tools_usd == 0.0


@pytest.mark.parametrize("calls", [{"code_execution": 1}, {"web_search": None}, {"web_search": 1, "x": 2}])
def test_an_unpriceable_tool_call_gives_no_number(calls: dict[str, int | None]) -> None:
    cost = price_usage(Usage(input_tokens=10, output_tokens=1), ROW, tool_calls=calls)
    assert cost.total_usd is None and not cost.known and cost.status == "unknown_tool_fee"


def test_a_tool_named_but_not_called_costs_nothing() -> None:
    cost = price_usage(Usage(input_tokens=10, output_tokens=1), ROW, tool_calls={"code_execution": 0})
    assert cost.status == "ok" and cost.tools_usd == 0.0


def _call(body: dict[str, Any]) -> Call:
    return Call("p", "chat", "responses", "m", False, "h", 443, body=body)


def test_the_bound_adds_the_most_calls_at_the_dearest_fee() -> None:
    row = ModelPrice("m", "p", input=1.0, output=4.0, tool_fees={"a": 0.01, "b": 0.025, "free": 0.0})
    base = max_call_cost(_call({"max_output_tokens": 10}), row, 100, input_margin=0).usd
    assert base is not None
    both = max_call_cost(_call({"max_output_tokens": 10}), row, 100, input_margin=0,
                         tool_limits=(ToolCallLimit(("a", "b"), 4), ToolCallLimit(("free",), None)))
    assert both.usd == pytest.approx(base + 4 * 0.025)  # a free tool needs no limit
    unlimited = max_call_cost(_call({"max_output_tokens": 10}), row, 100, input_margin=0,
                              tool_limits=(ToolCallLimit(("a",), None),))
    assert unlimited.usd is None and "'a' tool" in unlimited.reason and "max_uses" in unlimited.reason
    unpriced = max_call_cost(_call({"max_output_tokens": 10}), row, 100, input_margin=0,
                             tool_limits=(ToolCallLimit(("c",), 1),))
    assert unpriced.usd is None and "no fee per call" in unpriced.reason and "'c'" in unpriced.reason


def test_the_adapter_says_which_tools_a_request_enables() -> None:
    from llmspend.providers.openai import OpenAIAdapter

    adapter = OpenAIAdapter()
    limits = adapter.tool_call_limits(_call({"tools": [{"type": "web_search_2025_08_26"}, {"type": "file_search"},
                                                       {"type": "function", "name": "f"}], "max_tool_calls": 5}))
    assert limits == (ToolCallLimit(("file_search", "web_search"), 5),)
    preview = adapter.tool_call_limits(_call({"tools": [{"type": "web_search_preview_2025_03_11"}]}))
    assert preview == (ToolCallLimit(("web_search_preview",), None),)
    local = {"type": "shell", "environment": {"type": "local"}}
    hosted = {"type": "shell", "environment": {"type": "container_auto"}}
    assert adapter.tool_call_limits(_call({"tools": [local]})) == ()
    assert adapter.tool_call_limits(_call({"tools": [hosted]})) == (ToolCallLimit(("shell",), None),)
    assert adapter.tool_call_limits(_call({"tools": [{"type": "function", "name": "f"}]})) == ()
