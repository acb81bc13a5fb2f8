"""The OpenAI-compatible adapter: OpenAI itself and every server that speaks its API
(vLLM, Ollama, Together, Groq, Fireworks, DeepSeek, Mistral, ...).

Endpoints read: chat completions, legacy completions, embeddings and the Responses API.
Usage is read as the provider reports it, cached input (``prompt_tokens_details.cached_tokens``,
``prompt_cache_hit_tokens`` from DeepSeek,
``input_tokens_details.cached_tokens``) and reasoning tokens
(``completion_tokens_details.reasoning_tokens``) included. For streamed chat and completions
the API reports usage only when ``stream_options.include_usage`` is set, so when the caller did
not set it this adapter sets it and removes the extra usage-only chunk before the caller sees it.

Chat completions are also the common form other adapters translate through (mixed-provider
cascades), so this adapter's translation hooks are the identity, and its
:func:`sse_from_completion` re-tells a whole chat completion as a stream.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from .._http import Headers, Request, dumps, loads
from ..exceptions import ResponseParseError
from ..telemetry.content import InputContent
from ..tokens import count_chat_messages, count_text
from ..vision.parts import item_image_tokens, without_images
from . import openai_content, openai_tools
from .base import (NO_TOOL_CALLS, Call, Outcome, ProviderAdapter, StreamReader, ToolCallLimit, Usage, json_object_body,
                   number_params, token_count, usage_count)
from .sse import EventSplitter, event_data

__all__ = ["OpenAIAdapter", "provider_for_host", "sse_from_completion"]

# gen_ai.provider.name for the hosts of known OpenAI-compatible services. Any other host
# (a local vLLM or Ollama, a proxy) is reported as "openai", the API it speaks; pass
# provider= to wrap() to name it otherwise.
_HOST_PROVIDERS = (
    ("api.openai.com", "openai"),
    # Azure OpenAI: a resource's own host, an AI Services resource's, an AI Foundry one's
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.openai"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("api.groq.com", "groq"),
    ("api.fireworks.ai", "fireworks"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral_ai"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("api.x.ai", "x_ai"),
    ("openrouter.ai", "openrouter"),
    ("api.perplexity.ai", "perplexity"),
)


@functools.lru_cache(maxsize=256)
def provider_for_host(host: str, default: str = "openai") -> str:
    host = host.lower()
    for suffix, name in _HOST_PROVIDERS:
        if host == suffix or (suffix.startswith(".") and host.endswith(suffix)):
            return name
    return default


def _provider_for(host: str, path: str) -> str:
    provider = provider_for_host(host)
    if provider == "azure.ai.openai" and path.startswith("/models/"):
        # an Azure AI Foundry resource's Model Inference API: other vendors' models, not OpenAI's
        return "azure.ai.inference"
    return provider


# (path suffix, endpoint, gen_ai.operation.name); chat first: it also ends in /completions.
_ENDPOINTS = (
    ("/chat/completions", "chat.completions", "chat"),
    ("/completions", "completions", "text_completion"),
    ("/embeddings", "embeddings", "embeddings"),
    ("/responses", "responses", "chat"),
)


@functools.lru_cache(maxsize=256)  # a client calls a handful of paths, on every call
def _endpoint(path: str) -> tuple[str, str] | None:
    """``(endpoint, operation)`` for a URL path, or None when it is none of ours."""
    path = path.rstrip("/")
    for suffix, endpoint, operation in _ENDPOINTS:
        if path.endswith(suffix):
            return endpoint, operation
    return None


# request body key -> gen_ai.request.* attribute suffix
_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "n": "choice.count",
    "top_k": "top_k",
}


# where each endpoint keeps its conversation (the list the trim stage may rewrite)
_MESSAGES_KEY = {"chat.completions": "messages", "responses": "input"}


class OpenAIAdapter(ProviderAdapter):
    """Reads the OpenAI API and OpenAI-compatible servers.

    ``provider`` fixes ``gen_ai.provider.name`` (and the price-table provider) for every call;
    by default it follows the host (``api.groq.com`` is ``groq``, unknown hosts ``openai``).
    ``add_stream_usage=False`` stops the adapter from asking streams for usage, for servers
    that reject ``stream_options``; their streamed costs are then estimated, unless the server
    reports usage anyway (on its last content chunk, or in Groq's ``x_groq``).
    """

    name = "openai"

    def __init__(self, provider: str | None = None, *, add_stream_usage: bool = True) -> None:
        self.provider = provider  # None: follow the host
        self.add_stream_usage = add_stream_usage

    def supports_client(self, client: object) -> bool:
        module = type(client).__module__
        return module == "openai" or module.startswith("openai.")

    def parse_request(self, request: Request) -> Call | None:
        if request.method != "POST":
            return None
        found = _endpoint(request.path)
        if found is None:
            return None
        endpoint, operation = found
        body = json_object_body(request)
        if body is None:
            return None
        params = number_params(body, _PARAMS)
        stop = body.get("stop")
        if isinstance(stop, str):
            params["stop_sequences"] = (stop,)
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            params["stop_sequences"] = tuple(stop)
        fmt = body.get("response_format") or (body.get("text") or {}).get("format")
        if fmt and isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
            params["output.type"] = "json"
        stream = body.get("stream") is True
        usage_requested = not stream or endpoint == "responses" or (
            isinstance(options := body.get("stream_options"), Mapping) and options.get("include_usage") is True
        )
        model = body.get("model")
        return Call(
            provider=self.provider or _provider_for(request.host, request.path),
            operation=operation,
            endpoint=endpoint,
            model=model if isinstance(model, str) else None,
            stream=stream,
            server_address=request.host,
            server_port=request.port,
            params=params,
            usage_requested=usage_requested,
            body=body,
        )

    def prepare_request(self, request: Request, call: Call) -> Request:
        if call.usage_requested or not self.add_stream_usage:
            return request
        body = dict(call.body)
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return request.replace(json_body=body)

    # -- responses ---------------------------------------------------------------------
    def parse_response(self, call: Call, body: bytes) -> Outcome:
        try:
            data = loads(body)
        except ValueError as exc:
            raise ResponseParseError(f"{call.endpoint} response is not JSON") from exc
        if not isinstance(data, dict):
            raise ResponseParseError(f"{call.endpoint} response is not a JSON object")
        if call.endpoint == "responses":
            return _responses_outcome(data, _request_tools(call))
        # JSON objects parse to dicts: isinstance(x, dict) is the Mapping check without the
        # ABC machinery, here and in the helpers below (they read parsed JSON only).
        usage = data.get("usage")
        if usage is not None and not isinstance(usage, dict):
            raise ResponseParseError("usage is not an object")
        texts, reasons = [], []
        choices = data.get("choices")
        if call.endpoint != "embeddings":
            if not isinstance(choices, list):
                raise ResponseParseError(f"{call.endpoint} response has no choices")
            for choice in choices:
                if not isinstance(choice, dict):
                    raise ResponseParseError("a choice is not an object")
                texts.append(_choice_text(choice))
                reason = choice.get("finish_reason")
                if isinstance(reason, str):
                    reasons.append(reason)
        response_id, model, tier = data.get("id"), data.get("model"), data.get("service_tier")
        return Outcome(
            usage=_chat_usage(usage) if usage else None,
            reported_cost_usd=_reported_cost(usage) if usage else None,
            response_id=response_id if isinstance(response_id, str) else None,
            response_model=model if isinstance(model, str) else None,
            finish_reasons=tuple(reasons),
            service_tier=tier if isinstance(tier, str) else None,
            output_text="".join(texts),
            tool_calls=openai_tools.chat_tool_calls(call) if call.endpoint == "chat.completions" else NO_TOOL_CALLS,
        )

    def stream_reader(self, call: Call, request: Request) -> StreamReader:
        injected = not call.usage_requested and self.add_stream_usage
        return _OpenAIStreamReader(call, drop_usage_chunk=injected)

    def estimate_input_tokens(self, call: Call) -> int:
        body = call.body if isinstance(call.body, Mapping) else {}
        if call.endpoint == "chat.completions":
            total = count_chat_messages(body.get("messages") or (), call.model)
            if body.get("tools"):
                total += count_text(json.dumps(body["tools"]), call.model)
            return total
        if call.endpoint == "responses":
            source = body.get("input")
            if isinstance(source, str):
                return count_text((body.get("instructions") or "") + source, call.model)
            # images by their own rule; their base64 is not text the model reads
            text = json.dumps(without_images(source or ""))
            images = sum(item_image_tokens(item, call.model) for item in source) if isinstance(source, list) else 0
            return count_text((body.get("instructions") or "") + text, call.model) + images
        source = body.get("prompt") if call.endpoint == "completions" else body.get("input")
        if isinstance(source, str):
            return count_text(source, call.model)
        if isinstance(source, list):
            return sum(count_text(s, call.model) if isinstance(s, str) else len(s) for s in source)
        return 0

    # -- content capture -----------------------------------------------------------------
    def input_content(self, call: Call) -> InputContent | None:
        body = call.body if isinstance(call.body, Mapping) else {}
        return openai_content.input_content(call.endpoint, body)

    def output_messages(self, call: Call, body: bytes) -> list[dict[str, Any]] | None:
        try:
            data = loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict) or call.endpoint == "embeddings":
            return None
        if call.endpoint == "responses":
            return openai_content.responses_output(data)
        return openai_content.chat_output(data.get("choices"))

    # -- prompt rewriting ----------------------------------------------------------------
    def get_messages(self, call: Call) -> list[Any] | None:
        """Chat ``messages`` or a Responses ``input`` list; a plain-string ``input`` reads as
        the one user message it is, so it is held to the budget too."""
        key = _MESSAGES_KEY.get(call.endpoint)
        body = call.body if isinstance(call.body, Mapping) else {}
        messages = body.get(key) if key is not None else None
        if call.endpoint == "responses" and isinstance(messages, str):
            return [{"role": "user", "content": messages}]
        return messages if isinstance(messages, list) else None

    def with_messages(self, request: Request, call: Call, messages: list[Any]) -> Request:
        body = dict(call.body)
        key = _MESSAGES_KEY[call.endpoint]
        only = messages[0] if len(messages) == 1 and isinstance(messages[0], Mapping) else None
        if isinstance(body.get(key), str) and only is not None and isinstance(only.get("content"), str):
            body[key] = only["content"]  # a plain-string input stays a string
        else:
            body[key] = messages
        return request.replace(json_body=body)

    def tool_call_limits(self, call: Call) -> tuple[ToolCallLimit, ...]:
        return openai_tools.tool_call_limits(call)

    def estimate_overhead_tokens(self, call: Call) -> int:
        body = call.body if isinstance(call.body, Mapping) else {}
        total = 0
        if body.get("tools"):
            total += count_text(json.dumps(body["tools"]), call.model)
        if call.endpoint == "responses" and isinstance(body.get("instructions"), str):
            total += count_text(body["instructions"], call.model)
        return total

    # -- translation: chat completions are the common form, so these are the identity -------
    chat_path = "/chat/completions"

    def to_openai_chat_request(self, call: Call) -> dict[str, Any] | None:
        return call.body if call.endpoint == "chat.completions" and isinstance(call.body, dict) else None

    def from_openai_chat_request(self, body: Mapping[str, Any], model: str, headers: Headers) -> dict[str, Any]:
        return {**body, "model": model}

    def to_openai_chat_response(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise ResponseParseError("not a chat completion")
        return answer

    def from_openai_chat_response(self, completion: Mapping[str, Any]) -> dict[str, Any]:
        return dict(completion)

    def stream_from_answer(self, call: Call, answer: Mapping[str, Any]) -> bytes:
        options = call.body.get("stream_options") if isinstance(call.body, Mapping) else None
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        return sse_from_completion(answer, include_usage=include_usage)


def sse_from_completion(completion: Mapping[str, Any], *, include_usage: bool) -> bytes:
    """A chat completion re-told as the chunks of an OpenAI chat stream (one content delta per
    choice, then its finish reason, then usage if asked for, then ``[DONE]``)."""
    base = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
    }
    for key in ("system_fingerprint", "service_tier"):
        if key in completion:
            base[key] = completion[key]
    extra = {"usage": None} if include_usage else {}
    events: list[dict[str, Any]] = []
    for index, choice in enumerate(completion.get("choices") or ()):
        message = choice.get("message") or {}
        number = choice.get("index", index)
        delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": ""}
        if message.get("refusal") is not None:
            delta["refusal"] = message["refusal"]
        events.append({**base, "choices": [{"index": number, "delta": delta, "finish_reason": None}], **extra})
        if message.get("content"):
            events.append({**base, "choices": [{"index": number, "delta": {"content": message["content"]},
                                                "finish_reason": None}], **extra})
        events.append({**base, "choices": [{"index": number, "delta": {}, "finish_reason": choice.get("finish_reason")}],
                       **extra})
    if include_usage and completion.get("usage") is not None:
        events.append({**base, "choices": [], "usage": completion["usage"]})
    return b"".join(b"data: " + dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _chat_usage(usage: Mapping[str, Any]) -> Usage:
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    in_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    out_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    if not isinstance(in_details, dict) or not isinstance(out_details, dict):
        raise ResponseParseError("usage details are not objects")
    # A count that is missing or not a whole number >= 0 says nothing: read as 0, it would
    # price the call at $0 with status "ok". (Embeddings report no output count: 0.)
    prompt, output = token_count(prompt), 0 if completion is None else token_count(completion)
    if prompt is None or output is None:
        raise ResponseParseError("usage has no readable token counts")
    reasoning = usage_count(out_details, "reasoning_tokens")
    total = usage.get("total_tokens")
    if reasoning > 0 and total == prompt + output + reasoning:
        # Some OpenAI-compatible servers and proxies (those translating Gemini's
        # thoughtsTokenCount, for one) leave reasoning tokens out of completion_tokens but count
        # them in the total; OpenAI counts them in both. The server's own total says which.
        output += reasoning
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        # DeepSeek reports its cache hits in a field of its own (prompt_tokens = hit + miss)
        cache_read_tokens=usage_count(in_details, "cached_tokens") or usage_count(usage, "prompt_cache_hit_tokens"),
        # GPT-5.6 and later bill prompt-cache writes above plain input; like cached reads they
        # are part of the input count, reported apart in the details
        cache_write_tokens=usage_count(in_details, "cache_write_tokens"),
        reasoning_tokens=reasoning,
    )


def _stream_usage(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The usage a stream's event carries: its own, or Groq's in its ``x_groq`` object (on the
    last chunk, whether usage was asked for or not)."""
    usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        groq = payload.get("x_groq")
        usage = groq.get("usage") if isinstance(groq, Mapping) else None
    return usage if isinstance(usage, Mapping) else None


def _reported_cost(usage: Mapping[str, Any]) -> float | None:
    """What the provider says the call cost, in USD, if its usage says so: OpenRouter's
    ``cost`` (its credits are dollars), plus, when the call ran on the user's own provider key
    (BYOK), ``cost_details.upstream_inference_cost``, what that provider billed the key
    (``cost`` is then OpenRouter's fee alone); Perplexity's ``cost.total_cost`` (search fees
    included). Anything that is not an amount is no report."""
    cost = usage.get("cost")
    if isinstance(cost, dict):
        return _usd(cost.get("total_cost"))
    total = _usd(cost)
    details = usage.get("cost_details")
    upstream = _usd(details.get("upstream_inference_cost")) if isinstance(details, dict) else None
    if total is not None and upstream is not None and usage.get("is_byok") is not False:
        return _usd(total + upstream)  # two amounts whose sum overflows are no amount
    return total


def _usd(value: Any) -> float | None:
    """``value`` as an amount in USD; None when it is none (a string, a flag, NaN, below 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _choice_text(choice: Mapping[str, Any]) -> str:
    message = choice.get("message") or choice.get("delta") or {}
    parts: list[str] = []
    text = choice.get("text")
    if isinstance(text, str):
        parts.append(text)
    if isinstance(message, dict):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                parts.append(str(function.get("name") or ""))
                parts.append(str(function.get("arguments") or ""))
    return "".join(parts)


def _request_tools(call: Call) -> Any:
    return call.body.get("tools") if isinstance(call.body, Mapping) else None


def _responses_outcome(data: Mapping[str, Any], request_tools: Any) -> Outcome:
    usage = data.get("usage")
    texts = []
    output = data.get("output") or ()
    for item in output:
        if not isinstance(item, Mapping):
            continue
        for part in item.get("content") or ():
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        if isinstance(item.get("arguments"), str):
            texts.append(item["arguments"])
    status = data.get("status")
    error = data.get("error")
    return Outcome(
        usage=_chat_usage(usage) if isinstance(usage, Mapping) else None,
        reported_cost_usd=_reported_cost(usage) if isinstance(usage, Mapping) else None,
        response_id=data.get("id") if isinstance(data.get("id"), str) else None,
        response_model=data.get("model") if isinstance(data.get("model"), str) else None,
        finish_reasons=(status,) if isinstance(status, str) else (),
        service_tier=data.get("service_tier") if isinstance(data.get("service_tier"), str) else None,
        output_text="".join(texts),
        # a failed response (a stream's response.failed) is an error inside a 200 answer
        error_type=_error_type(error, "failed") if status == "failed" else None,
        # the tools the response echoes are the ones it ran with (a stored prompt may add some)
        tool_calls=openai_tools.responses_tool_calls(output if isinstance(output, list) else (),
                                                     data.get("tools") or request_tools),
    )


def _error_type(error: Any, default: str) -> str:
    """What an error object inside a 2xx answer says went wrong: its ``type`` (a chat stream's
    error event) or ``code`` (a failed Responses answer), else ``default``."""
    for name in ("type", "code"):
        found = error.get(name) if isinstance(error, Mapping) else None
        if isinstance(found, str) and found:
            return found
    return default


# Cheap byte checks that decide which events are worth parsing: a stream has one event per
# token or two, and parsing every one would cost more than the rest of the pipeline.
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"')
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_RESPONSE_END = re.compile(rb'"type"\s*:\s*"response\.(?:completed|incomplete|failed)"')
# what every match of the two patterns above that are searched from the end starts with
_USAGE_LITERAL = b'"usage"'
# The `"usage": null` member a provider adds to every chunk once usage is asked for. In JSON
# text `"usage"` followed by `:` is always a key (a quote inside a string is escaped), and a
# chat chunk has no other object with that key: removing the member with its comma gives the
# bytes the provider sends when usage is not asked for.
_NULL_USAGE = re.compile(rb',[ \t]*"usage"[ \t]*:[ \t]*null(?=[ \t]*[,}])|"usage"[ \t]*:[ \t]*null[ \t]*,[ \t]*')
_RESPONSE_END_LITERAL = b'"type"'
# how far into a stream whose first event names no model the one that does is looked for
# (Azure's is the second; a server that names none is not parsed to its end for it)
_NAMING_EVENTS = 4
# An error event in a chat stream (``data: {"error": {...}}``, which the SDK raises as an
# APIError; vLLM and LiteLLM send one and then ``[DONE]``). As for usage: a key, not text.
_ERROR_EVENT = re.compile(rb'"error"\s*:')


class _OpenAIStreamReader:
    """Watches chat/completions/responses streams; optionally drops the injected usage chunk.

    Events are only split and kept as they pass; they are parsed when the stream ends, and
    then only those that carry what is needed (the first for ids, the usage chunk, finish
    reasons), unless the text is needed (no usage to price, or content capture on).
    """

    __slots__ = ("_call", "_drop", "_split", "_raw", "_parsed", "capture_text")

    def __init__(self, call: Call, *, drop_usage_chunk: bool) -> None:
        self._call = call
        self._drop = drop_usage_chunk
        self._split = EventSplitter()
        self._raw: list[bytes] = []  # every byte received, the dropped chunk included
        self._parsed: list[bytes] | None = None
        #: set by the telemetry stage when prompt/completion content goes on spans
        self.capture_text = False

    def feed(self, chunk: bytes) -> bytes:
        self._raw.append(chunk)
        if not self._drop:
            return chunk  # hand on exactly what arrived, without waiting for event ends
        split = self._split
        if not split.pending and not _USAGE.search(chunk):
            # No event this chunk completes carries a usage object, so none is the injected
            # usage chunk: hand on the complete events in one piece, without looking at each
            # (this runs for every chunk of the stream).
            return _without_null_usage(split.feed_joined(chunk))
        return _without_null_usage(b"".join(event for event in split.feed(chunk) if not _is_injected_usage(event)))

    def flush(self) -> bytes:
        if not self._drop:
            return b""
        rest = self._split.flush()
        return b"" if not rest or _is_injected_usage(rest) else _without_null_usage(rest)

    @property
    def _payloads(self) -> list[bytes]:
        """The ``data`` of every event received, split once when first asked for."""
        if self._parsed is None:
            splitter = EventSplitter()
            events = splitter.feed(self._buffer())
            rest = splitter.flush()
            if rest:
                events.append(rest)
            self._parsed = [data for data in map(event_data, events) if data is not None]
        return self._parsed

    def _buffer(self) -> bytes:
        if len(self._raw) != 1:
            self._raw = [b"".join(self._raw)]
        return self._raw[0] if self._raw else b""

    def _matching(self, pattern: re.Pattern[bytes]) -> list[bytes]:
        """The ``data`` of the events in which ``pattern`` occurs, found in the whole buffer
        at once rather than by splitting every event (a stream has one per token)."""
        buf = self._buffer()
        if b"\r" in buf:
            return [data for data in self._payloads if pattern.search(data)]
        found: list[bytes] = []
        last = -1
        for match in pattern.finditer(buf):
            start = _event_start(buf, match.start())
            if start == last:
                continue
            last = start
            data = _event_data(buf, start, match.end())
            if data is not None:
                found.append(data)
        return found

    def _last_matching(self, pattern: re.Pattern[bytes], literal: bytes) -> Iterator[bytes]:
        """``reversed(self._matching(pattern))``, searched from the end of the buffer: the
        events wanted this way (the usage chunk, the response's end) come last, so the rest of
        the stream is not scanned. Every match of ``pattern`` starts with ``literal``."""
        buf = self._buffer()
        if b"\r" in buf:
            yield from reversed(self._matching(pattern))
            return
        last = -1
        limit = len(buf)
        while (position := buf.rfind(literal, 0, limit)) >= 0:
            limit = position + len(literal) - 1  # next: an occurrence that starts before this one
            match = pattern.match(buf, position)
            if match is None:
                continue
            start = _event_start(buf, position)
            if start == last:
                continue
            last = start
            data = _event_data(buf, start, match.end())
            if data is not None:
                yield data

    def outcome(self, complete: bool) -> Outcome:
        if self._call.endpoint == "responses":
            return self._responses_outcome(complete)
        buf = self._buffer()
        done = buf.rstrip().endswith(b"[DONE]")
        usage: Usage | None = None
        reported_cost = None
        for data in self._last_matching(_USAGE, _USAGE_LITERAL):
            payload = _loads(data)
            found = _stream_usage(payload) if payload is not None else None
            if found is not None:
                try:
                    usage = _chat_usage(found)
                    reported_cost = _reported_cost(found)
                except ResponseParseError:
                    pass
                break
        error_type = None
        if b'"error"' in buf:
            for data in self._matching(_ERROR_EVENT):
                payload = _loads(data)
                if payload is not None and payload.get("error"):  # the SDK's own test
                    error_type = _error_type(payload["error"], "error")
                    break
        first = self._first_named(buf)
        reasons: dict[int, str] = {}
        texts: list[str] = []
        want_text = usage is None or self.capture_text
        deltas: list[Mapping[str, Any]] | None = [] if self.capture_text else None
        for data in self._payloads if want_text else self._matching(_FINISH):
            payload = _loads(data)
            choices = payload.get("choices") if payload else None
            if not isinstance(choices, list):
                continue
            for choice in choices:
                if not isinstance(choice, Mapping):
                    continue
                if deltas is not None:
                    deltas.append(choice)
                if want_text:
                    texts.append(_choice_text(choice))
                if isinstance(choice.get("finish_reason"), str):
                    index = choice.get("index", 0)
                    reasons[index if isinstance(index, int) else 0] = choice["finish_reason"]
        return Outcome(
            usage=usage,
            reported_cost_usd=reported_cost,
            response_id=first.get("id") if isinstance(first.get("id"), str) else None,
            response_model=first.get("model") if isinstance(first.get("model"), str) else None,
            finish_reasons=tuple(reasons[i] for i in sorted(reasons)),
            service_tier=first.get("service_tier") if isinstance(first.get("service_tier"), str) else None,
            output_text="".join(texts),
            # a caller (the SDK) may close the stream right after the provider's last event
            complete=complete or done,
            error_type=error_type,
            tool_calls=openai_tools.chat_tool_calls(self._call) if self._call.endpoint == "chat.completions" else NO_TOOL_CALLS,
            output_messages=None if deltas is None else tuple(
                openai_content.chat_output(openai_content.choices_from_deltas(deltas))),
        )

    def _first_named(self, buf: bytes) -> Mapping[str, Any]:
        """The first event, or, when it names no model, the first that does: Azure OpenAI opens
        a stream with the prompt's content-filter results, an event whose ``id`` and ``model``
        are empty strings (the deployment's name in the request is not a model to price)."""
        end = buf.find(b"\n\n")
        first = _loads(event_data(buf if end < 0 else buf[: end + 2])) or {}
        if first.get("model"):
            return first
        for data in self._payloads[1:_NAMING_EVENTS]:
            payload = _loads(data)
            if payload is not None and isinstance(payload.get("model"), str) and payload["model"]:
                return payload
        return first

    def _responses_outcome(self, complete: bool) -> Outcome:
        final: Outcome | None = None
        final_response: Mapping[str, Any] = {}
        for data in self._last_matching(_RESPONSE_END, _RESPONSE_END_LITERAL):
            payload = _loads(data)
            if payload is not None and isinstance(payload.get("response"), Mapping):
                final_response = payload["response"]
                final = _responses_outcome(final_response, _request_tools(self._call))
            break
        if final is not None and final.usage is not None and not self.capture_text:
            return replace(final, complete=True)
        texts: list[str] = []
        items: list[Any] = []  # the output items that arrived whole, for a stream cut short
        response_id = model = None
        tools = _request_tools(self._call)
        for data in self._payloads:
            payload = _loads(data)
            if payload is None:
                continue
            kind = payload.get("type")
            if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
                if isinstance(payload.get("delta"), str):
                    texts.append(payload["delta"])
            elif kind == "response.output_item.done":
                items.append(payload.get("item"))
            response = payload.get("response")
            if isinstance(response, Mapping):
                response_id = response.get("id") if isinstance(response.get("id"), str) else response_id
                model = response.get("model") if isinstance(response.get("model"), str) else model
                tools = response.get("tools") or tools
        if final is not None:
            return replace(final, output_text=final.output_text or "".join(texts), complete=True,
                           output_messages=tuple(openai_content.responses_output(final_response)) if self.capture_text else None)
        return Outcome(response_id=response_id, response_model=model, output_text="".join(texts), complete=complete,
                       tool_calls=openai_tools.responses_tool_calls(items, tools))


def _event_start(buf: bytes, position: int) -> int:
    """Where the event that ``position`` is in starts (in a buffer with no ``\\r`` in it)."""
    start = buf.rfind(b"\n\n", 0, position)
    return 0 if start < 0 else start + 2


def _event_data(buf: bytes, start: int, position: int) -> bytes | None:
    """The ``data`` of the event that starts at ``start`` and goes on past ``position``."""
    end = buf.find(b"\n\n", position)
    return event_data(buf[start:] if end < 0 else buf[start : end + 2])


def _without_null_usage(events: bytes) -> bytes:
    """``events`` without the ``"usage": null`` members that asking for usage added."""
    # This runs on every chunk of such a stream: cut the usual spellings by position (a find
    # per event), and leave anything else (a first member, other spacing) to the pattern.
    found = events.find(_USAGE_LITERAL)
    if found < 0:
        return events
    parts, kept = [], 0
    while found >= 0:
        after = found + len(_USAGE_LITERAL)
        if events.startswith(b":null", after):
            end = after + 5
        elif events.startswith(b": null", after):
            end = after + 6
        else:
            return _NULL_USAGE.sub(b"", events)
        if found >= 1 and events.startswith(b",", found - 1):
            start = found - 1
        elif found >= 2 and events.startswith(b", ", found - 2):
            start = found - 2
        else:
            return _NULL_USAGE.sub(b"", events)
        if events[end : end + 1] not in (b"}", b","):
            return _NULL_USAGE.sub(b"", events)
        parts.append(events[kept:start])
        kept = end
        found = events.find(_USAGE_LITERAL, end)
    parts.append(events[kept:])
    return b"".join(parts)


def _is_injected_usage(event: bytes) -> bool:
    """Whether ``event`` is the usage-only chunk (``"choices": []`` with usage)."""
    if not _EMPTY_CHOICES.search(event) or not _USAGE.search(event):
        return False
    payload = _loads(event_data(event))
    return payload is not None and payload.get("choices") == [] and isinstance(payload.get("usage"), Mapping)


def _loads(data: bytes | None) -> dict[str, Any] | None:
    if not data or data == b"[DONE]":
        return None
    try:
        payload = loads(data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
