"""A cascade plan: which models to call in which order, and when to accept an answer.

A plan is plain data, saved as JSON (``llmspend cascade fit`` writes it, ``wrap(client,
cascade=plan)`` runs it). The chain's steps are tried in order; step ``k`` is accepted when its
scorer's P(correct) is at least the step's threshold; the last step is always accepted::

    {
      "format": "llmspend.cascade/1",
      "alias": "cascade",                 # requests to this model name run the plan
      "feature": null,                    # ... or every request of this tracked feature
      "chain": [
        {"model": "gpt-4o-mini", "threshold": 0.82, "scorer": "gpt-4o-mini"},
        {"model": "gpt-4o", "threshold": null, "scorer": null}
      ],
      "scorers": {"gpt-4o-mini": {"kind": "onnx", "path": "plan.scorers/00-gpt-4o-mini", "features": [...], ...}},
      "text_scorer": null,                # or {"kind": "onnx", "path": "scorer/"}
      "objective": {...}, "cv": {...}, "training": {...}, "frontier": [...]
    }

A step's scorer is either an ``llmspend.scoring`` scorer directory (``"kind": "onnx"``, what
``llmspend cascade fit`` trains; its path is relative to the plan file) or a logistic
regression held in the plan itself (``"kind": "logistic"``, ``--numeric-scorers``). Both list
the ``features`` they read and the models they judge (``models``) and come ``after``.

A threshold above 1 means the step never accepts: it is called only so that later steps can
compare their answers with its answer. ``provider`` on a step sends it through the SDK client
given for that provider (``cascade={"plan": ..., "clients": {"anthropic": ...}}``), so one plan
may mix OpenAI-compatible models and Claude; a step without one, or naming a provider no client
is given for, goes through the client the plan runs in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError
from ..scoring.features import CONF_FEATURES, STEP_FEATURES
from ..scoring.logistic import LogisticScorer

__all__ = ["Plan", "Step", "FrontierPoint", "OnnxStepScorer", "StepScorer", "load_plan", "PLAN_FORMAT", "TEXT_SCORE", "NEVER"]

PLAN_FORMAT = "llmspend.cascade/1"
#: the feature name of a text scorer's P(correct), when the plan has one
TEXT_SCORE = "text_score"
#: the threshold written for a step that never accepts
NEVER = 2.0
_KNOWN_FEATURES = frozenset(STEP_FEATURES) | {TEXT_SCORE}


@dataclass(frozen=True)
class OnnxStepScorer:
    """A step scorer in a scorer directory of its own (``llmspend.scoring``'s format, run by
    :class:`llmspend.scoring.OnnxScorer`). The plan repeats what the directory's metadata says
    the stage needs — its features, the models it judges and comes after — so a plan is
    checked without loading onnxruntime; the stage checks the directory against it."""

    path: str
    features: tuple[str, ...]
    models: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    #: whether its graph reads the (query, answer) text, or the features alone
    text: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "onnx", "path": self.path, "features": list(self.features), "models": list(self.models),
                "after": list(self.after), "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OnnxStepScorer:
        path, features = data.get("path"), data.get("features")
        if not isinstance(path, str) or not isinstance(features, list | tuple):
            raise ConfigError(f"an onnx step scorer needs a path and its features, got {dict(data)!r}")
        return cls(path=path, features=tuple(str(f) for f in features),
                   models=tuple(str(m) for m in data.get("models") or ()),
                   after=tuple(str(m) for m in data.get("after") or ()), text=bool(data.get("text", False)))

    def resolve(self, base_dir: Path | None) -> Path:
        """The directory, with a relative path read from ``base_dir`` (the plan file's)."""
        path = Path(self.path)
        return path if path.is_absolute() or base_dir is None else base_dir / path


#: what a plan step is judged by
StepScorer = LogisticScorer | OnnxStepScorer


def step_scorer_from_dict(data: Any) -> StepScorer:
    if not isinstance(data, Mapping):
        raise ConfigError(f"a plan scorer must be an object, got {data!r}")
    if data.get("kind") == "onnx":
        return OnnxStepScorer.from_dict(data)
    return LogisticScorer.from_dict(data)


@dataclass(frozen=True)
class Step:
    model: str
    #: accept when P(correct) >= threshold; ``None`` on the last step (always accepted)
    threshold: float | None = None
    #: key of the step's scorer in :attr:`Plan.scorers`; ``None`` on the last step
    scorer: str | None = None
    provider: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "threshold": self.threshold, "scorer": self.scorer}
        if self.provider is not None:
            out["provider"] = self.provider
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Step:
        if not isinstance(data, Mapping) or not isinstance(data.get("model"), str):
            raise ConfigError(f"a chain step must be an object with a model name, got {data!r}")
        threshold = data.get("threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
            raise ConfigError(f"step {data['model']!r}: threshold must be a number or null, got {threshold!r}")
        return cls(
            model=data["model"],
            threshold=None if threshold is None else float(threshold),
            scorer=data.get("scorer"),
            provider=data.get("provider"),
        )


@dataclass(frozen=True)
class FrontierPoint:
    """Another operating point the fit found (for plots): the chain it would use under
    ``budget_usd_per_query`` and its cross-validated figures."""

    steps: tuple[Step, ...]
    cv_accuracy: float
    cv_cost_usd_per_query: float
    budget_usd_per_query: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": [s.to_dict() for s in self.steps],
            "cv_accuracy": self.cv_accuracy,
            "cv_cost_usd_per_query": self.cv_cost_usd_per_query,
            "budget_usd_per_query": self.budget_usd_per_query,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrontierPoint:
        return cls(
            steps=tuple(Step.from_dict(s) for s in data.get("chain") or ()),
            cv_accuracy=float(data.get("cv_accuracy", math.nan)),
            cv_cost_usd_per_query=float(data.get("cv_cost_usd_per_query", math.nan)),
            budget_usd_per_query=data.get("budget_usd_per_query"),
        )


@dataclass(frozen=True)
class Plan:
    """See the module docstring. Build one with :func:`llmspend.cascade.fit_plan` or
    :func:`load_plan`; :meth:`with_route` changes which requests it serves."""

    steps: tuple[Step, ...]
    scorers: Mapping[str, StepScorer] = field(default_factory=dict)
    alias: str | None = "cascade"
    feature: str | None = None
    #: a text scorer whose P(correct) is the ``text_score`` feature, e.g. ``{"kind": "onnx", "path": "scorer"}``
    text_scorer: Mapping[str, Any] | None = None
    objective: Mapping[str, Any] = field(default_factory=dict)
    cv: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    frontier: tuple[FrontierPoint, ...] = ()
    #: the directory relative paths (the scorers') are read from
    base_dir: Path | None = None

    def __post_init__(self) -> None:
        for name in ("alias", "feature"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                # "" would match no request: the plan would be loaded and never run
                raise ConfigError(f"a cascade plan's {name} must be a non-empty string or null, got {value!r}")
        self.check_chain(self.steps)
        for point in self.frontier:
            self.check_chain(point.steps)

    # -- what it is --------------------------------------------------------------------
    @property
    def models(self) -> tuple[str, ...]:
        return tuple(s.model for s in self.steps)

    @property
    def needs_logprobs(self) -> bool:
        """Whether a step's scorer reads the provider's log-probability (the stage then asks
        the provider for ``logprobs``)."""
        return any(
            f in CONF_FEATURES for step in self.steps[:-1] for f in self.scorers[step.scorer or ""].features
        )

    def with_route(self, *, alias: str | None = None, feature: str | None = None) -> Plan:
        """The same plan serving requests to the model name ``alias`` and/or every request
        made inside ``llmspend.track(feature=...)``."""
        if alias is None and feature is None:
            raise ConfigError("a cascade plan needs an alias or a feature to know which requests to serve")
        return replace(self, alias=alias, feature=feature)

    def check_chain(self, steps: Sequence[Step]) -> None:
        if not steps:
            raise ConfigError("a cascade plan needs at least one step")
        if len(steps) > 1 and len({s.model for s in steps}) != len(steps):
            raise ConfigError(f"a model appears twice in the chain {[s.model for s in steps]}")
        uses_text = False
        for index, step in enumerate(steps):
            last = index == len(steps) - 1
            if last:
                if step.threshold is not None:
                    raise ConfigError(f"the last step ({step.model}) is always accepted: its threshold must be null")
                continue
            if step.threshold is None or not math.isfinite(step.threshold):
                raise ConfigError(f"step {index + 1} ({step.model}) needs a finite threshold")
            scorer = self.scorers.get(step.scorer or "")
            if scorer is None:
                raise ConfigError(f"step {index + 1} ({step.model}) names scorer {step.scorer!r}, which the plan lacks")
            unknown = set(scorer.features) - _KNOWN_FEATURES
            if unknown:
                raise ConfigError(f"scorer {step.scorer!r} reads unknown features {sorted(unknown)}")
            if scorer.models and step.model not in scorer.models:
                raise ConfigError(f"scorer {step.scorer!r} judges {list(scorer.models)}, not {step.model!r}")
            earlier = tuple(s.model for s in steps[:index])
            if scorer.after != earlier:
                raise ConfigError(
                    f"scorer {step.scorer!r} was fitted after {list(scorer.after)} but step {index + 1} "
                    f"comes after {list(earlier)}"
                )
            uses_text = uses_text or TEXT_SCORE in scorer.features
        if uses_text and self.text_scorer is None:
            raise ConfigError("a scorer reads text_score but the plan has no text_scorer")

    # -- JSON --------------------------------------------------------------------------
    @property
    def used_scorers(self) -> dict[str, StepScorer]:
        """The scorers the chain and the frontier's chains name."""
        used = {s.scorer for p in (self.steps, *(f.steps for f in self.frontier)) for s in p if s.scorer}
        return {k: v for k, v in self.scorers.items() if k in used}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "alias": self.alias,
            "feature": self.feature,
            "chain": [s.to_dict() for s in self.steps],
            "requires_logprobs": self.needs_logprobs,
            "scorers": {k: v.to_dict() for k, v in self.used_scorers.items()},
            "text_scorer": dict(self.text_scorer) if self.text_scorer is not None else None,
            "objective": dict(self.objective),
            "cv": dict(self.cv),
            "training": dict(self.training),
            "frontier": [p.to_dict() for p in self.frontier],
        }

    @classmethod
    def from_dict(cls, data: Any, *, base_dir: Path | None = None) -> Plan:
        if not isinstance(data, Mapping):
            raise ConfigError("a cascade plan must be a JSON object")
        if data.get("format") != PLAN_FORMAT:
            raise ConfigError(f"not a cascade plan of format {PLAN_FORMAT!r} (format {data.get('format')!r})")
        scorers = data.get("scorers") or {}
        if not isinstance(scorers, Mapping):
            raise ConfigError("plan scorers must be an object")
        text = data.get("text_scorer")
        if text is not None and not isinstance(text, Mapping):
            raise ConfigError("plan text_scorer must be an object or null")
        return cls(
            steps=tuple(Step.from_dict(s) for s in data.get("chain") or ()),
            scorers={str(k): step_scorer_from_dict(v) for k, v in scorers.items()},
            alias=data.get("alias"),
            feature=data.get("feature"),
            text_scorer=text,
            objective=data.get("objective") or {},
            cv=data.get("cv") or {},
            training=data.get("training") or {},
            frontier=tuple(FrontierPoint.from_dict(p) for p in data.get("frontier") or ()),
            base_dir=base_dir,
        )

    def save(self, path: str | Path) -> None:
        """Write the plan as JSON; the paths of scorer directories that lie beside it are
        written relative to it, so the plan and its scorers move together."""
        path = Path(path)
        plan = self.relative_to(path.parent)
        path.write_text(json.dumps(plan.to_dict(), indent=2) + "\n", encoding="utf-8")

    def relative_to(self, directory: Path) -> Plan:
        """The same plan with its scorer paths relative to ``directory`` where they lie under it."""
        def relative(p: Path) -> str:
            try:
                return str(p.resolve().relative_to(directory.resolve()))
            except ValueError:
                return str(p.resolve())

        scorers = {
            k: replace(v, path=relative(v.resolve(self.base_dir))) if isinstance(v, OnnxStepScorer) else v
            for k, v in self.scorers.items()
        }
        return replace(self, scorers=scorers, base_dir=directory)


def load_plan(source: str | Path | Mapping[str, Any] | Plan) -> Plan:
    """A plan from a :class:`Plan`, a parsed JSON object or a path to a plan file."""
    if isinstance(source, Plan):
        return source
    if isinstance(source, Mapping):
        return Plan.from_dict(source)
    path = Path(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no cascade plan at {path} (write one with: llmspend cascade fit --train DATA --out {path})") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    return Plan.from_dict(data, base_dir=path.parent)
