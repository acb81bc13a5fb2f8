"""A deterministic OpenAI-compatible server on 127.0.0.1, for the demo, tests and benchmarks.

It answers chat completions (tools, ``n`` > 1, JSON mode, streaming with and without
``stream_options.include_usage``), legacy completions, embeddings and the Responses API, with
realistic usage: prompt tokens counted with a real tokenizer, provider-style prompt caching
(a repeated prefix of 1,024 tokens or more is reported as ``cached_tokens`` in 128-token steps,
as OpenAI does), and reasoning tokens for reasoning models. The same request always gets the
same answer.

Tests steer it through :meth:`FakeLLMServer.fail_next` (queue HTTP errors), request headers
(``x-fake-usage: omit`` drops usage, ``x-fake-malformed: 1`` answers with broken JSON),
:meth:`route` (add endpoints, e.g. a provider plugin's) and :meth:`answer_with` (chat answers of
your own, e.g. models of different quality). Chat requests with ``logprobs: true`` get
per-token log-probabilities. Every request is kept in :attr:`requests` for assertions.

A batched prompt (a last user message of ``Q[1]: ...`` lines) is answered ``A[1]: ...``, one
line per question (:meth:`fault_next_batch` makes the next one go wrong), and the OpenAI
Batch API (``/v1/files``, ``/v1/batches``) is served by :attr:`batch_api`.

    with FakeLLMServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..tokens import count_chat_messages, count_text, encoding_for
from .batch_prompts import BatchedReply, BatchFault, batched_questions, render_batched_reply

__all__ = ["FakeLLMServer", "FakeRequest", "FakeResponse"]

_WORDS = (
    "the answer depends on context but in short yes it works because the cost of each call "
    "falls when cached tokens are reused and a smaller model handles easy questions well while "
    "harder ones go to a stronger model that reads the whole prompt carefully before replying"
).split()

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
CACHE_MIN_TOKENS = 1024
CACHE_STEP = 128


@dataclass
class FakeRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    #: the named groups of a :meth:`FakeLLMServer.route_pattern` match (e.g. a batch id)
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeResponse:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds to wait before each streamed chunk
    chunk_delay_s: float = 0.0

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> FakeResponse:
        return cls(status, json.dumps(data).encode(), {"content-type": "application/json", **(headers or {})})

    @classmethod
    def events(cls, events: Iterable[Any], headers: Mapping[str, str] | None = None, chunk_delay_s: float = 0.0) -> FakeResponse:
        """An SSE stream of ``events``: dicts are sent as ``data: JSON``, strings as given."""

        def frames() -> Iterator[bytes]:
            for event in events:
                if isinstance(event, bytes):
                    yield event
                elif isinstance(event, str):
                    yield event.encode()
                else:
                    yield b"data: " + json.dumps(event).encode() + b"\n\n"

        return cls(200, frames(), {"content-type": "text/event-stream", **(headers or {})}, chunk_delay_s)


Handler = Callable[[FakeRequest], FakeResponse]
#: ``(model, messages) -> answer | (answer, mean log-probability) | None`` (None: the usual answer)
Answerer = Callable[[str, list[dict[str, Any]]], "str | tuple[str, float] | None"]


def _digest(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()[:8], "big")


def _answer_words(seed: int, limit: int | None) -> list[str]:
    count = 12 + seed % 29
    if limit is not None:
        count = max(1, min(count, limit))
    return [_WORDS[(seed >> (i % 48) ^ i * 7) % len(_WORDS)] for i in range(count)]


class FakeLLMServer:
    """See the module docstring. Start with ``with`` or :meth:`start`; stop with :meth:`stop`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency_s: float = 0.0) -> None:
        self.host = host
        self.port = port
        #: added before every answer, to make the demo's savings visible in time as well
        self.latency_s = latency_s
        self.requests: list[FakeRequest] = []
        self._faults: deque[FakeResponse] = deque()
        self._routes: dict[tuple[str, str], Handler] = {}
        self._answerers: list[Answerer] = []
        self._prefixes: set[tuple[str, int, int]] = set()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.route("POST", "/v1/chat/completions", self._chat)
        self.route("POST", "/v1/completions", self._completions)
        self.route("POST", "/v1/embeddings", self._embeddings)
        self.route("POST", "/v1/responses", self._responses)
        self.route("GET", "/v1/models", lambda req: FakeResponse.json({"object": "list", "data": []}))
        self._patterns: list[tuple[str, re.Pattern[str], Handler]] = []
        self._batch_faults: deque[BatchFault] = deque()
        from .batch_api import FakeBatchAPI

        #: the OpenAI Batch API (files and batches endpoints)
        self.batch_api = FakeBatchAPI(self)

    # -- control -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method path`` with ``handler`` (replacing any earlier handler)."""
        self._routes[(method.upper(), path)] = handler

    def answer_with(self, answerer: Answerer) -> None:
        """Let ``answerer`` write chat answers (the latest one added is asked first). It gets
        the model and the messages and returns the answer text, optionally with the mean
        log-probability to report when the request asks for ``logprobs``, or None to leave the
        answer to the server."""
        self._answerers.insert(0, answerer)

    def _scripted(self, model: str, messages: list[dict[str, Any]]) -> tuple[str, float | None] | None:
        for answerer in self._answerers:
            answer = answerer(model, messages)
            if isinstance(answer, str):
                return answer, None
            if answer is not None:
                return answer[0], float(answer[1])
        return None

    def route_pattern(self, method: str, pattern: str, handler: Handler) -> None:
        """Answer ``method`` on paths that fully match the regular expression ``pattern`` (when
        no exact route matches); its named groups are in ``FakeRequest.params``."""
        self._patterns.append((method.upper(), re.compile(pattern), handler))

    def _handler_for(self, request: FakeRequest) -> Handler | None:
        handler = self._routes.get((request.method, request.path))
        if handler is not None:
            return handler
        for method, pattern, candidate in self._patterns:
            match = pattern.fullmatch(request.path) if method == request.method else None
            if match is not None:
                request.params.update(match.groupdict())
                return candidate
        return None

    def fault_next_batch(self, fault: BatchFault | None = None, **how: Any) -> None:
        """Answer the next batched prompt (``Q[1]: ...``) badly: ``missing=[2]``,
        ``duplicate=[1]``, ``malformed=[3]``, ``extra=[9]``, ``swap=(1, 2)``, ``shuffle=True``,
        ``truncate=True`` (see :class:`~llmspend.testing.batch_prompts.BatchFault`)."""
        self._batch_faults.append(fault or BatchFault(**how))

    @staticmethod
    def batched_answer(model: str, question: str) -> str:
        """What this server answers to ``question`` when it is asked in a batched prompt."""
        return " ".join(_answer_words(_digest("batched", model, question.strip()), None))

    def fail_next(self, status: int, times: int = 1, *, headers: Mapping[str, str] | None = None, body: Any = None) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (an OpenAI-style error body)."""
        payload = body if body is not None else {
            "error": {"message": f"fake error {status}", "type": "server_error" if status >= 500 else "invalid_request_error"}
        }
        for _ in range(times):
            self._faults.append(FakeResponse.json(payload, status, headers))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self._prefixes.clear()
            self._batch_faults.clear()

    def start(self) -> FakeLLMServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Without this, Nagle's algorithm and delayed ACKs add ~40 ms per response.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = FakeRequest(self.command, self.path.split("?", 1)[0], dict(self.headers.items()), body)
                server._dispatch(self, request)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

        class _Server(ThreadingHTTPServer):
            # socketserver's default backlog of 5 resets connections when many concurrent
            # clients (an async batch of calls) connect at once.
            request_queue_size = 256

            def handle_error(self, request: Any, client_address: Any) -> None:
                import sys

                if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hanging up is normal
                    super().handle_error(request, client_address)

        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP --------------------------------------------------------------------------
    def _dispatch(self, http: BaseHTTPRequestHandler, request: FakeRequest) -> None:
        with self._lock:
            self.requests.append(request)
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            response = fault
        else:
            handler = self._handler_for(request)
            if handler is None:
                response = FakeResponse.json({"error": {"message": f"no route {request.method} {request.path}"}}, 404)
            else:
                try:
                    response = handler(request)
                except Exception as exc:  # a bad request body, say
                    response = FakeResponse.json({"error": {"message": f"{type(exc).__name__}: {exc}"}}, 400)
        if self.latency_s:
            time.sleep(self.latency_s)
        self._write(http, response)

    @staticmethod
    def _write(http: BaseHTTPRequestHandler, response: FakeResponse) -> None:
        head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
        head += [f"{k}: {v}" for k, v in response.headers.items()]
        if isinstance(response.body, bytes):
            head.append(f"content-length: {len(response.body)}")
            # headers and body in one write: see TCP_NODELAY above
            http.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + response.body)
            http.wfile.flush()
            return
        head.append("transfer-encoding: chunked")
        http.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for chunk in response.body:
                if response.chunk_delay_s:
                    time.sleep(response.chunk_delay_s)
                if chunk:
                    http.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    http.wfile.flush()
            http.wfile.write(b"0\r\n\r\n")
            http.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            http.close_connection = True  # the client stopped reading: fine

    # -- usage -------------------------------------------------------------------------
    def _cached_tokens(self, model: str, tokens: list[int]) -> int:
        """Provider-style prompt caching: the longest previously seen prefix of 1,024 tokens
        or more, in 128-token steps."""
        cached = 0
        with self._lock:
            length = CACHE_MIN_TOKENS
            while length <= len(tokens):
                key = (model, length, hash(tuple(tokens[:length])))
                if key in self._prefixes:
                    cached = length
                else:
                    self._prefixes.add(key)
                length += CACHE_STEP
        return cached

    def _usage(self, request: FakeRequest, model: str, prompt_text: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any] | None:
        if request.headers.get("x-fake-usage", request.headers.get("X-Fake-Usage")) == "omit":
            return None
        tokens = encoding_for(model).encode(prompt_text, disallowed_special=())
        cached = self._cached_tokens(model, tokens)
        reasoning = completion_tokens * 3 if model.startswith(REASONING_PREFIXES) else 0
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens + reasoning,
            "total_tokens": prompt_tokens + completion_tokens + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _malformed(request: FakeRequest) -> bool:
        return request.headers.get("x-fake-malformed", request.headers.get("X-Fake-Malformed")) == "1"

    # -- endpoints ---------------------------------------------------------------------
    def _chat(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        model = body["model"]
        messages = body["messages"]
        if self._malformed(request):
            return FakeResponse(200, b'{"id": "chatcmpl-broken", "choices": [', {"content-type": "application/json"})
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        seed = _digest(model, messages, body.get("tools"), body.get("response_format"), body.get("temperature"))
        created = 1_700_000_000 + seed % 10_000_000
        rid = f"chatcmpl-{seed:016x}"
        n = int(body.get("n") or 1)
        tools = body.get("tools") or []
        wants_tool = bool(tools) and body.get("tool_choice") != "none" and messages and messages[-1].get("role") == "user"
        fmt = (body.get("response_format") or {}).get("type")
        batched = self._batched_reply(model, messages, limit)
        choices, texts = [], []
        for index in range(n):
            words = _answer_words(seed + index, limit)
            text = " ".join(words)
            if batched is not None:  # Q[1]: ... answered A[1]: ..., one line per question
                text, words, limit = batched.text, batched.words, batched.limit
            scripted = self._scripted(model, messages) if not wants_tool else None
            if scripted is not None:
                text = scripted[0]
                words = text.split(" ")
            if fmt in ("json_object", "json_schema"):
                text = json.dumps({"answer": text})
            if wants_tool:
                name = tools[0]["function"]["name"]
                arguments = json.dumps({"query": words[0]})
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": f"call_{seed % 10**8:08d}{index}", "type": "function", "function": {"name": name, "arguments": arguments}}],
                }
                finish = "tool_calls"
                texts.append(name + arguments)
            else:
                finish = "length" if limit is not None and len(words) >= limit else "stop"
                text, finish = _apply_stop(text, finish, body.get("stop"))
                message = {"role": "assistant", "content": text, "refusal": None}
                texts.append(text)
            logprobs = None
            if body.get("logprobs") is True and not wants_tool:
                logprobs = _logprobs(model, text, scripted[1] if scripted is not None else None)
            choices.append({"index": index, "message": message, "finish_reason": finish, "logprobs": logprobs})
        prompt_text = "\n".join(str(m.get("content")) for m in messages)
        prompt_tokens = count_chat_messages(messages, model) + (count_text(json.dumps(tools), model) if tools else 0)
        completion_tokens = sum(count_text(t, model) for t in texts)
        usage = self._usage(request, model, prompt_text, prompt_tokens, completion_tokens)
        served_model = _snapshot(model)
        if not body.get("stream"):
            data: dict[str, Any] = {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": served_model,
                "choices": choices,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            }
            if usage is not None:
                data["usage"] = usage
            return FakeResponse.json(data)
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True
        return FakeResponse.events(self._chat_events(rid, created, served_model, choices, usage, include_usage))

    def _batched_reply(self, model: str, messages: Any, limit: int | None) -> BatchedReply | None:
        questions = batched_questions(messages)
        if questions is None:
            return None
        with self._lock:
            fault = self._batch_faults.popleft() if self._batch_faults else None
        return render_batched_reply(questions, lambda q: self.batched_answer(model, q), limit, fault)

    @staticmethod
    def _chat_events(rid: str, created: int, model: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None, include_usage: bool) -> Iterator[Any]:
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, "service_tier": "default", "system_fingerprint": "fp_fake"}
        extra = {"usage": None} if include_usage else {}
        for choice in choices:
            message = choice["message"]
            yield {**base, "choices": [{"index": choice["index"], "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], **extra}
            if message.get("tool_calls"):
                call = message["tool_calls"][0]
                yield {**base, "choices": [{"index": choice["index"], "delta": {"tool_calls": [{"index": 0, **call}]}, "finish_reason": None}], **extra}
            else:
                words = message["content"].split(" ")
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    yield {**base, "choices": [{"index": choice["index"], "delta": {"content": piece}, "finish_reason": None}], **extra}
            yield {**base, "choices": [{"index": choice["index"], "delta": {}, "finish_reason": choice["finish_reason"]}], **extra}
        if include_usage and usage is not None:
            yield {**base, "choices": [], "usage": usage}
        yield "data: [DONE]\n\n"

    def _completions(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        model, prompt = body["model"], body["prompt"]
        prompt_text = prompt if isinstance(prompt, str) else "\n".join(map(str, prompt))
        seed = _digest(model, prompt)
        words = _answer_words(seed, body.get("max_tokens"))
        text = " " + " ".join(words)
        usage = self._usage(request, model, prompt_text, count_text(prompt_text, model), count_text(text, model))
        base = {"id": f"cmpl-{seed:016x}", "object": "text_completion", "created": 1_700_000_000, "model": model}
        if not body.get("stream"):
            data = {**base, "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}]}
            if usage is not None:
                data["usage"] = usage
            return FakeResponse.json(data)
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True

        def events() -> Iterator[Any]:
            for word in words:
                yield {**base, "choices": [{"index": 0, "text": " " + word, "finish_reason": None, "logprobs": None}]}
            yield {**base, "choices": [{"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}]}
            if include_usage and usage is not None:
                yield {**base, "choices": [], "usage": usage}
            yield "data: [DONE]\n\n"

        return FakeResponse.events(events())

    def _embeddings(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        model, inputs = body["model"], body["input"]
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        dims = int(body.get("dimensions") or 8)
        data = []
        for index, item in enumerate(items):
            seed = _digest(model, item)
            data.append({"object": "embedding", "index": index, "embedding": [((seed >> (i * 3)) % 1000) / 1000 - 0.5 for i in range(dims)]})
        tokens = sum(count_text(i, model) if isinstance(i, str) else len(i) for i in items)
        out: dict[str, Any] = {"object": "list", "data": data, "model": model}
        if request.headers.get("x-fake-usage") != "omit":
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return FakeResponse.json(out)

    def _responses(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        model = body["model"]
        source = body.get("input")
        prompt_text = (body.get("instructions") or "") + (source if isinstance(source, str) else json.dumps(source))
        seed = _digest(model, source, body.get("instructions"))
        words = _answer_words(seed, body.get("max_output_tokens"))
        text = " ".join(words)
        tool_items, content_tokens = _builtin_tool_items(body, model, seed, request)
        chat_usage = self._usage(request, model, prompt_text, count_text(prompt_text, model) + 7 + content_tokens,
                                 count_text(text, model))
        usage = None
        if chat_usage is not None:
            usage = {
                "input_tokens": chat_usage["prompt_tokens"],
                "input_tokens_details": {"cached_tokens": chat_usage["prompt_tokens_details"]["cached_tokens"]},
                "output_tokens": chat_usage["completion_tokens"],
                "output_tokens_details": {"reasoning_tokens": chat_usage["completion_tokens_details"]["reasoning_tokens"]},
                "total_tokens": chat_usage["total_tokens"],
            }
        rid = f"resp_{seed:016x}"
        message = {
            "id": f"msg_{seed:016x}",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        response = {
            "id": rid,
            "object": "response",
            "created_at": 1_700_000_000,
            "status": "completed",
            "model": _snapshot(model),
            "output": [*tool_items, message],
            "usage": usage,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": body.get("tools") or [],
        }
        if not body.get("stream"):
            return FakeResponse.json(response)

        def events() -> Iterator[Any]:
            start = {**response, "status": "in_progress", "output": [], "usage": None}
            seq = 0
            yield f"event: response.created\ndata: {json.dumps({'type': 'response.created', 'sequence_number': seq, 'response': start})}\n\n"
            for index, item in enumerate(tool_items):
                for kind in ("response.output_item.added", "response.output_item.done"):
                    seq += 1
                    added = {"type": kind, "sequence_number": seq, "output_index": index, "item": item}
                    yield f"event: {kind}\ndata: {json.dumps(added)}\n\n"
            for word_index, word in enumerate(words):
                seq += 1
                delta = word if word_index == 0 else " " + word
                payload = {"type": "response.output_text.delta", "sequence_number": seq, "item_id": message["id"], "output_index": len(tool_items), "content_index": 0, "delta": delta}
                yield f"event: response.output_text.delta\ndata: {json.dumps(payload)}\n\n"
            seq += 1
            yield f"event: response.completed\ndata: {json.dumps({'type': 'response.completed', 'sequence_number': seq, 'response': response})}\n\n"

        return FakeResponse.events(events())


#: search-result tokens the fake adds to a request's input for each web search (OpenAI bills
#: them at the model's input rate, except the preview tool on non-reasoning models)
SEARCH_CONTENT_TOKENS = 400


def _builtin_tool_items(body: Mapping[str, Any], model: str, seed: int, request: FakeRequest) -> tuple[list[dict[str, Any]], int]:
    """The output items of the built-in tools a Responses request enables (``web_search*``,
    ``file_search``, ``code_interpreter``), called ``x-fake-tool-calls`` times each (default
    1; 0 for none), at most ``max_tool_calls`` in all; and the search-content input tokens they
    add. A reasoning model's web search also opens a page (an ``open_page`` action, which
    OpenAI does not bill)."""
    wanted = next((v for k, v in request.headers.items() if k.lower() == "x-fake-tool-calls"), "1")
    calls = int(wanted)
    cap = body.get("max_tool_calls")
    limit = cap if isinstance(cap, int) else None
    reasoning = model.startswith(REASONING_PREFIXES)
    items: list[dict[str, Any]] = []
    content_tokens = 0

    def room() -> bool:
        return limit is None or len(items) < limit

    for tool in body.get("tools") or ():
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if not isinstance(kind, str):
            continue
        for _ in range(calls):
            if not room():
                break
            ident = f"{seed % 10**12:012d}{len(items):04d}"
            query = _WORDS[(seed + len(items)) % len(_WORDS)]
            if kind.startswith("web_search"):
                items.append({"type": "web_search_call", "id": f"ws_{ident}", "status": "completed",
                              "action": {"type": "search", "query": query, "queries": [query]}})
                if reasoning or not kind.startswith("web_search_preview"):  # free on the preview, non-reasoning
                    content_tokens += SEARCH_CONTENT_TOKENS
            elif kind == "file_search":
                items.append({"type": "file_search_call", "id": f"fs_{ident}", "status": "completed",
                              "queries": [query], "results": None})
            elif kind == "code_interpreter":
                items.append({"type": "code_interpreter_call", "id": f"ci_{ident}", "status": "completed",
                              "code": "print(6 * 7)", "container_id": "cntr_fake", "outputs": None})
        if kind.startswith("web_search") and reasoning and calls and room():
            items.append({"type": "web_search_call", "id": f"ws_{seed % 10**12:012d}{len(items):04d}",
                          "status": "completed", "action": {"type": "open_page", "url": "https://example.com/"}})
    return items, content_tokens


def _apply_stop(text: str, finish: str, stop: Any) -> tuple[str, str]:
    """``text`` cut before the first of the request's ``stop`` sequences, as OpenAI does."""
    stops = [stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str)]
    cuts = [text.find(s) for s in stops if s and s in text]
    return (text[:min(cuts)], "stop") if cuts else (text, finish)


def _logprobs(model: str, text: str, mean: float | None) -> dict[str, Any]:
    """Chat ``logprobs`` for ``text``: every token at ``mean`` when given, else a
    deterministic value per token."""
    encoding = encoding_for(model)
    content = []
    for token in encoding.encode(text, disallowed_special=()):
        piece = encoding.decode_single_token_bytes(token)
        value = mean if mean is not None else -((_digest(model, token) % 1000) / 400)
        content.append({"token": piece.decode("utf-8", "replace"), "logprob": value, "bytes": list(piece), "top_logprobs": []})
    return {"content": content, "refusal": None}


def _snapshot(model: str) -> str:
    """Answer with a dated snapshot name for a few well-known aliases, as OpenAI does."""
    return {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"}.get(model, model)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout",
            409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout", 529: "Overloaded"}
