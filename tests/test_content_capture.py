"""Opt-in content on spans in the GenAI conventions' shapes (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions``): the official openai SDK against
the fake server, spans read from the in-memory exporter, shapes asserted exactly."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmspend
from llmspend.providers.base import Call
from llmspend.providers.openai import OpenAIAdapter, sse_from_completion
from llmspend.providers.openai_content import chat_output, choices_from_deltas, input_content, responses_output
from llmspend.telemetry import attributes as A
from llmspend.telemetry.content import MAX_CONTENT_CHARS, content_json
from llmspend.testing import FakeLLMServer, FakeResponse

from .conftest import API_KEY, Spans

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "4 C, rain"},
]
CONVERSATION_PARTS = [
    {"role": "system", "parts": [{"type": "text", "content": "You answer briefly."}]},
    {"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]},
    {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}]},
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "4 C, rain"}]},
]


def _client(server: FakeLLMServer, spans: Spans, *, is_async: bool = False, **options: Any) -> Any:
    sdk = openai.AsyncOpenAI if is_async else openai.OpenAI
    return llmspend.wrap(sdk(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                         capture_content=True, **options)


def _content(spans: Spans, index: int = -1) -> dict[str, Any]:
    attrs = spans.attrs(index)
    return {key: json.loads(attrs[key]) for key in (A.SYSTEM_INSTRUCTIONS, A.INPUT_MESSAGES, A.OUTPUT_MESSAGES) if key in attrs}


def _text_answers(completion: Any) -> list[dict[str, Any]]:
    return [{"role": "assistant", "parts": [{"type": "text", "content": c.message.content}], "finish_reason": c.finish_reason}
            for c in completion.choices]


async def _create(client: Any, is_async: bool, **body: Any) -> Any:
    return await client.chat.completions.create(**body) if is_async else client.chat.completions.create(**body)


async def _stream_text(client: Any, is_async: bool, **body: Any) -> dict[int, str]:
    texts: dict[int, str] = {}
    stream = await _create(client, is_async, stream=True, **body)
    chunks = [c async for c in stream] if is_async else list(stream)
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    return texts


@pytest.mark.parametrize("is_async", [False, True])
async def test_chat_history_with_tool_calls_and_results(server: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    client = _client(server, spans, is_async=is_async)
    r = await _create(client, is_async, model="gpt-4o", messages=CONVERSATION, tools=TOOLS)
    assert _content(spans) == {  # a chat's system message is part of its history: it stays there
        A.INPUT_MESSAGES: CONVERSATION_PARTS,
        A.OUTPUT_MESSAGES: _text_answers(r),
    }
    assert r.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_tool_call_answer_streamed_or_not(server: FakeLLMServer, spans: Spans, is_async: bool) -> None:
    client = _client(server, spans, is_async=is_async)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": TOOLS}
    r = await _create(client, is_async, **body)
    (call,) = r.choices[0].message.tool_calls
    expected = [{"role": "assistant", "finish_reason": "tool_calls",
                 "parts": [{"type": "tool_call", "id": call.id, "name": "get_weather",
                            "arguments": json.loads(call.function.arguments)}]}]
    assert _content(spans)[A.OUTPUT_MESSAGES] == expected
    await _stream_text(client, is_async, **body)
    assert _content(spans)[A.OUTPUT_MESSAGES] == expected  # put together from the chunks


@pytest.mark.parametrize("is_async", [False, True])
async def test_stream_and_n_choices_give_one_output_message_per_choice(server: FakeLLMServer, spans: Spans,
                                                                      is_async: bool) -> None:
    client = _client(server, spans, is_async=is_async)
    body = {"model": "gpt-4o", "messages": CONVERSATION[:2], "n": 2}
    r = await _create(client, is_async, **body)
    answers = _text_answers(r)
    assert len(answers) == 2 and answers[0] != answers[1]
    assert _content(spans)[A.OUTPUT_MESSAGES] == answers
    texts = await _stream_text(client, is_async, **body)
    assert [texts[0], texts[1]] == [c.message.content for c in r.choices]
    assert _content(spans) == {A.INPUT_MESSAGES: CONVERSATION_PARTS[:2], A.OUTPUT_MESSAGES: answers}


@pytest.mark.parametrize("stream", [False, True])
def test_responses_instructions_are_system_instructions(server: FakeLLMServer, spans: Spans, stream: bool) -> None:
    client = _client(server, spans)
    body = {"model": "gpt-4o", "instructions": "Answer in French.", "input": [{"role": "user", "content": "Hello"}]}
    if stream:
        events = list(client.responses.create(stream=True, **body))
        text = events[-1].response.output_text
    else:
        text = client.responses.create(**body).output_text
    assert text and _content(spans) == {
        A.SYSTEM_INSTRUCTIONS: [{"type": "text", "content": "Answer in French."}],
        A.INPUT_MESSAGES: [{"role": "user", "parts": [{"type": "text", "content": "Hello"}]}],
        A.OUTPUT_MESSAGES: [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "completed"}],
    }


def test_responses_function_items(server: FakeLLMServer, spans: Spans) -> None:
    client = _client(server, spans)
    client.responses.create(model="gpt-4o", input=[
        {"role": "developer", "content": [{"type": "input_text", "text": "Be exact."}]},
        {"type": "function_call", "call_id": "call_9", "name": "lookup", "arguments": '{"q": "x"}'},
        {"type": "function_call_output", "call_id": "call_9", "output": "found"},
    ])
    assert _content(spans)[A.INPUT_MESSAGES] == [
        {"role": "developer", "parts": [{"type": "text", "content": "Be exact."}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": {"q": "x"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_9", "response": "found"}]},
    ]
    assert A.SYSTEM_INSTRUCTIONS not in spans.attrs()


def test_responses_server_tools_are_server_tool_parts(server: FakeLLMServer, spans: Spans) -> None:
    """Tools OpenAI runs itself: `server_tool_call` parts typed by the tool; a generated image
    by its size, never its base64 bytes (megabytes, which would fill the attribute)."""
    image = base64.b64encode(bytes(range(256)) * 4000).decode()  # 1,024,000 bytes
    answer = {"id": "resp_1", "object": "response", "model": "gpt-4o", "status": "completed", "output": [
        {"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "oslo"}},
        {"id": "ig_1", "type": "image_generation_call", "status": "completed", "output_format": "webp", "result": image},
        {"id": "mcp_1", "type": "mcp_call", "name": "get_forecast", "server_label": "weather", "arguments": "{}",
         "output": "rain"},
        {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Rain."}]},
    ], "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}}
    server.route("POST", "/v1/responses", lambda request: FakeResponse.json(answer))
    _client(server, spans).responses.create(model="gpt-4o", input="Weather in Oslo?", tools=[{"type": "web_search"}])
    attrs = spans.attrs()
    # the image is billed at an image model's rates, which the answer does not give: the cost
    # is unknown (docs/pricing.md, "Server-side tools"), the search counted all the same
    assert attrs["llmspend.cost.status"] == "unknown_tool_fee" and attrs["llmspend.usage.tool_calls.web_search"] == 1
    assert image not in attrs[A.OUTPUT_MESSAGES]
    assert _content(spans)[A.OUTPUT_MESSAGES] == [{"role": "assistant", "finish_reason": "completed", "parts": [
        {"type": "server_tool_call", "id": "ws_1", "name": "web_search", "server_tool_call": {
            "type": "web_search", "status": "completed", "action": {"type": "search", "query": "oslo"}}},
        {"type": "server_tool_call", "id": "ig_1", "name": "image_generation", "server_tool_call": {
            "type": "image_generation", "status": "completed", "output_format": "webp",
            "result": {"type": "blob", "modality": "image", "mime_type": "image/webp", "content": "", "byte_size": 1_024_000}}},
        {"type": "server_tool_call", "id": "mcp_1", "name": "get_forecast", "server_tool_call": {
            "type": "mcp", "name": "get_forecast", "server_label": "weather", "arguments": "{}", "output": "rain"}},
        {"type": "text", "content": "Rain."},
    ]}]


def test_images_are_blob_and_uri_parts_without_their_bytes(server: FakeLLMServer, spans: Spans) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 300).decode()
    client = _client(server, spans)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]}])
    assert _content(spans)[A.INPUT_MESSAGES] == [{"role": "user", "parts": [
        {"type": "text", "content": "What is in these?"},
        {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "", "byte_size": len(base64.b64decode(png))},
        {"type": "uri", "modality": "image", "uri": "https://example.com/cat.jpg"},
        {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": "", "byte_size": 4},
    ]}]
    assert png[:100] not in spans.attrs()[A.INPUT_MESSAGES]


def test_legacy_completions(server: FakeLLMServer, spans: Spans) -> None:
    r = _client(server, spans).completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert _content(spans) == {
        A.INPUT_MESSAGES: [{"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}],
        A.OUTPUT_MESSAGES: [{"role": "assistant", "parts": [{"type": "text", "content": r.choices[0].text}],
                             "finish_reason": "stop"}],
    }


# -- the size cap ------------------------------------------------------------------------------
def test_a_long_conversation_is_cut_to_the_cap_keeping_its_shape(server: FakeLLMServer, spans: Spans) -> None:
    call_id = "call_" + "7" * 60  # longer than the shortest cut: ids are never cut
    long_turns: list[dict[str, Any]] = []
    for turn in range(60):
        long_turns += [
            {"role": "user", "content": f"question {turn} " + "word " * 400},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": "x" * 900})}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "rain " * 300},
        ]
    long_turns.append({"role": "user", "content": "and now?"})
    _client(server, spans).chat.completions.create(model="gpt-4o", messages=long_turns)
    text = spans.attrs()[A.INPUT_MESSAGES]
    assert len(json.dumps([{"role": m["role"], "content": m.get("content")} for m in long_turns])) > 2 * MAX_CONTENT_CHARS
    assert len(text) <= MAX_CONTENT_CHARS
    messages = json.loads(text)
    assert messages[-1] == {"role": "user", "parts": [{"type": "text", "content": "and now?"}]}  # the latest kept whole
    for m in messages:
        assert set(m) == {"role", "parts"} and m["role"] in ("user", "assistant", "tool")
        for part in m["parts"]:
            assert part["type"] in ("text", "tool_call", "tool_call_response")
            if part["type"] != "text":
                assert part["id"] == call_id
    cut = [p["content"] for m in messages for p in m["parts"] if p["type"] == "text" and p["content"].endswith("more characters]")]
    assert cut  # strings were cut, not left out whole


def test_the_last_resort_keeps_a_valid_shape() -> None:
    """Thousands of tiny parts: no string to cut, no older message to leave out."""
    value = [{"role": "user", "parts": [{"type": "text", "content": "x"}] * 5000}]
    full = json.dumps(value, ensure_ascii=False)
    assert json.loads(content_json(value, limit=1000)) == [
        {"role": "user", "parts": [{"type": "llmspend.truncated", "characters": len(full)}]}]
    parts = content_json([{"type": "text", "content": "y"}] * 5000, limit=1000)  # a list of parts: the latest kept
    assert len(parts) <= 1000 and set(map(json.dumps, json.loads(parts))) == {'{"type": "text", "content": "y"}'}
    assert content_json(value, limit=len(full)) == full  # within the cap: as it is


# -- cost: nothing extra without capture, and never a failed call ------------------------------
def test_a_stream_reader_builds_no_parts_unless_capture_is_on() -> None:
    completion = {"id": "c1", "model": "gpt-4o", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    body = sse_from_completion(completion, include_usage=True)
    call = Call(provider="openai", operation="chat", endpoint="chat.completions", model="gpt-4o", stream=True,
                server_address="127.0.0.1", server_port=1)
    outcomes = []
    for capture in (False, True):
        reader: Any = OpenAIAdapter().stream_reader(call, None)  # type: ignore[arg-type]
        reader.capture_text = capture
        reader.feed(body)
        outcomes.append(reader.outcome(complete=True))
    assert outcomes[0].output_messages is None and outcomes[0].output_text == ""  # usage known: no text read
    assert outcomes[1].output_messages == tuple(chat_output(completion["choices"]))


class _Unreadable(OpenAIAdapter):
    def input_content(self, call: Call) -> Any:
        raise KeyError("a plugin's bug")

    def output_messages(self, call: Call, body: bytes) -> Any:
        raise KeyError("a plugin's bug")


def test_an_adapter_that_cannot_read_content_costs_the_span_its_content_only(
        server: FakeLLMServer, spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    client = _client(server, spans, provider=_Unreadable())
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        r = client.chat.completions.create(model="gpt-4o", messages=CONVERSATION[:2])
    attrs = spans.attrs()
    assert r.choices[0].message.content and attrs["llmspend.cost.status"] == "ok" and attrs["llmspend.cost.usd"] > 0
    assert A.INPUT_MESSAGES not in attrs
    assert json.loads(attrs[A.OUTPUT_MESSAGES]) == _text_answers(r)  # the outcome's text still goes on
    assert "could not read the content of a openai request" in caplog.text


# -- odd shapes: a conversion that raised inside a stream reader would lose the call's cost ----
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.sampled_from(["text", "image_url", "input_audio", "file", "tool", "function", "message", "function_call",
                       "reasoning", "data:image/png;base64,AA==", "choices", "tool_calls", "delta", "content"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "role", "content", "text", "tool_calls", "function", "image_url", "url", "input_audio",
                         "file", "index", "delta", "finish_reason", "output", "summary", "call_id", "arguments",
                         "messages", "input", "instructions", "prompt", "choices"]), inner, max_size=5),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(value=_JSON)
def test_odd_shapes_never_raise(value: Any) -> None:
    endpoints = ("chat.completions", "responses", "completions", "embeddings")
    body = value if isinstance(value, dict) else {"messages": value, "input": value, "choices": value}
    for endpoint in endpoints:
        input_content(endpoint, body)
    chat_output(value)
    responses_output(body)
    deltas = [d for d in (value if isinstance(value, list) else [value]) if isinstance(d, dict)]
    chat_output(choices_from_deltas(deltas))
    messages = chat_output(value)
    text = content_json(messages, limit=200)
    assert json.loads(text) == messages if len(json.dumps(messages, ensure_ascii=False)) <= 200 else len(text) <= 200


def test_a_block_of_a_defined_type_without_its_fields_is_not_passed_off_as_that_type() -> None:
    """The schemas give `text` a required `content`; a provider's `{"type": "text", "text": null}`
    kept as a generic part would claim to be a TextPart without one."""
    from llmspend.telemetry.content import generic_part

    assert generic_part({"type": "text", "text": None}) == {"type": "llmspend.unknown", "block_type": "text", "text": None}
    assert generic_part({"type": "refusal", "refusal": "no"}) == {"type": "refusal", "refusal": "no"}
    assert generic_part({"value": 1}) == {"type": "unknown", "value": 1}


def test_streamed_legacy_function_call_and_spoken_answer(server: FakeLLMServer, spans: Spans) -> None:
    """A stream's legacy `function_call` pieces and an audio answer give the same parts as the
    whole answer would: one tool call; a blob of the audio's size with its transcript (never its bytes)."""
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-audio-preview"}
    audio = base64.b64encode(bytes(3000)).decode()
    events = [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "function_call": {"name": "lookup", "arguments": ""}},
                               "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "delta": {"function_call": {"arguments": '{"q": '}}, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "delta": {"function_call": {"arguments": '"x"}'}}, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 1, "delta": {"role": "assistant", "audio": {"id": "au_1", "transcript": "Hel"}},
                               "finish_reason": None}]},
        {**chunk, "choices": [{"index": 1, "delta": {"audio": {"data": audio[:2000], "transcript": "lo."}}, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 1, "delta": {"audio": {"data": audio[2000:]}}, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "function_call"},
                              {"index": 1, "delta": {}, "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 40, "total_tokens": 49}},
        "data: [DONE]\n\n",
    ]
    server.route("POST", "/v1/chat/completions", lambda request: FakeResponse.events(events))
    for _ in _client(server, spans).chat.completions.create(model="gpt-4o-audio-preview", messages=[
            {"role": "user", "content": "Say hello."}], stream=True, n=2):
        pass
    assert audio[:500] not in spans.attrs()[A.OUTPUT_MESSAGES]
    assert _content(spans)[A.OUTPUT_MESSAGES] == [
        {"role": "assistant", "finish_reason": "function_call",
         "parts": [{"type": "tool_call", "id": None, "name": "lookup", "arguments": {"q": "x"}}]},
        {"role": "assistant", "finish_reason": "stop",
         "parts": [{"type": "blob", "modality": "audio", "content": "", "byte_size": 3000, "transcript": "Hello."}]},
    ]
