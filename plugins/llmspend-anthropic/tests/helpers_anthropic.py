"""Shared helpers of the Anthropic plugin's tests (a module with its own name: this directory
has no ``__init__.py``, because the repository's ``tests`` package would shadow a second package
of that name in a full run, and a bare ``conftest`` import could find another plugin's)."""

from __future__ import annotations

from typing import Any

import anthropic
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmspend
from llmspend.pricing.table import ModelPrice
from llmspend.testing import FakeLLMServer

API_KEY = "sk-ant-test-SECRET-0123456789abcdef"
MODEL = "claude-haiku-4-5"
LLMSPEND_SCOPE = "llmspend"
SDK_SCOPE = "com.anthropic.sdk.python"


class Spans:
    """An in-memory span sink. ``provider`` goes to ``wrap(tracer_provider=)`` and, where a
    test wants the SDK's own spans, to ``open_telemetry={"tracer_provider": ...}``."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self, scope: str | None = LLMSPEND_SCOPE) -> list[ReadableSpan]:
        spans = self.exporter.get_finished_spans()
        return [s for s in spans if scope is None or (s.instrumentation_scope and s.instrumentation_scope.name == scope)]

    def one(self) -> ReadableSpan:
        found = self.finished()
        assert len(found) == 1, [s.name for s in found]
        return found[0]

    def attrs(self) -> dict[str, Any]:
        return dict(self.one().attributes or {})

    def clear(self) -> None:
        self.exporter.clear()


def sync_client(server: FakeLLMServer, spans: Spans, *, sdk_spans: bool = False, **options: Any) -> anthropic.Anthropic:
    """A wrapped ``anthropic.Anthropic`` on the fake API. The SDK's own spans are off unless
    ``sdk_spans`` (then they go to the same in-memory sink)."""
    otel: Any = {"tracer_provider": spans.provider} if sdk_spans else False
    raw = anthropic.Anthropic(base_url=server.url, api_key=API_KEY, open_telemetry=otel)
    return llmspend.wrap(raw, tracer_provider=spans.provider, **options)


def async_client(server: FakeLLMServer, spans: Spans, *, sdk_spans: bool = False, **options: Any) -> anthropic.AsyncAnthropic:
    otel: Any = {"tracer_provider": spans.provider} if sdk_spans else False
    raw = anthropic.AsyncAnthropic(base_url=server.url, api_key=API_KEY, open_telemetry=otel)
    return llmspend.wrap(raw, tracer_provider=spans.provider, **options)


def price(row: ModelPrice, *, uncached: int = 0, write_5m: int = 0, write_1h: int = 0, read: int = 0, output: int = 0) -> float:
    """What the published rates say a call costs: each kind of token once, at its own rate."""
    assert row.cache_write is not None and row.cache_write_1h is not None and row.cache_read is not None
    return (uncached * row.input + write_5m * row.cache_write + write_1h * row.cache_write_1h
            + read * row.cache_read + output * row.output) / 1e6


async def reserved_usd(server: FakeLLMServer, spans: Spans, mode: str, content: list[dict[str, Any]]) -> float:
    """What a budget reserves (``llmspend.budget.reserved_usd``, no input margin) for one user
    turn of ``content``, sent through a wrapped client (``mode`` ``sync`` or ``async``)."""
    from llmspend.ledger import MemoryLedger

    options: dict[str, Any] = {"budget": {"input_margin": 0}}
    client: Any = sync_client(server, spans, **options) if mode == "sync" else async_client(server, spans, **options)
    with llmspend.track(feature="reserve", budget_usd=100, period="day", ledger=MemoryLedger()):
        create = client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": content}])
        if mode == "async":
            await create
    held = [s for s in spans.finished() if "llmspend.budget.reserved_usd" in (s.attributes or {})]
    return float((held[-1].attributes or {})["llmspend.budget.reserved_usd"])
