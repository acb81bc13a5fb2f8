"""Lossless rewrites of prose: whitespace outside code, compact JSON, repeated blocks.

Each is a pure function of its input, so the same message is always rewritten to the same
bytes: a conversation that grows call after call keeps a byte-identical opening, and the
provider's prompt cache keeps hitting.

Code is left as it is: fenced blocks (```` ``` ```` or ``~~~``), lines indented by a tab or
four spaces (Markdown's indented code) and a diff's indented ``+`` / ``-`` lines are never
changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

__all__ = ["collapse_whitespace", "compact_json", "split_blocks", "DuplicateFilter", "DUPLICATE_MARKER"]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# a double-quoted string (a JSON or code literal: data) or an inline code span, kept as it is;
# else a run of blanks inside a line
_INNER_RUN = re.compile(r'("(?:[^"\\\n]|\\.)*"|`[^`\n]*`)|[ \t]{2,}')
_LEAD = re.compile(r"^ {0,3}")
# a unified diff's added or removed line: after the marker, the code's own indentation
_DIFF_CODE = re.compile(r"^[+-](?:\t| {2,})")

#: what stands in for a run of blocks removed as repeats of earlier text
DUPLICATE_MARKER = "[repeated text omitted; it appears earlier in the conversation]"


def _is_code_indent(line: str) -> bool:
    return line.startswith(("\t", "    ")) or _DIFF_CODE.match(line) is not None


def _is_tabular(line: str) -> bool:
    # tab-separated cells (pasted from a spreadsheet): two tabs are an empty cell, not a gap
    return "\t" in line.lstrip()


def _fence_closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence) and set(stripped) == {fence[0]}


def _lines(text: str) -> Iterator[tuple[str, bool]]:
    """Each line of ``text`` with whether it is code (inside or opening/closing a fence)."""
    fence: str | None = None
    for line in text.split("\n"):
        if fence is not None:
            if _fence_closes(line, fence):
                fence = None
            yield line, True
            continue
        match = _FENCE.match(line)
        if match:
            fence = match.group(1)
            yield line, True
            continue
        yield line, False


def collapse_whitespace(text: str) -> str:
    """``text`` with runs of whitespace outside code collapsed: trailing blanks removed, runs
    of spaces and tabs inside a line made one space (except inside a double-quoted string or
    an inline code span), blank lines that follow one another made one, and blank lines at
    either end removed. Indentation of up to three spaces is kept, and so are lines of
    tab-separated cells."""
    out: list[str] = []
    blank = True  # no blank lines at the start
    for line, code in _lines(text):
        if code:
            out.append(line)
            blank = False
            continue
        body = line.rstrip()
        if not body:
            if not blank:
                out.append("")
            blank = True
            continue
        blank = False
        if _is_code_indent(line) or _is_tabular(line):
            out.append(line)
            continue
        lead = _LEAD.match(body).group(0)  # type: ignore[union-attr]
        out.append(lead + _INNER_RUN.sub(lambda m: m.group(1) or " ", body[len(lead):]))
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out)


# a JSON string literal, or a run of whitespace (which JSON allows only between tokens)
_JSON_TOKEN_GAP = re.compile(r'("(?:[^"\\]|\\.)*")|\s+')


def compact_json(text: str) -> str | None:
    """A JSON object or array with the whitespace between its tokens removed, or ``None`` when
    ``text`` is not one. Strings, numbers and key order are kept byte for byte."""
    if text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        json.loads(text)
    except ValueError:
        return None
    return _JSON_TOKEN_GAP.sub(lambda m: m.group(1) or "", text)


def split_blocks(text: str) -> list[tuple[str, str]]:
    """``text`` as ``(block, separator)`` pairs that join back to it exactly: blocks are
    paragraphs (runs of non-blank lines) and whole fenced code blocks; separators are the
    blank lines between them."""
    pairs: list[tuple[str, str]] = []
    block: list[str] = []
    gap: list[str] = []
    leading: list[str] = []
    for line, code in _lines(text):
        if not code and not line.strip():
            (gap if block or pairs else leading).append(line)
            continue
        if gap:
            pairs.append(("\n".join(block), "\n" + "\n".join(gap) + "\n"))
            block, gap = [], []
        block.append(line)
    if block:
        pairs.append(("\n".join(block), ("\n" + "\n".join(gap)) if gap else ""))
    if leading:
        prefix = "\n".join(leading) + "\n"
        if pairs:
            first, sep = pairs[0]
            pairs[0] = (prefix + first, sep)
        else:
            pairs.append(("", "\n".join(leading)))
    return pairs


class DuplicateFilter:
    """Removes repeated blocks from texts read in conversation order.

    A block is a repeat when the same bytes were seen earlier (in this text or an earlier one).
    Only a run of consecutive repeats at least ``min_chars`` long is removed, so short common
    lines ("Thanks!") stay; the run is replaced by :data:`DUPLICATE_MARKER`. Texts passed to
    :meth:`see` are remembered but never changed (system prompts).
    """

    def __init__(self, min_chars: int) -> None:
        self.min_chars = min_chars
        self._seen: set[str] = set()
        self.removed = 0  #: runs removed so far

    def see(self, text: str) -> None:
        for block, _ in split_blocks(text):
            if block.strip():
                self._seen.add(block.strip())

    def filter(self, text: str) -> str:
        pairs = split_blocks(text)
        out: list[str] = []
        run: list[tuple[str, str]] = []

        def close_run() -> None:
            if not run:
                return
            if sum(len(b) for b, _ in run) >= self.min_chars:
                out.append(DUPLICATE_MARKER + run[-1][1])
                self.removed += 1
            else:
                out.extend(b + s for b, s in run)
            run.clear()

        for block, sep in pairs:
            key = block.strip()
            if key and key in self._seen:
                run.append((block, sep))
                continue
            close_run()
            out.append(block + sep)
            if key:
                self._seen.add(key)
        close_run()
        return "".join(out)
