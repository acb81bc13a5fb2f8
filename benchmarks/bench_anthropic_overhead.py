"""What wrap() adds per call over the bare anthropic SDK, against the same local Messages API
(issue: Anthropic, the llmspend-anthropic plugin).

Same method as bench_overhead.py (whose measuring and summing it reuses): every variant in one
process, interleaved call by call in a shuffled order, against the fake Messages API running in
a separate process; the comparison is within one run.

    python benchmarks/bench_anthropic_overhead.py --calls 500 [--json out.json]

Variants: the bare SDK with its own OpenTelemetry spans off; the bare SDK with its spans on
(recorded in memory); wrap() with the SDK's spans off (llmspend's span only); wrap() with both
(llmspend's span nested in the SDK's); wrap() with no stages at all (the transport alone).
Every request carries a system prompt marked for
caching, so the usage has cache reads to price.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench_overhead import measure, print_rows, summarise

MODEL = "claude-haiku-4-5"
SYSTEM = [{"type": "text", "text": "You answer in one word. " * 200, "cache_control": {"type": "ephemeral"}}]
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]

_SERVER = (
    "import signal, threading; from llmspend.testing import FakeLLMServer; "
    "from llmspend_anthropic.testing import FakeAnthropicAPI; s = FakeLLMServer().start(); FakeAnthropicAPI(s); "
    "print(s.port, flush=True); stop = threading.Event(); signal.signal(signal.SIGTERM, lambda *_: stop.set()); stop.wait()"
)


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def variants(base_url: str) -> dict[str, dict[str, Callable[[], Any]]]:
    import anthropic
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import llmspend

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=100_000))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    sdk_spans: Any = {"tracer_provider": tracer_provider}

    def client(open_telemetry: Any) -> Any:
        return anthropic.Anthropic(base_url=base_url, api_key="sk-ant-bench", open_telemetry=open_telemetry)

    def wrapped(open_telemetry: Any) -> Any:
        return llmspend.wrap(client(open_telemetry), tracer_provider=tracer_provider, meter_provider=meter_provider)

    clients = {
        "bare SDK": client(False),
        "bare SDK + its spans": client(sdk_spans),
        "wrap": wrapped(False),
        "wrap + SDK spans": wrapped(sdk_spans),
        # the transport alone: what wrap() costs before any stage does anything
        "wrap, no stages": llmspend.wrap(client(False), telemetry=False, retry=False),
    }

    def create(c: Any) -> Callable[[], Any]:
        return lambda: c.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, messages=MESSAGES)

    def stream(c: Any) -> Callable[[], Any]:
        def run() -> int:
            with c.messages.stream(model=MODEL, max_tokens=64, system=SYSTEM, messages=MESSAGES) as events:
                return sum(1 for _ in events)
        return run

    return {
        "create": {name: create(c) for name, c in clients.items()},
        "stream": {name: stream(c) for name, c in clients.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    import anthropic

    proc, base_url = start_server()
    try:
        results: dict[str, Any] = {
            "python": platform.python_version(), "anthropic": anthropic.__version__, "machine": platform.machine(),
            "calls": args.calls, "date": time.strftime("%Y-%m-%d"),
        }
        for kind, cases in variants(base_url).items():
            rows = summarise(measure(cases, args.calls, args.warmup))
            results[kind] = rows
            print_rows(f"{kind} ({args.calls} calls each, anthropic {anthropic.__version__})", rows)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=2)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
