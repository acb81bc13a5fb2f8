"""The cascade stage: cheap model first, a scorer decides, escalate only when needed.

``wrap(client, cascade=PLAN)`` runs a plan (:mod:`llmspend.cascade.plan`) for every chat
request to the plan's alias (``model="cascade"`` by default), or for every request made inside
``llmspend.track(feature=...)`` when the plan names that feature. Each step sends the caller's
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
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from .._http import Request, Response, dumps
from .._version import __version__
from ..attribution import current_attribution
from ..cascade.endpoints import StepEndpoint, endpoints_from
from ..cascade.plan import TEXT_SCORE, Plan, Step, load_plan
from ..context import CallContext
from ..exceptions import ConfigError, ResponseParseError
from ..pipeline import AsyncCallNext, BuildContext, CallNext, Stage, StageSpec
from ..providers.base import ProviderAdapter
from ..providers.openai import sse_from_completion
from ..scoring.base import Scorer
from ..scoring.features import (
    STEP_FEATURES,
    check_text_scorer,
    normalise_answer,
    step_features,
    text_scorer_features,
)
from ..telemetry.recorder import warn_once

__all__ = ["CascadeStage", "CascadeRoute", "conf_from_logprobs", "sse_from_completion"]

_STEP_ATTR = "llmspend.cascade.step"


@dataclass(frozen=True)
class CascadeRoute:
    """A plan and the text scorer it uses (loaded once, at construction)."""

    plan: Plan
    text_scorer: Scorer | None = None
    #: clients for steps on other providers, by the provider name the steps give
    endpoints: Mapping[str, StepEndpoint] = field(default_factory=dict)

    @property
    def scorer_provider(self) -> str:
        return self.text_scorer.provider if self.text_scorer is not None else "python"


# -- pure helpers -----------------------------------------------------------------------
def conf_from_logprobs(choice: Mapping[str, Any]) -> float | None:
    """The mean log-probability of a chat choice's content tokens, or None when absent."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not isinstance(content, list):
        return None
    values = [t.get("logprob") for t in content if isinstance(t, Mapping)]
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(numbers) / len(numbers) if numbers else None


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or ()):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


def _unsupported(chat: Mapping[str, Any] | None) -> str | None:
    """Why a request (as an OpenAI chat body, None when it has no such form) cannot be scored."""
    if chat is None:
        return "not a chat request"
    if int(chat.get("n") or 1) != 1:
        return "n > 1"
    if chat.get("tools") or chat.get("functions"):
        return "tools"
    return None


# -- one run of a plan ------------------------------------------------------------------
@dataclass
class _Run:
    """The state of one request through a plan; the sync and async handlers drive it."""

    route: CascadeRoute
    request: Request
    span: Span
    #: the caller's request as an OpenAI chat body (what is scored, and translated for steps on
    #: another provider), None when it has no such form
    chat: dict[str, Any] | None = None
    #: index of the step to send next
    step: int = 0
    tokens: list[tuple[str, ...]] = field(default_factory=list)
    costs: list[float | None] = field(default_factory=list)
    failed: int = 0
    scorer_s: float = 0.0

    @property
    def plan(self) -> Plan:
        return self.route.plan

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.plan.steps

    @property
    def is_last(self) -> bool:
        return self.step == len(self.steps) - 1

    @property
    def caller(self) -> ProviderAdapter:
        adapter = self.request.adapter
        assert adapter is not None  # a plan runs only for requests its adapter read
        return adapter

    @property
    def endpoint(self) -> StepEndpoint | None:
        """Where the current step goes when not through the caller's own client."""
        provider = self.steps[self.step].provider
        return self.route.endpoints.get(provider) if provider is not None else None

    @property
    def target(self) -> ProviderAdapter:
        """The adapter of the API the current step is sent to."""
        endpoint = self.endpoint
        return self.caller if endpoint is None else endpoint.adapter

    @property
    def converts(self) -> bool:
        """Whether the current step answers in another API's format than the caller's."""
        return self.target.name != self.caller.name

    @property
    def whole(self) -> bool:
        """Whether the current step is asked for a whole answer, not a stream: a candidate (to
        be scored), or a step whose answer must be translated for the caller."""
        return not self.is_last or self.converts

    def foreign_body(self, endpoint: StepEndpoint) -> dict[str, Any]:
        """The current step's request body for another client's API: translated from the
        caller's (or, for the same API on another account or host, as the caller wrote it)."""
        model = self.steps[self.step].model
        if self.chat is None:
            call = self.request.call
            raise ConfigError(
                f"cascade {self.plan.alias or self.plan.feature!r}: step {model!r} runs on {endpoint.provider} through "
                f"another client, which takes chat requests only ({call.endpoint if call else 'unknown'} is not one)"
            )
        if self.converts:
            body = endpoint.adapter.from_openai_chat_request(self.chat, model, endpoint.defaults)
        else:
            body = {**self.request.json(), "model": model}
        if self.whole:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    def step_request(self, built: Request | None = None) -> Request:
        """The caller's request for the current step's model (``built`` by another client's
        endpoint for a step there), with a context of its own so that each step's span and cost
        stay apart."""
        out = self.caller.with_model(self.request, self.steps[self.step].model) if built is None else built
        if self.whole:
            body = dict(out.json())
            changed = body.pop("stream", None) is not None
            changed = body.pop("stream_options", None) is not None or changed
            call = out.call
            if not self.is_last and self.plan.needs_logprobs and not body.get("logprobs") and (
                    call is not None and call.endpoint == "chat.completions"):
                body["logprobs"] = True  # only chat completions have them
                changed = True
            if changed:
                out = out.replace(json_body=body)
        out.context = CallContext()
        out.context.set_attribute(_STEP_ATTR, self.step + 1)
        return out

    def record_cost(self, context: CallContext | None, response: Response | None) -> None:
        """Add a step's cost: what telemetry priced, ``None`` if unknown, and 0 for a step
        that failed (providers do not bill errors)."""
        if context is None or response is None or not response.is_success:
            self.costs.append(0.0)
            self.failed += 1
            return
        cost = context.cost
        self.costs.append(cost.total_usd if cost is not None else None)

    def escalate(self, reason: str, exc: BaseException | None = None, *, to_last: bool = False) -> None:
        self.span.set_attribute("llmspend.cascade.escalation_reason", reason)
        if exc is not None:
            self.span.set_attribute("llmspend.cascade.error", f"{type(exc).__name__}: {exc}"[:300])
            warn_once(("cascade", reason, type(exc).__name__),
                      "llmspend: cascade step failed (%s: %s); escalating, the call goes on", reason, exc)
        self.step = len(self.steps) - 1 if to_last else self.step + 1

    def judge(self, response: Response) -> Response | None:
        """Score the current (non-final) step's read response: the response to give the
        caller when accepted, else None (and the run moves on)."""
        if not response.is_success:
            self.escalate(f"http {response.status_code} from {self.steps[self.step].model}")
            return None
        try:
            data, completion = self._read(response)
            choice = completion["choices"][0]
            answer = choice["message"].get("content") or ""
            if not isinstance(answer, str):
                raise ResponseParseError("content is not text")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, ResponseParseError) as exc:
            self.escalate("unreadable answer", exc)
            return None
        started = time.perf_counter()
        try:
            score = self._score(answer, conf_from_logprobs(choice))
        except Exception as exc:  # a scorer fault never fails the call: fail towards quality
            self.scorer_s += time.perf_counter() - started
            self.escalate("scorer error", exc, to_last=True)
            return None
        self.scorer_s += time.perf_counter() - started
        step = self.steps[self.step]
        threshold = float(step.threshold if step.threshold is not None else math.inf)
        accepted = score >= threshold
        self.span.add_event("llmspend.cascade.step", {
            "llmspend.cascade.step": self.step + 1,
            "gen_ai.request.model": step.model,
            "llmspend.cascade.score": score,
            "llmspend.cascade.threshold": threshold,
            "llmspend.cascade.accepted": accepted,
        })
        if accepted:
            return self._deliver(response, data, completion)
        self.step += 1
        return None

    def _read(self, response: Response) -> tuple[dict[str, Any], dict[str, Any]]:
        """A step's answer as its API gave it and as an OpenAI chat completion."""
        data = json.loads(response.content or b"")
        if not isinstance(data, dict):
            raise ResponseParseError("the answer is not a JSON object")
        return data, self.target.to_openai_chat_response(data)

    def _score(self, answer: str, conf: float | None) -> float:
        step = self.steps[self.step]
        tokens = normalise_answer(answer)
        values = dict(zip(STEP_FEATURES, step_features(tokens, conf, self.tokens)))
        self.tokens.append(tokens)
        scorer = self.plan.scorers[step.scorer or ""]
        if TEXT_SCORE in scorer.features:
            text_scorer = self.route.text_scorer
            assert text_scorer is not None
            query = _last_user_text(self.chat or {})
            features = text_scorer_features(text_scorer, [(tokens, conf)])
            (values[TEXT_SCORE],) = text_scorer.score([query], [answer], model=step.model, features=features)
        score = scorer.probability([values[f] for f in scorer.features])
        if not math.isfinite(score):
            raise ValueError(f"scorer gave {score!r}")
        return score

    def _deliver(self, response: Response, data: dict[str, Any], completion: dict[str, Any]) -> Response:
        """The accepted answer as the caller asked for it: in its API's format (translated from
        another's when the step ran elsewhere), streamed if it asked for a stream."""
        caller, call = self.caller, self.request.call
        assert call is not None
        answer = caller.from_openai_chat_response(completion) if self.converts else data
        if not self.request.json().get("logprobs") and self.plan.needs_logprobs:
            for choice in answer.get("choices") or ():
                choice["logprobs"] = None
        if call.stream:
            headers = response.headers.without_body_framing().set("content-type", "text/event-stream; charset=utf-8")
            return Response(200, headers, content=caller.stream_from_answer(call, answer))
        return response.with_content(dumps(answer))

    def deliver_last(self, response: Response, context: CallContext) -> Response:
        """The last step's read answer, from another API: translated for the caller (an error
        or an answer that cannot be read passes on unchanged)."""
        self.record_cost(context, response)
        if response.is_success:
            try:
                data, completion = self._read(response)
                response = self._deliver(response, data, completion)
            except (ValueError, KeyError, IndexError, TypeError, AttributeError, ResponseParseError) as exc:
                warn_once(("cascade", "untranslatable", self.target.name),
                          "llmspend: cascade could not translate a %s answer (%s); passed on unchanged", self.target.name, exc)
        self.finish()
        return response

    def finish(self, error: BaseException | None = None) -> None:
        span, accepted = self.span, self.step
        span.set_attribute("llmspend.cascade.accepted_step", accepted + 1)
        span.set_attribute("llmspend.cascade.accepted_model", self.steps[accepted].model)
        span.set_attribute("llmspend.cascade.steps_called", len(self.costs))
        if self.failed:
            span.set_attribute("llmspend.cascade.failed_steps", self.failed)
        span.set_attribute("llmspend.cascade.scorer_ms", self.scorer_s * 1000)
        if self.costs and all(c is not None for c in self.costs):
            span.set_attribute("llmspend.cascade.cost_usd", sum(c for c in self.costs if c is not None))
            span.set_attribute("llmspend.cascade.cost_status", "ok")
        else:
            span.set_attribute("llmspend.cascade.cost_status", "unknown")
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
        span.end()


class _FinishingStream:
    """The last step's stream, passed through; the parent span ends when it does."""

    def __init__(self, response: Response, run: _Run, context: CallContext) -> None:
        self._response, self._run, self._context = response, run, context
        self._done = False

    def _finish(self, error: BaseException | None = None) -> None:
        if not self._done:
            self._done = True
            self._run.record_cost(self._context, self._response)
            self._run.finish(error)

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._response.iter_bytes()
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish()

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            self._finish()


class _AsyncFinishingStream(_FinishingStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish()

    async def aclose(self) -> None:
        try:
            await self._response.aclose()
        finally:
            self._finish()


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
                if feature == route.plan.feature:
                    return route
        return None

    @contextmanager
    def _current(self, run: _Run) -> Iterator[None]:
        with trace.use_span(run.span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield

    def _start(self, route: CascadeRoute, request: Request) -> _Run:
        plan = route.plan
        call = request.call
        attrs: dict[str, Any] = {
            "llmspend.cascade.alias": plan.alias or "",
            "llmspend.cascade.chain": plan.models,
            "llmspend.scorer.provider": route.scorer_provider,
        }
        # No gen_ai.operation.name: the parent is not an LLM call (the steps are), so span
        # readers that count calls (llmspend report) skip it.
        if call is not None and call.model:
            attrs["llmspend.cascade.requested_model"] = call.model
        if plan.feature is not None:
            attrs["llmspend.cascade.feature"] = plan.feature
        attrs.update(current_attribution().span_attributes())
        span = self.tracer.start_span(f"cascade {plan.alias or plan.feature}", kind=SpanKind.INTERNAL, attributes=attrs)
        run = _Run(route, request, span)
        if call is not None and request.adapter is not None:
            run.chat = request.adapter.to_openai_chat_request(call)
        reason = _unsupported(run.chat)
        if reason is not None:
            run.escalate(f"unsupported request ({reason})", to_last=True)
        return run

    @staticmethod
    def _step(run: _Run) -> Request:
        endpoint = run.endpoint
        built = endpoint.build(run.foreign_body(endpoint), run.request.headers) if endpoint is not None else None
        return run.step_request(built)

    @staticmethod
    async def _astep(run: _Run) -> Request:
        endpoint = run.endpoint
        built = await endpoint.abuild(run.foreign_body(endpoint), run.request.headers) if endpoint is not None else None
        return run.step_request(built)

    def _last(self, run: _Run, response: Response, context: CallContext, *, is_async: bool) -> Response:
        """The last step's response; with a stream, the parent span ends with it."""
        if response.stream is not None and response.content is None:
            wrapped = _AsyncFinishingStream(response, run, context) if is_async else _FinishingStream(response, run, context)
            return response.with_stream(wrapped)
        run.record_cost(context, response)
        run.finish()
        return response

    def handle(self, request: Request, call_next: CallNext) -> Response:
        route = self.route_for(request)
        if route is None:
            return call_next(request)
        run = self._start(route, request)
        try:
            while not run.is_last:
                try:  # a request that cannot even be built (another client's auth) fails its step
                    step_request = self._step(run)
                    with self._current(run):
                        response = call_next(step_request)
                        response.read()
                except Exception as exc:
                    run.record_cost(None, None)
                    run.escalate(f"{type(exc).__name__} from {run.steps[run.step].model}", exc)
                    continue
                run.record_cost(step_request.context, response)
                accepted = run.judge(response)
                if accepted is not None:
                    run.finish()
                    return accepted
            step_request = self._step(run)
            with self._current(run):
                response = call_next(step_request)
                if run.converts:
                    response.read()
        except BaseException as exc:
            run.finish(exc)
            raise
        if run.converts:
            return run.deliver_last(response, step_request.context)
        return self._last(run, response, step_request.context, is_async=False)

    async def ahandle(self, request: Request, call_next: AsyncCallNext) -> Response:
        route = self.route_for(request)
        if route is None:
            return await call_next(request)
        run = self._start(route, request)
        try:
            while not run.is_last:
                try:  # a request that cannot even be built (another client's auth) fails its step
                    step_request = await self._astep(run)
                    with self._current(run):
                        response = await call_next(step_request)
                        await response.aread()
                except Exception as exc:
                    run.record_cost(None, None)
                    run.escalate(f"{type(exc).__name__} from {run.steps[run.step].model}", exc)
                    continue
                run.record_cost(step_request.context, response)
                if route.text_scorer is not None:  # a model scorer may take milliseconds: off the loop
                    accepted = await asyncio.to_thread(run.judge, response)
                else:
                    accepted = run.judge(response)
                if accepted is not None:
                    run.finish()
                    return accepted
            step_request = await self._astep(run)
            with self._current(run):
                response = await call_next(step_request)
                if run.converts:
                    await response.aread()
        except BaseException as exc:
            run.finish(exc)
            raise
        if run.converts:
            return run.deliver_last(response, step_request.context)
        return self._last(run, response, step_request.context, is_async=True)


# -- construction from wrap(cascade=...) --------------------------------------------------
def _route(value: Any, *, is_async: bool = False) -> CascadeRoute:
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
        from ..cascade.scorers import load_text_scorer

        text_scorer = load_text_scorer(plan.text_scorer, plan.base_dir)
    return CascadeRoute(plan, text_scorer, endpoints)


def _check_providers(route: CascadeRoute, adapters: Sequence[ProviderAdapter]) -> None:
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


def _build(value: Any, context: BuildContext) -> Stage:
    if isinstance(value, CascadeStage):
        return value
    items = list(value) if isinstance(value, list | tuple) else [value]
    tracer = trace.get_tracer("llmspend", __version__, tracer_provider=context.tracer_provider)
    routes = [_route(v, is_async=context.is_async) for v in items]
    for route in routes:
        _check_providers(route, context.adapters)
    return CascadeStage(routes, tracer=tracer)


SPEC = StageSpec(
    option="cascade",
    order=100,
    build=_build,
    doc="a cascade plan (or a list): cheap model first, escalate when its answer scores low",
)
