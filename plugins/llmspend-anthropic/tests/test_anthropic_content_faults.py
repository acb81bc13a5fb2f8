"""Content capture never loses a streamed Claude call's cost (deeply nested tool input)."""

from __future__ import annotations

from typing import Any

from llmspend_anthropic.stream import AnthropicStreamReader, encode_events, events_from_message
from llmspend_anthropic.usage import usage_from_json

from test_anthropic_adapter import BODY, MESSAGE, _request


def test_deeply_nested_tool_input_keeps_a_captured_streams_usage() -> None:
    # Tool input is model output: json.loads raises RecursionError (not a ValueError) on
    # "[[[[..."; out of outcome() it made the stream's cost unknown with capture on.
    events: list[dict[str, Any]] = events_from_message(MESSAGE)
    for event in events:
        delta = event.get("delta") or {}
        if delta.get("type") == "input_json_delta":
            delta["partial_json"] = "[" * 5000 + "]" * 5000
    call = _request({**BODY, "stream": True}).call
    assert call is not None
    for capture in (False, True):
        reader = AnthropicStreamReader(call)
        reader.capture_text = capture
        reader.feed(b"".join(encode_events(events)))
        outcome = reader.outcome(complete=True)
        assert outcome.usage == usage_from_json(MESSAGE["usage"])
