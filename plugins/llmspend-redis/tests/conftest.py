"""Fixtures for the Redis plugin's tests: a real redis-server started for each test (free port,
temporary directory, no persistence, killed at the end), the fake OpenAI-compatible server, and
in-memory spans. Tests that need redis-server skip, saying why, when it is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmspend import plugins
from llmspend.testing import FakeLLMServer
from llmspend_redis.testing import RedisServer, redis_server_binary


@pytest.fixture(autouse=True)
def plugins_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This plugin is found through its entry points, whatever the environment says."""
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
