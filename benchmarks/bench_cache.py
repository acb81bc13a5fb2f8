"""What a cache hit costs through the openai SDK, next to the same call to a local server
(issue: caching, point 9).

All variants run in one process, interleaved call by call in a shuffled order, so machine noise
hits every variant alike and the comparisons are within one run. The fake OpenAI-compatible
server runs in a separate process, and Redis in its own (a throwaway redis-server).

    python benchmarks/bench_cache.py --calls 2000 [--json out.json]

Variants, for each kind of call (a chat completion with a short prompt, one with a 6 KB system
prompt, and a streamed one):

- ``bare SDK -> server``: the plain openai SDK calling the local server (what a hit replaces);
- ``bare SDK, canned``: the plain SDK over an ``httpx2.MockTransport`` that hands back the
  same answer's bytes at once: the SDK's own work (request building, parsing) and nothing else;
- ``wrap, canned``: the same canned transport under ``llmspend.wrap()`` without a cache: the
  pipeline and telemetry on top of the SDK's work;
- ``disk hit`` / ``redis hit``: ``llmspend.wrap(client, cache=...)`` with the answer stored;
- ``disk hit, OTel SDK``: the same with the OpenTelemetry SDK recording spans and metrics;
- ``floor hit``: no llmspend at all, a transport of a dozen lines that does the least an
  exact-match disk cache can do: parse the body, hash a canonical JSON of it with the API key,
  ``diskcache`` get, decode a JSON entry, build the response. No span, no metrics, no control
  headers, no checks: what any disk cache in the SDK's transport costs on this machine.

The headline is "what a hit adds over the SDK's own parsing": ``disk hit`` minus ``bare SDK,
canned``, as the median of per-round differences (each round runs every variant once, back
to back), and of that, the cache's own part: ``disk hit`` minus ``wrap, canned``. Without the
OpenTelemetry SDK installed, telemetry runs on the API's no-ops, as in an app without tracing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from bench_overhead import pct, start_server  # the shared helpers, next to this file

from llmspend.demo.app import system_prompt

MODEL = "gpt-4o-mini"
SHORT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
LONG = [{"role": "system", "content": system_prompt()}, {"role": "user", "content": "How long does a refund take?"}]
KINDS: dict[str, dict[str, Any]] = {
    "chat, short prompt": {"messages": SHORT, "stream": False},
    "chat, 6 KB system prompt": {"messages": LONG, "stream": False},
    "stream, short prompt": {"messages": SHORT, "stream": True},
}
BASELINE = "bare SDK, canned"


def canned_client(base_url: str, status: int, headers: list[tuple[str, str]], chunks: list[bytes]) -> Any:
    """The plain SDK over a transport that answers every request with ``chunks`` at once."""
    import httpx2
    import openai

    def answer(request: httpx2.Request) -> httpx2.Response:
        body: Any = chunks[0] if len(chunks) == 1 else iter(chunks)
        return httpx2.Response(status, headers=headers, content=body)

    return openai.OpenAI(base_url=base_url, api_key="sk-bench", http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


def floor_client(base_url: str, status: int, headers: list[tuple[str, str]], chunks: list[bytes], directory: str) -> Any:
    """The plain SDK over the least a disk cache in its transport can do (see the docstring)."""
    import hashlib

    import diskcache
    import httpx2
    import openai

    store = diskcache.FanoutCache(directory, shards=8)  # stores bytes as they are: nothing pickled

    def answer(request: httpx2.Request) -> httpx2.Response:
        canonical = json.dumps(json.loads(request.read()), sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(f"{request.headers['authorization']}\0{canonical}".encode()).hexdigest()
        data = store.get(key)
        if data is None:  # the first call stores the answer; every timed call is a hit
            store.set(key, json.dumps({"status": status, "headers": headers, "chunks": [c.decode() for c in chunks]}).encode())
            data = store.get(key)
        entry = json.loads(data)
        parts = [c.encode() for c in entry["chunks"]]
        return httpx2.Response(entry["status"], headers=entry["headers"], content=parts[0] if len(parts) == 1 else iter(parts))

    return openai.OpenAI(base_url=base_url, api_key="sk-bench", http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


def recorded_answer(base_url: str, kind: dict[str, Any]) -> tuple[int, list[tuple[str, str]], list[bytes]]:
    """The server's answer to ``kind`` as status, headers and the chunks as they arrived."""
    import httpx2

    body = {"model": MODEL, "temperature": 0, "messages": kind["messages"], "stream": kind["stream"]}
    with httpx2.Client() as http, http.stream("POST", base_url + "/chat/completions", json=body,
                                              headers={"authorization": "Bearer sk-bench"}) as response:
        chunks = list(response.iter_raw())
        headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("content-length", "transfer-encoding")]
        return response.status_code, headers, chunks


def variants(base_url: str, stack: ExitStack, redis_url: str | None) -> dict[str, dict[str, Callable[[], Any]]]:
    import openai
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import llmspend

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=100_000))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="llmspend-bench-cache-"))

    def wrapped(**options: Any) -> Any:
        client = llmspend.wrap(openai.OpenAI(base_url=base_url, api_key="sk-bench"), **options)
        stack.callback(client.close)
        return client

    clients: dict[str, Any] = {
        "bare SDK -> server": openai.OpenAI(base_url=base_url, api_key="sk-bench"),
        "disk hit": wrapped(cache=directory),
        "disk hit, OTel SDK": wrapped(cache=directory, tracer_provider=tracer_provider, meter_provider=meter_provider),
    }
    if redis_url is not None:
        clients["redis hit"] = wrapped(cache=redis_url)

    def call(client: Any, kind: dict[str, Any]) -> Callable[[], Any]:
        if kind["stream"]:
            def run() -> int:
                return sum(1 for _ in client.chat.completions.create(model=MODEL, temperature=0, messages=kind["messages"], stream=True))
            return run
        return lambda: client.chat.completions.create(model=MODEL, temperature=0, messages=kind["messages"])

    out: dict[str, dict[str, Callable[[], Any]]] = {}
    for name, kind in KINDS.items():
        answer = recorded_answer(base_url, kind)
        canned = canned_client(base_url, *answer)
        cases = {label: call(client, kind) for label, client in clients.items()}
        cases[BASELINE] = call(canned, kind)
        cases["wrap, canned"] = call(llmspend.wrap(canned), kind)
        floor_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="llmspend-bench-floor-"))
        cases["floor hit"] = call(floor_client(base_url, *answer, floor_dir), kind)
        cases["floor hit"]()  # store the answer
        for label in ("disk hit", "redis hit"):
            if label in cases:
                cases[label]()  # store the answer: every timed call is a hit
        out[name] = cases
    return out


def measure(cases: dict[str, Callable[[], Any]], calls: int, warmup: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU seconds of every call, by variant. The CPU time (this process's)
    leaves out waits for the server and for a CPU: on a busy machine it shows the work a call
    costs where wall-clock latency also shows the machine's queue."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    rng = random.Random(0)
    for _ in range(calls):
        rng.shuffle(names)
        for name in names:
            started, started_cpu = time.perf_counter(), time.process_time()
            cases[name]()
            cpu[name].append(time.process_time() - started_cpu)
            wall[name].append(time.perf_counter() - started)
    return wall, cpu


def paired(values: list[float], base: list[float]) -> float:
    """Median of per-round differences, in ms."""
    return statistics.median(v - b for v, b in zip(values, base)) * 1e3


def summarise(times: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict[str, Any]:
    server, canned = times["bare SDK -> server"], times[BASELINE]
    rows = []
    for name, values in times.items():
        rows.append({
            "variant": name,
            "median_ms": statistics.median(values) * 1e3,
            "p99_ms": pct(values, 0.99) * 1e3,
            "ratio_to_server": statistics.median(values) / statistics.median(server),
            "paired_vs_server_ms": paired(values, server),
            "paired_vs_canned_ms": paired(values, canned),
            "cpu_median_ms": statistics.median(cpu[name]) * 1e3,
            "cpu_paired_vs_canned_ms": paired(cpu[name], cpu[BASELINE]),
        })
    summary: dict[str, Any] = {"rows": rows}
    for label, key in (("disk hit", "disk"), ("redis hit", "redis")):
        if label in times:
            summary[f"{key}_hit_adds_over_sdk_parsing_ms"] = paired(times[label], canned)
            summary[f"{key}_hit_adds_over_sdk_parsing_cpu_ms"] = paired(cpu[label], cpu[BASELINE])
    summary["floor_hit_adds_over_sdk_parsing_ms"] = paired(times["floor hit"], canned)
    summary["cache_part_of_disk_hit_ms"] = paired(times["disk hit"], times["wrap, canned"])
    summary["cache_part_of_disk_hit_cpu_ms"] = paired(cpu["disk hit"], cpu["wrap, canned"])
    return summary


def redis_server(stack: ExitStack) -> str | None:
    try:
        from llmspend_redis.testing import RedisServer, redis_server_binary
    except ImportError:
        print("llmspend-redis is not installed (pip install -e plugins/llmspend-redis): no Redis variant")
        return None
    if redis_server_binary() is None:
        print("redis-server is not installed: no Redis variant")
        return None
    return stack.enter_context(RedisServer()).url


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        info["cpu"] = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")
    except (OSError, subprocess.CalledProcessError):
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_1m_at_start"] = round(os.getloadavg()[0], 2)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per variant and kind (default 2000)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    import openai

    proc, base_url = start_server()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "openai": openai.__version__, "calls": args.calls, **machine()}
    try:
        with ExitStack() as stack:
            for kind, cases in variants(base_url, stack, redis_server(stack)).items():
                summary = summarise(*measure(cases, args.calls, args.warmup))
                results[kind] = summary
                print(f"\n{kind}: {args.calls} calls each, openai {openai.__version__}")
                print(f"{'variant':<20}{'median ms':>10}{'p99 ms':>9}{'/ server':>9}{'- server':>10}"
                      f"{'- canned':>10}{'cpu ms':>8}{'cpu - canned':>13}")
                for r in summary["rows"]:
                    print(f"{r['variant']:<20}{r['median_ms']:>10.3f}{r['p99_ms']:>9.3f}{r['ratio_to_server']:>9.2f}"
                          f"{r['paired_vs_server_ms']:>10.3f}{r['paired_vs_canned_ms']:>10.3f}{r['cpu_median_ms']:>8.3f}"
                          f"{r['cpu_paired_vs_canned_ms']:>13.3f}")
                print(f"a disk hit adds {summary['disk_hit_adds_over_sdk_parsing_ms']:.3f} ms (cpu "
                      f"{summary['disk_hit_adds_over_sdk_parsing_cpu_ms']:.3f}) over the SDK's own work; the cache's part: "
                      f"{summary['cache_part_of_disk_hit_ms']:.3f} ms (cpu {summary['cache_part_of_disk_hit_cpu_ms']:.3f}); "
                      f"the floor (a minimal cache transport) adds {summary['floor_hit_adds_over_sdk_parsing_ms']:.3f} ms")
    finally:
        proc.terminate()
        proc.wait()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
