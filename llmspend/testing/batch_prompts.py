"""How the fake server answers a batched prompt (``Q[1]: ...`` lines): one ``A[i]: ...`` line
per question, each answer a function of its question alone, so a test can tell whether every
caller got the answer to its own question. Faults can be queued to answer the next batched
prompt badly, the ways real models do.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..batching.prompt import read_questions

__all__ = ["BatchFault", "BatchedReply", "batched_questions", "render_batched_reply"]


@dataclass(frozen=True)
class BatchFault:
    """How to answer one batched prompt badly. Indexes are 1-based, as in the prompt.

    ``missing``: leave these answers out. ``duplicate``: answer these twice, differently.
    ``malformed``: break these tags (``A[2] ...`` with no colon). ``extra``: add answers to
    questions never asked. ``swap``: answer question a under tag b and b under a (a shift no
    parser can see). ``shuffle``: answer in a random order. ``truncate``: stop in the middle
    of the last answer, as a reply cut by its token limit does.
    """

    missing: Collection[int] = ()
    duplicate: Collection[int] = ()
    malformed: Collection[int] = ()
    extra: Collection[int] = ()
    swap: tuple[int, int] | None = None
    shuffle: bool = False
    truncate: bool = False


@dataclass(frozen=True)
class BatchedReply:
    text: str
    words: list[str]
    #: the token limit to report against: equal to len(words) when the reply was cut
    limit: int | None


def batched_questions(messages: Any) -> dict[int, str] | None:
    """The ``Q[i]`` questions of a chat request's last user message, if it is a batched prompt."""
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], Mapping):
        return None
    last = messages[-1]
    content = last.get("content")
    if last.get("role") != "user" or not isinstance(content, str):
        return None
    questions = read_questions(content)
    return questions if 1 in questions else None


def render_batched_reply(
    questions: Mapping[int, str],
    answer: Callable[[str], str],
    limit: int | None,
    fault: BatchFault | None = None,
) -> BatchedReply:
    """The reply to ``questions``: ``A[i]: answer(question i)`` lines, cut at ``limit`` words
    like the server's other answers, with ``fault`` applied."""
    fault = fault or BatchFault()
    answers = {i: answer(q) for i, q in questions.items()}
    if fault.swap is not None:
        a, b = fault.swap
        answers[a], answers[b] = answers[b], answers[a]
    lines: list[tuple[int, str]] = []
    for i in sorted(answers):
        if i in fault.missing:
            continue
        tag = f"A[{i}] " if i in fault.malformed else f"A[{i}]: "
        lines.append((i, tag + answers[i]))
        if i in fault.duplicate:
            lines.append((i, f"A[{i}]: {answer(questions[i] + ' again')}"))
    lines += [(i, f"A[{i}]: {answer(f'unasked {i}')}") for i in fault.extra]
    if fault.shuffle:
        random.Random(len(lines)).shuffle(lines)
    text = "\n".join(line for _, line in lines)
    if fault.truncate:
        text = text[: max(1, len(text) - max(4, len(lines[-1][1]) // 2))] if lines else text
    spans = list(re.finditer(r"\S+", text))
    cut = fault.truncate
    if limit is not None and len(spans) > limit:
        text, spans, cut = text[: spans[limit - 1].end()], spans[:limit], True
    words = [m.group() for m in spans]
    return BatchedReply(text, words, len(words) if cut else limit)
