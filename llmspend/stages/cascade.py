"""The cascade stage: cheap model first, a scorer decides, escalate only when needed.

``wrap(client, cascade=PLAN)`` runs a plan (:mod:`llmspend.cascade.plan`) for every request
to the plan's alias (``model="cascade"`` by default), or for every chat request made inside
``llmspend.track(feature=...)`` when the plan names that feature (its other requests, e.g.
embeddings, pass untouched). Each step sends the caller's
request with the step's model; its answer is scored and accepted when the score reaches the
step's threshold, else the next step runs; the last step is always accepted. The caller gets
one normal response, the accepted model's (its ``model`` field names that model).

Mixed providers: a step whose ``provider`` names one of the ``clients`` given with the plan
(``cascade={"plan": ..., "clients": {"anthropic": anthropic.Anthropic()}}``) is built by that
SDK client (its URL, API version and credentials; :mod:`llmspend.cascade.endpoints`) in its
API's format, translated through OpenAI chat-completions JSON by the two provider adapters,
and sent down the rest of this pipeline, read by that provider's adapter: its own span, priced
as that provider's call, with retries, cache and budgets as for any call. Its answer is
translated back into the caller's format before it is scored and returned.

Telemetry: the stage sits outside the telemetry stage, so every step is its own CLIENT span;
the stage adds an INTERNAL parent span ``cascade {alias}`` with the total USD of the steps
(``llmspend.cascade.cost_usd``, absent with ``llmspend.cascade.cost_status=unknown`` when a
step's cost is unknown), the scorer time, ``llmspend.cascade.accepted_step`` (1-based) and one
``llmspend.cascade.step`` event per scored step. The parent carries no ``gen_ai.usage.cost``,
so backends that add up that attribute do not count the steps twice.

Streaming: candidate steps are sent without streaming (an answer must be whole to be scored).
An accepted candidate reaches a streaming caller as a stream synthesised from the buffered
answer, in the caller's API's stream format (its adapter's ``stream_from_answer``); when the
cascade reaches its last step, that step is sent as the caller asked, so its stream passes
through live, unless it runs on another API, whose answer is read whole and re-told. The
trade-off: a streaming caller gets no first token before a candidate is judged.

Log-probabilities: when a step's scorer reads ``conf*`` features, candidate steps ask for
``logprobs: true``; the returned ``logprobs`` are removed again unless the caller asked for them.

Failing open, towards quality: a candidate that errors (HTTP error or exception) escalates to
the next step; a scorer that fails escalates to the last step. Both are recorded on the parent
span (``llmspend.cascade.escalation_reason``, ``llmspend.cascade.error``) and logged once. The
last step's own error reaches the caller unchanged. Requests a plan cannot score (without a
chat form, ``n`` > 1, tools) go to the last step only.

Budgets: every step passes the budget stage (order 250) as a call of its own. A candidate it
refuses is skipped like a failed one. When it refuses the last step after an earlier answer was
bought, that answer (the latest bought and read) is served instead of the refusal, since it is
paid for: ``llmspend.cascade.escalation_refused`` names the budget, ``accepted_step`` the step
served; the refused step was never sent and counts $0. With nothing bought, the refusal
(:class:`~llmspend.BudgetExceededError`) reaches the caller as for any call. A ledger that
cannot be reached to reserve the last step (:class:`~llmspend.LedgerError`) is treated the same
way: the answer bought is served (``escalation_refused = "ledger error"``). A budget's
``fallback_model`` never replaces a step (it would buy a step twice or break the plan's order):
the run marks its steps' requests (``budget.FIXED_MODEL``) and the budget refuses them instead.

Layout: this module holds the stage (which requests run a plan, and the sync and async loops
over its steps) and its ``SPEC``; :mod:`llmspend.cascade.routes` the configuration
(:class:`CascadeRoute`, read from ``cascade=``); :mod:`llmspend.cascade.run` one run of a plan
(building each step's request, judging answers, escalating, delivering, the parent span).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Tracer

from .._http import Request, Response
from .._version import __version__
from ..attribution import current_attribution
from ..cascade.plan import TEXT_SCORE, OnnxStepScorer
from ..cascade.routes import CascadeRoute, check_providers, route_from
from ..cascade.run import PlanRun, conf_from_logprobs
from ..exceptions import BudgetExceededError, ConfigError, LedgerError
from ..pipeline import AsyncCallNext, BuildContext, CallNext, Stage, StageSpec
from ..providers.openai import sse_from_completion
from ..scoring.features import check_text_scorer

__all__ = ["CascadeStage", "CascadeRoute", "conf_from_logprobs", "sse_from_completion"]


class CascadeStage(Stage):
    """See the module docstring."""

    name = "cascade"

    def __init__(self, routes: Sequence[CascadeRoute], *, tracer: Tracer | None = None) -> None:
        if not routes:
            raise ConfigError("cascade= needs at least one plan")
        for route in routes:
            named = {s.provider for s in route.plan.steps if s.provider is not None}
            unused = sorted(set(route.endpoints) - named)
            if unused:
                raise ConfigError(
                    f"cascade clients {unused}: no step of the plan runs on them (its steps name "
                    f"{sorted(named) or 'no provider'}); set \"provider\" on those steps, e.g. "
                    '{"model": "claude-haiku-4-5", "provider": "anthropic"}'
                )
        aliases = [r.plan.alias for r in routes if r.plan.alias]
        if len(set(aliases)) != len(aliases):
            raise ConfigError(f"two cascade plans share an alias: {aliases}")
        for route in routes:
            if route.plan.alias is None and route.plan.feature is None:
                raise ConfigError("a cascade plan needs an alias or a feature (Plan.with_route) to know which requests to run")
            uses_text = any(TEXT_SCORE in s.features for s in route.plan.scorers.values())
            if uses_text and route.text_scorer is None:
                raise ConfigError("the plan's scorers read text_score: give its text scorer (text_scorer=) or a plan that names one")
            if uses_text:
                check_text_scorer(route.text_scorer, route.plan.models[:-1])
            unloaded = [s.scorer for s in route.plan.steps[:-1] if s.scorer not in route.step_scorers
                        and isinstance(route.plan.scorers.get(s.scorer or ""), OnnxStepScorer)]
            if unloaded:
                raise ConfigError(f"the plan's ONNX step scorers {unloaded} are not loaded: give the plan itself "
                                  "(or llmspend.cascade.scorers.load_step_scorers(plan) as step_scorers=)")
        self.routes = tuple(routes)
        self.tracer = tracer or trace.get_tracer("llmspend", __version__)

    def route_for(self, request: Request) -> CascadeRoute | None:
        call = request.call
        if call is None:
            return None
        feature = None
        for route in self.routes:
            if route.plan.alias is not None and call.model == route.plan.alias:
                return route
            if route.plan.feature is not None:
                feature = feature or current_attribution().feature
                # The feature's chat requests only: its embeddings or completions name models
                # of their own, which a chain of chat models cannot stand in for.
                if feature == route.plan.feature and _is_chat(request):
                    return route
        return None

    def handle(self, request: Request, call_next: CallNext) -> Response:
        route = self.route_for(request)
        if route is None:
            return call_next(request)
        run = PlanRun.start(route, request, self.tracer)
        try:
            while not run.is_last:
                sent: Request | None = None
                try:  # a request that cannot even be built (another client's auth) fails its step
                    step_request = sent = run.build_step()
                    with run.in_span():
                        response = call_next(step_request)
                        response.read()
                except Exception as exc:
                    run.fail_step(exc, sent.context if sent is not None else None)
                    continue
                run.record_cost(step_request.context, response)
                accepted = run.judge(response)
                if accepted is not None:
                    run.finish()
                    return accepted
            step_request = run.build_step()
            with run.in_span():
                try:
                    response = call_next(step_request)
                except (BudgetExceededError, LedgerError) as refusal:
                    served = run.serve_bought(refusal)
                    if served is None:
                        raise
                    return served
                if run.converts:
                    response.read()
        except BaseException as exc:
            run.finish(exc)
            raise
        return run.deliver_last(response, step_request.context, is_async=False)

    async def ahandle(self, request: Request, call_next: AsyncCallNext) -> Response:
        route = self.route_for(request)
        if route is None:
            return await call_next(request)
        run = PlanRun.start(route, request, self.tracer)
        try:
            while not run.is_last:
                sent: Request | None = None
                try:  # a request that cannot even be built (another client's auth) fails its step
                    step_request = sent = await run.abuild_step()
                    with run.in_span():
                        response = await call_next(step_request)
                        await response.aread()
                except Exception as exc:
                    run.fail_step(exc, sent.context if sent is not None else None)
                    continue
                run.record_cost(step_request.context, response)
                if route.reads_text:  # a text encoder may take milliseconds: off the loop
                    accepted = await asyncio.to_thread(run.judge, response)
                else:
                    accepted = run.judge(response)
                if accepted is not None:
                    run.finish()
                    return accepted
            step_request = await run.abuild_step()
            with run.in_span():
                try:
                    response = await call_next(step_request)
                except (BudgetExceededError, LedgerError) as refusal:
                    served = run.serve_bought(refusal)
                    if served is None:
                        raise
                    return served
                if run.converts:
                    await response.aread()
        except BaseException as exc:
            run.finish(exc)
            raise
        return run.deliver_last(response, step_request.context, is_async=True)


def _is_chat(request: Request) -> bool:
    adapter, call = request.adapter, request.call
    return adapter is not None and call is not None and adapter.to_openai_chat_request(call) is not None


# -- construction from wrap(cascade=...) --------------------------------------------------
def _build(value: Any, context: BuildContext) -> Stage:
    if isinstance(value, CascadeStage):
        return value
    items = list(value) if isinstance(value, list | tuple) else [value]
    tracer = trace.get_tracer("llmspend", __version__, tracer_provider=context.tracer_provider)
    routes = [route_from(v, is_async=context.is_async) for v in items]
    for route in routes:
        check_providers(route, context.adapters)
    return CascadeStage(routes, tracer=tracer)


SPEC = StageSpec(
    option="cascade",
    order=100,
    build=_build,
    doc="a cascade plan (or a list): cheap model first, escalate when its answer scores low",
)
