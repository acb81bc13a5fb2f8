"""``llmspend cache stats`` / ``clear`` and the demo's cache section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

import llmspend
from llmspend.cli import main
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY


def _fill(server: FakeLLMServer, directory: Path) -> float:
    """Two questions asked twice each; returns what the two hits saved."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), cache=str(directory),
                           tracer_provider=provider)
    for question in ("a", "b", "a", "b"):
        client.chat.completions.create(model="gpt-4o", temperature=0, messages=[{"role": "user", "content": question}])
    client.close()  # writes the counters out
    return sum(s.attributes.get("llmspend.cost.saved_usd", 0.0) for s in exporter.get_finished_spans())  # type: ignore[union-attr,misc]


def test_stats_and_clear(server: FakeLLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "c"
    saved = _fill(server, directory)
    assert saved > 0
    assert main(["cache", "stats", "--dir", str(directory), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["hits"], stats["misses"], stats["stores"], stats["errors"]) == (2, 2, 2, 2, 0)
    assert stats["saved_usd"] == pytest.approx(saved)
    assert stats["bytes"] > 0 and stats["location"] == str(directory)
    assert main(["cache", "stats", "--dir", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "entries  2" in out and "(50% of lookups)" in out and f"${saved:,.6f}" in out
    assert main(["cache", "clear", "--dir", str(directory)]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert main(["cache", "stats", "--dir", str(directory), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["hits"], stats["saved_usd"]) == (0, 0, 0.0)


def test_default_directory_and_missing_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLMSPEND_CACHE_DIR", str(tmp_path / "nothing-yet"))
    assert main(["cache", "stats"]) == 0
    assert "no cache in" in capsys.readouterr().out
    assert not (tmp_path / "nothing-yet").exists()  # looking does not create it


def test_unknown_url_scheme_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "stats", "--url", "memcached://localhost:11211"]) == 2
    assert "no cache backend handles memcached://" in capsys.readouterr().err


def test_demo_section_shows_the_savings(capsys: pytest.CaptureFixture[str]) -> None:
    from llmspend.demo import run_demo

    result = run_demo(rounds=2, sections=["cache"])
    out = capsys.readouterr().out
    assert "A disk cache" in out and "saved by the cache" in out
    rounds = result.sections["cache"]["rounds"]
    assert rounds[1]["hits"] == rounds[1]["calls"] and rounds[1]["paid_usd"] == 0.0
    assert rounds[1]["saved_usd"] == pytest.approx(rounds[0]["paid_usd"] + rounds[0]["saved_usd"])
    hits = [s for s in result.spans if s["attributes"].get("llmspend.cache.hit")]
    assert hits and all(s["attributes"]["llmspend.cost.usd"] == 0.0 for s in hits)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_no_count_is_lost_when_a_fault_comes_due(server: FakeLLMServer, tmp_path: Path, use_async: bool,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A fault counted when the counters were due to be written out (about once a second in a
    running app; every time here) must not take the counts pending with it."""
    import asyncio

    from llmspend.stages import cache as cache_stage

    monkeypatch.setattr(cache_stage, "_FLUSH_INTERVAL_S", 0.0)
    directory = str(tmp_path / "c")
    ask: dict[str, Any] = dict(model="gpt-4o", temperature=0, messages=[{"role": "user", "content": "q"}])
    bad = {"x-llmspend-cache-ttl": "soon"}
    if use_async:
        async def run() -> None:
            client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), cache=directory)
            await client.chat.completions.create(**ask)
            await client.chat.completions.create(**ask, extra_headers=bad)
            await client.chat.completions.create(**ask)
            await client.close()
        asyncio.run(run())
    else:
        client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), cache=directory)
        client.chat.completions.create(**ask)
        client.chat.completions.create(**ask, extra_headers=bad)
        client.chat.completions.create(**ask)
        client.close()
    assert main(["cache", "stats", "--dir", directory, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["hits"], stats["misses"], stats["stores"], stats["errors"]) == (1, 1, 1, 1)


@pytest.mark.parametrize("command", ["stats", "clear"])
def test_a_directory_that_holds_no_cache_is_left_as_it_was(command: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``--dir`` naming a directory of the user's (a typo, a parent of the cache) must not
    turn it into a cache: no shards written into it, its permissions not narrowed."""
    directory = tmp_path / "project"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    (directory / "notes.txt").write_text("mine")
    assert main(["cache", command, "--dir", str(directory)]) == 0
    assert "no llmspend cache in" in capsys.readouterr().out
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]
    assert directory.stat().st_mode & 0o777 == 0o755


_EXIT_SCRIPT = """
import os, sys
import httpx2, openai, llmspend
base_url, directory, fork = sys.argv[1], sys.argv[2], sys.argv[3] == "fork"
# an HTTP client of the app's own: the SDK does not close it when the process ends
http = httpx2.Client()
client = llmspend.wrap(openai.OpenAI(base_url=base_url, api_key="sk-test-exit", http_client=http), cache=directory)
for _ in range(3):  # a miss, then two hits: all within the second the counts wait to be written
    client.chat.completions.create(model="gpt-4o", temperature=0, messages=[{"role": "user", "content": "q"}])
if fork:
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # the child exits as a worker process does: its exit handlers run
    os.waitpid(pid, 0)
# no client.close(): most apps never close their client
"""


@pytest.mark.parametrize("fork", [False, True], ids=["exit", "fork-then-exit"])
def test_counts_pending_at_exit_are_written_once(server: FakeLLMServer, tmp_path: Path, fork: bool,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A process that exits without closing its client still has its last counts written, and
    a forked child does not write its copy of its parent's counts a second time."""
    import subprocess
    import sys

    directory = str(tmp_path / "c")
    subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, server.base_url, directory, "fork" if fork else "no"],
                   check=True, timeout=60)
    assert main(["cache", "stats", "--dir", directory, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["hits"], stats["misses"], stats["stores"]) == (2, 1, 1)
    assert stats["saved_usd"] > 0
