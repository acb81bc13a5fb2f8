"""How fast ``llmspend report`` reads spans, and that its memory does not grow with the file.

Writes N synthetic spans (console-exporter JSON lines, ``llmspend.testing.spans``) to a temp
directory, then, each in a fresh process so peak RSS is that run's alone:

- reads the first N/10 lines and all N lines with ``build_report`` (wall time, spans/s, peak
  RSS): memory at N over memory at N/10 should be about 1, time about 10;
- reads the N/10 file again and parses it with bare ``json.loads`` and nothing else (the floor
  any Python reader pays), alternating, best of three each: report time / parse time is the
  reader's own overhead, measured side by side;
- imports llmspend.report and reads nothing: the interpreter's own RSS, for scale.

The totals are checked against what the generator wrote. Run:

    PYTHONPATH=$PWD python benchmarks/bench_report.py            # 1,000,000 spans (~830 MB on disk)
    PYTHONPATH=$PWD python benchmarks/bench_report.py --spans 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def _child(mode: str, path: str) -> None:
    from llmspend.report import build_report  # imports are not part of the timing

    start = time.perf_counter()
    out: dict[str, object] = {}
    if mode == "report":
        report = build_report(path, progress=False)
        out = {"calls": report.total.calls, "cost_usd": report.total.cost_usd, "unknown": report.total.unknown_cost_calls}
    elif mode == "json":
        with open(path, "rb") as f:
            out = {"lines": sum(1 for line in f if json.loads(line) is not None)}
    # mode "baseline": the import above and nothing else
    out["seconds"] = time.perf_counter() - start
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(out))


def _run(mode: str, path: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                          check=True, env={**os.environ, "LLMSPEND_DISABLE_PLUGIN_AUTOLOAD": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load:.1f} at start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    from llmspend.testing.spans import write_synthetic_spans

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {_machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="llmspend-bench-report-"))
    try:
        full, tenth = tmp / "spans.jsonl", tmp / "tenth.jsonl"
        start = time.perf_counter()
        truth = write_synthetic_spans(full, args.spans, seed=args.seed)
        print(f"wrote {args.spans:,} spans ({full.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - start:,.1f} s")
        with full.open("rb") as src, tenth.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= args.spans // 10:
                    break
                dst.write(line)

        base = _run("baseline", full)
        small = _run("report", tenth)
        large = _run("report", full)
        assert large["calls"] == truth.calls and large["unknown"] == truth.unknown
        assert abs(large["cost_usd"] - truth.cost_usd) <= 1e-9 * max(1.0, truth.cost_usd)
        # Side by side on the N/10 file, alternating, best of three each: the ratio is what
        # the reader adds to parsing alone, robust to a busy machine.
        report_s, parse_s = [], []
        for _ in range(3):
            report_s.append(_run("report", tenth)["seconds"])
            parse_s.append(_run("json", tenth)["seconds"])

        n10, size10, size = args.spans // 10, tenth.stat().st_size / 1e6, full.stat().st_size / 1e6
        rows = [
            ("import only", "-", "-", "-", f"{base['max_rss_mb']:.0f}"),
            (f"report, {n10:,} spans", f"{small['seconds']:.1f}", f"{n10 / small['seconds']:,.0f}",
             f"{size10 / small['seconds']:.0f}", f"{small['max_rss_mb']:.0f}"),
            (f"report, {args.spans:,} spans", f"{large['seconds']:.1f}", f"{args.spans / large['seconds']:,.0f}",
             f"{size / large['seconds']:.0f}", f"{large['max_rss_mb']:.0f}"),
            (f"report, {n10:,} spans, best of 3", f"{min(report_s):.2f}", f"{n10 / min(report_s):,.0f}",
             f"{size10 / min(report_s):.0f}", "-"),
            (f"json.loads only, {n10:,} lines, best of 3", f"{min(parse_s):.2f}", f"{n10 / min(parse_s):,.0f}",
             f"{size10 / min(parse_s):.0f}", "-"),
        ]
        print("\n| run | seconds | spans/s | MB/s | peak RSS MB |\n|---|---:|---:|---:|---:|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print(f"\npeak RSS at {args.spans:,} / at {n10:,} spans: {large['max_rss_mb'] / small['max_rss_mb']:.2f}; "
              f"above import only: {large['max_rss_mb'] - base['max_rss_mb']:.0f} MB vs "
              f"{small['max_rss_mb'] - base['max_rss_mb']:.0f} MB")
        print(f"report time / json.loads time (best of 3, alternating): {min(report_s) / min(parse_s):.2f}")
        print(f"totals match the generator: {truth.calls:,} calls, ${truth.cost_usd:,.2f}, {truth.unknown:,} unknown")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
