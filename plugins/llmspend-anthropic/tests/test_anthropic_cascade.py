"""Cascades whose steps mix OpenAI-compatible models and Claude, through both official SDKs
against one fake server serving both APIs: an OpenAI client whose plan escalates to Claude, an
Anthropic client whose plan escalates to gpt-4o, candidates on the other API accepted,
streaming callers served in their own API's stream format. Each step goes to its own API with
its own key (never the caller's), gets its own span priced as that provider's call, and the
caller gets one normal answer of its own SDK naming the model that answered."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import anthropic
import openai
import pytest
from helpers_anthropic import API_KEY as ANTHROPIC_KEY
from helpers_anthropic import Spans, price

import llmspend
from llmspend.cascade import Plan, Step
from llmspend.ledger import MemoryLedger
from llmspend.pricing.table import ModelPrice, coerce_prices
from llmspend.scoring.logistic import LogisticScorer
from llmspend.testing import FakeLLMServer, FakeRequest, FakeResponse, RecordingRetryStage
from llmspend_anthropic.testing import FakeAnthropicAPI

OPENAI_KEY = "sk-openai-SECRET-9876543210"
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-5"
MINI, GPT4O = "gpt-4o-mini", "gpt-4o"
SNAPSHOTS = {HAIKU: "claude-haiku-4-5-20251001", SONNET: "claude-sonnet-4-5-20250929",
             MINI: "gpt-4o-mini-2024-07-18", GPT4O: "gpt-4o-2024-08-06"}


def conf_scorer(model: str, after: Sequence[str] = ()) -> LogisticScorer:
    """P(correct) = sigmoid(5 + 5 * mean log-probability): ~0.99 at -0.01, ~0 at -3 (or none)."""
    return LogisticScorer(features=("conf",), weights=(5.0,), bias=5.0, mean=(0.0,), scale=(1.0,),
                          models=(model,), after=tuple(after))


def fixed_scorer(model: str, accept: bool, after: Sequence[str] = ()) -> LogisticScorer:
    return LogisticScorer(features=("answer_len",), weights=(0.0,), bias=10.0 if accept else -10.0, mean=(0.0,),
                          scale=(1.0,), models=(model,), after=tuple(after))


def plan(first: Step, scorer: LogisticScorer, last: Step) -> Plan:
    return Plan(steps=(first, last), scorers={"first": scorer}, alias="support-bot")


def answers(model: str, messages: list[dict[str, Any]]) -> tuple[str, float]:
    """gpt-4o-mini is sure of easy questions only; gpt-4o always answers Paris."""
    question = str(messages[-1]["content"])
    if model == MINI:
        return ("Paris", -0.01) if "easy" in question else ("Lyon", -3.0)
    return "Paris", -0.001


@pytest.fixture
def both(server: FakeLLMServer, api: FakeAnthropicAPI) -> FakeLLMServer:
    """One server, both APIs: /v1/chat/completions and /v1/messages."""
    server.answer_with(answers)
    return server


def openai_raw(server: FakeLLMServer, *, is_async: bool = False) -> Any:
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(base_url=server.base_url, api_key=OPENAI_KEY)


def anthropic_raw(server: FakeLLMServer, *, is_async: bool = False) -> Any:
    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(base_url=server.url, api_key=ANTHROPIC_KEY, open_telemetry=False)


def header(request: FakeRequest, name: str) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == name), None)


def parent_and_steps(spans: Spans) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    finished = spans.finished()
    (parent,) = [s for s in finished if s.name.startswith("cascade ")]
    steps = sorted((s for s in finished if s is not parent), key=lambda s: s.attributes["llmspend.cascade.step"])
    for step in steps:
        assert step.parent is not None and step.parent.span_id == parent.context.span_id
    return dict(parent.attributes or {}), [dict(s.attributes or {}) for s in steps]


def anthropic_cost(message: dict[str, Any], row: ModelPrice) -> float:
    usage = message["usage"]
    return price(row, uncached=usage["input_tokens"], read=usage["cache_read_input_tokens"],
                 write_5m=usage["cache_creation_input_tokens"], output=usage["output_tokens"])


def claude_answer(api: FakeAnthropicAPI, request: FakeRequest) -> dict[str, Any]:
    """What the fake Messages API answered to ``request`` (it is deterministic)."""
    return api.message(json.loads(request.body))


def haiku_row() -> ModelPrice:
    row = coerce_prices(None).lookup(HAIKU, provider="anthropic")
    assert row is not None
    return row


async def call(fn: Any, is_async: bool, **kw: Any) -> Any:
    return await fn(**kw) if is_async else fn(**kw)


async def final_message(client: Any, is_async: bool, **ask: Any) -> Any:
    """What ``messages.stream()`` makes of the stream it reads."""
    if is_async:
        async with client.messages.stream(**ask) as stream:
            return await stream.get_final_message()
    with client.messages.stream(**ask) as stream:
        return stream.get_final_message()


# -- an OpenAI client whose plan escalates to Claude -----------------------------------------
def openai_to_claude(server: FakeLLMServer, spans: Spans, *, is_async: bool = False, **options: Any) -> Any:
    escalating = plan(Step(MINI, 0.5, "first"), conf_scorer(MINI), Step(HAIKU, provider="anthropic"))
    cascade = {"plan": escalating, "clients": {"anthropic": anthropic_raw(server)}}  # a sync client serves an async caller too
    return llmspend.wrap(openai_raw(server, is_async=is_async), cascade=cascade, tracer_provider=spans.provider, **options)


@pytest.mark.parametrize("is_async", [False, True])
async def test_openai_client_escalates_to_claude(both: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                 is_async: bool) -> None:
    client = openai_to_claude(both, spans, is_async=is_async)
    ask = dict(model="support-bot", temperature=0.2, max_tokens=120, messages=[
        {"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "a hard one"}])
    completion = await call(client.chat.completions.create, is_async, **ask)
    assert isinstance(completion, openai.types.chat.ChatCompletion)  # the caller's own SDK type
    to_openai, to_anthropic = both.requests
    assert (to_openai.path, json.loads(to_openai.body)["model"]) == ("/v1/chat/completions", MINI)
    assert header(to_openai, "authorization") == f"Bearer {OPENAI_KEY}"
    # the step on Claude: its API, its format, its key, none of the caller's
    assert to_anthropic.path == "/v1/messages"
    assert header(to_anthropic, "authorization") == f"Bearer {ANTHROPIC_KEY}" and OPENAI_KEY not in str(to_anthropic.headers)
    assert header(to_anthropic, "anthropic-version") is not None
    sent = json.loads(to_anthropic.body)
    assert sent == {"model": HAIKU, "max_tokens": 120, "system": "Answer in one word.",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "a hard one"}]}]}  # no temperature: API 2026-10-21
    message = claude_answer(api, to_anthropic)
    assert completion.model == SNAPSHOTS[HAIKU]  # the model that answered
    assert completion.choices[0].message.content == message["content"][0]["text"]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == message["usage"]["output_tokens"]
    parent, (first, second) = parent_and_steps(spans)
    assert (first["gen_ai.provider.name"], first["gen_ai.request.model"]) == ("openai", MINI)
    assert (second["gen_ai.provider.name"], second["gen_ai.request.model"]) == ("anthropic", HAIKU)
    assert second["gen_ai.response.model"] == SNAPSHOTS[HAIKU] and second["server.port"] == both.port
    assert first["llmspend.cost.usd"] > 0
    assert second["llmspend.cost.usd"] == pytest.approx(anthropic_cost(message, haiku_row()))  # priced as Claude
    assert parent["llmspend.cascade.cost_usd"] == pytest.approx(first["llmspend.cost.usd"] + second["llmspend.cost.usd"])
    assert parent["llmspend.cascade.accepted_model"] == HAIKU and parent["llmspend.cascade.accepted_step"] == 2


@pytest.mark.parametrize("is_async", [False, True])
async def test_openai_client_accepts_its_own_cheap_answer(both: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    client = openai_to_claude(both, spans, is_async=is_async)
    completion = await call(client.chat.completions.create, is_async, model="support-bot",
                            messages=[{"role": "user", "content": "an easy one"}])
    assert completion.model == SNAPSHOTS[MINI] and completion.choices[0].message.content == "Paris"
    assert [r.path for r in both.requests] == ["/v1/chat/completions"]  # Claude never asked


@pytest.mark.parametrize("is_async", [False, True])
async def test_openai_stream_escalated_to_claude_is_an_openai_stream(both: FakeLLMServer, api: FakeAnthropicAPI,
                                                                    spans: Spans, is_async: bool) -> None:
    client = openai_to_claude(both, spans, is_async=is_async)
    stream = await call(client.chat.completions.create, is_async, model="support-bot", stream=True,
                        stream_options={"include_usage": True}, messages=[{"role": "user", "content": "a hard one"}])
    chunks = [c async for c in stream] if is_async else list(stream)
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    message = claude_answer(api, both.requests[-1])
    assert "stream" not in json.loads(both.requests[-1].body)  # read whole, to be translated
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == message["content"][0]["text"]
    assert {c.model for c in chunks} == {SNAPSHOTS[HAIKU]}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == message["usage"]["output_tokens"]
    parent, steps = parent_and_steps(spans)
    assert parent["llmspend.cascade.accepted_model"] == HAIKU and len(steps) == 2


# -- an Anthropic client whose plan escalates to gpt-4o --------------------------------------
def claude_to_openai(server: FakeLLMServer, spans: Spans, *, is_async: bool = False, **options: Any) -> Any:
    escalating = plan(Step(HAIKU, 0.5, "first"), fixed_scorer(HAIKU, accept=False), Step(GPT4O, provider="openai"))
    cascade = {"plan": escalating, "clients": {"openai": openai_raw(server)}}
    return llmspend.wrap(anthropic_raw(server, is_async=is_async), cascade=cascade, tracer_provider=spans.provider, **options)


@pytest.mark.parametrize("is_async", [False, True])
async def test_anthropic_client_escalates_to_gpt4o(both: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                   is_async: bool) -> None:
    client = claude_to_openai(both, spans, is_async=is_async)
    message = await call(client.messages.create, is_async, model="support-bot", max_tokens=200,
                         system="Answer in one word.", messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert isinstance(message, anthropic.types.Message)
    assert message.model == SNAPSHOTS[GPT4O] and message.content[0].type == "text"
    assert message.content[0].text == "Paris" and message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    to_anthropic, to_openai = both.requests
    assert (to_anthropic.path, json.loads(to_anthropic.body)["model"]) == ("/v1/messages", HAIKU)
    assert to_openai.path == "/v1/chat/completions"
    assert header(to_openai, "authorization") == f"Bearer {OPENAI_KEY}" and ANTHROPIC_KEY not in str(to_openai.headers)
    assert header(to_openai, "anthropic-version") is None
    assert json.loads(to_openai.body) == {"model": GPT4O, "max_tokens": 200, "messages": [
        {"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "What is the capital of France?"}]}
    parent, (first, second) = parent_and_steps(spans)
    assert (first["gen_ai.provider.name"], first["gen_ai.request.model"]) == ("anthropic", HAIKU)
    assert (second["gen_ai.provider.name"], second["gen_ai.request.model"]) == ("openai", GPT4O)
    assert second["gen_ai.usage.input_tokens"] == message.usage.input_tokens  # translated usage, same counts
    assert first["llmspend.cost.usd"] > 0 and second["llmspend.cost.usd"] > 0
    assert parent["llmspend.cascade.cost_usd"] == pytest.approx(first["llmspend.cost.usd"] + second["llmspend.cost.usd"])
    assert parent["llmspend.cascade.accepted_model"] == GPT4O


@pytest.mark.parametrize("stream", [False, True])
def test_a_report_counts_each_step_once_under_the_sdks_own_span(both: FakeLLMServer, spans: Spans, tmp_path: Any,
                                                                 stream: bool) -> None:
    """The anthropic SDK's span wraps the whole cascade (its parent is not a step): it is marked
    as priced below, so a report over every span counts the two steps, not three calls."""
    from helpers_anthropic import SDK_SCOPE

    from llmspend.report import build_report

    escalating = plan(Step(HAIKU, 0.5, "first"), fixed_scorer(HAIKU, accept=False), Step(GPT4O, provider="openai"))
    sdk = anthropic.Anthropic(base_url=both.url, api_key=ANTHROPIC_KEY, open_telemetry={"tracer_provider": spans.provider})
    client = llmspend.wrap(sdk, cascade={"plan": escalating, "clients": {"openai": openai_raw(both)}},
                           tracer_provider=spans.provider)
    kwargs: dict[str, Any] = {"model": "support-bot", "max_tokens": 200,
                              "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    if stream:
        with client.messages.stream(**kwargs) as events:
            events.get_final_message()
    else:
        client.messages.create(**kwargs)
    (theirs,) = spans.finished(SDK_SCOPE)
    assert (theirs.attributes or {})["llmspend.priced_in_child"] is True
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(s.to_json(indent=None) + "\n" for s in spans.finished(None)))
    total = build_report(path).total
    assert (total.calls, total.priced_calls, total.unknown_cost_calls) == (2, 2, 0)
    _, steps = parent_and_steps(spans)
    assert total.cost_usd == pytest.approx(sum(s["llmspend.cost.usd"] for s in steps))


@pytest.mark.parametrize("is_async", [False, True])
async def test_anthropic_stream_escalated_to_gpt4o_is_a_messages_stream(both: FakeLLMServer, spans: Spans,
                                                                        is_async: bool) -> None:
    client = claude_to_openai(both, spans, is_async=is_async)
    ask = dict(model="support-bot", max_tokens=200, messages=[{"role": "user", "content": "What is the capital of France?"}])
    final = await final_message(client, is_async, **ask)
    assert final.model == SNAPSHOTS[GPT4O] and final.content[0].type == "text" and final.content[0].text == "Paris"
    assert final.usage.output_tokens > 0
    assert all("stream" not in json.loads(r.body) for r in both.requests)  # both read whole
    raw = await call(client.messages.create, is_async, stream=True, **ask)
    events = [e.type async for e in raw] if is_async else [e.type for e in raw]
    assert events[0] == "message_start" and events[-2:] == ["message_delta", "message_stop"]


def test_last_steps_error_reaches_the_caller(both: FakeLLMServer, spans: Spans) -> None:
    both.route("POST", "/v1/chat/completions", lambda request: FakeResponse.json(
        {"error": {"message": "model gpt-4o is not available to this key", "type": "invalid_request_error"}}, 404))
    client = claude_to_openai(both, spans)
    with pytest.raises(anthropic.NotFoundError, match="not available"):  # its status, as the caller's SDK raises it
        client.messages.create(model="support-bot", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    parent, (_, second) = parent_and_steps(spans)
    assert second["error.type"] == "404" and parent["llmspend.cascade.accepted_model"] == GPT4O
    assert parent["llmspend.cascade.failed_steps"] == 1


# -- candidates on the other API, accepted ---------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_accepts_a_claude_candidate(both: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                  stream: bool) -> None:
    cheap_claude = plan(Step(HAIKU, 0.5, "first", provider="anthropic"), fixed_scorer(HAIKU, accept=True), Step(GPT4O))
    client = llmspend.wrap(openai_raw(both), cascade={"plan": cheap_claude, "clients": {"anthropic": anthropic_raw(both)}},
                           tracer_provider=spans.provider)
    ask = dict(model="support-bot", messages=[{"role": "user", "content": "Where is my order?"}])
    if stream:
        chunks = list(client.chat.completions.create(**ask, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert {c.model for c in chunks} == {SNAPSHOTS[HAIKU]}
        assert all(c.usage is None for c in chunks)  # the caller did not ask for usage
    else:
        completion = client.chat.completions.create(**ask)
        text, model = completion.choices[0].message.content, completion.model
        assert model == SNAPSHOTS[HAIKU] and completion.choices[0].logprobs is None
    assert [r.path for r in both.requests] == ["/v1/messages"]
    body = json.loads(both.requests[0].body)
    assert body["max_tokens"] == 4096 and "logprobs" not in body  # the API requires max_tokens; it has no logprobs
    assert text == claude_answer(api, both.requests[0])["content"][0]["text"]
    parent, (step,) = parent_and_steps(spans)
    assert step["gen_ai.provider.name"] == "anthropic" and parent["llmspend.cascade.accepted_step"] == 1
    (event,) = [e for s in spans.finished() if s.name.startswith("cascade ") for e in s.events]
    assert event.attributes is not None and event.attributes["llmspend.cascade.accepted"] is True


@pytest.mark.parametrize("is_async", [False, True])
async def test_anthropic_client_accepts_a_gpt4o_mini_candidate(both: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    cheap_openai = plan(Step(MINI, 0.5, "first", provider="openai"), conf_scorer(MINI), Step(SONNET))
    client = llmspend.wrap(anthropic_raw(both, is_async=is_async), tracer_provider=spans.provider,
                           cascade={"plan": cheap_openai, "clients": {"openai": openai_raw(both)}})
    ask = dict(model="support-bot", max_tokens=100, messages=[{"role": "user", "content": "an easy one"}])
    message = await call(client.messages.create, is_async, **ask)
    assert message.model == SNAPSHOTS[MINI] and message.content[0].text == "Paris"
    assert json.loads(both.requests[0].body)["logprobs"] is True  # the scorer reads gpt-4o-mini's log-probability
    hard = await call(client.messages.create, is_async, **{**ask, "messages": [{"role": "user", "content": "a hard one"}]})
    assert hard.model == SNAPSHOTS[SONNET]  # escalated to Claude, through the caller's own client
    assert [r.path for r in both.requests] == ["/v1/chat/completions", "/v1/chat/completions", "/v1/messages"]
    assert "logprobs" not in json.loads(both.requests[2].body)


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_claude_answer_bought_is_served_when_the_budget_refuses_gpt4o(
        both: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, is_async: bool, stream: bool) -> None:
    # haiku's answer is rejected, and gpt-4o (up to $0.0005 at 50 output tokens) does not fit
    # what is left of $0.0004: the Claude answer already paid for reaches the OpenAI caller
    rejected = plan(Step(HAIKU, 0.5, "first", provider="anthropic"), fixed_scorer(HAIKU, accept=False), Step(GPT4O))
    client = llmspend.wrap(openai_raw(both, is_async=is_async), tracer_provider=spans.provider, retry=False,
                           cascade={"plan": rejected, "clients": {"anthropic": anthropic_raw(both)}})
    ledger = MemoryLedger()
    ask = dict(model="support-bot", max_tokens=50, stream=stream, messages=[{"role": "user", "content": "Where is my order?"}])
    with llmspend.track(feature="support-reply", budget_usd=0.0004, period="day", ledger=ledger):
        got = await call(client.chat.completions.create, is_async, **ask)
        if stream:
            chunks = [c async for c in got] if is_async else list(got)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            models = {c.model for c in chunks}
        else:
            text, models = got.choices[0].message.content, {got.model}
    assert [r.path for r in both.requests] == ["/v1/messages"]  # gpt-4o was never sent
    assert models == {SNAPSHOTS[HAIKU]} and text == claude_answer(api, both.requests[0])["content"][0]["text"]
    parent, (first, refused) = parent_and_steps(spans)
    assert parent["llmspend.cascade.escalation_refused"] == "support-reply/day"
    assert parent["llmspend.cascade.accepted_model"] == HAIKU and parent["llmspend.cascade.accepted_step"] == 1
    assert refused["llmspend.budget.refused"] == "support-reply/day" and "llmspend.cost.usd" not in refused
    assert parent["llmspend.cascade.cost_usd"] == pytest.approx(first["llmspend.cost.usd"])  # charged once
    assert llmspend.spent("support-reply", ledger=ledger).spent_usd == pytest.approx(first["llmspend.cost.usd"])


# -- an all-Claude plan on an Anthropic client (the caller's own API throughout) ---------------
@pytest.mark.parametrize("is_async", [False, True])
async def test_anthropic_client_runs_an_all_claude_plan(both: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                        is_async: bool) -> None:
    cheap = plan(Step(HAIKU, 0.5, "first"), fixed_scorer(HAIKU, accept=True), Step(SONNET))
    client = llmspend.wrap(anthropic_raw(both, is_async=is_async), cascade=cheap, tracer_provider=spans.provider)
    ask = dict(model="support-bot", max_tokens=100, thinking={"type": "adaptive"},
               messages=[{"role": "user", "content": "Where is my order?"}])
    message = await call(client.messages.create, is_async, **ask)
    assert message.model == SNAPSHOTS[HAIKU]
    assert [b.type for b in message.content] == ["thinking", "text"]  # the API's own answer: nothing lost in translation
    final = await final_message(client, is_async, **ask)
    assert final.model == SNAPSHOTS[HAIKU] and final.content[1].text == message.content[1].text  # re-told as events
    assert [json.loads(r.body)["model"] for r in both.requests] == [HAIKU, HAIKU]
    assert all("stream" not in json.loads(r.body) and "logprobs" not in json.loads(r.body) for r in both.requests)


# -- the same API through another client: translated nothing, streamed live --------------------
def test_a_second_openai_account_streams_live(both: FakeLLMServer, spans: Spans) -> None:
    backup_key = "sk-openai-backup-SECRET-1111"
    backup = openai.OpenAI(base_url=both.base_url, api_key=backup_key)
    two_accounts = plan(Step(MINI, 0.5, "first"), conf_scorer(MINI), Step(GPT4O, provider="openai-backup"))
    client = llmspend.wrap(openai_raw(both), cascade={"plan": two_accounts, "clients": {"openai-backup": backup}},
                           tracer_provider=spans.provider)
    chunks = list(client.chat.completions.create(model="support-bot", stream=True, messages=[{"role": "user", "content": "a hard one"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris"
    first, last = both.requests
    assert header(first, "authorization") == f"Bearer {OPENAI_KEY}" and header(last, "authorization") == f"Bearer {backup_key}"
    assert json.loads(last.body)["stream"] is True  # the caller's own API: its stream passes through as it comes
    parent, (_, second) = parent_and_steps(spans)
    assert second["gen_ai.request.model"] == GPT4O and second["llmspend.stream.complete"] is True
    assert parent["llmspend.cascade.cost_usd"] > 0


def test_the_cache_serves_steps_on_the_other_api(both: FakeLLMServer, spans: Spans, tmp_path: Any) -> None:
    client = openai_to_claude(both, spans, cache=str(tmp_path / "cache"))
    ask = dict(model="support-bot", messages=[{"role": "user", "content": "a hard one"}],
               extra_headers={"x-llmspend-cache": "always"})  # reaches the Claude step too (no sampling there)
    first = client.chat.completions.create(**ask)
    second = client.chat.completions.create(**ask)
    assert second.model_dump() == first.model_dump() and len(both.requests) == 2  # nothing sent the second time
    assert all(header(r, "x-llmspend-cache") is None for r in both.requests)  # read and removed by the cache
    steps = [dict(s.attributes or {}) for s in spans.finished() if not s.name.startswith("cascade ")]
    hits = [s for s in steps if s.get("llmspend.cache.hit")]
    assert [s["gen_ai.provider.name"] for s in hits] == ["openai", "anthropic"]
    assert all(s["llmspend.cost.usd"] == 0.0 and s["llmspend.cost.saved_usd"] > 0 for s in hits)


# -- retries, secrets, configuration -----------------------------------------------------------
def test_retries_apply_to_the_step_on_the_other_api(both: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    retry = RecordingRetryStage()
    cheap_claude = plan(Step(HAIKU, 0.5, "first", provider="anthropic"), fixed_scorer(HAIKU, accept=True), Step(GPT4O))
    client = llmspend.wrap(openai_raw(both), retry=retry, tracer_provider=spans.provider,
                           cascade={"plan": cheap_claude, "clients": {"anthropic": anthropic_raw(both)}})
    api.fail_next(529, retry_after=0.5)
    completion = client.chat.completions.create(model="support-bot", messages=[{"role": "user", "content": "hi"}])
    assert completion.model == SNAPSHOTS[HAIKU]
    assert [r.path for r in both.requests] == ["/v1/messages", "/v1/messages"] and retry.waits == [0.5]
    _, (step,) = parent_and_steps(spans)
    (span,) = [s for s in spans.finished() if s.attributes and s.attributes.get("llmspend.cascade.step") == 1]
    assert [e.name for e in span.events] == ["llmspend.retry"] and step["llmspend.cost.usd"] > 0


def test_keys_appear_in_no_span_or_log(both: FakeLLMServer, spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = openai_to_claude(both, spans)
    client.chat.completions.create(model="support-bot", messages=[{"role": "user", "content": "a hard one"}])
    both.route("POST", "/v1/messages", lambda request: FakeResponse(200, b"not json", {"content-type": "application/json"}))
    with pytest.raises(ValueError):  # a malformed answer passes on unchanged: the caller's SDK cannot read it either
        client.chat.completions.create(model="support-bot", messages=[{"role": "user", "content": "another hard one"}])
    recorded = [str(dict(s.attributes or {})) + str([dict(e.attributes or {}) for e in s.events]) for s in spans.finished()]
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, "SECRET"):
        assert not any(secret in text for text in recorded)
        assert secret not in caplog.text
    assert "anthropic" in caplog.text  # the untranslatable answer was logged, without a key


def test_configuration_errors_say_what_to_fix(both: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    mixed = plan(Step(MINI, 0.5, "first"), conf_scorer(MINI), Step(HAIKU, provider="anthropic"))
    with pytest.raises(llmspend.ConfigError, match=r"claude-haiku-4-5.*runs on anthropic.*clients"):
        llmspend.wrap(openai_raw(both), cascade=mixed)  # a Claude model would go to the OpenAI API
    same_api = plan(Step(MINI, 0.5, "first"), conf_scorer(MINI), Step(GPT4O))
    with pytest.raises(llmspend.ConfigError, match=r"clients \['anthropic'\]: no step"):
        llmspend.wrap(openai_raw(both), cascade={"plan": same_api, "clients": {"anthropic": anthropic_raw(both)}})
    for bad in ("sk-ant-a-key", object()):
        with pytest.raises(llmspend.ConfigError, match="official SDK client"):
            llmspend.wrap(openai_raw(both), cascade={"plan": mixed, "clients": {"anthropic": bad}})
    with pytest.raises(llmspend.ConfigError, match="dict from provider name"):
        llmspend.wrap(openai_raw(both), cascade={"plan": mixed, "clients": [anthropic_raw(both)]})
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "ANTHROPIC_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    keyless = anthropic.Anthropic(base_url=both.url)
    with pytest.raises(llmspend.ConfigError, match="no credentials"):
        llmspend.wrap(openai_raw(both), cascade={"plan": mixed, "clients": {"anthropic": keyless}})
    # an informational provider name that no installed adapter speaks goes through the client as before
    named = plan(Step(MINI, 0.5, "first", provider="groq"), conf_scorer(MINI), Step(GPT4O))
    assert llmspend.wrap(openai_raw(both), cascade=named) is not None


# -- structured output: the caller's JSON schema goes with the step to the other API --------
@pytest.mark.parametrize("is_async", [False, True])
async def test_structured_output_reaches_a_claude_candidate(both: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    # Before, response_format was dropped on the way to Claude: its plain-text answer was
    # accepted and the caller's parse() failed on it.
    from pydantic import BaseModel

    class Answer(BaseModel):
        answer: str

    cheap_claude = plan(Step(HAIKU, 0.5, "first", provider="anthropic"), fixed_scorer(HAIKU, accept=True), Step(GPT4O))
    client = llmspend.wrap(openai_raw(both, is_async=is_async), tracer_provider=spans.provider,
                           cascade={"plan": cheap_claude, "clients": {"anthropic": anthropic_raw(both)}})
    ask = dict(model="support-bot", messages=[{"role": "user", "content": "Where is my order?"}], response_format=Answer)
    parsed = await call(client.chat.completions.parse, is_async, **ask)
    assert parsed.model == SNAPSHOTS[HAIKU] and isinstance(parsed.choices[0].message.parsed, Answer)
    (sent,) = [json.loads(r.body) for r in both.requests]
    assert sent["output_config"]["format"] == {"type": "json_schema", "schema": Answer.model_json_schema() | {
        "additionalProperties": False}}


@pytest.mark.parametrize("is_async", [False, True])
async def test_structured_output_reaches_an_openai_candidate(both: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    cheap_openai = plan(Step(MINI, 0.5, "first", provider="openai"), fixed_scorer(MINI, accept=True), Step(SONNET))
    client = llmspend.wrap(anthropic_raw(both, is_async=is_async), tracer_provider=spans.provider,
                           cascade={"plan": cheap_openai, "clients": {"openai": openai_raw(both)}})
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    message = await call(client.messages.create, is_async, model="support-bot", max_tokens=100,
                         messages=[{"role": "user", "content": "an easy one"}],
                         output_config={"format": {"type": "json_schema", "schema": schema}})
    assert message.model == SNAPSHOTS[MINI] and json.loads(message.content[0].text) == {"answer": "Paris"}
    (sent,) = [json.loads(r.body) for r in both.requests]
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


@pytest.mark.parametrize("is_async", [False, True])
async def test_json_mode_without_a_schema_skips_a_claude_candidate(both: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    cheap_claude = plan(Step(HAIKU, 0.5, "first", provider="anthropic"), fixed_scorer(HAIKU, accept=True), Step(GPT4O))
    client = llmspend.wrap(openai_raw(both, is_async=is_async), tracer_provider=spans.provider,
                           cascade={"plan": cheap_claude, "clients": {"anthropic": anthropic_raw(both)}})
    ask = dict(model="support-bot", messages=[{"role": "user", "content": "an easy one"}],
               response_format={"type": "json_object"})
    completion = await call(client.chat.completions.create, is_async, **ask)
    assert completion.model == SNAPSHOTS[GPT4O] and json.loads(completion.choices[0].message.content) == {"answer": "Paris"}
    assert [r.path for r in both.requests] == ["/v1/chat/completions"]  # Claude was not asked: it has no such mode
    parent, _ = parent_and_steps(spans)
    assert parent["llmspend.cascade.escalation_reason"] == f"ConfigError from {HAIKU}"
    assert "without a schema" in parent["llmspend.cascade.error"]
    # a plan that ends on Claude cannot serve it: a clear error, not a plain-text answer
    ends_on_claude = llmspend.wrap(openai_raw(both, is_async=is_async), tracer_provider=spans.provider,
                                   cascade={"plan": plan(Step(MINI, 0.5, "first"), conf_scorer(MINI), Step(HAIKU, provider="anthropic")),
                                            "clients": {"anthropic": anthropic_raw(both)}})
    with pytest.raises(llmspend.ConfigError, match="json_schema"):
        await call(ends_on_claude.chat.completions.create, is_async, **{**ask, "messages": [{"role": "user", "content": "a hard one"}]})
