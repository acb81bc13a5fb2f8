"""Where a disk-cache hit spends its time: cProfile over N hits through the ``openai`` SDK.

The SDK runs over an ``httpx2.MockTransport`` (the answer is stored on the first call, every
later call is a hit), so the profile holds the SDK, llmspend's pipeline and the cache stage,
and no network. Profiling slows every function call, so read the shares, not the times.

    PYTHONPATH=$PWD python benchmarks/profile_cache_hit.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile

import llmspend

# the SDK over a mock transport that gives every call the same chat completion (next to this file)
from bench_overhead_split import client as canned_client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    client = canned_client()
    with tempfile.TemporaryDirectory() as directory:
        wrapped = llmspend.wrap(client, cache=directory)
        messages = [{"role": "user", "content": "hi"}]
        for _ in range(50):
            wrapped.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)  # type: ignore[arg-type]
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.calls):
            wrapped.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)  # type: ignore[arg-type]
        profile.disable()
    stats = pstats.Stats(profile)
    cumulative = {(path, name): row[3] for (path, _, name), row in stats.stats.items()}  # type: ignore[attr-defined]

    def seconds(module: str, name: str) -> float:
        return float(sum(t for (path, n), t in cumulative.items() if n == name and path.endswith(module)))

    stage = seconds("stages/cache.py", "handle")
    total = seconds("transports/_library.py", "handle_request")
    print(f"{args.calls} hits; under the profiler the cache stage took {stage / total:.0%} of llmspend's transport time")
    found = {
        "read the control headers, hash the key": seconds("stages/cache.py", "_plan"),
        "diskcache get (SQLite)": seconds("cache/disk.py", "get"),
        "decode the entry into a response": seconds("stages/cache.py", "_read"),
    }
    for label, t in found.items():
        print(f"  {label:<42} {t / stage:.0%} of the cache stage")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
