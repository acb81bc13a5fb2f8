"""Few-shot example selection by lexical similarity (Okapi BM25), no model needed.

Choosing the examples most similar to the question, rather than a fixed set, is what KATE
(Liu et al. 2022, "What Makes Good In-Context Examples for GPT-3?") found to help most; BM25
over word tokens is the classic lexical stand-in for its embedding similarity, in pure Python.

    >>> select_examples("how long does a refund take", [
    ...     "Q: do you ship to Canada? A: yes",
    ...     "Q: when will my refund arrive? A: within 5-7 days",
    ...     "Q: how long does shipping take? A: 3-5 days",
    ... ], k=2)
    [1, 2]
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

__all__ = ["select_examples", "rank_examples", "bm25_scores", "example_blocks", "words"]

_WORD = re.compile(r"\w+")
#: ``<example>...</example>`` blocks (any attributes, any case) and the blank space after them
_EXAMPLE_BLOCK = re.compile(r"<example(?:\s[^>]*)?>(.*?)</example>[ \t]*\n?", re.S | re.I)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits and underscores, in any script)."""
    return _WORD.findall(text.lower())


def bm25_scores(query: str, documents: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 score of each document for ``query`` (higher is more similar)."""
    docs = [Counter(words(d)) for d in documents]
    if not docs:
        return []
    lengths = [sum(d.values()) for d in docs]
    mean_length = (sum(lengths) / len(docs)) or 1.0
    frequency: Counter[str] = Counter()
    for doc in docs:
        frequency.update(doc.keys())
    n = len(docs)
    terms = set(words(query))
    idf = {t: math.log(1 + (n - frequency[t] + 0.5) / (frequency[t] + 0.5)) for t in terms if frequency[t]}
    scores = []
    for doc, length in zip(docs, lengths):
        norm = k1 * (1 - b + b * length / mean_length)
        scores.append(sum(weight * doc[t] * (k1 + 1) / (doc[t] + norm) for t, weight in idf.items() if t in doc))
    return scores


def rank_examples(question: str, examples: Sequence[str]) -> list[int]:
    """Indices of ``examples``, most similar to ``question`` first (ties: earlier first)."""
    scores = bm25_scores(question, examples)
    return sorted(range(len(examples)), key=lambda i: (-scores[i], i))


def select_examples(question: str, examples: Sequence[str], k: int) -> list[int]:
    """Indices of the ``k`` examples most similar to ``question``, in their original order."""
    if k >= len(examples):
        return list(range(len(examples)))
    return sorted(rank_examples(question, examples)[: max(k, 0)])


def example_blocks(text: str) -> list[tuple[int, int, str]]:
    """The ``<example>...</example>`` blocks of ``text`` as ``(start, end, inner text)``."""
    return [(m.start(), m.end(), m.group(1)) for m in _EXAMPLE_BLOCK.finditer(text)]
