"""Helpers that keep the per-call path short do what the slower code they replace did."""

from __future__ import annotations

import codecs
import importlib
import json
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import llmspend
from llmspend._http import Headers, Request, loads
from llmspend.pipeline import Pipeline, Stage
from llmspend.providers import openai as openai_adapter
from llmspend.providers.openai import OpenAIAdapter, _is_injected_usage
from llmspend.providers.sse import EventSplitter
from llmspend.testing import FakeLLMServer
from llmspend.transports._library import _header_pairs
from llmspend.transports.httpx2 import AsyncPipelineTransport, PipelineTransport

from .conftest import API_KEY, Metrics


@pytest.mark.parametrize("text", ['{"a": "é", "b": [1, 2.5, null]}', "[1, 2]", '"s"', "3", "{}", "{ }"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32"])
def test_loads_reads_every_encoding_json_loads_reads(text: str, encoding: str) -> None:
    data = text.encode(encoding)
    assert loads(data) == json.loads(data)


def test_loads_keeps_surrogates_and_errors_as_json_loads() -> None:
    data = '{"s": "\ud83d"}'.encode("utf-8", "surrogatepass")  # a lone surrogate, as json.loads accepts
    assert loads(data) == json.loads(data)
    for bad in (b"{", b'{"a": }', b"{\xff}", b"", codecs.BOM_UTF8):
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            loads(bad)


@pytest.mark.parametrize(("url", "host", "port", "path"), [
    ("https://API.OpenAI.com/v1/chat/completions", "api.openai.com", 443, "/v1/chat/completions"),
    ("http://127.0.0.1:8000/v1/embeddings?x=1", "127.0.0.1", 8000, "/v1/embeddings"),
    ("http://[::1]:9/v1/responses", "::1", 9, "/v1/responses"),
    ("http://h", "h", 80, ""),
])
def test_url_parts_are_read_once_and_right(url: str, host: str, port: int, path: str) -> None:
    for _ in range(2):  # the second time from the memo
        request = Request("POST", url, Headers())
        assert (request.host, request.port, request.path) == (host, port, path)
        assert request.parts.geturl() == url


def test_a_port_that_is_not_a_number_still_raises_only_when_read() -> None:
    request = Request("POST", "http://h:abc/v1/chat/completions", Headers())
    assert (request.host, request.path) == ("h", "/v1/chat/completions")
    for _ in range(2):
        with pytest.raises(ValueError):
            request.port


# -- streams: the injected usage chunk is dropped by a shortcut on most chunks --------------


_CONTENT = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}'
_USAGE_ONLY = b'data: {"id":"c1","choices": [],"usage": {"prompt_tokens":3,"completion_tokens":1}}'
_EVENTS = st.sampled_from([_CONTENT, _USAGE_ONLY, b"data: [DONE]", b": keep-alive", b'data: {"usage":{}}'])


def _without_null_usage(event: bytes) -> bytes:
    """The event as the provider sends it when usage is not asked for: decoded, its top-level
    ``"usage": null`` member dropped, and checked to be the bytes with that member cut out."""
    data = event[len(b"data: "):] if event.startswith(b"data: {") else None
    if data is None or json.loads(data).get("usage", 0) is not None:
        return event
    cut = event.replace(b',"usage":null', b"")
    assert json.loads(cut[len(b"data: "):]) == {k: v for k, v in json.loads(data).items() if k != "usage"}
    return cut


def _reference_outputs(chunks: list[bytes]) -> list[bytes]:
    """What the reader hands on for each chunk when every event is looked at: the injected
    usage chunk dropped, the ``"usage": null`` members it brought removed."""
    split = EventSplitter()
    outputs = []
    for chunk in chunks:
        events = [e for e in split.feed(chunk) if not _is_injected_usage(e)]
        outputs.append(b"".join(_event_without_null_usage(e) for e in events))
    return [*outputs, split.flush()]


def _event_without_null_usage(event: bytes) -> bytes:
    body = event.strip(b"\r\n")
    start = event.index(body) if body else 0
    return event[:start] + _without_null_usage(body) + event[start + len(body):]


@pytest.mark.parametrize(("sent", "handed_on"), [
    (b'{"usage": null, "id":"c1","choices":[]}', b'{"id":"c1","choices":[]}'),
    (b'{"id":"c1", "usage" : null }', b'{"id":"c1" }'),
    (b'{"id":"c1","usage":null,"choices":[{"delta":{"content":"x"}}]}', b'{"id":"c1","choices":[{"delta":{"content":"x"}}]}'),
    # inside a string a quote is escaped: never a member, never touched
    (b'{"id":"c1","choices":[{"delta":{"content":"say ,\\"usage\\":null,"}}]}',
     b'{"id":"c1","choices":[{"delta":{"content":"say ,\\"usage\\":null,"}}]}'),
])
def test_null_usage_members_are_cut_and_nothing_else(sent: bytes, handed_on: bytes) -> None:
    request = Request("POST", "http://h/v1/chat/completions", Headers(), b'{"model":"m","stream":true}')
    request.adapter = adapter = OpenAIAdapter()
    assert request.call is not None
    reader = adapter.stream_reader(request.call, request)
    out = reader.feed(b"data: " + sent + b"\n\n") + reader.flush()
    assert out == b"data: " + handed_on + b"\n\n"
    assert json.loads(handed_on) == {k: v for k, v in json.loads(sent).items() if k != "usage"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b'"a":1', b'"b":"x,\\"usage\\":null"', b'"c":[]']), min_size=1, max_size=3, unique=True),
       st.sampled_from([b'"usage":null', b'"usage": null', b'"usage" : null', b'"usage":null ']),
       st.integers(min_value=0, max_value=3), st.sampled_from([b",", b", "]))
def test_cutting_null_usage_by_position_matches_the_pattern(others: list[bytes], usage: bytes, at: int, comma: bytes) -> None:
    from llmspend.providers.openai import _NULL_USAGE, _without_null_usage

    members = [*others[:at], usage, *others[at:]]
    event = b"data: {" + comma.join(members) + b"}"
    events = event + b"\n\n" + event + b"\n\n"
    assert _without_null_usage(events) == _NULL_USAGE.sub(b"", events)
    kept = json.loads(_without_null_usage(event)[len(b"data: "):])
    assert kept == {k: v for k, v in json.loads(event[len(b"data: "):]).items() if k != "usage"}


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_EVENTS, min_size=1, max_size=8),
    separator=st.sampled_from([b"\n\n", b"\r\n\r\n", b"\n\n\n", b"\r\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6),
)
def test_usage_chunk_shortcut_hands_on_what_looking_at_every_event_did(
    events: list[bytes], separator: bytes, cuts: list[int]
) -> None:
    stream = b"".join(event + separator for event in events)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in zip(points, points[1:])]
    request = Request("POST", "http://h/v1/chat/completions", Headers(), b'{"model":"m","stream":true}')
    request.adapter = adapter = OpenAIAdapter()
    call = request.call
    assert call is not None and not call.usage_requested
    reader = adapter.stream_reader(call, request)
    assert [reader.feed(c) for c in chunks] + [reader.flush()] == _reference_outputs(chunks)


# -- a request a stage changed is rebuilt from the library's own parts ---------------------


_STREAM = dict(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True,
               extra_headers={"X-Team": "search"})


def _sent(server: FakeLLMServer) -> tuple[dict[str, str], bytes]:
    request = server.requests[-1]
    return {k.lower(): v for k, v in request.headers.items()}, request.body


def test_a_stream_asked_for_usage_is_sent_with_every_header_of_the_sdk(server: FakeLLMServer) -> None:
    bare = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    list(bare.chat.completions.create(**_STREAM, stream_options={"include_usage": True}))  # type: ignore[call-overload]
    expected_headers, expected_body = _sent(server)
    list(llmspend.wrap(bare).chat.completions.create(**_STREAM))  # type: ignore[call-overload]
    headers, body = _sent(server)
    assert json.loads(body)["stream_options"] == {"include_usage": True}
    assert headers["content-length"] == str(len(body))
    skip = {"content-length", "x-stainless-retry-count", "x-stainless-read-timeout"}
    assert {k: v for k, v in headers.items() if k not in skip} == {
        k: v for k, v in expected_headers.items() if k not in skip
    }
    assert headers["x-team"] == "search" and headers["authorization"] == f"Bearer {API_KEY}"


class _HeaderAndBody(Stage):
    """Changes a header and the body: the request is rebuilt from the stage's headers."""

    name = "header_and_body"

    def handle(self, request, call_next):  # type: ignore[no-untyped-def]
        changed = request.replace(headers=request.headers.set("x-team", "ads").without("x-stainless-lang"),
                                  json_body={**request.json(), "temperature": 0.5})
        return call_next(changed)

    async def ahandle(self, request, call_next):  # type: ignore[no-untyped-def]
        return await call_next(self.handle(request, lambda r: r))  # type: ignore[arg-type]


@pytest.mark.parametrize("is_async", [False, True])
async def test_headers_a_stage_changed_are_the_ones_sent(server: FakeLLMServer, is_async: bool) -> None:
    pipeline = Pipeline([_HeaderAndBody()], [OpenAIAdapter()])
    kwargs = dict(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Team": "search"})
    if is_async:
        http = httpx2.AsyncClient(transport=AsyncPipelineTransport(pipeline))
        async_client = openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, http_client=http)
        await async_client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    else:
        client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY,
                               http_client=httpx2.Client(transport=PipelineTransport(pipeline)))
        client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    headers, body = _sent(server)
    assert headers["x-team"] == "ads" and "x-stainless-lang" not in headers
    assert json.loads(body)["temperature"] == 0.5 and headers["content-length"] == str(len(body))


_PIECES = st.sampled_from([
    b'data: {"choices":[],"usage":{"prompt_tokens":1}}', b'data: {"usage": null, "x": "\\"usage\\": {"}',
    b'data: {"usage" : {"a":1}, "usage":{"b":2}}', b'data: {"type":"response.completed","response":{}}',
    b'data: {"type": "response.output_text.delta"}', b'event: x\ndata: {"type" :"response.failed"}',
    b'data: "usage"usage":{', b": comment", b"data: [DONE]",
])


@settings(max_examples=300, deadline=None)
@given(events=st.lists(_PIECES, max_size=8), separator=st.sampled_from([b"\n\n", b"\r\n\r\n", b"\n\n\n"]))
def test_events_searched_from_the_end_are_those_found_from_the_start(events: list[bytes], separator: bytes) -> None:
    request = Request("POST", "http://h/v1/chat/completions", Headers(), b'{"model":"m","stream":true}')
    request.adapter = adapter = OpenAIAdapter()
    call = request.call
    assert call is not None
    reader = adapter.stream_reader(call, request)
    reader.feed(b"".join(event + separator for event in events))
    for pattern, literal in ((openai_adapter._USAGE, openai_adapter._USAGE_LITERAL),
                             (openai_adapter._RESPONSE_END, openai_adapter._RESPONSE_END_LITERAL)):
        expected = list(reversed(reader._matching(pattern)))  # type: ignore[attr-defined]
        assert list(reader._last_matching(pattern, literal)) == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize("headers", [
    [("Host", "h"), ("X-Stainless-OS", "Linux"), ("authorization", "Bearer k"), ("Accept", "a"), ("accept", "b")],
    [("X-Name", "Zoë".encode()), ("Content-Type", "application/json")],  # UTF-8: the library guesses utf-8
    [("X-Name", "Zoë".encode("latin-1"))],  # not UTF-8 either: the library falls back to latin-1
    [],
])
@pytest.mark.parametrize("library", ["httpx2", "httpx"])
def test_header_pairs_are_the_librarys_own(headers: list[tuple[str, str | bytes]], library: str) -> None:
    native = importlib.import_module(library).Headers(headers)
    assert _header_pairs(native)() == native.multi_items()


# -- telemetry: unsampled spans skip their attributes, the bookkeeping stays ------------------
def _points(metrics: Metrics, name: str) -> list[Any]:
    return list(metrics.collect()[name].data.data_points)


def test_a_call_the_sampler_drops_is_still_priced_metered_and_tracked(server: FakeLLMServer, metrics: Metrics) -> None:
    dropped = TracerProvider(sampler=ALWAYS_OFF)
    exporter = InMemorySpanExporter()
    dropped.add_span_processor(SimpleSpanProcessor(exporter))
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=dropped, meter_provider=metrics.provider, capture_content=True)
    with llmspend.track(feature="search") as scope:
        response = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert exporter.get_finished_spans() == ()
    assert scope.calls == 1 and scope.total_usd > 0
    (cost,) = _points(metrics, "llmspend.cost")
    assert cost.value == pytest.approx(scope.total_usd)
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in _points(metrics, "gen_ai.client.token.usage")}
    usage = response.usage
    assert usage is not None and tokens == {"input": usage.prompt_tokens, "output": usage.completion_tokens}


def test_metric_attributes_remembered_per_kind_of_call_stay_apart(server: FakeLLMServer, metrics: Metrics) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), meter_provider=metrics.provider)
    for model, feature in (("gpt-4o", None), ("gpt-4o-mini", None), ("gpt-4o", "a"), ("gpt-4o", "a"), ("gpt-4o", "b")):
        with llmspend.track(feature=feature):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    counts = {
        (p.attributes["gen_ai.request.model"], p.attributes.get("llmspend.feature")): p.count
        for p in _points(metrics, "gen_ai.client.operation.duration")
    }
    assert counts == {("gpt-4o", None): 1, ("gpt-4o-mini", None): 1, ("gpt-4o", "a"): 2, ("gpt-4o", "b"): 1}
    sums = _points(metrics, "llmspend.cost")
    assert {(p.attributes["gen_ai.request.model"], p.attributes.get("llmspend.feature")) for p in sums} == set(counts)
