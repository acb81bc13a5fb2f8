"""Retries: transient failures retried with backoff, attempts never multiplied with the SDK's,
other errors reaching the caller as the SDK's own exception types."""

from __future__ import annotations

import logging

from typing import Any

import openai
import pytest

import llmspend
from llmspend._http import Headers
from llmspend.stages.retry import RetryPolicy, RetryStage, retry_after_seconds, should_retry_status
from llmspend.testing import FakeLLMServer, RecordingRetryStage

from .conftest import API_KEY, Spans

MESSAGES = [{"role": "user", "content": "hi"}]


def _client(server: FakeLLMServer, spans: Spans, retry: Any) -> openai.OpenAI:
    return llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider, retry=retry)


def test_429_then_success(server: FakeLLMServer, spans: Spans, fast_retry: RetryStage) -> None:
    server.fail_next(429, headers={"retry-after": "0.25"})
    r = _client(server, spans, fast_retry).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert r.choices
    assert len(server.requests) == 2
    assert fast_retry.waits == [0.25]  # type: ignore[attr-defined]  # the provider's Retry-After
    span = spans.one()
    (event,) = span.events
    assert event.name == "llmspend.retry"
    assert event.attributes["llmspend.retry.reason"] == "429"  # type: ignore[index]
    assert event.attributes["llmspend.retry.attempt"] == 1  # type: ignore[index]
    assert "error.type" not in (span.attributes or {})
    assert span.attributes["llmspend.cost.usd"] > 0  # type: ignore[index]


def test_500_until_retries_run_out(server: FakeLLMServer, spans: Spans, fast_retry: RetryStage) -> None:
    server.fail_next(500, times=10)
    with pytest.raises(openai.InternalServerError):  # the SDK's own exception type
        _client(server, spans, fast_retry).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    # 3 attempts in all: the SDK's own retries were turned off, so they do not multiply
    assert len(server.requests) == 3
    span = spans.one()
    assert [e.attributes["llmspend.retry.attempt"] for e in span.events] == [1, 2]  # type: ignore[index]
    assert span.attributes["error.type"] == "500"  # type: ignore[index]
    assert "llmspend.cost.usd" not in (span.attributes or {})
    waits = fast_retry.waits  # type: ignore[attr-defined]
    assert len(waits) == 2 and all(0 <= w <= RetryPolicy().max_backoff_s for w in waits)


def test_not_retried_errors_reach_caller_unchanged(server: FakeLLMServer, spans: Spans, fast_retry: RetryStage) -> None:
    server.fail_next(400, body={"error": {"message": "bad things", "type": "invalid_request_error", "code": "bad"}})
    with pytest.raises(openai.BadRequestError) as info:
        _client(server, spans, fast_retry).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.code == "bad" and "bad things" in info.value.message
    assert len(server.requests) == 1
    assert spans.one().attributes["error.type"] == "400"  # type: ignore[index]


def test_should_retry_header_wins(server: FakeLLMServer, spans: Spans, fast_retry: RetryStage) -> None:
    server.fail_next(503, headers={"x-should-retry": "false"})
    with pytest.raises(openai.InternalServerError):
        _client(server, spans, fast_retry).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 1


def test_connection_errors_are_retried(spans: Spans, fast_retry: RetryStage) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = llmspend.wrap(openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY),
                           tracer_provider=spans.provider, retry=fast_retry)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = spans.one()
    assert len(span.events) == 2
    assert span.attributes["error.type"] == "ConnectError"  # type: ignore[index]


def test_timeouts_come_from_the_sdk_and_are_retried(server: FakeLLMServer, spans: Spans, fast_retry: RetryStage) -> None:
    server.latency_s = 0.3
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY, timeout=0.05),
                           tracer_provider=spans.provider, retry=fast_retry)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert spans.one().attributes["error.type"] == "ReadTimeout"  # type: ignore[index]
    assert len(fast_retry.waits) == 2  # type: ignore[attr-defined]


def test_retry_false_keeps_the_sdks_own(server: FakeLLMServer, spans: Spans) -> None:
    raw = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=2)
    client = llmspend.wrap(raw, tracer_provider=spans.provider, retry=False)
    assert client.max_retries == 2
    server.fail_next(429, times=2, headers={"retry-after-ms": "1"})
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 3  # the SDK retried, llmspend did not add attempts
    assert [s.attributes["error.type"] for s in spans.finished[:2]] == ["429", "429"]  # type: ignore[index]


@pytest.mark.parametrize("asked, sent", [(None, 3), (0, 1), (1, 2), (4, 5)])
def test_with_options_max_retries_caps_llmspends_retries_not_adds_the_sdks(
    server: FakeLLMServer, spans: Spans, fast_retry: RetryStage, asked: int | None, sent: int
) -> None:
    """`client.with_options(max_retries=N)`, the SDK's per-use idiom, would turn the SDK's own
    retries back on under llmspend's and multiply attempts: instead it caps llmspend's."""
    client = _client(server, spans, fast_retry)
    copied = client.with_options(timeout=30) if asked is None else client.with_options(max_retries=asked)
    copied = copied.with_options(timeout=20)  # a copy of the copy keeps both
    assert copied.max_retries == 0 and client.max_retries == 0
    server.fail_next(500, times=10)
    with pytest.raises(openai.InternalServerError):
        copied.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == sent
    assert all("x-llmspend-max-retries" not in {k.lower() for k in r.headers} for r in server.requests)
    server.requests.clear()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 3  # the wrapped client itself: llmspend's default


def test_a_cap_survives_a_copy_that_replaces_the_default_headers(server: FakeLLMServer, spans: Spans,
                                                                  fast_retry: RetryStage) -> None:
    """The SDK keeps `max_retries` through `copy(set_default_headers=...)`; so does the cap."""
    client = _client(server, spans, fast_retry)
    copied = client.with_options(max_retries=1).copy(set_default_headers={"x-team": "search"})
    server.fail_next(500, times=10)
    with pytest.raises(openai.InternalServerError):
        copied.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 2  # one retry, not llmspend's default two
    assert all(r.headers.get("x-team") == "search" for r in server.requests)


def test_a_bad_max_retries_header_is_ignored_with_a_warning(server: FakeLLMServer, spans: Spans, fast_retry: RetryStage,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    client = _client(server, spans, fast_retry)
    client.with_options(max_retries=1)  # from now on the stage looks for the header
    server.fail_next(500, times=10)
    with caplog.at_level(logging.WARNING, logger="llmspend"), pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-llmspend-max-retries": "lots"})
    assert len(server.requests) == 3  # the policy's own attempts
    assert "x-llmspend-max-retries" not in {k.lower() for k in server.requests[0].headers}
    assert "not a number of retries" in caplog.text


async def test_async_with_options_max_retries(server: FakeLLMServer, spans: Spans, fast_retry: RetryStage) -> None:
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           retry=fast_retry)
    server.fail_next(503, times=10)
    with pytest.raises(openai.InternalServerError):
        await client.copy(max_retries=1).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 2


async def test_async_retry(server: FakeLLMServer, spans: Spans, fast_retry: RetryStage) -> None:
    server.fail_next(502)
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider, retry=fast_retry)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 2
    assert len(spans.one().events) == 1


def test_streaming_429_retried_before_stream_starts(server: FakeLLMServer, spans: Spans, fast_retry: RetryStage) -> None:
    server.fail_next(429)
    chunks = list(_client(server, spans, fast_retry).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert chunks and len(server.requests) == 2
    assert spans.one().attributes["llmspend.stream.complete"] is True  # type: ignore[index]


def test_retry_option_forms(server: FakeLLMServer, spans: Spans) -> None:
    client = _client(server, spans, {"max_attempts": 5, "initial_backoff_s": 0})
    server.fail_next(500, times=4)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 5


# -- pure decisions -----------------------------------------------------------------------
def test_retry_after_forms() -> None:
    assert retry_after_seconds(Headers([("retry-after-ms", "1500")])) == 1.5
    assert retry_after_seconds(Headers([("Retry-After", "3")])) == 3.0
    assert retry_after_seconds(Headers([("retry-after", "Wed, 21 Oct 2015 07:28:05 GMT")]), now=1445412480.0) == 5.0
    assert retry_after_seconds(Headers([("retry-after", "soon")])) is None
    assert retry_after_seconds(Headers()) is None


def test_status_decisions() -> None:
    statuses = RetryPolicy().statuses
    assert should_retry_status(529, Headers(), statuses)  # Anthropic overloaded
    assert not should_retry_status(400, Headers(), statuses)
    assert should_retry_status(400, Headers([("x-should-retry", "true")]), statuses)
    assert not should_retry_status(500, Headers([("x-should-retry", "false")]), statuses)


def test_too_long_retry_after_falls_back_to_backoff() -> None:
    from llmspend.stages.retry import wait_retry_after
    import tenacity
    from llmspend._http import Response

    wait = wait_retry_after(tenacity.wait_fixed(2), cap_s=60)
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.set_result(Response(429, Headers([("retry-after", "3600")])))
    assert wait(state) == 2
    state.set_result(Response(429, Headers([("retry-after", "7")])))
    assert wait(state) == 7


def _llmspend_headers_sent(server: FakeLLMServer) -> list[str]:
    return [k for r in server.requests for k in r.headers if k.lower().startswith("x-llmspend")]


def test_rewrapping_keeps_retries_and_sends_no_header_of_ours(server: FakeLLMServer, spans: Spans) -> None:
    """wrap() of a wrapped client built its copy with the old wrapping's copy(), which turned
    max_retries=0 into a cap header: the header reached the provider, and once any copy asked
    for max_retries the new client stopped retrying at all."""
    once = _client(server, spans, RecordingRetryStage())
    twice = llmspend.wrap(once, tracer_provider=spans.provider, retry=RecordingRetryStage())
    twice.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert _llmspend_headers_sent(server) == []
    twice.with_options(max_retries=4)  # from now on the new stage reads caps
    server.fail_next(500, times=10)
    with pytest.raises(openai.InternalServerError):
        twice.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 1 + 3  # the policy's three attempts
    assert _llmspend_headers_sent(server) == [] and twice.max_retries == 0


def test_rewrapping_a_capped_copy_keeps_its_cap(server: FakeLLMServer, spans: Spans) -> None:
    capped = _client(server, spans, RecordingRetryStage()).with_options(max_retries=1)
    rewrapped = llmspend.wrap(capped, tracer_provider=spans.provider, retry=RecordingRetryStage())
    server.fail_next(500, times=10)
    with pytest.raises(openai.InternalServerError):
        rewrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 2 and _llmspend_headers_sent(server) == []


@pytest.mark.parametrize("capped, attempts", [(False, 5), (True, 2)])
def test_rewrapping_with_retry_false_gives_the_sdk_its_retries_back(server: FakeLLMServer, spans: Spans,
                                                                    capped: bool, attempts: int) -> None:
    """`retry=False` keeps the SDK's own retries; on a client wrapped before, they had been
    turned off, and the call was made once."""
    raw = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=4)
    wrapped = llmspend.wrap(raw, tracer_provider=spans.provider, retry=RecordingRetryStage())
    if capped:
        wrapped = wrapped.with_options(max_retries=1)
    plain = llmspend.wrap(wrapped, tracer_provider=spans.provider, retry=False)
    assert plain.max_retries == attempts - 1
    server.fail_next(500, times=10, headers={"retry-after-ms": "1"})
    with pytest.raises(openai.InternalServerError):
        plain.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == attempts and _llmspend_headers_sent(server) == []


async def test_async_rewrapping_keeps_retries(server: FakeLLMServer, spans: Spans) -> None:
    once = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), retry=RecordingRetryStage())
    twice = llmspend.wrap(once, tracer_provider=spans.provider, retry=RecordingRetryStage())
    twice.with_options(max_retries=4)
    server.fail_next(503, times=10)
    with pytest.raises(openai.InternalServerError):
        await twice.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 3 and _llmspend_headers_sent(server) == []


@pytest.mark.parametrize("sdk_retries, retry, attempts", [(0, True, 1), (4, True, 5), (2, True, 3),
                                                          (0, {"max_attempts": 2, "initial_backoff_s": 0}, 2)])
def test_the_max_retries_a_client_was_made_with_caps_llmspends(server: FakeLLMServer, spans: Spans, sdk_retries: int,
                                                               retry: Any, attempts: int) -> None:
    """`OpenAI(max_retries=0)` (an app that retries or fails over by itself) got llmspend's two
    retries once wrapped, and `max_retries=4` only two; a retry policy given to wrap() wins."""
    raw = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=sdk_retries)
    client = llmspend.wrap(raw, tracer_provider=spans.provider, retry=retry)
    assert client.max_retries == 0
    server.fail_next(500, times=10, headers={"retry-after-ms": "1"})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == attempts and _llmspend_headers_sent(server) == []
    assert len(spans.one().events) == attempts - 1
    server.reset()
    with pytest.raises(openai.InternalServerError):  # a copy keeps the cap, another copy sets its own
        server.fail_next(500, times=10, headers={"retry-after-ms": "1"})
        client.with_options(timeout=5).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == attempts


async def test_async_the_max_retries_a_client_was_made_with_caps_llmspends(server: FakeLLMServer, spans: Spans) -> None:
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0),
                           tracer_provider=spans.provider)
    server.fail_next(503, times=10)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 1
    server.reset()
    server.fail_next(503, times=1, headers={"retry-after-ms": "1"})
    await client.with_options(max_retries=1).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(server.requests) == 2


@pytest.mark.parametrize("statuses", [{"429", "503"}, 429, [429.0], {True}])
def test_statuses_that_are_not_status_codes_are_a_config_error(statuses: Any) -> None:
    """Strings (from an environment variable, say) never equal a response's status: the stage
    retried nothing, silently; a lone number raised a bare TypeError."""
    with pytest.raises(llmspend.ConfigError, match="statuses must be HTTP status codes"):
        llmspend.wrap(openai.OpenAI(api_key=API_KEY), retry={"statuses": statuses})
    with pytest.raises(llmspend.ConfigError, match="statuses"):
        RetryPolicy(statuses=statuses)
    assert RetryPolicy(statuses=[429, 503]).statuses == frozenset({429, 503})
