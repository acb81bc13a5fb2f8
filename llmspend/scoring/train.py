"""Train a scorer offline and write a scorer directory (needs ``pip install 'llmspend[train]'``).

The model is FrugalGPT's scorer with a small encoder: a pretrained text encoder reads
``[CLS] query [SEP] answer [SEP]``, mean pooling makes one vector of it, and a head reads that
vector with the pair's numeric features (e.g. the provider's log-probability of the answer)
and gives one logit; P(correct) = sigmoid(logit). All of it is exported as one ONNX graph.

With the encoder frozen (the default) each pair is embedded once and only the head is fitted,
so a scorer trains in seconds and a :class:`PairEncoder`'s embeddings serve every
cross-validation fold and every model's scorer. ``finetune=True`` then trains the encoder too.

    from llmspend.scoring import PairEncoder, load_rows, train_scorer
    encoder = PairEncoder("minilm")
    rows = load_rows("mmlu_train.csv", model="gpt-4o-mini", feature_names=["conf_raw"])
    train_scorer(rows, "scorers/gpt-4o-mini", encoder=encoder, feature_names=["conf_raw"])

Nothing here touches the network. torch is imported here and nowhere in llmspend's core.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import math
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("training a scorer needs PyTorch: pip install 'llmspend[train]'") from exc

from .._version import __version__
from ..exceptions import ConfigError, ScorerExportError
from ._bert import BertEncoder, mean_pool
from ._tokens import length_batches
from .base import TrainingRow
from .data import rows_sha256
from .embed import ENCODERS, OPSET, TEXT_INPUTS, EncoderName, PairEncoder, example_inputs, export_onnx, progress_bar
from .head import HeadModel, TrainedHead, fit_head, head_from_weights, stratified_folds
from .metadata import MODEL_FILE, TOKENIZER_FILE, ScorerMetadata
from .onnx import FeatureRow, OnnxScorer, feature_matrix

__all__ = [
    "ENCODERS",
    "PairEncoder",
    "TrainedHead",
    "fit_head",
    "head_from_weights",
    "out_of_fold_scores",
    "EmbeddingScorer",
    "fit_scorer",
    "train_scorer",
    "quantize_scorer",
    "ScorerModel",
    "EXPORT_TOLERANCE",
    "INT8_TOLERANCE",
]

#: max |P_onnx - P_torch| accepted after export (float32 round-off is about 1e-7)
EXPORT_TOLERANCE = 1e-4
#: max |P_int8 - P_fp32| accepted after quantisation
INT8_TOLERANCE = 0.1
_CHECK_PAIRS = 64


def _features(rows: Sequence[TrainingRow]) -> np.ndarray | None:
    width = len(rows[0].features) if rows else 0
    if width == 0:
        return None
    return np.asarray([[float(v) for v in r.features] for r in rows], dtype=np.float32).reshape(len(rows), width)


def _labels(rows: Sequence[TrainingRow]) -> np.ndarray:
    return np.asarray([bool(r.correct) for r in rows], dtype=bool)


def _check_rows(rows: Sequence[TrainingRow], feature_names: Sequence[str]) -> None:
    if len(rows) < 2:
        raise ConfigError(f"training needs at least 2 rows, got {len(rows)}")
    positives = sum(bool(r.correct) for r in rows)
    if positives in (0, len(rows)):
        raise ConfigError(f"the training rows are all {'correct' if positives else 'incorrect'}: a scorer "
                          "needs both correct and incorrect answers to learn from")
    for i, row in enumerate(rows):
        if len(row.features) != len(feature_names):
            raise ConfigError(f"row {i} has {len(row.features)} features but feature_names names "
                              f"{len(feature_names)} ({list(feature_names)})")


def out_of_fold_scores(
    rows: Sequence[TrainingRow],
    *,
    encoder: PairEncoder,
    folds: int = 5,
    seed: int = 0,
    use_features: bool = True,
    **head_options: Any,
) -> np.ndarray:
    """P(correct) for every row from a head fitted without that row (stratified k-fold).

    Tune cascade thresholds on these, not on in-sample scores, which flatter the scorer. The
    encoder's cache makes all folds cost one embedding pass; ``head_options`` go to
    :func:`fit_head` (e.g. ``l2=1.0`` to skip the inner selection).
    """
    labels = _labels(rows)
    minority = min(int(labels.sum()), int((~labels).sum()))
    if folds < 2 or folds > minority:
        raise ConfigError(f"folds must be from 2 to the size of the smaller class ({minority}), got {folds}")
    embeddings = encoder.embed([r.query for r in rows], [r.answer for r in rows])
    features = _features(rows) if use_features else None
    scores = np.empty(len(rows), dtype=np.float64)
    for k, held_out in enumerate(stratified_folds(labels, folds, seed)):
        train = np.setdiff1d(np.arange(len(rows)), held_out, assume_unique=True)
        head = fit_head(embeddings[train], labels[train], seed=seed + k,
                        features=None if features is None else features[train], **head_options)
        scores[held_out] = head.predict(embeddings[held_out], None if features is None else features[held_out])
    return scores


class EmbeddingScorer:
    """A :class:`~llmspend.scoring.Scorer` held in memory: a :class:`PairEncoder` and a fitted
    head, with no export. Meant for cross-validation folds, where an exported scorer per fold
    would cost an ONNX export and its checks each time; the encoder's cache is shared, so a
    fold's held-out pairs are embedded once for all folds. Thread-safe (the cache is locked).
    """

    def __init__(self, encoder: PairEncoder, head: TrainedHead, *, feature_names: Sequence[str] = (),
                 models: Sequence[str] = ()) -> None:
        if len(feature_names) != head.module.feature_count:
            raise ConfigError(f"the head reads {head.module.feature_count} features but feature_names "
                              f"names {len(feature_names)}")
        self.encoder = encoder
        self.head = head
        self.feature_names = tuple(feature_names)
        self.models = tuple(models)
        self.provider = "CPUExecutionProvider" if encoder.backend == "onnxruntime" else "pytorch"
        self._lock = threading.Lock()

    def score(self, queries: Sequence[str], answers: Sequence[str], *, model: str | None = None,
              features: Sequence[FeatureRow] | None = None) -> list[float]:
        if model is not None and self.models and model not in self.models:
            raise ValueError(f"this scorer judges answers of {list(self.models)}, not {model!r}")
        matrix = feature_matrix(features, self.feature_names, len(queries))
        with self._lock:
            embeddings = self.encoder.embed(queries, answers)
        if not len(embeddings):
            return []
        return [float(p) for p in self.head.predict(embeddings, matrix)]


def fit_scorer(
    rows: Sequence[TrainingRow],
    *,
    encoder: PairEncoder,
    feature_names: Sequence[str] = (),
    models: Sequence[str] = (),
    l2: float | None = None,
    seed: int = 0,
) -> EmbeddingScorer:
    """Fit a scorer in memory (frozen encoder, head as in :func:`train_scorer`), no files.

    The same head :func:`train_scorer` would export for these rows, ``encoder`` and ``l2``.
    """
    names = tuple(feature_names)
    _check_rows(rows, names)
    embeddings = encoder.embed([r.query for r in rows], [r.answer for r in rows])
    head = fit_head(embeddings, _labels(rows), features=_features(rows), l2=l2, seed=seed)
    return EmbeddingScorer(encoder, head, feature_names=names,
                           models=tuple(models) or tuple(sorted({r.model for r in rows if r.model})))


class FeatureScorerModel(nn.Module):
    """What ``model.onnx`` holds when the head reads the features alone (its text is off):
    standardisation and the linear layer, no encoder."""

    def __init__(self, head: HeadModel) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(None, features)  # type: ignore[no-any-return]


class ScorerModel(nn.Module):
    """Everything ``model.onnx`` holds: encoder, mean pooling, input standardisation and head."""

    def __init__(self, encoder: BertEncoder, head: HeadModel) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                features: torch.Tensor | None = None) -> torch.Tensor:
        pooled = mean_pool(self.encoder(input_ids, attention_mask, token_type_ids), attention_mask)
        return self.head(pooled, features)  # type: ignore[no-any-return]

    def probabilities(self, encoder: PairEncoder, rows: Sequence[TrainingRow], batch_size: int = 16) -> np.ndarray:
        features = _features(rows)
        out = []
        self.eval()
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                batch = rows[start:start + batch_size]
                f = None if features is None else torch.from_numpy(features[start:start + batch_size])
                tensors = encoder.tensors([r.query for r in batch], [r.answer for r in batch])
                out.append(torch.sigmoid(self(*tensors, f)).double().numpy())
        return np.concatenate(out)


def _finetune(model: ScorerModel, encoder: PairEncoder, rows: Sequence[TrainingRow], *, epochs: int,
              batch_size: int, lr: float, seed: int, progress: bool) -> None:
    """Train encoder and head together, the head starting from its frozen-encoder fit."""
    features = _features(rows)
    labels = torch.from_numpy(_labels(rows).astype(np.float32))
    encodings = encoder.tokens.encode([r.query for r in rows], [r.answer for r in rows])
    batches = length_batches(encodings, batch_size)
    optimizer = torch.optim.AdamW([
        {"params": model.encoder.parameters(), "lr": lr},
        {"params": model.head.parameters(), "lr": lr * 10},
    ], weight_decay=1e-2)
    loss_fn = nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model.train()
    steps = [batches[b] for _ in range(epochs) for b in rng.permutation(len(batches))]
    for index in progress_bar(steps, enabled=progress, desc="fine-tuning"):
        arrays = encoder.tokens.arrays([encodings[i] for i in index])
        f = None if features is None else torch.from_numpy(features[index])
        optimizer.zero_grad()
        loss = loss_fn(model(*(torch.from_numpy(arrays[n]) for n in TEXT_INPUTS), f), labels[index])
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    model.eval()


def train_scorer(
    rows: Sequence[TrainingRow],
    out_dir: str | Path,
    *,
    encoder: EncoderName | str | PairEncoder = "minilm",
    feature_names: Sequence[str] = (),
    models: Sequence[str] = (),
    l2: float | None = None,
    finetune: bool = False,
    epochs: int = 2,
    batch_size: int = 16,
    lr: float = 2e-5,
    max_length: int = 256,
    quantize: bool = False,
    seed: int = 0,
    progress: bool = True,
    threshold_hints: Mapping[str, Any] | None = None,
    source: str | None = None,
    head: TrainedHead | None = None,
) -> Path:
    """Train a scorer on ``rows`` and write a scorer directory to ``out_dir``; returns its path.

    ``encoder``: ``"minilm"`` (all-MiniLM-L6-v2), ``"tiny"`` (random, for tests) or a
    :class:`PairEncoder` whose cached embeddings are reused (its ``max_length`` wins).
    ``feature_names`` names the rows' ``features`` in order. ``models`` lists the models whose
    answers the scorer judges (default: the rows' models). The head's ``l2`` is picked by
    cross-validation unless given. ``finetune=True`` then trains encoder and head together for
    ``epochs`` (``lr`` for the encoder, 10x for the head, ``batch_size`` pairs a step).

    The export is checked against PyTorch on up to 64 training pairs (:data:`EXPORT_TOLERANCE`);
    ``quantize=True`` writes the int8 model instead, checked against the float one
    (:data:`INT8_TOLERANCE`). A failed check raises :class:`ScorerExportError`.

    ``head``: a head fitted elsewhere on these rows (``head_from_weights``; a cascade fit
    passes its step scorers), exported as it is instead of fitting one. A head that reads no
    embedding (``hidden_size`` 0) is written as a graph of the features alone: no encoder, no
    tokenizer, microseconds a pair (``finetune`` and ``quantize`` do not apply to it).
    """
    names = tuple(feature_names)
    _check_rows(rows, names)
    out = Path(out_dir)
    if head is not None and not head.reads_text:
        return _write_feature_scorer(rows, out, head, names, models=models, source=source, seed=seed,
                                     threshold_hints=threshold_hints)
    pair_encoder = encoder if isinstance(encoder, PairEncoder) else PairEncoder(
        encoder, max_length=max_length, progress=progress, seed=seed)
    out.mkdir(parents=True, exist_ok=True)

    labels = _labels(rows)
    if head is None:
        embeddings = pair_encoder.embed([r.query for r in rows], [r.answer for r in rows])
        head = fit_head(embeddings, labels, features=_features(rows), l2=l2, seed=seed)
    elif head.module.feature_count != len(names) or head.module.hidden_size != pair_encoder.hidden_size:
        raise ConfigError(f"the head reads {head.module.hidden_size} embedding dims and {head.module.feature_count} "
                          f"features; the encoder gives {pair_encoder.hidden_size} and feature_names names {len(names)}")
    model = ScorerModel(copy.deepcopy(pair_encoder.module) if finetune else pair_encoder.module, head.module).eval()
    training = _training_record(rows, head, names, source=source, seed=seed)
    if finetune:
        _finetune(model, pair_encoder, rows, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
        training["finetune"] = {"epochs": epochs, "batch_size": batch_size, "lr": lr}

    inputs = (*TEXT_INPUTS, "features") if names else TEXT_INPUTS
    check = _check_sample(rows)
    with tempfile.TemporaryDirectory(prefix="llmspend-scorer-") as scratch:
        fp32 = Path(scratch) if quantize else out
        export_onnx(model, example_inputs(pair_encoder.tokens, len(names)), str(fp32 / MODEL_FILE), inputs, "logit")
        pair_encoder.tokens.save(fp32 / TOKENIZER_FILE)
        metadata = ScorerMetadata(
            inputs=tuple(inputs),
            models=tuple(models) or tuple(sorted({r.model for r in rows if r.model})),
            feature_names=names,
            max_length=pair_encoder.max_length,
            pad_id=pair_encoder.tokens.pad_id,
            vocab_sha256=pair_encoder.tokens.vocab_sha256(),
            encoder={**pair_encoder.info, "finetuned": finetune},
            training=training,
            export={"opset": OPSET, "dynamic_axes": ["batch", "sequence"]},
            threshold_hints=dict(threshold_hints or {}),
        )
        metadata.write(fp32)
        diff = _verify_export(model, fp32, pair_encoder, check)
        _with_export(metadata, torch_max_abs_diff=diff, checked_pairs=len(check)).write(fp32)
        if quantize:
            quantize_scorer(fp32, out, check_rows=check)
    return out


def _training_record(rows: Sequence[TrainingRow], head: TrainedHead, names: Sequence[str], *,
                     source: str | None, seed: int) -> dict[str, Any]:
    labels = _labels(rows)
    return {
        "rows": len(rows), "correct": int(labels.sum()), "incorrect": int((~labels).sum()),
        "data_sha256": rows_sha256(rows), "source": source,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "llmspend_version": __version__, "torch_version": torch.__version__, "seed": seed,
        "head": {"kind": "logistic", "l2": "inf" if math.isinf(head.l2) else head.l2,
                 "l2_selection_auc": {("inf" if math.isinf(k) else str(k)): round(v, 4) for k, v in head.selection.items()}},
        "feature_stats": head.module.feature_summary(names),
    }


def _write_feature_scorer(rows: Sequence[TrainingRow], out: Path, head: TrainedHead, names: tuple[str, ...], *,
                          models: Sequence[str], source: str | None, seed: int,
                          threshold_hints: Mapping[str, Any] | None) -> Path:
    """A scorer directory whose graph reads the features alone (no encoder, no tokenizer)."""
    if not names or head.module.feature_count != len(names):
        raise ConfigError(f"a head without text reads {head.module.feature_count} features; feature_names names "
                          f"{len(names)} ({list(names)})")
    out.mkdir(parents=True, exist_ok=True)
    model = FeatureScorerModel(head.module).eval()
    export_onnx(model, (torch.zeros((2, len(names)), dtype=torch.float32),), str(out / MODEL_FILE), ("features",), "logit")
    (out / TOKENIZER_FILE).unlink(missing_ok=True)  # a directory written over: no stale tokenizer
    metadata = ScorerMetadata(
        inputs=("features",),
        models=tuple(models) or tuple(sorted({r.model for r in rows if r.model})),
        feature_names=names,
        encoder={"name": None, "text": "off"},
        training=_training_record(rows, head, names, source=source, seed=seed),
        export={"opset": OPSET, "dynamic_axes": ["batch"]},
        threshold_hints=dict(threshold_hints or {}),
    )
    metadata.write(out)
    check = _check_sample(rows)
    features = _features(check)
    onnx_scores = _score_rows(OnnxScorer(out, providers=["CPUExecutionProvider"]), check)
    diff = float(np.abs(onnx_scores - head.predict(None, features)).max())
    if not math.isfinite(diff) or diff > EXPORT_TOLERANCE:
        raise ScorerExportError(f"the exported ONNX model disagrees with PyTorch: max |P_onnx - P_torch| = "
                                f"{diff:.3g} > {EXPORT_TOLERANCE:g} on {len(check)} training rows")
    _with_export(metadata, torch_max_abs_diff=diff, checked_pairs=len(check)).write(out)
    return out


def _with_export(metadata: ScorerMetadata, **values: Any) -> ScorerMetadata:
    return replace(metadata, export={**metadata.export, **values})


def _check_sample(rows: Sequence[TrainingRow]) -> list[TrainingRow]:
    """Up to 64 rows spread over the data (short and long pairs alike) for the export checks."""
    step = max(1, len(rows) // _CHECK_PAIRS)
    return list(rows[::step][:_CHECK_PAIRS])


def _score_rows(scorer: Any, rows: Sequence[TrainingRow]) -> np.ndarray:
    features = _features(rows) if scorer.feature_names else None
    return np.asarray(scorer.score([r.query for r in rows], [r.answer for r in rows],
                                   features=None if features is None else features.tolist()))


def _verify_export(model: ScorerModel, directory: Path, encoder: PairEncoder, rows: Sequence[TrainingRow]) -> float:
    onnx_scores = _score_rows(OnnxScorer(directory, providers=["CPUExecutionProvider"]), rows)
    diff = float(np.abs(onnx_scores - model.probabilities(encoder, rows)).max())
    if not math.isfinite(diff) or diff > EXPORT_TOLERANCE:
        raise ScorerExportError(f"the exported ONNX model disagrees with PyTorch: max |P_onnx - P_torch| = "
                                f"{diff:.3g} > {EXPORT_TOLERANCE:g} on {len(rows)} training pairs")
    return diff


class _DropQuantizerAdvice(logging.Filter):
    """onnxruntime's quantiser logs advice to pre-process the model on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_scorer(
    source: str | Path,
    target: str | Path,
    *,
    check_rows: Sequence[TrainingRow],
    per_channel: bool = True,
    tolerance: float = INT8_TOLERANCE,
) -> Path:
    """Write an int8 copy of a scorer directory (dynamic quantisation of the weights).

    The copy is checked against the original on ``check_rows``: the largest and the mean
    difference in P(correct) go into its metadata (``export.int8``), and
    :class:`ScorerExportError` is raised when the largest exceeds ``tolerance``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

    src, dst = Path(source), Path(target)
    original = OnnxScorer(src, providers=["CPUExecutionProvider"])
    if original.metadata.quantized:
        raise ConfigError(f"{src} is already quantised")
    if not check_rows:
        raise ConfigError("quantize_scorer needs some check_rows to measure the int8 model's agreement")
    dst.mkdir(parents=True, exist_ok=True)
    advice = _DropQuantizerAdvice()
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(src / MODEL_FILE, dst / MODEL_FILE, per_channel=per_channel, weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().removeFilter(advice)
    (dst / TOKENIZER_FILE).write_bytes((src / TOKENIZER_FILE).read_bytes())
    replace(original.metadata, quantized=True).write(dst)
    diff = np.abs(_score_rows(OnnxScorer(dst, providers=["CPUExecutionProvider"]), check_rows)
                  - _score_rows(original, check_rows))
    report: dict[str, Any] = {"per_channel": per_channel, "weight_type": "int8", "pairs": len(check_rows),
              "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
              "fp32_bytes": (src / MODEL_FILE).stat().st_size, "int8_bytes": (dst / MODEL_FILE).stat().st_size}
    _with_export(replace(original.metadata, quantized=True), int8=report).write(dst)
    if report["max_abs_diff"] > tolerance:
        raise ScorerExportError(f"the int8 model disagrees with the float one: max |P_int8 - P_fp32| = "
                                f"{report['max_abs_diff']:.3g} > {tolerance:g} on {len(check_rows)} pairs "
                                f"(written to {dst} for inspection; use the float model)")
    return dst
