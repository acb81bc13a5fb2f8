"""Fitting a cascade plan: which models, in which order, and each step's threshold.

The search, all numpy:

1. **Scorers.** For every step a chain can have — a model ``m`` after the earlier models
   ``p1..pk`` — a logistic scorer reads the answer's features (the provider's log-probability,
   the answer's length, its agreement with the earlier answers; see
   :mod:`llmspend.scoring.features`). Its scores are *cross-fitted*: each training row is scored
   by a scorer fitted on the other folds, so no score has seen its own label.
2. **Thresholds.** For a chain and a price of cost ``lam`` (accuracy given up per USD), the
   thresholds maximise ``accuracy - lam * cost`` over the rows they are tuned on: a backward
   sweep over the steps, each step's best cut found from sorted scores in one pass, twice over.
   Every chain of 1 to ``max_depth`` of the models, every ordering, at ~40 prices of cost.
3. **Cross-validation.** For each fold, thresholds are tuned on the other folds and applied to
   this fold's rows, never to the rows they were tuned on. Every (chain, price) candidate thus
   gets held-out accuracy and cost for every training row.
4. **Choice.** Under ``budget``: the most accurate candidate whose held-out cost, plus
   ``margin_z`` standard errors, fits the budget. Under ``max_accuracy_drop``: the cheapest
   whose held-out accuracy, less ``margin_z`` standard errors of its paired difference from the
   best single model, is within the drop of that model. The margin is the guard against
   picking the luckiest of thousands of candidates.
5. **Refit.** The chosen chain's scorers are fitted on all training rows; each threshold is the
   median of the thresholds the folds tuned at the chosen price of cost.

With ``step_scorers`` (:class:`llmspend.cascade.scorers.StepScorerExport`, what ``llmspend
cascade fit`` does by default) the scorers may also read the answer's text embedding, where
cross-validation keeps it (:mod:`.heads`), and each is written as an ONNX scorer directory.
A scorer trained elsewhere can instead enter as one more feature, ``text_score``, through
:class:`TextScorerSource`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .._version import __version__
from ..exceptions import ConfigError
from ..scoring.base import Scorer, TrainingRow
from ..scoring.features import (
    AGREEMENT_FEATURES,
    ANSWER_FEATURES,
    STEP_FEATURES,
    agreement,
    answer_features,
    check_text_scorer,
    normalise_answer,
    text_scorer_features,
)
from ..scoring.logistic import LogisticScorer, fit_logistic
from .data import OutcomeTable
from .heads import TEXT_COMPONENTS, TEXT_L2, StepHead, TextBasis, choose_text_l2, fit_step_head, log_loss
from .plan import NEVER, TEXT_SCORE, FrontierPoint, OnnxStepScorer, Plan, Step, StepScorer

__all__ = [
    "fit_plan",
    "fit_plans",
    "TextScorerSource",
    "StepScorerTrainer",
    "FeatureTable",
    "tune_thresholds",
    "policy_outcomes",
    "accepted_steps",
    "fold_ids",
]

Array = NDArray[np.float64]

# Prices of cost, as accuracy points per (USD / the dearest model's mean USD per query).
_LAMBDAS = np.concatenate([[0.0], np.geomspace(1e-3, 10.0, 31)])
_MAX_DEPTH = 4
#: the most the folds' thresholds may differ in the share of rows they accept at a step
_MAX_SPREAD = 0.1
# Memory cap for one batch of chains (floats in the largest array).
_BATCH_FLOATS = 4_000_000


@dataclass(frozen=True)
class TextScorerSource:
    """Where ``text_score`` comes from: a scorer trained elsewhere, used as it is, and the plan
    entry ``spec`` that loads it again (``{"kind": "onnx", "path": DIR}``)."""

    scorer: Scorer
    spec: Mapping[str, Any]


class StepScorerTrainer(Protocol):
    """Makes a fit's step scorers ONNX scorer directories (``llmspend.cascade.scorers.StepScorerExport``)."""

    def embed(self, feats: FeatureTable) -> None:
        """Set ``feats.embeddings``: the text the step scorers may read."""

    def export(self, key: str, head: StepHead, rows: Sequence[TrainingRow]) -> OnnxStepScorer:
        """Write ``head``, fitted on ``rows``, as a scorer directory; return its plan entry."""

    def describe(self) -> dict[str, Any]:
        """What the plan records of it (encoder, max_length, quantisation)."""


# -- features of every (model, earlier models) context ------------------------------------
class FeatureTable:
    """The step features of every answer in a table, for any chain context, built with the
    same functions the pipeline stage uses at run time."""

    def __init__(self, table: OutcomeTable, features: Sequence[str] = STEP_FEATURES) -> None:
        unknown = set(features) - set(STEP_FEATURES) - {TEXT_SCORE}
        if unknown:
            raise ConfigError(f"unknown features {sorted(unknown)}; known: {', '.join(STEP_FEATURES)}")
        self.table = table
        self.features = tuple(features)
        n, m = len(table), len(table.models)
        tokens = [[normalise_answer(a) for a in row] for row in table.answers]
        self.tokens = tokens
        self.answer = np.zeros((m, n, len(ANSWER_FEATURES)))
        for i in range(n):
            for j in range(m):
                conf = float(table.conf[i, j])
                self.answer[j, i] = answer_features(tokens[i][j], None if math.isnan(conf) else conf)
        self.agree = np.zeros((m, m, n))
        for j, k in itertools.combinations(range(m), 2):
            values = [agreement(tokens[i][j], tokens[i][k]) for i in range(n)]
            self.agree[j, k] = self.agree[k, j] = values
        #: text_score of each model's answers, (models, rows), when a text scorer is used
        self.text: Array | None = None
        #: each model's (query, answer) embedding, (models, rows, dims), when step scorers may read text
        self.embeddings: NDArray[np.float32] | None = None
        #: for replaying plans (:mod:`.evaluate`): ONNX step scorers by directory, and their
        #: scores of these rows by (directory, model, earlier models); NaN: not scored yet
        self.scorers: dict[str, Scorer] = {}
        self.scored: dict[tuple[str, int, tuple[int, ...]], Array] = {}

    def embed(self, encoder: Any) -> None:
        """Embed every model's answers with ``encoder`` (a :class:`llmspend.scoring.PairEncoder`:
        a pair that several models gave alike is embedded once)."""
        t = self.table
        self.embeddings = np.stack([
            np.asarray(encoder.embed(list(t.queries), [row[j] for row in t.answers]), dtype=np.float32)
            for j in range(len(t.models))
        ])

    def names(self, prefix: Sequence[int]) -> tuple[str, ...]:
        names = [f for f in self.features if prefix or f not in AGREEMENT_FEATURES]
        if self.text is not None and TEXT_SCORE not in names:
            names.append(TEXT_SCORE)
        return tuple(names)

    def matrix(self, model: int, prefix: Sequence[int], names: Sequence[str] | None = None) -> Array:
        """Feature columns ``names`` (default :meth:`names`) of ``model``'s answers after ``prefix``."""
        columns: list[Array] = []
        for name in self.names(prefix) if names is None else names:
            if name in ANSWER_FEATURES:
                columns.append(self.answer[model, :, ANSWER_FEATURES.index(name)])
            elif name == "agree_prev":
                columns.append(self.agree[model, prefix[-1]])
            elif name == "agree_mean":
                columns.append(self.agree[model, list(prefix)].mean(axis=0))
            elif name == TEXT_SCORE and self.text is not None:
                columns.append(self.text[model])
            else:
                raise ConfigError(f"feature {name!r} is not available here")
        return np.stack(columns, axis=1) if columns else np.zeros((len(self.table), 0))

    def step_rows(self, model: int, prefix: Sequence[int], names: Sequence[str]) -> list[TrainingRow]:
        """``model``'s judged answers after ``prefix``, with the step features ``names``: what
        its step scorer is trained on."""
        t = self.table
        x = self.matrix(model, prefix, names)
        return [
            TrainingRow(t.queries[i], t.answers[i][model], bool(t.correct[i, model]), t.models[model], tuple(x[i]))
            for i in range(len(t))
        ]

    def score_text(self, scorer: Scorer, rows: Sequence[int]) -> Array:
        """``scorer``'s P(correct) for every model's answer on ``rows``: (models, len(rows))."""
        t = self.table
        check_text_scorer(scorer, t.models)
        out = np.zeros((len(t.models), len(rows)))
        queries = [t.queries[i] for i in rows]
        for j, model in enumerate(t.models):
            answers = [t.answers[i][j] for i in rows]
            features = text_scorer_features(
                scorer, [(self.tokens[i][j], None if math.isnan(t.conf[i, j]) else float(t.conf[i, j])) for i in rows]
            )
            out[j] = scorer.score(queries, answers, model=model, features=features)
        return out


def fold_ids(n: int, folds: int, seed: int) -> NDArray[np.intp]:
    """A fold number for each of ``n`` rows: a seeded shuffle dealt round-robin."""
    if folds < 2:
        raise ConfigError(f"folds must be >= 2, got {folds}")
    if n < 2 * folds:
        raise ConfigError(f"{n} rows are too few for {folds}-fold cross-validation; give more data or fewer folds")
    order = np.random.default_rng(seed).permutation(n)
    ids = np.empty(n, dtype=np.intp)
    ids[order] = np.arange(n) % folds
    return ids


# -- thresholds (pure) ----------------------------------------------------------------------
def tune_thresholds(scores: Array, correct: Array, cumcost: Array, lam: Array, *, passes: int = 2) -> Array:
    """Per-step thresholds maximising ``correct - lam * cost`` summed over the rows given.

    ``scores`` (chains, rows, steps-1): each non-final step's P(correct); ``correct`` and
    ``cumcost`` (chains, rows, steps): right or wrong, and USD spent up to and including each
    step; ``lam`` (prices,). Returns (chains, prices, steps-1) thresholds; a step accepts when
    its score is >= its threshold (``inf``: never). Each step's cut is the best given the
    others (a backward sweep, ``passes`` times), set midway between neighbouring scores.
    """
    b, n, s = scores.shape
    t = np.full((b, lam.shape[0], s), np.inf)
    if s == 0 or n == 0:
        return t
    f32 = np.float32  # halves the memory traffic; the sums stay exact enough for a cut
    lam32 = lam.astype(f32)[None, :, None]
    for _ in range(passes):
        for k in reversed(range(s)):
            # rows in descending order of this step's score, so a cut is a prefix
            order = np.argsort(-scores[:, :, k], axis=1, kind="stable")
            sc = np.take_along_axis(scores, order[..., None], axis=1).astype(f32)
            right = np.take_along_axis(correct, order[..., None], axis=1).astype(f32)
            spent = np.take_along_axis(cumcost, order[..., None], axis=1).astype(f32)
            thresholds = t.astype(f32)

            def value(j: int) -> NDArray[np.float32]:
                return right[:, None, :, j] - lam32 * spent[:, None, :, j]  # type: ignore[no-any-return]

            cont = value(s)
            for j in reversed(range(k + 1, s)):
                cont = np.where(sc[:, None, :, j] >= thresholds[:, :, None, j], value(j), cont)
            gain = value(k) - cont
            for j in range(k):  # rows an earlier step accepted never reach this one
                gain = np.where(sc[:, None, :, j] >= thresholds[:, :, None, j], 0.0, gain)
            ranked = scores[np.arange(b)[:, None], order, k]  # (b, n) descending
            # a cut after row m is possible only between distinct scores; "accept all" is 0
            distinct = np.concatenate([ranked[:, :-1] > ranked[:, 1:], np.ones((b, 1), dtype=bool)], axis=1)
            cut = np.concatenate([(ranked[:, :-1] + ranked[:, 1:]) / 2, np.zeros((b, 1))], axis=1)
            total = np.where(distinct[:, None, :], np.cumsum(gain, axis=-1), -np.inf)
            best = total.argmax(axis=-1)  # (b, g)
            better = np.take_along_axis(total, best[..., None], axis=-1)[..., 0] > 1e-6
            t[..., k] = np.where(better, np.take_along_axis(cut, best, axis=-1), np.inf)
    return t


def accepted_steps(scores: Array, t: Array) -> NDArray[np.intp]:
    """The step (0-based) at which each row is accepted under thresholds ``t``: shapes as
    :func:`tune_thresholds`; result (chains, prices, rows). Reads scores only, no labels."""
    b, n, s = scores.shape
    accept = np.concatenate(
        [scores[:, None] >= t[:, :, None, :], np.ones((b, t.shape[1], n, 1), dtype=bool)], axis=-1
    )
    return accept.argmax(axis=-1)  # type: ignore[no-any-return]


def policy_outcomes(scores: Array, correct: Array, cumcost: Array, t: Array) -> tuple[Array, Array, NDArray[np.intp]]:
    """Correctness, cost and accepted step (0-based) of every row under thresholds ``t``:
    shapes as :func:`tune_thresholds`; results (chains, prices, rows)."""
    b, n, s = scores.shape
    g = t.shape[1]
    step = accepted_steps(scores, t)
    right = np.take_along_axis(np.broadcast_to(correct[:, None], (b, g, n, s + 1)), step[..., None], axis=-1)[..., 0]
    spent = np.take_along_axis(np.broadcast_to(cumcost[:, None], (b, g, n, s + 1)), step[..., None], axis=-1)[..., 0]
    return right, spent, step


# -- the search ----------------------------------------------------------------------------
Chain = tuple[int, ...]
Context = tuple[int, Chain]


def _chains(costs: Sequence[float], max_depth: int, orderings: str) -> Iterator[Chain]:
    m = len(costs)
    by_cost = sorted(range(m), key=lambda j: (costs[j], j))
    for depth in range(1, max_depth + 1):
        if orderings == "all":
            yield from itertools.permutations(range(m), depth)
            continue
        # cheaper models first, then any other model last (it may be the most accurate one
        # without being the dearest)
        for head in itertools.combinations(by_cost, depth - 1):
            for last in range(m):
                if last not in head:
                    yield (*head, last)


def _contexts(chains: Sequence[Chain]) -> list[Context]:
    seen: dict[Context, None] = {}
    for chain in chains:
        for k in range(len(chain) - 1):
            seen[(chain[k], chain[:k])] = None
    return list(seen)


@dataclass
class _Candidates:
    """Held-out sums per (chain, price of cost): every row counted once, from its fold."""

    chains: list[Chain]
    right: Array
    cost: Array
    cost_sq: Array
    diff: Array
    diff_sq: Array
    n: int
    #: how far apart the folds' thresholds are, as the largest gap between the shares of rows
    #: they accept at one step
    spread: Array

    def stats(self) -> dict[str, Array]:
        n = self.n
        acc, cost, diff = self.right / n, self.cost / n, self.diff / n
        cost_se = np.sqrt(np.maximum(self.cost_sq / n - cost**2, 0.0) / n)
        diff_se = np.sqrt(np.maximum(self.diff_sq / n - diff**2, 0.0) / n)
        return {"accuracy": acc, "cost": cost, "diff": diff, "cost_se": cost_se, "diff_se": diff_se}


def _select(
    cands: _Candidates, *, budget: float | None, max_drop: float | None, margin_z: float
) -> tuple[int, int] | None:
    """The (chain, price) index the objective picks from held-out figures, or None."""
    st = cands.stats()
    depth = np.array([len(c) for c in cands.chains], dtype=float)[:, None]
    # Folds that disagree (one escalates half the rows, another a tenth) average into held-out
    # figures that no single plan has: such a candidate cannot be deployed as measured.
    stable = cands.spread <= _MAX_SPREAD
    if budget is not None:
        feasible = stable & (st["cost"] + margin_z * st["cost_se"] <= budget * (1 + 1e-9))
        key = np.where(feasible, st["accuracy"], -np.inf)  # most accurate, then cheapest, then shortest
        tie = -st["cost"] - 1e-12 * depth
    else:
        assert max_drop is not None
        feasible = stable & (st["diff"] - margin_z * st["diff_se"] >= -max_drop - 1e-12)
        key = np.where(feasible, -st["cost"], -np.inf)  # cheapest, then most accurate, then shortest
        tie = st["accuracy"] - 1e-12 * depth
    if not feasible.any():
        return None
    tied = np.where(key >= key.max() - 1e-15, tie, -np.inf)
    c, g = np.unravel_index(int(tied.argmax()), tied.shape)
    return int(c), int(g)


@dataclass(frozen=True)
class _SearchOptions:
    max_depth: int
    orderings: str
    l2: float


class _Search:
    """Cross-validated search over chains and prices of cost, on some rows of a table."""

    def __init__(
        self,
        feats: FeatureTable,
        rows: NDArray[np.intp],
        options: _SearchOptions,
        *,
        folds: int,
        seed: int,
    ) -> None:
        table = feats.table
        self.feats, self.rows, self.l2 = feats, rows, options.l2
        self.correct = table.correct[rows]
        self.cost = table.cost[rows]
        self.folds = fold_ids(len(rows), folds, seed)
        self.n_folds = folds
        costs = self.cost.mean(axis=0)
        self.chains = list(_chains(costs.tolist(), options.max_depth, options.orderings))
        self.lam = _LAMBDAS / (float(costs.max()) or 1.0)
        accuracy = self.correct.mean(axis=0)
        self.best = max(range(len(costs)), key=lambda j: (accuracy[j], -costs[j]))
        self._x: dict[Context, Array] = {}
        contexts = _contexts(self.chains)
        #: principal directions of each candidate step model's answer embeddings on these rows
        self.bases: dict[int, TextBasis] = {}
        if feats.embeddings is not None:
            for model in sorted({c[0] for c in contexts}):
                self.bases[model] = TextBasis.fit(feats.embeddings[model, rows])
        self._components: dict[int, Array] = {}
        self._scorers: dict[Context, StepHead] = {}
        #: the text penalty cross-validation chose for each step context (inf: text off)
        self.text_l2: dict[Context, float] = {}
        self.oof = {context: self._cross_fit(context) for context in contexts}

    def x(self, context: Context) -> Array:
        if context not in self._x:
            self._x[context] = self.feats.matrix(*context)[self.rows]
        return self._x[context]

    def embeddings(self, model: int, rows: NDArray[np.intp] | None = None) -> NDArray[np.float32] | None:
        """``model``'s answer embeddings on ``rows`` (default: this search's), if text is in play."""
        if model not in self.bases or self.feats.embeddings is None:
            return None
        out: NDArray[np.float32] = self.feats.embeddings[model, self.rows if rows is None else rows]
        return out

    def _fit(self, context: Context, train: NDArray[np.bool_] | slice, text_l2: float) -> StepHead:
        model, prefix = context
        basis = self.bases.get(model)
        text = None
        if basis is not None and math.isfinite(text_l2):
            if model not in self._components:
                emb = self.embeddings(model)
                assert emb is not None
                self._components[model] = basis.components(emb)
            text = self._components[model][train]
        models = self.feats.table.models
        return fit_step_head(
            self.x(context)[train], self.correct[train, model], features=self.feats.names(prefix), l2=self.l2,
            text=text, text_l2=text_l2, basis=basis, models=(models[model],), after=tuple(models[p] for p in prefix),
        )

    def _cross_fit(self, context: Context) -> Array:
        """Scores of every row from a scorer fitted on the other folds; with text in play, the
        text penalty is chosen here too, by the same folds' held-out log-loss."""
        x, y = self.x(context), self.correct[:, context[0]]
        emb = self.embeddings(context[0])
        if emb is None:
            names = self.feats.names(context[1])
            out = np.empty(len(y))
            for f in range(self.n_folds):
                held = self.folds == f
                out[held] = fit_logistic(x[~held], y[~held], features=names, l2=self.l2).predict(x[held])
            self.text_l2[context] = math.inf
            return out
        scores: dict[float, Array] = {}
        for text_l2 in TEXT_L2:
            out = np.empty(len(y))
            for f in range(self.n_folds):
                held = self.folds == f
                out[held] = self._fit(context, ~held, text_l2).predict(x[held], emb[held])
            scores[text_l2] = out
        chosen = choose_text_l2({k: log_loss(v, y) for k, v in scores.items()})
        self.text_l2[context] = chosen
        return scores[chosen]

    def arrays(self, chains: Sequence[Chain]) -> tuple[Array, Array, Array]:
        n = len(self.rows)
        scores = np.stack([
            np.stack([self.oof[(c[k], c[:k])] for k in range(len(c) - 1)], axis=1) if len(c) > 1 else np.zeros((n, 0))
            for c in chains
        ])
        correct = np.stack([self.correct[:, list(c)] for c in chains])
        cumcost = np.stack([np.cumsum(self.cost[:, list(c)], axis=1) for c in chains])
        return scores, correct, cumcost

    def cross_validate(self) -> _Candidates:
        g, n = len(self.lam), len(self.rows)
        sums = {k: np.zeros((len(self.chains), g)) for k in ("right", "cost", "cost_sq", "diff", "diff_sq")}
        # the share of all rows each fold's thresholds accept at each step: lowest and highest
        low = np.ones((len(self.chains), g, _MAX_DEPTH))
        high = np.zeros((len(self.chains), g, _MAX_DEPTH))
        best_right = self.correct[:, self.best]
        start = 0
        for depth, group in itertools.groupby(self.chains, key=len):
            chains = list(group)
            batch = max(1, _BATCH_FLOATS // (g * n * depth))
            for lo in range(0, len(chains), batch):
                part = chains[lo : lo + batch]
                scores, correct, cumcost = self.arrays(part)
                span = slice(start + lo, start + lo + len(part))
                for f in range(self.n_folds):
                    held = self.folds == f
                    t = tune_thresholds(scores[:, ~held], correct[:, ~held], cumcost[:, ~held], self.lam)
                    right, spent, _ = policy_outcomes(scores[:, held], correct[:, held], cumcost[:, held], t)
                    step = accepted_steps(scores, t)  # every row's step, for the folds' agreement
                    shares = np.stack([(step == k).mean(-1) for k in range(depth)], axis=-1)
                    low[span, :, :depth] = np.minimum(low[span, :, :depth], shares)
                    high[span, :, :depth] = np.maximum(high[span, :, :depth], shares)
                    diff = right - best_right[held]
                    sums["right"][span] += right.sum(-1)
                    sums["cost"][span] += spent.sum(-1)
                    sums["cost_sq"][span] += (spent**2).sum(-1)
                    sums["diff"][span] += diff.sum(-1)
                    sums["diff_sq"][span] += (diff**2).sum(-1)
            start += len(chains)
        spread = np.where(high >= low, high - low, 0.0).max(axis=-1)
        return _Candidates(self.chains, n=n, spread=spread, **sums)

    def held_out_steps(self, chain: Chain, g: int) -> NDArray[np.intp]:
        """The step each row was accepted at, under thresholds tuned without its fold."""
        scores, correct, cumcost = self.arrays([chain])
        steps = np.zeros(len(self.rows), dtype=np.intp)
        for f in range(self.n_folds):
            held = self.folds == f
            t = tune_thresholds(scores[:, ~held], correct[:, ~held], cumcost[:, ~held], self.lam[g : g + 1])
            steps[held] = policy_outcomes(scores[:, held], correct[:, held], cumcost[:, held], t)[2][0, 0]
        return steps

    def thresholds(self, chain: Chain, g: int) -> Array:
        """The chain's thresholds at price ``g``: the median of the thresholds tuned on each
        fold's training part, i.e. of the very thresholds whose held-out figures chose it.
        (Tuning once more on every row can land far from them: near the optimum the objective
        is flat, and a small change in the rows moves the best cut a long way.)"""
        scores, correct, cumcost = self.arrays([chain])
        tuned = [
            tune_thresholds(scores[:, self.folds != f], correct[:, self.folds != f], cumcost[:, self.folds != f],
                            self.lam[g : g + 1])[0, 0]
            for f in range(self.n_folds)
        ]
        median: Array = np.median(np.stack(tuned), axis=0)
        return np.minimum(median, NEVER)

    def scorer(self, context: Context) -> StepHead:
        """The context's scorer fitted on every row (with the text penalty its folds chose)."""
        if context not in self._scorers:
            self._scorers[context] = self._fit(context, slice(None), self.text_l2[context])
        return self._scorers[context]

    def steps(self, chain: Chain, g: int, scorers: dict[str, StepHead]) -> tuple[Step, ...]:
        """The chain as plan steps; their scorers are added to ``scorers``."""
        models = self.feats.table.models
        t = self.thresholds(chain, g)
        steps = []
        for k, model in enumerate(chain[:-1]):
            key = "|".join(models[j] for j in (model, *chain[:k]))
            if key not in scorers:
                scorers[key] = self.scorer((model, chain[:k]))
            steps.append(Step(models[model], threshold=float(t[k]), scorer=key))
        return (*steps, Step(models[chain[-1]]))

    def apply(self, chain: Chain, g: int, rows: NDArray[np.intp]) -> tuple[Array, Array]:
        """Correctness and cost on other ``rows`` of the chain refitted on this search's rows."""
        table = self.feats.table
        t = self.thresholds(chain, g)
        columns = [
            self.scorer((m, chain[:k])).predict(self.feats.matrix(m, chain[:k])[rows], self.embeddings(m, rows))
            for k, m in enumerate(chain[:-1])
        ]
        scores = np.stack(columns, axis=1) if columns else np.zeros((len(rows), 0))
        right, spent, _ = policy_outcomes(
            scores[None], table.correct[rows][:, list(chain)][None],
            np.cumsum(table.cost[rows][:, list(chain)], axis=1)[None], t[None, None],
        )
        return right[0, 0], spent[0, 0]


#: safety margins (standard errors) that ``margin_z="auto"`` chooses from
AUTO_MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


class _Searches:
    """The cross-validated searches of one fit, kept for every objective asked of them: the
    search on every row and, for the nested margin, one per outer fold (built on first use)."""

    def __init__(self, feats: FeatureTable, options: _SearchOptions, *, folds: int, seed: int) -> None:
        self.feats, self.options, self.folds, self.seed = feats, options, folds, seed
        self._main: tuple[_Search, _Candidates] | None = None
        self._nested: list[tuple[_Search, _Candidates, NDArray[np.intp]]] | None = None

    @property
    def main(self) -> tuple[_Search, _Candidates]:
        if self._main is None:
            search = _Search(self.feats, np.arange(len(self.feats.table)), self.options, folds=self.folds, seed=self.seed)
            self._main = search, search.cross_validate()
        return self._main

    @property
    def nested(self) -> list[tuple[_Search, _Candidates, NDArray[np.intp]]]:
        """For each outer fold: the search on the other folds, its candidates, the fold's rows."""
        if self._nested is None:
            outer = fold_ids(len(self.feats.table), self.folds, self.seed + 1)
            self._nested = []
            for o in range(self.folds):
                inner = _Search(self.feats, np.flatnonzero(outer != o), self.options, folds=self.folds, seed=self.seed)
                self._nested.append((inner, inner.cross_validate(), np.flatnonzero(outer == o)))
        return self._nested


def _nested_margin(
    searches: _Searches, *, budget: float | None, max_drop: float | None, reference: float
) -> tuple[float, list[dict[str, float]]]:
    """Choose the safety margin by nested cross-validation: for each outer fold, the whole
    search runs on the other folds, picks a plan at each margin, and the plan is scored on the
    outer fold. The margin whose outer-fold results meet the objective best wins."""
    n = len(searches.feats.table)
    right = np.zeros((len(AUTO_MARGINS), n))
    spent = np.zeros((len(AUTO_MARGINS), n))
    feasible = np.ones(len(AUTO_MARGINS), dtype=bool)
    for inner, cands, held in searches.nested:
        for i, z in enumerate(AUTO_MARGINS):
            pick = _select(cands, budget=budget, max_drop=max_drop, margin_z=z)
            if pick is None:
                feasible[i] = False
                continue
            right[i, held], spent[i, held] = inner.apply(cands.chains[pick[0]], pick[1], held)
    report = [
        {"margin_z": z, "accuracy": float(right[i].mean()), "cost_usd_per_query": float(spent[i].mean())}
        for i, z in enumerate(AUTO_MARGINS) if feasible[i]
    ]
    if not report:
        return AUTO_MARGINS[0], report
    if budget is not None:
        ok = [r for r in report if r["cost_usd_per_query"] <= budget]
        pick_row = max(ok, key=lambda r: (r["accuracy"], -r["margin_z"])) if ok else report[-1]
    else:
        assert max_drop is not None
        ok = [r for r in report if r["accuracy"] >= reference - max_drop - 1e-12]
        pick_row = min(ok, key=lambda r: (r["cost_usd_per_query"], r["margin_z"])) if ok else report[-1]
    return pick_row["margin_z"], report


def _objective(budget: float | None, max_accuracy_drop: float | None) -> tuple[float | None, float | None]:
    """``(budget, max_accuracy_drop)`` checked, with the default drop of 0.01 when neither is given."""
    if budget is not None and max_accuracy_drop is not None:
        raise ConfigError("give budget= or max_accuracy_drop=, not both")
    if budget is None and max_accuracy_drop is None:
        max_accuracy_drop = 0.01
    if budget is not None and not (budget > 0 and math.isfinite(budget)):
        raise ConfigError(f"budget must be a positive number of USD per query, got {budget!r}")
    if max_accuracy_drop is not None and not (0 <= max_accuracy_drop < 1):
        raise ConfigError(f"max_accuracy_drop must be in [0, 1), got {max_accuracy_drop!r}")
    return budget, max_accuracy_drop


def fit_plan(
    table: OutcomeTable,
    *,
    budget: float | None = None,
    max_accuracy_drop: float | None = None,
    **options: Any,
) -> Plan:
    """Fit a plan on ``table``; see the module docstring and :func:`fit_plans` for ``options``.

    Give ``budget`` (USD per query: the most accurate plan within it) or
    ``max_accuracy_drop`` (the cheapest plan at most this far below the best single model's
    accuracy on ``table``; the default, 0.01, when neither is given).
    """
    return fit_plans(table, [{"budget": budget, "max_accuracy_drop": max_accuracy_drop}], **options)[0]


def fit_plans(
    table: OutcomeTable,
    objectives: Sequence[Mapping[str, float | None]],
    *,
    max_depth: int = 4,
    orderings: str = "cheapest_first",
    folds: int = 5,
    seed: int = 0,
    margin_z: float | str = "auto",
    features: Sequence[str] = STEP_FEATURES,
    l2: float = 1.0,
    alias: str | None = "cascade",
    feature: str | None = None,
    text_scorer: TextScorerSource | None = None,
    step_scorers: StepScorerTrainer | None = None,
    frontier_points: int = 12,
) -> list[Plan]:
    """One plan per objective (``{"budget": USD}`` or ``{"max_accuracy_drop": D}``), from one
    search: the cross-validated candidates and the nested margin's searches are computed once
    and read by every objective (a budget sweep costs about one fit).

    ``orderings`` is ``"cheapest_first"`` (models in order of cost, any model last) or
    ``"all"`` (every ordering; slower, and no better on the benchmark data). ``margin_z`` is
    the safety margin in standard errors, or ``"auto"`` to choose it by nested
    cross-validation. Leave the ``conf*`` features out (``features=``) when the provider
    cannot return log-probabilities.

    ``step_scorers`` (a :class:`llmspend.cascade.scorers.StepScorerExport`) makes every step's
    scorer an ONNX scorer directory that may read the text embedding too; without it the
    scorers are logistic regressions over the numeric features, held in the plan.
    """
    goals = [_objective(o.get("budget"), o.get("max_accuracy_drop")) for o in objectives]
    if not 1 <= max_depth <= 4:
        raise ConfigError(f"max_depth must be 1 to 4, got {max_depth}")
    if orderings not in ("all", "cheapest_first"):
        raise ConfigError(f"orderings must be 'all' or 'cheapest_first', got {orderings!r}")
    if margin_z != "auto" and (isinstance(margin_z, str) or not margin_z >= 0):
        raise ConfigError(f"margin_z must be a number >= 0 or 'auto', got {margin_z!r}")
    if step_scorers is not None and text_scorer is not None:
        raise ConfigError("give step_scorers= (ONNX step scorers trained here) or text_scorer= (a given scorer "
                          "as a feature of logistic step scorers), not both")

    n = len(table)
    fold_ids(n, folds, seed)  # checks there are enough rows
    feats = FeatureTable(table, features)
    if step_scorers is not None:
        step_scorers.embed(feats)
    text_spec: Mapping[str, Any] | None = None
    if text_scorer is not None:
        feats.text, text_spec = feats.score_text(text_scorer.scorer, range(n)), text_scorer.spec
    searches = _Searches(feats, _SearchOptions(max_depth, orderings, l2), folds=folds, seed=seed)
    training = {
        "source": Path(table.source).name if table.source else None,
        "sha256": table.sha256,
        "rows": n,
        "rows_dropped": table.dropped,
        "models": list(table.models),
        "features": list(feats.features),
        "max_depth": max_depth,
        "orderings": orderings,
        "seed": seed,
        "l2": l2,
        "step_scorers": {"kind": "logistic"} if step_scorers is None else {
            "kind": "onnx", **step_scorers.describe(), "text_components": TEXT_COMPONENTS,
            "text_l2_grid": ["inf" if math.isinf(v) else v for v in TEXT_L2]},
        "llmspend_version": __version__,
    }
    route = {"alias": alias, "feature": feature, "text_scorer": text_spec}
    return [
        _plan(searches, budget=b, max_drop=d, margin_z=margin_z, frontier_points=frontier_points,
              step_scorers=step_scorers, training=training, route=route)
        for b, d in goals
    ]


def _plan(
    searches: _Searches,
    *,
    budget: float | None,
    max_drop: float | None,
    margin_z: float | str,
    frontier_points: int,
    step_scorers: StepScorerTrainer | None,
    training: Mapping[str, Any],
    route: Mapping[str, Any],
) -> Plan:
    feats = searches.feats
    table = feats.table
    best = table.best_single()
    nested: list[dict[str, float]] = []
    if margin_z == "auto":
        z, nested = _nested_margin(searches, budget=budget, max_drop=max_drop, reference=best["accuracy"])
    else:
        z = float(margin_z)
    search, cands = searches.main
    chosen = _select(cands, budget=budget, max_drop=max_drop, margin_z=z)
    if chosen is None:
        cheapest = min(table.singles(), key=lambda s: s["cost_usd_per_query"])
        raise ConfigError(
            f"no chain fits a budget of ${budget:.3g} per query (with its margin); the cheapest model, "
            f"{cheapest['model']}, costs ${cheapest['cost_usd_per_query']:.3g} per query on this data"
        )
    stats = cands.stats()
    heads: dict[str, StepHead] = {}
    c, g = chosen
    steps = search.steps(cands.chains[c], g, heads)

    frontier = []
    seen: set[tuple[int, int]] = set()
    costs = table.cost.mean(axis=0)
    for b in np.geomspace(costs.min(), costs.max(), frontier_points):
        point = _select(cands, budget=float(b), max_drop=None, margin_z=z)
        if point is None or point in seen:
            continue
        seen.add(point)
        frontier.append(FrontierPoint(
            search.steps(cands.chains[point[0]], point[1], heads),
            cv_accuracy=float(stats["accuracy"][point]),
            cv_cost_usd_per_query=float(stats["cost"][point]),
            budget_usd_per_query=float(b),
        ))

    held_steps = search.held_out_steps(cands.chains[c], g)
    objective: dict[str, Any] = (
        {"mode": "budget", "budget_usd_per_query": budget}
        if budget is not None
        else {"mode": "max_accuracy_drop", "max_accuracy_drop": max_drop, "reference": best["model"]}
    )
    objective["margin_z"] = z
    objective["margin_chosen_by"] = "nested cross-validation" if margin_z == "auto" else "given"
    return Plan(
        steps=steps,
        scorers=_step_scorers(heads, feats, step_scorers),
        alias=route["alias"],
        feature=route["feature"],
        text_scorer=route["text_scorer"],
        objective=objective,
        cv={
            "folds": searches.folds,
            "accuracy": float(stats["accuracy"][c, g]),
            "cost_usd_per_query": float(stats["cost"][c, g]),
            "accuracy_diff_se": float(stats["diff_se"][c, g]),
            "calls_per_query": {s.model: float((held_steps >= k).mean()) for k, s in enumerate(steps)},
            "price_of_cost": float(_LAMBDAS[g]),
            "best_single": best,
            "singles": table.singles(),
            "candidates": int(stats["accuracy"].size),
            "nested_margins": nested,
        },
        training={
            **training,
            "chains_searched": len(cands.chains),
            "text_l2": {k: ("inf" if math.isinf(h.text_l2) else h.text_l2) for k, h in heads.items()},
        },
        frontier=tuple(frontier),
    )


def _step_scorers(
    heads: Mapping[str, StepHead], feats: FeatureTable, export: StepScorerTrainer | None
) -> dict[str, StepScorer]:
    """The plan's scorers: logistic ones held in the plan, or ONNX scorer directories."""
    if export is None:
        return {key: head.numeric for key, head in heads.items()}
    table = feats.table
    out: dict[str, StepScorer] = {}
    for key, head in heads.items():
        model, prefix = table.index(head.numeric.models[0]), [table.index(m) for m in head.numeric.after]
        out[key] = export.export(key, head, feats.step_rows(model, prefix, head.features))
    return out
