"""Where wrap()'s added time goes, without a network in the way.

The openai SDK runs on an httpx2 client whose transport is an in-process
``httpx2.MockTransport`` returning a fixed chat completion, so the only differences between
variants are llmspend's own work and the OpenTelemetry SDK's:

    python benchmarks/bench_overhead_split.py --calls 3000

Variants: bare SDK; wrap() with no stages at all (the transport wrapping alone); wrap() with
its defaults and no OTel SDK (llmspend's own work); + an SDK tracer; + an SDK meter; + both.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

import httpx2
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmspend

BODY = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
}).encode()
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def client() -> openai.OpenAI:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=BODY)

    return openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-bench",
                         http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    tracer = TracerProvider()
    tracer.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=10**6))
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()])
    variants: dict[str, Any] = {
        "bare SDK": client(),
        "wrap, no stages (transport only)": llmspend.wrap(client(), telemetry=False, retry=False),
        "wrap, defaults, no OTel SDK": llmspend.wrap(client()),
        "wrap, + SDK tracer": llmspend.wrap(client(), tracer_provider=tracer),
        "wrap, + SDK meter": llmspend.wrap(client(), meter_provider=meter),
        "wrap, + SDK tracer and meter": llmspend.wrap(client(), tracer_provider=tracer, meter_provider=meter),
    }
    for c in variants.values():
        for _ in range(300):
            c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    rng = random.Random(0)
    for _ in range(args.calls):
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            variants[name].chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["bare SDK"])
    print(f"{'variant':<36}{'median us':>10}{'added us':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<36}{median * 1e6:>10.1f}{(median - base) * 1e6:>10.1f}")


if __name__ == "__main__":
    main()
