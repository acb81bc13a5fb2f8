"""``llmspend demo``: the whole job, offline, with no keys.

It starts the embedded OpenAI-compatible server, runs a small support-assistant app through
``llmspend.wrap()`` (streaming and not, chat, JSON mode, Responses API, embeddings) and prints
what every call cost, by model, from the spans llmspend recorded.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["run_demo", "DemoResult"]


@dataclass
class DemoResult:
    calls: int = 0
    total_usd: float = 0.0
    by_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    spans: list[dict[str, Any]] = field(default_factory=list)


def _span_record(span: Any) -> dict[str, Any]:
    attrs = dict(span.attributes or {})
    return {"name": span.name, "attributes": attrs, "status": span.status.status_code.name}


def run_demo(out: IO[str] | None = None, *, rounds: int = 2, show_spans: int = 8, spans_out: str | None = None) -> DemoResult:
    """Run the demo and print its report to ``out`` (stdout by default)."""
    import openai
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import llmspend
    from llmspend.cli._table import format_table, usd
    from llmspend.testing import FakeLLMServer

    from .app import QUESTIONS, SupportApp

    out = out or sys.stdout
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    print("llmspend demo: a support assistant on the openai SDK, against a local OpenAI-compatible "
          "server (offline, no keys)\n", file=out)
    with FakeLLMServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-demo-not-a-real-key")
        app = SupportApp(llmspend.wrap(client, tracer_provider=provider))
        for round_ in range(rounds):
            for i, question in enumerate(QUESTIONS):
                if i % 3 == 2:
                    app.answer_streaming(question)
                else:
                    app.answer(question)
                app.classify(question)
            app.summarise(QUESTIONS)
            app.embed(QUESTIONS)

    spans = [_span_record(s) for s in exporter.get_finished_spans()]
    result = DemoResult(calls=len(spans), spans=spans)
    by_model: dict[str, dict[str, Any]] = defaultdict(lambda: {"calls": 0, "input": 0, "cached": 0, "output": 0, "usd": 0.0, "unknown": 0})
    for span in spans:
        a = span["attributes"]
        row = by_model[str(a.get("gen_ai.response.model") or a.get("gen_ai.request.model"))]
        row["calls"] += 1
        row["input"] += a.get("gen_ai.usage.input_tokens", 0)
        row["cached"] += a.get("gen_ai.usage.cache_read.input_tokens", 0)
        row["output"] += a.get("gen_ai.usage.output_tokens", 0)
        if "llmspend.cost.usd" in a:
            row["usd"] += a["llmspend.cost.usd"]
        else:
            row["unknown"] += 1
    result.by_model = dict(by_model)
    result.total_usd = sum(r["usd"] for r in by_model.values())

    print("Cost by model (from the spans)", file=out)
    rows = [
        (m, r["calls"], r["input"], r["cached"], r["output"],
         usd(r["usd"]) if not r["unknown"] else f"unknown ({r['unknown']} calls unpriced)")
        for m, r in sorted(by_model.items())
    ]
    rows.append(("total", result.calls, "", "", "", usd(result.total_usd)))
    print(format_table(["model", "calls", "input tok", "cached tok", "output tok", "cost"], rows, right=(1, 2, 3, 4, 5)), file=out)

    print(f"\nThe first {min(show_spans, len(spans))} of {len(spans)} spans:", file=out)
    for span in spans[:show_spans]:
        a = span["attributes"]
        cost = a.get("llmspend.cost.usd")
        print(
            f"  {span['name']:<28} in={a.get('gen_ai.usage.input_tokens', '-')} "
            f"cached={a.get('gen_ai.usage.cache_read.input_tokens', 0)} out={a.get('gen_ai.usage.output_tokens', '-')} "
            f"reasoning={a.get('gen_ai.usage.reasoning.output_tokens', 0)} cost={usd(cost, 7)}"
            + (" (estimated)" if a.get("llmspend.cost.estimated") else "")
            + ("" if a.get("llmspend.cost.status", "ok") in ("ok", "estimated") else f" [{a['llmspend.cost.status']}]"),
            file=out,
        )
    if spans_out:
        with open(spans_out, "w") as fh:
            for s in exporter.get_finished_spans():
                fh.write(s.to_json(indent=None) + "\n")
        print(f"\nAll spans written as JSON lines to {spans_out}", file=out)
    return result
