"""Fixtures for the Anthropic plugin's tests: the official SDK against a local fake API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers_anthropic import MODEL, Spans

from llmspend.pricing.table import ModelPrice, coerce_prices
from llmspend.testing import FakeLLMServer, RecordingRetryStage
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
def fast_retry() -> RecordingRetryStage:
    """A retry stage that records its waits instead of sleeping."""
    return RecordingRetryStage()


@pytest.fixture
def row() -> ModelPrice:
    found = coerce_prices(None).lookup(MODEL, provider="anthropic")
    assert found is not None
    return found
