"""Text scorers in a cascade: how the ONNX scorer of :mod:`llmspend.scoring` plugs in.

Every step of a plan has a small logistic scorer over numeric features (see
:mod:`llmspend.cascade.fit`). A *text* scorer — a model that reads the query and the answer —
adds its P(correct) as one more feature, ``text_score``, and the logistic scorer learns how
much to trust it beside the log-probability and the agreement between steps.

A plan names its text scorer as ``{"kind": "onnx", "path": DIR}`` (relative to the plan file);
the runtime is imported only when a plan needs it, so plans without one work without
``llmspend[scorer]`` installed.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError
from ..scoring.base import Scorer, TrainingRow
from .fit import TextScorerSource

__all__ = ["load_text_scorer", "load_onnx_scorer", "pretrained_text_scorer", "trained_text_scorer"]


def load_onnx_scorer(path: str | Path) -> Scorer:
    """An ``llmspend.scoring.OnnxScorer`` read from its directory."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no scorer at {path}")
    try:
        module = importlib.import_module("llmspend.scoring.onnx")
    except ImportError as exc:
        raise ConfigError(
            f"scorer runtime unavailable ({exc}): install llmspend[scorer] to use the ONNX scorer at {path}"
        ) from exc
    scorer: Scorer = module.OnnxScorer(path)
    return scorer


def load_text_scorer(spec: Mapping[str, Any], base_dir: Path | None = None) -> Scorer:
    """The text scorer a plan names (``{"kind": "onnx", "path": ...}``)."""
    if spec.get("kind") != "onnx" or not isinstance(spec.get("path"), str):
        raise ConfigError(f"a plan's text_scorer must be {{'kind': 'onnx', 'path': DIR}}, got {dict(spec)!r}")
    path = Path(spec["path"])
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return load_onnx_scorer(path)


def pretrained_text_scorer(path: str | Path, *, plan_dir: Path | None = None) -> TextScorerSource:
    """``llmspend cascade fit --scorer DIR``: a scorer trained elsewhere, used as it is.

    It should not have been trained on the rows the plan is fitted on, or its scores there are
    optimistic and the thresholds too trusting.
    """
    path = Path(path)
    scorer = load_onnx_scorer(path)
    stored = str(path.resolve())
    if plan_dir is not None:
        try:
            stored = str(path.resolve().relative_to(plan_dir.resolve()))
        except ValueError:
            pass
    return TextScorerSource(scorer=scorer, spec={"kind": "onnx", "path": stored})


def trained_text_scorer(save_dir: Path, **options: Any) -> TextScorerSource:
    """Text scorers trained by ``llmspend.scoring.train_scorer`` (text only, the step scorers
    add the numeric features): one per cross-validation fold, to score the rows it did not
    see, and one on every row, saved in ``save_dir``. ``options`` go to ``train_scorer``
    (``encoder="tiny"`` for tests, ``finetune=True``, ...). One ``PairEncoder`` serves every
    training, so each (query, answer) pair is embedded once, not once per fold.
    """
    options.setdefault("progress", False)
    try:
        train = importlib.import_module("llmspend.scoring.train")
        embed = importlib.import_module("llmspend.scoring.embed")
    except ImportError as exc:
        raise ConfigError(f"scorer training unavailable ({exc}): install llmspend[train]") from exc
    if isinstance(options.get("encoder", "minilm"), str):
        options["encoder"] = embed.PairEncoder(options.get("encoder", "minilm"), progress=False)

    def trainer(rows: Sequence[TrainingRow], out_dir: Path | None) -> Scorer:
        if out_dir is None:
            with tempfile.TemporaryDirectory(prefix="llmspend-fold-scorer-") as tmp:
                # loaded before the directory goes: the runtime reads the files at load time
                return load_onnx_scorer(train.train_scorer(rows, Path(tmp), **options))
        return load_onnx_scorer(train.train_scorer(rows, out_dir, **options))

    return TextScorerSource(trainer=trainer, save_dir=save_dir)


