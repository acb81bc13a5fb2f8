"""Query batching: several questions that share a prompt asked as one request.

The pure parts live here (the batched prompt, reading the answers back, sharing the usage);
the pipeline stage that uses them is :mod:`llmspend.stages.batch`, with the merged reply read
back into each caller's response in :mod:`.reply` and its telemetry in :mod:`.spans`;
:func:`batch` sends a list of chat requests through a wrapped async client so that they batch.
Offline bulk work through a provider's Batch API is :mod:`.jobs` and :mod:`.results`.
"""

from .apportion import apportion_usage, largest_remainder, split_shared
from .parse import DUPLICATE, MALFORMED, MISSING, ParsedAnswers, parse_tagged_answers
from .prompt import BatchFormat, TaggedFormat, read_questions, split_question
from .send import batch

__all__ = [
    "batch",
    "BatchFormat",
    "TaggedFormat",
    "ParsedAnswers",
    "parse_tagged_answers",
    "read_questions",
    "split_question",
    "apportion_usage",
    "largest_remainder",
    "split_shared",
    "MISSING",
    "DUPLICATE",
    "MALFORMED",
]
