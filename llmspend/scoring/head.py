"""The scorer's head: a logistic regression on [text embedding, numeric features].

Why linear, and why its strength is chosen by cross-validation: on the cascade data (about 300
training answers per model and task) the frozen embedding of (question, answer) ranks answers
little better than chance, while one feature (the provider's log-probability of the answer)
carries most of the signal; a 384-dimensional input lets a head fit noise, and where text
weight was let in, held-out AUC fell below the log-probability alone (docs/benchmarks.md,
"Scorer quality"). So the embedding's weights get an L2 penalty whose strength is picked by
stratified inner cross-validation (mean held-out AUC, then the one-standard-error rule towards
the stronger penalty), and the grid includes "text off" (``inf``): the head leans on the text
only when that helps on answers it did not see.

Inputs are standardised inside the model (buffers exported with the graph): embedding dims by
their training mean and deviation; features likewise after NaN (not known) becomes the mean and
values are clipped to the training range, so a -inf log-probability cannot blow a logit up.
Fits are full-batch L-BFGS in float64 on one thread (tiny problems: threads only add overhead,
and on a busy machine a lot of it).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..exceptions import ConfigError

__all__ = ["HeadModel", "TrainedHead", "fit_head", "head_from_weights", "auc", "stratified_folds", "L2_GRID"]

#: candidate L2 strengths on the embedding weights (per mean log-loss); inf = text off
L2_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, math.inf)
_FEATURE_L2 = 1e-4


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _stats(values: np.ndarray) -> np.ndarray:
    """mean, std, low, high of each column over its finite values: shape (4, columns)."""
    out = np.zeros((4, values.shape[1]), dtype=np.float64)
    for j, column in enumerate(values.T):
        finite = column[np.isfinite(column)]
        if finite.size == 0:
            out[:, j] = (0.0, 1.0, 0.0, 0.0)
            continue
        std = float(finite.std())
        out[:, j] = (finite.mean(), std if std > 1e-8 else 1.0, finite.min(), finite.max())
    return out


class HeadModel(nn.Module):
    """Pooled embedding and raw features in, one logit out (exported with the encoder)."""

    embedding_mean: torch.Tensor
    embedding_std: torch.Tensor
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    feature_low: torch.Tensor
    feature_high: torch.Tensor

    def __init__(self, embedding_stats: np.ndarray, feature_stats: np.ndarray) -> None:
        super().__init__()
        self.hidden_size = embedding_stats.shape[1]
        self.feature_count = feature_stats.shape[1]
        for name, stats in (("embedding", embedding_stats), ("feature", feature_stats)):
            for i, part in enumerate(("mean", "std", "low", "high")):
                self.register_buffer(f"{name}_{part}", torch.tensor(stats[i], dtype=torch.float32))
        self.linear = nn.Linear(self.hidden_size + self.feature_count, 1)

    def standardise(self, pooled: torch.Tensor | None, features: torch.Tensor | None) -> torch.Tensor:
        parts = []
        if self.hidden_size:  # 0: a head that reads the features alone (its text is off)
            if pooled is None:
                raise ValueError("this head reads the text embedding")
            parts.append((pooled - self.embedding_mean) / self.embedding_std)
        if self.feature_count:
            if features is None:
                raise ValueError(f"this head reads {self.feature_count} features")
            known = torch.where(torch.isnan(features), self.feature_mean, features)
            clipped = torch.minimum(torch.maximum(known, self.feature_low), self.feature_high)
            parts.append((clipped - self.feature_mean) / self.feature_std)
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def forward(self, pooled: torch.Tensor | None, features: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(self.standardise(pooled, features)).squeeze(-1)  # type: ignore[no-any-return]

    def feature_summary(self, names: Sequence[str]) -> dict[str, dict[str, float]]:
        parts = {p: getattr(self, f"feature_{p}").tolist() for p in ("mean", "std", "low", "high")}
        return {name: {p: float(v[i]) for p, v in parts.items()} for i, name in enumerate(names)}


@dataclass
class TrainedHead:
    """A fitted head; ``predict`` gives P(correct) from embeddings without any export."""

    module: HeadModel
    #: the L2 strength used on the embedding weights (inf: the text is ignored)
    l2: float
    #: mean inner-CV AUC per candidate L2, when it was chosen by cross-validation
    selection: dict[float, float] = field(default_factory=dict)

    def predict(self, embeddings: np.ndarray | None, features: np.ndarray | None = None) -> np.ndarray:
        with torch.inference_mode():
            x = None if embeddings is None else torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
            rows = len(x) if x is not None else len(np.asarray(features))
            f = None if features is None else torch.from_numpy(np.asarray(features, dtype=np.float32).reshape(rows, -1))
            return torch.sigmoid(self.module.eval()(x, f)).double().numpy()

    @property
    def reads_text(self) -> bool:
        return bool(self.module.hidden_size > 0)


def head_from_weights(
    embedding_stats: np.ndarray,
    feature_stats: np.ndarray,
    weights: np.ndarray,
    bias: float,
    *,
    l2: float,
) -> TrainedHead:
    """A head fitted elsewhere (a cascade fit's step scorer), to export with
    ``train_scorer(..., head=...)``: statistics as ``(4, columns)`` arrays of mean, deviation,
    low and high (the embedding's may have 0 columns: a head that reads the features alone),
    and ``weights`` over [embedding, features]."""
    module = HeadModel(np.asarray(embedding_stats, dtype=np.float64), np.asarray(feature_stats, dtype=np.float64))
    w = np.asarray(weights, dtype=np.float32).reshape(-1)
    if w.shape[0] != module.hidden_size + module.feature_count:
        raise ConfigError(f"{w.shape[0]} weights for {module.hidden_size} embedding dims and "
                          f"{module.feature_count} features")
    if module.hidden_size + module.feature_count == 0:
        raise ConfigError("a head needs an embedding or some features to read")
    with torch.no_grad():
        module.linear.weight.copy_(torch.from_numpy(w).unsqueeze(0))
        module.linear.bias.fill_(float(bias))
    return TrainedHead(module.float().eval(), l2)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); 0.5 when one class is absent."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return 0.5
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = np.asarray(scores)[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts):
        ranks[order[start:start + count]] = start + (count + 1) / 2.0
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Held-out index sets with each class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(folds)]
    offset = 0
    for value in (True, False):
        members = rng.permutation(np.flatnonzero(np.asarray(labels, dtype=bool) == value))
        for i, index in enumerate(members):
            parts[(i + offset) % folds].append(int(index))
        offset += len(members)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _fit(x: torch.Tensor, y: torch.Tensor, feature_count: int, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Penalised logistic regression on standardised inputs: (weights, bias)."""
    hidden = x.shape[1] - feature_count
    use_text = math.isfinite(l2)
    weights = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(x.shape[1], dtype=torch.float64)
    if not use_text:
        mask[:hidden] = 0.0
    penalty = torch.full((x.shape[1],), _FEATURE_L2, dtype=torch.float64)
    penalty[:hidden] = l2 if use_text else 0.0
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=200, tolerance_grad=1e-7, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        w = weights * mask
        loss = nn.functional.binary_cross_entropy_with_logits(x @ w + bias, y) + (penalty * w * w).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return (weights * mask).detach(), bias.detach()


def _standardised(embeddings: np.ndarray, features: np.ndarray | None) -> tuple[HeadModel, torch.Tensor]:
    f = np.zeros((len(embeddings), 0)) if features is None else np.asarray(features, dtype=np.float64)
    module = HeadModel(_stats(np.asarray(embeddings, dtype=np.float64)), _stats(f))
    with torch.no_grad():
        x = module.double().standardise(torch.from_numpy(np.asarray(embeddings, dtype=np.float64)),
                                        torch.from_numpy(f) if module.feature_count else None)
    return module, x


def _fit_module(embeddings: np.ndarray, labels: np.ndarray, features: np.ndarray | None, l2: float) -> HeadModel:
    module, x = _standardised(embeddings, features)
    weights, bias = _fit(x, torch.from_numpy(labels.astype(np.float64)), module.feature_count, l2)
    with torch.no_grad():
        module.linear.weight.copy_(weights.unsqueeze(0))
        module.linear.bias.copy_(bias)
    return module.float().eval()


def _select_l2(embeddings: np.ndarray, labels: np.ndarray, features: np.ndarray | None, grid: Sequence[float],
               folds: int, repeats: int, seed: int) -> tuple[float, dict[float, float]]:
    scores: dict[float, list[float]] = {l2: [] for l2 in grid}
    for repeat in range(repeats):
        for held_out in stratified_folds(labels, folds, seed + repeat):
            train = np.setdiff1d(np.arange(len(labels)), held_out, assume_unique=True)
            for l2 in grid:
                head = TrainedHead(_fit_module(embeddings[train], labels[train],
                                               None if features is None else features[train], l2), l2)
                predicted = head.predict(embeddings[held_out], None if features is None else features[held_out])
                scores[l2].append(auc(predicted, labels[held_out]))
    means = {l2: float(np.mean(v)) for l2, v in scores.items()}
    best = max(grid, key=lambda l2: means[l2])
    standard_error = float(np.std(scores[best]) / math.sqrt(len(scores[best])))
    # one-standard-error rule: the strongest penalty that is about as good as the best
    chosen = max(l2 for l2 in grid if means[l2] >= means[best] - standard_error)
    return chosen, means


def fit_head(
    embeddings: np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    *,
    features: np.ndarray | None = None,
    l2: float | None = None,
    grid: Sequence[float] = L2_GRID,
    folds: int = 4,
    repeats: int = 2,
    seed: int = 0,
) -> TrainedHead:
    """Fit a head on frozen embeddings (and features); ``l2=None`` picks it by inner CV.

    ``features`` is ``(rows, k)``; NaN means "not known". Without features the "text off"
    candidate is dropped from ``grid`` (it would be a constant). Too few rows of either class
    for ``folds`` folds: ``l2`` defaults to 1.0 instead.
    """
    y = np.asarray(labels, dtype=bool)
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"embeddings of shape {x.shape} do not match {len(y)} labels")
    f = None
    if features is not None and np.asarray(features).size:
        f = np.asarray(features, dtype=np.float64).reshape(len(y), -1)
    if l2 is not None and (l2 <= 0 or (math.isinf(l2) and f is None)):
        raise ConfigError(f"l2 must be positive (inf only with features), got {l2}")
    candidates = [v for v in grid if f is not None or math.isfinite(v)]
    selection: dict[float, float] = {}
    with one_thread():
        if l2 is None:
            minority = min(int(y.sum()), int((~y).sum()))
            if minority >= folds and len(candidates) > 1:
                l2, selection = _select_l2(x, y, f, candidates, folds, repeats, seed)
            else:
                l2 = 1.0
        module = _fit_module(x, y, f, l2)
    return TrainedHead(module, l2, selection)
