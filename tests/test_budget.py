"""Budgets through the public API: refusal before anything is sent, fallback to a cheaper model,
settlement to the real cost (streams included, at their end or early close), release on errors,
periods that reset, every built-in ledger, sync and async clients, and the CLI."""

from __future__ import annotations

import contextvars
import doctest
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import openai
import pytest

import llmspend
from llmspend import periods
from llmspend.cli import main
from llmspend.ledger import DiskLedger, Ledger, MemoryLedger, Reservation
from llmspend.periods import Window, period_window
from llmspend.pricing import bound
from llmspend.pricing.bound import max_call_cost
from llmspend.pricing.table import LongContextPrice, ModelPrice, PriceTable
from llmspend.providers.base import Call
from llmspend.stages.budget import BudgetStage
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Spans
from .replay_stage import replaying_client

QUESTION = [{"role": "user", "content": "How long does a refund take? " * 5}]


@pytest.fixture(params=["memory", "disk"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    return MemoryLedger() if request.param == "memory" else DiskLedger(tmp_path / "ledger")


@pytest.fixture
def client(server: FakeLLMServer, spans: Spans) -> openai.OpenAI:
    return llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0),
                         tracer_provider=spans.provider, retry=False)


@pytest.fixture
def aclient(server: FakeLLMServer, spans: Spans) -> openai.AsyncOpenAI:
    return llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0),
                         tracer_provider=spans.provider, retry=False)


def ask(client: openai.OpenAI, model: str = "gpt-4o-mini", **kw: Any) -> Any:
    kw.setdefault("max_tokens", 100)
    return client.chat.completions.create(model=model, messages=QUESTION, **kw)


async def aask(client: openai.AsyncOpenAI, model: str = "gpt-4o-mini", **kw: Any) -> Any:
    kw.setdefault("max_tokens", 100)
    return await client.chat.completions.create(model=model, messages=QUESTION, **kw)


def llm_attrs(spans: Spans) -> list[dict[str, Any]]:
    return [dict(s.attributes or {}) for s in spans.finished if s.name.startswith("chat ")]


def spent_on(ledger: Ledger, feature: str = "bulk", period: str = "day", **kw: Any) -> llmspend.BudgetStatus:
    return llmspend.spent(feature, period=period, ledger=ledger, **kw)


# -- refusal before sending ----------------------------------------------------------------
def test_call_over_budget_is_refused_before_anything_is_sent(client: openai.OpenAI, server: FakeLLMServer,
                                                             spans: Spans, ledger: Ledger) -> None:
    sent = 0
    with pytest.raises(llmspend.BudgetExceededError) as refused:
        with llmspend.track(feature="bulk", budget_usd=0.0005, period="day", ledger=ledger):
            for _ in range(50):
                ask(client)
                sent += 1
    assert sent > 0 and len(server.requests) == sent  # the refused call never reached the server
    error = refused.value
    status = spent_on(ledger)
    assert error.budget == "bulk/day" and error.limit_usd == 0.0005
    assert error.remaining_usd == pytest.approx(0.0005 - status.spent_usd) and error.requested_usd > error.remaining_usd
    assert error.resets_at == period_window("day", datetime.now(timezone.utc)).resets_at
    assert "bulk/day" in str(error) and "resets at" in str(error)
    assert status.calls == sent and 0 < status.spent_usd <= 0.0005 and status.reserved_usd == 0
    refused_span = llm_attrs(spans)[-1]
    assert refused_span["error.type"] == "BudgetExceededError" and refused_span["llmspend.budget.refused"] == "bulk/day"


async def test_async_refusal_before_sending(aclient: openai.AsyncOpenAI, server: FakeLLMServer, ledger: Ledger) -> None:
    sent = 0
    with pytest.raises(llmspend.BudgetExceededError):
        async with llmspend.track(feature="bulk", budget_usd=0.0005, period="day", ledger=ledger):
            for _ in range(50):
                await aask(aclient)
                sent += 1
    assert sent > 0 and len(server.requests) == sent
    assert spent_on(ledger).calls == sent


def test_no_max_tokens_reserves_the_models_output_limit(client: openai.OpenAI, server: FakeLLMServer) -> None:
    book = MemoryLedger()
    with llmspend.track(feature="bulk", budget_usd=0.005, period="day", ledger=book):
        ask(client, max_tokens=100)  # fits
        with pytest.raises(llmspend.BudgetExceededError):
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)  # 16,384 output tokens could cost more
    assert len(server.requests) == 1


# -- fallback --------------------------------------------------------------------------------
def test_fallback_model_takes_the_call_that_would_not_fit(client: openai.OpenAI, server: FakeLLMServer, spans: Spans) -> None:
    book = MemoryLedger()
    with llmspend.track(feature="bulk", budget_usd=0.001, period="day", fallback_model="gpt-4o-mini", ledger=book):
        answer = ask(client, model="gpt-4o", max_tokens=200)  # up to $0.002 on gpt-4o; far less on mini
    assert server.requests[-1].json()["model"] == "gpt-4o-mini"
    assert answer.model.startswith("gpt-4o-mini")
    (a,) = llm_attrs(spans)
    assert a["llmspend.budget.fallback_model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"].startswith("gpt-4o-mini")
    assert spent_on(book).spent_usd == pytest.approx(a["llmspend.cost.usd"])


def test_a_signed_request_is_refused_not_sent_to_the_fallback(server: FakeLLMServer, spans: Spans) -> None:
    # An SDK that signs its requests with AWS SigV4 (AnthropicAWS) signed the body before the
    # transport: rewritten to the fallback model, AWS would reject it. It is refused instead.
    import httpx2

    client = llmspend.wrap(httpx2.Client(), tracer_provider=spans.provider, retry=False)
    signed = {"authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/bedrock/aws4_request, "
                               "SignedHeaders=host;x-amz-date, Signature=abc123", "x-amz-date": "20261122T000000Z"}
    body = {"model": "gpt-4o", "max_tokens": 200, "messages": QUESTION}
    with llmspend.track(feature="bulk", budget_usd=0.001, period="day", fallback_model="gpt-4o-mini",
                        ledger=MemoryLedger()):
        with pytest.raises(llmspend.BudgetExceededError):
            client.post(server.base_url + "/chat/completions", json=body, headers=signed)
        assert not server.requests
        plain = client.post(server.base_url + "/chat/completions", json=body, headers={"authorization": "Bearer sk-x"})
    assert plain.json()["model"].startswith("gpt-4o-mini")  # an unsigned one still falls back


async def test_async_fallback_and_refusal_when_the_fallback_does_not_fit_either(
    aclient: openai.AsyncOpenAI, server: FakeLLMServer
) -> None:
    book = MemoryLedger()
    async with llmspend.track(feature="bulk", budget_usd=0.001, period="day", fallback_model="gpt-4o-mini", ledger=book):
        await aask(aclient, model="gpt-4o", max_tokens=200)
        assert server.requests[-1].json()["model"] == "gpt-4o-mini"
        with pytest.raises(llmspend.BudgetExceededError) as refused:
            await aask(aclient, model="gpt-4o", max_tokens=2000)  # too dear on both models
    assert refused.value.requested_usd > 0.001  # reported for the model asked for
    assert len(server.requests) == 1


# -- settlement ------------------------------------------------------------------------------
def test_reservations_settle_to_the_real_cost_which_never_exceeds_them(client: openai.OpenAI, spans: Spans,
                                                                       ledger: Ledger) -> None:
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=ledger):
        for i in range(4):
            ask(client, max_tokens=20 + 40 * i)
    calls = llm_attrs(spans)
    status = spent_on(ledger)
    assert status.spent_usd == pytest.approx(sum(a["llmspend.cost.usd"] for a in calls))
    assert status.reserved_usd == 0 and status.calls == 4
    for a in calls:  # the bound: what a call cost never exceeded what it reserved
        assert 0 < a["llmspend.cost.usd"] <= a["llmspend.budget.reserved_usd"]


def test_stream_holds_its_reservation_until_it_ends(client: openai.OpenAI, spans: Spans, ledger: Ledger) -> None:
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=ledger):
        stream = ask(client, stream=True)
        held = spent_on(ledger)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert held.reserved_usd > 0 and held.spent_usd == 0  # in flight until the stream ends
    assert text
    (a,) = llm_attrs(spans)
    after = spent_on(ledger)
    assert after.reserved_usd == 0 and after.spent_usd == pytest.approx(a["llmspend.cost.usd"])
    assert after.unknown_calls == 0


def test_stream_closed_early_is_charged_its_reservation(client: openai.OpenAI, spans: Spans, ledger: Ledger) -> None:
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=ledger):
        stream = ask(client, stream=True)
        next(iter(stream))
        stream.close()
    (a,) = llm_attrs(spans)
    status = spent_on(ledger)
    assert status.reserved_usd == 0
    assert status.spent_usd == pytest.approx(a["llmspend.budget.reserved_usd"], rel=1e-6)
    assert status.unknown_calls == 1 and status.calls == 1


async def test_async_streams_settle_at_the_end_and_on_early_close(aclient: openai.AsyncOpenAI, spans: Spans,
                                                                  ledger: Ledger) -> None:
    async with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=ledger):
        stream = await aask(aclient, stream=True)
        async for _ in stream:
            pass
        first = spent_on(ledger)
        stream = await aask(aclient, stream=True)
        async for _ in stream:
            break
        await stream.close()
    full, cut = llm_attrs(spans)
    assert first.spent_usd == pytest.approx(full["llmspend.cost.usd"])
    status = spent_on(ledger)
    assert status.reserved_usd == 0 and status.calls == 2
    assert status.spent_usd == pytest.approx(full["llmspend.cost.usd"] + cut["llmspend.budget.reserved_usd"], rel=1e-6)


def test_http_error_and_connection_error_release_the_reservation(client: openai.OpenAI, server: FakeLLMServer,
                                                                  ledger: Ledger) -> None:
    dead = llmspend.wrap(openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key=API_KEY, max_retries=0), retry=False)
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=ledger):
        server.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            ask(client)
        with pytest.raises(openai.APIConnectionError):
            ask(dead)
    status = spent_on(ledger)
    assert (status.spent_usd, status.reserved_usd, status.calls) == (0.0, 0.0, 0)


def test_a_cache_hit_settles_to_zero(server: FakeLLMServer, spans: Spans) -> None:
    client = replaying_client(server.base_url, spans.provider)
    book = MemoryLedger()
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=book):
        ask(client)
        ask(client)  # answered by the replay stage, inside the budget stage
    first, hit = llm_attrs(spans)
    assert hit["llmspend.served_from"] == "cache"
    status = spent_on(book)
    assert status.calls == 2 and status.spent_usd == pytest.approx(first["llmspend.cost.usd"])


async def test_async_cache_hit_settles_to_zero_with_a_disk_ledger(server: FakeLLMServer, spans: Spans,
                                                                  tmp_path: Path) -> None:
    client = replaying_client(server.base_url, spans.provider, is_async=True)
    book = DiskLedger(tmp_path / "ledger")
    async with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=book):
        await aask(client)
        await aask(client)
    first, _ = llm_attrs(spans)
    status = spent_on(book)
    assert status.calls == 2 and status.spent_usd == pytest.approx(first["llmspend.cost.usd"])


# -- unknown costs -----------------------------------------------------------------------------
def test_unpriced_model_is_refused_by_default_and_allowed_when_asked(client: openai.OpenAI, server: FakeLLMServer) -> None:
    book = MemoryLedger()
    with pytest.raises(llmspend.BudgetUnknownCostError, match="no price for model 'no-such-model-zz'"):
        with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=book):
            ask(client, model="no-such-model-zz")
    assert server.requests == []
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", on_unknown="allow", ledger=book):
        ask(client, model="no-such-model-zz")
    status = spent_on(book)
    assert len(server.requests) == 1 and status.calls == 1 and status.unknown_calls == 1


def test_model_without_an_output_limit_needs_max_tokens(server: FakeLLMServer) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           prices={"house-model": {"input": 1.0, "output": 2.0}})
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=MemoryLedger()):
        with pytest.raises(llmspend.BudgetUnknownCostError, match="sets no max_tokens"):
            client.chat.completions.create(model="house-model", messages=QUESTION)
        client.chat.completions.create(model="house-model", messages=QUESTION, max_tokens=50)
    assert len(server.requests) == 1


# -- keys: nesting, per user, counting without a limit ------------------------------------------
def test_nested_budgets_all_apply(client: openai.OpenAI, server: FakeLLMServer) -> None:
    book = MemoryLedger()
    with pytest.raises(llmspend.BudgetExceededError) as refused:
        with llmspend.track(feature="team", budget_usd=0.00001, period="month", ledger=book):
            with llmspend.track(feature="bulk", budget_usd=10.0, period="day", ledger=book):
                ask(client)
    assert refused.value.budget == "team/month" and server.requests == []


def test_nested_tracks_of_one_budget_charge_a_call_once(client: openai.OpenAI, server: FakeLLMServer, spans: Spans) -> None:
    # A recursive tracked function, or a helper tracked like its caller, nests the same budget;
    # before, each level reserved and charged the same ledger account again.
    book = MemoryLedger()
    budget = llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=book)

    @budget
    def answer(depth: int) -> Any:
        return answer(depth - 1) if depth else ask(client, max_tokens=50)

    with llmspend.track(feature="bulk", period="day", ledger=book):  # counts only, same account
        answer(2)
    status = spent_on(book)
    assert status.calls == 1 and status.spent_usd == pytest.approx(llm_attrs(spans)[0]["llmspend.cost.usd"])
    with llmspend.track(feature="bulk", budget_usd=status.spent_usd + 0.00001, period="day", ledger=book):
        with pytest.raises(llmspend.BudgetExceededError):  # the tightest of the nested limits applies
            answer(1)
    assert len(server.requests) == 1


def test_per_user_budgets_are_separate(client: openai.OpenAI, server: FakeLLMServer) -> None:
    book = MemoryLedger()

    @llmspend.track(feature="chat", budget_usd=0.00004, period="hour", per_user=True, ledger=book)
    def chat() -> None:
        ask(client, max_tokens=50)

    for user in ("ann", "bob"):
        with llmspend.track(user=user):
            chat()
    with llmspend.track(user="ann"), pytest.raises(llmspend.BudgetExceededError, match="chat/user=ann/hour"):
        chat()
    assert len(server.requests) == 2
    assert llmspend.spent("chat", user="bob", period="hour", ledger=book).calls == 1
    with pytest.raises(llmspend.ConfigError, match="per user but no user"):
        chat()


def test_a_period_without_a_limit_counts_only(client: openai.OpenAI, spans: Spans) -> None:
    book = MemoryLedger()
    with llmspend.track(feature="digest", period="month", ledger=book):
        for _ in range(3):
            ask(client, max_tokens=5000)
    status = llmspend.spent("digest", period="month", ledger=book)
    assert status.calls == 3 and status.limit_usd is None and status.remaining_usd is None
    assert status.spent_usd == pytest.approx(sum(a["llmspend.cost.usd"] for a in llm_attrs(spans)))


def test_an_absurd_max_tokens_is_refused_or_counted_not_a_crash(client: openai.OpenAI, server: FakeLLMServer,
                                                                  ledger: Ledger) -> None:
    # max_tokens=2**1023 bounds the cost at infinity. Before, turning that into a ledger's
    # nano-dollars raised OverflowError out of the user's call, under a limit or not.
    huge = 2**1023
    with pytest.raises(llmspend.BudgetExceededError) as refused:
        with llmspend.track(feature="bulk", budget_usd=1e9, period="day", ledger=ledger):
            ask(client, max_tokens=huge)
    assert not server.requests and refused.value.requested_usd > 1e9  # more than any budget holds
    with llmspend.track(feature="count", period="day", ledger=ledger):  # counting only: it goes out
        ask(client, max_tokens=huge)
    status = spent_on(ledger, "count")
    assert len(server.requests) == 1 and status.calls == 1 and 0 < status.spent_usd < 0.01 and status.reserved_usd == 0


# -- periods ------------------------------------------------------------------------------------
def test_a_minute_budget_resets_when_the_minute_turns(server: FakeLLMServer) -> None:
    now = [datetime(2025, 6, 1, 12, 30, 50, tzinfo=timezone.utc).timestamp()]
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           budget=BudgetStage(clock=lambda: now[0]))
    book = MemoryLedger()
    with llmspend.track(feature="bulk", budget_usd=0.00005, period="minute", ledger=book):
        ask(client, max_tokens=50)
        with pytest.raises(llmspend.BudgetExceededError) as refused:
            ask(client, max_tokens=50)
        assert refused.value.resets_at == datetime(2025, 6, 1, 12, 31, tzinfo=timezone.utc)
        now[0] += 10  # 12:31:00
        ask(client, max_tokens=50)
    assert len(server.requests) == 2
    at = datetime(2025, 6, 1, 12, 31, 5, tzinfo=timezone.utc)
    assert llmspend.spent("bulk", period="minute", ledger=book, now=at).calls == 1


@pytest.mark.parametrize(
    ("period", "moment", "start", "end"),
    [
        ("minute", "2025-03-31T23:59:59.9", "2025-03-31T23:59:00", "2025-04-01T00:00:00"),
        ("hour", "2025-03-31T23:15:00", "2025-03-31T23:00:00", "2025-04-01T00:00:00"),
        ("day", "2024-02-29T13:00:00", "2024-02-29T00:00:00", "2024-03-01T00:00:00"),
        ("month", "2024-12-31T23:59:59", "2024-12-01T00:00:00", "2025-01-01T00:00:00"),
        ("month", "2025-02-10T00:00:00", "2025-02-01T00:00:00", "2025-03-01T00:00:00"),
    ],
)
def test_period_windows_have_utc_boundaries(period: str, moment: str, start: str, end: str) -> None:
    utc = timezone.utc
    window = period_window(period, datetime.fromisoformat(moment).replace(tzinfo=utc))
    assert window.start_at == datetime.fromisoformat(start).replace(tzinfo=utc)
    assert window.resets_at == datetime.fromisoformat(end).replace(tzinfo=utc)
    # a local time is converted, not read as UTC
    from datetime import timedelta

    local = datetime.fromisoformat(moment).replace(tzinfo=timezone(timedelta(hours=-5))) - timedelta(hours=5)
    assert period_window(period, local) == window


def test_period_errors_and_none() -> None:
    assert period_window("none", 1e9) == Window("none", 0, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        period_window("day", datetime(2025, 1, 1))
    with pytest.raises(llmspend.ConfigError, match="period must be one of"):
        period_window("week", 0)


def test_docstring_examples_run() -> None:
    for module in (periods, bound):
        assert doctest.testmod(module).failed == 0


# -- the cost bound ---------------------------------------------------------------------------
ROW = ModelPrice("m", "p", input=2.0, output=8.0, cache_write=2.5, cache_write_1h=4.0, reasoning=10.0,
                 max_output_tokens=1000, per_request=0.01,
                 long_context=LongContextPrice(threshold=10_000, input=4.0, output=16.0),
                 tiers={"priority": {"input": 3.0, "output": 12.0}})


def call(body: dict[str, Any], operation: str = "chat") -> Call:
    return Call("p", operation, "chat.completions", "m", False, "h", 443, body=body)


def test_cost_bound_prices_every_token_at_its_dearest_rate() -> None:
    per = 1e-6
    plain = max_call_cost(call({"max_tokens": 100}), ROW, 1000, input_margin=0.1)
    assert (plain.input_tokens, plain.output_tokens) == (1100, 100)
    assert plain.usd == pytest.approx(1100 * 2 * per + 100 * 10 * per + 0.01)  # reasoning rate > output
    n = max_call_cost(call({"max_completion_tokens": 50, "n": 3}), ROW, 0, input_margin=0.1)
    assert n.output_tokens == 150
    table_limit = max_call_cost(call({}), ROW, 0, input_margin=0)
    assert table_limit.output_tokens == 1000
    long = max_call_cost(call({"max_tokens": 1}), ROW, 9500, input_margin=0.1)  # 10,450 > threshold
    assert long.usd == pytest.approx(10450 * 4 * per + 1 * 16 * per + 0.01)
    tier = max_call_cost(call({"max_tokens": 1, "service_tier": "priority"}), ROW, 100, input_margin=0)
    assert tier.usd == pytest.approx(100 * 3 * per + 12 * per + 0.01)
    fast = max_call_cost(call({"max_tokens": 1, "service_tier": "fast"}), ROW, 100, input_margin=0)
    assert fast.usd == pytest.approx(tier.usd)  # OpenAI's newer name for priority
    writes = max_call_cost(call({"max_tokens": 1}), ROW, 100, input_margin=0, writes_cache=True)
    assert writes.usd == pytest.approx(100 * 4 * per + 10 * per + 0.01)  # the one-hour write rate
    embed = max_call_cost(call({"input": "x"}, operation="embeddings"), ROW, 10, input_margin=0)
    assert embed.output_tokens == 0


def test_cost_bound_of_a_fast_mode_request_is_at_the_fast_price() -> None:
    """Anthropic's speed "fast" is billed at the row's factor when the fast tier serves it: the
    bound must hold that price (before: the standard one, a sixth of the bill on Opus 4.6)."""
    per = 1e-6
    fast_row = ModelPrice("m", "p", input=2.0, output=8.0, max_output_tokens=1000, per_request=0.01,
                          speed_multipliers={"fast": 6.0})
    fast = max_call_cost(call({"max_tokens": 10, "speed": "fast"}), fast_row, 100, input_margin=0)
    assert fast.usd == pytest.approx(6 * (100 * 2 * per + 10 * 8 * per) + 0.01)  # not the per-request fee
    standard = max_call_cost(call({"max_tokens": 10, "speed": "standard"}), fast_row, 100, input_margin=0)
    assert standard.usd == pytest.approx(100 * 2 * per + 10 * 8 * per + 0.01)
    unknown = max_call_cost(call({"max_tokens": 10, "speed": "fast"}), ROW, 100, input_margin=0)
    assert unknown.usd is None and "speed 'fast'" in unknown.reason


def test_cost_bound_of_a_request_for_a_geography_is_at_its_price() -> None:
    """Anthropic bills a request that asks for US-only inference (``inference_geo: "us"``) at
    the row's factor for it, on top of fast mode's: the bound holds that price (before: 1.0x,
    so a fast US-only call on Opus 4.6 was bounded at 6x and billed at 6.6x)."""
    per = 1e-6
    row = ModelPrice("m", "p", input=2.0, output=8.0, max_output_tokens=1000, per_request=0.01,
                     speed_multipliers={"fast": 6.0}, geo_multipliers={"us": 1.1})
    us = max_call_cost(call({"max_tokens": 10, "speed": "fast", "inference_geo": "us"}), row, 100, input_margin=0)
    assert us.usd == pytest.approx(6 * 1.1 * (100 * 2 * per + 10 * 8 * per) + 0.01)
    for other in ("global", None, 5):  # a geography without a factor is billed at the standard rate
        plain = max_call_cost(call({"max_tokens": 10, "inference_geo": other}), row, 100, input_margin=0)
        assert plain.usd == pytest.approx(100 * 2 * per + 10 * 8 * per + 0.01)


def test_cost_bound_unknown() -> None:
    assert max_call_cost(call({}), None, 10, input_margin=0.1).usd is None
    no_limit = ModelPrice("m", "p", input=1.0, output=1.0)
    assert "no max_tokens" in max_call_cost(call({}), no_limit, 10, input_margin=0.1).reason


# -- ledgers: choice, faults, defaults -------------------------------------------------------------
class DownLedger(MemoryLedger):
    """A ledger whose store is unreachable for reservations (or, with settle_only, settlements)."""

    def __init__(self, settle_only: bool = False) -> None:
        super().__init__()
        self.settle_only = settle_only

    def reserve(self, key: str, amount_usd: float, limit_usd: float | None, window: Window) -> Reservation | None:
        if not self.settle_only:
            raise llmspend.LedgerError("store unreachable")
        return super().reserve(key, amount_usd, limit_usd, window)

    def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        raise llmspend.LedgerError("store unreachable")


def test_unreachable_ledger_stops_the_call_and_a_failed_settlement_does_not(
    client: openai.OpenAI, server: FakeLLMServer, spans: Spans
) -> None:
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=DownLedger()):
        with pytest.raises(llmspend.LedgerError):
            ask(client)
    assert server.requests == []
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=DownLedger(settle_only=True)):
        assert ask(client).choices  # the answer is paid for: the caller gets it
    assert "LedgerError" in llm_attrs(spans)[-1]["llmspend.budget.error"]


def test_ledger_by_path_and_default_ledger(client: openai.OpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "by-path")
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=path):
        ask(client)
    assert oct(os.stat(path).st_mode & 0o777) == "0o700"
    assert llmspend.spent("bulk", period="day", ledger=path).calls == 1
    try:
        llmspend.set_default_ledger(path)
        with llmspend.track(feature="bulk", budget_usd=1.0, period="day"):
            ask(client)
        assert llmspend.spent("bulk", period="day").calls == 2
    finally:
        llmspend.set_default_ledger(None)
    monkeypatch.setenv("LLMSPEND_LEDGER", path)
    assert llmspend.spent("bulk", period="day").calls == 2


def test_disk_ledger_refuses_a_directory_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(llmspend.ConfigError, match="chmod 700"):
        llmspend.track(feature="f", budget_usd=1, period="day", ledger=str(shared))


def test_threads_sharing_a_budget_never_overspend(client: openai.OpenAI, server: FakeLLMServer) -> None:
    book = MemoryLedger()
    limit = 0.002
    outcomes: list[str] = []

    def worker() -> None:
        for _ in range(40):
            try:
                ask(client, max_tokens=60)
                outcomes.append("sent")
            except llmspend.BudgetExceededError:
                outcomes.append("refused")
                return

    with llmspend.track(feature="bulk", budget_usd=limit, period="day", ledger=book):
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    status = spent_on(book)
    assert outcomes.count("refused") == 6  # every thread ran into the limit
    assert status.calls == outcomes.count("sent") == len(server.requests)
    assert limit * 0.5 < status.spent_usd <= limit


async def test_a_call_cancelled_while_reserving_holds_no_budget(server: FakeLLMServer, spans: Spans, tmp_path: Path) -> None:
    """A disk (or Redis) ledger reserves in a worker thread; cancelling the caller there does
    not stop the thread. Whichever finishes last releases the reservation."""
    import asyncio
    import time

    class SlowDisk(DiskLedger):  # a reservation that waits on the database, as under contention
        def reserve(self, *args: Any, **kwargs: Any) -> Reservation | None:
            time.sleep(0.2)
            return super().reserve(*args, **kwargs)

    ledger = SlowDisk(tmp_path / "ledger")
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)

    async def call() -> Any:
        with llmspend.track(feature="chat", budget_usd=1.0, period="day", ledger=ledger):
            return await client.chat.completions.create(model="gpt-4o", max_tokens=1000,
                                                        messages=[{"role": "user", "content": "hi"}])

    tasks = [asyncio.create_task(call()) for _ in range(6)]
    await asyncio.sleep(0.05)  # every one is waiting on its reservation
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(task.cancelled() for task in tasks) and server.requests == []
    await asyncio.sleep(1.0)  # the threads finish reserving (six at a time at most), then release
    status = llmspend.spent("chat", period="day", ledger=ledger)
    assert status.reserved_usd == 0 and status.spent_usd == 0
    await call()  # the whole budget is there for the next call
    await client.close()


# -- llmspend.spent and the CLI ------------------------------------------------------------------
def test_budget_status_cli(client: openai.OpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "cli-ledger")
    with llmspend.track(feature="support-reply", budget_usd=0.5, period="day", ledger=path):
        ask(client)
    with llmspend.track(feature="digest", period="month", ledger=path):
        ask(client)
    assert main(["budget", "status", "--ledger", path]) == 0
    table = capsys.readouterr().out
    assert "support-reply/day" in table and "digest/month" in table and "no limit" in table
    assert main(["budget", "status", "--ledger", path, "--feature", "support-reply", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    expected = llmspend.spent("support-reply", period="day", ledger=path)
    assert row["spent_usd"] == pytest.approx(expected.spent_usd) and row["limit_usd"] == 0.5
    assert row["remaining_usd"] == pytest.approx(0.5 - expected.spent_usd) and row["calls"] == 1
    assert main(["budget", "status", "--ledger", path, "--feature", "never-used", "--period", "hour", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["calls"] == 0
    assert "no budget 'never-used/hour'" in err  # said, so that nothing recorded does not read as nothing spent
    # a per-user status of a feature-wide budget: the note names the budget that exists
    assert main(["budget", "status", "--ledger", path, "--feature", "support-reply", "--period", "day", "--user", "ana"]) == 0
    err = capsys.readouterr().err
    assert "no budget 'support-reply/user=ana/day'" in err and "it has support-reply/day" in err
    assert main(["budget", "status", "--ledger", path, "--feature", "support-reply", "--period", "day"]) == 0
    assert capsys.readouterr().err == ""  # a budget the ledger has: no note


def test_budget_status_needs_a_shared_ledger(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMSPEND_LEDGER", raising=False)
    assert main(["budget", "status"]) == 2
    assert "--ledger" in capsys.readouterr().err


def test_budget_status_does_not_create_a_ledger_at_a_wrong_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "ledgr"
    assert main(["budget", "status", "--ledger", str(typo)]) == 2
    assert f"no ledger at {typo}" in capsys.readouterr().err
    assert not typo.exists()
    assert main(["budget", "status", "--ledger", str(typo), "--feature", "f", "--period", "day"]) == 2
    assert not typo.exists()


def test_spent_validates() -> None:
    with pytest.raises(llmspend.ConfigError):
        llmspend.spent("", period="day")
    with pytest.raises(llmspend.ConfigError, match="period"):
        llmspend.spent("f", period="fortnight")


@pytest.fixture(autouse=True)
def _no_leaked_default() -> Iterator[None]:
    yield
    llmspend.set_default_ledger(None)


def test_input_margin_option_is_validated() -> None:
    with pytest.raises(llmspend.ConfigError, match="input_margin"):
        llmspend.wrap(openai.OpenAI(api_key=API_KEY), budget={"input_margin": -1})
    with pytest.raises(llmspend.ConfigError, match="unknown"):
        llmspend.wrap(openai.OpenAI(api_key=API_KEY), budget={"margin": 0.1})
    assert PriceTable.default().lookup("gpt-4o-mini") is not None


def test_budgets_settle_real_costs_without_the_telemetry_stage(server: FakeLLMServer) -> None:
    from llmspend import Usage
    from llmspend.pricing import price_usage

    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), telemetry=False)
    book = MemoryLedger()
    with llmspend.track(feature="bulk", budget_usd=1.0, period="day", ledger=book):
        r = ask(client)
        streamed = "".join(c.choices[0].delta.content or "" for c in ask(client, stream=True) if c.choices)
    row = PriceTable.default().lookup("gpt-4o-mini")
    assert row is not None and r.usage is not None and streamed
    first = price_usage(Usage(r.usage.prompt_tokens, r.usage.completion_tokens), row).total_usd
    status = spent_on(book)
    assert status.calls == 2 and status.reserved_usd == 0
    # the stream had no usage (nobody asked for it): it is charged from a local count
    assert status.spent_usd > first


def test_demo_shows_costs_by_feature_and_a_refused_call(capsys: pytest.CaptureFixture[str]) -> None:
    from llmspend.demo import run_demo

    result = run_demo(sections=["budget"]).sections["budget"]
    out = capsys.readouterr().out
    assert set(result["by_feature"]) == {"support-reply", "triage", "daily-digest"}
    assert result["by_feature"]["support-reply"]["calls"] == 10
    assert set(result["by_user"]) == {"ana", "ben", "chloe"}
    assert "BudgetExceededError: budget 'bulk-rewrite/day'" in out
    assert result["requests_reached_server"] == result["sent_before_refusal"] > 0
    assert result["fallback_models"][0] == "gpt-4o" and result["fallback_models"][-1] == "gpt-4o-mini"
