"""A cascade under a budget, through the official openai SDK against the fake server: when the
budget refuses an escalation, the answer already bought is served (nothing is lost), sync and
async, streamed too; a refused first step still fails as any refused call does; costs count once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

import llmspend
from llmspend.cascade import Plan, Step
from llmspend.ledger import MemoryLedger
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Spans
from .test_cascade_stage import CHEAP, MIDDLE, SNAPSHOT, STRONG, _scorer, answers, two_step_plan

#: fits gpt-4o-mini's most possible cost at max_tokens=100 (~$0.00006), not gpt-4o's (~$0.001)
TIGHT_USD = 0.0005


@pytest.fixture
def quiz(server: FakeLLMServer) -> FakeLLMServer:
    server.answer_with(answers)
    return server


def wrapped(server: FakeLLMServer, spans: Spans, plan: Any, *, is_async: bool) -> Any:
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return llmspend.wrap(cls(base_url=server.base_url, api_key=API_KEY, max_retries=0),
                         tracer_provider=spans.provider, retry=False, cascade=plan)


async def ask_within(c: Any, ledger: MemoryLedger, question: str, *, is_async: bool, budget_usd: float = TIGHT_USD,
                     **kw: Any) -> Any:
    """One question to the cascade inside ``support-reply``'s daily budget."""
    kw.setdefault("max_tokens", 100)
    messages = [{"role": "user", "content": question}]
    create = c.chat.completions.create
    if is_async:
        async with llmspend.track(feature="support-reply", budget_usd=budget_usd, period="day", ledger=ledger):
            return await create(model="support-bot", messages=messages, **kw)
    with llmspend.track(feature="support-reply", budget_usd=budget_usd, period="day", ledger=ledger):
        return create(model="support-bot", messages=messages, **kw)


async def _collect(stream: Any, is_async: bool) -> list[Any]:
    return [chunk async for chunk in stream] if is_async else list(stream)


def sent_models(server: FakeLLMServer) -> list[str]:
    return [r.json()["model"] for r in server.requests]


def parent_and_steps(spans: Spans) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    finished = spans.finished
    (parent,) = [s for s in finished if s.name.startswith("cascade ")]
    return dict(parent.attributes or {}), [dict(s.attributes or {}) for s in finished if s is not parent]


def assert_paid_once(spans: Spans, ledger: MemoryLedger, *, served_step: int, refused_step: int) -> None:
    """The steps that went out are charged once (their spans, the parent, the ledger), the
    refused one not at all, and the parent says who answered (and, when the last step was
    refused, that an answer bought before it was served)."""
    parent, steps = parent_and_steps(spans)
    by_step = {a["llmspend.cascade.step"]: a for a in steps}
    refused = by_step[refused_step]
    assert refused["error.type"] == "BudgetExceededError"
    assert refused["llmspend.budget.refused"] == "support-reply/day"
    assert "llmspend.cost.usd" not in refused and "gen_ai.usage.cost" not in refused  # never sent, never billed
    paid = [a["llmspend.cost.usd"] for n, a in by_step.items() if n != refused_step]
    assert paid and all(cost > 0 for cost in paid)
    assert parent["llmspend.cascade.cost_usd"] == pytest.approx(sum(paid))
    assert parent["llmspend.cascade.cost_status"] == "ok"
    status = llmspend.spent("support-reply", period="day", ledger=ledger)
    assert status.spent_usd == pytest.approx(sum(paid)) and status.calls == len(paid) and status.reserved_usd == 0
    assert parent["llmspend.cascade.accepted_step"] == served_step
    if refused_step == len(parent["llmspend.cascade.chain"]):
        assert parent["llmspend.cascade.escalation_refused"] == "support-reply/day"
    else:  # a refused candidate is skipped, like one that failed
        assert "llmspend.cascade.escalation_refused" not in parent
        assert parent["llmspend.cascade.escalation_reason"] == f"BudgetExceededError from {STRONG}"
    assert "error.type" not in parent


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_refused_escalation_serves_the_answer_already_bought(quiz: FakeLLMServer, spans: Spans,
                                                                     is_async: bool) -> None:
    ledger = MemoryLedger()
    c = wrapped(quiz, spans, two_step_plan(), is_async=is_async)
    r = await ask_within(c, ledger, "a hard one", is_async=is_async)  # the cheap answer scores low
    assert r.model == SNAPSHOT[CHEAP] and r.choices[0].message.content == "Lyon"
    assert r.choices[0].logprobs is None  # asked for by the stage, not by the caller
    assert sent_models(quiz) == [CHEAP]  # gpt-4o was never sent
    assert_paid_once(spans, ledger, served_step=1, refused_step=2)
    parent, _ = parent_and_steps(spans)
    assert parent["llmspend.cascade.accepted_model"] == CHEAP
    assert parent["llmspend.cascade.steps_called"] == 2 and parent["llmspend.cascade.failed_steps"] == 1


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_refused_escalation_streams_the_answer_already_bought(quiz: FakeLLMServer, spans: Spans,
                                                                      is_async: bool) -> None:
    ledger = MemoryLedger()
    c = wrapped(quiz, spans, two_step_plan(), is_async=is_async)
    stream = await ask_within(c, ledger, "a hard one", is_async=is_async, stream=True,
                              stream_options={"include_usage": True})
    chunks = await _collect(stream, is_async)
    assert {ch.model for ch in chunks} == {SNAPSHOT[CHEAP]}
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Lyon"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert sent_models(quiz) == [CHEAP] and "stream" not in quiz.requests[0].json()
    assert_paid_once(spans, ledger, served_step=1, refused_step=2)


@pytest.mark.parametrize("is_async", [False, True])
async def test_the_latest_answer_bought_is_served(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    # gpt-4.1-mini's answer is bought only for its agreement features (threshold 2: never
    # accepted); the budget then refuses gpt-4o: the answer from furthest along the chain is served
    plan = Plan(steps=(Step(CHEAP, 0.5, "a"), Step(MIDDLE, 2.0, "b"), Step(STRONG)),
                scorers={"a": _scorer(CHEAP), "b": _scorer(MIDDLE, [CHEAP])}, alias="support-bot")
    ledger = MemoryLedger()
    c = wrapped(quiz, spans, plan, is_async=is_async)
    r = await ask_within(c, ledger, "a hard one", is_async=is_async)
    assert r.model == SNAPSHOT[MIDDLE] and r.choices[0].message.content == "Paris"
    assert sent_models(quiz) == [CHEAP, MIDDLE]
    assert_paid_once(spans, ledger, served_step=2, refused_step=3)


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_refused_middle_step_is_skipped_and_the_last_may_still_answer(quiz: FakeLLMServer, spans: Spans,
                                                                               is_async: bool) -> None:
    # as for any candidate that cannot be sent, the run goes on: here to a cheaper last model
    plan = Plan(steps=(Step(CHEAP, 0.5, "a"), Step(STRONG, 0.5, "b"), Step(MIDDLE)),
                scorers={"a": _scorer(CHEAP), "b": _scorer(STRONG, [CHEAP])}, alias="support-bot")
    ledger = MemoryLedger()
    c = wrapped(quiz, spans, plan, is_async=is_async)
    r = await ask_within(c, ledger, "a hard one", is_async=is_async)
    assert r.model == SNAPSHOT[MIDDLE]
    assert sent_models(quiz) == [CHEAP, MIDDLE]
    assert_paid_once(spans, ledger, served_step=3, refused_step=2)


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_refused_first_step_fails_as_before(quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    # nothing was bought: there is no answer to serve, and the caller gets the refusal
    ledger = MemoryLedger()
    c = wrapped(quiz, spans, two_step_plan(), is_async=is_async)
    with pytest.raises(llmspend.BudgetExceededError) as refused:
        await ask_within(c, ledger, "a hard one", is_async=is_async, budget_usd=0.00001)
    assert refused.value.budget == "support-reply/day"
    assert quiz.requests == []
    parent, _ = parent_and_steps(spans)
    assert parent["error.type"] == "BudgetExceededError"
    assert "llmspend.cascade.accepted_step" not in parent
    assert llmspend.spent("support-reply", period="day", ledger=ledger).spent_usd == 0


class LedgerDownAfter(MemoryLedger):
    """A ledger whose store becomes unreachable after ``ok`` reservations."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def reserve(self, key: str, amount_usd: float, limit_usd: float | None, window: Any) -> Any:
        if self.ok <= 0:
            raise llmspend.LedgerError("store unreachable")
        self.ok -= 1
        return super().reserve(key, amount_usd, limit_usd, window)


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_ledger_down_at_the_last_step_serves_the_answer_already_bought(quiz: FakeLLMServer, spans: Spans,
                                                                               is_async: bool) -> None:
    # The ledger fails as the escalation is reserved: before, LedgerError reached the caller and
    # the cheap answer, bought and charged, was lost. With nothing bought it still stops the call.
    c = wrapped(quiz, spans, two_step_plan(), is_async=is_async)
    ledger = LedgerDownAfter(ok=1)
    r = await ask_within(c, ledger, "a hard one", is_async=is_async, budget_usd=1.0)
    assert r.choices[0].message.content == "Lyon" and sent_models(quiz) == [CHEAP]
    parent, _ = parent_and_steps(spans)
    assert parent["llmspend.cascade.accepted_step"] == 1 and parent["llmspend.cascade.escalation_refused"] == "ledger error"
    assert "LedgerError" in parent["llmspend.cascade.error"] and "error.type" not in parent
    assert llmspend.spent("support-reply", period="day", ledger=ledger).calls == 1
    with pytest.raises(llmspend.LedgerError):
        await ask_within(c, LedgerDownAfter(ok=0), "a hard one", is_async=is_async, budget_usd=1.0)
    assert sent_models(quiz) == [CHEAP]


@pytest.mark.slow
@pytest.mark.parametrize("is_async", [False, True])
async def test_with_an_onnx_step_scorer(quiz: FakeLLMServer, spans: Spans, tmp_path: Path, is_async: bool) -> None:
    from .test_cascade_onnx import _conf_step_scorer

    spec = _conf_step_scorer(tmp_path, text=False)
    Plan(steps=(Step(CHEAP, 0.5, "cheap"), Step(STRONG)), scorers={"cheap": spec},
         alias="support-bot").save(tmp_path / "plan.json")
    ledger = MemoryLedger()
    c = wrapped(quiz, spans, str(tmp_path / "plan.json"), is_async=is_async)
    r = await ask_within(c, ledger, "a hard one", is_async=is_async)
    assert r.model == SNAPSHOT[CHEAP] and r.choices[0].message.content == "Lyon"
    parent, _ = parent_and_steps(spans)
    assert parent["llmspend.scorer.provider"] == "CPUExecutionProvider"
    assert_paid_once(spans, ledger, served_step=1, refused_step=2)


# -- a budget's fallback_model and a cascade's steps ---------------------------------------
# The cascade chose its steps' models: a budget refuses a step rather than send its fallback
# (which would buy the cheap model's answer twice, or run the plan out of order); a call that is
# not a cascade step still goes to the fallback, in the same track.

async def _create(c: Any, is_async: bool, model: str, question: str, **kw: Any) -> Any:
    kw.setdefault("max_tokens", 100)
    result = c.chat.completions.create(model=model, messages=[{"role": "user", "content": question}], **kw)
    return await result if is_async else result


def _degrading(ledger: MemoryLedger, budget_usd: float = TIGHT_USD, fallback: str = CHEAP) -> Any:
    return llmspend.track(feature="support-reply", budget_usd=budget_usd, period="day", ledger=ledger,
                          fallback_model=fallback)


def assert_no_step_redirected(spans: Spans) -> None:
    """No step span says it was sent to another model, and the parent's accepted model is the
    model of the step that answered (the one it names as accepted)."""
    parent, steps = parent_and_steps(spans)
    steps = [a for a in steps if "llmspend.cascade.step" in a]
    assert steps and all("llmspend.budget.fallback_model" not in a for a in steps)
    if "llmspend.cascade.accepted_step" in parent:
        (accepted,) = [a for a in steps if a["llmspend.cascade.step"] == parent["llmspend.cascade.accepted_step"]]
        assert parent["llmspend.cascade.accepted_model"] == accepted["gen_ai.request.model"]
        assert accepted["gen_ai.response.model"] == SNAPSHOT[accepted["gen_ai.request.model"]]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_fallback_model_does_not_buy_a_step_twice(quiz: FakeLLMServer, spans: Spans, is_async: bool,
                                                          stream: bool) -> None:
    ledger = MemoryLedger()
    c = wrapped(quiz, spans, two_step_plan(), is_async=is_async)
    kw: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    with _degrading(ledger):
        r = await _create(c, is_async, "support-bot", "a hard one", **kw)  # the cheap answer scores low
        chunks = await _collect(r, is_async) if stream else [r]
        # gpt-4o does not fit, and gpt-4o-mini's answer is already bought: served, not bought again
        assert sent_models(quiz) == [CHEAP]
        assert {ch.model for ch in chunks} == {SNAPSHOT[CHEAP]}
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) if stream else r.choices[0].message.content
        assert text == "Lyon"
        assert_paid_once(spans, ledger, served_step=1, refused_step=2)
        parent, _ = parent_and_steps(spans)
        assert parent["llmspend.cascade.accepted_model"] == CHEAP
        assert_no_step_redirected(spans)
        cascade_usd = llmspend.spent("support-reply", period="day", ledger=ledger).spent_usd
        spans.clear()

        plain = await _create(c, is_async, STRONG, "a hard one")  # not a cascade step: degraded as before
    assert sent_models(quiz) == [CHEAP, CHEAP]
    assert plain.model == SNAPSHOT[CHEAP]
    attrs = spans.one().attributes or {}
    assert attrs["gen_ai.request.model"] == STRONG and attrs["llmspend.budget.fallback_model"] == CHEAP
    status = llmspend.spent("support-reply", period="day", ledger=ledger)
    assert status.calls == 2 and status.reserved_usd == 0
    assert status.spent_usd == pytest.approx(cascade_usd + attrs["llmspend.cost.usd"])


@pytest.mark.parametrize("fallback", [CHEAP, MIDDLE])
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_fallback_model_does_not_replace_a_refused_middle_step(quiz: FakeLLMServer, spans: Spans,
                                                                       is_async: bool, fallback: str) -> None:
    # redirected, gpt-4o's step would ask gpt-4o-mini again, or ask gpt-4.1-mini twice (the
    # fallback, then the last step): skipped instead, and the last step answers
    plan = Plan(steps=(Step(CHEAP, 0.5, "a"), Step(STRONG, 0.5, "b"), Step(MIDDLE)),
                scorers={"a": _scorer(CHEAP), "b": _scorer(STRONG, [CHEAP])}, alias="support-bot")
    ledger = MemoryLedger()
    c = wrapped(quiz, spans, plan, is_async=is_async)
    with _degrading(ledger, fallback=fallback):
        r = await _create(c, is_async, "support-bot", "a hard one")
    assert r.model == SNAPSHOT[MIDDLE] and r.choices[0].message.content == "Paris"
    assert sent_models(quiz) == [CHEAP, MIDDLE]
    assert_paid_once(spans, ledger, served_step=3, refused_step=2)
    parent, _ = parent_and_steps(spans)
    assert parent["llmspend.cascade.accepted_model"] == MIDDLE
    assert_no_step_redirected(spans)


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_fallback_model_does_not_answer_a_cascade_whose_steps_all_are_refused(
        quiz: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    # $0.0001 fits gpt-4o-mini (the fallback) but neither of the plan's models: nothing is
    # bought, and the refusal reaches the caller, as without a fallback
    plan = Plan(steps=(Step(MIDDLE, 0.5, "b"), Step(STRONG)), scorers={"b": _scorer(MIDDLE)}, alias="support-bot")
    ledger = MemoryLedger()
    c = wrapped(quiz, spans, plan, is_async=is_async)
    with _degrading(ledger, budget_usd=0.0001):
        with pytest.raises(llmspend.BudgetExceededError) as refused:
            await _create(c, is_async, "support-bot", "a hard one")
        assert refused.value.budget == "support-reply/day"
        assert quiz.requests == []
        parent, steps = parent_and_steps(spans)
        assert parent["error.type"] == "BudgetExceededError" and "llmspend.cascade.accepted_model" not in parent
        assert [a["llmspend.budget.refused"] for a in steps] == ["support-reply/day"] * 2
        assert_no_step_redirected(spans)
        assert llmspend.spent("support-reply", period="day", ledger=ledger).calls == 0

        plain = await _create(c, is_async, MIDDLE, "a hard one")  # the same budget still degrades a plain call
    assert sent_models(quiz) == [CHEAP] and plain.model == SNAPSHOT[CHEAP]
    assert llmspend.spent("support-reply", period="day", ledger=ledger).calls == 1
