"""Reading ``A[1]: ...`` to ``A[b]: ...`` answers out of a batched reply, without ever
shifting one onto the wrong question.

An answer is matched to its question by its tag only, never by its position, so a reply in a
shuffled order is read correctly and a missing ``A[2]`` cannot move ``A[3]`` up. Any doubt
about an index makes that answer a failure, to be asked again on its own:

- ``missing``: no tag for the index;
- ``duplicate``: the index is tagged more than once (which one is right is unknowable);
- ``malformed``: the tag is there but broken (``A[2] ...`` without the colon, ``A2:``), its
  answer is empty, or it is the last answer of a reply cut off by the token limit.

A tag for an index that was never asked (``A[0]``, ``A[5]`` of 4) means the model lost count:
then no answer can be trusted to sit under its right tag, and every one is ``malformed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["ParsedAnswers", "parse_tagged_answers", "MISSING", "DUPLICATE", "MALFORMED"]

MISSING = "missing"
DUPLICATE = "duplicate"
MALFORMED = "malformed"

# Markdown emphasis and quoting that models like to put around tags.
_DECOR = r"[ \t>*_]*"
# A well-formed tag at the start of a line: "A[3]:" (optionally "**A[3]:**").
_TAG = re.compile(rf"^{_DECOR}A\[(\d+)\][*_]*[ \t]*:[*_]*[ \t]*", re.MULTILINE)
# Something that tries to be a tag and is not: "A[3] text", "A[3].", "A3:", "A 3)".
_BROKEN_TAG = re.compile(rf"^{_DECOR}A(?:[ \t]*\[[ \t]*(\d+)[ \t]*\]|[ \t]?(\d+)[ \t]*[:.)])", re.MULTILINE)


def _index(match: re.Match[str]) -> int:
    return int(match.group(1) or match.group(2))


@dataclass(frozen=True)
class ParsedAnswers:
    """What a batched reply answered. Indexes are 1-based, as in the prompt."""

    #: the answers that can be trusted, by question index
    answers: dict[int, str] = field(default_factory=dict)
    #: the questions to ask again on their own, with why (``missing``, ``duplicate``, ``malformed``)
    failures: dict[int, str] = field(default_factory=dict)
    #: tags for indexes that were never asked
    unexpected: tuple[int, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.failures


def parse_tagged_answers(text: str, count: int, *, truncated: bool = False) -> ParsedAnswers:
    """Split ``text`` into the answers to questions ``1..count``. See the module docstring."""
    good = list(_TAG.finditer(text))
    good_starts = {m.start() for m in good}
    broken = [m for m in _BROKEN_TAG.finditer(text) if m.start() not in good_starts]

    # Every tag line, good or broken, ends the answer before it.
    boundaries = sorted([m.start() for m in good] + [m.start() for m in broken]) + [len(text)]
    seen: dict[int, list[str]] = {}
    for match in good:
        end = next(b for b in boundaries if b > match.start())
        seen.setdefault(int(match.group(1)), []).append(text[match.end():end].strip())

    asked = range(1, count + 1)
    unexpected = tuple(sorted({i for i in seen if i not in asked} | {_index(m) for m in broken} - set(asked)))
    if unexpected:
        return ParsedAnswers({}, {i: MALFORMED for i in asked}, unexpected)

    failures: dict[int, str] = {}
    for match in broken:
        failures[_index(match)] = MALFORMED
    for index in asked:
        texts = seen.get(index, [])
        if len(texts) > 1:
            failures[index] = DUPLICATE
        elif index in failures:
            continue
        elif not texts:
            failures[index] = MISSING
        elif not texts[0]:
            failures[index] = MALFORMED
    if truncated and good:
        # The reply hit its token limit: the answer written last may have been cut short.
        last = int(good[-1].group(1))
        failures.setdefault(last, MALFORMED)
    answers = {i: seen[i][0] for i in asked if i not in failures}
    return ParsedAnswers(answers, failures, ())
