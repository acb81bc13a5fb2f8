"""llmspend's other stages with Anthropic requests: trimming reads and rewrites the Messages
API's conversation (the top-level system untouched, a tool_use never parted from its
tool_result); budgets bound, refuse and redirect Claude calls; llmspend's own errors reach the
caller as themselves, not as the SDK's "Connection error."; the query-batching stage leaves
Messages requests alone. Retries are in test_anthropic_retry.py, Message Batches in
test_anthropic_batches.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import anthropic
from helpers_anthropic import MODEL, Spans, async_client, sync_client

import llmspend
from llmspend.ledger import MemoryLedger
from llmspend.testing import FakeLLMServer
from llmspend_anthropic.testing import FakeAnthropicAPI

SYSTEM = [{"type": "text", "text": "You are the support desk of Example Store. " * 40, "cache_control": {"type": "ephemeral"}}]
TOOL = {"name": "lookup_order", "input_schema": {"type": "object", "properties": {"n": {"type": "string"}}}}
FILLER = "We looked at the order history, the shipping notes and the refund policy in detail. " * 30


def _conversation() -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for i in range(6):
        turns.append({"role": "user", "content": f"Question {i}: {FILLER}"})
        if i == 2:  # an agent step in the middle: the call and its result must stay together
            turns.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_7", "name": "lookup_order", "input": {"n": "7"}}]})
            turns.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_7", "content": FILLER}]})
        turns.append({"role": "assistant", "content": f"Answer {i}: {FILLER}"})
    turns.append({"role": "user", "content": "And where is order 1182 now?"})
    return turns


def _check_trimmed(server: FakeLLMServer, spans: Spans, sent_before: int, budget: int = 3000) -> int:
    """Checks what was sent; returns how many tool_use blocks it kept."""
    body = json.loads(server.requests[-1].body)
    messages = body["messages"]
    assert body["system"] == SYSTEM  # outside the conversation: never touched
    assert messages[-1] == {"role": "user", "content": "And where is order 1182 now?"}  # the question, whole
    assert len(messages) < sent_before
    uses = [b for m in messages if isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_use"]
    results = [b for m in messages if isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_result"]
    assert len(uses) == len(results)  # both kept or both dropped
    assert [m["role"] for m in messages] == [("user", "assistant")[i % 2] for i in range(len(messages))]  # still alternating
    attrs = spans.attrs()
    assert attrs["llmspend.trim.tokens_after"] < attrs["llmspend.trim.tokens_before"]
    assert attrs["llmspend.trim.tokens_after"] <= budget
    assert attrs["llmspend.cost.usd"] > 0 and attrs["gen_ai.usage.input_tokens"] < attrs["llmspend.trim.tokens_before"]
    return len(uses)


@pytest.mark.parametrize(("budget", "tool_calls_kept"), [(3000, 0), (6000, 1)])
def test_trim_messages_request(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, budget: int, tool_calls_kept: int) -> None:
    conversation = _conversation()
    client = sync_client(server, spans, trim=budget)
    message = client.messages.create(model=MODEL, max_tokens=200, system=SYSTEM, tools=[TOOL], messages=conversation)
    assert message.content
    assert _check_trimmed(server, spans, len(conversation), budget) == tool_calls_kept


async def test_trim_streamed_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    conversation = _conversation()
    client = async_client(server, spans, trim=3000)
    async with client.messages.stream(model=MODEL, max_tokens=200, system=SYSTEM, tools=[TOOL], messages=conversation) as stream:
        await stream.get_final_message()
    _check_trimmed(server, spans, len(conversation))


def test_within_budget_only_lossless_rewrites(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    conversation = [{"role": "user", "content": "Where   is my   order?\n\n\n\nIt is 1182."}]
    sync_client(server, spans, trim=True).messages.create(model=MODEL, max_tokens=50, system=SYSTEM, messages=conversation)
    body = json.loads(server.requests[-1].body)
    assert body["messages"] == [{"role": "user", "content": "Where is my order?\n\nIt is 1182."}]
    assert body["system"] == SYSTEM


async def test_query_batching_leaves_messages_requests_alone(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = async_client(server, spans, batch=True)
    questions = ["Refund time?", "Gift refunds?", "Shipping to Canada?"]
    answers = await asyncio.gather(*(client.messages.create(model=MODEL, max_tokens=50, system=SYSTEM,
                                                            messages=[{"role": "user", "content": q}]) for q in questions))
    assert all(a.content for a in answers)
    assert sorted(json.loads(r.body)["messages"][0]["content"] for r in server.requests) == sorted(questions)  # one each
    assert len(spans.finished()) == 3


@pytest.mark.parametrize("sdk_retries", [False, True])
def test_prompt_too_long_reaches_the_caller_as_itself(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                      sdk_retries: bool) -> None:
    # the anthropic SDK turns foreign exceptions from its transport into APIConnectionError
    # (and retries those): llmspend's must come through as they are, and never be retried
    options: dict[str, Any] = {"retry": False} if sdk_retries else {}
    client = sync_client(server, spans, trim=llmspend.TrimOptions(budget=50, on_overflow="error"), **options)
    with pytest.raises(llmspend.PromptTooLongError) as info:
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": FILLER}])
    assert info.value.budget == 50 and info.value.tokens > 50
    assert not isinstance(info.value, anthropic.APIConnectionError)
    assert server.requests == []  # nothing sent, nothing retried


async def test_budget_refusal_and_fallback_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = async_client(server, spans)
    ask = [{"role": "user", "content": "Where is order 1182?"}]
    with llmspend.track(feature="anthropic-support", budget_usd=0.001, period="day"):
        with pytest.raises(llmspend.BudgetExceededError) as info:  # opus with 2,000 output tokens cannot fit
            await client.messages.create(model="claude-opus-4-5", max_tokens=2000, messages=ask)
    assert info.value.budget == "anthropic-support/day" and info.value.requested_usd > info.value.limit_usd
    assert server.requests == []
    with llmspend.track(feature="anthropic-triage", budget_usd=0.01, period="day", fallback_model=MODEL):
        message = await client.messages.create(model="claude-opus-4-5", max_tokens=1500, system=SYSTEM, messages=ask)
    assert message.model.startswith(MODEL)  # redirected to the model that fits
    assert json.loads(server.requests[-1].body)["model"] == MODEL
    refused, sent = (dict(s.attributes or {}) for s in spans.finished())
    assert refused["llmspend.budget.refused"] == "anthropic-support/day"
    assert sent["llmspend.budget.fallback_model"] == MODEL and sent["llmspend.cost.usd"] > 0


def _budget_of_a_stream_left_early(spans: Spans, book: MemoryLedger) -> None:
    (attrs,) = (dict(s.attributes or {}) for s in spans.finished())
    status = llmspend.spent("anthropic-stream", ledger=book)
    # message_start's usage is not the final count: the provider may bill tokens generated after
    # the client stopped reading, so the budget keeps the whole reservation (as for OpenAI).
    assert status.calls == 1 and status.reserved_usd == 0
    assert status.spent_usd == pytest.approx(attrs["llmspend.budget.reserved_usd"], abs=1e-9)
    assert status.spent_usd > attrs["llmspend.cost.usd"]


def test_stream_left_before_its_final_usage_is_charged_its_reservation(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                                       spans: Spans) -> None:
    # Before, the partial usage of message_start settled the budget: the call was charged less
    # than the provider could bill.
    book = MemoryLedger()
    client = sync_client(server, spans)
    with llmspend.track(feature="anthropic-stream", budget_usd=1.0, period="day", ledger=book):
        with client.messages.stream(model=MODEL, max_tokens=100, system=SYSTEM,
                                    messages=[{"role": "user", "content": "Where is order 1182?"}]) as stream:
            next(iter(stream))
    _budget_of_a_stream_left_early(spans, book)


async def test_async_stream_left_before_its_final_usage_is_charged_its_reservation(
        server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    book = MemoryLedger()
    client = async_client(server, spans)
    async with llmspend.track(feature="anthropic-stream", budget_usd=1.0, period="day", ledger=book):
        async with client.messages.stream(model=MODEL, max_tokens=100, system=SYSTEM,
                                          messages=[{"role": "user", "content": "Where is order 1182?"}]) as stream:
            await stream.__aiter__().__anext__()
    _budget_of_a_stream_left_early(spans, book)
