"""What attribution and budgets cost per call: ledger operations alone, and whole calls through
the openai SDK against the local fake server (in a process of its own), side by side in one run
(ratios, since the machines are shared and noisy).

    python benchmarks/budget_overhead.py [--calls 300] [--ops 2000]

The Redis rows need a redis-server binary (started here on a free port, in a temporary
directory, and stopped at the end); they are skipped, saying so, without one.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai

import llmspend
from llmspend.demo.app import system_prompt
from llmspend.ledger import DiskLedger, Ledger, MemoryLedger
from llmspend.periods import period_window

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "llmspend-redis"))


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import redis

            client = redis.Redis(port=port)
            for _ in range(200):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@contextlib.contextmanager
def fake_server_process() -> Iterator[str]:
    """The fake server in a process of its own, as a provider is: in the client's process its
    threads would compete with the client for the GIL and blur the figures."""
    code = ("import sys, time; from llmspend.testing import FakeLLMServer; s = FakeLLMServer().start(); "
            "print(s.base_url, flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def ledger_ops(ledger: Ledger, ops: int, gap_s: float = 0.0) -> list[float]:
    """Reserve + settle pairs, back to back or ``gap_s`` apart (a store that sleeps between
    requests, as between real calls, answers more slowly than one kept busy)."""
    window = period_window("day", time.time())
    times = []
    for _ in range(ops):
        start = time.perf_counter()
        reservation = ledger.reserve("bench/day", 0.001, 1e9, window)
        assert reservation is not None
        ledger.settle(reservation, 0.0005)
        times.append(time.perf_counter() - start)
        if gap_s:
            time.sleep(gap_s)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per variant (default 300)")
    parser.add_argument("--ops", type=int, default=2000, help="reserve+settle pairs per ledger (default 2000)")
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    with redis_server() as redis_url, tempfile.TemporaryDirectory() as tmp:
        ledgers: dict[str, Ledger] = {"memory": MemoryLedger(), "disk": DiskLedger(Path(tmp) / "ledger")}
        if redis_url:
            from llmspend_redis.ledger import RedisLedger

            ledgers["redis"] = RedisLedger(redis_url)
        else:
            print("redis rows skipped: no redis-server on PATH")

        print(f"\nledger reserve + settle, {args.ops} pairs each (one thread); last column: 300 pairs 1 ms apart")
        print(f"{'ledger':<8} {'median us':>10} {'p99 us':>10} {'1ms gaps':>10}")
        for name, ledger in ledgers.items():
            t = ledger_ops(ledger, args.ops)
            gapped = ledger_ops(ledger, 300, gap_s=0.001)
            print(f"{name:<8} {statistics.median(t) * 1e6:>10.1f} {pct(t, 0.99) * 1e6:>10.1f} "
                  f"{statistics.median(gapped) * 1e6:>10.1f}")

        with fake_server_process() as base_url:
            client = llmspend.wrap(openai.OpenAI(base_url=base_url, api_key="sk-bench"))
            short = [{"role": "user", "content": "How long does a refund take?"}]
            # the demo app's ~1,500-token system prompt: a budget counts its tokens on every call
            long = [{"role": "system", "content": system_prompt()}, *short]

            def call(messages: list[dict[str, str]] = short) -> Any:
                return client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=50)

            def long_call() -> Any:
                return call(long)

            variants: dict[str, Callable[[], Any]] = {"wrap only": call}
            variants["track(feature)"] = llmspend.track(feature="bench")(call)
            for name, ledger in ledgers.items():
                variants[f"budget, {name} ledger"] = llmspend.track(
                    feature=f"bench-{name}", budget_usd=1e6, period="day", ledger=ledger)(call)
            variants["wrap only, long prompt"] = long_call
            variants["budget, memory, long"] = llmspend.track(
                feature="bench-long", budget_usd=1e6, period="day", ledger=ledgers["memory"])(long_call)
            for fn in variants.values():  # warm up: connections, tokenizer, scripts
                for _ in range(20):
                    fn()
            times: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.calls):  # one call of each variant in turn: drift hits all alike
                for name, fn in variants.items():
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
        print(f"\nwhole call through the openai SDK to the local server, {args.calls} calls per variant "
              f"(long: a 1,500-token prompt, compared with wrap only on the same prompt)")
        print(f"{'variant':<24} {'median ms':>10} {'p99 ms':>8} {'added ms':>9} {'ratio':>6}")
        for name, t in times.items():
            base = statistics.median(times["wrap only, long prompt" if "long" in name else "wrap only"])
            median = statistics.median(t)
            print(f"{name:<24} {median * 1e3:>10.3f} {pct(t, 0.99) * 1e3:>8.3f} {(median - base) * 1e3:>9.3f} "
                  f"{median / base:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
