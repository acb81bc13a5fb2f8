"""The tracer and meters one wrapped client reports through.

The core depends on ``opentelemetry-api`` only: with no SDK installed every call here is a
no-op, and with ``tracer_provider=``/``meter_provider=`` given those are used instead of the
global ones (tests pass in-memory providers this way).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, NamedTuple

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import TracerProvider

from .._version import __version__
from . import attributes as A

__all__ = ["Instruments", "AttributeSets"]


class _RunningSums:
    """Monotonic USD sums by attribute set, reported through an observable counter."""

    __slots__ = ("_lock", "_sums")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[frozenset[tuple[str, str | int]], float] = {}

    def add_to(self, value: float, key: frozenset[tuple[str, str | int]]) -> None:
        """Add to the sum of the attribute set ``key`` (``frozenset(attributes.items())``)."""
        with self._lock:
            self._sums[key] = self._sums.get(key, 0.0) + value

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._sums.items())
        return [Observation(total, dict(key)) for key, total in items]


class AttributeSets(NamedTuple):
    """The attributes one kind of call records its metrics under, in each form the
    instruments take them. Shared by every call of that kind: never mutate them."""

    call: dict[str, str | int]
    input_tokens: dict[str, str | int]
    output_tokens: dict[str, str | int]
    #: for the time to a stream's first chunk (the conventions give it no error.type)
    first_chunk: dict[str, str | int]
    #: the key of ``call`` in the USD sums
    sums_key: frozenset[tuple[str, str | int]]
    #: the same per saving stage (``llmspend.stage``), filled as stages save
    saved_keys: dict[str, frozenset[tuple[str, str | int]]]

    @classmethod
    def of(cls, attributes: Mapping[str, str | int]) -> AttributeSets:
        call = dict(attributes)
        # error.type belongs on the duration only (the token histogram's attributes have none)
        tokens = {k: v for k, v in call.items() if k != A.ERROR_TYPE}
        return cls(
            call,
            {**tokens, A.TOKEN_TYPE: "input"},
            {**tokens, A.TOKEN_TYPE: "output"},
            tokens,
            frozenset(call.items()),
            {},
        )

    def saved_key(self, stage: str) -> frozenset[tuple[str, str | int]]:
        key = self.saved_keys.get(stage)
        if key is None:
            key = self.saved_keys[stage] = frozenset({**self.call, "llmspend.stage": stage}.items())
        return key


# One pair of USD sums per meter provider, shared by every client wrapped with it: the SDK
# registers an instrument name once per meter, and silently drops the callbacks of a second
# observable counter of the same name, so a second wrap() must add to the first one's sums.
_USD_SUMS: weakref.WeakKeyDictionary[Any, tuple[_RunningSums, _RunningSums]] = weakref.WeakKeyDictionary()
_USD_SUMS_LOCK = threading.Lock()
# The sums registered through the global provider. A client wrapped before the app sets its SDK
# registers through the API's proxy provider, which hands the counters to the provider set
# later: clients wrapped after that must add to those sums, or the SDK drops their callbacks.
_global_sums: tuple[_RunningSums, _RunningSums] | None = None


def _usd_sums(meter_provider: MeterProvider | None, meter: metrics.Meter) -> tuple[_RunningSums, _RunningSums]:
    global _global_sums
    # keyed by the provider the meter comes from, however it was named (given, or the global)
    global_provider = metrics.get_meter_provider()
    key: Any = meter_provider if meter_provider is not None else global_provider
    with _USD_SUMS_LOCK:
        try:
            found = _USD_SUMS.get(key)
        except TypeError:  # a provider that cannot be weakly referenced: its own sums
            found, key = None, None
        if found is None and key is global_provider and _global_sums is not None:
            # the global provider has changed since (the API lets it be set once, over its
            # proxy): the sums registered through the proxy report to this one
            found = _global_sums
            _USD_SUMS[key] = found
        if found is not None:
            return found
        sums = _RunningSums(), _RunningSums()
        meter.create_observable_counter(
            A.METRIC_COST, callbacks=[sums[0].observe], unit="USD", description="What LLM calls cost, in USD"
        )
        meter.create_observable_counter(
            A.METRIC_SAVED, callbacks=[sums[1].observe], unit="USD",
            description="What llmspend's stages saved, in USD, by stage",
        )
        if key is not None:
            _USD_SUMS[key] = sums
            if key is global_provider and _global_sums is None:
                _global_sums = sums
        return sums


# Attribute sets are remembered per kind of call; the kinds come from requests (model names),
# so the memo is bounded.
_MAX_ATTRIBUTE_SETS = 1024

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
        self.time_to_first_chunk = meter.create_histogram(
            A.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed answer",
            explicit_bucket_boundaries_advisory=list(A.DURATION_BUCKETS),
        )
        # The USD counters are summed here and read by the SDK when it collects: a dict update
        # per call instead of one more SDK measurement on every call's path.
        self.cost, self.saved = _usd_sums(meter_provider, meter)

        # Every call of one kind records under the same attribute sets: build them once per
        # kind (see attribute_sets) rather than five dicts and a frozenset on every call.
        self._attribute_sets: dict[Hashable, AttributeSets] = {}

    def attribute_sets(
        self, kind: Hashable, build: Callable[..., Mapping[str, str | int]], *args: Any
    ) -> AttributeSets:
        """The attribute sets of calls of ``kind`` (a hashable that determines their
        attributes), from ``build(*args)`` the first time."""
        sets = self._attribute_sets.get(kind)
        if sets is None:
            if len(self._attribute_sets) >= _MAX_ATTRIBUTE_SETS:
                self._attribute_sets.clear()
            sets = self._attribute_sets[kind] = AttributeSets.of(build(*args))
        return sets

    def record_call(
        self,
        attributes: Mapping[str, str | int] | AttributeSets,
        *,
        duration_s: float,
        first_chunk_s: float | None = None,
        input_tokens: int | None,
        output_tokens: int | None,
        cost_usd: float | None,
        savings: Mapping[str, float],
    ) -> None:
        sets = attributes if isinstance(attributes, AttributeSets) else AttributeSets.of(attributes)
        self.duration.record(duration_s, sets.call)
        if first_chunk_s is not None:
            self.time_to_first_chunk.record(first_chunk_s, sets.first_chunk)
        if input_tokens is not None:
            self.token_usage.record(input_tokens, sets.input_tokens)
        if output_tokens is not None:
            self.token_usage.record(output_tokens, sets.output_tokens)
        if cost_usd is not None:
            self.cost.add_to(cost_usd, sets.sums_key)
        for stage, usd in savings.items():
            if usd > 0:
                self.saved.add_to(usd, sets.saved_key(stage))
