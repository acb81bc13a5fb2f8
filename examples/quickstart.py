"""Wrap an OpenAI client in one line and print the cost of each call from its span.

    python examples/quickstart.py
"""

from __future__ import annotations

import openai
from _server import openai_settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmspend

# An app would install its own tracing (or call llmspend.configure_telemetry("console"));
# here the spans are kept in memory so we can print them.
exporter = InMemorySpanExporter()
tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(exporter))

client = llmspend.wrap(openai.OpenAI(**openai_settings()), tracer_provider=tracing)

reply = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello in five words."}]
)
print(reply.choices[0].message.content)

for chunk in client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Count to five."}], stream=True
):
    print(chunk.choices[0].delta.content or "", end="")
print()

for span in exporter.get_finished_spans():
    attrs = span.attributes or {}
    print(f"{span.name}: {attrs.get('gen_ai.usage.input_tokens')} in, {attrs.get('gen_ai.usage.output_tokens')} out, "
          f"${attrs.get('llmspend.cost.usd', 0):.6f} ({attrs.get('llmspend.cost.status')})")
