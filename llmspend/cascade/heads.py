"""The step scorers a cascade fit trains: a logistic regression over a step's numeric features
and, when cross-validation finds it helps, the answer's text embedding.

A step scorer judges model ``m``'s answer after the earlier models of its chain. Its numeric
features (log-probability, answer length, agreement with the earlier answers; see
:mod:`llmspend.scoring.features`) always count. The text part — the frozen encoder's embedding
of (query, answer), as :class:`llmspend.scoring.PairEncoder` computes it — enters through its
top principal components (:data:`TEXT_COMPONENTS`, fitted on the training rows' embeddings of
that model, labels unseen) with a ridge penalty chosen per step from :data:`TEXT_L2` by
cross-validated log-loss, ``inf`` ("text off") included, and the one-standard-error rule
towards the stronger penalty. With a few hundred judged answers, hundreds of embedding weights
would fit noise; a handful of components and a penalty the held-out rows agree with do not.

The fitted scorer is still linear in the standardised embedding (components are a projection
of it), so it exports exactly as the head of an ``llmspend.scoring`` scorer directory
(:meth:`StepHead.head_arrays`): encoder, mean pooling, standardisation and one linear layer in
one ONNX graph, or the features alone when the text is off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..scoring.logistic import LogisticScorer, logistic_weights

__all__ = ["TEXT_L2", "TEXT_COMPONENTS", "TextBasis", "StepHead", "fit_step_head", "choose_text_l2"]

Array = NDArray[np.float64]

#: ridge penalties tried on a step scorer's text components (sum of log-losses); inf: text off
TEXT_L2: tuple[float, ...] = (math.inf, 100.0, 30.0, 10.0)
#: principal components of the embedding a step scorer may read
TEXT_COMPONENTS = 16


@dataclass(frozen=True)
class TextBasis:
    """Standardisation and principal directions of one model's answer embeddings, fitted on
    the rows a search trains on (no labels are read)."""

    mean: Array  # (dims,)
    scale: Array  # (dims,)
    #: standardised embedding -> components of unit variance on the fitting rows: (dims, k)
    projection: Array

    @classmethod
    def fit(cls, embeddings: NDArray[np.floating], components: int = TEXT_COMPONENTS) -> TextBasis:
        e = np.asarray(embeddings, dtype=np.float64)
        mean = e.mean(axis=0)
        scale = e.std(axis=0)
        scale = np.where(scale > 1e-8, scale, 1.0)  # the scorer head's own rule
        z = (e - mean) / scale
        _, singular, vt = np.linalg.svd(z, full_matrices=False)
        k = min(components, int((singular > 1e-8 * max(1.0, float(singular[:1].sum()))).sum()))
        # unit variance over the rows: singular value / sqrt(rows) is each component's deviation
        projection = vt[:k].T * (math.sqrt(len(e)) / singular[:k])
        return cls(mean, scale, projection)

    def components(self, embeddings: NDArray[np.floating]) -> Array:
        return ((np.asarray(embeddings, dtype=np.float64) - self.mean) / self.scale) @ self.projection  # type: ignore[no-any-return]


@dataclass(frozen=True)
class StepHead:
    """A fitted step scorer: ``numeric`` holds the features' weights and the bias; the text
    part, when on, is a weight vector over the standardised embedding."""

    numeric: LogisticScorer
    text_l2: float = math.inf
    basis: TextBasis | None = None
    #: weights on the standardised embedding, (dims,); None when the text is off
    text_weights: Array | None = None
    #: training range of each feature (the exported head clips to it, as the ONNX scorer does)
    feature_low: tuple[float, ...] = ()
    feature_high: tuple[float, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric.features

    @property
    def uses_text(self) -> bool:
        return self.text_weights is not None

    def logit(self, x: Array, embeddings: NDArray[np.floating] | None = None) -> Array:
        s = self.numeric
        z = s.bias + ((np.asarray(x, dtype=np.float64) - np.asarray(s.mean)) / np.asarray(s.scale)) @ np.asarray(s.weights)
        if self.text_weights is not None:
            assert self.basis is not None and embeddings is not None, "this step scorer reads the text embedding"
            z = z + ((np.asarray(embeddings, dtype=np.float64) - self.basis.mean) / self.basis.scale) @ self.text_weights
        return z  # type: ignore[no-any-return]

    def predict(self, x: Array, embeddings: NDArray[np.floating] | None = None) -> Array:
        return 0.5 * (1.0 + np.tanh(0.5 * self.logit(x, embeddings)))  # type: ignore[no-any-return]

    def head_arrays(self) -> dict[str, Array]:
        """What an ``llmspend.scoring`` head needs: embedding and feature statistics
        (mean, deviation, low, high; (4, columns)), the weights over [embedding, features] and
        the bias. The embedding part is empty when the text is off."""
        s = self.numeric
        features = np.array([s.mean, s.scale, self.feature_low, self.feature_high], dtype=np.float64).reshape(4, -1)
        if self.text_weights is None or self.basis is None:
            embedding = np.zeros((4, 0))
            weights = np.asarray(s.weights, dtype=np.float64)
        else:
            dims = len(self.basis.mean)
            embedding = np.stack([self.basis.mean, self.basis.scale, np.zeros(dims), np.zeros(dims)])
            weights = np.concatenate([self.text_weights, np.asarray(s.weights, dtype=np.float64)])
        return {"embedding_stats": embedding, "feature_stats": features, "weights": weights,
                "bias": np.array([s.bias])}


def fit_step_head(
    x: Array,
    y: Array,
    *,
    features: Sequence[str],
    l2: float,
    text: Array | None = None,
    text_l2: float = math.inf,
    basis: TextBasis | None = None,
    models: Sequence[str] = (),
    after: Sequence[str] = (),
) -> StepHead:
    """Fit a step scorer on ``x`` (numeric features) and, when ``text_l2`` is finite, the text
    components ``text`` (from ``basis``)."""
    x = np.asarray(x, dtype=np.float64)
    use_text = text is not None and basis is not None and math.isfinite(text_l2) and text.shape[1] > 0
    d = x.shape[1]
    design = np.hstack([x, text]) if use_text and text is not None else x
    penalty = [l2] * d + ([text_l2] * (design.shape[1] - d))
    mean, scale, weights, bias = logistic_weights(design, y, l2=penalty)
    text_weights = None
    if use_text and basis is not None:
        # components c = z @ P, standardised again by (c - mean_c) / scale_c inside the fit:
        # their weights map back to the standardised embedding z, the shift into the bias
        w_c = weights[d:] / scale[d:]
        text_weights = basis.projection @ w_c
        bias -= float(w_c @ mean[d:])
    numeric = LogisticScorer(
        features=tuple(features),
        weights=tuple(float(w) for w in weights[:d]),
        bias=float(bias),
        mean=tuple(float(m) for m in mean[:d]),
        scale=tuple(float(s) for s in scale[:d]),
        models=tuple(models),
        after=tuple(after),
    )
    low = tuple(float(v) for v in x.min(axis=0)) if len(x) else (0.0,) * d
    high = tuple(float(v) for v in x.max(axis=0)) if len(x) else (0.0,) * d
    return StepHead(numeric, text_l2 if use_text else math.inf, basis if use_text else None, text_weights, low, high)


def choose_text_l2(losses: dict[float, Array]) -> float:
    """The penalty whose held-out log-loss (one value per row) is best, or the strongest one
    within a standard error of it (paired over the rows): text only where the rows it was not
    fitted on say it helps."""
    means = {l2: float(v.mean()) for l2, v in losses.items()}
    best = min(means, key=lambda l2: (means[l2], -l2))
    for l2 in sorted(losses, reverse=True):  # inf first
        diff = losses[l2] - losses[best]
        if means[l2] - means[best] <= float(diff.std()) / math.sqrt(len(diff)) + 1e-12:
            return l2
    return best


def log_loss(p: Array, y: Array) -> Array:
    """Per-row log-loss, clipped so a confident miss costs at most ~14 nats."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))  # type: ignore[no-any-return]
