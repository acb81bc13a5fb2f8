"""The anthropic SDK's own span and llmspend's: one call gives one trace in which llmspend's
span (with the cost) is the child of the SDK's span (with the SDK's view of the call). The
two agree on every token count they both carry, and the cost is on one span only, so a backend
that adds up costs over a trace counts it once; the SDK's span is marked
``llmspend.priced_in_child`` so that a report can count the call once too."""

from __future__ import annotations

from typing import Any

import anthropic
from helpers_anthropic import API_KEY, MODEL, SDK_SCOPE, Spans, async_client, sync_client
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import llmspend
from llmspend.stages.retry import RetryStage
from llmspend.testing import FakeLLMServer
from llmspend_anthropic.testing import FakeAnthropicAPI

CACHED = [{"type": "text", "text": "House rules for every answer. " * 300, "cache_control": {"type": "ephemeral"}}]
HI = [{"role": "user", "content": "hi"}]
SHARED_COUNTS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
)


def _pair(spans: Spans) -> tuple[ReadableSpan, ReadableSpan]:
    (sdk,) = spans.finished(SDK_SCOPE)
    ours = spans.one()
    return sdk, ours


def _assert_nested(sdk: ReadableSpan, ours: ReadableSpan) -> None:
    assert sdk.name == "anthropic.messages.create" and sdk.kind is SpanKind.CLIENT
    assert ours.kind is SpanKind.CLIENT
    assert ours.context is not None and sdk.context is not None
    assert ours.context.trace_id == sdk.context.trace_id  # one trace
    assert ours.parent is not None and ours.parent.span_id == sdk.context.span_id  # ours inside theirs
    assert sdk.start_time is not None and ours.start_time is not None and sdk.end_time is not None and ours.end_time is not None
    assert sdk.start_time <= ours.start_time and ours.end_time <= sdk.end_time


def _assert_consistent(sdk: ReadableSpan, ours: ReadableSpan) -> None:
    theirs: dict[str, Any] = dict(sdk.attributes or {})
    mine: dict[str, Any] = dict(ours.attributes or {})
    for key in SHARED_COUNTS:
        assert mine.get(key, 0) == theirs.get(key, 0), key
    assert mine["gen_ai.provider.name"] == theirs["gen_ai.provider.name"] == "anthropic"
    assert mine["gen_ai.response.id"] == theirs["gen_ai.response.id"]
    # the cost is on llmspend's span only: added up over the trace, it counts once
    assert mine["gen_ai.usage.cost"] > 0
    assert not any(key.startswith(("llmspend.cost", "gen_ai.usage.cost")) for key in theirs)
    # ...and the SDK's span says where the call is priced, so reports count the call once
    assert theirs["llmspend.priced_in_child"] is True and "llmspend.priced_in_child" not in mine


def test_llmspend_span_nests_under_the_sdk_span(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = sync_client(server, spans, sdk_spans=True)
    for _ in range(2):  # a cache write, then a cache read
        client.messages.create(model=MODEL, max_tokens=50, system=CACHED, messages=HI)
        sdk, ours = _pair(spans)
        _assert_nested(sdk, ours)
        _assert_consistent(sdk, ours)
        spans.clear()


async def test_nesting_async(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    await async_client(server, spans, sdk_spans=True).messages.create(model=MODEL, max_tokens=50, system=CACHED, messages=HI)
    sdk, ours = _pair(spans)
    _assert_nested(sdk, ours)
    _assert_consistent(sdk, ours)


def test_nesting_streamed(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    with sync_client(server, spans, sdk_spans=True).messages.stream(model=MODEL, max_tokens=50, system=CACHED, messages=HI) as stream:
        stream.get_final_message()
    sdk, ours = _pair(spans)
    _assert_nested(sdk, ours)
    _assert_consistent(sdk, ours)


def test_stream_closed_early_ends_the_sdk_span_first(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    """Why the cost is not put on the SDK's span: when the caller stops a stream, the SDK ends
    its span before the body is closed, so the cost (known only then) could not go on it."""
    stream = sync_client(server, spans, sdk_spans=True).messages.create(model=MODEL, max_tokens=300, messages=HI, stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            break
    stream.close()
    sdk, ours = _pair(spans)
    assert ours.parent is not None and sdk.context is not None and ours.parent.span_id == sdk.context.span_id
    assert sdk.end_time is not None and ours.end_time is not None and sdk.end_time <= ours.end_time
    assert dict(ours.attributes or {})["llmspend.cost.status"] == "estimated"


def test_retries_are_events_inside_one_sdk_call(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, fast_retry: RetryStage) -> None:
    api.fail_next(529)
    sync_client(server, spans, sdk_spans=True, retry=fast_retry).messages.create(model=MODEL, max_tokens=50, messages=HI)
    sdk, ours = _pair(spans)
    _assert_nested(sdk, ours)
    assert [e.name for e in ours.events] == ["llmspend.retry"]
    # the SDK sent one request (its retries are off); llmspend retried below it
    assert "http.request.resend_count" not in (sdk.attributes or {})


def test_app_span_is_the_root(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = sync_client(server, spans, sdk_spans=True)
    with spans.provider.get_tracer("app").start_as_current_span("answer ticket") as app:
        client.messages.create(model=MODEL, max_tokens=50, messages=HI)
    sdk, ours = _pair(spans)
    _assert_nested(sdk, ours)
    assert sdk.parent is not None and sdk.parent.span_id == app.get_span_context().span_id
    (root,) = spans.finished("app")
    assert "llmspend.priced_in_child" not in (root.attributes or {})  # only a GenAI span is marked


def test_sdk_spans_switched_off_leave_one_span(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    """``open_telemetry=False`` on the client (or ``ANTHROPIC_OPEN_TELEMETRY=false``) turns the
    SDK's spans off; llmspend's span is then the call's only one."""
    raw = anthropic.Anthropic(base_url=server.url, api_key=API_KEY, open_telemetry=False)
    llmspend.wrap(raw, tracer_provider=spans.provider).messages.create(model=MODEL, max_tokens=50, messages=HI)
    assert spans.finished(SDK_SCOPE) == []
    ours = spans.one()
    assert ours.parent is None and dict(ours.attributes or {})["gen_ai.usage.cost"] > 0
