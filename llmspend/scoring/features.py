"""Numeric features of one cascade step's answer, computed the same way at fit and at run time.

A cascade step knows three things about its candidate answer without any extra call:

- the provider's log-probability of it (``conf_raw``; OpenAI returns it with ``logprobs: true``),
- the answer itself (its length, its final part),
- the answers of the earlier steps of the chain, already paid for: when a stronger model gives
  the answer a cheaper one gave, both are more likely right. FrugalGPT scores each answer on
  its own; the agreement between steps comes free and is the strongest signal we found.

Everything here is plain Python so that the pipeline stage needs no numpy. ``fit`` builds its
matrices by calling these same functions, so training and serving cannot drift apart.

``conf_raw`` may be missing (NaN, ``None``: the provider gave none) or ``-inf`` (probability 0):
missing values get a flag of their own, ``-inf`` is clipped to :data:`CONF_FLOOR`.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "ANSWER_FEATURES",
    "AGREEMENT_FEATURES",
    "STEP_FEATURES",
    "CONF_FEATURES",
    "CONF_FLOOR",
    "agreement",
    "answer_features",
    "normalise_answer",
    "step_features",
]

#: log-probabilities below this are treated alike (and ``-inf`` becomes this)
CONF_FLOOR = -20.0
#: features of the answer alone, in order (``conf*`` need the provider's log-probability)
ANSWER_FEATURES = ("conf", "conf_prob", "conf_missing", "answer_len")
CONF_FEATURES = ("conf", "conf_prob", "conf_missing")
#: agreement with the earlier steps' answers (0 at the first step)
AGREEMENT_FEATURES = ("agree_prev", "agree_mean")
STEP_FEATURES = ANSWER_FEATURES + AGREEMENT_FEATURES

_ARTICLES = frozenset({"a", "an", "the"})
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
# Chain-of-thought answers (GSM8K style) end with "#### <answer>"; compare what follows.
_FINAL_MARK = "####"


def normalise_answer(text: str) -> tuple[str, ...]:
    """The answer's tokens as compared between steps: the part after a final ``####`` if
    any, lower-cased, punctuation and articles dropped (an answer that is only an article,
    such as the multiple-choice letter ``A``, keeps it)."""
    if _FINAL_MARK in text:
        text = text.rsplit(_FINAL_MARK, 1)[1]
    tokens = _PUNCT.sub(" ", text.lower()).split()
    kept = tuple(t for t in tokens if t not in _ARTICLES)
    return kept if kept else tuple(tokens)


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    """Token F1 between two normalised answers: 1.0 when equal, 0.0 when either is empty."""
    if not a or not b:
        return 0.0
    if tuple(a) == tuple(b):
        return 1.0
    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def _conf(conf_raw: float | None) -> tuple[float, float, float]:
    if conf_raw is None or math.isnan(conf_raw):
        return 0.0, 0.0, 1.0
    conf = min(0.0, max(CONF_FLOOR, conf_raw))  # -inf -> floor; tiny positive rounding -> 0
    return conf, math.exp(conf), 0.0


def answer_features(tokens: Sequence[str], conf_raw: float | None) -> list[float]:
    """:data:`ANSWER_FEATURES` of one answer (``tokens`` from :func:`normalise_answer`)."""
    return [*_conf(conf_raw), math.log1p(len(tokens))]


def step_features(
    tokens: Sequence[str], conf_raw: float | None, earlier: Sequence[Sequence[str]] = ()
) -> list[float]:
    """:data:`STEP_FEATURES` of a step's answer given the earlier steps' normalised answers
    (oldest first)."""
    agree = [agreement(tokens, e) for e in earlier]
    return [*answer_features(tokens, conf_raw), agree[-1] if agree else 0.0, sum(agree) / len(agree) if agree else 0.0]
