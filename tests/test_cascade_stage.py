"""The cascade stage through the official openai SDK, sync and async, against the fake server:
accept at step 1, escalate, scorer failure, streaming, spans and costs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import openai
import pytest

import llmspend
from llmspend.cascade import Plan, Step
from llmspend.scoring.logistic import LogisticScorer
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Spans

CHEAP, MIDDLE, STRONG = "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"
SNAPSHOT = {CHEAP: "gpt-4o-mini-2024-07-18", STRONG: "gpt-4o-2024-08-06", MIDDLE: MIDDLE}


def _scorer(model: str, after: Sequence[str] = (), features: tuple[str, ...] = ("conf",)) -> LogisticScorer:
    # P(correct) = sigmoid(5 + 5 * conf): ~0.99 at conf -0.01, ~0 at conf -3
    n = len(features)
    return LogisticScorer(features=features, weights=(5.0,) + (0.0,) * (n - 1), bias=5.0, mean=(0.0,) * n,
                          scale=(1.0,) * n, models=(model,), after=tuple(after))


def two_step_plan(alias: str = "support-bot") -> Plan:
    return Plan(steps=(Step(CHEAP, 0.5, "cheap"), Step(STRONG)), scorers={"cheap": _scorer(CHEAP)}, alias=alias)


def answers(model: str, messages: list[dict[str, Any]]) -> tuple[str, float]:
    question = str(messages[-1]["content"])
    if model == CHEAP:
        return ("Paris", -0.01) if "easy" in question else ("Lyon", -3.0)
    return "Paris", -0.001


@pytest.fixture
def quiz(server: FakeLLMServer) -> FakeLLMServer:
    server.answer_with(answers)
    return server


def client(server: FakeLLMServer, spans: Spans, *, is_async: bool = False, **options: Any) -> Any:
    options.setdefault("cascade", two_step_plan())
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return llmspend.wrap(cls(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider, **options)


async def ask(c: Any, question: str, *, is_async: bool, model: str = "support-bot", **kw: Any) -> Any:
    create = c.chat.completions.create
    messages = [{"role": "user", "content": question}]
    return await create(model=model, messages=messages, **kw) if is_async else create(model=model, messages=messages, **kw)


def sent_models(server: FakeLLMServer) -> list[str]:
    return [r.json()["model"] for r in server.requests]


def parent_and_steps(spans: Spans) -> tuple[Any, list[Any]]:
    finished = spans.finished
    (parent,) = [s for s in finished if s.name.startswith("cascade ")]
    steps = [s for s in finished if s is not parent]
    for step in steps:
        assert step.parent is not None and step.parent.span_id == parent.context.span_id
        assert step.context.trace_id == parent.context.trace_id
    return parent, steps


@pytest.mark.parametrize("is_async", [False, True])
async def test_accepts_the_cheap_answer(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    c = client(quiz, spans, is_async=is_async)
    r = await ask(c, "an easy one", is_async=is_async)
    assert r.model == SNAPSHOT[CHEAP]
    assert r.choices[0].message.content == "Paris"
    assert r.choices[0].logprobs is None  # asked for by the stage, not by the caller: removed
    assert sent_models(quiz) == [CHEAP]
    assert quiz.requests[0].json()["logprobs"] is True
    parent, steps = parent_and_steps(spans)
    a = dict(parent.attributes or {})
    assert a["llmspend.cascade.accepted_step"] == 1
    assert a["llmspend.cascade.accepted_model"] == CHEAP
    assert a["llmspend.cascade.chain"] == (CHEAP, STRONG)
    assert a["llmspend.cascade.requested_model"] == "support-bot"
    assert "gen_ai.operation.name" not in a  # not an LLM call itself: reports count the steps
    assert a["llmspend.scorer.provider"] == "python"
    assert a["llmspend.cascade.scorer_ms"] >= 0
    assert "gen_ai.usage.cost" not in a  # the steps carry it; no double counting
    (step,) = steps
    assert step.attributes["llmspend.cascade.step"] == 1
    assert a["llmspend.cascade.cost_usd"] == pytest.approx(step.attributes["llmspend.cost.usd"])
    (event,) = parent.events
    assert event.attributes["llmspend.cascade.accepted"] is True
    assert event.attributes["llmspend.cascade.score"] > 0.9


@pytest.mark.parametrize("is_async", [False, True])
async def test_escalates_when_the_score_is_low(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    c = client(quiz, spans, is_async=is_async)
    r = await ask(c, "a hard one", is_async=is_async, logprobs=True)
    assert r.model == SNAPSHOT[STRONG]
    assert r.choices[0].message.content == "Paris"
    assert r.choices[0].logprobs is not None  # the caller asked for them
    assert sent_models(quiz) == [CHEAP, STRONG]
    parent, steps = parent_and_steps(spans)
    a = dict(parent.attributes or {})
    assert a["llmspend.cascade.accepted_step"] == 2
    assert a["llmspend.cascade.steps_called"] == 2
    costs = [s.attributes["llmspend.cost.usd"] for s in steps]
    assert len(costs) == 2 and all(cost > 0 for cost in costs)
    assert a["llmspend.cascade.cost_usd"] == pytest.approx(sum(costs))
    assert sorted(s.attributes["llmspend.cascade.step"] for s in steps) == [1, 2]
    (event,) = parent.events
    assert event.attributes["llmspend.cascade.accepted"] is False
    assert event.attributes["llmspend.cascade.score"] < event.attributes["llmspend.cascade.threshold"]


class BrokenScorer:
    models: tuple[str, ...] = ()
    provider = "test-provider"

    def score(self, queries: Sequence[str], answers: Sequence[str], *, model: str | None = None,
              features: Sequence[Sequence[float]] | None = None) -> list[float]:
        raise RuntimeError("scorer exploded")


@pytest.mark.parametrize("is_async", [False, True])
async def test_scorer_failure_escalates_to_the_last_model(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    features = ("conf", "text_score")
    plan = Plan(
        steps=(Step(CHEAP, 0.5, "a"), Step(MIDDLE, 0.5, "b"), Step(STRONG)),
        scorers={"a": _scorer(CHEAP, features=features), "b": _scorer(MIDDLE, [CHEAP], features=features)},
        alias="support-bot",
        text_scorer={"kind": "onnx", "path": "unused"},
    )
    c = client(quiz, spans, is_async=is_async, cascade={"plan": plan, "text_scorer": BrokenScorer()})
    r = await ask(c, "an easy one", is_async=is_async)
    assert r.model == SNAPSHOT[STRONG]
    assert sent_models(quiz) == [CHEAP, STRONG]  # straight to the last step, not the middle one
    parent, _ = parent_and_steps(spans)
    a = dict(parent.attributes or {})
    assert a["llmspend.cascade.escalation_reason"] == "scorer error"
    assert "scorer exploded" in a["llmspend.cascade.error"]
    assert a["llmspend.cascade.accepted_step"] == 3
    assert a["llmspend.scorer.provider"] == "test-provider"


@pytest.mark.parametrize("is_async", [False, True])
async def test_candidate_http_error_escalates(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    c = client(quiz, spans, is_async=is_async, retry=False)
    quiz.fail_next(500)
    r = await ask(c, "an easy one", is_async=is_async)
    assert r.model == SNAPSHOT[STRONG]
    parent, _ = parent_and_steps(spans)
    a = dict(parent.attributes or {})
    assert a["llmspend.cascade.escalation_reason"] == f"http 500 from {CHEAP}"
    assert a["llmspend.cascade.failed_steps"] == 1
    assert a["llmspend.cascade.cost_status"] == "ok"  # a failed step is not billed


@pytest.mark.parametrize("is_async", [False, True])
async def test_last_step_error_reaches_the_caller(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    c = client(quiz, spans, is_async=is_async, retry=False)
    quiz.fail_next(400, times=2)
    with pytest.raises(openai.BadRequestError):
        await ask(c, "an easy one", is_async=is_async)
    parent, _ = parent_and_steps(spans)
    assert parent.attributes["llmspend.cascade.accepted_step"] == 2


async def test_cancelled_mid_cascade_ends_every_span(quiz: FakeLLMServer, spans: Spans) -> None:
    quiz.latency_s = 0.3
    c = client(quiz, spans, is_async=True)
    task = asyncio.ensure_future(ask(c, "a hard one", is_async=True))
    while len(quiz.requests) < 2:  # the cheap answer came back low; gpt-4o is being asked
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    parent, steps = parent_and_steps(spans)
    assert sorted(s.name for s in steps) == sorted([f"chat {CHEAP}", f"chat {STRONG}"])
    a = dict(parent.attributes or {})
    assert a["error.type"] == "CancelledError" and parent.status.status_code.name == "ERROR"
    # Before, the parent said gpt-4o (the step in flight) had been accepted.
    assert "llmspend.cascade.accepted_step" not in a and "llmspend.cascade.accepted_model" not in a
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


class InterruptedScorer(BrokenScorer):
    def score(self, queries: Sequence[str], answers: Sequence[str], *, model: str | None = None,
              features: Sequence[Sequence[float]] | None = None) -> list[float]:
        raise KeyboardInterrupt


def test_interrupted_while_scoring_ends_the_parent_without_an_answer(quiz: FakeLLMServer, spans: Spans) -> None:
    scorer = LogisticScorer(features=("conf", "text_score"), weights=(0.0, 10.0), bias=-5.0, mean=(0.0, 0.0),
                            scale=(1.0, 1.0), models=(CHEAP,))
    plan = Plan(steps=(Step(CHEAP, 0.5, "a"), Step(STRONG)), scorers={"a": scorer}, alias="support-bot",
                text_scorer={"kind": "onnx", "path": "unused"})
    c = client(quiz, spans, cascade={"plan": plan, "text_scorer": InterruptedScorer()})
    with pytest.raises(KeyboardInterrupt):
        c.chat.completions.create(model="support-bot", messages=[{"role": "user", "content": "an easy one"}])
    parent, _ = parent_and_steps(spans)
    a = dict(parent.attributes or {})
    assert a["error.type"] == "KeyboardInterrupt" and "llmspend.cascade.accepted_step" not in a
    assert a["llmspend.cascade.steps_called"] == 1


async def _collect(stream: Any, is_async: bool) -> list[Any]:
    if is_async:
        return [chunk async for chunk in stream]
    return list(stream)


@pytest.mark.parametrize("is_async", [False, True])
async def test_streaming_accepted_candidate_is_a_proper_stream(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    c = client(quiz, spans, is_async=is_async)
    stream = await ask(c, "an easy one", is_async=is_async, stream=True, stream_options={"include_usage": True})
    chunks = await _collect(stream, is_async)
    assert {ch.model for ch in chunks} == {SNAPSHOT[CHEAP]}
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Paris"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["stop"]
    body = quiz.requests[0].json()
    assert "stream" not in body  # the candidate was bought whole, to be scored
    parent, _ = parent_and_steps(spans)
    assert parent.attributes["llmspend.cascade.accepted_step"] == 1


@pytest.mark.parametrize("is_async", [False, True])
async def test_streaming_escalation_streams_the_last_step_live(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    c = client(quiz, spans, is_async=is_async)
    stream = await ask(c, "a hard one", is_async=is_async, stream=True)
    assert not [s for s in spans.finished if s.name.startswith("cascade ")]  # open until the stream ends
    chunks = await _collect(stream, is_async)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Paris"
    assert {ch.model for ch in chunks} == {SNAPSHOT[STRONG]}
    assert all(ch.usage is None for ch in chunks)  # the caller did not ask for usage
    assert quiz.requests[1].json()["stream"] is True
    parent, steps = parent_and_steps(spans)
    assert parent.attributes["llmspend.cascade.accepted_step"] == 2
    assert parent.attributes["llmspend.cascade.cost_usd"] == pytest.approx(
        sum(s.attributes["llmspend.cost.usd"] for s in steps)
    )


def test_other_models_pass_through(quiz: FakeLLMServer, spans: Spans) -> None:
    c = client(quiz, spans)
    r = c.chat.completions.create(model=STRONG, messages=[{"role": "user", "content": "an easy one"}])
    assert r.model == SNAPSHOT[STRONG]
    assert sent_models(quiz) == [STRONG]
    assert [s.name for s in spans.finished] == [f"chat {STRONG}"]


def test_a_tracked_feature_runs_the_plan(quiz: FakeLLMServer, spans: Spans) -> None:
    plan = two_step_plan().with_route(feature="faq")
    c = client(quiz, spans, cascade=plan)
    with llmspend.track("faq"):
        r = c.chat.completions.create(model=STRONG, messages=[{"role": "user", "content": "an easy one"}])
    assert r.model == SNAPSHOT[CHEAP]
    parent, (step,) = parent_and_steps(spans)
    assert parent.attributes["llmspend.cascade.feature"] == "faq"
    assert parent.attributes["llmspend.feature"] == "faq"
    assert step.attributes["llmspend.feature"] == "faq"
    quiz.reset()
    c.chat.completions.create(model=STRONG, messages=[{"role": "user", "content": "an easy one"}])
    assert sent_models(quiz) == [STRONG]  # outside the feature: untouched


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_tracked_feature_leaves_its_other_requests_alone(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    # The plan serves the feature's chat requests; an embedding or a legacy completion made in
    # the same feature is no chat and was sent with the plan's last (chat) model instead.
    c = client(quiz, spans, is_async=is_async, cascade=two_step_plan().with_route(feature="faq"))
    with llmspend.track("faq"):
        embed = c.embeddings.create(model="text-embedding-3-small", input="an easy one")
        legacy = c.completions.create(model="gpt-3.5-turbo-instruct", prompt="an easy one", max_tokens=5)
        if is_async:
            embed, legacy = await embed, await legacy
    assert [(r.path, r.json()["model"]) for r in quiz.requests] == [
        ("/v1/embeddings", "text-embedding-3-small"), ("/v1/completions", "gpt-3.5-turbo-instruct")]
    assert embed.model == "text-embedding-3-small" and legacy.model.startswith("gpt-3.5-turbo-instruct")
    assert not [s for s in spans.finished if s.name.startswith("cascade ")]


def test_unsupported_requests_go_to_the_last_model(quiz: FakeLLMServer, spans: Spans) -> None:
    c = client(quiz, spans)
    r = c.chat.completions.create(model="support-bot", n=2, messages=[{"role": "user", "content": "an easy one"}])
    assert r.model == SNAPSHOT[STRONG] and len(r.choices) == 2
    parent, _ = parent_and_steps(spans)
    assert parent.attributes["llmspend.cascade.escalation_reason"] == "unsupported request (n > 1)"


def test_unknown_cost_is_unknown_not_zero(quiz: FakeLLMServer, spans: Spans) -> None:
    plan = Plan(steps=(Step("no-such-model-x", 0.5, "x"), Step(STRONG)),
                scorers={"x": _scorer("no-such-model-x")}, alias="support-bot")
    quiz.answer_with(lambda model, messages: ("Paris", -0.01) if model == "no-such-model-x" else None)
    c = client(quiz, spans, cascade=plan)
    c.chat.completions.create(model="support-bot", messages=[{"role": "user", "content": "x"}])
    parent, _ = parent_and_steps(spans)
    assert parent.attributes["llmspend.cascade.cost_status"] == "unknown"
    assert "llmspend.cascade.cost_usd" not in parent.attributes


def test_plan_file_and_config_errors(quiz: FakeLLMServer, spans: Spans, tmp_path: Any) -> None:
    path = tmp_path / "plan.json"
    two_step_plan(alias="from-file").save(path)
    c = client(quiz, spans, cascade=str(path))
    assert c.chat.completions.create(model="from-file", messages=[{"role": "user", "content": "an easy one"}]).model == SNAPSHOT[CHEAP]
    raw = openai.OpenAI(base_url=quiz.base_url, api_key=API_KEY)
    with pytest.raises(llmspend.ConfigError, match="no cascade plan at"):
        llmspend.wrap(raw, cascade=str(tmp_path / "missing.json"))
    with pytest.raises(llmspend.ConfigError, match="share an alias"):
        llmspend.wrap(raw, cascade=[two_step_plan(), two_step_plan()])
    with pytest.raises(llmspend.ConfigError, match="alias or a feature"):
        llmspend.wrap(raw, cascade=Plan(steps=two_step_plan().steps, scorers=two_step_plan().scorers, alias=None))
    broken = json.loads(path.read_text())
    broken["chain"][0]["scorer"] = "nope"
    with pytest.raises(llmspend.ConfigError, match="names scorer 'nope'"):
        llmspend.wrap(raw, cascade=broken)
    for empty in ({"alias": ""}, {"alias": None, "feature": " "}):  # before: loaded, and never run
        with pytest.raises(llmspend.ConfigError, match="non-empty string"):
            llmspend.wrap(raw, cascade={**json.loads(path.read_text()), **empty})
    with pytest.raises(llmspend.ConfigError, match="non-empty string"):
        two_step_plan().with_route(alias="")
    # a plan's JSON as a dict has no file beside which its relative scorer paths lie: say so
    onnx = {**json.loads(path.read_text()), "scorers": {"cheap": {
        "kind": "onnx", "path": "plan.scorers/cheap-0123456789", "features": ["conf"], "models": [CHEAP]}}}
    with pytest.raises(llmspend.ConfigError, match=r"read from the current directory .*cascade='plan.json'"):
        llmspend.wrap(raw, cascade=onnx)
    with pytest.raises(llmspend.ConfigError, match="cascade= takes a plan"):
        llmspend.wrap(raw, cascade=42)
    with pytest.raises(llmspend.ConfigError, match="text_scorer"):
        Plan(steps=(Step(CHEAP, 0.5, "a"), Step(STRONG)),
             scorers={"a": _scorer(CHEAP, features=("conf", "text_score"))}, alias="x")


class ParisScorer(BrokenScorer):
    seen: list[tuple[str, str, str | None]] = []

    def score(self, queries: Sequence[str], answers: Sequence[str], *, model: str | None = None,
              features: Sequence[Sequence[float]] | None = None) -> list[float]:
        assert features is None  # it names no features: text only
        self.seen.append((queries[0], answers[0], model))
        return [1.0 if a == "Paris" else 0.0 for a in answers]


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_text_scorer_decides(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    # the text score alone decides: weight on text_score, none on conf
    scorer = LogisticScorer(features=("conf", "text_score"), weights=(0.0, 10.0), bias=-5.0, mean=(0.0, 0.0),
                            scale=(1.0, 1.0), models=(CHEAP,))
    plan = Plan(steps=(Step(CHEAP, 0.5, "a"), Step(STRONG)), scorers={"a": scorer}, alias="support-bot",
                text_scorer={"kind": "onnx", "path": "unused"})
    ParisScorer.seen = []
    c = client(quiz, spans, is_async=is_async, cascade={"plan": plan, "text_scorer": ParisScorer()})
    assert (await ask(c, "an easy one", is_async=is_async)).model == SNAPSHOT[CHEAP]
    assert (await ask(c, "a hard one", is_async=is_async)).model == SNAPSHOT[STRONG]
    assert ParisScorer.seen == [("an easy one", "Paris", CHEAP), ("a hard one", "Lyon", CHEAP)]
    parents = [s for s in spans.finished if s.name.startswith("cascade ")]
    assert [p.attributes["llmspend.scorer.provider"] for p in parents] == ["test-provider"] * 2
