"""llmspend's retry stage with Anthropic requests: 429 (honouring retry-after) and 529
overloaded retried, attempts not multiplied with the SDK's own retries, other errors reaching
the caller as the SDK's own exception types."""

from __future__ import annotations

import anthropic
import pytest
from helpers_anthropic import MODEL, Spans, async_client, sync_client

from llmspend.stages.retry import RetryStage
from llmspend.testing import FakeLLMServer
from llmspend_anthropic.testing import FakeAnthropicAPI

HI = [{"role": "user", "content": "hi"}]


def _retried_once(server: FakeLLMServer, spans: Spans, reason: str) -> None:
    assert len(server.requests) == 2
    span = spans.one()
    (event,) = span.events
    assert event.name == "llmspend.retry"
    assert event.attributes is not None and event.attributes["llmspend.retry.reason"] == reason
    attrs = dict(span.attributes or {})
    assert "error.type" not in attrs
    assert attrs["llmspend.cost.usd"] > 0  # one call, priced once, for the attempt that answered


def test_429_then_success(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, fast_retry: RetryStage) -> None:
    api.fail_next(429, retry_after=0.75)
    client = sync_client(server, spans, retry=fast_retry)
    assert client.max_retries == 0  # the SDK's own retries are off: attempts do not multiply
    message = client.messages.create(model=MODEL, max_tokens=50, messages=HI)
    assert message.content
    assert fast_retry.waits == [0.75]  # type: ignore[attr-defined]  # the API's retry-after
    _retried_once(server, spans, "429")


def test_with_options_max_retries_caps_llmspends_retries(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                         fast_retry: RetryStage) -> None:
    api.fail_next(529, times=10)
    copied = sync_client(server, spans, retry=fast_retry).with_options(max_retries=1)
    assert copied.max_retries == 0
    with pytest.raises(anthropic.InternalServerError):
        copied.messages.create(model=MODEL, max_tokens=50, messages=HI)
    assert len(server.requests) == 2  # one retry, not the SDK's 2 times llmspend's 3


def test_529_overloaded_then_success(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, fast_retry: RetryStage) -> None:
    api.fail_next(529)
    message = sync_client(server, spans, retry=fast_retry).messages.create(model=MODEL, max_tokens=50, messages=HI)
    assert message.content
    waits = fast_retry.waits  # type: ignore[attr-defined]
    assert len(waits) == 1 and 0 <= waits[0] <= 8  # no retry-after: jittered backoff
    _retried_once(server, spans, "529")


async def test_429_and_529_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, fast_retry: RetryStage) -> None:
    api.fail_next(429, retry_after=0.5)
    api.fail_next(529)
    message = await async_client(server, spans, retry=fast_retry).messages.create(model=MODEL, max_tokens=50, messages=HI)
    assert message.content
    assert len(server.requests) == 3
    assert [e.attributes["llmspend.retry.reason"] for e in spans.one().events] == ["429", "529"]  # type: ignore[index]


def test_529_until_retries_run_out(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, fast_retry: RetryStage) -> None:
    api.fail_next(529, times=10)
    with pytest.raises(anthropic.OverloadedError) as info:  # the SDK's own type for the last answer
        sync_client(server, spans, retry=fast_retry).messages.create(model=MODEL, max_tokens=50, messages=HI)
    assert info.value.type == "overloaded_error"
    assert len(server.requests) == 3
    attrs = spans.attrs()
    assert attrs["error.type"] == "529" and "llmspend.cost.usd" not in attrs


def test_streamed_call_retried(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, fast_retry: RetryStage) -> None:
    api.fail_next(529)
    with sync_client(server, spans, retry=fast_retry).messages.stream(model=MODEL, max_tokens=50, messages=HI) as stream:
        final = stream.get_final_message()
    assert final.content
    _retried_once(server, spans, "529")


@pytest.mark.parametrize("async_", [False, True])
async def test_bad_request_is_not_retried(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, fast_retry: RetryStage, async_: bool) -> None:
    # max_tokens=0 is a real invalid request: the fake API answers it as the API does
    with pytest.raises(anthropic.BadRequestError) as info:
        if async_:
            await async_client(server, spans, retry=fast_retry).messages.create(model=MODEL, max_tokens=0, messages=HI)
        else:
            sync_client(server, spans, retry=fast_retry).messages.create(model=MODEL, max_tokens=0, messages=HI)
    assert info.value.type == "invalid_request_error" and "max_tokens" in info.value.message
    assert len(server.requests) == 1
    assert fast_retry.waits == []  # type: ignore[attr-defined]
    assert spans.attrs()["error.type"] == "400"


def test_sdk_retries_kept_with_retry_off(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = sync_client(server, spans, retry=False)
    assert client.max_retries == 2  # the SDK's default, untouched
    api.fail_next(529)
    assert client.with_options(max_retries=1, timeout=5).messages.create(model=MODEL, max_tokens=50, messages=HI).content
    assert len(server.requests) == 2
