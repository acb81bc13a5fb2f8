"""The four parts of a disk-cache hit, timed alone (``timeit``) and inside a loop of hits
through the ``openai`` SDK (``perf_counter`` around each function as the stage calls it), in
one run: reading the control headers, hashing the request into its key, diskcache's ``get``,
and decoding the entry. The SDK runs over an ``httpx2.MockTransport``; the first call stores
the answer, every later one is a hit. The in-loop figures include the timer's own cost (well
under a microsecond a call).

    PYTHONPATH=$PWD python benchmarks/profile_cache_parts.py [--calls 4000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import timeit
from collections.abc import Callable
from typing import Any

import llmspend
from llmspend.cache import disk as disk_module
from llmspend.stages import cache as stage_module
from bench_overhead_split import client as canned_client  # the canned SDK client, next to this file

MESSAGES = [{"role": "user", "content": "hi"}]
PARTS = {  # what the stage calls, by the name it imported it under
    "read the control headers": (stage_module, "read_controls"),
    "hash the request into its key": (stage_module, "cache_key"),
    "diskcache get": (disk_module.DiskCache, "get"),
    "decode the entry": (stage_module, "decode_entry"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4000)
    args = parser.parse_args()

    spent: dict[str, int] = dict.fromkeys(PARTS, 0)
    seen: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {}

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                return fn(*a, **k)
            finally:
                spent[label] += time.perf_counter_ns() - started
                seen.setdefault(label, (fn, a))  # the arguments of a real hit, for timeit below
        return wrapper

    originals = {label: getattr(owner, name) for label, (owner, name) in PARTS.items()}
    for label, (owner, name) in PARTS.items():
        setattr(owner, name, timed(label, originals[label]))
    try:
        client = canned_client()
        with tempfile.TemporaryDirectory() as directory:
            wrapped = llmspend.wrap(client, cache=directory)
            for _ in range(200):
                wrapped.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)  # type: ignore[arg-type]
            for label in spent:
                spent[label] = 0
            for _ in range(args.calls):
                wrapped.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)  # type: ignore[arg-type]
            alone = {}
            for label, (fn, call_args) in seen.items():
                number = 20_000
                alone[label] = min(timeit.repeat(lambda: fn(*call_args), number=number, repeat=3)) / number
            wrapped.close()
    finally:
        for label, (owner, name) in PARTS.items():
            setattr(owner, name, originals[label])
    print(f"{args.calls} disk hits through the openai SDK; microseconds per hit")
    print(f"{'part':32} {'alone (timeit)':>15} {'in the loop':>12}")
    for label in PARTS:
        print(f"{label:32} {alone[label] * 1e6:15.1f} {spent[label] / args.calls / 1e3:12.1f}")


if __name__ == "__main__":
    main()
