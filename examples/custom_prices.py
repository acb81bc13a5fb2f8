"""Price a fine-tuned or self-hosted model yourself; unknown models are reported as unknown.

    python examples/custom_prices.py
"""

from __future__ import annotations

import openai
from _server import openai_settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmspend

exporter = InMemorySpanExporter()
tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(exporter))
settings = openai_settings()

plain = llmspend.wrap(openai.OpenAI(**settings), tracer_provider=tracing)
priced = llmspend.wrap(openai.OpenAI(**settings), tracer_provider=tracing,
                       prices={"ft:gpt-4o-mini:acme": {"input": 0.30, "output": 1.20}})
for client in (plain, priced):
    client.chat.completions.create(model="ft:gpt-4o-mini:acme", messages=[{"role": "user", "content": "hi"}])

for span in exporter.get_finished_spans():
    attrs = span.attributes or {}
    print(attrs.get("llmspend.cost.status"), attrs.get("llmspend.cost.usd", "no cost number"))
