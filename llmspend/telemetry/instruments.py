"""The tracer and meters one wrapped client reports through.

The core depends on ``opentelemetry-api`` only: with no SDK installed every call here is a
no-op, and with ``tracer_provider=``/``meter_provider=`` given those are used instead of the
global ones (tests pass in-memory providers this way).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import TracerProvider

from .._version import __version__
from . import attributes as A

__all__ = ["Instruments"]


class _RunningSums:
    """Monotonic USD sums by attribute set, reported through an observable counter."""

    __slots__ = ("_lock", "_sums")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[frozenset[tuple[str, str | int]], float] = {}

    def add(self, value: float, attributes: Mapping[str, str | int]) -> None:
        key = frozenset(attributes.items())
        with self._lock:
            self._sums[key] = self._sums.get(key, 0.0) + value

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._sums.items())
        return [Observation(total, dict(key)) for key, total in items]

_SCOPE = "llmspend"


class Instruments:
    """A tracer, the GenAI client histograms and the USD counters. Built once per ``wrap()``."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            A.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(A.TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            A.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(A.DURATION_BUCKETS),
        )
        # The USD counters are summed here and read by the SDK when it collects: a dict update
        # per call instead of one more SDK measurement on every call's path.
        self.cost = _RunningSums()
        self.saved = _RunningSums()
        meter.create_observable_counter(
            A.METRIC_COST, callbacks=[self.cost.observe], unit="USD", description="What LLM calls cost, in USD"
        )
        meter.create_observable_counter(
            A.METRIC_SAVED, callbacks=[self.saved.observe], unit="USD",
            description="What llmspend's stages saved, in USD, by stage",
        )

    def record_call(
        self,
        attributes: Mapping[str, str | int],
        *,
        duration_s: float,
        input_tokens: int | None,
        output_tokens: int | None,
        cost_usd: float | None,
        savings: Mapping[str, float],
    ) -> None:
        attrs = dict(attributes)
        self.duration.record(duration_s, attrs)
        if input_tokens is not None:
            self.token_usage.record(input_tokens, {**attrs, A.TOKEN_TYPE: "input"})
        if output_tokens is not None:
            self.token_usage.record(output_tokens, {**attrs, A.TOKEN_TYPE: "output"})
        if cost_usd is not None:
            self.cost.add(cost_usd, attrs)
        for stage, usd in savings.items():
            if usd > 0:
                self.saved.add(usd, {**attrs, "llmspend.stage": stage})
