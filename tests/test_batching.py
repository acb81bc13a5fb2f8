"""Query batching's pure parts: the batched prompt, reading answers back (every failure kind),
and usage shares that add up exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmspend.batching import (
    DUPLICATE,
    MALFORMED,
    MISSING,
    TaggedFormat,
    apportion_usage,
    largest_remainder,
    parse_tagged_answers,
    read_questions,
    split_question,
    split_shared,
)
from llmspend.batching.merge import bounded, group_key, merged_body, mergeable
from llmspend.providers.base import Usage

SYSTEM = {"role": "system", "content": "Answer with one letter."}
SHOT_Q = {"role": "user", "content": "2+2? A) 3 B) 4"}
SHOT_A = {"role": "assistant", "content": "B"}


def body(question: str, **extra: object) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "max_tokens": 20, "temperature": 0,
            "messages": [SYSTEM, SHOT_Q, SHOT_A, {"role": "user", "content": question}], **extra}


# -- the prompt ------------------------------------------------------------------------------
def test_prompt_tags_questions_in_order_and_reads_back() -> None:
    text = TaggedFormat().build(["first?", "  second,\nover two lines?  ", "third?"])
    assert "exactly 3 answers" in text
    lines = text.splitlines()
    assert lines[-4:] == ["Q[1]: first?", "Q[2]: second,", "over two lines?", "Q[3]: third?"]
    assert read_questions(text) == {1: "first?", 2: "second,\nover two lines?", 3: "third?"}


def test_custom_instruction() -> None:
    text = TaggedFormat("Solve these {count}.").build(["a", "b"])
    assert text == "Solve these 2.\n\nQ[1]: a\nQ[2]: b"


def test_split_question() -> None:
    prefix, question = split_question(body("x?")["messages"])  # type: ignore[misc]
    assert prefix == [SYSTEM, SHOT_Q, SHOT_A] and question == "x?"
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert split_question(parts) == ([], "a\nb")
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}}]}]
    assert split_question(image) is None
    assert split_question([SYSTEM]) is None  # last message is not the user's
    assert split_question([{"role": "user", "content": "   "}]) is None
    assert split_question([{"role": "user", "content": "hi", "name": "bob"}]) is None
    assert split_question([]) is None and split_question("nope") is None


def test_mergeable_and_bounded() -> None:
    assert mergeable(body("x")) and bounded(body("x"))
    assert not bounded({k: v for k, v in body("x").items() if k != "max_tokens"})
    assert bounded(body("x", max_completion_tokens=5))
    for extra in ({"stream": True}, {"n": 2}, {"tools": [{"type": "function"}]}, {"logprobs": True},
                  {"response_format": {"type": "json_object"}}, {"tool_choice": "auto"}):
        assert not mergeable(body("x", **extra)), extra
    assert mergeable(body("x", n=1, response_format={"type": "text"}))


def test_group_key_separates_what_cannot_share_a_prompt() -> None:
    headers = [("authorization", "Bearer a")]
    key = group_key(body("one"), headers)
    assert key == group_key(body("two"), headers)  # only the question differs
    assert key == group_key(body("two", max_tokens=99), headers)  # bounds are summed, not compared
    assert key != group_key(body("two", temperature=1), headers)
    assert key != group_key(body("two", model="gpt-4o"), headers)
    assert key != group_key(body("one"), [("authorization", "Bearer b")])  # another credential
    other_prefix = body("two")
    other_prefix["messages"] = [SYSTEM, {"role": "user", "content": "two"}]
    assert key != group_key(other_prefix, headers)
    assert key != group_key(body("two", max_completion_tokens=20), headers)
    assert "Bearer" not in key


def test_merged_body_keeps_the_prefix_and_sums_the_bounds() -> None:
    merged = merged_body([body("one?", max_tokens=10), body("two?", max_tokens=30)], TaggedFormat())
    assert merged["messages"][:3] == [SYSTEM, SHOT_Q, SHOT_A]  # byte-identical prefix: provider caches still hit
    assert read_questions(merged["messages"][3]["content"]) == {1: "one?", 2: "two?"}
    assert merged["max_tokens"] == 10 + 30 + 2 * 8
    assert merged["temperature"] == 0 and merged["model"] == "gpt-4o-mini"
    unbounded = [{k: v for k, v in body(q).items() if k != "max_tokens"} for q in ("a", "b")]
    assert "max_tokens" not in merged_body(unbounded, TaggedFormat())


# -- parsing -----------------------------------------------------------------------------------
def test_parse_well_formed_and_multiline() -> None:
    parsed = parse_tagged_answers("A[1]: Paris\nA[2]: Line one\nline two\n\nA[3]: 4", 3)
    assert parsed.answers == {1: "Paris", 2: "Line one\nline two", 3: "4"}
    assert parsed.complete and not parsed.failures


def test_parse_matches_by_tag_not_position() -> None:
    parsed = parse_tagged_answers("A[3]: c\nA[1]: a\nA[2]: b", 3)
    assert parsed.answers == {1: "a", 2: "b", 3: "c"}


def test_parse_tolerates_preamble_markdown_and_spacing() -> None:
    text = "Here are the answers:\n**A[1]:** yes\n  A[2] : no\n> A[3]:maybe"
    assert parse_tagged_answers(text, 3).answers == {1: "yes", 2: "no", 3: "maybe"}


def test_missing_answer_never_shifts_the_others() -> None:
    parsed = parse_tagged_answers("A[1]: one\nA[3]: three\nA[4]: four", 4)
    assert parsed.failures == {2: MISSING}
    assert parsed.answers == {1: "one", 3: "three", 4: "four"}


def test_untagged_reply_is_all_missing() -> None:
    parsed = parse_tagged_answers("Paris\nShakespeare", 2)
    assert parsed.failures == {1: MISSING, 2: MISSING} and not parsed.answers


def test_duplicate_answer_is_not_trusted() -> None:
    parsed = parse_tagged_answers("A[1]: one\nA[2]: two\nA[2]: deux\nA[3]: three", 3)
    assert parsed.failures == {2: DUPLICATE}
    assert parsed.answers == {1: "one", 3: "three"}


@pytest.mark.parametrize("broken", ["A[2] two", "A2: two", "A[ 2 ]: two", "A 2) two", "A[2]. two"])
def test_malformed_tag(broken: str) -> None:
    parsed = parse_tagged_answers(f"A[1]: one\n{broken}\nA[3]: three", 3)
    assert parsed.failures == {2: MALFORMED}
    assert parsed.answers == {1: "one", 3: "three"}  # the broken line also ends answer 1


def test_empty_answer_is_malformed() -> None:
    parsed = parse_tagged_answers("A[1]:\nA[2]: two", 2)
    assert parsed.failures == {1: MALFORMED} and parsed.answers == {2: "two"}


def test_truncated_reply_distrusts_its_last_answer() -> None:
    parsed = parse_tagged_answers("A[2]: two\nA[1]: the answer is Par", 2, truncated=True)
    assert parsed.failures == {1: MALFORMED} and parsed.answers == {2: "two"}


def test_unasked_index_distrusts_every_answer() -> None:
    parsed = parse_tagged_answers("A[1]: one\nA[2]: two\nA[3]: three", 2)
    assert parsed.unexpected == (3,)
    assert parsed.failures == {1: MALFORMED, 2: MALFORMED} and not parsed.answers
    assert parse_tagged_answers("A[0]: zero\nA[1]: one", 1).failures == {1: MALFORMED}


@given(st.lists(st.text(alphabet="abc xyz\n", min_size=1, max_size=30).filter(lambda s: s.strip()), min_size=1, max_size=8),
       st.randoms(use_true_random=False), st.sets(st.integers(1, 8)))
def test_parse_never_gives_a_wrong_answer(answers: list[str], rng: object, drop: set[int]) -> None:
    """Whatever is dropped or reordered, every answer given is the one written under its tag."""
    items = [(i, a.strip()) for i, a in enumerate(answers, 1) if i not in drop]
    rng.shuffle(items)  # type: ignore[attr-defined]
    text = "\n".join(f"A[{i}]: {a}" for i, a in items)
    parsed = parse_tagged_answers(text, len(answers))
    for i, a in parsed.answers.items():
        assert a == answers[i - 1].strip()
    assert set(parsed.answers) | set(parsed.failures) == set(range(1, len(answers) + 1))
    assert not set(parsed.answers) & set(parsed.failures)


# -- apportioning ------------------------------------------------------------------------------
def test_largest_remainder() -> None:
    assert largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
    assert largest_remainder(7, [0, 0]) == [4, 3]
    assert largest_remainder(0, [5, 1]) == [0, 0]
    assert largest_remainder(100, [2, 1, 1]) == [50, 25, 25]
    with pytest.raises(ValueError):
        largest_remainder(3, [])


def test_split_shared_gives_each_its_own_and_an_even_part_of_the_rest() -> None:
    # 100 shared: 33.3 each on top of their own 10, 20, 30; the unit left over goes to the first (a tie)
    shares = split_shared(160, [10, 20, 30])
    assert sum(shares) == 160
    assert shares == [44, 53, 63]
    # local estimates larger than the provider's count: proportional instead
    assert split_shared(30, [20, 20, 20]) == [10, 10, 10]


@given(st.integers(0, 100_000), st.integers(0, 50_000), st.lists(st.integers(0, 500), min_size=1, max_size=16),
       st.data())
def test_apportioned_usage_adds_up_exactly(total_in: int, total_out: int, own_in: list[int], data: st.DataObject) -> None:
    own_out = data.draw(st.lists(st.integers(0, 300), min_size=len(own_in), max_size=len(own_in)))
    cached = data.draw(st.integers(0, total_in))
    reasoning = data.draw(st.integers(0, total_out))
    usage = Usage(input_tokens=total_in, output_tokens=total_out, cache_read_tokens=cached, reasoning_tokens=reasoning)
    shares = apportion_usage(usage, own_in, own_out)
    assert sum(s.input_tokens for s in shares) == total_in
    assert sum(s.output_tokens for s in shares) == total_out
    assert sum(s.cache_read_tokens for s in shares) == cached
    assert sum(s.reasoning_tokens for s in shares) == reasoning
    for share in shares:
        assert 0 <= share.cache_read_tokens <= share.input_tokens
        assert 0 <= share.reasoning_tokens <= share.output_tokens


def test_apportion_follows_own_tokens() -> None:
    usage = Usage(input_tokens=1000, output_tokens=100)
    a, b = apportion_usage(usage, [50, 150], [10, 90])
    assert (a.input_tokens, b.input_tokens) == (450, 550)  # 800 shared: 400 each, plus their own
    assert (a.output_tokens, b.output_tokens) == (10, 90)
