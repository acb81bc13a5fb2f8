"""Building one batched prompt from several chat requests that share a prefix.

Batch Prompting (Cheng et al. 2023, arXiv 2301.08721) puts b questions behind one shared
prompt, tagged ``Q[1]: ...`` to ``Q[b]: ...``, and asks for answers tagged ``A[1]: ...`` to
``A[b]: ...``. The shared prefix (system message, few-shot examples) is then paid for once
instead of b times.

Here a chat request is split into its *prefix* (every message but the last) and its
*question* (the last message, a user message of plain text). Requests whose prefixes are the
same can be merged: the prefix is kept exactly as the callers sent it, so a provider's prompt
cache still matches it, and the questions go into one final user message. Pure functions only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .parse import ParsedAnswers, parse_tagged_answers

__all__ = ["BatchFormat", "TaggedFormat", "split_question", "question_tag", "read_questions"]


class BatchFormat(Protocol):
    """How questions are put into one message and answers read back out of the reply."""

    def build(self, questions: Sequence[str]) -> str:
        """The content of the merged user message asking ``questions`` (in order, 1-based)."""
        ...

    def parse(self, text: str, count: int, *, truncated: bool = False) -> ParsedAnswers:
        """The answers in ``text`` to the ``count`` questions. ``truncated``: the reply was cut
        off (by the token limit or a content filter), so its last answer may be incomplete."""
        ...


def question_tag(index: int) -> str:
    return f"Q[{index}]: "


class TaggedFormat:
    """The Batch Prompting format: ``Q[i]: ...`` in, ``A[i]: ...`` out, one per line.

    ``instruction`` is put before the questions; ``{count}`` in it is replaced by how many
    there are. The default tells the model the exact format, since the few-shot examples in
    the shared prefix show one question at a time.
    """

    DEFAULT_INSTRUCTION = (
        "Answer each of the {count} questions below on its own, as you would if it were asked "
        "alone. Reply with exactly {count} answers, in order, each starting on a new line with its "
        "tag: A[1]: for Q[1], A[2]: for Q[2], and so on. Write nothing else."
    )

    def __init__(self, instruction: str = DEFAULT_INSTRUCTION) -> None:
        self.instruction = instruction

    def build(self, questions: Sequence[str]) -> str:
        lines = [self.instruction.format(count=len(questions)), ""]
        lines += [question_tag(i) + q.strip() for i, q in enumerate(questions, 1)]
        return "\n".join(lines)

    def parse(self, text: str, count: int, *, truncated: bool = False) -> ParsedAnswers:
        return parse_tagged_answers(text, count, truncated=truncated)

    def __repr__(self) -> str:
        return "TaggedFormat()"


def _text_of(content: Any) -> str | None:
    """A message's content as plain text, or None when it holds anything but text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        parts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                return None  # an image, audio, a file: not something we can tag and merge
            parts.append(part["text"])
        return "\n".join(parts)
    return None


def split_question(messages: Any) -> tuple[list[Any], str] | None:
    """``(prefix messages, question text)`` of a chat request, or None when its last message
    is not a user message of plain text (nothing to merge)."""
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "user" or set(last) - {"role", "content"}:
        return None
    text = _text_of(last.get("content"))
    if text is None or not text.strip():
        return None
    return list(messages[:-1]), text


_QUESTION = re.compile(r"^Q\[(\d+)\]: ?", re.MULTILINE)


def read_questions(text: str) -> dict[int, str]:
    """The ``Q[i]: ...`` questions in a merged message, by index (the inverse of
    :meth:`TaggedFormat.build`, for servers and tests)."""
    found: dict[int, str] = {}
    matches = list(_QUESTION.finditer(text))
    for match, following in zip(matches, [*matches[1:], None]):
        end = following.start() if following is not None else len(text)
        found[int(match.group(1))] = text[match.end():end].strip()
    return found
