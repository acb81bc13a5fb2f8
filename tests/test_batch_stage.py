"""The batch stage through the public API: the official AsyncOpenAI SDK against the fake
server. Concurrent calls that share a prefix become one upstream request; every caller gets
its own answer and its share of the cost; any answer in doubt is asked again on its own."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest

import llmspend
from llmspend.attribution import Attribution, _current
from llmspend.batching import TaggedFormat, read_questions
from llmspend.testing import FakeLLMServer
from llmspend.testing.batch_prompts import batched_questions
from llmspend.testing.server import FakeRequest, FakeResponse

from .conftest import API_KEY, Spans

MODEL = "gpt-4o-mini"
SYSTEM = "You are a quiz master. Answer briefly and precisely. " * 30
QUESTIONS = ["What is the capital of France?", "Who wrote Hamlet?", "What is 7 times 6?", "Which planet is largest?"]


def ask(question: str, system: str = SYSTEM, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 60, "temperature": 0,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}], **extra}


_open: list[openai.AsyncOpenAI] = []


def wrapped(server: FakeLLMServer, spans: Spans, batch: Any = None, **options: Any) -> openai.AsyncOpenAI:
    batch = {"window_ms": 150, "max_size": 4} if batch is None else batch
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=spans.provider, batch=batch, **options)
    _open.append(client)
    return client


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()


async def gather(client: openai.AsyncOpenAI, requests: list[dict[str, Any]]) -> list[Any]:
    return list(await asyncio.gather(*(client.chat.completions.create(**r) for r in requests)))


def merged_requests(server: FakeLLMServer) -> list[FakeRequest]:
    return [r for r in server.requests if batched_questions(r.json()["messages"]) is not None]


def plain_answer(server: FakeLLMServer, request: dict[str, Any]) -> str:
    """What the server answers to ``request`` sent on its own (no llmspend at all)."""
    raw = openai.OpenAI(base_url=server.base_url, api_key=API_KEY)
    return str(raw.chat.completions.create(**request).choices[0].message.content)


def caller_spans(spans: Spans) -> list[Any]:
    return sorted((s for s in spans.finished if not s.name.startswith("batch ")),
                  key=lambda s: s.attributes.get("llmspend.batch.index", 0))


def merged_span(spans: Spans) -> Any:
    (span,) = [s for s in spans.finished if s.name.startswith("batch ")]
    return span


def in_feature(name: str) -> None:
    """Attribute what this test does next to ``name`` (the test's own task context only)."""
    _current.set(Attribution(feature=name))


# -- merging -----------------------------------------------------------------------------------
async def test_concurrent_calls_become_one_request(server: FakeLLMServer, spans: Spans) -> None:
    client = wrapped(server, spans)
    results = await gather(client, [ask(q) for q in QUESTIONS])
    assert len(server.requests) == 1
    sent = server.requests[0].json()
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM}  # the prefix, as the callers sent it
    assert sorted(read_questions(sent["messages"][1]["content"]).values()) == sorted(QUESTIONS)
    assert sent["max_tokens"] == 4 * 60 + 4 * 8
    for question, result in zip(QUESTIONS, results):
        assert result.choices[0].message.content == server.batched_answer(MODEL, question)
        assert result.choices[0].finish_reason == "stop"
        assert result.object == "chat.completion" and result.model.startswith(MODEL)
    assert len({r.id for r in results}) == 4


async def test_calls_held_to_a_budget_limit_go_alone(server: FakeLLMServer, spans: Spans, tmp_path: Any) -> None:
    """A merged request's share (the instruction, an answer longer than the caller's own
    max_tokens) could cost more than a budget reserved: such calls are not merged, so the
    budget's bound holds; counting-only budgets (no limit) still merge."""
    client = wrapped(server, spans)

    async def under(budget: float | None) -> list[Any]:
        with llmspend.track(feature="quiz", budget_usd=budget, period="day", ledger="memory"):
            return await gather(client, [ask(q) for q in QUESTIONS])

    await under(1.0)
    assert len(server.requests) == 4 and merged_requests(server) == []
    assert all(s.attributes["llmspend.batch.not_merged"] == "budget" for s in caller_spans(spans))
    status = llmspend.spent("quiz", period="day", ledger="memory")
    assert status.spent_usd <= 1.0 and status.calls == 4
    server.requests.clear()
    spans.clear()
    await under(None)  # a period without a limit only counts
    assert len(server.requests) == 1 and len(merged_requests(server)) == 1
    spans.clear()
    # a call that would not have been merged anyway is not said to be kept out by the budget
    alone = wrapped(server, spans, batch={"window_ms": 150, "max_size": 4, "auto": False})
    with llmspend.track(feature="quiz", budget_usd=1.0, period="day", ledger="memory"):
        await alone.chat.completions.create(**ask(QUESTIONS[0]))
    assert "llmspend.batch.not_merged" not in spans.attrs()


async def test_shares_add_up_to_the_merged_call(server: FakeLLMServer, spans: Spans) -> None:
    results = await gather(wrapped(server, spans), [ask(q) for q in QUESTIONS])
    merged = merged_span(spans).attributes
    assert sum(r.usage.prompt_tokens for r in results) == merged["llmspend.batch.input_tokens"]
    assert sum(r.usage.completion_tokens for r in results) == merged["llmspend.batch.output_tokens"]
    callers = caller_spans(spans)
    assert sum(s.attributes["llmspend.cost.usd"] for s in callers) == pytest.approx(merged["llmspend.batch.cost_usd"], rel=1e-12)
    # the shared prefix is split evenly: no caller pays much more than another
    inputs = [r.usage.prompt_tokens for r in results]
    assert max(inputs) - min(inputs) < 15
    # the merged span does not carry gen_ai.usage.* itself, so summing those over spans counts each token once
    assert "gen_ai.usage.input_tokens" not in merged and "gen_ai.usage.cost" not in merged


async def test_each_caller_pays_less_than_alone_and_the_saving_is_recorded(server: FakeLLMServer, spans: Spans) -> None:
    results = await gather(wrapped(server, spans), [ask(q) for q in QUESTIONS])
    alone = openai.OpenAI(base_url=server.base_url, api_key=API_KEY).chat.completions.create(**ask(QUESTIONS[0]))
    assert alone.usage is not None
    for result, span in zip(results, caller_spans(spans)):
        assert result.usage.prompt_tokens < alone.usage.prompt_tokens / 2
    for span in caller_spans(spans):
        assert span.attributes["llmspend.cost.saved_usd"] > 0
        assert span.attributes["llmspend.batch.saved_input_tokens"] > 0


async def test_spans_link_callers_and_the_merged_request(server: FakeLLMServer, spans: Spans) -> None:
    await gather(wrapped(server, spans), [ask(q) for q in QUESTIONS])
    merged = merged_span(spans)
    callers = caller_spans(spans)
    assert merged.name == f"batch chat {MODEL}" and merged.kind.name == "CLIENT"
    assert merged.parent is None  # the callers have no common parent: it belongs to none of them
    assert {link.context.span_id for link in merged.links} == {s.context.span_id for s in callers}
    for index, span in enumerate(callers, 1):
        assert span.attributes["llmspend.batch.size"] == 4
        assert span.attributes["llmspend.batch.index"] == index
        assert [link.context.span_id for link in span.links] == [merged.context.span_id]
    assert merged.attributes["llmspend.batch.size"] == 4 and merged.attributes["llmspend.batch.answered"] == 4


async def test_merged_span_is_a_child_of_the_callers_common_parent(server: FakeLLMServer, spans: Spans) -> None:
    tracer = spans.provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as parent:
        await gather(wrapped(server, spans), [ask(q) for q in QUESTIONS[:2]])
    assert merged_span(spans).parent.span_id == parent.get_span_context().span_id


async def test_retries_of_the_merged_request_are_its_own(server: FakeLLMServer, spans: Spans, fast_retry: Any) -> None:
    server.fail_next(429)
    results = await gather(wrapped(server, spans, retry=fast_retry), [ask(q) for q in QUESTIONS])
    assert len(server.requests) == 2  # the merged request, tried twice
    assert [r.choices[0].message.content for r in results] == [server.batched_answer(MODEL, q) for q in QUESTIONS]
    assert [e.name for e in merged_span(spans).events] == ["llmspend.retry"]
    assert all(not s.events for s in caller_spans(spans))


# -- answers in doubt are asked again ----------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "resent"),
    [
        ({"missing": [2]}, {2: "missing"}),
        ({"duplicate": [1]}, {1: "duplicate"}),
        ({"malformed": [3]}, {3: "malformed"}),
        ({"missing": [1], "malformed": [4], "shuffle": True}, {1: "missing", 4: "malformed"}),
        ({"truncate": True}, {4: "malformed"}),
        ({"extra": [7]}, {1: "malformed", 2: "malformed", 3: "malformed", 4: "malformed"}),
    ],
    ids=["missing", "duplicate", "malformed", "several-shuffled", "truncated", "unasked-index"],
)
async def test_only_the_affected_questions_are_asked_again(server: FakeLLMServer, spans: Spans,
                                                           fault: dict[str, Any], resent: dict[int, str]) -> None:
    server.fault_next_batch(**fault)
    client = wrapped(server, spans)
    requests = [ask(q) for q in QUESTIONS]
    results = await asyncio.gather(*(client.chat.completions.create(**r) for r in requests))
    (merged,) = merged_requests(server)
    order = read_questions(merged.json()["messages"][-1]["content"])  # the index each question got
    index_of = {q: i for i, q in order.items()}
    singles = [r.json() for r in server.requests if r is not merged]
    assert sorted(s["messages"][-1]["content"] for s in singles) == sorted(order[i] for i in resent)
    for single in singles:  # sent exactly as the caller sent it
        assert single == ask(single["messages"][-1]["content"])
    spans_by_index = {s.attributes["llmspend.batch.index"]: s for s in caller_spans(spans)}
    for request, result in zip(requests, results):
        question = request["messages"][-1]["content"]
        index = index_of[question]
        content = result.choices[0].message.content
        if index in resent:
            assert content == plain_answer(server, request)
            assert spans_by_index[index].attributes["llmspend.batch.resent"] == resent[index]
        else:
            assert content == server.batched_answer(MODEL, question)
            assert "llmspend.batch.resent" not in spans_by_index[index].attributes
    events = [(e.attributes["llmspend.batch.index"], e.attributes["llmspend.batch.reason"]) for e in merged_span(spans).events]
    assert dict(events) == resent


async def test_costs_still_add_up_when_questions_are_asked_again(server: FakeLLMServer, spans: Spans) -> None:
    server.fault_next_batch(missing=[2], duplicate=[3])
    results = await gather(wrapped(server, spans), [ask(q) for q in QUESTIONS])
    merged = merged_span(spans).attributes
    singles = [r for r in server.requests if batched_questions(r.json()["messages"]) is None]
    raw = openai.OpenAI(base_url=server.base_url, api_key=API_KEY)
    single_prompt = sum(raw.chat.completions.create(**s.json()).usage.prompt_tokens for s in singles)  # type: ignore[union-attr]
    # every caller's usage together = the merged call + the two calls asked again
    assert sum(r.usage.prompt_tokens for r in results) == merged["llmspend.batch.input_tokens"] + single_prompt


async def test_failed_merged_request_falls_back_to_each_call(server: FakeLLMServer, spans: Spans) -> None:
    server.fail_next(400)
    client = wrapped(server, spans)
    requests = [ask(q) for q in QUESTIONS]
    results = await gather(client, requests)
    assert len(server.requests) == 1 + 4
    assert [r.choices[0].message.content for r in results] == [plain_answer(server, r) for r in requests]
    merged = merged_span(spans)
    assert merged.attributes["error.type"] == "400" and merged.status.status_code.name == "ERROR"
    assert all(s.attributes["llmspend.cost.usd"] > 0 for s in caller_spans(spans))


async def test_unreadable_merged_reply_falls_back_to_each_call(server: FakeLLMServer, spans: Spans) -> None:
    chat = server._chat

    def broken_batches(request: FakeRequest) -> FakeResponse:
        if batched_questions(request.json()["messages"]) is not None:
            return FakeResponse(200, b'{"choices": [', {"content-type": "application/json"})
        return chat(request)

    server.route("POST", "/v1/chat/completions", broken_batches)
    requests = [ask(q) for q in QUESTIONS[:3]]
    results = await gather(wrapped(server, spans), requests)
    assert len(server.requests) == 1 + 3
    assert [r.choices[0].message.content for r in results] == [plain_answer(server, r) for r in requests]
    assert merged_span(spans).attributes["error.type"] == "unreadable_response"


async def test_errors_of_a_call_asked_again_reach_its_caller_only(server: FakeLLMServer, spans: Spans) -> None:
    server.fault_next_batch(missing=[1])
    chat = server._chat

    def refuse_singles(request: FakeRequest) -> FakeResponse:
        if batched_questions(request.json()["messages"]) is None:
            return FakeResponse.json({"error": {"message": "nope", "type": "invalid_request_error"}}, 400)
        return chat(request)

    server.route("POST", "/v1/chat/completions", refuse_singles)
    client = wrapped(server, spans)
    results = await asyncio.gather(*(client.chat.completions.create(**ask(q)) for q in QUESTIONS), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], openai.BadRequestError)
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert len(answered) == 3
    merged = merged_span(spans).attributes
    # the caller that got an error carries no share: the three others carry all of the merged call
    assert sum(r.usage.prompt_tokens for r in answered) == merged["llmspend.batch.input_tokens"]


async def test_no_usage_reported_means_estimated_costs(server: FakeLLMServer, spans: Spans) -> None:
    requests = [ask(q, extra_headers={"x-fake-usage": "omit"}) for q in QUESTIONS[:2]]
    results = await gather(wrapped(server, spans), requests)
    assert len(server.requests) == 1
    assert all(r.usage is None for r in results)
    assert [r.choices[0].message.content for r in results] == [server.batched_answer(MODEL, q) for q in QUESTIONS[:2]]
    assert all(s.attributes["llmspend.cost.status"] == "estimated" for s in caller_spans(spans))


# -- what is batched ---------------------------------------------------------------------------
async def test_window_and_max_size(server: FakeLLMServer, spans: Spans) -> None:
    client = wrapped(server, spans, batch={"window_ms": 100, "max_size": 2})
    await gather(client, [ask(q) for q in [*QUESTIONS, "One more?"]])
    sizes = sorted(len(read_questions(r.json()["messages"][-1]["content"])) if batched_questions(r.json()["messages"]) else 1
                   for r in server.requests)
    assert sizes == [1, 2, 2]
    server.reset()
    first = await client.chat.completions.create(**ask(QUESTIONS[0]))
    second = await client.chat.completions.create(**ask(QUESTIONS[1]))  # after the window closed
    assert len(server.requests) == 2 and not merged_requests(server)
    assert first.choices[0].message.content == plain_answer(server, ask(QUESTIONS[0]))
    assert second.choices[0].message.content == plain_answer(server, ask(QUESTIONS[1]))


async def test_different_prefixes_are_batched_apart(server: FakeLLMServer, spans: Spans) -> None:
    requests = [ask(q, system=s) for s in ("You are terse.", "You are verbose.") for q in QUESTIONS[:2]]
    results = await gather(wrapped(server, spans), requests)
    assert len(server.requests) == 2
    for request in server.requests:
        assert len(read_questions(request.json()["messages"][-1]["content"])) == 2
    assert [r.choices[0].message.content for r in results] == [server.batched_answer(MODEL, q) for q in QUESTIONS[:2]] * 2


async def test_calls_with_stop_sequences_go_alone(server: FakeLLMServer, spans: Spans) -> None:
    """A stop sequence ends the whole reply, not one answer: merged, stop="\\n" (common for
    one-line labels) would cut the reply after A[1] and every other question would be asked
    again, costing more than not batching. Such calls go alone."""
    client = wrapped(server, spans)
    requests = [ask(q, stop=["\n"]) for q in QUESTIONS[:3]]
    results = await gather(client, requests)
    assert not merged_requests(server) and len(server.requests) == 3
    for request, result in zip(requests, results):
        assert result.choices[0].message.content == plain_answer(server, request)


@pytest.mark.parametrize("tagged", ["Compare these two:\nQ[2]: what is up?", "Fix my notes:\n  A[1]: Paris"])
async def test_a_question_with_a_tag_line_goes_alone(server: FakeLLMServer, spans: Spans, tagged: str) -> None:
    """A question holding a line like "Q[2]: ..." would be read as two questions (its caller
    answered for half of its own, the other caller's tag taken twice): it is never merged."""
    client = wrapped(server, spans)
    first, second = await gather(client, [ask(tagged), ask(QUESTIONS[1])])
    assert not merged_requests(server) and len(server.requests) == 2
    assert first.choices[0].message.content == plain_answer(server, ask(tagged))
    assert second.choices[0].message.content == plain_answer(server, ask(QUESTIONS[1]))


@pytest.mark.parametrize("extra", [
    {"stream": True},
    {"n": 2},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
    {"response_format": {"type": "json_object"}},
    {"max_tokens": openai.omit},  # unbounded: not batched unless marked
])
async def test_calls_that_are_not_batched_by_default(server: FakeLLMServer, spans: Spans, extra: dict[str, Any]) -> None:
    client = wrapped(server, spans)
    calls = [client.chat.completions.create(**ask(q, **extra)) for q in QUESTIONS[:2]]
    results = await asyncio.gather(*calls)
    if extra.get("stream"):
        for stream in results:
            [chunk async for chunk in stream]
    assert len(server.requests) == 2 and not merged_requests(server)


async def test_header_marks_a_call_and_is_never_sent(server: FakeLLMServer, spans: Spans) -> None:
    client = wrapped(server, spans)
    unbounded = {"max_tokens": openai.omit}
    await gather(client, [ask(q, extra_headers={"X-LLMSpend-Batch": "on"}, **unbounded) for q in QUESTIONS[:2]])
    assert len(server.requests) == 1 and merged_requests(server)
    assert "max_tokens" not in server.requests[0].json()
    server.reset()
    await gather(client, [ask(q, extra_headers={"x-llmspend-batch": "off"}) for q in QUESTIONS[:2]])
    assert len(server.requests) == 2 and not merged_requests(server)
    server.reset()
    # a tool call cannot be merged, whatever it is marked
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await gather(client, [ask(q, tools=tools, extra_headers={"x-llmspend-batch": "on"}) for q in QUESTIONS[:2]])
    assert len(server.requests) == 2
    for request in server.requests:
        assert "x-llmspend-batch" not in {k.lower() for k in request.headers}


async def test_unknown_header_value_is_ignored_with_a_warning(server: FakeLLMServer, spans: Spans,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        await gather(wrapped(server, spans), [ask(q, extra_headers={"x-llmspend-batch": "perhaps"}) for q in QUESTIONS[:2]])
    assert "x-llmspend-batch: 'perhaps'" in caplog.text
    assert len(server.requests) == 1  # treated as unmarked: bounded calls batch by default


async def test_per_feature_marking(server: FakeLLMServer, spans: Spans) -> None:
    client = wrapped(server, spans, batch={"window_ms": 150, "features": {"faq": True, "chat": False}, "auto": True})
    in_feature("faq")
    await gather(client, [ask(q, max_tokens=openai.omit) for q in QUESTIONS[:2]])
    assert len(server.requests) == 1  # unbounded, but the feature asks for batching
    server.reset()
    in_feature("chat")
    await gather(client, [ask(q) for q in QUESTIONS[:2]])
    assert len(server.requests) == 2  # bounded, but the feature says never
    server.reset()
    in_feature("other")
    manual = wrapped(server, spans, batch={"window_ms": 150, "features": ["faq"], "auto": False})
    await gather(manual, [ask(q) for q in QUESTIONS[:2]])
    assert len(server.requests) == 2  # auto off: only marked calls batch


async def test_a_caller_that_gives_up_leaves_the_others_batched(server: FakeLLMServer, spans: Spans) -> None:
    client = wrapped(server, spans, batch={"window_ms": 300, "max_size": 8})

    async def impatient() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.chat.completions.create(**ask("I cannot wait?")), 0.05)

    results = await asyncio.gather(impatient(), *(client.chat.completions.create(**ask(q)) for q in QUESTIONS[:3]))
    (merged,) = server.requests
    assert sorted(read_questions(merged.json()["messages"][-1]["content"]).values()) == sorted(QUESTIONS[:3])
    assert [r.choices[0].message.content for r in results[1:]] == [server.batched_answer(MODEL, q) for q in QUESTIONS[:3]]


# -- llmspend.batch() --------------------------------------------------------------------------
async def test_batch_helper_keeps_order_and_merges(server: FakeLLMServer, spans: Spans) -> None:
    client = wrapped(server, spans, batch={"window_ms": 100, "max_size": 3})
    questions = [f"Question number {i}?" for i in range(6)]
    results = await llmspend.batch(client, [ask(q, max_tokens=openai.omit) for q in questions])
    assert [r.choices[0].message.content for r in results] == [server.batched_answer(MODEL, q) for q in questions]
    assert len(server.requests) == 2  # 3 + 3


async def test_batch_helper_returns_exceptions_in_place(server: FakeLLMServer, spans: Spans) -> None:
    client = wrapped(server, spans, retry=False)
    server.fail_next(400)  # the merged request fails, then the first call on its own
    server.fail_next(400)
    results = await llmspend.batch(client, [ask(q) for q in QUESTIONS[:2]], return_exceptions=True)
    assert sum(isinstance(r, openai.BadRequestError) for r in results) == 1
    assert sum(not isinstance(r, BaseException) for r in results) == 1


async def test_batch_helper_needs_the_batch_stage(server: FakeLLMServer) -> None:
    plain = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY))
    with pytest.raises(llmspend.ConfigError, match="wrap\\(openai.AsyncOpenAI\\(...\\), batch=True\\)"):
        await llmspend.batch(plain, [ask("x")])
    with pytest.raises(llmspend.ConfigError, match="concurrency"):
        await llmspend.batch(wrapped(server, Spans()), [ask("x")], concurrency=0)


# -- configuration -----------------------------------------------------------------------------
def test_sync_clients_get_a_clear_error(server: FakeLLMServer) -> None:
    with pytest.raises(llmspend.ConfigError) as info:
        llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), batch=True)
    message = str(info.value)
    assert "batch stage works only with async clients" in message and "openai.AsyncOpenAI" in message


@pytest.mark.parametrize(("value", "match"), [
    ({"window_ms": 0}, "window_ms"),
    ({"window_ms": "20"}, "window_ms"),
    ({"max_size": 1}, "max_size"),
    ({"max_size": 100}, "max_size"),
    ({"features": "faq"}, "features"),
    ({"features": {"faq": "yes"}}, "features"),
    ({"auto": 1}, "auto"),
    ({"format": object()}, "format"),
    ({"window": 20}, "known: window_ms"),
    ("yes", "batch= takes"),
])
def test_bad_options_fail_at_construction(value: Any, match: str) -> None:
    with pytest.raises(llmspend.ConfigError, match=match):
        llmspend.wrap(openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key=API_KEY), batch=value)


def test_options_object_is_accepted() -> None:
    options = llmspend.BatchOptions(window_ms=5, max_size=3, features=["faq"])
    assert options.features == {"faq": True}
    client = llmspend.wrap(openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key=API_KEY), batch=options)
    stage = client._client._transport.pipeline.stage("batch")
    assert stage is not None and stage.options is options


def test_demo_section_shows_the_saving(capsys: pytest.CaptureFixture[str]) -> None:
    from llmspend.demo import run_demo

    result = run_demo(sections=["batch"]).sections["batch"]
    alone, batched = result["alone"], result["batched"]
    assert alone["calls"] == batched["calls"] == alone["requests"] == 8
    assert batched["requests"] == 2  # 8 questions, 4 to a request
    assert batched["input_tokens"] < alone["input_tokens"] / 2
    assert 0 < batched["usd"] < alone["usd"] and batched["saved_usd"] > 0
    assert "batched (batch=True)" in capsys.readouterr().out


async def test_a_fault_of_the_stage_fails_open(server: FakeLLMServer, spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    class BrokenFormat(TaggedFormat):
        def parse(self, text: str, count: int, *, truncated: bool = False) -> Any:
            raise RuntimeError("parser bug")

    requests = [ask(q) for q in QUESTIONS[:3]]
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        results = await gather(wrapped(server, spans, batch=llmspend.BatchOptions(window_ms=150, format=BrokenFormat())), requests)
    assert len(server.requests) == 1 + 3  # the merged request, then each call on its own
    assert [r.choices[0].message.content for r in results] == [plain_answer(server, r) for r in requests]
    assert all(s.attributes["llmspend.batch.error"] == "RuntimeError: parser bug" for s in caller_spans(spans))
    merged = merged_span(spans)  # ended, not leaked
    assert merged.attributes["error.type"] == "RuntimeError"
    assert "batching failed (RuntimeError: parser bug)" in caplog.text


def test_a_pipeline_of_unknown_kind_passes_sync_calls_on_without_the_header(server: FakeLLMServer) -> None:
    import httpx2

    from llmspend.transports.httpx2 import PipelineTransport

    pipeline = llmspend.build_pipeline(batch=True)  # is_async not given: not refused at construction
    with httpx2.Client(transport=PipelineTransport(pipeline), base_url=server.base_url) as client:
        response = client.post("/chat/completions", json=ask(QUESTIONS[0]), headers={"x-llmspend-batch": "on"})
    assert response.status_code == 200 and len(server.requests) == 1
    assert "x-llmspend-batch" not in {k.lower() for k in server.requests[0].headers}


async def test_a_caller_that_gives_up_after_the_merged_request_is_not_asked_for_again(server: FakeLLMServer, spans: Spans) -> None:
    server.latency_s = 0.3
    server.fault_next_batch(missing=[1, 2])
    client = wrapped(server, spans, batch={"window_ms": 150, "max_size": 2})

    async def impatient() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.chat.completions.create(**ask(QUESTIONS[0])), 0.2)

    _, patient = await asyncio.gather(impatient(), client.chat.completions.create(**ask(QUESTIONS[1])))
    assert patient.choices[0].message.content == plain_answer(server, ask(QUESTIONS[1]))
    assert len(server.requests) == 1 + 1 + 1  # merged, the patient caller's again, and plain_answer's own
    assert not any("llmspend.batch.error" in (s.attributes or {}) for s in spans.finished)
    assert merged_span(spans).attributes.get("error.type") is None


async def test_a_caller_that_gives_up_in_flight_leaves_its_share_to_the_others(
        server: FakeLLMServer, spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    """The merged call is paid in full whoever is still waiting for it: the share of a caller
    that gave up (its span already ended) goes to those that get an answer, so the callers'
    costs still add up to the merged call's; and nothing is written on the ended span."""
    server.latency_s = 0.3
    client = wrapped(server, spans, batch={"window_ms": 100, "max_size": 3})

    async def impatient() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.chat.completions.create(**ask(QUESTIONS[0])), 0.2)

    with caplog.at_level(logging.WARNING):
        _, *patient = await asyncio.gather(impatient(), *(client.chat.completions.create(**ask(q)) for q in QUESTIONS[1:3]))
    assert len(merged_requests(server)) == 1
    merged = merged_span(spans).attributes
    assert sum(r.usage.prompt_tokens for r in patient) == merged["llmspend.batch.input_tokens"]
    assert sum(r.usage.completion_tokens for r in patient) == merged["llmspend.batch.output_tokens"]
    answered = [s for s in caller_spans(spans) if "llmspend.cost.usd" in s.attributes]
    assert sum(s.attributes["llmspend.cost.usd"] for s in answered) == pytest.approx(merged["llmspend.batch.cost_usd"], rel=1e-12)
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]


async def test_callers_with_other_timeouts_are_not_merged(server: FakeLLMServer, spans: Spans) -> None:
    """A merged request goes out with its first caller's timeout: a caller that asked for a
    shorter one must not wait out the other's, so it is grouped apart and times out as asked."""
    server.latency_s = 0.5
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0),
                           tracer_provider=spans.provider, batch={"window_ms": 50, "max_size": 2})
    _open.append(client)
    patient, hasty = await asyncio.gather(
        client.chat.completions.create(**ask(QUESTIONS[0]), timeout=30),
        client.chat.completions.create(**ask(QUESTIONS[1]), timeout=0.2),
        return_exceptions=True,
    )
    assert isinstance(hasty, openai.APITimeoutError)
    assert not merged_requests(server)
    assert patient.choices[0].message.content == plain_answer(server, ask(QUESTIONS[0]))


# -- providers' own ways ------------------------------------------------------------------------
def _reply(request: FakeRequest, usage: dict[str, Any], finish: str = "stop", **extra: Any) -> FakeResponse:
    """A chat completion in a provider's own shape: ``A[i]: answer to <question>`` lines for a
    batched prompt, ``answer to <question>`` for one asked alone."""
    body = request.json()
    questions = batched_questions(body["messages"])
    text = ("\n".join(f"A[{i}]: answer to {q}" for i, q in questions.items()) if questions
            else f"answer to {body['messages'][-1]['content']}")
    return FakeResponse.json({
        "id": "gen-1", "object": "chat.completion", "created": 5, "model": body["model"], **extra,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": usage})


def via_proxy(server: FakeLLMServer, spans: Spans, base_url: str, answer: Any) -> openai.AsyncOpenAI:
    """An async client of the provider at ``base_url``, reached through the fake server as a
    forward proxy (so llmspend sees the provider's host), which answers with ``answer``."""
    server.route_pattern("POST", r"http://.*", answer)
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=base_url, api_key="sk-provider-SECRET",
                                              http_client=httpx2.AsyncClient(proxy=server.url)),
                           tracer_provider=spans.provider, batch={"window_ms": 150, "max_size": 4})
    _open.append(client)
    return client


@pytest.mark.parametrize("extra", [{"web_search_options": {}}, {"model": "gpt-4o-search-preview"}])
async def test_calls_that_search_the_web_go_alone(server: FakeLLMServer, spans: Spans, extra: dict[str, Any]) -> None:
    """A search model searches for what its request asks and cites what it found in the
    answer's annotations: merged, one search would serve four questions and the citations
    would belong to no caller (each caller's answer lost its own). Never merged, even marked."""
    client = wrapped(server, spans)
    await gather(client, [ask(q, **extra, extra_headers={"x-llmspend-batch": "on"}) for q in QUESTIONS[:3]])
    assert len(server.requests) == 3 and not merged_requests(server)


async def test_perplexity_calls_go_alone(server: FakeLLMServer, spans: Spans) -> None:
    """Perplexity searches on every call and returns that call's citations beside the answer:
    a merged reply's citations would be every caller's at once, and reach none of them."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100, "cost": {"total_cost": 0.0061}}
    client = via_proxy(server, spans, "http://api.perplexity.ai",
                       lambda request: _reply(request, usage, citations=[f"https://example.com/{len(server.requests)}"]))
    results = await gather(client, [ask(q, model="sonar") for q in QUESTIONS[:2]])
    assert len(server.requests) == 2 and not merged_requests(server)
    assert [r.choices[0].message.content for r in results] == [f"answer to {q}" for q in QUESTIONS[:2]]
    assert all(getattr(r, "citations", None) for r in results)
    assert [s.attributes["llmspend.cost.usd"] for s in caller_spans(spans)] == [pytest.approx(0.0061)] * 2


async def test_a_reply_cut_by_the_content_filter_asks_its_last_answer_again(server: FakeLLMServer, spans: Spans) -> None:
    """Azure OpenAI stops a reply whose output trips its content filter (finish_reason
    "content_filter"): the answer written last is cut short, like one cut by the token limit,
    and must not reach its caller as a whole answer with finish_reason "stop"."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}

    def answer(request: FakeRequest) -> FakeResponse:
        reply = _reply(request, usage)
        if batched_questions(request.json()["messages"]) is None:
            return reply
        data = json.loads(reply.body)  # type: ignore[arg-type]
        data["choices"][0]["message"]["content"] = data["choices"][0]["message"]["content"].rsplit(" ", 2)[0]
        data["choices"][0]["finish_reason"] = "content_filter"
        return FakeResponse.json(data)

    server.route("POST", "/v1/chat/completions", answer)
    results = await gather(wrapped(server, spans), [ask(q) for q in QUESTIONS[:2]])
    assert len(merged_requests(server)) == 1 and len(server.requests) == 2
    assert [r.choices[0].message.content for r in results] == [f"answer to {q}" for q in QUESTIONS[:2]]
    assert caller_spans(spans)[1].attributes["llmspend.batch.resent"] == "malformed"


@pytest.mark.parametrize("model", [
    "meta-llama/llama-4-scout-17b-16e-instruct",  # a row in the table, at another host's price: parts by price
    "acme/unpriced-model-1",  # no row: parts by tokens
])
async def test_a_cost_openrouter_reports_is_shared_among_the_callers(server: FakeLLMServer, spans: Spans, model: str) -> None:
    """OpenRouter states what a call cost (usage.cost), and that figure is the bill, not the
    table's price for the model on some other host. The callers' parts of a merged call's
    reported cost add up to it; one whose question was asked again pays its part plus the
    cost reported for its own call."""
    merged_usage = {"prompt_tokens": 1500, "completion_tokens": 90, "total_tokens": 1590, "cost": 0.003,
                    "is_byok": False, "cost_details": {"upstream_inference_cost": None}}
    alone_usage = {**merged_usage, "prompt_tokens": 700, "completion_tokens": 30, "total_tokens": 730, "cost": 0.001}

    def answer(request: FakeRequest) -> FakeResponse:
        if batched_questions(request.json()["messages"]) is None:
            return _reply(request, alone_usage)
        reply = json.loads(_reply(request, merged_usage).body)  # type: ignore[arg-type]
        reply["choices"][0]["message"]["content"] = "\n".join(  # no answer to question 2
            line for line in reply["choices"][0]["message"]["content"].splitlines() if not line.startswith("A[2]"))
        return FakeResponse.json(reply)

    client = via_proxy(server, spans, "http://openrouter.ai/api/v1", answer)
    results = await gather(client, [ask(q, model=model) for q in QUESTIONS[:3]])
    assert len(merged_requests(server)) == 1 and len(server.requests) == 2
    assert [r.choices[0].message.content for r in results] == [f"answer to {q}" for q in QUESTIONS[:3]]
    callers = [s.attributes for s in caller_spans(spans)]
    assert all(a["llmspend.cost.reported"] is True and a["llmspend.cost.status"] == "ok" for a in callers)
    assert sum(a["llmspend.cost.usd"] for a in callers) == pytest.approx(0.003 + 0.001, rel=1e-9)
    assert callers[1]["llmspend.batch.resent"] == "missing" and callers[1]["llmspend.cost.usd"] > 0.001
    assert merged_span(spans).attributes["llmspend.batch.cost_usd"] == pytest.approx(0.003)
