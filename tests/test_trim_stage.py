"""The trim stage through the official openai SDK, sync and async, against a local server:
what the server receives, span attributes, the saving, overflow handling and per-call control."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import llmspend
from llmspend import ConfigError, PromptTooLongError, TrimOptions
from llmspend.attribution import Attribution, _current
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Spans

MODEL = "gpt-4o-mini"  # $0.15 per 1M input tokens in the shipped table
_VOCAB = "order refund parcel invoice account password shipping label courier warehouse".split()


def words(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


def conversation(turns: int, question: str = "Where is my order?") -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a support assistant."}]
    for t in range(turns):
        messages += [{"role": "user", "content": f"Turn {t}:   " + words(80, t)},
                     {"role": "assistant", "content": f"Reply {t}: " + words(80, 100 + t)}]
    return messages + [{"role": "user", "content": question}]


class Caller:
    """Makes calls through a wrapped sync or async openai client, the same way either mode."""

    def __init__(self, mode: str, server: FakeLLMServer, spans: Spans) -> None:
        self.mode, self.server, self.spans = mode, server, spans

    def client(self, **options: Any) -> Any:
        cls = openai.OpenAI if self.mode == "sync" else openai.AsyncOpenAI
        return llmspend.wrap(cls(base_url=self.server.base_url, api_key=API_KEY), tracer_provider=self.spans.provider, **options)

    async def chat(self, trim: Any, **kwargs: Any) -> Any:
        create = self.client(trim=trim).chat.completions.create
        return create(model=MODEL, **kwargs) if self.mode == "sync" else await create(model=MODEL, **kwargs)

    async def responses(self, trim: Any, **kwargs: Any) -> Any:
        create = self.client(trim=trim).responses.create
        return create(model=MODEL, **kwargs) if self.mode == "sync" else await create(model=MODEL, **kwargs)

    def sent(self) -> dict[str, Any]:
        body: dict[str, Any] = self.server.requests[-1].json()
        return body


@pytest.fixture(params=["sync", "async"])
def caller(request: pytest.FixtureRequest, server: FakeLLMServer, spans: Spans) -> Caller:
    return Caller(request.param, server, spans)


@pytest.fixture
def feature() -> Iterator[None]:
    token = _current.set(Attribution(feature="search"))  # what llmspend.track(feature="search") sets
    yield
    _current.reset(token)


async def test_the_server_receives_the_trimmed_prompt(caller: Caller, spans: Spans) -> None:
    messages = conversation(30)
    expected = llmspend.trim(messages, model=MODEL, budget=1500)
    response = await caller.chat(1500, messages=messages)
    assert caller.sent()["messages"] == expected.messages
    assert caller.sent()["messages"][0] == messages[0] and caller.sent()["messages"][-1] == messages[-1]
    attrs = spans.attrs()
    assert attrs["llmspend.trim.tokens_before"] == expected.tokens_before > 1500
    assert attrs["llmspend.trim.tokens_after"] == expected.tokens_after <= 1500
    assert attrs["llmspend.trim.budget"] == 1500
    assert attrs["llmspend.trim.dropped_messages"] == len(expected.dropped) > 0
    # the server counted what it received the way the trimmer counted what it sent
    assert response.usage.prompt_tokens == attrs["gen_ai.usage.input_tokens"] == expected.tokens_after
    saved = (expected.tokens_before - expected.tokens_after) * 0.15 / 1_000_000
    assert attrs["llmspend.cost.saved_usd"] == pytest.approx(saved)


async def test_a_prompt_needing_no_change_is_sent_byte_for_byte(caller: Caller, server: FakeLLMServer, spans: Spans) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    await caller.chat(True, messages=messages)
    await caller.chat(False, messages=messages)
    trimmed, plain = server.requests
    assert trimmed.body == plain.body
    first = spans.attrs(0)
    assert first["llmspend.trim.tokens_before"] == first["llmspend.trim.tokens_after"]
    assert first["llmspend.trim.budget"] == 128_000 - 16_384  # context window less max output
    assert "llmspend.cost.saved_usd" not in first and "llmspend.trim.tokens_before" not in spans.attrs(1)


async def test_whitespace_and_duplicates_are_saved_even_within_budget(caller: Caller, spans: Spans) -> None:
    document = "\n\n".join(f"Clause {n}. " + words(60, 50 + n) for n in range(5))
    messages = [{"role": "user", "content": f"Contract:\n\n\n\n{document}\n\nAgain:   \n\n{document}\n\nIs clause 3 fair?"}]
    await caller.chat(True, messages=messages)
    sent = caller.sent()["messages"][0]["content"]
    assert sent.count("Clause 3.") == 1 and sent.endswith("Is clause 3 fair?") and "\n\n\n" not in sent
    attrs = spans.attrs()
    assert attrs["llmspend.trim.tokens_after"] < attrs["llmspend.trim.tokens_before"] - 200
    assert attrs["llmspend.trim.rewritten_messages"] == 1 and attrs["llmspend.cost.saved_usd"] > 0


async def test_too_long_is_an_error_before_anything_is_sent(caller: Caller, server: FakeLLMServer, spans: Spans) -> None:
    messages = conversation(3, question="Read this: " + words(600, 9))
    with pytest.raises(PromptTooLongError) as info:
        await caller.chat(200, messages=messages)
    assert info.value.budget == 200 and info.value.tokens > 200
    assert server.requests == []
    attrs = spans.attrs()
    assert attrs["error.type"] == "PromptTooLongError" and attrs["llmspend.trim.overflow"] is True
    # how far over: the smallest prompt trimming could make, against the budget
    assert attrs["llmspend.trim.tokens_needed"] == info.value.tokens and attrs["llmspend.trim.budget"] == 200


async def test_too_long_can_be_sent_untrimmed_with_a_warning(
    caller: Caller, spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    messages = conversation(3, question="Read this: " + words(600, 9))
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        await caller.chat(TrimOptions(budget=200, on_overflow="send"), messages=messages)
    assert caller.sent()["messages"] == messages
    assert any("sent untrimmed" in r.getMessage() for r in caplog.records)
    attrs = spans.attrs()
    assert attrs["llmspend.trim.overflow"] is True and "error.type" not in attrs
    assert attrs["llmspend.trim.tokens_before"] == attrs["llmspend.trim.tokens_after"] == attrs["gen_ai.usage.input_tokens"]


async def test_per_call_headers_switch_off_or_set_the_budget(caller: Caller, server: FakeLLMServer, spans: Spans) -> None:
    messages = conversation(20)
    await caller.chat(True, messages=messages, extra_headers={"x-llmspend-trim": "off"})
    assert caller.sent()["messages"] == messages
    await caller.chat(True, messages=messages, extra_headers={"x-llmspend-trim-budget": "900"})
    assert caller.sent()["messages"] == llmspend.trim(messages, model=MODEL, budget=900).messages
    assert spans.attrs()["llmspend.trim.budget"] == 900
    for request in server.requests:  # the control headers never reach the provider
        assert not any(name.lower().startswith("x-llmspend") for name in request.headers)
    with pytest.raises(ConfigError, match="x-llmspend-trim-budget"):
        await caller.chat(True, messages=messages, extra_headers={"x-llmspend-trim-budget": "lots"})
    assert len(server.requests) == 2


async def test_budget_per_feature(caller: Caller, spans: Spans, feature: None) -> None:
    messages = conversation(20)
    await caller.chat({"budget": {"search": 700, "chat": 5000}}, messages=messages)
    assert spans.attrs()["llmspend.trim.budget"] == 700
    assert caller.sent()["messages"] == llmspend.trim(messages, model=MODEL, budget=700).messages


async def test_responses_api_input_is_trimmed(caller: Caller, spans: Spans) -> None:
    items: list[dict[str, Any]] = []
    for t in range(15):
        items += [{"role": "user", "content": "find " + words(60, t)},
                  {"type": "function_call", "call_id": f"c{t}", "name": "search", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": f"c{t}", "output": words(40, t + 30)},
                  {"role": "assistant", "content": words(40, t + 60)}]
    items.append({"role": "user", "content": "and now?"})
    await caller.responses(800, instructions="Be brief.", input=items)
    sent = caller.sent()
    assert sent["instructions"] == "Be brief." and sent["input"][-1] == items[-1]
    assert sent["input"] == llmspend.trim(items, model=MODEL, budget=800,
                                          overhead_tokens=llmspend.tokens.count_text("Be brief.", MODEL)).messages
    calls = {i["call_id"] for i in sent["input"] if i.get("type") == "function_call"}
    assert calls == {i["call_id"] for i in sent["input"] if i.get("type") == "function_call_output"}
    assert spans.attrs()["llmspend.trim.tokens_after"] <= 800


async def test_a_streamed_call_is_trimmed_too(caller: Caller, spans: Spans) -> None:
    messages = conversation(20)
    stream = await caller.chat(900, messages=messages, stream=True)
    if caller.mode == "sync":
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    else:
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    assert caller.sent()["messages"] == llmspend.trim(messages, model=MODEL, budget=900).messages
    attrs = spans.attrs()
    assert attrs["gen_ai.usage.input_tokens"] == attrs["llmspend.trim.tokens_after"] <= 900


async def test_examples_k_keeps_the_closest_examples(caller: Caller, spans: Spans) -> None:
    pairs = [("How do I reset my password?", "Use the sign-in page."), ("Where is my parcel?", "See the tracking link."),
             ("Can I get a refund?", "Yes, within 30 days.")]
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Answer support questions."}]
    for q, a in pairs:
        messages += [{"role": "user", "name": "example", "content": q}, {"role": "assistant", "name": "example", "content": a}]
    messages.append({"role": "user", "content": "my parcel never came"})
    await caller.chat(TrimOptions(examples_k=1), messages=messages)
    assert [m["content"] for m in caller.sent()["messages"]] == [
        "Answer support questions.", "Where is my parcel?", "See the tracking link.", "my parcel never came"]
    assert spans.attrs()["llmspend.trim.dropped_examples"] == 2


async def test_a_fault_in_trimming_never_fails_the_call(
    caller: Caller, spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("trimmer bug")

    monkeypatch.setattr("llmspend.stages.trim.trim", broken)
    messages = conversation(20)
    response = await caller.chat(500, messages=messages)
    assert response.choices and caller.sent()["messages"] == messages
    assert spans.attrs()["llmspend.trim.error"] == "RuntimeError: trimmer bug"


async def test_a_large_async_prompt_is_trimmed(server: FakeLLMServer, spans: Spans) -> None:
    messages = conversation(500)  # well over 256 KB of JSON: trimmed off the event loop
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider, trim=4000)
    assert len(json.dumps(messages)) > 256 * 1024
    await client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert server.requests[-1].json()["messages"] == llmspend.trim(messages, model=MODEL, budget=4000).messages


async def test_requests_without_a_conversation_pass_untouched(caller: Caller, server: FakeLLMServer, spans: Spans) -> None:
    client = caller.client(trim=100)
    create = client.embeddings.create
    result = create(model="text-embedding-3-small", input=["a b c"] * 50)
    if caller.mode == "async":
        await result
    assert not any(k.startswith("llmspend.trim") for k in spans.attrs())


@pytest.mark.parametrize("value", ["yes", 0, -5, {"bugdet": 100}, {"budget": {"search": 0}},
                                   {"on_overflow": "truncate"}, {"examples_k": 1.5}, {"dedupe": "no"},
                                   {"budget": {}, "drop_step": -1}])
def test_wrong_trim_options_fail_at_wrap(server: FakeLLMServer, value: Any) -> None:
    with pytest.raises(ConfigError, match="trim"):
        llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), trim=value)


def test_demo_section_shows_the_saving() -> None:
    import io

    from llmspend.demo import run_demo

    out = io.StringIO()
    result = run_demo(out, sections=["trim"]).sections["trim"]
    whole, trimmed = result["whole"], result["trimmed"]
    assert whole["calls"] == trimmed["calls"] == 40
    assert trimmed["input"] < whole["input"] and trimmed["usd"] < whole["usd"]
    assert trimmed["last_after"] <= result["budget"] < trimmed["last_before"]
    assert trimmed["cached"] > 0  # the kept opening still hits the provider's prompt cache
    assert "Measured:" in out.getvalue() and "llmspend.cost.saved_usd" in out.getvalue()


def test_an_adapter_without_message_access_is_left_alone(server: FakeLLMServer, spans: Spans) -> None:
    class NoRewriting(llmspend.OpenAIAdapter):
        get_messages = llmspend.ProviderAdapter.get_messages  # the contract's default: nothing to trim

    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           provider=NoRewriting(), trim=100)
    messages = conversation(10)
    client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert server.requests[-1].json()["messages"] == messages
    assert not any(k.startswith("llmspend.trim") for k in spans.attrs())


async def test_outputs_for_calls_the_server_holds_are_never_dropped(caller: Caller, spans: Spans) -> None:
    # previous_response_id: the function calls live on the server; their outputs open the input,
    # and the provider rejects a continuation that leaves one of them out
    outputs = [{"type": "function_call_output", "call_id": f"call_{n}", "output": words(300, n)} for n in range(2)]
    items = [*outputs, {"role": "user", "content": "Old question: " + words(300, 7)},
             {"role": "assistant", "content": words(300, 8)}, {"role": "user", "content": "And Paris?"}]
    await caller.responses(700, previous_response_id="resp_1", input=items)
    sent = caller.sent()["input"]
    assert sent[:2] == outputs and sent[-1] == items[-1]
    assert spans.attrs()["llmspend.trim.dropped_messages"] == 2 and spans.attrs()["llmspend.trim.tokens_after"] <= 700


async def test_whitespace_inside_quoted_strings_is_kept(caller: Caller, spans: Spans) -> None:
    # JSON pasted into a message (not a tool result): its string values are data
    payload = {"sku": "AB  12", "address": "10  Downing St", "note": "leave at door    please"}
    pasted = json.dumps(payload, indent=2)
    messages = [{"role": "user", "content": f"Is   this order valid?\n\n\n{pasted}\n\nAnd `x  = 1`?"}]
    await caller.chat(True, messages=messages)
    sent = caller.sent()["messages"][0]["content"]
    assert json.loads(sent[sent.index("{"):sent.rindex("}") + 1]) == payload
    assert sent.startswith("Is this order valid?\n\n{") and sent.endswith("And `x  = 1`?")
    assert spans.attrs()["llmspend.trim.rewritten_messages"] == 1


async def test_tab_separated_cells_keep_their_columns(caller: Caller, spans: Spans) -> None:
    # cells pasted from a spreadsheet: two tabs are an empty cell, not a wide gap
    table = "Name\tPhone\tEmail\nBob\t\tbob@example.com\nAda\t555-0100\t\t"
    messages = [{"role": "user", "content": f"Who   has no phone?\n\n{table}"}]
    await caller.chat(True, messages=messages)
    sent = caller.sent()["messages"][0]["content"]
    assert sent.startswith("Who has no phone?") and "Bob\t\tbob@example.com" in sent
    assert sent.endswith(table)  # trailing empty cells too


async def test_a_diff_keeps_the_indentation_of_its_lines(caller: Caller, spans: Spans) -> None:
    # a coding agent's tool returns `git diff`: after the +/- marker, indentation is code
    diff = ("diff --git a/app.py b/app.py\n@@ -1,4 +1,4 @@\n def total(items):\n"
            "-    return sum(items)\n+    return sum(i.price for i in items)\n-  # old  note\n+\tpass\n")
    messages = [{"role": "user", "content": "Review   my change."},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "git_diff", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": diff}]
    await caller.chat(True, messages=messages)
    sent = caller.sent()["messages"]
    assert sent[0]["content"] == "Review my change." and sent[2]["content"] == diff.rstrip("\n")


async def test_a_plain_string_input_is_held_to_the_budget(caller: Caller, server: FakeLLMServer, spans: Spans) -> None:
    with pytest.raises(PromptTooLongError) as info:
        await caller.responses(200, input="Summarise: " + words(600, 3))
    assert server.requests == [] and info.value.budget == 200
    await caller.responses(200, instructions="Be brief.", input="Where   is\n\n\n\nmy order?")
    assert caller.sent()["input"] == "Where is\n\nmy order?" and caller.sent()["instructions"] == "Be brief."
    assert spans.attrs()["llmspend.trim.rewritten_messages"] == 1


async def test_a_refusal_in_the_history_counts_against_the_budget(caller: Caller, spans: Spans) -> None:
    refused = [{"role": "user", "content": "Write it all out."},
               {"role": "assistant", "content": None, "refusal": "I can't: " + words(600, 4)}]
    await caller.chat(200, messages=[*refused, {"role": "user", "content": "Then just the title?"}])
    assert caller.sent()["messages"] == [{"role": "user", "content": "Then just the title?"}]
    attrs = spans.attrs()
    assert attrs["llmspend.trim.tokens_before"] > 600 and attrs["llmspend.trim.tokens_after"] <= 200
