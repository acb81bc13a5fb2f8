"""Why llmspend records no per-chunk metric: one histogram measurement through the
OpenTelemetry SDK against llmspend's reading of one stream chunk, side by side in one run.

    PYTHONPATH=$PWD python benchmarks/bench_chunk_metric.py [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import timeit

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llmspend._http import Headers, Request
from llmspend.providers.openai import OpenAIAdapter
from llmspend.telemetry import attributes as A

CHUNK = b"data: " + json.dumps({
    "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}],
}).encode() + b"\n\n"
ATTRIBUTES = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
              "gen_ai.response.model": "gpt-4o", "server.address": "api.openai.com", "server.port": 443}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    histogram = provider.get_meter("bench").create_histogram(
        "gen_ai.client.operation.time_per_output_chunk", unit="s",
        explicit_bucket_boundaries_advisory=list(A.DURATION_BUCKETS))
    adapter = OpenAIAdapter()
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": True}).encode()
    request = Request("POST", "https://api.openai.com/v1/chat/completions", Headers([("content-type", "application/json")]),
                      body, adapter=adapter)
    assert request.call is not None
    reader = adapter.stream_reader(request.call, request)
    rounds = {"record": [], "feed": []}  # type: dict[str, list[float]]
    for _ in range(5):  # interleaved, so both see the same load
        rounds["record"].append(timeit.timeit(lambda: histogram.record(0.01, ATTRIBUTES), number=args.n) / args.n)
        rounds["feed"].append(timeit.timeit(lambda: reader.feed(CHUNK), number=args.n) / args.n)
    record, feed = min(rounds["record"]), min(rounds["feed"])
    print(f"one histogram measurement (OTel SDK): {record * 1e6:.2f} us")
    print(f"llmspend reading one chunk:           {feed * 1e6:.2f} us")
    print(f"ratio: {record / feed:.1f}x")


if __name__ == "__main__":
    main()
