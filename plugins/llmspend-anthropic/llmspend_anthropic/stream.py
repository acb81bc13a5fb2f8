"""Streamed Messages: read as they pass, rebuilt into a Message, and made from one.

The event sequence (``anthropic/lib/streaming`` in the SDK, and the API reference)::

    message_start        {"message": {... "usage": {input + cache counts, output placeholder}}}
    content_block_start  {"index": i, "content_block": {"type": "text" | "tool_use" | "thinking", ...}}
    content_block_delta  {"index": i, "delta": {"type": "text_delta" | "input_json_delta" | "thinking_delta" | ...}}
    content_block_stop   {"index": i}
    message_delta        {"delta": {"stop_reason", "stop_sequence"}, "usage": {cumulative output_tokens, ...}}
    message_stop
    (ping at any time; error instead of the rest when the API fails mid-stream)

Usage arrives in two halves: input and cache counts in ``message_start``, the final output
count in ``message_delta`` (whose counts are cumulative and may restate the input ones). A stream
that stops before ``message_delta``, or whose ``message_delta`` carries no output count (a proxy
that drops usage), has exact input counts (when ``message_start`` had them) and an output count
estimated from the text that arrived.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from llmspend.exceptions import ResponseParseError
from llmspend.providers.base import Call, Outcome, token_count
from llmspend.providers.sse import EventSplitter, event_data
from llmspend.tokens import count_text

from .content import block_text
from .parts import output_messages
from .usage import merge_usage, server_tool_blocks, server_tool_calls, usage_attributes, usage_from_json, usage_string

__all__ = ["MessageAccumulator", "AnthropicStreamReader", "message_from_events", "events_from_message", "encode_events"]


class MessageAccumulator:
    """Builds the Message that a stream's events describe, as far as they have arrived."""

    __slots__ = ("message", "started", "got_delta", "stopped", "failed", "_json")

    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self.started = False  # message_start seen
        self.got_delta = False  # a message_delta with an output count seen: that count is final
        self.stopped = False  # message_stop seen: the provider finished the answer
        self.failed: str | None = None  # the error event's type, if one arrived
        self._json: dict[int, str] = {}  # tool_use input as it streams, by block index

    def add(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), Mapping):
            self.message = dict(event["message"])
            self.message["content"] = list(self.message.get("content") or ())
            self.started = True
        elif kind == "content_block_start" and isinstance(event.get("content_block"), Mapping):
            index = event.get("index")
            content = self.message.setdefault("content", [])
            block = dict(event["content_block"])
            if isinstance(index, int) and index == len(content):
                content.append(block)
            elif isinstance(index, int) and index < len(content):
                content[index] = block
        elif kind == "content_block_delta" and isinstance(event.get("delta"), Mapping):
            self._delta(event.get("index"), event["delta"])
        elif kind == "content_block_stop":
            self._finish_block(event.get("index"))
        elif kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, Mapping):
                for key in ("stop_reason", "stop_sequence", "stop_details", "container"):
                    if key in delta:
                        self.message[key] = delta[key]
            usage = event.get("usage")
            if isinstance(usage, Mapping):
                self.message["usage"] = merge_usage(self.message.get("usage") or {}, usage)
                # without one (a proxy that drops usage) message_start's placeholder stays one
                self.got_delta = self.got_delta or token_count(usage.get("output_tokens")) is not None
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            error = event.get("error")
            kind = error.get("type") if isinstance(error, Mapping) else None
            self.failed = kind if isinstance(kind, str) else "api_error"

    def _block(self, index: Any) -> dict[str, Any] | None:
        content = self.message.get("content")
        if isinstance(index, int) and isinstance(content, list) and 0 <= index < len(content):
            block = content[index]
            return block if isinstance(block, dict) else None
        return None

    def _delta(self, index: Any, delta: Mapping[str, Any]) -> None:
        block = self._block(index)
        if block is None:
            return
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
        elif kind == "input_json_delta":
            self._json[index] = self._json.get(index, "") + str(delta.get("partial_json") or "")
        elif kind == "thinking_delta":
            block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking") or "")
        elif kind == "signature_delta":
            block["signature"] = str(block.get("signature") or "") + str(delta.get("signature") or "")
        elif kind == "citations_delta" and isinstance(delta.get("citation"), Mapping):
            block.setdefault("citations", []).append(delta["citation"])

    def _finish_block(self, index: Any) -> None:
        block = self._block(index)
        if block is None or index not in self._json:
            return
        raw = self._json.pop(index)
        try:
            block["input"] = json.loads(raw) if raw else {}
        except (ValueError, RecursionError):  # model output: nothing bounds its nesting
            block["input"] = {}

    def generated_text(self) -> str:
        """Everything generated so far (text, tool input, thinking), partial JSON included:
        what an output estimate counts."""
        parts = [block_text(block) for block in self.message.get("content") or ()]
        parts.extend(self._json.values())  # tool input still streaming
        return "".join(parts)


def _events(chunks: Iterable[bytes]) -> Iterator[Mapping[str, Any]]:
    split = EventSplitter()
    for chunk in chunks:
        for raw in split.feed(chunk):
            event = _decode(raw)
            if event is not None:
                yield event
    event = _decode(split.flush())
    if event is not None:
        yield event


def _decode(raw: bytes) -> Mapping[str, Any] | None:
    data = event_data(raw) if raw else None
    return _decode_data(data) if data else None


def _decode_data(data: bytes) -> Mapping[str, Any] | None:
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    return payload if isinstance(payload, Mapping) else None


def message_from_events(chunks: Iterable[bytes]) -> dict[str, Any]:
    """The Message a recorded SSE body describes (e.g. to cache a streamed answer as JSON)."""
    accumulator = MessageAccumulator()
    for event in _events(chunks):
        accumulator.add(event)
    return accumulator.message


def events_from_message(message: Mapping[str, Any], *, chunk_words: bool = True) -> list[dict[str, Any]]:
    """The event sequence the API streams for ``message`` (e.g. to replay a cached or batched
    answer to a caller that asked for a stream). Text is sent a word at a time when
    ``chunk_words``; tool input as one JSON delta."""
    usage = dict(message.get("usage") or {})
    start_usage = {**usage, "output_tokens": min(1, int(usage.get("output_tokens") or 0))}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message.get("content") or ()):
        kind = block.get("type")
        if kind == "text":
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "text": ""}})
            text = str(block.get("text") or "")
            pieces = _words(text) if chunk_words else [text]
            events.extend({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
                          for piece in pieces)
        elif kind == "tool_use":
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": json.dumps(block.get("input") or {})}})
        elif kind == "thinking":
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {**block, "thinking": "", "signature": ""}})
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "thinking_delta", "thinking": str(block.get("thinking") or "")}})
            if block.get("signature"):
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "signature_delta", "signature": block["signature"]}})
        else:
            events.append({"type": "content_block_start", "index": index, "content_block": dict(block)})
        events.append({"type": "content_block_stop", "index": index})
    delta_usage = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                                         "output_tokens", "server_tool_use") if k in usage}
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")},
                   "usage": delta_usage})
    events.append({"type": "message_stop"})
    return events


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)] if text else []


def encode_events(events: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """SSE frames as the API sends them: ``event: <type>`` then ``data: <json>``."""
    for event in events:
        yield f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


class AnthropicStreamReader:
    """Watches a Messages stream for llmspend's telemetry; hands every byte on as it came.

    ``feed`` only splits events and keeps their data (it runs on the caller's path); they are
    parsed when the stream ends, and the many ``content_block_delta`` events only when their
    text is needed: to estimate the output of a stream that ended before ``message_delta``, or
    for content capture (``capture_text``, set by the telemetry stage).
    """

    __slots__ = ("_call", "_split", "_payloads", "capture_text")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._split = EventSplitter()
        self._payloads: list[bytes] = []
        #: set by the telemetry stage when completion text goes on spans
        self.capture_text = False

    def feed(self, chunk: bytes) -> bytes:
        for event in self._split.feed(chunk):
            self._keep(event)
        return chunk

    def flush(self) -> bytes:
        rest = self._split.flush()
        if rest:
            self._keep(rest)
        return b""  # already handed on by feed

    def _keep(self, event: bytes) -> None:
        data = event_data(event)
        if data:
            self._payloads.append(data)

    def _accumulate(self) -> MessageAccumulator:
        # A fast check on the API's compact JSON; a payload it misses is simply parsed.
        want_text = self.capture_text or not any(_is_event(p, b"message_delta") for p in reversed(self._payloads))
        acc = self._replay(want_text)
        if not want_text and not acc.got_delta:
            acc = self._replay(True)  # message_delta had no output count: the text is what counts it
        return acc

    def _replay(self, want_text: bool) -> MessageAccumulator:
        acc = MessageAccumulator()
        for data in self._payloads:
            if not want_text and _is_event(data, b"content_block_delta"):
                continue
            event = _decode_data(data)
            if event is not None:
                acc.add(event)
        return acc

    def outcome(self, complete: bool) -> Outcome:
        acc = self._accumulate()
        message = acc.message
        # The SDK may close the stream right after message_stop; the answer was complete.
        complete = (complete or acc.stopped) and acc.failed is None
        raw_usage = message.get("usage")
        usage = None
        tool_calls = server_tool_calls(raw_usage, self._call.body)
        if not acc.got_delta:  # message_start's counts are not final: count the calls that did start
            merged = dict(tool_calls)
            for tool, count in server_tool_blocks(message.get("content"), self._call.body).items():
                known = merged.get(tool, 0)
                merged[tool] = None if known is None else max(known, count or 0)
            tool_calls = merged
        if acc.started and isinstance(raw_usage, Mapping):
            try:
                usage = usage_from_json(raw_usage)
                if not acc.got_delta:
                    # message_start's output count is a placeholder: count what did arrive.
                    usage = usage_from_json(
                        {**raw_usage, "output_tokens": count_text(acc.generated_text(), self._call.model),
                         "output_tokens_details": None},
                        estimated=True,
                    )
            except ResponseParseError:
                usage = None  # counts that are not counts: estimated from the text, as without usage
        stop = message.get("stop_reason")
        return Outcome(
            usage=usage,
            response_id=message.get("id") if isinstance(message.get("id"), str) else None,
            response_model=message.get("model") if isinstance(message.get("model"), str) else None,
            finish_reasons=(stop,) if isinstance(stop, str) else (),
            service_tier=usage_string(raw_usage, "service_tier"),
            inference_geo=usage_string(raw_usage, "inference_geo"),
            speed=usage_string(raw_usage, "speed"),
            output_text=acc.generated_text(),
            complete=complete,
            attributes=usage_attributes(raw_usage),
            tool_calls=tool_calls,
            error_type=acc.failed,
            output_messages=tuple(output_messages(message)) if self.capture_text and acc.started else None,
        )


def _is_event(data: bytes, kind: bytes) -> bool:
    return data.startswith(b'{"type":"%s"' % kind)
