"""A logistic-regression scorer over numeric answer features: small, fast, no dependencies at
run time (scoring is a dot product in plain Python; fitting needs numpy).

It implements the :class:`~llmspend.scoring.base.Scorer` protocol and judges answers from
``features`` (see :mod:`llmspend.scoring.features`), not from the text: a cascade computes the
features of each step and hands them over. It serialises to a small JSON object that a cascade
plan embeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["LogisticScorer", "fit_logistic", "logistic_weights"]

KIND = "logistic"


@dataclass(frozen=True)
class LogisticScorer:
    """P(correct) = sigmoid(bias + sum(w * (x - mean) / scale))."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    #: the models whose answers it judges (empty: any)
    models: tuple[str, ...] = ()
    #: the models whose answers came before, for a scorer that reads agreement features
    after: tuple[str, ...] = ()
    provider: str = "python"

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.weights) == len(self.mean) == len(self.scale) == n):
            raise ConfigError(
                f"logistic scorer: features, weights, mean and scale must have the same length ({n} features)"
            )
        if any(not math.isfinite(v) for v in (*self.weights, *self.mean, *self.scale, self.bias)):
            raise ConfigError("logistic scorer: weights, bias, mean and scale must be finite numbers")
        if any(s <= 0 for s in self.scale):
            raise ConfigError("logistic scorer: every scale must be > 0")

    def probability(self, x: Sequence[float]) -> float:
        if len(x) != len(self.features):
            raise ValueError(f"expected {len(self.features)} features {self.features}, got {len(x)}")
        z = self.bias
        for value, w, m, s in zip(x, self.weights, self.mean, self.scale):
            z += w * (value - m) / s
        return _sigmoid(z)

    def score(
        self,
        queries: Sequence[str],
        answers: Sequence[str],
        *,
        model: str | None = None,
        features: Sequence[Sequence[float]] | None = None,
    ) -> list[float]:
        if features is None:
            raise ValueError("a logistic scorer judges from features; none were given")
        if len(features) != len(answers):
            raise ValueError(f"{len(answers)} answers but {len(features)} feature rows")
        return [self.probability(x) for x in features]

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Vectorised :meth:`probability` over the rows of ``x`` (numpy)."""
        import numpy as np

        z = self.bias + ((x - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.weights)
        return _expit(z)

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "models": list(self.models),
            "after": list(self.after),
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogisticScorer:
        if data.get("kind") != KIND:
            raise ConfigError(f"not a logistic scorer (kind {data.get('kind')!r})")
        try:
            return cls(
                features=tuple(str(f) for f in data["features"]),
                weights=tuple(float(w) for w in data["weights"]),
                bias=float(data["bias"]),
                mean=tuple(float(m) for m in data["mean"]),
                scale=tuple(float(s) for s in data["scale"]),
                models=tuple(str(m) for m in data.get("models") or ()),
                after=tuple(str(m) for m in data.get("after") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"logistic scorer: malformed ({type(exc).__name__}: {exc})") from exc


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _expit(z: NDArray[np.float64]) -> NDArray[np.float64]:
    import numpy as np

    return 0.5 * (1.0 + np.tanh(0.5 * z))  # type: ignore[no-any-return]  # no overflow, unlike 1/(1+exp(-z))


def fit_logistic(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    *,
    features: Sequence[str],
    l2: float | Sequence[float] = 1.0,
    models: Sequence[str] = (),
    after: Sequence[str] = (),
    iterations: int = 30,
) -> LogisticScorer:
    """L2-regularised logistic regression by Newton's method on standardised features.

    ``l2`` is the ridge penalty on the weights (a tiny one keeps the bias finite when every
    label is the same), one number for every column or one per column. Constant columns get
    weight 0.
    """
    mean, scale, weights, bias = logistic_weights(x, y, l2=l2, iterations=iterations)
    return LogisticScorer(
        features=tuple(features),
        weights=tuple(float(w) for w in weights),
        bias=bias,
        mean=tuple(float(m) for m in mean),
        scale=tuple(float(s) for s in scale),
        models=tuple(models),
        after=tuple(after),
    )


def logistic_weights(
    x: NDArray[np.float64], y: NDArray[np.float64], *, l2: float | Sequence[float] = 1.0, iterations: int = 30
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]:
    """The fit behind :func:`fit_logistic`: ``(mean, scale, weights, bias)`` with
    P = sigmoid(bias + ((x - mean) / scale) @ weights)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    mean = x.mean(axis=0) if n else np.zeros(d)
    scale = x.std(axis=0) if n else np.ones(d)
    scale = np.where(scale > 1e-12, scale, 1.0)
    design = np.hstack([np.ones((n, 1)), (x - mean) / scale])
    penalty = np.empty(d + 1)
    penalty[1:] = l2
    penalty[0] = 1e-4
    beta = np.zeros(d + 1)
    if n:
        rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
        beta[0] = math.log(rate / (1 - rate))
    def loss(b: NDArray[np.float64]) -> float:
        z = design @ b
        # log(1 + exp(z)) - y z, summed; logaddexp keeps it finite for any z
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * b * b))

    current = loss(beta)
    for _ in range(iterations):
        p = _expit(design @ beta)
        gradient = design.T @ (y - p) - penalty * beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        # Damped Newton: halve the step until the loss falls (plain Newton can overshoot
        # wildly when the classes are almost separable).
        for _halving in range(30):
            trial = beta + step
            trial_loss = loss(trial)
            if trial_loss <= current:
                break
            step = step / 2
        else:
            break
        beta, improvement, current = trial, current - trial_loss, trial_loss
        if improvement < 1e-10 * max(1.0, abs(current)):
            break
    return mean, scale, beta[1:], float(beta[0])
