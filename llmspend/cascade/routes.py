"""A cascade stage's configuration: one route per plan, built from ``wrap(cascade=...)``.

A :class:`CascadeRoute` holds what a plan needs at run time, loaded once when the client is
wrapped: the plan, its text scorer, its ONNX step scorers and the SDK clients
(:mod:`.endpoints`) of steps on other providers. :func:`route_from` reads the forms
``cascade=`` takes; :func:`check_providers` refuses at wrap() a step the wrapped client could
not send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError
from ..providers.base import ProviderAdapter
from ..scoring.base import Scorer
from .endpoints import StepEndpoint, endpoints_from
from .plan import OnnxStepScorer, Plan, load_plan

__all__ = ["CascadeRoute", "route_from", "check_providers"]


@dataclass(frozen=True)
class CascadeRoute:
    """A plan, the text scorer it uses and its ONNX step scorers by key (loaded once, at
    construction)."""

    plan: Plan
    text_scorer: Scorer | None = None
    #: clients for steps on other providers, by the provider name the steps give
    endpoints: Mapping[str, StepEndpoint] = field(default_factory=dict)
    step_scorers: Mapping[str, Scorer] = field(default_factory=dict)

    @property
    def scorer_provider(self) -> str:
        if self.text_scorer is not None:
            return self.text_scorer.provider
        return next((s.provider for s in self.step_scorers.values()), "python")

    @property
    def reads_text(self) -> bool:
        """Whether scoring runs a text encoder (milliseconds: async clients score off the loop)."""
        return self.text_scorer is not None or any(
            isinstance(s, OnnxStepScorer) and s.text for s in self.plan.scorers.values()
        )


def route_from(value: Any, *, is_async: bool = False) -> CascadeRoute:
    """A route from one ``cascade=`` value: a plan, its file or JSON, a dict of options with
    ``"plan"``, or a route already built. Scorers load here, so a bad plan fails at wrap()."""
    if isinstance(value, CascadeRoute):
        return value
    text_scorer: Scorer | None = None
    endpoints: dict[str, StepEndpoint] = {}
    if isinstance(value, Mapping) and "plan" in value:
        unknown = set(value) - {"plan", "alias", "feature", "text_scorer", "clients"}
        if unknown:
            raise ConfigError(f"cascade= options: unknown {sorted(unknown)}; known: plan, alias, feature, text_scorer, clients")
        if value.get("clients") is not None:
            endpoints = endpoints_from(value["clients"], caller_is_async=is_async)
        plan = load_plan(value["plan"])
        if value.get("alias") is not None or value.get("feature") is not None:
            plan = plan.with_route(alias=value.get("alias"), feature=value.get("feature"))
        given = value.get("text_scorer")
        if given is not None and not isinstance(given, Scorer):
            raise ConfigError(f"cascade text_scorer= takes a Scorer (models, provider, score()), got {type(given).__name__}")
        text_scorer = given
    elif isinstance(value, Plan | Mapping | str | Path):
        plan = load_plan(value)
    else:
        raise ConfigError(
            "cascade= takes a plan (llmspend.cascade.Plan, a plan file path, or its JSON as a dict), "
            f"a dict {{'plan': ..., 'alias': ..., 'feature': ..., 'text_scorer': ..., 'clients': ...}}, or a list of these; "
            f"got {type(value).__name__}"
        )
    if text_scorer is None and plan.text_scorer is not None:
        from .scorers import load_text_scorer

        text_scorer = load_text_scorer(plan.text_scorer, plan.base_dir)
    step_scorers: dict[str, Scorer] = {}
    if any(isinstance(s, OnnxStepScorer) for s in plan.scorers.values()):
        from .scorers import load_step_scorers

        step_scorers = load_step_scorers(plan)
    return CascadeRoute(plan, text_scorer, endpoints, step_scorers)


def check_providers(route: CascadeRoute, adapters: Sequence[ProviderAdapter]) -> None:
    """A step that names another API than the wrapped client's, with no client for it, would
    send a Claude model to OpenAI (or the reverse): say so at wrap() instead."""
    if len(adapters) != 1:
        return  # a plain httpx client: its API is known per request
    own = adapters[0]
    from ..plugins import provider_adapters

    apis = {a.name for a in provider_adapters()}
    for step in route.plan.steps:
        other = step.provider
        if other is not None and other not in route.endpoints and other in apis and other not in (own.name, own.provider):
            raise ConfigError(
                f"cascade step {step.model!r} runs on {other}, which the wrapped {own.name} client does not speak; "
                f"give a client for it: cascade={{'plan': ..., 'clients': {{{other!r}: <a {other} SDK client>}}}}"
            )
