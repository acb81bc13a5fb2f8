"""One run of a cascade plan: the state of one request as it goes through the plan's steps.

The cascade stage (:mod:`llmspend.stages.cascade`) starts a :class:`PlanRun` per request and
drives it, sync or async; the run holds everything between: which step is next, each step's
request (the caller's, or built by another provider's client), judging a candidate's answer
(its features, its scorer, the threshold), escalation when a step fails, delivering the
accepted answer in the caller's format (streamed when asked), and the parent span's
attributes, which it ends. Nothing here does I/O of its own: the stage sends every request.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from .._http import Request, Response, dumps
from .._redact import CREDENTIAL_HEADER_NAMES, error_text
from ..attribution import current_attribution
from ..context import CallContext
from ..exceptions import BudgetExceededError, ConfigError, LedgerError, ResponseParseError
from ..providers.base import ProviderAdapter
from ..scoring.features import STEP_FEATURES, normalise_answer, step_features, text_scorer_features
from ..stages.budget import FIXED_MODEL
from ..telemetry.recorder import end_span, mark_sdk_parent, start_span, warn_once
from .endpoints import StepEndpoint
from .plan import TEXT_SCORE, OnnxStepScorer, Plan, Step
from .routes import CascadeRoute

__all__ = ["PlanRun", "conf_from_logprobs"]

_STEP_ATTR = "llmspend.cascade.step"


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
@dataclass(frozen=True)
class _Bought:
    """A step's answer that was paid for and read, kept in case no later step can be sent."""

    step: int
    response: Response
    data: dict[str, Any]
    completion: dict[str, Any]
    #: whether it came in another API's format than the caller's
    converts: bool


@dataclass
class PlanRun:
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
    #: credential header values of the steps' requests, kept out of recorded error messages
    secrets: set[str] = field(default_factory=set)
    #: the latest answer bought and read, served if a budget refuses the last step
    bought: _Bought | None = None

    @classmethod
    def start(cls, route: CascadeRoute, request: Request, tracer: Tracer) -> PlanRun:
        """A run of ``route``'s plan for ``request``, its parent span started."""
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
        # Under an SDK's own span (anthropic's), the step spans are not its children: mark it
        # here, or a report over both would count the SDK's span as one more call.
        mark_sdk_parent(trace.get_current_span())
        span = start_span(tracer, f"cascade {plan.alias or plan.feature}", kind=SpanKind.INTERNAL, attributes=attrs)
        run = cls(route, request, span)
        if call is not None and request.adapter is not None:
            run.chat = request.adapter.to_openai_chat_request(call)
        reason = _unsupported(run.chat)
        if reason is not None:
            run.escalate(f"unsupported request ({reason})", to_last=True)
        return run

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

    @contextmanager
    def in_span(self) -> Iterator[None]:
        """The parent span as the current one, so that each step's CLIENT span is its child."""
        with trace.use_span(self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield

    def build_step(self) -> Request:
        """The current step's request (built by another provider's client when it runs there)."""
        endpoint = self.endpoint
        built = endpoint.build(self.foreign_body(endpoint), self.request.headers) if endpoint is not None else None
        return self.step_request(built)

    async def abuild_step(self) -> Request:
        endpoint = self.endpoint
        built = await endpoint.abuild(self.foreign_body(endpoint), self.request.headers) if endpoint is not None else None
        return self.step_request(built)

    def step_request(self, built: Request | None = None) -> Request:
        """The caller's request for the current step's model (``built`` by another client's
        endpoint for a step there), with a context of its own so that each step's span and cost
        stay apart."""
        out = self.caller.with_model(self.request, self.steps[self.step].model) if built is None else built
        self.secrets.update(v for k, v in out.headers.items() if k.lower() in CREDENTIAL_HEADER_NAMES)
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
        # A budget refuses a step rather than send its fallback_model: this run decides what a
        # refused step means (skip it, or serve the answer already bought)
        out.context.extra[FIXED_MODEL] = True
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
            # The message may quote a header value (a key with a stray newline): redacted
            text = error_text(exc, self.secrets)
            self.span.set_attribute("llmspend.cascade.error", text)
            warn_once(("cascade", reason, type(exc).__name__),
                      "llmspend: cascade step failed (%s: %s); escalating, the call goes on", reason, text)
        self.step = len(self.steps) - 1 if to_last else self.step + 1

    def fail_step(self, exc: Exception, context: CallContext | None = None) -> None:
        """A candidate step that could not be built, sent or read (``context``: its own, when
        it was sent): the next one runs. It cost nothing, unless the provider answered and the
        answer could not be read: then it was billed and its cost is unknown."""
        cost = context.cost if context is not None else None
        if cost is not None and cost.total_usd is None:
            self.costs.append(None)
            self.failed += 1
        else:
            self.record_cost(None, None)
        self.escalate(f"{type(exc).__name__} from {self.steps[self.step].model}", exc)

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
        self.bought = _Bought(self.step, response, data, completion, self.converts)
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
            try:
                return self._deliver(response, data, completion, converts=self.converts)
            except Exception as exc:  # an answer of a shape it cannot be delivered in: the next step
                self.escalate("undeliverable answer", exc)
                return None
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
        if isinstance(scorer, OnnxStepScorer):
            query = _last_user_text(self.request.json())
            (score,) = self.route.step_scorers[step.scorer or ""].score(
                [query], [answer], model=step.model, features=[[values[f] for f in scorer.features]])
        else:
            score = scorer.probability([values[f] for f in scorer.features])
        if not math.isfinite(score):
            raise ValueError(f"scorer gave {score!r}")
        return score

    def _deliver(self, response: Response, data: dict[str, Any], completion: dict[str, Any], *,
                 converts: bool) -> Response:
        """The accepted answer as the caller asked for it: in its API's format (translated from
        another's when the step ran elsewhere: ``converts``), streamed if it asked for a stream."""
        caller, call = self.caller, self.request.call
        assert call is not None
        answer = caller.from_openai_chat_response(completion) if converts else data
        if not self.request.json().get("logprobs") and self.plan.needs_logprobs:
            for choice in answer.get("choices") or ():
                if isinstance(choice, dict):
                    choice["logprobs"] = None
        if call.stream:
            headers = response.headers.without_body_framing().set("content-type", "text/event-stream; charset=utf-8")
            return Response(200, headers, content=caller.stream_from_answer(call, answer))
        return response.with_content(dumps(answer))

    def serve_bought(self, refusal: BudgetExceededError | LedgerError) -> Response | None:
        """A budget refused the last step (or its ledger could not be reached to reserve it):
        the latest answer already bought, delivered instead (the run ends with it as the
        accepted step), or ``None`` when there is none to serve, and the refusal reaches the
        caller as for any refused call. The refused step was never sent: it costs nothing."""
        bought = self.bought
        if bought is None:
            return None
        try:
            response = self._deliver(bought.response, bought.data, bought.completion, converts=bought.converts)
        except Exception:  # an answer of a shape it cannot be delivered in: nothing to serve
            return None
        self.record_cost(None, None)
        if isinstance(refusal, BudgetExceededError):
            self.span.set_attribute("llmspend.cascade.escalation_refused", refusal.budget)
        else:  # no budget refused it: the ledger that would have held its reservation failed
            self.span.set_attribute("llmspend.cascade.escalation_refused", "ledger error")
            self.span.set_attribute("llmspend.cascade.error", error_text(refusal, self.secrets))
        self.step = bought.step
        self.finish()
        return response

    def deliver_last(self, response: Response, context: CallContext, *, is_async: bool) -> Response:
        """The last step's response for the caller; the parent span ends with it, or with its
        stream when one passes through."""
        if self.converts:
            return self._translate_last(response, context)
        if response.stream is not None and response.content is None:
            wrapped = _AsyncFinishingStream(response, self, context) if is_async else _FinishingStream(response, self, context)
            return response.with_stream(wrapped)
        self.record_cost(context, response)
        self.finish()
        return response

    def _translate_last(self, response: Response, context: CallContext) -> Response:
        """The last step's read answer, from another API: translated for the caller (an error
        or an answer that cannot be read passes on unchanged)."""
        self.record_cost(context, response)
        if response.is_success:
            try:
                data, completion = self._read(response)
                response = self._deliver(response, data, completion, converts=self.converts)
            except (ValueError, KeyError, IndexError, TypeError, AttributeError, ResponseParseError) as exc:
                warn_once(("cascade", "untranslatable", self.target.name),
                          "llmspend: cascade could not translate a %s answer (%s); passed on unchanged", self.target.name,
                          error_text(exc, self.secrets))
        self.finish()
        return response

    def finish(self, error: BaseException | None = None) -> None:
        """End the parent span with what the run did; telemetry faults are logged, never raised."""
        try:
            self._record(error)
        except Exception as exc:
            warn_once(("cascade-span", type(exc).__name__),
                      "llmspend: telemetry failed on a cascade's span (%s); the call goes on", type(exc).__name__)
        end_span(self.span)

    def _record(self, error: BaseException | None) -> None:
        span, accepted = self.span, self.step
        if error is None:  # a run cut short (cancelled, interrupted) accepted nothing
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


class _FinishingStream:
    """The last step's stream, passed through; the parent span ends when it does."""

    def __init__(self, response: Response, run: PlanRun, context: CallContext) -> None:
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
