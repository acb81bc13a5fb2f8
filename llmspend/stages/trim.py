"""The trim stage: every prompt fitted into its token budget before it is sent.

    client = llmspend.wrap(openai.OpenAI(), trim=True)              # budget: the model's context
    client = llmspend.wrap(openai.OpenAI(), trim=8_000)             # 8,000 prompt tokens per call
    client = llmspend.wrap(openai.OpenAI(), trim=TrimOptions(budget={"search": 4_000}, examples_k=4))

The decision is :func:`llmspend.trim` (pure, in ``llmspend/trimming/``); this stage reads the
conversation through the provider adapter (``get_messages`` / ``with_messages``), applies the
call's budget, and records on the call's span ``llmspend.trim.tokens_before`` and
``llmspend.trim.tokens_after``, and the input tokens saved, priced at the model's input rate,
in ``llmspend.cost.saved_usd``. A request that needs no change is sent byte for byte as it came.

Per call, through request headers that the stage removes before sending (``extra_headers=`` in
the SDKs): ``x-llmspend-trim: off`` skips trimming, ``x-llmspend-trim-budget: N`` sets the budget.
Per feature: a ``{feature: budget}`` dict, looked up from ``llmspend.track(feature=...)``.

A prompt that cannot fit even after trimming raises :class:`~llmspend.PromptTooLongError`
before anything is sent (``on_overflow="error"``, the default), or is sent untrimmed with a
logged warning and ``llmspend.trim.overflow = true`` (``on_overflow="send"``). A fault in
trimming itself never fails the call: the request goes out untrimmed and the fault is noted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .._redact import error_text
from .._http import Request, Response
from ..attribution import current_attribution
from ..context import CallContext
from ..exceptions import ConfigError, PromptTooLongError
from ..pipeline import AsyncCallNext, BuildContext, CallNext, Stage, StageSpec
from ..pricing.table import PriceTable
from ..providers.base import Call
from ..telemetry.recorder import warn_once
from ..trimming import OnOverflow, TrimResult, trim
from ..trimming.core import DEFAULT_DROP_STEP, DEFAULT_MIN_DUPLICATE_CHARS, check_settings

__all__ = ["TrimOptions", "TrimStage", "CONTROL_HEADER", "BUDGET_HEADER"]

logger = logging.getLogger("llmspend")

#: ``off`` skips trimming for one call (``on`` is the default)
CONTROL_HEADER = "x-llmspend-trim"
#: a token budget for one call, overriding the configured one
BUDGET_HEADER = "x-llmspend-trim-budget"

_OFF = frozenset({"off", "false", "0", "no"})
_ON = frozenset({"on", "true", "1", "yes"})
# Trimming a prompt this large takes milliseconds: do it off the event loop.
_OFFLOAD_BYTES = 256 * 1024


@dataclass(frozen=True)
class TrimOptions:
    """How the trim stage trims. ``trim=True`` is ``TrimOptions()``; ``trim=N`` is
    ``TrimOptions(budget=N)``. The fields other than ``budget`` and ``on_overflow`` are
    :func:`llmspend.trim`'s keyword arguments."""

    #: prompt tokens per call; a ``{feature: tokens}`` dict for per-feature budgets (features
    #: not listed, and calls outside ``llmspend.track``, get the default); ``None``: the model's
    #: context window minus the call's ``max_tokens`` (else the model's maximum output)
    budget: int | Mapping[str, int] | None = None
    #: ``"error"``: raise PromptTooLongError before sending; ``"send"``: send it untrimmed
    on_overflow: OnOverflow = "error"
    dedupe: bool = True
    collapse_whitespace: bool = True
    #: keep only the k few-shot examples most similar to the question (None: keep them all)
    examples_k: int | None = None
    keep_first_turns: int = 0
    drop_step: float = DEFAULT_DROP_STEP
    min_duplicate_chars: int = DEFAULT_MIN_DUPLICATE_CHARS

    def __post_init__(self) -> None:
        check_settings(None, self.examples_k, self.on_overflow, self.drop_step, self.keep_first_turns,
                       self.min_duplicate_chars, 0)
        for budget in self.budget.values() if isinstance(self.budget, Mapping) else [self.budget]:
            check_settings(budget, None, "error", 0, 0, 1, 0)
        if isinstance(self.budget, Mapping):
            if not all(isinstance(k, str) for k in self.budget):
                raise ConfigError("trim budget per feature must be a {feature name: tokens} dict")
            object.__setattr__(self, "budget", dict(self.budget))
        for name in ("dedupe", "collapse_whitespace"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"trim {name} must be True or False, got {getattr(self, name)!r}")

    def budget_for(self, feature: str | None) -> int | None:
        """The configured budget for a call of ``feature`` (None: the model's default)."""
        if isinstance(self.budget, Mapping):
            return self.budget.get(feature) if feature is not None else None
        return self.budget


def _header_budget(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        budget = int(value.strip())
    except ValueError:
        budget = 0
    if budget < 1:
        raise ConfigError(f"the {BUDGET_HEADER} header takes a whole number of tokens >= 1, got {value!r}")
    return budget


def _header_enabled(value: str | None) -> bool:
    if value is None or value.strip().lower() in _ON:
        return True
    if value.strip().lower() in _OFF:
        return False
    raise ConfigError(f"the {CONTROL_HEADER} header takes 'on' or 'off', got {value!r}")


class TrimStage(Stage):
    """See the module docstring."""

    name = "trim"

    def __init__(self, options: TrimOptions | None = None, prices: PriceTable | None = None) -> None:
        self.options = options or TrimOptions()
        self.prices = prices or PriceTable.default()

    def prepare(self, request: Request) -> Request:
        """The request to send instead of ``request`` (the same one when nothing changes).
        Raises PromptTooLongError for a prompt that cannot fit, when so configured."""
        headers = request.headers
        enabled = _header_enabled(headers.get(CONTROL_HEADER))
        per_call = _header_budget(headers.get(BUDGET_HEADER))
        call, adapter = request.call, request.adapter
        if CONTROL_HEADER in headers or BUDGET_HEADER in headers:
            request = request.replace(headers=headers.without(CONTROL_HEADER, BUDGET_HEADER))
        if not enabled or call is None or adapter is None:
            return request
        try:
            messages = adapter.get_messages(call)
            if messages is None:
                return request
            options = self.options
            result = trim(
                messages,
                model=call.model,
                budget=per_call or options.budget_for(current_attribution().feature),
                max_tokens=call.params.get("max_tokens"),
                overhead_tokens=adapter.estimate_overhead_tokens(call),
                examples_k=options.examples_k,
                on_overflow=options.on_overflow,
                dedupe=options.dedupe,
                collapse_whitespace=options.collapse_whitespace,
                keep_first_turns=options.keep_first_turns,
                drop_step=options.drop_step,
                min_duplicate_chars=options.min_duplicate_chars,
                prices=self.prices,
            )
        except PromptTooLongError as exc:
            request.context.set_attribute("llmspend.trim.overflow", True)
            request.context.set_attribute("llmspend.trim.budget", exc.budget)
            request.context.set_attribute("llmspend.trim.tokens_needed", exc.tokens)
            raise
        except Exception as exc:  # a fault in trimming never fails the call
            request.context.record_fault(self.name, exc)
            warn_once(("trim_fault", type(exc).__name__),
                      "llmspend: trimming failed (%s); the prompt was sent untrimmed", error_text(exc))
            return request
        self._record(request.context, call, result)
        if result.overflow:
            logger.warning(
                "llmspend: a %s prompt of %d tokens does not fit its trim budget of %s even after trimming; "
                "sent untrimmed (on_overflow='send')", call.model, result.tokens_before, result.budget,
            )
            return request
        if not result.changed:
            return request
        return adapter.with_messages(request, call, result.messages)

    def _record(self, context: CallContext, call: Call, result: TrimResult) -> None:
        context.set_attribute("llmspend.trim.tokens_before", result.tokens_before)
        context.set_attribute("llmspend.trim.tokens_after", result.tokens_after)
        if result.budget is not None:
            context.set_attribute("llmspend.trim.budget", result.budget)
        if result.overflow:
            context.set_attribute("llmspend.trim.overflow", True)
            return
        messages = sum(1 for d in result.dropped if d.kind == "message")
        if messages:
            context.set_attribute("llmspend.trim.dropped_messages", messages)
        if len(result.dropped) > messages:
            context.set_attribute("llmspend.trim.dropped_examples", len(result.dropped) - messages)
        if result.rewritten:
            context.set_attribute("llmspend.trim.rewritten_messages", len(result.rewritten))
        row = self.prices.lookup(call.model, provider=call.provider)
        if row is not None and result.saved_tokens > 0:
            context.add_saving(self.name, result.saved_tokens * row.input / 1_000_000)

    def handle(self, request: Request, call_next: CallNext) -> Response:
        return call_next(self.prepare(request))

    async def ahandle(self, request: Request, call_next: AsyncCallNext) -> Response:
        if len(request.content) > _OFFLOAD_BYTES:
            return await call_next(await asyncio.to_thread(self.prepare, request))
        return await call_next(self.prepare(request))


def _build(value: Any, context: BuildContext) -> Stage:
    if isinstance(value, TrimStage):
        return value
    if value is True:
        options = TrimOptions()
    elif isinstance(value, int) and not isinstance(value, bool):
        options = TrimOptions(budget=value)
    elif isinstance(value, TrimOptions):
        options = value
    elif isinstance(value, Mapping):
        known = [f.name for f in fields(TrimOptions)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ConfigError(
                f"trim= options {unknown} are not known; known: {', '.join(known)} "
                "(per-feature budgets go in budget=: trim={'budget': {'search': 4000}})"
            )
        options = TrimOptions(**value)
    else:
        raise ConfigError(
            f"trim= takes True, a token budget (int), a dict of TrimOptions fields or a TrimOptions; got {value!r}"
        )
    return TrimStage(options, context.prices)


SPEC = StageSpec(option="trim", order=300, build=_build, doc="fit prompts into a token budget (TrimOptions or a budget)")
