"""``llmspend demo``: the whole job, offline, with no keys.

It starts the embedded OpenAI-compatible server and runs a small support-assistant app
(``app.py``) through ``llmspend.wrap()``. Each section shows one thing llmspend does, from the
spans it recorded; sections live in their own modules and are listed in :data:`SECTIONS`.
A section module has a ``TITLE`` and ``run(ctx) -> dict`` (what it measured, for tests).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["run_demo", "DemoContext", "DemoResult", "SECTIONS"]

#: section modules in the order they run
SECTIONS: tuple[str, ...] = ("cost", "cache", "trim", "batch", "budget", "anthropic", "cascade")


@dataclass
class DemoContext:
    """What a section gets: the server, telemetry sinks and a way to make wrapped clients."""

    server: Any
    tracer_provider: Any
    exporter: Any
    out: IO[str]
    rounds: int = 2
    show_spans: int = 8

    def client(self, **options: Any) -> Any:
        """A wrapped ``openai.OpenAI`` on the demo server, reporting to the demo's spans."""
        import openai

        import llmspend

        raw = openai.OpenAI(base_url=self.server.base_url, api_key="sk-demo-not-a-real-key")
        return llmspend.wrap(raw, tracer_provider=self.tracer_provider, **options)

    def async_client(self, **options: Any) -> Any:
        import openai

        import llmspend

        raw = openai.AsyncOpenAI(base_url=self.server.base_url, api_key="sk-demo-not-a-real-key")
        return llmspend.wrap(raw, tracer_provider=self.tracer_provider, **options)

    def spans(self) -> list[dict[str, Any]]:
        """The spans this section has finished so far, as dicts (name, attributes, status)."""
        return [
            {"name": s.name, "attributes": dict(s.attributes or {}), "status": s.status.status_code.name,
             "span": s}
            for s in self.exporter.get_finished_spans()
        ]

    def print(self, *args: Any) -> None:
        print(*args, file=self.out)


@dataclass
class DemoResult:
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    spans: list[dict[str, Any]] = field(default_factory=list)


def run_demo(
    out: IO[str] | None = None,
    *,
    rounds: int = 2,
    show_spans: int = 8,
    spans_out: str | None = None,
    sections: Sequence[str] | None = None,
) -> DemoResult:
    """Run the demo sections and print their report to ``out`` (stdout by default)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmspend.exceptions import ConfigError
    from llmspend.testing import FakeLLMServer

    try:
        import openai  # noqa: F401  (the sample app is written against it)
    except ImportError:
        raise ConfigError("the demo's sample app uses the official openai SDK: pip install openai "
                          "(or the dev install the README gives)") from None
    out = out or sys.stdout
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    result = DemoResult()
    spans_file = open(spans_out, "w") if spans_out else None
    print("llmspend demo: a support assistant on the openai SDK, against a local OpenAI-compatible "
          "server (offline, no keys)", file=out)
    try:
        with FakeLLMServer() as server:
            ctx = DemoContext(server, provider, exporter, out, rounds=rounds, show_spans=show_spans)
            for number, name in enumerate(sections or SECTIONS, 1):
                module = importlib.import_module(f"{__name__}.{name}")
                print(f"\n{number}. {module.TITLE}\n", file=out)
                result.sections[name] = module.run(ctx)
                finished = ctx.spans()
                exporter.clear()
                for span in finished:
                    if spans_file is not None:
                        spans_file.write(span["span"].to_json(indent=None) + "\n")
                    result.spans.append({**{k: v for k, v in span.items() if k != "span"}, "section": name})
    finally:
        if spans_file is not None:
            spans_file.close()
    if spans_out:
        print(f"\nThe spans each section kept were written as JSON lines to {spans_out} "
              f"(try: llmspend report {spans_out})", file=out)
    return result
