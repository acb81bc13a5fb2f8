"""Cost exactness over the matrix of call kinds, and one test per peer pitfall that applies
(../shared/ANCHORS.md, "What goes wrong in peers' cost tracking")."""

from __future__ import annotations

import logging
from typing import Any

import openai
import pytest

import llmspend
from llmspend.pricing import PriceTable, price_usage
from llmspend.pricing.table import ModelPrice
from llmspend.providers.base import Usage
from llmspend.testing import FakeLLMServer, FakeResponse

from .conftest import API_KEY, Spans

TABLE = PriceTable.default()
LONG = "Policy: " + " ".join(f"rule {i} says be precise and kind." for i in range(300))  # > 1,024 tokens


def expected_usd(model: str, prompt: int, cached: int, completion: int, reasoning: int = 0) -> float:
    row = TABLE.lookup(model, provider="openai")
    assert row is not None and row.cache_read is not None
    visible = completion - reasoning
    reasoning_rate = row.reasoning if row.reasoning is not None else row.output
    return ((prompt - cached) * row.input + cached * row.cache_read + visible * row.output + reasoning * reasoning_rate) / 1e6


@pytest.fixture
def client(server: FakeLLMServer, spans: Spans) -> openai.OpenAI:
    return llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)


def test_plain_call(client: openai.OpenAI, spans: Spans) -> None:
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    u = r.usage
    assert u is not None
    a = spans.attrs()
    assert a["llmspend.cost.usd"] == pytest.approx(expected_usd("gpt-4o", u.prompt_tokens, 0, u.completion_tokens))
    assert a["gen_ai.usage.cost"] == a["llmspend.cost.usd"]
    parts = sum(a[f"llmspend.cost.{p}_usd"] for p in ("input", "cache_read", "cache_write", "output"))
    assert parts == pytest.approx(a["llmspend.cost.usd"])
    assert a["llmspend.cost.status"] == "ok" and a["llmspend.cost.estimated"] is False


def test_cached_input_counted_once(client: openai.OpenAI, spans: Spans) -> None:
    """Pitfall 2: input_tokens already includes cached tokens; they must not be charged twice."""
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "q"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    r = client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    u = r.usage
    assert u is not None and u.prompt_tokens_details is not None
    cached = u.prompt_tokens_details.cached_tokens or 0
    assert cached >= 1024
    a = spans.attrs()
    assert a["gen_ai.usage.input_tokens"] == u.prompt_tokens  # includes the cached ones
    assert a["gen_ai.usage.cache_read.input_tokens"] == cached
    assert a["llmspend.cost.usd"] == pytest.approx(expected_usd("gpt-4o-mini", u.prompt_tokens, cached, u.completion_tokens))
    row = TABLE.lookup("gpt-4o-mini")
    assert row is not None
    assert a["llmspend.cost.input_usd"] == pytest.approx((u.prompt_tokens - cached) * row.input / 1e6)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_cache_writes_priced_at_their_rate(server: FakeLLMServer, spans: Spans, api: str) -> None:
    """GPT-5.6 and later bill prompt-cache writes at 1.25x input and report them inside the
    input count (``cache_write_tokens`` in the input details): priced once, at their own rate."""
    usage = ({"prompt_tokens": 10_000, "completion_tokens": 1_000, "total_tokens": 11_000,
              "prompt_tokens_details": {"cached_tokens": 2_000, "cache_write_tokens": 6_000}}
             if api == "chat" else
             {"input_tokens": 10_000, "output_tokens": 1_000, "total_tokens": 11_000,
              "input_tokens_details": {"cached_tokens": 2_000, "cache_write_tokens": 6_000},
              "output_tokens_details": {"reasoning_tokens": 0}})
    body = ({"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-5.6-sol", "usage": usage,
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
            if api == "chat" else
            {"id": "r", "object": "response", "created_at": 1, "model": "gpt-5.6-sol", "status": "completed", "usage": usage,
             "output": [{"type": "message", "id": "m", "role": "assistant", "status": "completed",
                         "content": [{"type": "output_text", "text": "hi", "annotations": []}]}]})
    server.route("POST", "/v1/chat/completions" if api == "chat" else "/v1/responses", lambda request: FakeResponse.json(body))
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    if api == "chat":
        client.chat.completions.create(model="gpt-5.6-sol", messages=[{"role": "user", "content": "q"}])
    else:
        client.responses.create(model="gpt-5.6-sol", input="q")
    row = TABLE.lookup("gpt-5.6-sol", provider="openai")
    assert row is not None and row.cache_write == 1.25 * row.input and row.cache_read is not None
    a = spans.attrs()
    assert a["gen_ai.usage.input_tokens"] == 10_000  # every input token, once
    assert a["gen_ai.usage.cache_read.input_tokens"] == 2_000 and a["gen_ai.usage.cache_creation.input_tokens"] == 6_000
    assert a["llmspend.cost.input_usd"] == pytest.approx(2_000 * row.input / 1e6)  # 10k - 2k read - 6k written
    assert a["llmspend.cost.cache_write_usd"] == pytest.approx(6_000 * row.cache_write / 1e6)
    assert a["llmspend.cost.usd"] == pytest.approx(
        (2_000 * row.input + 2_000 * row.cache_read + 6_000 * row.cache_write + 1_000 * row.output) / 1e6)


def test_reasoning_tokens_priced_once(client: openai.OpenAI, spans: Spans) -> None:
    r = client.chat.completions.create(model="o3-mini", messages=[{"role": "user", "content": "think"}])
    u = r.usage
    assert u is not None and u.completion_tokens_details is not None
    reasoning = u.completion_tokens_details.reasoning_tokens or 0
    assert 0 < reasoning < u.completion_tokens
    a = spans.attrs()
    assert a["gen_ai.usage.reasoning.output_tokens"] == reasoning
    assert a["gen_ai.usage.output_tokens"] == u.completion_tokens
    assert a["llmspend.cost.usd"] == pytest.approx(
        expected_usd("o3-mini", u.prompt_tokens, 0, u.completion_tokens, reasoning)
    )


def test_streamed_cached_tokens_kept(client: openai.OpenAI, spans: Spans) -> None:
    """Pitfall 1: cached tokens dropped on streamed calls inflate the cost."""
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "q"}]
    client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))  # type: ignore[arg-type]
    a = spans.attrs()
    assert a["gen_ai.usage.cache_read.input_tokens"] >= 1024
    assert a["llmspend.cost.cache_read_usd"] > 0
    assert a["llmspend.cost.usd"] == pytest.approx(
        expected_usd("gpt-4o", a["gen_ai.usage.input_tokens"], a["gen_ai.usage.cache_read.input_tokens"], a["gen_ai.usage.output_tokens"])
    )


def _priced_answer(server: FakeLLMServer, spans: Spans, provider: str, model: str, usage: dict[str, Any]) -> tuple[ModelPrice, dict[str, Any]]:
    """The shipped row for ``model`` and the span of one chat call answered with ``usage``."""
    server.route("POST", "/v1/chat/completions", lambda request: FakeResponse.json({
        "id": "c1", "object": "chat.completion", "created": 1, "model": model, "usage": usage,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}))
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), provider=provider,
                           tracer_provider=spans.provider)
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    row = PriceTable.default().lookup(model, provider=provider)
    assert row is not None
    return row, spans.attrs()


def test_deepseek_cache_hits_priced_at_the_cached_rate(server: FakeLLMServer, spans: Spans) -> None:
    # DeepSeek reports hits as prompt_cache_hit_tokens, not prompt_tokens_details.cached_tokens;
    # before, they were charged at the full input rate (10 to 50 times the cached one).
    row, a = _priced_answer(server, spans, "deepseek", "deepseek-chat", {
        "prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010,
        "prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 200})
    assert row.cache_read is not None
    assert a["gen_ai.usage.cache_read.input_tokens"] == 800
    assert a["llmspend.cost.usd"] == pytest.approx((200 * row.input + 800 * row.cache_read + 10 * row.output) / 1e6)


def test_reasoning_left_out_of_completion_tokens_is_still_charged(server: FakeLLMServer, spans: Spans) -> None:
    # A server that reports thought tokens apart (total = prompt + completion + reasoning):
    # before, reasoning was capped at completion_tokens (5 here) and mostly went unpriced.
    row, a = _priced_answer(server, spans, "gcp.gemini", "gemini-2.5-flash", {
        "prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 86,
        "completion_tokens_details": {"reasoning_tokens": 60}})
    assert (a["gen_ai.usage.output_tokens"], a["gen_ai.usage.reasoning.output_tokens"]) == (65, 60)
    assert a["llmspend.cost.usd"] == pytest.approx((21 * row.input + 65 * row.output) / 1e6)


def test_counts_written_as_whole_floats_are_read(server: FakeLLMServer, spans: Spans) -> None:
    # A server that keeps numbers as doubles writes 800.0: before, the cached count read as 0
    # and the 800 tokens were charged at the full input rate.
    row, a = _priced_answer(server, spans, "openai", "gpt-4o", {
        "prompt_tokens": 1000.0, "completion_tokens": 10.0, "total_tokens": 1010.0,
        "prompt_tokens_details": {"cached_tokens": 800.0}, "completion_tokens_details": {"reasoning_tokens": 0.0}})
    assert row.cache_read is not None
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.cache_read.input_tokens"]) == (1000, 800)
    assert a["llmspend.cost.usd"] == pytest.approx((200 * row.input + 800 * row.cache_read + 10 * row.output) / 1e6)


@pytest.mark.parametrize("details", [
    {"prompt_tokens_details": {"cached_tokens": -800}},
    {"prompt_tokens_details": {"cached_tokens": "800"}},
    {"prompt_tokens_details": {"cached_tokens": 800.5}},
    {"completion_tokens_details": {"reasoning_tokens": True}},
    {"prompt_cache_hit_tokens": -1},
], ids=["negative", "text", "fraction", "bool", "deepseek-negative"])
def test_a_detail_count_that_is_not_a_count_makes_the_cost_unknown(server: FakeLLMServer, spans: Spans,
                                                                   details: dict[str, Any]) -> None:
    # Read as 0 (as before), cached or reasoning tokens would be priced at another rate and the
    # figure reported as exact; the cost cannot be known, and is reported as unknown.
    _, a = _priced_answer(server, spans, "openai", "gpt-4o", {
        "prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010, **details})
    assert a["llmspend.cost.status"] == "no_usage" and "llmspend.cost.usd" not in a


@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_cost_equals_reported_usage(client: openai.OpenAI, spans: Spans, server: FakeLLMServer, include_usage: bool) -> None:
    """Pitfall 5: streams without include_usage must not give zero tokens and $0."""
    kwargs: dict[str, object] = {"stream_options": {"include_usage": True}} if include_usage else {}
    list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "s"}], stream=True, **kwargs))  # type: ignore[call-overload]
    streamed = spans.attrs()
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "s"}])
    plain = spans.attrs()
    assert streamed["llmspend.cost.estimated"] is False
    assert streamed["gen_ai.usage.output_tokens"] == plain["gen_ai.usage.output_tokens"] > 0
    assert streamed["llmspend.cost.usd"] == pytest.approx(plain["llmspend.cost.usd"])


def test_provider_usage_wins_over_estimate(client: openai.OpenAI, spans: Spans, server: FakeLLMServer) -> None:
    """Pitfall 6: a tokenizer estimate must not replace provider-reported usage."""
    server.route("POST", "/v1/chat/completions", lambda req: FakeResponse.json({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1234, "completion_tokens": 567, "total_tokens": 1801},
    }))
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    a = spans.attrs()
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1234, 567)
    assert a["llmspend.cost.usd"] == pytest.approx(expected_usd("gpt-4o", 1234, 0, 567))


def test_missing_usage_is_estimated_and_marked(client: openai.OpenAI, spans: Spans) -> None:
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-fake-usage": "omit"})
    assert r.usage is None
    a = spans.attrs()
    assert a["llmspend.cost.estimated"] is True and a["llmspend.cost.status"] == "estimated"
    from llmspend.tokens import count_chat_messages, count_text

    assert a["gen_ai.usage.input_tokens"] == count_chat_messages([{"role": "user", "content": "hi"}], "gpt-4o")
    assert a["gen_ai.usage.output_tokens"] == count_text(r.choices[0].message.content or "", "gpt-4o")


def test_unknown_model_is_unknown_not_zero(client: openai.OpenAI, spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    """Pitfall 7: unknown or new models silently priced at $0."""
    from llmspend.telemetry import recorder

    recorder._warned.clear()
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        for model in ("my-finetune-1", "my-finetune-1", "my-finetune-2"):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    for span in spans.finished:
        a = dict(span.attributes or {})
        assert a["llmspend.cost.status"] == "unknown_model"
        assert "llmspend.cost.usd" not in a and "gen_ai.usage.cost" not in a
        assert a["gen_ai.usage.input_tokens"] > 0  # usage is still reported
    warnings = [r.getMessage() for r in caplog.records if "no price for model" in r.getMessage()]
    assert len(warnings) == 2  # once per model per process
    assert "prices=" in warnings[0]


def test_price_override_makes_a_model_known(server: FakeLLMServer, spans: Spans) -> None:
    client = llmspend.wrap(
        openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
        tracer_provider=spans.provider,
        prices={"my-finetune-1": {"input": 3.0, "output": 12.0}},
    )
    r = client.chat.completions.create(model="my-finetune-1", messages=[{"role": "user", "content": "hi"}])
    u = r.usage
    assert u is not None
    assert spans.attrs()["llmspend.cost.usd"] == pytest.approx((u.prompt_tokens * 3.0 + u.completion_tokens * 12.0) / 1e6)


def test_dated_snapshot_priced_as_its_own_row(client: openai.OpenAI, spans: Spans) -> None:
    client.chat.completions.create(model="gpt-4o-2024-05-13", messages=[{"role": "user", "content": "hi"}])
    a = spans.attrs()
    old = TABLE.lookup("gpt-4o-2024-05-13")
    assert old is not None and old.model == "gpt-4o-2024-05-13"
    assert a["llmspend.cost.usd"] == pytest.approx((a["gen_ai.usage.input_tokens"] * old.input + a["gen_ai.usage.output_tokens"] * old.output) / 1e6)


# -- pure pricing rules -------------------------------------------------------------------
ANTHROPIC_LIKE = PriceTable.from_dict({"providers": {"anthropic": {"claude-x": {
    "input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75, "cache_write_1h": 6.0,
    "batch_input": 1.5, "batch_output": 7.5,
}}}}).lookup("claude-x")


def test_cache_writes_charged_once() -> None:
    """Pitfall 3: cache-write tokens charged at the write rate instead of, not on top of, input."""
    assert ANTHROPIC_LIKE is not None
    usage = Usage(input_tokens=100 + 2000 + 3000 + 500, output_tokens=50, cache_read_tokens=3000,
                  cache_write_tokens=2500, cache_write_1h_tokens=500)
    cost = price_usage(usage, ANTHROPIC_LIKE)
    assert usage.uncached_input_tokens == 100
    assert cost.input_usd == pytest.approx(100 * 3.0 / 1e6)
    assert cost.cache_read_usd == pytest.approx(3000 * 0.3 / 1e6)
    assert cost.cache_write_usd == pytest.approx((2000 * 3.75 + 500 * 6.0) / 1e6)
    assert cost.output_usd == pytest.approx(50 * 15.0 / 1e6)
    assert cost.total_usd == pytest.approx(cost.input_usd + cost.cache_read_usd + cost.cache_write_usd + cost.output_usd)


def test_batch_discount_applied() -> None:
    """Pitfall 8 (second half): batch calls priced at batch rates."""
    assert ANTHROPIC_LIKE is not None
    usage = Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=400)
    full, batch = price_usage(usage, ANTHROPIC_LIKE), price_usage(usage, ANTHROPIC_LIKE, batch=True)
    assert batch.batch and not full.batch
    assert batch.total_usd == pytest.approx(full.total_usd / 2)  # type: ignore[operator]


def test_long_context_and_tiers() -> None:
    table = PriceTable.from_dict({"providers": {"p": {"m": {
        "input": 1.0, "output": 2.0,
        "long_context": {"threshold": 1000, "input": 2.0, "output": 4.0},
        "tiers": {"flex": {"input": 0.5, "output": 1.0}},
    }}}})
    row = table.lookup("m")
    assert row is not None
    assert price_usage(Usage(input_tokens=1000, output_tokens=10), row).total_usd == pytest.approx((1000 * 1 + 10 * 2) / 1e6)
    assert price_usage(Usage(input_tokens=1001, output_tokens=10), row).total_usd == pytest.approx((1001 * 2 + 10 * 4) / 1e6)
    assert price_usage(Usage(input_tokens=10, output_tokens=10), row, service_tier="flex").total_usd == pytest.approx((10 * 0.5 + 10 * 1) / 1e6)


def test_openai_fast_tier_is_priced_as_priority(server: FakeLLMServer, spans: Spans) -> None:
    # OpenAI renamed priority processing "fast"; an answer reporting service_tier "fast" was
    # priced at the standard rates, a fraction of what priority costs.
    usage = {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010,
             "prompt_tokens_details": {"cached_tokens": 200}}
    costs = {}
    for tier in ("default", "priority", "fast"):
        server.route("POST", "/v1/chat/completions", lambda request, tier=tier: FakeResponse.json({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o", "usage": usage,
            "service_tier": tier,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}))
        client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        costs[tier] = spans.attrs()["llmspend.cost.usd"]
    row = PriceTable.default().lookup("gpt-4o", provider="openai")
    assert row is not None
    priority = row.tiers["priority"]
    assert costs["priority"] == pytest.approx((800 * priority["input"] + 200 * priority["cache_read"] + 10 * priority["output"]) / 1e6)
    assert costs["fast"] == pytest.approx(costs["priority"]) and costs["fast"] > costs["default"]


def test_tier_rates_rise_above_the_long_context_threshold() -> None:
    # OpenAI: prompts over the threshold are "priced at 2x input and 1.5x output for the full
    # session for standard, batch, and flex"; before, a flex answer above it was priced at the
    # flat short-context flex rates (half what it costs).
    table = PriceTable.from_dict({"providers": {"p": {"m": {
        "input": 2.0, "output": 10.0, "cache_read": 0.2,
        "long_context": {"threshold": 1000, "input": 4.0, "output": 15.0, "cache_read": 0.4},
        "tiers": {"flex": {"input": 1.0, "output": 5.0, "cache_read": 0.1}},
    }}}})
    row = table.lookup("m")
    assert row is not None
    short = Usage(input_tokens=1000, output_tokens=10, cache_read_tokens=200)
    assert price_usage(short, row, service_tier="flex").total_usd == pytest.approx((800 * 1.0 + 200 * 0.1 + 10 * 5.0) / 1e6)
    long = Usage(input_tokens=1001, output_tokens=10, cache_read_tokens=200)
    assert price_usage(long, row, service_tier="flex").total_usd == pytest.approx((801 * 2.0 + 200 * 0.2 + 10 * 7.5) / 1e6)


def test_bad_price_rows_are_config_errors() -> None:
    with pytest.raises(llmspend.ConfigError, match="needs 'output'"):
        PriceTable.from_dict({"providers": {"p": {"m": {"input": 1}}}})
    with pytest.raises(llmspend.ConfigError, match="unknown field"):
        PriceTable.from_dict({"providers": {"p": {"m": {"input": 1, "output": 1, "inptu": 2}}}})
    with pytest.raises(llmspend.ConfigError, match=">= 0"):
        PriceTable.from_dict({"providers": {"p": {"m": {"input": -1, "output": 1}}}})
