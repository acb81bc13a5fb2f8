"""llmspend.track: attribution on every LLM span, a parent span with the subtree's total,
nesting, contextvars across tasks and threads, and the metric cardinality guard."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan

import llmspend
from llmspend.attribution import current_attribution
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Metrics, Spans
from .replay_stage import replaying_client

ASK = [{"role": "user", "content": "where is my order?"}]


@pytest.fixture
def client(server: FakeLLMServer, spans: Spans) -> openai.OpenAI:
    return llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)


@pytest.fixture
def aclient(server: FakeLLMServer, spans: Spans) -> openai.AsyncOpenAI:
    return llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)


@pytest.fixture(autouse=True)
def fresh_guard() -> Iterator[None]:
    llmspend.set_max_metric_features(100)
    yield
    llmspend.set_max_metric_features(100)


def llm_spans(spans: Spans) -> list[ReadableSpan]:
    return [s for s in spans.finished if s.name.startswith("chat ")]


def track_span(spans: Spans, name: str) -> ReadableSpan:
    (found,) = [s for s in spans.finished if s.name == name]
    return found


def assert_child_of(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.parent is not None and child.parent.span_id == parent.context.span_id  # type: ignore[union-attr]


def ask(client: openai.OpenAI, content: str = "where is my order?", **kw: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}], **kw)


# -- decorated callables -----------------------------------------------------------------
def test_function_calls_carry_feature_user_tags_and_nest_under_the_track_span(client: openai.OpenAI, spans: Spans) -> None:
    @llmspend.track(feature="support-reply", user="u-42", tags={"tenant": "acme", "tier": 2}, tracer_provider=spans.provider)
    def reply() -> str:
        ask(client)
        ask(client, "and my refund?")
        return "done"

    assert reply() == "done"
    assert reply.__name__ == "reply"  # functools.wraps
    calls = llm_spans(spans)
    parent = track_span(spans, "llmspend.track support-reply")
    assert len(calls) == 2
    for span in calls:
        a = span.attributes or {}
        assert (a["llmspend.feature"], a["llmspend.user"], a["llmspend.tag.tenant"], a["llmspend.tag.tier"]) == (
            "support-reply", "u-42", "acme", "2")
        assert_child_of(span, parent)
    p = parent.attributes or {}
    assert parent.kind.name == "INTERNAL"
    assert p["llmspend.calls"] == 2
    assert p["llmspend.cost.total_usd"] == pytest.approx(sum(s.attributes["llmspend.cost.usd"] for s in calls))  # type: ignore[index,misc]
    assert p["llmspend.cost.total_usd"] > 0
    assert p["llmspend.cost.complete"] is True and p["llmspend.cost.unknown_calls"] == 0
    assert current_attribution().feature is None  # nothing leaks out


def test_methods_classmethods_and_staticmethods(client: openai.OpenAI, spans: Spans) -> None:
    class Bot:
        def __init__(self, c: openai.OpenAI) -> None:
            self.c = c

        @llmspend.track(feature="method", tracer_provider=spans.provider)
        def answer(self) -> None:
            ask(self.c)

        @classmethod
        @llmspend.track(feature="classmethod", tracer_provider=spans.provider)
        def answer_cls(cls, c: openai.OpenAI) -> None:
            ask(c)

        @llmspend.track(feature="staticmethod", tracer_provider=spans.provider)
        @staticmethod
        def answer_static(c: openai.OpenAI) -> None:
            ask(c)

    Bot(client).answer()
    Bot.answer_cls(client)
    Bot.answer_static(client)
    assert [s.attributes["llmspend.feature"] for s in llm_spans(spans)] == ["method", "classmethod", "staticmethod"]  # type: ignore[index]


async def test_async_function(aclient: openai.AsyncOpenAI, spans: Spans) -> None:
    @llmspend.track(feature="async-reply", user="u1", tracer_provider=spans.provider)
    async def reply() -> int:
        r = await aclient.chat.completions.create(model="gpt-4o-mini", messages=ASK)
        return r.usage.total_tokens  # type: ignore[union-attr]

    assert await reply() > 0
    (call,) = llm_spans(spans)
    assert call.attributes["llmspend.feature"] == "async-reply"  # type: ignore[index]
    assert_child_of(call, track_span(spans, "llmspend.track async-reply"))


def _plain(fn: Any) -> Any:
    """A sync decorator of the app's own: a plain callable in front of ``fn``."""
    def call(*args: Any) -> Any:
        return fn(*args)
    return call


async def test_an_async_function_behind_a_plain_callable_is_tracked_while_awaited(
        aclient: openai.AsyncOpenAI, server: FakeLLMServer, spans: Spans) -> None:
    # A sync decorator under track, or an object with an async __call__, returns a coroutine
    # from a plain call. Before, the scope ended before the coroutine ran: its calls carried no
    # feature and no budget held them (a call over the budget went out).
    @llmspend.track(feature="wrapped", user="u1", tracer_provider=spans.provider)
    @_plain
    async def reply() -> str:
        await aclient.chat.completions.create(model="gpt-4o-mini", messages=ASK)
        return "done"

    class Handler:
        async def __call__(self) -> None:
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=50)

    assert await reply() == "done"
    (call,) = llm_spans(spans)
    assert (call.attributes or {})["llmspend.feature"] == "wrapped"
    parent = track_span(spans, "llmspend.track wrapped")
    assert_child_of(call, parent) and (parent.attributes or {})["llmspend.calls"] == 1
    budgeted = llmspend.track(feature="handler", budget_usd=0.000001, period="day", ledger=llmspend.ledger.MemoryLedger())
    with pytest.raises(llmspend.BudgetExceededError):
        await budgeted(Handler())()
    assert len(server.requests) == 1


def test_a_generator_behind_a_plain_callable_is_tracked_while_iterated(client: openai.OpenAI, server: FakeLLMServer,
                                                                          spans: Spans) -> None:
    # A sync decorator under track returns the generator from a plain call; its calls run as it
    # is iterated, after the call returned, and must still carry the feature and its budget.
    @llmspend.track(feature="streamed", tracer_provider=spans.provider)
    @_plain
    def answers(n: int) -> Iterator[str]:
        for _ in range(n):
            yield client.chat.completions.create(model="gpt-4o-mini", messages=ASK).choices[0].message.content or ""

    assert len(list(answers(2))) == 2
    calls = llm_spans(spans)
    assert [(c.attributes or {}).get("llmspend.feature") for c in calls] == ["streamed", "streamed"]
    parent = track_span(spans, "llmspend.track streamed")
    assert (parent.attributes or {})["llmspend.calls"] == 2 and all(c.parent.span_id == parent.context.span_id for c in calls)  # type: ignore[union-attr]
    budgeted = llmspend.track(feature="capped", budget_usd=0.000001, period="day", ledger=llmspend.ledger.MemoryLedger())
    sent = len(server.requests)
    with pytest.raises(llmspend.BudgetExceededError):
        list(budgeted(_plain(lambda: (client.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=50)
                                     for _ in range(1))))())
    assert len(server.requests) == sent  # refused before it was sent


async def test_an_async_generator_behind_a_plain_callable_is_tracked_while_iterated(
        aclient: openai.AsyncOpenAI, server: FakeLLMServer, spans: Spans) -> None:
    # The async twin: a plain call returns the async generator, whose calls run as it is
    # iterated. Before, they carried no feature and no budget held them.
    @llmspend.track(feature="astreamed", tracer_provider=spans.provider)
    @_plain
    async def answers(n: int) -> AsyncIterator[str]:
        for _ in range(n):
            r = await aclient.chat.completions.create(model="gpt-4o-mini", messages=ASK)
            received = yield r.choices[0].message.content or ""
            assert received is None or received == "more"

    between = []
    gen = answers(2)
    assert current_attribution().feature is None
    async for _ in gen:
        between.append(current_attribution().feature)
    assert between == [None, None]  # never leaks into the consumer's code
    calls = llm_spans(spans)
    assert [(c.attributes or {}).get("llmspend.feature") for c in calls] == ["astreamed", "astreamed"]
    parent = track_span(spans, "llmspend.track astreamed")
    assert (parent.attributes or {})["llmspend.calls"] == 2 and all(c.parent.span_id == parent.context.span_id for c in calls)  # type: ignore[union-attr]
    sending = answers(2)
    await sending.asend(None)
    await sending.asend("more")  # values sent reach the generator
    await sending.aclose()

    async def one() -> AsyncIterator[Any]:
        yield await aclient.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=50)

    budgeted = llmspend.track(feature="acapped", budget_usd=0.000001, period="day", ledger=llmspend.ledger.MemoryLedger())
    sent = len(server.requests)
    with pytest.raises(llmspend.BudgetExceededError):
        async for _ in budgeted(_plain(one))():
            pass
    assert len(server.requests) == sent  # refused before it was sent


def test_generator_is_tracked_per_step_and_never_leaks_between_items(client: openai.OpenAI, spans: Spans) -> None:
    seen_between: list[str | None] = []

    @llmspend.track(feature="gen", tracer_provider=spans.provider)
    def answers(n: int) -> Iterator[str]:
        for i in range(n):
            yield str(ask(client, f"question {i}").choices[0].message.content)
        return None

    for _ in answers(3):
        seen_between.append(current_attribution().feature)  # the consumer's own code
    assert seen_between == [None, None, None]
    calls = llm_spans(spans)
    assert [s.attributes["llmspend.feature"] for s in calls] == ["gen"] * 3  # type: ignore[index]
    parent = track_span(spans, "llmspend.track gen")
    assert parent.attributes["llmspend.calls"] == 3  # type: ignore[index]
    for call in calls:
        assert_child_of(call, parent)


def test_generator_send_throw_and_early_close(client: openai.OpenAI, spans: Spans) -> None:
    @llmspend.track(feature="echo", tracer_provider=spans.provider)
    def echo() -> Iterator[str]:
        received = yield "ready"
        while True:
            try:
                received = yield f"got {received} as {current_attribution().feature}"
            except ValueError:
                received = yield "recovered"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("a") == "got a as echo"
    assert gen.throw(ValueError("x")) == "recovered"
    gen.close()  # early close ends the span, without an error status
    span = track_span(spans, "llmspend.track echo")
    assert span.status.status_code.name == "UNSET"


def test_generator_error_marks_the_span(spans: Spans) -> None:
    @llmspend.track(feature="broken", tracer_provider=spans.provider)
    def broken() -> Iterator[int]:
        yield 1
        raise KeyError("boom")

    with pytest.raises(KeyError):
        list(broken())
    span = track_span(spans, "llmspend.track broken")
    assert span.status.status_code.name == "ERROR" and span.attributes["error.type"] == "KeyError"  # type: ignore[index]


async def test_async_generator(aclient: openai.AsyncOpenAI, spans: Spans) -> None:
    between: list[str | None] = []

    @llmspend.track(feature="agen", tracer_provider=spans.provider)
    async def answers(n: int) -> AsyncIterator[str]:
        for i in range(n):
            r = await aclient.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}])
            yield str(r.choices[0].message.content)

    import inspect

    assert inspect.isasyncgenfunction(answers)
    async for _ in answers(2):
        between.append(current_attribution().feature)
    assert between == [None, None]
    calls = llm_spans(spans)
    assert [s.attributes["llmspend.feature"] for s in calls] == ["agen", "agen"]  # type: ignore[index]
    assert track_span(spans, "llmspend.track agen").attributes["llmspend.calls"] == 2  # type: ignore[index]


# -- context managers ------------------------------------------------------------------
def test_context_manager_gives_the_scope_totals(client: openai.OpenAI, spans: Spans) -> None:
    with llmspend.track(feature="import", tags={"batch": "7"}, tracer_provider=spans.provider) as scope:
        ask(client)
        ask(client, "second")
    assert scope.calls == 2 and scope.complete
    assert scope.total_usd == pytest.approx(sum(s.attributes["llmspend.cost.usd"] for s in llm_spans(spans)))  # type: ignore[index,misc]
    assert track_span(spans, "llmspend.track import").attributes["llmspend.tag.batch"] == "7"  # type: ignore[index]


async def test_async_context_manager(aclient: openai.AsyncOpenAI, spans: Spans) -> None:
    async with llmspend.track(feature="async-cm", tracer_provider=spans.provider) as scope:
        await aclient.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    assert scope.calls == 1
    assert llm_spans(spans)[0].attributes["llmspend.feature"] == "async-cm"  # type: ignore[index]


def test_one_track_object_reused_and_nested(client: openai.OpenAI, spans: Spans) -> None:
    tracked = llmspend.track(feature="reused", tracer_provider=spans.provider)
    with tracked as outer:
        ask(client)
        with tracked as inner:  # re-entered: a scope of its own, counted in both
            ask(client, "inner")
    assert (outer.calls, inner.calls) == (2, 1)


# -- nesting -----------------------------------------------------------------------------
def test_nested_tracks_compose_and_each_total_counts_its_subtree_once(client: openai.OpenAI, spans: Spans) -> None:
    with llmspend.track(feature="outer", user="u1", tags={"a": "1"}, tracer_provider=spans.provider):
        ask(client, "outer call")
        with llmspend.track(feature="inner", tags={"b": "2"}, tracer_provider=spans.provider):
            ask(client, "inner call")
            with llmspend.track(user="u2", tracer_provider=spans.provider):
                ask(client, "innermost call")
    outer_call, inner_call, innermost_call = llm_spans(spans)
    assert (outer_call.attributes or {})["llmspend.feature"] == "outer"
    i = inner_call.attributes or {}
    assert (i["llmspend.feature"], i["llmspend.user"], i["llmspend.tag.a"], i["llmspend.tag.b"]) == ("inner", "u1", "1", "2")
    assert (innermost_call.attributes or {})["llmspend.user"] == "u2"
    costs = [(s.attributes or {})["llmspend.cost.usd"] for s in (outer_call, inner_call, innermost_call)]
    outer = track_span(spans, "llmspend.track outer")
    # the feature-less innermost track inherits "inner", so two spans bear that name
    innermost, inner = sorted((s for s in spans.finished if s.name == "llmspend.track inner"),
                              key=lambda s: (s.attributes or {})["llmspend.calls"])  # type: ignore[arg-type,return-value]
    totals = [((t.attributes or {})["llmspend.calls"], (t.attributes or {})["llmspend.cost.total_usd"]) for t in (outer, inner, innermost)]
    assert totals == [(3, pytest.approx(sum(costs))), (2, pytest.approx(costs[1] + costs[2])), (1, pytest.approx(costs[2]))]  # type: ignore[arg-type,operator]
    assert_child_of(inner, outer)
    assert_child_of(innermost, inner)
    assert_child_of(outer_call, outer)
    assert_child_of(inner_call, inner)
    assert_child_of(innermost_call, innermost)


# -- contextvars across tasks and threads ------------------------------------------------
async def test_attribution_follows_asyncio_tasks_and_concurrent_features_stay_apart(
    aclient: openai.AsyncOpenAI, spans: Spans
) -> None:
    async def one(feature: str, n: int) -> None:
        async with llmspend.track(feature=feature, tracer_provider=spans.provider):
            await asyncio.gather(*[
                aclient.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"{feature} {i}"}])
                for i in range(n)
            ])

    await asyncio.gather(one("alpha", 3), one("beta", 2))
    by_feature: dict[str, list[str]] = {}
    for span in llm_spans(spans):
        a = span.attributes or {}
        by_feature.setdefault(str(a["llmspend.feature"]), []).append(span.name)
    assert {k: len(v) for k, v in by_feature.items()} == {"alpha": 3, "beta": 2}
    assert track_span(spans, "llmspend.track alpha").attributes["llmspend.calls"] == 3  # type: ignore[index]
    assert track_span(spans, "llmspend.track beta").attributes["llmspend.calls"] == 2  # type: ignore[index]


def test_attribution_follows_threads_started_with_copy_context(client: openai.OpenAI, spans: Spans) -> None:
    with llmspend.track(feature="fan-out", tracer_provider=spans.provider) as scope:
        workers = [threading.Thread(target=contextvars.copy_context().run, args=(ask, client, f"part {i}")) for i in range(4)]
        plain = threading.Thread(target=ask, args=(client, "plain thread"))  # no copied context
        for t in [*workers, plain]:
            t.start()
        for t in [*workers, plain]:
            t.join()
    features = sorted(str((s.attributes or {}).get("llmspend.feature")) for s in llm_spans(spans))
    assert features == ["None", "fan-out", "fan-out", "fan-out", "fan-out"]
    assert scope.calls == 4


# -- totals: savings, served calls, unknown costs -----------------------------------------
def test_savings_and_calls_served_by_a_stage_are_totalled_by_stage(server: FakeLLMServer, spans: Spans) -> None:
    client = replaying_client(server.base_url, spans.provider)
    with llmspend.track(feature="faq", tracer_provider=spans.provider) as scope:
        ask(client, "same question")
        ask(client, "same question")  # answered by the replay stage
    first, second = llm_spans(spans)
    saved = (second.attributes or {})["llmspend.cost.saved_usd"]
    assert saved == pytest.approx((first.attributes or {})["llmspend.cost.usd"])
    parent = track_span(spans, "llmspend.track faq").attributes or {}
    assert parent["llmspend.calls"] == 2 and parent["llmspend.calls_from.cache"] == 1
    assert parent["llmspend.cost.saved.cache_usd"] == pytest.approx(saved)
    assert parent["llmspend.cost.saved_usd"] == pytest.approx(saved)
    assert parent["llmspend.cost.total_usd"] == pytest.approx((first.attributes or {})["llmspend.cost.usd"])
    assert len(server.requests) == 1 and scope.saved_usd == pytest.approx(saved)


def test_a_call_of_unknown_cost_makes_the_total_say_it_is_incomplete(client: openai.OpenAI, spans: Spans) -> None:
    with llmspend.track(feature="mixed", tracer_provider=spans.provider) as scope:
        ask(client)
        client.chat.completions.create(model="no-such-model-zz", messages=ASK)
    priced, unpriced = llm_spans(spans)
    assert "llmspend.cost.usd" not in (unpriced.attributes or {})
    parent = track_span(spans, "llmspend.track mixed").attributes or {}
    assert parent["llmspend.cost.unknown_calls"] == 1 and parent["llmspend.cost.complete"] is False
    assert parent["llmspend.cost.total_usd"] == pytest.approx((priced.attributes or {})["llmspend.cost.usd"])
    assert not scope.complete


def test_an_error_inside_marks_the_track_span(client: openai.OpenAI, spans: Spans) -> None:
    @llmspend.track(feature="fails", tracer_provider=spans.provider)
    def fails() -> None:
        ask(client)
        raise RuntimeError("app bug")

    with pytest.raises(RuntimeError):
        fails()
    span = track_span(spans, "llmspend.track fails")
    assert span.status.status_code.name == "ERROR" and (span.attributes or {})["llmspend.calls"] == 1


def test_without_a_tracer_provider_the_global_one_is_used(client: openai.OpenAI, spans: Spans) -> None:
    # No SDK is installed globally in the tests: the track span is a no-op, attribution is not.
    with llmspend.track(feature="global") as scope:
        ask(client)
    (call,) = spans.finished
    assert (call.attributes or {})["llmspend.feature"] == "global" and call.parent is None
    assert scope.calls == 1


# -- metrics and the cardinality guard -------------------------------------------------------
def test_metrics_carry_the_feature_up_to_the_limit_then_other_and_never_the_user(
    server: FakeLLMServer, spans: Spans, metrics: Metrics
) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=spans.provider, meter_provider=metrics.provider)
    llmspend.set_max_metric_features(2)
    for feature in ("a", "b", "c", "d", "a"):
        with llmspend.track(feature=feature, user=f"user-{feature}", tracer_provider=spans.provider):
            ask(client, feature)
    points = metrics.collect()["llmspend.cost"].data.data_points
    by_feature = {p.attributes.get("llmspend.feature"): p.value for p in points}
    assert set(by_feature) == {"a", "b", "_other"}
    span_cost = {}
    for span in llm_spans(spans):
        a = span.attributes or {}
        span_cost[a["llmspend.feature"]] = span_cost.get(a["llmspend.feature"], 0.0) + a["llmspend.cost.usd"]  # type: ignore[operator]
    assert by_feature["_other"] == pytest.approx(span_cost["c"] + span_cost["d"])  # spans keep the real name
    assert by_feature["a"] == pytest.approx(span_cost["a"])
    assert all("llmspend.user" not in p.attributes for p in points)


def test_set_max_metric_features_validates() -> None:
    with pytest.raises(llmspend.ConfigError, match="whole number"):
        llmspend.set_max_metric_features(-1)


# -- configuration errors ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature": ""}, "non-empty string"),
        ({"feature": "f", "user": 7}, "non-empty string"),
        ({"feature": "f", "tags": {"k": object()}}, "string or number"),
        ({"feature": "f", "tags": ["k"]}, "dict of str"),
        ({"feature": "f", "budget_usd": 5}, "needs a period"),
        ({"feature": "f", "budget_usd": 5, "period": "week"}, "period must be one of"),
        ({"feature": "f", "budget_usd": -1, "period": "day"}, "from 0 to"),
        # before, these passed construction and every call failed with OverflowError
        ({"feature": "f", "budget_usd": float("inf"), "period": "day"}, "from 0 to 1,000,000,000"),
        ({"feature": "f", "budget_usd": 10**30, "period": "day"}, "from 0 to 1,000,000,000"),
        ({"budget_usd": 5, "period": "day"}, "pass feature="),
        ({"feature": "f", "per_user": True}, "only apply to a budget"),
        ({"feature": "f", "fallback_model": "gpt-4o-mini"}, "only apply to a budget"),
        ({"feature": "f", "budget_usd": 1, "period": "day", "on_unknown": "maybe"}, "on_unknown"),
        ({"feature": "f", "budget_usd": 1, "period": "day", "ledger": "foo://x"}, r"no budget ledger handles foo://"),
        ({"feature": "f", "budget_usd": 1, "period": "day", "ledger": 42}, "ledger= takes"),
    ],
)
def test_configuration_errors_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(llmspend.ConfigError, match=message):
        llmspend.track(**kwargs)


def test_decorating_something_not_callable_is_an_error() -> None:
    with pytest.raises(llmspend.ConfigError, match="decorates functions"):
        llmspend.track(feature="f")(42)  # type: ignore[arg-type]


def test_a_failing_span_processor_never_breaks_the_tracked_code(client: openai.OpenAI) -> None:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    class Boom(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            raise RuntimeError("exporter bug")

        def on_end(self, span: Any) -> None:
            raise RuntimeError("exporter bug")

    provider = TracerProvider()
    provider.add_span_processor(Boom())
    with llmspend.track(feature="robust", tracer_provider=provider) as scope:
        ask(client)
    assert scope.calls == 1
