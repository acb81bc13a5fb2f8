"""The adapter's pure parts: usage arithmetic, the hooks other stages use (model swap, message
access for trimming, conversion to and from OpenAI chat for mixed cascades), and streams
rebuilt from bytes however they are split."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from llmspend._http import Headers, Request, dumps
from llmspend.exceptions import ResponseParseError
from llmspend.providers.base import Usage
from llmspend.providers.openai import OpenAIAdapter
from llmspend_anthropic import AnthropicAdapter
from llmspend_anthropic.convert import (
    message_from_chat_completion,
    messages_request,
    openai_chat_completion,
    openai_chat_request,
)
from llmspend_anthropic.parts import input_content, output_messages
from llmspend_anthropic.stream import AnthropicStreamReader, encode_events, events_from_message, message_from_events
from llmspend_anthropic.usage import usage_from_json

SYSTEM = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
TOOL = {"name": "lookup_order", "description": "Find an order", "input_schema": {"type": "object", "properties": {"n": {"type": "string"}}}}
CONVERSATION = [
    {"role": "user", "content": "Where is order 1182?"},
    {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                                      {"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": {"n": "1182"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "shipped"}]},
    {"role": "assistant", "content": "It shipped."},
    {"role": "user", "content": "Thanks! And 1183?"},
]
BODY: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 300, "system": SYSTEM, "tools": [TOOL],
                        "tool_choice": {"type": "auto"}, "stop_sequences": ["###"], "messages": CONVERSATION}
MESSAGE: dict[str, Any] = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
    "content": [{"type": "thinking", "thinking": "They want 1183.", "signature": "sig"},
                {"type": "text", "text": "Checking that one now."},
                {"type": "tool_use", "id": "toolu_2", "name": "lookup_order", "input": {"n": "1183"}}],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 1500, "cache_read_input_tokens": 3000,
              "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1000},
              "output_tokens": 80, "output_tokens_details": {"thinking_tokens": 30}, "service_tier": "standard"},
}


def _request(body: dict[str, Any], path: str = "/v1/messages") -> Request:
    return Request("POST", f"https://api.anthropic.com{path}", Headers([("content-type", "application/json")]),
                   dumps(body), adapter=AnthropicAdapter())


# -- usage --------------------------------------------------------------------------------
def test_cloud_clients_are_refused_with_the_reason() -> None:
    import llmspend

    vertex = anthropic.AnthropicVertex(project_id="p", region="us-east5", access_token="t")
    for options in ({}, {"provider": AnthropicAdapter()}):  # forcing the adapter would measure nothing
        with pytest.raises(llmspend.ConfigError, match=r"AnthropicVertex \(Google Vertex AI\).*anthropic.Anthropic"):
            llmspend.wrap(vertex, **options)
    assert AnthropicAdapter().unsupported_client(anthropic.Anthropic(api_key="k")) is None


@pytest.mark.parametrize("cls", [anthropic.AnthropicAWS, anthropic.AsyncAnthropicAWS])
def test_a_client_signing_with_aws_sigv4_refuses_stages_that_change_requests(cls: Any, tmp_path: Any) -> None:
    # AnthropicAWS with AWS credentials signs body and headers before the transport: trimming,
    # batching or a cascade would have AWS reject the call, and a cache keyed by the signature
    # would store every answer and never hit. Before, wrap() took them and calls failed later.
    import llmspend

    signing = cls(aws_access_key="AKIDEXAMPLE", aws_secret_key="secret", aws_region="us-east-1", workspace_id="w")
    for options in ({"cache": str(tmp_path / "c")}, {"trim": True}, {"batch": True}):
        if options.get("batch") and cls is anthropic.AnthropicAWS:
            continue  # batching is for async clients
        with pytest.raises(llmspend.ConfigError, match=r"signs every request with AWS SigV4.*api_key=") as refused:
            llmspend.wrap(signing, **options)
        assert f"{next(iter(options))}=" in str(refused.value)
    assert llmspend.wrap(signing)  # spans, costs, budgets and retries leave the request as it is
    keyed = cls(api_key="sk-ant-test", aws_region="us-east-1", workspace_id="w")  # an API key: not signed
    assert llmspend.wrap(keyed, cache=str(tmp_path / "k"))


def test_bedrock_mantle_is_refused_for_what_is_true_of_it() -> None:
    """Mantle speaks the Messages API (at /anthropic/v1/messages): the refusal must not say its
    requests go to other endpoints; what keeps it out is that AWS bills it, at Bedrock's prices."""
    import llmspend

    for cls in (anthropic.AnthropicBedrockMantle, anthropic.AsyncAnthropicBedrockMantle):
        mantle = cls(api_key="k", aws_region="us-east-1")
        with pytest.raises(llmspend.ConfigError) as raised:
            llmspend.wrap(mantle)
        message = str(raised.value)
        assert f"{cls.__name__} (Amazon Bedrock)" in message and "Bedrock's prices" in message
        assert "own endpoints" not in message and "Messages API" in message


def test_usage_adds_cache_parts_to_input_once() -> None:
    usage = usage_from_json(MESSAGE["usage"])
    assert usage == Usage(input_tokens=12 + 1500 + 3000, output_tokens=80, cache_read_tokens=3000,
                          cache_write_tokens=1500, cache_write_1h_tokens=1000, reasoning_tokens=30)
    assert usage.uncached_input_tokens == 12


@pytest.mark.parametrize(("raw", "expected"), [
    ({"input_tokens": 5, "output_tokens": 2}, Usage(5, 2)),
    # no lifetime breakdown: all writes are 5-minute writes (the API's default)
    ({"input_tokens": 5, "cache_creation_input_tokens": 40, "output_tokens": 2}, Usage(45, 2, 0, 40, 0)),
    # a breakdown but no total: the breakdown is the total
    ({"input_tokens": 5, "cache_creation": {"ephemeral_5m_input_tokens": 7, "ephemeral_1h_input_tokens": 3}, "output_tokens": 2},
     Usage(15, 2, 0, 10, 3)),
    # nulls count as nothing; whole floats (a gateway's doubles) are counts
    ({"input_tokens": None, "cache_read_input_tokens": None, "output_tokens": None, "cache_creation": None}, Usage()),
    ({"input_tokens": 5.0, "cache_read_input_tokens": 3.0, "output_tokens": 2.0}, Usage(8, 2, 3)),
])
def test_usage_shapes(raw: dict[str, Any], expected: Usage) -> None:
    assert usage_from_json(raw) == expected


@pytest.mark.parametrize("junk", [{"cache_read_input_tokens": "x"}, {"output_tokens": -1}, {"input_tokens": 2.5},
                                  {"cache_creation": {"ephemeral_1h_input_tokens": True}},
                                  {"output_tokens_details": {"thinking_tokens": "7"}}])
def test_usage_with_a_count_that_is_not_one_is_unreadable(junk: dict[str, Any]) -> None:
    """Read as 0 it would price the call short with status ok; unreadable, its cost is unknown."""
    with pytest.raises(ResponseParseError, match="is not a token count"):
        usage_from_json({"input_tokens": 5, "output_tokens": 2, **junk})


# -- requests and hooks -------------------------------------------------------------------
def test_parse_request_endpoints() -> None:
    call = _request({**BODY, "stream": True}).call
    assert call is not None
    assert (call.provider, call.operation, call.endpoint, call.model, call.stream) == ("anthropic", "chat", "messages", "claude-haiku-4-5", True)
    assert call.params == {"max_tokens": 300, "stop_sequences": ("###",)}
    assert _request(BODY, "/v1/messages/count_tokens").call is None  # free: passed through
    assert _request({"requests": []}, "/v1/messages/batches").call is None  # no batch support yet
    assert _request(BODY, "/anthropic/v1/messages").call is not None  # Microsoft Foundry's prefix
    assert OpenAIAdapter().parse_request(_request(BODY)) is None  # not the generic adapter's


def test_with_model_is_reread() -> None:
    swapped = AnthropicAdapter().with_model(_request(BODY), "claude-sonnet-4-6")
    assert swapped.call is not None and swapped.call.model == "claude-sonnet-4-6"
    assert json.loads(swapped.content)["messages"] == CONVERSATION


def test_messages_for_trimming() -> None:
    adapter = AnthropicAdapter()
    request = _request(BODY)
    call = request.call
    assert call is not None
    messages = adapter.get_messages(call)
    assert messages == CONVERSATION  # Anthropic's own shape; the top-level system is not in it
    # drop the first exchange (the tool call and its result go together)
    trimmed = adapter.with_messages(request, call, messages[3:])
    body = json.loads(trimmed.content)
    assert body["messages"] == CONVERSATION[3:]
    assert {k: v for k, v in body.items() if k != "messages"} == {k: v for k, v in BODY.items() if k != "messages"}
    assert trimmed.call is not None and trimmed.call.model == call.model
    # what is outside the list: the system prompt and the tools
    overhead = adapter.estimate_overhead_tokens(call)
    bare = _request({**BODY, "system": "", "tools": []}).call
    assert bare is not None and adapter.estimate_overhead_tokens(bare) == 0 < overhead
    assert adapter.get_messages(_request({**BODY, "messages": "not a list"}).call) is None  # type: ignore[arg-type]


def test_estimate_counts_everything_sent() -> None:
    adapter = AnthropicAdapter()
    call = _request(BODY).call
    assert call is not None
    full = adapter.estimate_input_tokens(call)
    bare = _request({**BODY, "tools": [], "system": ""}).call
    assert bare is not None and 0 < adapter.estimate_input_tokens(bare) < full


# -- what the cache keys on ------------------------------------------------------------------
def test_cache_key_body_drops_only_the_markers() -> None:
    adapter = AnthropicAdapter()
    schema_tool = {"name": "set", "input_schema": {"type": "object", "properties": {"cache_control": {"type": "string"}}},
                   "cache_control": {"type": "ephemeral"}}
    nested = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "cache_control": {"type": "ephemeral"},
                                           "content": [{"type": "text", "text": "shipped", "cache_control": {"type": "ephemeral"}}]}]}
    marked = {**BODY, "cache_control": {"type": "ephemeral"}, "tools": [schema_tool], "messages": [*CONVERSATION[:2], nested]}
    request = _request(marked)
    call = request.call
    assert call is not None
    keyed = adapter.cache_key_body(request, call)
    assert b'"cache_control"' not in dumps(keyed).replace(b'"properties":{"cache_control"', b"")  # only the schema's is left
    assert keyed["tools"][0]["input_schema"] == schema_tool["input_schema"]
    assert keyed["system"] == [{"type": "text", "text": "Be brief."}]
    assert keyed["messages"][2]["content"][0]["content"] == [{"type": "text", "text": "shipped"}]
    assert marked["system"] == SYSTEM and "cache_control" in marked  # the request itself is untouched
    plain = _request({**BODY, "system": "Be brief."})
    assert plain.call is not None and adapter.cache_key_body(plain, plain.call) is plain.call.body  # nothing to drop: no copy
    assert adapter.vary_headers == ("anthropic-version", "anthropic-beta")


# -- conversion for mixed cascades ----------------------------------------------------------
def test_request_to_openai_and_back() -> None:
    as_openai = openai_chat_request(BODY)
    roles = [m["role"] for m in as_openai["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert as_openai["messages"][2]["tool_calls"][0]["function"] == {"name": "lookup_order", "arguments": '{"n": "1182"}'}
    assert as_openai["tools"][0]["function"]["parameters"] == TOOL["input_schema"]
    assert as_openai["tool_choice"] == "auto" and as_openai["stop"] == ["###"]
    # the OpenAI-compatible adapter reads it as a chat call
    openai_request = Request("POST", "https://api.openai.com/v1/chat/completions", Headers(), dumps(as_openai))
    call = OpenAIAdapter().parse_request(openai_request)
    assert call is not None and call.endpoint == "chat.completions"
    back = messages_request(as_openai, model="claude-haiku-4-5")
    assert back["system"] == "Be brief." and back["max_tokens"] == 300
    assert back["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Where is order 1182?"}]},
        CONVERSATION[1],
        CONVERSATION[2],
        {"role": "assistant", "content": [{"type": "text", "text": "It shipped."}]},
        {"role": "user", "content": [{"type": "text", "text": "Thanks! And 1183?"}]},
    ]
    assert back["tools"] == [TOOL] and back["tool_choice"] == {"type": "auto"}


def test_openai_request_to_messages_merges_turns_and_defaults() -> None:
    body = {"model": "gpt-4o", "temperature": 1.6, "stop": "END", "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "messages": [{"role": "developer", "content": "Rules."}, {"role": "user", "content": "a"},
                         {"role": "user", "content": [{"type": "text", "text": "b"},
                                                      {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}
    out = messages_request(body, model="claude-haiku-4-5")
    assert out["model"] == "claude-haiku-4-5" and out["max_tokens"] == 4096  # required by the API
    assert out["temperature"] == 1.0 and out["stop_sequences"] == ["END"] and out["tool_choice"] == {"type": "any"}
    assert out["system"] == "Rules."
    (turn,) = out["messages"]  # consecutive user turns merged: the API wants them to alternate
    assert [b["type"] for b in turn["content"]] == ["text", "text", "image"]
    assert turn["content"][2]["source"] == {"type": "base64", "media_type": "image/png", "data": "AAAA"}


def test_sampling_parameters_only_for_api_versions_that_take_them() -> None:
    adapter = AnthropicAdapter()
    body = {"model": "gpt-4o", "temperature": 0, "top_p": 0.5, "messages": [{"role": "user", "content": "a"}]}
    legacy = adapter.from_openai_chat_request(body, "claude-haiku-4-5", Headers([("anthropic-version", "2023-06-01")]))
    assert (legacy["temperature"], legacy["top_p"], legacy["model"]) == (0.0, 0.5, "claude-haiku-4-5")
    for headers in (Headers([("anthropic-version", "2026-10-21")]), Headers()):  # none: the SDK's own, current
        current = adapter.from_openai_chat_request(body, "claude-haiku-4-5", headers)
        assert "temperature" not in current and "top_p" not in current


def test_translation_hooks_of_both_adapters() -> None:
    anthropic_adapter, openai_adapter = AnthropicAdapter(), OpenAIAdapter()
    call = _request(BODY).call
    assert call is not None
    chat = anthropic_adapter.to_openai_chat_request(call)
    assert chat == openai_chat_request(BODY)
    assert anthropic_adapter.chat_path == "/v1/messages" and openai_adapter.chat_path == "/chat/completions"
    openai_call = OpenAIAdapter().parse_request(
        Request("POST", "https://api.openai.com/v1/chat/completions", Headers(), dumps(chat)))
    assert openai_call is not None and openai_adapter.to_openai_chat_request(openai_call) == chat  # the common form
    assert openai_adapter.from_openai_chat_request(chat, "gpt-4o", Headers())["model"] == "gpt-4o"
    with pytest.raises(ResponseParseError):
        anthropic_adapter.to_openai_chat_response({"type": "error"})
    with pytest.raises(ResponseParseError):
        openai_adapter.to_openai_chat_response(MESSAGE)
    replayed = message_from_events([anthropic_adapter.stream_from_answer(call, MESSAGE)])
    assert replayed == MESSAGE


def test_answers_both_ways_validate_as_the_sdks_types() -> None:
    adapter = AnthropicAdapter()
    completion = adapter.to_openai_chat_response(MESSAGE)
    parsed = openai.types.chat.ChatCompletion.model_validate(completion)
    assert parsed.choices[0].finish_reason == "tool_calls"
    assert parsed.choices[0].message.content == "Checking that one now."
    assert parsed.usage is not None and parsed.usage.prompt_tokens == 4512  # all input, as OpenAI counts it
    assert parsed.usage.prompt_tokens_details is not None and parsed.usage.prompt_tokens_details.cached_tokens == 3000
    message = adapter.from_openai_chat_response(completion)
    back = anthropic.types.Message.model_validate(message)
    assert back.stop_reason == "tool_use"
    assert [b.type for b in back.content] == ["text", "tool_use"]  # thinking has no OpenAI form
    assert back.usage.input_tokens + (back.usage.cache_read_input_tokens or 0) == 4512
    assert openai_chat_completion(message_from_chat_completion(completion))["choices"][0]["message"]["tool_calls"] == completion["choices"][0]["message"]["tool_calls"]


# -- streams ------------------------------------------------------------------------------
def _body_bytes() -> bytes:
    return b"".join(encode_events(events_from_message(MESSAGE)))


def test_events_round_trip_to_the_message() -> None:
    assert message_from_events([_body_bytes()]) == MESSAGE


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_stream_reader_any_split(size: int) -> None:
    call = _request({**BODY, "stream": True}).call
    assert call is not None
    reader = AnthropicStreamReader(call)
    raw = _body_bytes()
    handed_on = b"".join(reader.feed(raw[i:i + size]) for i in range(0, len(raw), size)) + reader.flush()
    assert handed_on == raw  # every byte, unchanged
    outcome = reader.outcome(complete=False)  # closed right after message_stop: still complete
    assert outcome.complete and outcome.usage == usage_from_json(MESSAGE["usage"])
    assert outcome.finish_reasons == ("tool_use",) and outcome.response_id == "msg_01"
    assert outcome.response_model == "claude-haiku-4-5-20251001"
    assert "Checking" not in outcome.output_text  # usage is exact: the text deltas were never parsed


def test_stream_reader_text_for_content_capture() -> None:
    call = _request({**BODY, "stream": True}).call
    assert call is not None
    reader = AnthropicStreamReader(call)
    reader.capture_text = True  # what the telemetry stage sets with capture_content=True
    reader.feed(_body_bytes())
    assert "Checking that one now." in reader.outcome(complete=True).output_text


def test_stream_reader_builds_output_parts_only_for_content_capture() -> None:
    call = _request({**BODY, "stream": True}).call
    assert call is not None
    found = []
    for capture in (False, True):
        reader = AnthropicStreamReader(call)
        reader.capture_text = capture
        reader.feed(_body_bytes())
        found.append(reader.outcome(complete=True).output_messages)
    assert found == [None, tuple(output_messages(MESSAGE))]


def test_media_and_other_blocks_as_parts() -> None:
    png = "iVBORw0KGgo="
    content = input_content({"system": "Be brief.", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The policy."}},
    ]}, {"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "EncryptedBytes"},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
         "content": [{"type": "web_search_result", "url": "https://example.com", "title": "X"}]},
    ]}]})
    assert content.system_instructions == [{"type": "text", "content": "Be brief."}]
    assert content.messages == [
        {"role": "user", "parts": [
            {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "", "byte_size": 8},
            {"type": "uri", "modality": "image", "uri": "https://example.com/a.jpg"},
            {"type": "file", "modality": "document", "file_id": "file_1"},
            {"type": "text", "content": "The policy."},
        ]},
        {"role": "assistant", "parts": [
            {"type": "redacted_thinking"},  # encrypted: left out
            # tools Anthropic runs itself: the conventions' server tool parts
            {"type": "server_tool_call", "id": "srvtoolu_1", "name": "web_search",
             "server_tool_call": {"type": "web_search", "input": {"query": "x"}}},
            {"type": "server_tool_call_response", "id": "srvtoolu_1", "server_tool_call_response": {
                "type": "web_search_tool_result",
                "content": [{"type": "web_search_result", "url": "https://example.com", "title": "X"}]}},
        ]},
    ]


def test_stream_reader_before_message_delta_estimates_output() -> None:
    call = _request({**BODY, "stream": True}).call
    assert call is not None
    reader = AnthropicStreamReader(call)
    events = events_from_message(MESSAGE)
    cut = next(i for i, e in enumerate(events) if e["type"] == "message_delta")
    reader.feed(b"".join(encode_events(events[:cut])))
    outcome = reader.outcome(complete=False)
    assert not outcome.complete
    usage = outcome.usage
    assert usage is not None and usage.estimated
    assert usage.input_tokens == 4512 and usage.cache_write_1h_tokens == 1000  # exact, from message_start
    assert usage.output_tokens > 5 and usage.reasoning_tokens == 0
