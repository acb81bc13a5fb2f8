"""How the ONNX scorers of :mod:`llmspend.scoring` plug into a cascade.

**Step scorers** (the default of ``llmspend cascade fit``): each non-final step of a plan is
judged by a scorer directory of its own, written by :func:`llmspend.scoring.train_scorer`
from the head the fit trained for that step (:mod:`llmspend.cascade.heads`: the step's numeric
features and, where cross-validation kept it, the text embedding). :class:`StepScorerExport`
embeds the training answers once with one :class:`~llmspend.scoring.PairEncoder` and writes
the directories; :func:`load_step_scorers` loads them for the stage and for ``cascade eval``.

**A given text scorer** (``--scorer DIR``): a scorer trained elsewhere whose P(correct) becomes
one more feature, ``text_score``, of logistic step scorers held in the plan.

The runtime is imported only when a plan needs it, so plans of logistic scorers work without
``llmspend[scorer]`` installed.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from ..scoring.base import Scorer, TrainingRow
from .fit import FeatureTable, TextScorerSource
from .heads import StepHead
from .plan import OnnxStepScorer, Plan

if TYPE_CHECKING:
    from ..scoring.embed import PairEncoder

__all__ = [
    "load_text_scorer",
    "load_onnx_scorer",
    "load_step_scorers",
    "pretrained_text_scorer",
    "StepScorerExport",
    "suited_max_length",
    "scorer_dir",
    "remove_unused_scorers",
]


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


# -- step scorers ----------------------------------------------------------------------------
def _train_modules() -> tuple[Any, Any]:
    try:
        return importlib.import_module("llmspend.scoring.train"), importlib.import_module("llmspend.scoring.embed")
    except ImportError as exc:
        raise ConfigError(f"training ONNX step scorers needs llmspend[train] ({exc}); "
                          "or fit numeric scorers held in the plan (--numeric-scorers)") from exc


def suited_max_length(queries: Sequence[str], answers: Sequence[str], *, share: float = 0.9, cap: int = 256) -> int:
    """The token length that holds ``share`` of the pairs whole, rounded up to a multiple of
    32, from 64 to ``cap``: longer pairs are cut (their longer segment first), and a batch is
    padded to its longest pair, so a length that fits the data saves encoder time."""
    _, embed = _train_modules()
    tokens = importlib.import_module("llmspend.scoring._tokens").PairTokenizer.from_file(
        embed.minilm_dir() / "tokenizer.json", max_length=512)
    lengths = sorted(len(e.ids) for e in tokens.encode(list(queries), list(answers)))
    if not lengths:
        return 64
    wanted = lengths[min(len(lengths) - 1, math.ceil(share * len(lengths)) - 1)]
    return max(64, min(cap, 32 * math.ceil(wanted / 32)))


class StepScorerExport:
    """Trains a fit's step scorers into scorer directories under ``directory``.

    ``encoder``: ``"minilm"`` (all-MiniLM-L6-v2, from the installed package), ``"tiny"`` (random
    weights, for tests) or a :class:`~llmspend.scoring.PairEncoder` to share (its embedding
    cache then serves other fits too). ``max_length="auto"`` fits the token length to the
    training pairs (:func:`suited_max_length`). ``quantize=True`` writes int8 encoders (4x
    smaller, about 2x faster on a CPU; scores within about 0.005).

    Directories are named by step and by a hash of what they hold, so fits that train the same
    scorer (one search, several budgets) write it once.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        encoder: str | PairEncoder = "minilm",
        max_length: int | str = "auto",
        quantize: bool = False,
        progress: bool = False,
    ) -> None:
        if max_length != "auto" and (isinstance(max_length, str) or not 8 <= max_length <= 512):
            raise ConfigError(f"max_length must be 'auto' or 8 to 512 tokens, got {max_length!r}")
        self.directory = Path(directory)
        self.quantize = quantize
        self.progress = progress
        self._encoder_option = encoder
        self._max_length = max_length
        self._encoder: PairEncoder | None = None if isinstance(encoder, str) else encoder
        _train_modules()  # fail at construction, not after the search, when torch is missing

    def encoder_for(self, table_queries: Sequence[str], table_answers: Sequence[str]) -> PairEncoder:
        """The shared encoder, built on first use with a max_length suited to these pairs."""
        if self._encoder is None:
            _, embed = _train_modules()
            length = self._max_length if isinstance(self._max_length, int) else suited_max_length(table_queries, table_answers)
            self._encoder = embed.PairEncoder(str(self._encoder_option), max_length=length, progress=self.progress)
        return self._encoder

    def describe(self) -> dict[str, Any]:
        encoder = self._encoder
        return {"encoder": encoder.info.get("name") if encoder is not None else str(self._encoder_option),
                "max_length": encoder.max_length if encoder is not None else self._max_length,
                "quantize": self.quantize}

    def embed(self, feats: FeatureTable) -> None:
        """Every model's answers in ``feats``, embedded once (the fit's text part reads them)."""
        t = feats.table
        pairs = [(q, a) for q, row in zip(t.queries, t.answers) for a in row]
        feats.embed(self.encoder_for([q for q, _ in pairs], [a for _, a in pairs]))

    def export(self, key: str, head: StepHead, rows: Sequence[TrainingRow]) -> OnnxStepScorer:
        """Write ``head`` (fitted on ``rows``) as a scorer directory; its plan entry."""
        train, _ = _train_modules()
        encoder = self._encoder
        arrays = head.head_arrays()
        digest = hashlib.sha256()
        for name in sorted(arrays):
            digest.update(name.encode() + arrays[name].astype("<f8").tobytes())
        digest.update(repr((head.features, head.numeric.models, head.numeric.after, self.quantize,
                            encoder.info.get("name") if encoder is not None and head.uses_text else None,
                            encoder.max_length if encoder is not None and head.uses_text else None)).encode())
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key.replace("|", "+after+"))[:80]
        target = self.directory / f"{slug}-{digest.hexdigest()[:10]}"
        if not (target / "metadata.json").is_file():
            if head.uses_text and encoder is None:
                raise ConfigError("a step scorer reads text but no encoder embedded the training answers")
            head_module = importlib.import_module("llmspend.scoring.head")
            trained = head_module.head_from_weights(arrays["embedding_stats"], arrays["feature_stats"], arrays["weights"],
                                                    float(arrays["bias"][0]), l2=head.text_l2)
            self.directory.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{slug}-", dir=self.directory))
            try:
                train.train_scorer(rows, scratch, encoder=encoder if encoder is not None else "tiny", head=trained,
                                   feature_names=head.features, models=head.numeric.models,
                                   quantize=self.quantize and head.uses_text, progress=self.progress,
                                   source="llmspend cascade fit")
                os.replace(scratch, target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return OnnxStepScorer(path=str(target), features=head.features, models=head.numeric.models,
                              after=head.numeric.after, text=head.uses_text)


def load_step_scorers(plan: Plan, *, every: bool = False) -> dict[str, Scorer]:
    """The plan's ONNX step scorers, loaded (the chain's; with ``every``, the frontier's too),
    each checked against what the plan says it reads and judges."""
    wanted = plan.used_scorers if every else {s.scorer: plan.scorers[s.scorer] for s in plan.steps[:-1] if s.scorer}
    loaded: dict[str, Scorer] = {}
    by_path: dict[Path, Scorer] = {}
    for key, spec in wanted.items():
        if not isinstance(spec, OnnxStepScorer):
            continue
        path = spec.resolve(plan.base_dir)
        if plan.base_dir is None and not path.is_absolute() and not path.exists():
            raise ConfigError(
                f"no scorer at {path} (step {key!r}): a plan given as a dict or Plan has no file to read its relative "
                f"scorer paths from, so they were read from the current directory {Path.cwd()}; give the plan "
                "file's path (cascade='plan.json') or llmspend.cascade.load_plan(path)"
            )
        if path not in by_path:
            by_path[path] = load_onnx_scorer(path)
        scorer = by_path[path]
        names = tuple(getattr(scorer, "feature_names", ()))
        if names != spec.features:
            raise ConfigError(f"the scorer at {path} reads {list(names)}, but the plan's step {key!r} gives it "
                              f"{list(spec.features)}: the plan and its scorer directory do not belong together")
        if scorer.models and spec.models and set(spec.models) - set(scorer.models):
            raise ConfigError(f"the scorer at {path} judges {list(scorer.models)}, not {list(spec.models)}")
        loaded[key] = scorer
    return loaded


def scorer_dir(plan_path: str | Path) -> Path:
    """Where ``llmspend cascade fit --out PLAN`` writes the plan's step scorers: ``PLAN.scorers/``
    beside it (``plan.json`` -> ``plan.scorers/``)."""
    path = Path(plan_path)
    return path.parent / f"{path.stem}.scorers"


def remove_unused_scorers(plan: Plan, directory: Path) -> int:
    """Delete the scorer directories under ``directory`` that ``plan`` does not use (left by an
    earlier fit into the same place); only directories whose metadata says they are scorers.
    Returns how many went."""
    used = {spec.resolve(plan.base_dir).resolve() for spec in plan.used_scorers.values() if isinstance(spec, OnnxStepScorer)}
    removed = 0
    for child in sorted(directory.iterdir()) if directory.is_dir() else ():
        meta = child / "metadata.json"
        if child.is_dir() and child.resolve() not in used and meta.is_file() and '"llmspend-scorer"' in meta.read_text("utf-8"):
            shutil.rmtree(child)
            removed += 1
    return removed
