"""What a cascade needs from a scorer, and what a scorer learns from.

A scorer judges an answer: the probability that ``answer`` is a correct reply to ``query``,
optionally helped by numeric features of the call (e.g. the provider's log-probability of the
answer). FrugalGPT trains one per model; a scorer here may judge the answers of several models,
listed in ``models``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["Scorer", "TrainingRow"]


@runtime_checkable
class Scorer(Protocol):
    #: the models whose answers it was trained to judge (empty: any model)
    models: tuple[str, ...]
    #: where it runs, as reported on spans (``llmspend.scorer.provider``), e.g.
    #: ``"CUDAExecutionProvider"``, ``"CPUExecutionProvider"``
    provider: str

    def score(
        self,
        queries: Sequence[str],
        answers: Sequence[str],
        *,
        model: str | None = None,
        features: Sequence[Sequence[float]] | None = None,
    ) -> list[float]:
        """P(correct) for each (query, answer) pair, in order. Must be thread-safe."""
        ...


@dataclass(frozen=True)
class TrainingRow:
    """One judged answer: what was asked, what a model answered, and whether it was right."""

    query: str
    answer: str
    correct: bool
    model: str | None = None
    features: Sequence[float] = field(default_factory=tuple)
