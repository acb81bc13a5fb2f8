"""Prompt trimming: send fewer tokens for the same answer, without a model.

:func:`trim` is a pure function of a conversation: it fits the prompt into a token budget by
dropping the oldest turns (never the system prompt, never the question being asked, never a
tool call without its result), removes exact repeats and needless whitespace, and keeps the
few-shot examples most similar to the question. The trim stage (``wrap(client, trim=...)``,
``llmspend/stages/trim.py``) applies it to every call. See ``docs/trim.md``::

    from llmspend import trim

    result = trim(messages, model="gpt-4o-mini", budget=8_000)
    result.messages, result.tokens_before, result.tokens_after, result.dropped
"""

from .core import Dropped, OnOverflow, Rewritten, TrimResult, default_budget, trim
from .examples import bm25_scores, select_examples
from .text import DUPLICATE_MARKER

__all__ = [
    "trim",
    "TrimResult",
    "Dropped",
    "Rewritten",
    "OnOverflow",
    "default_budget",
    "select_examples",
    "bm25_scores",
    "DUPLICATE_MARKER",
]
