"""Content capture never loses a call's cost, and what goes on the span is valid JSON in the
conventions' shapes, whatever the answer holds (deep nesting, NaN, long values under any key)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

import llmspend
import llmspend.providers.openai
from llmspend.telemetry import attributes as A
from llmspend.testing import FakeLLMServer, FakeResponse

from .conftest import API_KEY, Spans

QUESTION = [{"role": "user", "content": "Weather in Oslo?"}]
CHUNK = {"id": "x", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def _tool_call_stream(arguments: str) -> list[Any]:
    return [
        {**CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
            "finish_reason": None}]},
        {**CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {**CHUNK, "choices": [], "usage": USAGE},
        "data: [DONE]\n\n",
    ]


def _client(server: FakeLLMServer, spans: Spans, *, is_async: bool = False) -> Any:
    sdk = openai.AsyncOpenAI if is_async else openai.OpenAI
    return llmspend.wrap(sdk(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                         capture_content=True)


@pytest.mark.parametrize("is_async", [False, True])
async def test_deeply_nested_tool_arguments_keep_a_streamed_calls_cost(server: FakeLLMServer, spans: Spans,
                                                                       is_async: bool) -> None:
    # A model's arguments are model output: nothing bounds their nesting. json.loads raises
    # RecursionError (not a ValueError) on them; tool_arguments lets it out of the stream
    # reader's outcome(), and the stream's cost becomes unknown.
    events = _tool_call_stream("[" * 5000 + "]" * 5000)
    server.route("POST", "/v1/chat/completions", lambda request: FakeResponse.events(events))
    client = _client(server, spans, is_async=is_async)
    body = {"model": "gpt-4o-mini", "messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}}
    if is_async:
        stream = await client.chat.completions.create(**body)
        [c async for c in stream]
    else:
        list(client.chat.completions.create(**body))
    attrs = spans.attrs()
    assert attrs["llmspend.cost.status"] == "ok" and attrs["llmspend.cost.usd"] > 0
    assert attrs[A.USAGE_OUTPUT_TOKENS] == 5


@pytest.mark.parametrize("stream", [False, True])
def test_long_nested_tool_arguments_keep_the_calls_cost_and_metrics(server: FakeLLMServer, spans: Spans,
                                                                    metrics: Any, stream: bool) -> None:
    # 600 levels: json.loads reads them, but over the 64,000-character cap content_json walks
    # them with recursive generators and raises RecursionError inside CallRecorder._finish,
    # after the cost is known and before the metrics and attribution are recorded.
    arguments = "[" * 600 + json.dumps("x" * 70_000) + "]" * 600
    if stream:
        events = _tool_call_stream(arguments)
        server.route("POST", "/v1/chat/completions", lambda request: FakeResponse.events(events))
    else:
        completion = {"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini", "usage": USAGE, "choices": [
            {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}]}}]}
        server.route("POST", "/v1/chat/completions", lambda request: FakeResponse.json(completion))
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           meter_provider=metrics.provider, capture_content=True)
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": QUESTION}
    if stream:
        list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **body))
    else:
        client.chat.completions.create(**body)
    attrs = spans.attrs()
    assert attrs.get("llmspend.cost.status") == "ok" and attrs["llmspend.cost.usd"] > 0
    assert len(attrs[A.OUTPUT_MESSAGES]) <= 64_000
    assert A.METRIC_COST in metrics.collect()


def test_nan_in_tool_arguments_still_gives_valid_json(server: FakeLLMServer, spans: Spans) -> None:
    # json.loads reads NaN/Infinity; json.dumps writes them back: the attribute is not JSON.
    events = _tool_call_stream('{"x": NaN}')
    server.route("POST", "/v1/chat/completions", lambda request: FakeResponse.events(events))
    client = _client(server, spans)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True,
                                        stream_options={"include_usage": True}))
    json.loads(spans.attrs()[A.OUTPUT_MESSAGES], parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))


class _CircularOutput(llmspend.providers.openai.OpenAIAdapter):
    """A plugin whose output parts json.dumps cannot write (a bug, or a shape it never meant)."""

    def output_messages(self, call: Any, body: bytes) -> Any:
        loop: list[Any] = []
        loop.append(loop)
        return [{"role": "assistant", "parts": loop}]


def test_an_unwritable_answer_costs_the_span_its_content_not_the_calls_cost(server: FakeLLMServer, spans: Spans,
                                                                             metrics: Any) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           meter_provider=metrics.provider, capture_content=True, provider=_CircularOutput())
    client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    attrs = spans.attrs()
    assert attrs.get("llmspend.cost.status") == "ok" and attrs["llmspend.cost.usd"] > 0
    assert A.OUTPUT_MESSAGES not in attrs
    assert A.METRIC_COST in metrics.collect()


def test_a_long_value_under_a_users_name_key_is_cut_not_the_whole_message() -> None:
    # Structural keys (type, id, name, ...) are never cut, but inside tool arguments a "name"
    # is the user's data: left whole it forced the last resort and the answer's text was lost.
    from llmspend.telemetry.content import content_json, output_message, text_part, tool_call_part

    messages = [output_message([text_part("hello"), tool_call_part("c1", "save_note", {"name": "n" * 100_000})], "stop")]
    found = json.loads(content_json(messages))
    (message,) = found
    assert message["parts"][0] == {"type": "text", "content": "hello"}
    call = message["parts"][1]
    assert (call["type"], call["id"], call["name"]) == ("tool_call", "c1", "save_note")
    assert call["arguments"]["name"].endswith("more characters]")
