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
from typing import Any

from ..exceptions import ConfigError

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
    "named_answer_features",
    "text_scorer_features",
    "check_text_scorer",
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


def named_answer_features(tokens: Sequence[str], conf_raw: float | None) -> dict[str, float | None]:
    """The answer's features by name, for a text scorer that reads some of them: the
    :data:`ANSWER_FEATURES` and ``conf_raw`` as the provider gave it (None when missing)."""
    raw = None if conf_raw is None or math.isnan(conf_raw) else conf_raw
    return {"conf_raw": raw, **dict(zip(ANSWER_FEATURES, answer_features(tokens, conf_raw)))}


def text_scorer_features(
    scorer: Any, answers: Sequence[tuple[Sequence[str], float | None]]
) -> list[list[float]] | None:
    """``features=`` for a text scorer's ``score``: one row per answer, in the order of the
    features the scorer names (``feature_names``, as ``OnnxScorer`` has), else None (a scorer
    that names none reads text only). A value not known here — a missing log-probability, a
    name this module does not compute — goes as NaN, which the scorer treats as unknown."""
    names = tuple(getattr(scorer, "feature_names", None) or ())
    if not names:
        return None
    rows = []
    for tokens, conf_raw in answers:
        known = named_answer_features(tokens, conf_raw)
        rows.append([math.nan if known.get(name) is None else float(known[name] or 0.0) for name in names])
    return rows


def check_text_scorer(scorer: Any, models: Sequence[str]) -> None:
    """Raise :class:`~llmspend.exceptions.ConfigError` unless ``scorer`` judges every one of
    ``models`` (a scorer whose ``models`` is empty judges any)."""
    judged = tuple(getattr(scorer, "models", None) or ())
    missing = [m for m in models if judged and m not in judged]
    if missing:
        raise ConfigError(
            f"the text scorer {scorer!r} judges answers of {list(judged)}, not of {missing}: "
            "train one on these models' answers, or leave those models out (--models)"
        )
