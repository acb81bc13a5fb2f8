"""llmspend.trim, the pure function: budgets, what is never dropped, tool-call pairing,
duplicates, whitespace outside code, example selection and a prefix that stays put."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmspend
from llmspend import PromptTooLongError, trim
from llmspend.exceptions import ConfigError
from llmspend.tokens import count_chat_messages
from llmspend.trimming import DUPLICATE_MARKER, default_budget, select_examples
from llmspend.trimming.text import collapse_whitespace, compact_json, split_blocks

SYSTEM = {"role": "system", "content": "You are the support assistant.\n\n\nAnswer   briefly."}
_VOCAB = ("order refund parcel invoice account password shipping label courier warehouse discount "
          "voucher delivery address payment card receipt return exchange size colour").split()


def words(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


def conversation(turns: int, *, size: int = 60, question: str = "What is the status of my last order?") -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [SYSTEM]
    for t in range(turns):
        messages.append({"role": "user", "content": f"Turn {t}: " + words(size, t)})
        messages.append({"role": "assistant", "content": f"Reply {t}: " + words(size, 1000 + t)})
    messages.append({"role": "user", "content": question})
    return messages


def sent_tokens(messages: list[Any], model: str = "gpt-4o-mini") -> int:
    return count_chat_messages(messages, model)


def test_a_prompt_that_fits_loses_nothing() -> None:
    messages = conversation(3)
    result = trim(messages, model="gpt-4o-mini", budget=100_000)
    assert result.dropped == ()
    assert len(result.messages) == len(messages)
    assert result.messages[0] is messages[0]  # the system prompt is the very same object
    assert result.tokens_after == result.tokens_before == sent_tokens(messages)
    assert not result.changed


def test_oldest_turns_go_first_and_the_opening_and_question_stay() -> None:
    messages = conversation(20)
    result = trim(messages, model="gpt-4o-mini", budget=800)
    assert result.tokens_after <= 800 < result.tokens_before
    assert result.tokens_after == sent_tokens(result.messages)  # the count is of what is sent
    assert result.messages[0] == SYSTEM and result.messages[-1] == messages[-1]
    dropped = sorted(d.index for d in result.dropped)
    assert all(d.reason == "over_budget" and d.kind == "message" for d in result.dropped)
    # one contiguous block, right after the system prompt, whole turns (user + reply)
    assert dropped == list(range(1, 1 + len(dropped))) and len(dropped) % 2 == 0
    assert result.messages[1:] == messages[1 + len(dropped):]
    assert result.saved_tokens == result.tokens_before - result.tokens_after > 0


def test_input_is_never_modified_and_output_is_deterministic() -> None:
    messages = conversation(12)
    messages[3]["content"] = "lots   of    spaces\n\n\n\nhere  "
    before = copy.deepcopy(messages)
    first = trim(messages, model="gpt-4o-mini", budget=600)
    second = trim(copy.deepcopy(messages), model="gpt-4o-mini", budget=600)
    assert messages == before
    assert json.dumps(first.messages) == json.dumps(second.messages)


def tool_turn(t: int, calls: int) -> list[dict[str, Any]]:
    ids = [f"call_{t}_{c}" for c in range(calls)]
    return [
        {"role": "user", "content": f"Look up order {t}: " + words(20, t)},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": i, "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"order": t})}} for i in ids]},
        *({"role": "tool", "tool_call_id": i, "content": json.dumps({"order": t, "status": words(30, t * 10 + c)})}
          for c, i in enumerate(ids)),
        {"role": "assistant", "content": f"Order {t} is on its way. " + words(20, t + 9)},
    ]


def assert_tool_pairs_whole(messages: list[dict[str, Any]]) -> None:
    issued = {c["id"] for m in messages for c in m.get("tool_calls") or ()}
    answered = {m["tool_call_id"] for m in messages if m.get("role") == "tool"}
    assert issued == answered


def test_a_tool_call_is_never_separated_from_its_results() -> None:
    messages: list[dict[str, Any]] = [SYSTEM]
    for t in range(8):
        messages += tool_turn(t, calls=1 + t % 3)
    messages.append({"role": "user", "content": "and the last one?"})
    for budget in range(120, 1500, 37):
        result = trim(messages, model="gpt-4o-mini", budget=budget, on_overflow="send")
        assert_tool_pairs_whole(result.messages)


def test_a_tool_call_that_spans_turns_keeps_the_turns_together() -> None:
    # the call is made in one turn and answered after the next user message
    messages = [SYSTEM,
                {"role": "user", "content": "start a long job " + words(40, 1)},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "job", "type": "function", "function": {"name": "run", "arguments": "{}"}}]},
                {"role": "user", "content": "meanwhile, " + words(40, 2)},
                {"role": "tool", "tool_call_id": "job", "content": "done"},
                {"role": "assistant", "content": words(40, 3)},
                {"role": "user", "content": "now? " + words(40, 4)},
                {"role": "assistant", "content": words(40, 5)},
                {"role": "user", "content": "final question"}]
    result = trim(messages, model="gpt-4o-mini", budget=sent_tokens(messages) - 10, drop_step=0)
    assert_tool_pairs_whole(result.messages)
    # the first two turns went together (they share the call), the third stayed
    assert sorted(d.index for d in result.dropped) == [1, 2, 3, 4, 5]


def test_the_turn_being_answered_keeps_its_tool_calls() -> None:
    messages = conversation(10) + tool_turn(99, calls=2)[1:-1]  # the model now reads the tool results
    result = trim(messages, model="gpt-4o-mini", budget=400)
    assert result.messages[-4]["content"] == messages[-4]["content"]  # the question
    assert result.messages[-3] == messages[-3]  # the calls
    for sent, given in zip(result.messages[-2:], messages[-2:]):  # the results (JSON compacted)
        assert sent["tool_call_id"] == given["tool_call_id"] and json.loads(sent["content"]) == json.loads(given["content"])
    assert_tool_pairs_whole(result.messages)


def test_responses_api_items_keep_calls_with_outputs() -> None:
    items: list[dict[str, Any]] = [{"role": "developer", "content": "be brief"}]
    for t in range(10):
        items += [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "find " + words(40, t)}]},
            {"type": "function_call", "call_id": f"fc{t}", "name": "search", "arguments": "{}"},
            {"type": "function_call_output", "call_id": f"fc{t}", "output": json.dumps({"hits": words(30, t)}, indent=2)},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": words(30, t + 50)}]},
        ]
    items.append({"role": "user", "content": "and now?"})
    result = trim(items, model="gpt-4o-mini", budget=500)
    assert result.messages[0] == items[0] and result.messages[-1] == items[-1]
    calls = {i["call_id"] for i in result.messages if i.get("type") == "function_call"}
    outputs = {i["call_id"] for i in result.messages if i.get("type") == "function_call_output"}
    assert calls == outputs and 0 < len(calls) < 10
    output = next(i["output"] for i in result.messages if i.get("type") == "function_call_output")
    assert "\n" not in output and json.loads(output)["hits"]  # compacted, same value


def test_anthropic_style_tool_results_do_not_start_a_turn() -> None:
    messages: list[dict[str, Any]] = []
    for t in range(6):
        messages += [
            {"role": "user", "content": [{"type": "text", "text": "weather " + words(40, t)}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": f"tu{t}", "name": "weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"tu{t}", "content": words(40, t + 3)}]},
            {"role": "assistant", "content": [{"type": "text", "text": words(30, t + 5)}]},
        ]
    messages.append({"role": "user", "content": [{"type": "text", "text": "thanks, and tomorrow?"}]})
    for budget in range(100, 1000, 50):
        kept = trim(messages, model="claude-sonnet-4-5", budget=budget, on_overflow="send").messages
        uses = {b["id"] for m in kept for b in m["content"] if b.get("type") == "tool_use"}
        results = {b["tool_use_id"] for m in kept for b in m["content"] if b.get("type") == "tool_result"}
        assert uses == results
        assert kept[0]["content"][0]["type"] == "text"  # the kept part starts with a real question


DOCUMENT = "\n\n".join(f"Section {n}. " + words(45, 300 + n) for n in range(4))


def test_a_document_pasted_twice_in_one_message_is_sent_once() -> None:
    messages = [SYSTEM, {"role": "user", "content": f"Here it is:\n\n{DOCUMENT}\n\nagain:\n\n{DOCUMENT}\n\nSummarise it."}]
    result = trim(messages, model="gpt-4o-mini", budget=100_000)
    sent = result.messages[-1]["content"]
    assert sent.count("Section 2.") == 1 and sent.count(DUPLICATE_MARKER) == 1
    assert sent.startswith("Here it is:") and sent.endswith("Summarise it.")
    assert result.tokens_after < result.tokens_before - 150
    (rewrite,) = result.rewritten
    assert rewrite.index == 1 and "duplicate" in rewrite.reasons


def test_a_repeat_of_an_earlier_message_is_removed_but_not_if_the_earlier_one_is_dropped() -> None:
    messages = [SYSTEM,
                {"role": "user", "content": f"Contract:\n\n{DOCUMENT}"},
                {"role": "assistant", "content": "Got it."},
                {"role": "user", "content": words(200, 7)},
                {"role": "assistant", "content": words(200, 8)},
                {"role": "user", "content": f"Same contract again:\n\n{DOCUMENT}\n\nWhat does section 2 say?"}]
    roomy = trim(messages, model="gpt-4o-mini", budget=100_000)
    assert roomy.messages[1] == messages[1]  # the first copy is kept (the prompt's stable opening)
    assert "Section 2." not in roomy.messages[-1]["content"] and DUPLICATE_MARKER in roomy.messages[-1]["content"]
    tight = trim(messages, model="gpt-4o-mini", budget=sent_tokens([SYSTEM, messages[-1]]) + 20, drop_step=0)
    assert 1 in {d.index for d in tight.dropped}
    assert tight.messages[-1] == messages[-1]  # the only copy left is sent whole


def test_short_repeats_and_system_prompts_are_left_alone() -> None:
    system = {"role": "system", "content": f"Policy:\n\n{DOCUMENT}"}
    messages = [system, {"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": "Welcome."},
                {"role": "user", "content": f"Thanks!\n\nYou said:\n\n{DOCUMENT}\n\nwhy?"}]
    result = trim(messages, model="gpt-4o-mini", budget=100_000)
    assert result.messages[0] is system
    last = result.messages[-1]["content"]
    assert last.startswith("Thanks!") and DUPLICATE_MARKER in last and "Section 1." not in last
    assert trim(messages, model="gpt-4o-mini", budget=100_000, dedupe=False).messages[-1] == messages[-1]


def test_whitespace_collapses_outside_code_only() -> None:
    code = "```python\ndef f(x):\n    return  x   *  2    \n\n\n\n```"
    text = f"\n\nLook   at  this:   \n\n\n\n{code}\n\n\n    indented  code   stays\nend.   \n\n"
    messages = [SYSTEM, {"role": "user", "content": text}]
    sent = trim(messages, model="gpt-4o-mini", budget=100_000).messages
    assert sent[0] is SYSTEM  # "Answer   briefly." untouched
    assert sent[1]["content"] == f"Look at this:\n\n{code}\n\n    indented  code   stays\nend."
    assert trim(messages, model="gpt-4o-mini", budget=100_000, collapse_whitespace=False).messages == messages


def test_json_tool_results_are_compacted_without_changing_values() -> None:
    text = '{\n    "name": "two  spaces",\n    "nested": {\n        "list": [1, 2.50, "x\\ny"]\n    },\n    "unicode": "café"\n}\n'
    payload = json.loads(text)
    messages = [SYSTEM, {"role": "user", "content": "go"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "a", "content": text}]
    result = trim(messages, model="gpt-4o-mini", budget=100_000)
    compact = result.messages[-1]["content"]
    assert json.loads(compact) == payload and "2.50" in compact and "two  spaces" in compact
    assert len(compact) < len(text) and result.rewritten[0].reasons == ("json",)


def test_too_long_latest_message_is_an_error_never_a_truncation() -> None:
    messages = conversation(5, question="Please read: " + words(900, 1))
    with pytest.raises(PromptTooLongError) as info:
        trim(messages, model="gpt-4o-mini", budget=500)
    assert info.value.budget == 500 and info.value.tokens > 500
    assert "never dropped or shortened" in str(info.value) and "on_overflow='send'" in str(info.value)
    sent = trim(messages, model="gpt-4o-mini", budget=500, on_overflow="send")
    assert sent.overflow and sent.messages == messages and sent.tokens_after == sent.tokens_before


def test_default_budget_is_the_context_window_less_the_output() -> None:
    assert default_budget("gpt-3.5-turbo") == 16385 - 4096
    assert default_budget("gpt-3.5-turbo", max_tokens=1000) == 16385 - 1000
    assert default_budget("no-such-model") is None
    messages = conversation(60, size=200)  # about 25k tokens
    result = trim(messages, model="gpt-3.5-turbo", max_tokens=1000)
    assert result.budget == 15385 and result.tokens_after <= 15385 < result.tokens_before
    unknown = trim(messages, model="no-such-model")
    assert unknown.budget is None and unknown.dropped == ()


def test_keep_first_turns_pins_the_task_statement() -> None:
    messages = conversation(15)
    result = trim(messages, model="gpt-4o-mini", budget=700, keep_first_turns=1)
    assert result.messages[:3] == messages[:3]
    assert min(d.index for d in result.dropped) == 3


QUESTIONS = ["How do I reset my password?", "Where is my parcel?", "Can I get a refund for a damaged item?",
             "How do I change my delivery address?", "Why was my card declined?"]
ANSWERS = ["Use the sign-in page.", "Check the tracking link.", "Yes, within 30 days.",
           "Edit it under account settings.", "Your bank declined the payment."]


def test_structured_examples_keep_the_k_most_similar_in_order() -> None:
    examples = [{"input": q, "output": a} for q, a in zip(QUESTIONS, ANSWERS)]
    messages = [SYSTEM, {"role": "user", "content": "My parcel has not arrived, and I want a refund"}]
    result = trim(messages, model="gpt-4o-mini", budget=100_000, examples=examples, examples_k=2)
    assert result.examples_used == (1, 2)  # parcel and refund, in their original order
    assert [m["content"] for m in result.messages] == [SYSTEM["content"], QUESTIONS[1], ANSWERS[1],
                                                       QUESTIONS[2], ANSWERS[2], messages[1]["content"]]
    assert {d.index for d in result.dropped} == {0, 3, 4}
    assert all(d.kind == "example" and d.reason == "not_selected" for d in result.dropped)
    everything = trim(messages, model="gpt-4o-mini", budget=100_000, examples=examples)
    assert everything.examples_used == (0, 1, 2, 3, 4) and len(everything.messages) == 12


def test_example_messages_in_the_prompt_are_selected() -> None:
    messages: list[dict[str, Any]] = [SYSTEM]
    for q, a in zip(QUESTIONS, ANSWERS):
        messages += [{"role": "system", "name": "example_user", "content": q},
                     {"role": "system", "name": "example_assistant", "content": a}]
    messages.append({"role": "user", "content": "I typed the wrong password three times"})
    result = trim(messages, model="gpt-4o-mini", budget=100_000, examples_k=1)
    assert result.messages == [SYSTEM, messages[1], messages[2], messages[-1]]


def test_example_blocks_in_a_system_prompt_are_selected() -> None:
    blocks = "".join(f"<example>\nQ: {q}\nA: {a}\n</example>\n" for q, a in zip(QUESTIONS, ANSWERS))
    system = {"role": "system", "content": f"Answer support questions.\n\n{blocks}\nBe kind."}
    messages = [system, {"role": "user", "content": "my card was declined at checkout"}]
    result = trim(messages, model="gpt-4o-mini", budget=100_000, examples_k=1)
    content = result.messages[0]["content"]
    assert content.count("<example>") == 1 and QUESTIONS[4] in content
    assert content.startswith("Answer support questions.") and content.endswith("Be kind.")
    assert result.rewritten[0].reasons == ("examples",)
    assert trim(messages, model="gpt-4o-mini", budget=100_000).messages[0] is system  # only when asked


def test_examples_go_after_old_turns_least_similar_first() -> None:
    examples = [{"input": q + " " + words(60, n), "output": a} for n, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))]
    messages = conversation(4, question="Why was my card declined?")
    need = sent_tokens([SYSTEM, messages[-1]]) + 3 * 90
    result = trim(messages, model="gpt-4o-mini", budget=need, examples=examples)
    over = [d for d in result.dropped if d.kind == "example"]
    assert len([d for d in result.dropped if d.kind == "message"]) == 8  # every old turn first
    assert over and all(d.reason == "over_budget" for d in over)
    assert 4 in result.examples_used  # the card example is the last to go


def test_select_examples_is_bm25_in_original_order() -> None:
    assert select_examples("refund for a damaged item", QUESTIONS, 1) == [2]
    assert select_examples("parcel delivery address", QUESTIONS, 2) == [1, 3]
    assert select_examples("anything", QUESTIONS, 10) == [0, 1, 2, 3, 4]
    assert select_examples("zzz", QUESTIONS, 2) == [0, 1]  # no overlap: ties keep the first


def test_a_growing_conversation_keeps_its_trimmed_prefix() -> None:
    """Consecutive calls of a growing conversation send the same opening bytes (so the
    provider's prompt cache hits), except when the cut moves, which is rare."""

    def run(drop_step: float) -> tuple[int, int]:
        messages = conversation(10)
        previous: list[Any] | None = None
        moves = shared = 0
        for t in range(10, 60):
            result = trim(messages, model="gpt-4o-mini", budget=2000, drop_step=drop_step)
            if previous is not None:
                if json.dumps(result.messages[: len(previous) - 1]) == json.dumps(previous[:-1]):
                    shared += 1  # all but the previous question is an exact prefix of this prompt
                else:
                    moves += 1
            previous = result.messages
            messages = messages + [{"role": "assistant", "content": f"Reply {t}: " + words(60, 1000 + t)},
                                   {"role": "user", "content": f"Turn {t}: " + words(60, t)}]
        return moves, shared

    stepped_moves, stepped_shared = run(0.25)
    eager_moves, _ = run(0.0)
    assert eager_moves >= 45  # dropping as little as possible moves the cut on almost every call
    assert stepped_moves * 3 <= eager_moves and stepped_moves + stepped_shared == 49


def test_bad_options_are_config_errors() -> None:
    messages = conversation(2)
    for kwargs in ({"budget": 0}, {"budget": 1.5}, {"on_overflow": "truncate"}, {"examples_k": -1},
                   {"drop_step": 2}, {"keep_first_turns": -1}, {"examples": ["just a string"]}):
        with pytest.raises(ConfigError):
            trim(messages, model="gpt-4o-mini", **kwargs)
    with pytest.raises(ConfigError, match="list of messages"):
        trim("hello", model="gpt-4o-mini")  # type: ignore[arg-type]


def test_exported_from_the_package() -> None:
    assert llmspend.trim is trim and "trim" in llmspend.__all__ and "TrimResult" in llmspend.__all__


# -- properties ------------------------------------------------------------------------------
texts = st.lists(st.sampled_from(list("ab c\t\n`~{}[]\"") + ["```", "    ", "\n\n", "~~~"]), max_size=40).map("".join)


@given(texts)
def test_blocks_join_back_exactly(text: str) -> None:
    assert "".join(block + sep for block, sep in split_blocks(text)) == text


@given(texts)
def test_whitespace_collapse_is_idempotent(text: str) -> None:
    once = collapse_whitespace(text)
    assert collapse_whitespace(once) == once


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=8))
def test_compact_json_keeps_the_value(value: Any) -> None:
    text = json.dumps(value, indent=2)
    compact = compact_json(text)
    if isinstance(value, dict | list):
        assert compact is not None and json.loads(compact) == value and len(compact) <= len(text)
    else:
        assert compact is None


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [SYSTEM]
    for t in range(draw(st.integers(0, 12))):
        messages.append({"role": "user", "content": words(draw(st.integers(1, 80)), t)})
        if draw(st.booleans()):
            messages += tool_turn(t, draw(st.integers(1, 3)))[1:-1]
        if draw(st.booleans()):
            messages.append({"role": "system", "content": "note " + str(t)})
        messages.append({"role": "assistant", "content": words(draw(st.integers(1, 80)), t + 500)})
    messages.append({"role": "user", "content": words(draw(st.integers(1, 40)), 9999)})
    return messages


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.integers(20, 3000), st.sampled_from([0.0, 0.25, 1.0]))
def test_trim_invariants(messages: list[dict[str, Any]], budget: int, drop_step: float) -> None:
    try:
        result = trim(messages, model="gpt-4o-mini", budget=budget, drop_step=drop_step)
    except PromptTooLongError as exc:
        # only when what is never dropped (system messages, the question) is over budget alone
        pinned = [m for m in messages[:-1] if m["role"] == "system"] + [messages[-1]]
        assert exc.tokens > budget and exc.tokens == trim(pinned, model="gpt-4o-mini", budget=10**6).tokens_after
        return
    sent = result.messages
    assert result.tokens_after == sent_tokens(sent) <= budget
    assert [m for m in sent if m["role"] == "system"] == [m for m in messages if m["role"] == "system"]
    assert sent[-1]["content"].split() == messages[-1]["content"].split()  # never truncated
    assert_tool_pairs_whole(sent)
    # what is sent is the input minus one contiguous block of the conversation
    conversation_in = [i for i, m in enumerate(messages) if m["role"] != "system"]
    dropped = sorted(d.index for d in result.dropped)
    assert dropped == conversation_in[: len(dropped)]
