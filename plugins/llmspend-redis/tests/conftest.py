"""Fixtures for the Redis plugin's tests: a real redis-server started for a test (free port,
temporary directory, no persistence, killed at the end), the plugin's entry points as its
pyproject.toml declares them, the fake OpenAI-compatible server, and in-memory spans. Tests that
need redis-server skip, saying why, when it is not installed."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmspend import plugins
from llmspend.testing import FakeLLMServer
from llmspend_redis.testing import RedisServer, redis_server_binary


PLUGIN_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def entry_points_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plugin's entry points as its pyproject.toml declares them, whether or not the
    plugin is installed (and whatever the autoload variable says), so ``redis://`` URLs
    resolve as they would for a user."""
    declared = tomllib.loads((PLUGIN_ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    dist = tmp_path / "llmspend_redis_probe-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: llmspend-redis-probe\nVersion: 0.1\n")
    lines = [f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in items.items())
             for group, items in declared.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugins.AUTOLOAD_ENV, raising=False)
    plugins.reload()
    yield
    plugins.reload()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run installs it)")
    with RedisServer() as server:
        yield server


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as s:
        yield s


class RedisTestSpans:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def attrs(self, index: int = -1) -> dict[str, Any]:
        return dict(self.exporter.get_finished_spans()[index].attributes or {})


@pytest.fixture
def spans() -> RedisTestSpans:
    return RedisTestSpans()
