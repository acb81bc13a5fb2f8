"""Scoring answers for cascades: the scorer contract, its ONNX runtime and offline training.

``import llmspend.scoring`` stays light: onnxruntime loads with :class:`OnnxScorer`, and torch
only with the training names (``train_scorer``, ``PairEncoder``, ...), on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Scorer, TrainingRow
from .data import load_rows, rows_sha256
from .metadata import ScorerMetadata

if TYPE_CHECKING:
    from .onnx import OnnxScorer
    from .embed import PairEncoder
    from .head import TrainedHead, fit_head
    from .train import EmbeddingScorer, fit_scorer, out_of_fold_scores, quantize_scorer, train_scorer

__all__ = [
    "Scorer",
    "TrainingRow",
    "ScorerMetadata",
    "OnnxScorer",
    "load_rows",
    "rows_sha256",
    "train_scorer",
    "quantize_scorer",
    "PairEncoder",
    "fit_head",
    "TrainedHead",
    "out_of_fold_scores",
    "fit_scorer",
    "EmbeddingScorer",
]

_LAZY = {
    "OnnxScorer": ".onnx",
    "train_scorer": ".train",
    "quantize_scorer": ".train",
    "PairEncoder": ".embed",
    "fit_head": ".head",
    "TrainedHead": ".head",
    "out_of_fold_scores": ".train",
    "fit_scorer": ".train",
    "EmbeddingScorer": ".train",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
