"""``llmspend batch submit | status | collect``: bulk work through a provider's Batch API.

    llmspend batch submit requests.jsonl --wait
    llmspend batch status
    llmspend batch collect --out results.jsonl

``submit`` checks the file, uploads it and starts a job, and remembers the job (its id,
provider, base URL and input file; never the API key) in a small state file, so ``status``
and ``collect`` work without an id. ``collect`` writes one line per request, in the input's
order, matched by ``custom_id``, and prints what the job cost at batch prices next to what
the same calls would have cost at regular ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..batching.jobs import BatchBackend, JobStatus, batch_backends, check_limits, read_requests
from ..batching.results import ModelCost, match_results, price_results
from ..exceptions import ConfigError
from ..pricing.table import coerce_prices
from ._table import format_table, usd

STATE_ENV = "LLMSPEND_STATE_DIR"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "batch",
        help="bulk work through a provider's Batch API, at batch prices",
        description="Submit a JSONL file of requests (OpenAI Batch API format) to a provider's Batch API, "
        "follow it, and collect its results matched to the requests by custom_id, with what they cost "
        "at batch prices (half the regular price at OpenAI).",
    )
    commands = parser.add_subparsers(dest="batch_command", metavar="SUBCOMMAND")
    parser.set_defaults(parser=parser)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = commands.add_parser(name, help=help, description=help)
        command.add_argument("--provider", help="batch backend (default: the job's, else openai)")
        command.add_argument("--base-url", help="API base URL (default: the job's, else the provider SDK's: "
                             "OPENAI_BASE_URL, ANTHROPIC_BASE_URL, or the provider's own)")
        command.add_argument("--api-key", help="API key (default: the provider's variable, OPENAI_API_KEY or "
                             "ANTHROPIC_API_KEY); never printed or stored")
        command.add_argument("--state", metavar="FILE", help=f"where submitted jobs are remembered "
                             f"(default: ${STATE_ENV}/batches.json, else ~/.llmspend/batches.json)")
        command.add_argument("--poll-s", type=float, default=10.0, help="seconds between status checks with --wait (default 10)")
        return command

    submit = add("submit", "check a JSONL file of requests, upload it and start a batch job")
    submit.add_argument("file", help="JSONL: one {custom_id, method, url, body} request per line")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends, showing progress")
    submit.set_defaults(func=run_submit, parser=submit)

    status = add("status", "show a batch job's status and progress")
    status.add_argument("id", nargs="?", help="the job id (default: the last one submitted)")
    status.set_defaults(func=run_status, parser=status)

    collect = add("collect", "download a finished job's results, matched to the requests, with their cost")
    collect.add_argument("id", nargs="?", help="the job id (default: the last one submitted)")
    collect.add_argument("--out", required=True, help="where to write the results (JSONL, in the input's order)")
    collect.add_argument("--input", help="the submitted JSONL file (default: the one remembered at submit)")
    collect.add_argument("--prices", help="a price file (llmspend or LiteLLM format) on top of the shipped table")
    collect.add_argument("--wait", action="store_true", help="wait for the job to end first, showing progress")
    collect.set_defaults(func=run_collect, parser=collect)


# -- remembered jobs -------------------------------------------------------------------------
def _state_file(args: argparse.Namespace) -> Path:
    if args.state:
        return Path(args.state)
    root = os.environ.get(STATE_ENV)
    return (Path(root) if root else Path.home() / ".llmspend") / "batches.json"


def _load_jobs(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the batch state file {path}: {exc}; remove it or pass --state") from exc
    jobs = data.get("jobs") if isinstance(data, dict) else None
    return [j for j in jobs if isinstance(j, dict) and isinstance(j.get("id"), str)] if isinstance(jobs, list) else []


def _remember(path: Path, job: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    jobs = [j for j in _load_jobs(path) if j["id"] != job["id"]] + [job]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"jobs": jobs[-100:]}, handle, indent=1)
    os.replace(tmp, path)


def _job_and_backend(args: argparse.Namespace) -> tuple[dict[str, Any], BatchBackend]:
    """The remembered job named by ``args.id`` (or the last one) and a backend to reach it."""
    jobs = _load_jobs(_state_file(args))
    if args.id:
        job = next((j for j in reversed(jobs) if j["id"] == args.id), {"id": args.id})
    elif jobs:
        job = jobs[-1]
    else:
        raise ConfigError("no job id given and none submitted from here yet: llmspend batch status ID")
    return job, _backend(args.provider or job.get("provider"), args.base_url or job.get("base_url"), args.api_key)


def _backend(provider: str | None, base_url: str | None, api_key: str | None) -> BatchBackend:
    backends = batch_backends()
    name = provider or "openai"
    factory = backends.get(name)
    if factory is None:
        raise ConfigError(f"no batch backend for provider {name!r}; known: {', '.join(sorted(backends))}")
    # No key given: each backend's SDK reads its own provider's variable (OPENAI_API_KEY,
    # ANTHROPIC_API_KEY); a fallback here would send one provider's key to another.
    return factory(base_url, api_key)


# -- progress ------------------------------------------------------------------------------
class _Progress:
    """A tqdm bar on stderr where tqdm is installed, else a line each time the count changes."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._last: tuple[str, int] | None = None
        try:
            from tqdm import tqdm  # type: ignore[import-untyped]
        except ImportError:
            self._bar: Any = None
        else:
            self._bar = tqdm(desc=job_id, unit="req", file=sys.stderr, leave=True)

    def update(self, job: JobStatus) -> None:
        done = job.completed + job.failed
        if self._bar is not None:
            if job.total and self._bar.total != job.total:
                self._bar.total = job.total
            self._bar.n = done
            self._bar.set_postfix_str(job.status, refresh=True)
        elif (job.status, done) != self._last:
            print(f"{self.job_id}: {job.status} {done}/{job.total or '?'}", file=sys.stderr)
        self._last = (job.status, done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _follow(backend: BatchBackend, job: JobStatus, poll_s: float) -> JobStatus:
    progress = _Progress(job.id)
    try:
        progress.update(job)
        while not job.done:
            time.sleep(poll_s)
            job = backend.status(job.id)
            progress.update(job)
    finally:
        progress.close()
    return job


def _describe(job: JobStatus) -> str:
    line = f"{job.id}: {job.status}, {job.completed} completed and {job.failed} failed of {job.total} requests"
    return line + "".join(f"\n  {e}" for e in job.errors)


# -- commands ------------------------------------------------------------------------------
def run_submit(args: argparse.Namespace) -> int:
    source = Path(args.file)
    requests = read_requests(source)  # checked before anything is uploaded
    backend = _backend(args.provider, args.base_url, args.api_key)
    check_limits(requests, source, backend)
    job = backend.submit(requests, source)
    _remember(_state_file(args), {
        "id": job.id, "provider": backend.provider, "base_url": args.base_url, "input": str(source.resolve()),
        "endpoint": requests[0].url, "requests": len(requests), "submitted_at": int(time.time()),
    })
    print(f"submitted {len(requests)} requests to {requests[0].url} as batch {job.id} ({job.status})")
    if args.wait:
        job = _follow(backend, job, args.poll_s)
        print(_describe(job))
        if job.status != "completed":
            return 1
    print(f"collect with: llmspend batch collect {job.id} --out results.jsonl")
    return 0


def run_status(args: argparse.Namespace) -> int:
    job, backend = _job_and_backend(args)
    status = backend.status(job["id"])
    print(_describe(status))
    return 1 if status.status in ("failed", "expired", "cancelled") else 0


def run_collect(args: argparse.Namespace) -> int:
    remembered, backend = _job_and_backend(args)
    job = backend.status(remembered["id"])
    if args.wait:
        job = _follow(backend, job, args.poll_s)
    if not job.done:
        print(f"{_describe(job)}\nnot finished yet; try again later or add --wait")
        return 1
    if job.status == "failed":
        print(_describe(job))
        return 1
    source = args.input or remembered.get("input")
    if not source:
        raise ConfigError("pass --input FILE.jsonl (the file you submitted) to match the results to its requests")
    requests = read_requests(source)
    matched, stray = match_results(requests, backend.results(job))
    _write_results(Path(args.out), matched)
    counts = {"succeeded": 0, "failed": 0, "missing": 0}
    for item in matched:
        counts[_outcome_of(item.result)] += 1
    print(f"{job.id}: {job.status}; {counts['succeeded']} succeeded, {counts['failed']} failed, "
          f"{counts['missing']} without a result; written to {args.out} in the input's order")
    if stray:
        print(f"{len(stray)} result(s) matched no request of {source} (custom_id "
              f"{', '.join(sorted({r.custom_id for r in stray})[:5])}); they are not in {args.out}")
    prices = coerce_prices(args.prices)
    print()
    print(_cost_table(price_results(matched, prices, backend.adapter, backend.origin)))
    return 0


def _outcome_of(result: Any) -> str:
    if result is None:
        return "missing"
    return "succeeded" if result.ok else "failed"


def _write_results(path: Path, matched: list[Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for item in matched:
            result = item.result
            handle.write(json.dumps({
                "custom_id": item.request.custom_id,
                "status": _outcome_of(result),
                "status_code": result.status_code if result else None,
                "response": result.body if result else None,
                "error": result.error if result else None,
            }, ensure_ascii=False) + "\n")


def _cost_table(rows: dict[str, ModelCost]) -> str:
    table: list[tuple[object, ...]] = []
    total_batch: float | None = 0.0
    total_regular: float | None = 0.0
    for model in sorted(rows):
        r = rows[model]
        note = "" if r.batch_priced else " (no batch price)"
        table.append((model, r.requests, r.succeeded, r.failed + r.missing, r.input_tokens, r.cached_tokens,
                      r.output_tokens, usd(r.batch_usd) + note, usd(r.regular_usd)))
        total_batch = None if total_batch is None or r.batch_usd is None else total_batch + r.batch_usd
        total_regular = None if total_regular is None or r.regular_usd is None else total_regular + r.regular_usd
    table.append(("total", sum(r.requests for r in rows.values()), "", "", "", "", "", usd(total_batch), usd(total_regular)))
    text = format_table(["model", "requests", "ok", "failed", "input tok", "cached tok", "output tok",
                         "cost (batch)", "cost (regular)"], table, right=(1, 2, 3, 4, 5, 6, 7, 8))
    if total_batch is not None and total_regular:
        text += f"\n\nbatch prices saved {usd(total_regular - total_batch)} ({1 - total_batch / total_regular:.0%}) on these calls"
    return text
