"""A deterministic Anthropic Messages API on llmspend's :class:`~llmspend.testing.FakeLLMServer`.

    with FakeLLMServer() as server:
        api = FakeAnthropicAPI(server)
        client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test")

It answers ``POST /v1/messages`` (plain and streamed, with the real event sequence and a
``ping``), ``POST /v1/messages/count_tokens`` and Message Batches (create, retrieve, results
as JSONL in no set order), with realistic usage:

- **Prompt caching** as the API does it: the prompt is tools, then system, then messages; a
  block with ``cache_control`` ends a cacheable prefix. The longest such prefix seen before (same
  model) is read from the cache (``cache_read_input_tokens``); later breakpoints whose prefix is
  at least :data:`CACHE_MIN_TOKENS` long are written (``cache_creation_input_tokens``, split into
  ``ephemeral_5m``/``ephemeral_1h`` by each breakpoint's ``ttl``); the rest is ``input_tokens``.
  A top-level ``cache_control`` puts the breakpoint on the last block. Simplifications: one
  minimum length for every model, and entries never expire.
- **Tools**: a request with client tools (and ``tool_choice`` not ``none``) whose last user turn
  is not a tool result gets a ``tool_use`` block for the first (or the chosen) tool.
- **Extended thinking** (``thinking`` of type ``enabled`` or ``adaptive``) adds a thinking block, counted in
  ``output_tokens`` and ``output_tokens_details.thinking_tokens``.
- **Server tools**: a request with ``web_search_*``, ``web_fetch_*`` or ``code_execution_*``
  tools gets, for each, ``x-fake-server-tool-calls`` calls (header; default 1): a
  ``server_tool_use`` block and its result block, before the answer's text, counted in
  ``usage.server_tool_use`` (``web_search_requests``, ...). A tool's ``max_uses`` caps them:
  one call more gets the ``max_uses_exceeded`` error result, which is not counted (Anthropic
  does not bill a search that errors). Search results and fetched pages add
  :data:`SERVER_TOOL_CONTENT_TOKENS` input tokens per call, as their content enters the context.
- **Fast mode**: a request with ``speed`` is answered with that speed in ``usage.speed``; the
  header ``x-fake-speed: standard`` makes it fall back as the API may (served, and reported, at
  standard speed). A request's ``inference_geo`` is reported in ``usage.inference_geo``.
- **Errors** in the API's envelope: :meth:`FakeAnthropicAPI.fail_next` queues 429 (with
  ``retry-after``), 529 ``overloaded_error`` and the rest; a request without ``max_tokens >= 1``
  gets the real 400 ``invalid_request_error``, and so does one with ``temperature``, ``top_p`` or
  ``top_k`` under API version 2026-10-21 or later (``anthropic-version``; the anthropic SDK 2.x
  default), which removed the sampling parameters.

Token counts use llmspend's offline tokenizer (not Claude's): realistic in size, exact in
arithmetic, which is what cost tests need. Request headers steer it: ``x-fake-usage: omit``
drops usage; ``x-fake-stream-error: 1`` sends an ``overloaded_error`` event mid-stream.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from llmspend.testing import FakeLLMServer, FakeRequest, FakeResponse
from llmspend.tokens import count_text

from .content import block_text
from .convert import NO_SAMPLING_VERSION
from .stream import encode_events, events_from_message

__all__ = ["FakeAnthropicAPI", "error_body", "CACHE_MIN_TOKENS", "NO_SAMPLING_VERSION", "SERVER_TOOL_CONTENT_TOKENS"]

CACHE_MIN_TOKENS = 1024
SERVER_TOOL_CONTENT_TOKENS = 300
# server tool type prefix -> (the block's tool name, its result block's type, usage counter)
_SERVER_TOOLS = {
    "web_search_": ("web_search", "web_search_tool_result", "web_search_requests"),
    "web_fetch_": ("web_fetch", "web_fetch_tool_result", "web_fetch_requests"),
    "code_execution_": ("code_execution", "code_execution_tool_result", "code_execution_requests"),
}
_MESSAGE_FRAMING = 4  # tokens around each message (role markers)
_PROMPT_FRAMING = 8  # tokens around the whole prompt

_WORDS = (
    "claude reads the cached prefix once and then every later call pays a tenth of the input "
    "price for it while new tokens after the breakpoint are billed at the normal rate"
).split()

_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 529: "overloaded_error",
}

_SAMPLING = ("temperature", "top_p", "top_k")

# Aliases answered with a dated snapshot, as the API does.
_SNAPSHOTS = {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929", "claude-haiku-4-5": "claude-haiku-4-5-20251001"}


def error_body(status: int, message: str | None = None, error_type: str | None = None) -> dict[str, Any]:
    """The API's error envelope for HTTP ``status``."""
    kind = error_type or _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message or kind.replace("_", " ")},
            "request_id": f"req_fake{status}"}


def _digest(*parts: Any) -> int:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def _header(request: FakeRequest, name: str) -> str | None:
    """A request header's value, whatever case the client wrote its name in."""
    return next((v for k, v in request.headers.items() if k.lower() == name), None)


def _without_cache_control(item: Any) -> Any:
    return {k: v for k, v in item.items() if k != "cache_control"} if isinstance(item, Mapping) else item


class _Segment:
    """One piece of the prompt, in the order the API caches it."""

    __slots__ = ("tokens", "ttl", "key")

    def __init__(self, tokens: int, key: Any, cache_control: Any = None) -> None:
        self.tokens = tokens
        self.key = key
        self.ttl: str | None = None
        if isinstance(cache_control, Mapping):
            self.ttl = "1h" if cache_control.get("ttl") == "1h" else "5m"


def _segments(body: Mapping[str, Any], model: str) -> list[_Segment]:
    segments: list[_Segment] = []
    for tool in body.get("tools") or ():
        plain = _without_cache_control(tool)
        segments.append(_Segment(count_text(json.dumps(plain, sort_keys=True), model), plain, tool.get("cache_control")))
    system = body.get("system")
    if isinstance(system, str) and system:
        segments.append(_Segment(count_text(system, model), system))
    elif isinstance(system, list):
        for block in system:
            segments.append(_Segment(count_text(block_text(block), model), _without_cache_control(block),
                                     block.get("cache_control") if isinstance(block, Mapping) else None))
    for message in body.get("messages") or ():
        role, content = message.get("role"), message.get("content")
        segments.append(_Segment(_MESSAGE_FRAMING, role))
        if isinstance(content, str):
            segments.append(_Segment(count_text(content, model), content))
        else:
            for block in content or ():
                segments.append(_Segment(count_text(block_text(block), model), _without_cache_control(block),
                                         block.get("cache_control") if isinstance(block, Mapping) else None))
    automatic = body.get("cache_control")
    content_segments = [s for s in segments if not isinstance(s.key, str) or s.tokens != _MESSAGE_FRAMING]
    if isinstance(automatic, Mapping) and content_segments and content_segments[-1].ttl is None:
        # top-level cache_control: a breakpoint on the last cacheable block
        content_segments[-1].ttl = "1h" if automatic.get("ttl") == "1h" else "5m"
    return segments


class FakeAnthropicAPI:
    """The Messages API on ``server``. See the module docstring."""

    def __init__(self, server: FakeLLMServer, *, cache_min_tokens: int = CACHE_MIN_TOKENS) -> None:
        self.server = server
        self.cache_min_tokens = cache_min_tokens
        self._cached: set[tuple[str, str]] = set()
        self._batches: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        server.route("POST", "/v1/messages", self._messages)
        server.route("POST", "/v1/messages/batches", self._create_batch)
        server.route("POST", "/v1/messages/count_tokens", self._count_tokens)

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  error_type: str | None = None, message: str | None = None) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` in the API's error envelope."""
        headers = {"request-id": f"req_fake{status}"}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        self.server.fail_next(status, times, headers=headers, body=error_body(status, message, error_type))

    def reset(self) -> None:
        """Forget the prompt cache (the server's request log is :meth:`FakeLLMServer.reset`'s)."""
        with self._lock:
            self._cached.clear()

    # -- usage -------------------------------------------------------------------------
    def input_usage(self, body: Mapping[str, Any], model: str, *, record: bool = True) -> dict[str, Any]:
        """Input usage of ``body`` with prompt caching applied (and the cache updated when
        ``record``)."""
        segments = _segments(body, model)
        total = _PROMPT_FRAMING + sum(s.tokens for s in segments)
        prefix = hashlib.sha256(model.encode())
        ends: list[tuple[int, str, str]] = []  # (tokens up to the breakpoint, ttl, prefix digest)
        running = _PROMPT_FRAMING
        for segment in segments:
            running += segment.tokens
            prefix.update(json.dumps(segment.key, sort_keys=True, default=str).encode())
            if segment.ttl is not None:
                ends.append((running, segment.ttl, prefix.hexdigest()))
        read = 0
        written = {"5m": 0, "1h": 0}
        with self._lock:
            hit = max((i for i, (_, _, d) in enumerate(ends) if (model, d) in self._cached), default=-1)
            if hit >= 0:
                read = ends[hit][0]
            start = read
            for length, ttl, digest in ends[hit + 1:]:
                if length < self.cache_min_tokens:
                    continue
                written[ttl] += length - start
                start = length
                if record:
                    self._cached.add((model, digest))
        creation = written["5m"] + written["1h"]
        return {
            "input_tokens": total - read - creation,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": written["5m"], "ephemeral_1h_input_tokens": written["1h"]},
        }

    # -- endpoints ---------------------------------------------------------------------
    @staticmethod
    def _invalid(body: Any, version: str | None = None) -> FakeResponse | None:
        def bad(message: str) -> FakeResponse:
            return FakeResponse.json(error_body(400, message), 400)

        if isinstance(body, Mapping) and version is not None and version >= NO_SAMPLING_VERSION:
            for name in _SAMPLING:
                if name in body:
                    return bad(f"{name}: Extra inputs are not permitted")

        if not isinstance(body, Mapping):
            return bad("body: expected an object")
        if not isinstance(body.get("model"), str):
            return bad("model: Field required")
        if not body.get("messages"):
            return bad("messages: at least one message is required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return bad("max_tokens: must be greater than or equal to 1")
        return None

    def _count_tokens(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        if not isinstance(body, Mapping) or not isinstance(body.get("model"), str):
            return FakeResponse.json(error_body(400, "model: Field required"), 400)
        usage = self.input_usage(body, body["model"], record=False)
        total = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
        return FakeResponse.json({"input_tokens": total})

    def message(self, body: Mapping[str, Any], *, server_tool_calls: int = 1) -> dict[str, Any]:
        """The Message the API answers a valid ``body`` with (the prompt cache updated); each
        server tool the request enables is called ``server_tool_calls`` times."""
        model, messages = body["model"], body["messages"]
        seed = _digest(model, body.get("system"), messages, body.get("tools"), body.get("temperature"))
        content, stop_reason, thinking_tokens = self._content(body, seed, int(body["max_tokens"]), model)
        tool_blocks, tool_counts = _server_tool_blocks(body, seed, server_tool_calls)
        content = [*tool_blocks, *content]
        usage: dict[str, Any] = {
            **self.input_usage(body, model),
            "output_tokens": sum(count_text(block_text(b), model) for b in content),
            "service_tier": "standard",
        }
        if tool_counts:
            usage["input_tokens"] += SERVER_TOOL_CONTENT_TOKENS * sum(tool_counts.values())
            usage["server_tool_use"] = {"web_search_requests": 0, "web_fetch_requests": 0, **tool_counts}
        if thinking_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
        if isinstance(body.get("speed"), str):
            usage["speed"] = body["speed"]
        if isinstance(body.get("inference_geo"), str):
            usage["inference_geo"] = body["inference_geo"]
        return {
            "id": f"msg_{seed:024x}"[:28],
            "type": "message",
            "role": "assistant",
            "model": _SNAPSHOTS.get(model, model),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }

    def _messages(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        invalid = self._invalid(body, _header(request, "anthropic-version"))
        if invalid is not None:
            return invalid
        message = self.message(body, server_tool_calls=int(_header(request, "x-fake-server-tool-calls") or 1))
        served_at = _header(request, "x-fake-speed")
        if served_at is not None and "speed" in message["usage"]:
            message["usage"]["speed"] = served_at
        headers = {"request-id": "req_" + message["id"][4:16]}
        omit_usage = request.headers.get("x-fake-usage", request.headers.get("X-Fake-Usage")) == "omit"
        if not body.get("stream"):
            if omit_usage:
                del message["usage"]
            return FakeResponse.json(message, headers=headers)
        events = events_from_message(message)
        if omit_usage:
            for event in events:
                event.pop("usage", None)
                if isinstance(event.get("message"), dict):
                    event["message"].pop("usage", None)
        events.insert(1, {"type": "ping"})
        if request.headers.get("x-fake-stream-error", request.headers.get("X-Fake-Stream-Error")) == "1":
            first_delta = next(i for i, e in enumerate(events) if e["type"] == "content_block_delta")
            events = [*events[: first_delta + 1], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
        return FakeResponse(200, encode_events(events), {"content-type": "text/event-stream", **headers})

    # -- Message Batches -----------------------------------------------------------------
    def _create_batch(self, request: FakeRequest) -> FakeResponse:
        """Every request is answered at once; the batch reads ``in_progress`` when created and
        ``ended`` from the first retrieve on, as a quick real batch would."""
        body = request.json()
        items = body.get("requests") if isinstance(body, Mapping) else None
        if not isinstance(items, list) or not items or not all(
                isinstance(i, Mapping) and isinstance(i.get("custom_id"), str) and isinstance(i.get("params"), Mapping) for i in items):
            return FakeResponse.json(error_body(400, "requests: a list of {custom_id, params} is required"), 400)
        lines: list[bytes] = []
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for item in items:
            invalid = self._invalid(item["params"])
            if invalid is not None:
                result: dict[str, Any] = {"type": "errored", "error": json.loads(bytes(invalid.body))}  # type: ignore[arg-type]
            else:
                message = self.message(item["params"])
                message["usage"]["service_tier"] = "batch"
                result = {"type": "succeeded", "message": message}
            counts["succeeded" if result["type"] == "succeeded" else "errored"] += 1
            lines.append(json.dumps({"custom_id": item["custom_id"], "result": result}).encode() + b"\n")
        batch_id = f"msgbatch_{_digest([i['custom_id'] for i in items], len(self._batches)):024x}"[:33]
        path = f"/v1/messages/batches/{batch_id}"
        ended = {
            "id": batch_id, "type": "message_batch", "processing_status": "ended", "request_counts": counts,
            "created_at": "2026-11-22T00:00:00Z", "ended_at": "2026-11-22T00:01:00Z", "expires_at": "2026-11-23T00:00:00Z",
            "archived_at": None, "cancel_initiated_at": None, "results_url": f"{self.server.url}{path}/results",
        }
        with self._lock:
            self._batches[batch_id] = ended
        self.server.route("GET", path, lambda _: FakeResponse.json(ended))
        self.server.route("GET", f"{path}/results", lambda _: FakeResponse(200, b"".join(reversed(lines)),  # no set order
                                                                          {"content-type": "application/binary"}))
        started = {**ended, "processing_status": "in_progress", "ended_at": None, "results_url": None,
                   "request_counts": {**{k: 0 for k in counts}, "processing": len(items)}}
        return FakeResponse.json(started)

    @staticmethod
    def _content(body: Mapping[str, Any], seed: int, limit: int, model: str) -> tuple[list[dict[str, Any]], str, int]:
        blocks: list[dict[str, Any]] = []
        budget = limit
        thinking_tokens = 0
        thinking = body.get("thinking")
        if isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive"):
            text = "Let me think about this step by step: " + " ".join(_WORDS[(seed >> i) % len(_WORDS)] for i in range(20))
            thinking_tokens = count_text(text, model)
            blocks.append({"type": "thinking", "thinking": text, "signature": f"sig{seed % 10**8:08d}"})
            budget = max(1, limit - thinking_tokens)
        tools = [t for t in body.get("tools") or () if isinstance(t, Mapping) and "input_schema" in t]
        raw_choice = body.get("tool_choice")
        choice: Mapping[str, Any] = raw_choice if isinstance(raw_choice, Mapping) else {}
        last = body["messages"][-1]
        answering_tool = isinstance(last.get("content"), list) and any(
            isinstance(b, Mapping) and b.get("type") == "tool_result" for b in last["content"])
        if tools and choice.get("type") != "none" and last.get("role") == "user" and not answering_tool:
            tool = next((t for t in tools if t.get("name") == choice.get("name")), tools[0])
            word = _WORDS[seed % len(_WORDS)]
            blocks.append({"type": "tool_use", "id": f"toolu_{seed % 10**16:016d}", "name": tool["name"],
                           "input": {"query": word}})
            return blocks, "tool_use", thinking_tokens
        words = [_WORDS[((seed >> (i % 48)) ^ i * 7) % len(_WORDS)] for i in range(12 + seed % 29)]
        text = " ".join(words)
        stop = "end_turn"
        while count_text(text, model) > budget and words:
            words.pop()
            text = " ".join(words)
            stop = "max_tokens"
        output = body.get("output_config")
        if isinstance(output, Mapping) and isinstance(output.get("format"), Mapping):
            text = json.dumps({"answer": text})  # structured output, as the OpenAI fake answers it
        blocks.append({"type": "text", "text": text})
        return blocks, stop, thinking_tokens


def _server_tool_blocks(body: Mapping[str, Any], seed: int, calls: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The blocks of the server tool calls ``body`` asks for (see the module docstring) and
    the usage counters they add up to."""
    blocks: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for tool in body.get("tools") or ():
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        found = next((v for k, v in _SERVER_TOOLS.items() if isinstance(kind, str) and kind.startswith(k)), None)
        if found is None:
            continue
        name, result_type, counter = found
        uses = tool.get("max_uses")
        for attempt in range(calls):
            ident = f"srvtoolu_{seed % 10**12:012d}{len(blocks):04d}"
            word = _WORDS[(seed + len(blocks)) % len(_WORDS)]
            blocks.append({"type": "server_tool_use", "id": ident, "name": name,
                           "input": {"url": f"https://example.com/{word}"} if name == "web_fetch"
                           else {"code": "print(6 * 7)"} if name == "code_execution" else {"query": word}})
            if isinstance(uses, int) and attempt >= uses:
                blocks.append({"type": result_type, "tool_use_id": ident,
                               "content": {"type": f"{result_type}_error", "error_code": "max_uses_exceeded"}})
                break
            counts[counter] = counts.get(counter, 0) + 1
            if name == "web_search":
                result: Any = [{"type": "web_search_result", "title": f"About {word}", "url": f"https://example.com/{word}",
                                "encrypted_content": f"enc{seed % 10**8:08d}", "page_age": None}]
            elif name == "web_fetch":
                result = {"type": "web_fetch_result", "url": f"https://example.com/{word}", "retrieved_at": "2026-11-22T00:00:00Z",
                          "content": {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": word}}}
            else:
                result = {"type": "code_execution_result", "stdout": "42\n", "stderr": "", "return_code": 0, "content": []}
            blocks.append({"type": result_type, "tool_use_id": ident, "content": result})
    return blocks, counts
