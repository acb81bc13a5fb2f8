"""Scoring answers for cascades: the scorer contract (runtime and training live beside it)."""

from .base import Scorer, TrainingRow

__all__ = ["Scorer", "TrainingRow"]
