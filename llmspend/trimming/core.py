"""The trimming decision: what of a prompt to send so that it fits its token budget.

Rules, in the order they apply (see ``docs/trim.md``):

1. System and developer messages are never dropped or changed (they open the prompt, and the
   provider's prompt cache keys on that opening). The latest user message and everything after
   it (the turn being answered: its tool calls and results) is never dropped or truncated.
2. Few-shot examples, when ``examples_k`` is given, are cut to the ``k`` most similar to the
   latest user message (BM25), kept in their original order.
3. Lossless rewrites of the other messages: whitespace outside code collapsed, JSON tool
   results compacted. Deterministic, so a growing conversation keeps a byte-identical opening.
4. When the prompt is over budget, whole turns are dropped, oldest first, as one contiguous
   block right after the kept opening. A tool call and its result are never separated. The
   block grows in steps (``drop_step`` of the budget), so consecutive calls of a growing
   conversation drop the same turns and keep sharing their prefix.
5. Still over: examples are dropped, least similar first.
6. Exact repeats of earlier blocks of text (a document pasted twice) are replaced by a short
   marker, among the messages that are sent.
7. Still over: :class:`~llmspend.exceptions.PromptTooLongError` (``on_overflow="error"``) or the
   untouched prompt with ``overflow=True`` (``on_overflow="send"``). Nothing is ever truncated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..exceptions import ConfigError, PromptTooLongError
from ..pricing.table import PriceTable
from ..tokens import TOKENS_REPLY_PRIMER, count_text
from .examples import example_blocks, rank_examples, select_examples
from .messages import SYSTEM, USER, Shape, item_text, item_tokens, map_text, read
from .text import DuplicateFilter, compact_json
from .text import collapse_whitespace as collapse_spaces

__all__ = ["trim", "TrimResult", "Dropped", "Rewritten", "default_budget", "OnOverflow"]

OnOverflow = Literal["error", "send"]

#: default share of the budget dropped at a time (see rule 4)
DEFAULT_DROP_STEP = 0.25
#: default shortest run of repeated text worth replacing by the marker, in characters
DEFAULT_MIN_DUPLICATE_CHARS = 200


@dataclass(frozen=True)
class Dropped:
    """A message or example left out, and why."""

    kind: Literal["message", "example"]
    #: position in the input ``messages`` (for an example given in the messages or in a system
    #: prompt's ``<example>`` block, the message it is in); for ``examples=``, position there
    index: int
    #: ``"over_budget"``: dropped to fit; ``"not_selected"``: not among the ``examples_k`` chosen
    reason: Literal["over_budget", "not_selected"]
    tokens: int


@dataclass(frozen=True)
class Rewritten:
    """A message sent in a shorter form."""

    index: int  #: position in the input ``messages``
    #: what changed: ``"whitespace"``, ``"json"``, ``"duplicate"``, ``"examples"``
    reasons: tuple[str, ...]
    tokens_before: int
    tokens_after: int


@dataclass(frozen=True)
class TrimResult:
    """What :func:`trim` decided. ``messages`` is what to send."""

    messages: list[Any]
    tokens_before: int
    tokens_after: int
    #: the budget applied; ``None`` when none was given and the model's context window is unknown
    budget: int | None
    dropped: tuple[Dropped, ...] = ()
    rewritten: tuple[Rewritten, ...] = ()
    #: the prompt could not fit and is returned untrimmed (``on_overflow="send"``)
    overflow: bool = False
    #: positions in ``examples=`` of the examples inserted into ``messages``
    examples_used: tuple[int, ...] = field(default=())

    @property
    def saved_tokens(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def changed(self) -> bool:
        """Whether ``messages`` differs from the input (structured examples count as input)."""
        return bool(self.dropped or self.rewritten)


def default_budget(model: str | None, *, max_tokens: int | None = None, prices: PriceTable | None = None) -> int | None:
    """The model's context window minus the output it may produce (``max_tokens``, else the
    model's maximum output), from the price table; ``None`` for a model the table lacks."""
    row = (prices or PriceTable.default()).lookup(model)
    if row is None or not row.context_window:
        return None
    reserve = int(max_tokens) if max_tokens is not None else (row.max_output_tokens or 0)
    return max(1, row.context_window - reserve)


@dataclass(eq=False)
class _Example:
    """One few-shot example, wherever it came from."""

    source: Literal["messages", "structured", "tag"]
    index: int  #: first message / position in examples= / the system message holding the tag
    members: tuple[int, ...] = ()  #: message indices (source "messages")
    span: tuple[int, int] = (0, 0)  #: characters of the tag in the system content (source "tag")
    text: str = ""  #: what is compared with the question
    tokens: int = 0
    messages: list[Any] = field(default_factory=list)  #: the messages to insert ("structured")
    raw: list[Any] = field(default_factory=list)  #: the same before lossless rewrites


def check_settings(budget: int | None, examples_k: int | None, on_overflow: str, drop_step: float,
                   keep_first_turns: int, min_duplicate_chars: int, overhead_tokens: int) -> None:
    """Raise ConfigError, saying what to change, for a setting trim() cannot take."""

    def is_int(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if budget is not None and (not is_int(budget) or budget < 1):
        raise ConfigError(f"trim budget must be a whole number of tokens >= 1, got {budget!r}")
    if examples_k is not None and (not is_int(examples_k) or examples_k < 0):
        raise ConfigError(f"trim examples_k must be a whole number >= 0 (or None to keep every example), got {examples_k!r}")
    if on_overflow not in ("error", "send"):
        raise ConfigError(f"trim on_overflow must be 'error' (raise before sending) or 'send' (send untrimmed), got {on_overflow!r}")
    if not isinstance(drop_step, int | float) or isinstance(drop_step, bool) or not 0 <= drop_step <= 1:
        raise ConfigError(f"trim drop_step must be a share of the budget between 0 and 1, got {drop_step!r}")
    if not is_int(keep_first_turns) or keep_first_turns < 0:
        raise ConfigError(f"trim keep_first_turns must be a whole number >= 0, got {keep_first_turns!r}")
    if not is_int(min_duplicate_chars) or min_duplicate_chars < 1:
        raise ConfigError(f"trim min_duplicate_chars must be a whole number >= 1, got {min_duplicate_chars!r}")
    if not is_int(overhead_tokens) or overhead_tokens < 0:
        raise ConfigError(f"trim overhead_tokens must be a whole number >= 0, got {overhead_tokens!r}")


def _structured(example: Any, position: int) -> tuple[list[Any], str]:
    """The messages of one ``examples=`` item, and its question side."""
    if isinstance(example, Mapping) and "input" in example and "output" in example:
        return ([{"role": "user", "content": str(example["input"])},
                 {"role": "assistant", "content": str(example["output"])}], str(example["input"]))
    if isinstance(example, Mapping) and "role" in example:
        return [dict(example)], item_text(example)
    if isinstance(example, Sequence) and not isinstance(example, str) and all(isinstance(m, Mapping) for m in example):
        messages = [dict(m) for m in example]
        asks = [item_text(m) for m in messages if m.get("role") == "user"]
        return messages, "\n".join(asks) if asks else "\n".join(item_text(m) for m in messages)
    raise ConfigError(
        f"examples= items are {{'input': ..., 'output': ...}} dicts or lists of chat messages; "
        f"item {position} is a {type(example).__name__}"
    )


def _message_examples(messages: list[Any], shapes: list[Shape], size: Callable[[int], int]) -> list[_Example]:
    """Examples marked in the conversation: runs of example messages, each starting at its
    question side."""
    found: list[_Example] = []
    for i, shape in enumerate(shapes):
        if not shape.example:
            continue
        if shape.example_start or not found or found[-1].members[-1] != i - 1:
            found.append(_Example("messages", i))
        found[-1].members += (i,)
        found[-1].tokens += size(i)
    for ex in found:
        asks = [item_text(messages[i]) for i in ex.members if shapes[i].example_start]
        ex.text = "\n".join(asks or [item_text(messages[i]) for i in ex.members])
    return found


def _tag_examples(messages: list[Any], shapes: list[Shape], model: str | None) -> list[_Example]:
    """``<example>`` blocks in system prompts whose content is a string."""
    found = []
    for i, shape in enumerate(shapes):
        if shape.role != SYSTEM or shape.example or not isinstance(messages[i].get("content"), str):
            continue
        content = messages[i]["content"]
        for start, end, inner in example_blocks(content):
            found.append(_Example("tag", i, span=(start, end), text=inner, tokens=count_text(content[start:end], model)))
    return found


def _without_tags(item: Mapping[str, Any], spans: list[tuple[int, int]]) -> dict[str, Any]:
    content: str = item["content"]
    for start, end in sorted(spans, reverse=True):
        content = content[:start] + content[end:]
    return {**item, "content": content}


def _segments(shapes: list[Shape], conversation: list[int]) -> list[list[int]]:
    """``conversation`` (message indices) cut into the pieces that may be dropped one by one:
    turns (a user message and what follows it), joined where a tool call and its result would
    otherwise fall apart."""
    turns: list[list[int]] = []
    for i in conversation:
        if not turns or shapes[i].role == USER:
            turns.append([])
        turns[-1].append(i)
    turn_of = {i: t for t, turn in enumerate(turns) for i in turn}
    opened: dict[str, int] = {}
    for i in conversation:
        for call_id in shapes[i].opens:
            opened.setdefault(call_id, turn_of[i])
    joined = [False] * len(turns)  # joined[t]: turn t may not be cut from turn t - 1
    for i in conversation:
        for call_id in shapes[i].closes:
            for t in range(opened.get(call_id, turn_of[i]) + 1, turn_of[i] + 1):
                joined[t] = True
    segments: list[list[int]] = []
    for t, turn in enumerate(turns):
        if segments and joined[t]:
            segments[-1].extend(turn)
        else:
            segments.append(list(turn))
    return segments


def _split(shapes: list[Shape], segments: list[list[int]], latest_user: int | None, keep_first_turns: int) -> tuple[int, int]:
    """``(first, last)``: segments before ``first`` are pinned by ``keep_first_turns``, those
    from ``last`` on hold the turn being answered; the ones between may be dropped.

    A tool result whose call is not in the list answers a call the server holds (a Responses
    ``previous_response_id``): the provider rejects the request without it, and dropping what
    comes before it would leave a hole after the server's part, so it and everything before
    it are pinned too."""
    last = len(segments) - 1 if segments else 0
    if latest_user is not None:
        last = next(n for n, seg in enumerate(segments) if latest_user in seg)
    first = 0
    turns = 0
    while first < last and turns < keep_first_turns:
        turns += max(1, sum(1 for i in segments[first] if shapes[i].role == USER))
        first += 1
    opened = {call_id for seg in segments for i in seg for call_id in shapes[i].opens}
    for n, seg in enumerate(segments[:last]):
        if any(call_id not in opened for i in seg for call_id in shapes[i].closes):
            first = max(first, n + 1)
    return first, last


def _cut(placing: list[int], size: Callable[[int], int], room: int, step: float) -> int:
    """How many of the oldest droppable segments to drop so the rest fits in ``room`` tokens.

    The fewest that fit, rounded up to the next cut point; cut points are placed every ``step``
    tokens from the start of the conversation, measured with ``placing`` (each segment's tokens
    as given, so the points never move while the conversation grows): the cut then stays put
    for many calls and the prompt keeps its cached prefix. ``size(j)`` is segment ``j``'s
    tokens as it will be sent; only the segments that are kept are ever sized.
    """
    count = len(placing)
    fewest, kept = count, 0
    while fewest > 0 and kept + size(fewest - 1) <= room:
        fewest -= 1
        kept += size(fewest)
    if fewest == 0:
        return 0
    position = previous = 0
    for cut in range(1, count):
        position += placing[cut - 1]
        chunk = math.floor(position / step) if step > 0 else cut
        if chunk != previous and cut >= fewest:
            return cut
        previous = chunk
    return count


def _rewrite_losslessly(index: int, reasons: dict[int, list[str]]) -> Callable[[str, bool], str]:
    def rewrite(text: str, is_tool: bool) -> str:
        compact = compact_json(text) if is_tool else None
        new = compact if compact is not None else collapse_spaces(text)
        if new != text:
            reasons.setdefault(index, []).append("json" if compact is not None else "whitespace")
        return new

    return rewrite


def _dedupe(items: list[Any], shapes: list[Shape | None], min_chars: int, touched: Callable[[int], None]) -> list[Any]:
    """``items`` with repeats of earlier text replaced (system prompts are read, not changed)."""
    seen = DuplicateFilter(min_chars)

    def remember(text: str, is_tool: bool) -> str:
        seen.see(text)
        return text

    out = []
    for n, item in enumerate(items):
        shape = shapes[n]
        if shape is not None and shape.role == SYSTEM and not shape.example:
            map_text(item, remember)
            out.append(item)
            continue
        new = map_text(item, lambda text, _: seen.filter(text))
        if new is not item:
            touched(n)
        out.append(new)
    return out


def trim(
    messages: Sequence[Any],
    *,
    model: str | None = None,
    budget: int | None = None,
    max_tokens: int | None = None,
    overhead_tokens: int = 0,
    examples: Sequence[Any] | None = None,
    examples_k: int | None = None,
    on_overflow: OnOverflow = "error",
    dedupe: bool = True,
    collapse_whitespace: bool = True,
    keep_first_turns: int = 0,
    drop_step: float = DEFAULT_DROP_STEP,
    min_duplicate_chars: int = DEFAULT_MIN_DUPLICATE_CHARS,
    prices: PriceTable | None = None,
) -> TrimResult:
    """Fit ``messages`` (a conversation, oldest first) into ``budget`` prompt tokens.

    ``budget`` defaults to :func:`default_budget` (the model's context window minus
    ``max_tokens``); with no budget known only the lossless rewrites apply. ``overhead_tokens``
    is what the request spends outside the messages (tool definitions). ``examples`` are
    structured few-shot examples to insert after the system messages (``{"input", "output"}``
    dicts or lists of messages); ``examples_k`` keeps the ``k`` most similar to the latest user
    message among them, the example messages in ``messages`` and ``<example>`` blocks in system
    prompts. ``keep_first_turns`` pins the first turns (a task statement). The module
    docstring lists the rules.

    Raises :class:`~llmspend.exceptions.PromptTooLongError` when the prompt cannot fit and
    ``on_overflow="error"``. ``messages`` itself is never modified.
    """
    check_settings(budget, examples_k, on_overflow, drop_step, keep_first_turns, min_duplicate_chars, overhead_tokens)
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise ConfigError(f"trim() takes a list of messages, got {type(messages).__name__}")
    original = list(messages)
    shapes = [read(m) for m in original]
    costs = [item_tokens(m, model) for m in original]
    fixed = TOKENS_REPLY_PRIMER + overhead_tokens
    structured: list[_Example] = []
    for position, example in enumerate(examples or ()):
        inserted, text = _structured(example, position)
        structured.append(_Example("structured", position, text=text, messages=inserted, raw=inserted,
                                   tokens=sum(item_tokens(m, model) for m in inserted)))
    tokens_before = fixed + sum(costs) + sum(ex.tokens for ex in structured)
    if budget is None:
        budget = default_budget(model, max_tokens=max_tokens, prices=prices)

    # lossless rewrites of everything but system prompts, made (and counted) only for what is sent
    reasons: dict[int, list[str]] = {}
    current: dict[int, Any] = {}
    sized: dict[int, int] = {}

    def sent_form(i: int) -> Any:
        if i not in current:
            rewrite = collapse_whitespace and (shapes[i].role != SYSTEM or shapes[i].example)
            current[i] = map_text(original[i], _rewrite_losslessly(i, reasons)) if rewrite else original[i]
        return current[i]

    def size(i: int) -> int:
        if i not in sized:
            item = sent_form(i)
            sized[i] = costs[i] if item is original[i] else item_tokens(item, model)
        return sized[i]

    if collapse_whitespace:
        for ex in structured:
            ex.messages = [map_text(m, _rewrite_losslessly(-1, {})) for m in ex.messages]
            ex.tokens = sum(item_tokens(m, model) for m in ex.messages)

    # few-shot examples: the k most similar to the question
    conversation = [i for i, s in enumerate(shapes) if s.role != SYSTEM and not s.example]
    users = [i for i in conversation if shapes[i].role == USER]
    question = item_text(original[users[-1]]) if users else ""
    tags = _tag_examples(original, shapes, model) if examples_k is not None else []
    pool = _message_examples(original, shapes, size) + structured + tags
    dropped: list[Dropped] = []
    if examples_k is not None and len(pool) > examples_k:
        chosen = set(select_examples(question, [ex.text for ex in pool], examples_k) if question else range(examples_k))
        dropped += [Dropped("example", ex.index, "not_selected", ex.tokens) for n, ex in enumerate(pool) if n not in chosen]
        pool = [ex for n, ex in enumerate(pool) if n in chosen]

    # turns that may be dropped, and what is always sent
    segments = _segments(shapes, conversation)
    first, last = _split(shapes, segments, users[-1] if users else None, keep_first_turns)
    droppable = segments[first:last]
    always = fixed + sum(size(i) for i, s in enumerate(shapes) if s.role == SYSTEM and not s.example)
    always += sum(size(i) for seg in segments[:first] + segments[last:] for i in seg)
    always -= sum(ex.tokens for ex in tags)  # a tag's tokens count once it is chosen

    def room(chosen: list[_Example]) -> int:
        assert budget is not None
        return budget - always - sum(ex.tokens for ex in chosen)

    cut = 0
    if budget is not None:
        if room(pool) >= 0:
            cut = _cut([sum(costs[i] for i in seg) for seg in droppable],
                       lambda j: sum(size(i) for i in droppable[j]), room(pool), drop_step * budget)
        else:  # every old turn goes, then examples, least similar first
            cut = len(droppable)
            order = rank_examples(question, [ex.text for ex in pool]) if question else list(range(len(pool)))
            gone: set[int] = set()
            for n in reversed(order):
                if room([ex for m, ex in enumerate(pool) if m not in gone]) >= 0:
                    break
                if pool[n].source != "tag" or examples_k is not None:  # a system prompt's only when asked
                    gone.add(n)
            dropped += [Dropped("example", pool[n].index, "over_budget", pool[n].tokens) for n in sorted(gone)]
            pool = [ex for m, ex in enumerate(pool) if m not in gone]
    for seg in droppable[:cut]:
        dropped += [Dropped("message", i, "over_budget", costs[i]) for i in seg]

    # what is sent, in order
    removed = {i for seg in droppable[:cut] for i in seg}
    removed |= {i for i, s in enumerate(shapes) if s.example} - {i for ex in pool for i in ex.members}
    tag_spans: dict[int, list[tuple[int, int]]] = {}
    for ex in tags:
        if ex not in pool:
            tag_spans.setdefault(ex.index, []).append(ex.span)
    insert_at = next((i for i, s in enumerate(shapes) if s.role != SYSTEM and not s.example), len(original))
    inserted = [ex for ex in structured if ex in pool]
    out: list[Any] = []
    origins: list[int | None] = []
    for i in range(len(original) + 1):
        if i == insert_at:
            for ex in inserted:
                out += ex.messages
                origins += [None] * len(ex.messages)
        if i == len(original) or i in removed:
            continue
        item = sent_form(i)
        if i in tag_spans:
            item = _without_tags(item, tag_spans[i])
            reasons.setdefault(i, []).append("examples")
        out.append(item)
        origins.append(i)
    if dedupe:
        def touched(n: int) -> None:
            origin = origins[n]
            if origin is not None:
                reasons.setdefault(origin, []).append("duplicate")

        out = _dedupe(out, [shapes[o] if o is not None else None for o in origins], min_duplicate_chars, touched)

    final = [size(o) if o is not None and item is current[o] else item_tokens(item, model) for item, o in zip(out, origins)]
    tokens_after = fixed + sum(final)
    if budget is not None and tokens_after > budget:
        if on_overflow == "error":
            raise PromptTooLongError(
                tokens_after, budget,
                "the system messages and the turn being answered are never dropped or shortened; raise the "
                "budget, shorten them, or pass on_overflow='send' to send such prompts untrimmed",
            )
        untrimmed = original[:insert_at] + [m for ex in structured for m in ex.raw] + original[insert_at:]
        return TrimResult(untrimmed, tokens_before, tokens_before, budget, overflow=True,
                          examples_used=tuple(ex.index for ex in structured))
    rewritten = tuple(
        Rewritten(o, tuple(dict.fromkeys(reasons.get(o, ()))), costs[o], tokens)
        for item, o, tokens in zip(out, origins, final)
        if o is not None and item is not original[o]
    )
    return TrimResult(out, tokens_before, tokens_after, budget, tuple(dropped), rewritten,
                      examples_used=tuple(ex.index for ex in inserted))
