"""The stage interface and the pipeline that chains stages, built once.

A stage receives the request and ``call_next``, the rest of the chain. It may call
``call_next`` once (most stages), several times (retries, cascades) or not at all (a cache
hit), and may change the request or response on the way::

    class HeaderStage(Stage):
        name = "header"

        def handle(self, request, call_next):
            return call_next(request.replace(headers=request.headers.set("x-team", "search")))

        async def ahandle(self, request, call_next):
            return await call_next(request.replace(headers=request.headers.set("x-team", "search")))

Stages are built from ``wrap()``'s keyword options by a :class:`StageSpec`; the spec's
``order`` places the stage in the chain (lower is nearer the caller). Built-in orders:

    cascade 100 · telemetry 200 · budget 250 · trim 300 · cache 400 · batch 500 · retry 600

so a cache hit still gets a span, retries are events on the call's span, and a cascade gets one
span per step. Plugins register further specs under the ``llmspend.stages`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._http import Request, Response
from .exceptions import ConfigError, LLMSpendError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from .pricing.table import PriceTable
    from .providers.base import ProviderAdapter

__all__ = ["Stage", "StageSpec", "BuildContext", "Pipeline", "CallNext", "AsyncCallNext", "CORE_OPTIONS"]

CallNext = Callable[[Request], Response]
AsyncCallNext = Callable[[Request], Awaitable[Response]]

#: wrap() options that configure the pipeline as a whole rather than one stage (no stage,
#: built in or from a plugin, may take these names)
CORE_OPTIONS = {
    "prices": "a PriceTable, a price file path, or a dict of per-model price overrides",
    "tracer_provider": "an OpenTelemetry TracerProvider (default: the global one)",
    "meter_provider": "an OpenTelemetry MeterProvider (default: the global one)",
    "capture_content": "True to put prompt and completion text on spans (off by default)",
    "provider": "the gen_ai.provider.name to report and price as (e.g. 'groq'), or a ProviderAdapter",
}


class Stage:
    """Base class of pipeline stages. The default passes every request straight on.

    Contract: a stage must not swallow the caller's HTTP errors or change a provider's error
    response; an optimisation that fails must fail open (record the fault with
    ``request.context.record_fault`` and call ``call_next`` as if it were not there).
    """

    name: str = "stage"
    #: False for stages that only work with async clients (they say so at construction)
    supports_sync: bool = True

    def handle(self, request: Request, call_next: CallNext) -> Response:
        return call_next(request)

    async def ahandle(self, request: Request, call_next: AsyncCallNext) -> Response:
        return await call_next(request)

    def close(self) -> None:
        """Release what the stage holds (files, connections). Called when the client closes,
        possibly more than once (once per transport of the client)."""

    async def aclose(self) -> None:
        """The async twin of :meth:`close`, called when an async client closes."""
        self.close()


@dataclass(frozen=True)
class BuildContext:
    """What a stage factory may need to build its stage."""

    prices: PriceTable
    is_async: bool
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    adapters: Sequence[ProviderAdapter] = ()
    #: every option wrap() was given, for stages that read another stage's settings
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSpec:
    """How to build one stage from its ``wrap()`` option.

    ``build(value, context)`` receives the option's value (never ``None`` or ``False``: those
    mean "off") and returns the stage, or raises :class:`~llmspend.exceptions.ConfigError`
    with a message that says what to fix. ``default`` is used when the option is not given;
    leave it ``None`` for stages that are off unless asked for.
    """

    option: str
    order: int
    build: Callable[[Any, BuildContext], Stage]
    default: Any = None
    doc: str = ""


class Pipeline:
    """An ordered, frozen tuple of stages and the provider adapters they read requests with."""

    def __init__(self, stages: Sequence[Stage], adapters: Sequence[ProviderAdapter], *, is_async: bool | None = None) -> None:
        if is_async is False:
            for stage in stages:
                if not stage.supports_sync:
                    raise ConfigError(
                        f"the {stage.name} stage works only with async clients "
                        f"(openai.AsyncOpenAI, httpx2.AsyncClient); wrap an async client to use it"
                    )
        self.stages: tuple[Stage, ...] = tuple(stages)
        self.adapters: tuple[ProviderAdapter, ...] = tuple(adapters)

    def adapter_for(self, request: Request) -> ProviderAdapter | None:
        if len(self.adapters) == 1:
            return self.adapters[0]
        for adapter in self.adapters:
            if adapter.matches(request):
                return adapter
        return None

    def bind(self, send: CallNext) -> CallNext:
        """The chain ending in ``send`` (the inner transport), built once."""
        handler = send
        for stage in reversed(self.stages):
            handler = _link(stage.handle, handler)
        entry = handler

        def run(request: Request) -> Response:
            request.adapter = adapter = self.adapter_for(request)
            try:
                return entry(request)
            except LLMSpendError as exc:
                passable = _through_sdk(adapter, exc)
                if passable is exc:
                    raise
                raise passable from exc.__cause__

        return run

    def abind(self, send: AsyncCallNext) -> AsyncCallNext:
        handler = send
        for stage in reversed(self.stages):
            handler = _alink(stage.ahandle, handler)
        entry = handler

        async def run(request: Request) -> Response:
            request.adapter = adapter = self.adapter_for(request)
            try:
                return await entry(request)
            except LLMSpendError as exc:
                passable = _through_sdk(adapter, exc)
                if passable is exc:
                    raise
                raise passable from exc.__cause__

        return run

    def close(self) -> None:
        for stage in self.stages:
            stage.close()

    async def aclose(self) -> None:
        for stage in self.stages:
            await stage.aclose()

    def stage(self, name: str) -> Stage | None:
        """The stage called ``name``, if the pipeline has one."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        return None


def _through_sdk(adapter: ProviderAdapter | None, error: LLMSpendError) -> BaseException:
    """An llmspend error raised in the SDK's transport (a refused budget, a prompt too long), as
    the adapter says it must be raised for the SDK to hand it to the caller unchanged."""
    return error if adapter is None else adapter.sdk_error(error)


def _link(handle: Callable[[Request, CallNext], Response], call_next: CallNext) -> CallNext:
    def step(request: Request) -> Response:
        return handle(request, call_next)

    return step


def _alink(handle: Callable[[Request, AsyncCallNext], Awaitable[Response]], call_next: AsyncCallNext) -> AsyncCallNext:
    def step(request: Request) -> Awaitable[Response]:
        return handle(request, call_next)

    return step
