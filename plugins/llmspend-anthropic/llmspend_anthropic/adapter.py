"""The Anthropic Messages API adapter.

Endpoints read:

- ``POST /v1/messages`` (also ``?beta=true``, and the same path under another prefix, as
  Microsoft Foundry serves it): operation ``chat``, endpoint ``messages``, streamed or not.
- ``POST /v1/messages/count_tokens`` is free: it is passed through untouched and unmeasured
  (no span, no cost), as any request the adapter does not read.
- ``/v1/messages/batches`` (Message Batches) is passed through unmeasured too: creating a batch
  costs nothing, and ``llmspend batch collect`` prices its results (:mod:`llmspend_anthropic.batches`).

Usage is read as Anthropic reports it and normalised as the OpenTelemetry conventions require
(``input_tokens`` = uncached + cache reads + cache writes); see :mod:`llmspend_anthropic.usage`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llmspend import Headers, Request
from llmspend.exceptions import ConfigError, LLMSpendError, ResponseParseError
from llmspend.providers.base import (Call, Outcome, ProviderAdapter, StreamReader, ToolCallLimit, json_object_body,
                                     number_params)
from llmspend.telemetry.content import InputContent

from . import convert, parts
from .errors import passable
from .content import block_text, estimate_overhead_tokens, estimate_request_tokens, without_cache_control
from .stream import AnthropicStreamReader, encode_events, events_from_message
from .usage import server_tool_blocks, server_tool_calls, tool_call_limits, usage_attributes, usage_from_json, usage_string

__all__ = ["AnthropicAdapter"]

MESSAGES_PATH = "/v1/messages"

# request body key -> gen_ai.request.* attribute suffix
_PARAMS = {
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
}

# The SDK client classes whose requests speak this API. Bedrock and Vertex clients (same SDK,
# other wire formats: the model in the URL, other auth) are not among them.
_CLIENT_CLASSES = {("anthropic", "Anthropic"), ("anthropic", "AsyncAnthropic"),
                   ("anthropic._client", "Anthropic"), ("anthropic._client", "AsyncAnthropic")}


class AnthropicAdapter(ProviderAdapter):
    """Reads the Anthropic Messages API. ``provider`` overrides ``gen_ai.provider.name``
    (default ``"anthropic"``) for a proxy that serves Claude under another name."""

    name = "anthropic"
    #: the API version and beta features select the model's behaviour: a cached answer given
    #: under one must not stand in for another (the cache keys on them)
    vary_headers = ("anthropic-version", "anthropic-beta")

    def __init__(self, provider: str | None = None) -> None:
        self.provider = provider

    def supports_client(self, client: object) -> bool:
        # By name, so that loading the plugin does not import the SDK (half a second) for
        # applications that never use it.
        return any((cls.__module__, cls.__name__) in _CLIENT_CLASSES for cls in type(client).__mro__)

    def unsupported_client(self, client: object) -> str | None:
        modules = [cls.__module__ for cls in type(client).__mro__]
        name = type(client).__name__
        if "anthropic.lib.bedrock._mantle" in modules:
            # Mantle does speak the Messages API (under /anthropic), so the adapter would read
            # its calls; but AWS bills them, and the cost would be Anthropic's, under its name.
            return (f"llmspend does not measure Claude through {name} (Amazon Bedrock) yet: it speaks the "
                    "Messages API, but AWS bills its calls at Amazon Bedrock's prices, which llmspend's price "
                    "table does not have, so they would be reported as Anthropic's at Anthropic's prices. "
                    "Wrap an anthropic.Anthropic / AsyncAnthropic client instead")
        cloud = next((c for c in ("bedrock", "vertex") if any(m.startswith(f"anthropic.lib.{c}") for m in modules)), None)
        if cloud is None:
            return None
        # Their calls go to the cloud's own paths (/model/.../invoke, ...:rawPredict), which
        # this adapter does not read: wrapped, they would pass unmeasured.
        return (f"llmspend does not measure Claude through {name} ({'Amazon Bedrock' if cloud == 'bedrock' else 'Google Vertex AI'}) "
                "yet: its requests go to that cloud's own endpoints, not the Messages API path llmspend reads. "
                "Wrap an anthropic.Anthropic / AsyncAnthropic client instead")

    # -- requests ----------------------------------------------------------------------
    def parse_request(self, request: Request) -> Call | None:
        if request.method != "POST" or not request.path.rstrip("/").endswith(MESSAGES_PATH):
            return None
        body = json_object_body(request)
        if body is None:
            return None
        params = number_params(body, _PARAMS)
        stop = body.get("stop_sequences")
        if isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
            params["stop_sequences"] = tuple(stop)
        output_format = (body.get("output_config") or {}).get("format") if isinstance(body.get("output_config"), Mapping) else None
        if isinstance(output_format, Mapping) and output_format.get("type") == "json_schema":
            params["output.type"] = "json"
        model = body.get("model")
        return Call(
            provider=self.provider or "anthropic",
            operation="chat",
            endpoint="messages",
            model=model if isinstance(model, str) else None,
            stream=body.get("stream") is True,
            server_address=request.host,
            server_port=request.port,
            params=params,
            usage_requested=True,  # Anthropic streams always carry usage
            body=body,
        )

    # -- responses ---------------------------------------------------------------------
    def parse_response(self, call: Call, body: bytes) -> Outcome:
        data = _json_object(body)
        content = data.get("content")
        if not isinstance(content, list):
            raise ResponseParseError("messages response has no content list")
        usage = data.get("usage")
        if usage is not None and not isinstance(usage, Mapping):
            raise ResponseParseError("usage is not an object")
        stop = data.get("stop_reason")
        return Outcome(
            usage=usage_from_json(usage) if usage else None,
            response_id=data.get("id") if isinstance(data.get("id"), str) else None,
            response_model=data.get("model") if isinstance(data.get("model"), str) else None,
            finish_reasons=(stop,) if isinstance(stop, str) else (),
            service_tier=usage_string(usage, "service_tier"),
            inference_geo=usage_string(usage, "inference_geo"),
            speed=usage_string(usage, "speed"),
            output_text="".join(block_text(block) for block in content),
            attributes=usage_attributes(usage),
            # without usage (a proxy that drops it) the blocks still show which calls ran
            tool_calls=server_tool_calls(usage, call.body) if usage else server_tool_blocks(content, call.body),
        )

    def stream_reader(self, call: Call, request: Request) -> StreamReader:
        return AnthropicStreamReader(call)

    # -- content capture (only with capture_content=True) ---------------------------------
    def input_content(self, call: Call) -> InputContent | None:
        """The top-level ``system`` as system instructions, ``messages`` as input messages."""
        return parts.input_content(call.body) if isinstance(call.body, Mapping) else None

    def output_messages(self, call: Call, body: bytes) -> list[dict[str, Any]] | None:
        try:
            answer = _json_object(body)
        except ResponseParseError:
            return None
        return parts.output_messages(answer)

    def estimate_input_tokens(self, call: Call) -> int:
        body = call.body if isinstance(call.body, Mapping) else {}
        return estimate_request_tokens(body, call.model)

    # -- hooks for other stages ----------------------------------------------------------
    def cache_key_body(self, request: Request, call: Call) -> Mapping[str, Any]:
        """The body without its ``cache_control`` markers: they say which prefix the provider
        may keep, not what the answer is, so a request with and without them gets one entry."""
        body: Mapping[str, Any] = call.body
        if b'"cache_control"' not in request.content:  # the SDK's JSON: the usual case, no copy
            return body
        return without_cache_control(body)

    # with_model() is the base class's: the model is a top-level body field here as well.

    def get_messages(self, call: Call) -> list[Any] | None:
        """The conversation, for trimming: ``messages`` as they are, in Anthropic's own shape
        (a ``tool_use`` block in an assistant turn, its ``tool_result`` in the next user turn).
        The top-level ``system`` is outside the list, so trimming never touches it."""
        body = call.body if isinstance(call.body, Mapping) else {}
        messages = body.get("messages")
        return messages if isinstance(messages, list) else None

    def with_messages(self, request: Request, call: Call, messages: list[Any]) -> Request:
        body = dict(call.body)
        body["messages"] = messages
        return request.replace(json_body=body)

    def tool_call_limits(self, call: Call) -> tuple[ToolCallLimit, ...]:
        return tool_call_limits(call)

    def estimate_overhead_tokens(self, call: Call) -> int:
        """Input tokens outside :meth:`get_messages`'s list: the system prompt and the tools."""
        body = call.body if isinstance(call.body, Mapping) else {}
        return estimate_overhead_tokens(body, call.model)

    def sdk_error(self, error: LLMSpendError) -> BaseException:
        """``error`` as a type the anthropic SDK lets through (it would make any other exception
        from its transport an ``APIConnectionError``); see :mod:`llmspend_anthropic.errors`."""
        return passable(error)

    # -- translation (mixed cascades): OpenAI chat-completions JSON is the common form -------
    chat_path = MESSAGES_PATH

    def to_openai_chat_request(self, call: Call) -> dict[str, Any] | None:
        """A Messages request as an OpenAI chat-completions body."""
        if call.endpoint != "messages" or not isinstance(call.body, Mapping):
            return None
        return convert.openai_chat_request(call.body)

    def from_openai_chat_request(self, body: Mapping[str, Any], model: str, headers: Headers) -> dict[str, Any]:
        """An OpenAI chat-completions body as a Messages request for ``model``; without
        ``temperature``/``top_p`` when ``headers`` ask for an API version that refuses them.
        A body in JSON mode without a schema is refused (``ConfigError``): Claude's answer would
        be sent as plain text to a caller that parses JSON."""
        if convert.schemaless_json(body):
            raise ConfigError(
                f"{model} (Anthropic) cannot be asked for JSON without a schema (response_format json_object): "
                "give a schema (response_format json_schema, e.g. client.chat.completions.parse(response_format=MyModel))"
            )
        return convert.messages_request(body, model=model, sampling=convert.takes_sampling(headers.get("anthropic-version")))

    def to_openai_chat_response(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        """A Message as an OpenAI ``chat.completion``."""
        if not isinstance(answer.get("content"), list):
            raise ResponseParseError("messages response has no content list")
        return convert.openai_chat_completion(answer)

    def from_openai_chat_response(self, completion: Mapping[str, Any]) -> dict[str, Any]:
        """An OpenAI ``chat.completion`` (its first choice) as a Message."""
        return convert.message_from_chat_completion(completion)

    def stream_from_answer(self, call: Call, answer: Mapping[str, Any]) -> bytes:
        """The event sequence the API streams for the Message ``answer``."""
        return b"".join(encode_events(events_from_message(answer)))


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ResponseParseError("messages response is not JSON") from exc
    if not isinstance(data, Mapping):
        raise ResponseParseError("messages response is not a JSON object")
    return data
