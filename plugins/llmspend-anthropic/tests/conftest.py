"""Fixtures for the Anthropic plugin's tests: the official SDK against a local fake API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers_anthropic import MODEL, Spans

from llmspend.pricing.table import ModelPrice, coerce_prices
from llmspend.stages.retry import RetryPolicy, RetryStage
from llmspend.testing import FakeLLMServer
from llmspend_anthropic.testing import FakeAnthropicAPI


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as s:
        yield s


@pytest.fixture
def api(server: FakeLLMServer) -> FakeAnthropicAPI:
    return FakeAnthropicAPI(server)


@pytest.fixture
def spans() -> Spans:
    return Spans()


@pytest.fixture
def fast_retry() -> RetryStage:
    """A retry stage that records its waits instead of sleeping."""
    waits: list[float] = []

    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    stage = RetryStage(RetryPolicy(), sleep=waits.append, asleep=asleep)
    stage.waits = waits  # type: ignore[attr-defined]
    return stage


@pytest.fixture
def row() -> ModelPrice:
    found = coerce_prices(None).lookup(MODEL, provider="anthropic")
    assert found is not None
    return found
