"""What wrap() adds per call over the bare openai SDK, against the same local server, next to
what LiteLLM's completion() adds (issue: core, point 12).

All clients run in one process, interleaved call by call in a shuffled order, against the
fake OpenAI-compatible server running in a separate process; so machine noise hits every
variant alike and the comparison is a ratio within one run.

    python benchmarks/bench_overhead.py --calls 2000 [--json out.json]

Variants: the bare SDK; wrap() with the OpenTelemetry SDK installed (spans and metrics recorded
in memory, as an app with tracing would); wrap() with no SDK (the API's no-ops); and, when
importable, litellm.completion() (pin a known-good release: litellm==1.103.7; it needs
openai<3, so run this in a venv with openai 2.x to include it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
MODEL = "gpt-4o-mini"


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "llmspend.testing"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def variants(base_url: str) -> dict[str, dict[str, Callable[[], Any]]]:
    import openai
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import llmspend

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100_000))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    bare = openai.OpenAI(base_url=base_url, api_key="sk-bench")
    wrapped = llmspend.wrap(openai.OpenAI(base_url=base_url, api_key="sk-bench"),
                            tracer_provider=tracer_provider, meter_provider=meter_provider)
    wrapped_noop = llmspend.wrap(openai.OpenAI(base_url=base_url, api_key="sk-bench"))

    def chat(client: Any) -> Callable[[], Any]:
        return lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0)

    def stream(client: Any) -> Callable[[], Any]:
        def run() -> int:
            chunks = client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0, stream=True)
            return sum(1 for _ in chunks)
        return run

    out: dict[str, dict[str, Callable[[], Any]]] = {
        "chat": {"bare SDK": chat(bare), "wrap (OTel SDK)": chat(wrapped), "wrap (no OTel SDK)": chat(wrapped_noop)},
        "stream": {"bare SDK": stream(bare), "wrap (OTel SDK)": stream(wrapped), "wrap (no OTel SDK)": stream(wrapped_noop)},
    }
    # LiteLLM fetches a remote price map on import unless told not to; this benchmark is offline.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        return out
    litellm.telemetry = False
    litellm.suppress_debug_info = True

    def ll_chat() -> Any:
        return litellm.completion(model=f"openai/{MODEL}", api_base=base_url, api_key="sk-bench", messages=MESSAGES, temperature=0)

    def ll_stream() -> int:
        chunks = litellm.completion(model=f"openai/{MODEL}", api_base=base_url, api_key="sk-bench", messages=MESSAGES,
                                    temperature=0, stream=True)
        return sum(1 for _ in chunks)

    out["chat"][f"litellm {litellm.__version__ if hasattr(litellm, '__version__') else ''}".strip()] = ll_chat
    out["stream"][f"litellm {litellm.__version__ if hasattr(litellm, '__version__') else ''}".strip()] = ll_stream
    return out


def measure(cases: dict[str, Callable[[], Any]], calls: int, warmup: int) -> dict[str, list[float]]:
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    rng = random.Random(0)
    for _ in range(calls):
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - start)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(times: dict[str, list[float]]) -> list[dict[str, Any]]:
    base = times["bare SDK"]
    rows = []
    for name, values in times.items():
        # paired per-round differences: each round ran every variant once, back to back
        diffs = [v - b for v, b in zip(values, base)]
        rows.append({
            "variant": name,
            "median_ms": statistics.median(values) * 1e3,
            "p99_ms": pct(values, 0.99) * 1e3,
            "added_median_ms": (statistics.median(values) - statistics.median(base)) * 1e3,
            "added_p99_ms": (pct(values, 0.99) - pct(base, 0.99)) * 1e3,
            "paired_added_median_ms": statistics.median(diffs) * 1e3,
        })
    return rows


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'variant':<22}{'median ms':>10}{'p99 ms':>9}{'added med':>11}{'added p99':>11}{'paired med':>12}")
    for r in rows:
        print(f"{r['variant']:<22}{r['median_ms']:>10.3f}{r['p99_ms']:>9.3f}{r['added_median_ms']:>11.3f}"
              f"{r['added_p99_ms']:>11.3f}{r['paired_added_median_ms']:>12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    import openai

    proc, base_url = start_server()
    try:
        results: dict[str, Any] = {
            "python": platform.python_version(), "openai": openai.__version__, "machine": platform.machine(),
            "calls": args.calls, "date": time.strftime("%Y-%m-%d"),
        }
        for kind, cases in variants(base_url).items():
            rows = summarise(measure(cases, args.calls, args.warmup))
            results[kind] = rows
            print_rows(f"{kind} ({args.calls} calls each, openai {openai.__version__})", rows)
            ours = next(r for r in rows if r["variant"] == "wrap (OTel SDK)")
            peer = next((r for r in rows if r["variant"].startswith("litellm")), None)
            if peer is not None and ours["paired_added_median_ms"] > 0:
                ratio = peer["paired_added_median_ms"] / ours["paired_added_median_ms"]
                results[f"{kind}_litellm_over_llmspend_overhead"] = ratio
                print(f"LiteLLM adds {ratio:.1f}x what llmspend adds (paired medians)")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=2)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
