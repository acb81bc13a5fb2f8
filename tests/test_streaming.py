"""Streaming: the caller gets the provider's chunks; usage is asked for and its chunk removed;
an early stop still ends the span."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

import llmspend
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Spans

MESSAGES = [{"role": "user", "content": "tell me about streaming"}]


def _clients(server: FakeLLMServer, spans: Spans) -> tuple[openai.OpenAI, openai.OpenAI]:
    bare = openai.OpenAI(base_url=server.base_url, api_key=API_KEY)
    return bare, llmspend.wrap(bare, tracer_provider=spans.provider)


def test_usage_is_added_and_its_chunk_removed(server: FakeLLMServer, spans: Spans) -> None:
    bare, wrapped = _clients(server, spans)
    expected = [c.model_dump() for c in bare.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)]
    got = [c.model_dump() for c in wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)]
    # the provider was asked for usage ...
    assert server.requests[-1].json()["stream_options"] == {"include_usage": True}
    # ... and the caller sees the same chunks as without llmspend: no usage-only chunk
    assert got == expected
    assert all(chunk["choices"] for chunk in got)
    a = spans.attrs()
    assert a["llmspend.cost.estimated"] is False and a["llmspend.stream.complete"] is True
    assert a["gen_ai.usage.output_tokens"] > 0


def test_caller_asking_for_usage_keeps_its_chunk(server: FakeLLMServer, spans: Spans) -> None:
    bare, wrapped = _clients(server, spans)
    kwargs = dict(model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    expected = [c.model_dump() for c in bare.chat.completions.create(**kwargs)]  # type: ignore[call-overload]
    got = [c.model_dump() for c in wrapped.chat.completions.create(**kwargs)]  # type: ignore[call-overload]
    assert got == expected
    assert got[-1]["usage"]["completion_tokens"] == spans.attrs()["gen_ai.usage.output_tokens"]


def test_bytes_are_unchanged_when_nothing_is_removed(server: FakeLLMServer, spans: Spans) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with httpx2.Client(base_url=server.base_url) as bare:
        expected = bare.post("/chat/completions", json=body).content
    with llmspend.wrap(httpx2.Client(base_url=server.base_url), tracer_provider=spans.provider) as wrapped:
        with wrapped.stream("POST", "/chat/completions", json=body) as response:
            got = b"".join(response.iter_raw())
    assert got == expected


@pytest.mark.parametrize("path, body", [
    ("/chat/completions", {"model": "gpt-4o", "messages": MESSAGES, "stream": True}),
    ("/chat/completions", {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": False}}),
    ("/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "stream": True}),
])
def test_bytes_are_the_providers_when_usage_was_added_for_us(server: FakeLLMServer, spans: Spans, path: str,
                                                             body: dict[str, Any]) -> None:
    """Asked for usage on the caller's behalf, the provider adds `"usage": null` to every chunk
    and one usage-only chunk: the caller gets neither, byte for byte what it sends unasked."""
    with httpx2.Client(base_url=server.base_url) as bare:
        expected = bare.post(path, json=body).content
    with llmspend.wrap(httpx2.Client(base_url=server.base_url), tracer_provider=spans.provider) as wrapped:
        with wrapped.stream("POST", path, json=body) as response:
            got = b"".join(response.iter_raw())
    assert server.requests[-1].json()["stream_options"]["include_usage"] is True
    assert b'"usage"' not in expected and got == expected
    assert spans.attrs()["llmspend.cost.estimated"] is False


def test_completions_stream_usage(server: FakeLLMServer, spans: Spans) -> None:
    _, wrapped = _clients(server, spans)
    chunks = list(wrapped.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True))
    assert all(c.choices for c in chunks)
    assert spans.attrs()["llmspend.cost.estimated"] is False


def test_stream_stopped_early_ends_span_with_estimate(server: FakeLLMServer, spans: Spans) -> None:
    _, wrapped = _clients(server, spans)
    stream = wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    received = ""
    for i, chunk in enumerate(stream):
        received += chunk.choices[0].delta.content or ""
        if i == 3:
            break
    assert spans.finished == []  # still open while the caller holds the stream
    stream.close()
    a = spans.attrs()
    assert a["llmspend.stream.complete"] is False
    assert a["llmspend.cost.estimated"] is True and a["llmspend.cost.status"] == "estimated"
    from llmspend.tokens import count_text

    assert a["gen_ai.usage.output_tokens"] == count_text(received, "gpt-4o")
    assert a["llmspend.cost.usd"] > 0


async def test_async_stream_and_early_stop(server: FakeLLMServer, spans: Spans) -> None:
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)
    assert spans.attrs()["llmspend.stream.complete"] is True
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    async for _ in stream:
        break
    await stream.close()
    assert len(spans.finished) == 2
    assert spans.attrs()["llmspend.stream.complete"] is False


def test_stream_cut_by_connection_error_records_it(server: FakeLLMServer, spans: Spans) -> None:
    from llmspend.testing import FakeResponse

    def broken(request: object) -> FakeResponse:
        def frames():  # type: ignore[no-untyped-def]
            yield b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
            raise ConnectionResetError("server went away")

        return FakeResponse(200, frames(), {"content-type": "text/event-stream"})

    server.route("POST", "/v1/chat/completions", broken)
    _, wrapped = _clients(server, spans)
    with pytest.raises(openai.APIError):
        list(wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    a = spans.attrs()
    assert a["llmspend.stream.complete"] is False
    assert "error.type" in a
