"""What llmspend never does to a call: fail it over a response of an unforeseen shape, report a
billed call of unknown cost as $0, let a tracing fault escape, or put a key on a span or in a
log through an error message. Each case came from an audit that reproduced it."""

from __future__ import annotations

import logging
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import SpanProcessor

import llmspend
from llmspend._redact import redact
from llmspend.cache import CacheBackend
from llmspend.cascade import Plan, Step
from llmspend.scoring.logistic import LogisticScorer
from llmspend.telemetry import recorder
from llmspend.testing import FakeLLMServer, FakeRequest, FakeResponse

from .conftest import API_KEY, Spans

QUESTION = [{"role": "user", "content": "q"}]


def wrapped(server: FakeLLMServer, spans: Spans, **options: Any) -> openai.OpenAI:
    return llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                         **options)


# -- responses of a shape no adapter foresaw ------------------------------------------------------
ODD_CHAT = {"id": "x", "object": "chat.completion", "model": "gpt-4o-mini", "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "tool_calls": 5}, "finish_reason": "stop"}]}


@pytest.mark.parametrize("path, body, call", [
    ("/v1/chat/completions", ODD_CHAT,
     lambda c: c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=QUESTION)),
    ("/v1/responses", {"id": "r", "object": "response", "model": "gpt-4o-mini", "output": 5},
     lambda c: c.responses.with_raw_response.create(model="gpt-4o-mini", input="q")),
])
def test_a_response_of_an_unforeseen_shape_passes_through(server: FakeLLMServer, spans: Spans, path: str,
                                                           body: dict[str, Any], call: Any) -> None:
    server.route("POST", path, lambda request: FakeResponse.json(body))
    bare = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    expected = call(bare).http_response.content
    got = call(wrapped(server, spans)).http_response.content
    assert got == expected  # unchanged, and no error from llmspend's reading of it
    a = spans.attrs()
    assert a["llmspend.cost.status"] == "no_usage" and "llmspend.cost.usd" not in a


def test_a_stream_of_unforeseen_events_passes_through(server: FakeLLMServer, spans: Spans) -> None:
    chunk = {"id": "x", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi", "tool_calls": 5},
                                     "finish_reason": None}]},
              {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, "[DONE]"]
    server.route("POST", "/v1/chat/completions", lambda request: FakeResponse.events(events))
    def read(client: openai.OpenAI) -> bytes:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=QUESTION, stream=True,
                                                               stream_options={"include_usage": True})
        return b"".join(raw.http_response.iter_bytes())

    expected = read(openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0))
    assert read(wrapped(server, spans)) == expected  # all of it, unchanged, and no error
    assert spans.attrs()["llmspend.cost.status"] == "no_usage"


# -- a billed call whose answer could not be read -----------------------------------------------
def test_an_answer_lost_after_its_200_is_of_unknown_cost_not_zero(server: FakeLLMServer, spans: Spans) -> None:
    chat = server._routes.get(("POST", "/v1/chat/completions"))  # the server's own answer, sent too slowly

    def slow(request: FakeRequest) -> FakeResponse:
        answer = server._chat(request) if chat is None else chat(request)
        return FakeResponse(200, [answer.body[:10], answer.body[10:]], answer.headers, chunk_delay_s=1.0)

    server.route("POST", "/v1/chat/completions", slow)
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY, timeout=0.3, max_retries=0),
                           tracer_provider=spans.provider, retry=False)
    with llmspend.track(feature="faq") as scope:
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    a = spans.attrs()
    assert a["error.type"] == "ReadTimeout" and a["llmspend.cost.status"] == "no_usage"
    assert scope.calls == 1 and scope.complete is False  # the provider billed it; nobody saw for how much


# -- tracing faults --------------------------------------------------------------------------
def _plan(first: str, *, provider: str | None = None) -> Plan:
    scorer = LogisticScorer(features=("conf",), weights=(5.0,), bias=5.0, mean=(0.0,), scale=(1.0,), models=(first,))
    return Plan(steps=(Step(first, 0.5, "first", provider=provider), Step("gpt-4o")), scorers={"first": scorer}, alias="bot")


def test_a_span_processor_failing_on_end_never_fails_a_cascade(server: FakeLLMServer, spans: Spans) -> None:
    class Broken(SpanProcessor):
        def on_end(self, span: object) -> None:
            raise RuntimeError("exporter down")

    spans.provider.add_span_processor(Broken())
    client = wrapped(server, spans, cascade=_plan("gpt-4o-mini"))
    assert client.chat.completions.create(model="bot", messages=QUESTION).choices


# -- secrets in error messages ---------------------------------------------------------------
def test_a_key_quoted_by_an_error_stays_off_spans_and_logs(server: FakeLLMServer, spans: Spans,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A key read from a file keeps its newline; the HTTP library refuses the header and quotes
    it in its error, which the cascade records as the reason it escalated."""
    secret = "sk-second-account-SECRET123"
    second = openai.OpenAI(base_url=server.base_url, api_key=secret + "\n")
    client = wrapped(server, spans, cascade={"plan": _plan("gpt-4o-mini", provider="openai"),
                                             "clients": {"openai": second}})
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        assert client.chat.completions.create(model="bot", messages=QUESTION).model.startswith("gpt-4o")
    (parent,) = [s for s in spans.finished if s.name == "cascade bot"]
    assert "llmspend.cascade.error" in (parent.attributes or {})  # the reason is kept ...
    everything = caplog.text + repr([(s.attributes, [e.attributes for e in s.events]) for s in spans.finished])
    assert "SECRET123" not in everything  # ... without the key


def test_a_key_quoted_by_a_backend_fault_stays_off_the_log(server: FakeLLMServer, spans: Spans,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A cache backend's error may quote what it was given (a proxy's URL with a token in it):
    the warning that says the cache failed open is redacted like the span attribute."""
    class Leaky(CacheBackend):
        kind = "leaky"

        def get(self, key: str) -> bytes | None:
            raise ConnectionError("GET https://cache.internal/?token=tok-SECRET12345 refused; Bearer sk-live-SECRET67890")

        def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
            raise ConnectionError("refused")

        def delete(self, key: str) -> None: ...

        def clear(self) -> int:
            return 0

        def stats(self) -> dict[str, Any]:
            return {}

    recorder._warned.clear()
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        wrapped(server, spans, cache=Leaky()).chat.completions.create(model="gpt-4o-mini", messages=QUESTION,
                                                                      temperature=0)
    assert "cache fault" in caplog.text and "ConnectionError" in caplog.text
    everything = caplog.text + repr([s.attributes for s in spans.finished])
    assert "SECRET" not in everything


@pytest.mark.parametrize("text, secrets, expected", [
    ("Illegal header value b'Bearer sk-proj-abcDEF123456\\n'", (), "Illegal header value b'Bearer ***\\n'"),
    ("bad key sk-ant-api03-XYZ_abc-123456 here", (), "bad key *** here"),
    ("GET https://h/v1/models?key=AIzaSyA-1234567890abcdefghij&alt=json", (), "GET https://h/v1/models?key=***&alt=json"),
    ("auth failed for token-of-a-proxy-991", ("token-of-a-proxy-991",), "auth failed for ***"),
    ("nothing secret in: model gpt-4o answered 42 tokens", (), "nothing secret in: model gpt-4o answered 42 tokens"),
    ("basic setup failed; Basic dXNlcjpwYXNzd29yZA==", (), "basic setup failed; Basic ***"),
])
def test_redact(text: str, secrets: tuple[str, ...], expected: str) -> None:
    assert redact(text, secrets) == expected
