"""Server-sent events, split as they arrive without changing a byte.

Providers stream answers as SSE. llmspend reads each event as it passes, and in one case must
hold one back (OpenAI's usage-only chunk when llmspend, not the caller, asked for it), so it
needs event boundaries; everything else is handed on exactly as received.
"""

from __future__ import annotations

import re

__all__ = ["EventSplitter", "event_data", "event_name"]

# An event ends at a blank line; the spec allows \r\n, \n and \r line endings.
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class EventSplitter:
    """Feed bytes, get back the complete events (each with its terminating blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" not in buffer:
            # the common case (\n line endings): bytes.split is much cheaper than a regex
            parts = buffer.split(b"\n\n")
            self._buffer = parts.pop()
            return [part + b"\n\n" for part in parts]
        events: list[bytes] = []
        start = 0
        for match in _BOUNDARY.finditer(buffer):
            events.append(buffer[start : match.end()])
            start = match.end()
        self._buffer = buffer[start:]
        return events

    @property
    def pending(self) -> bool:
        """Whether part of an event is held, waiting for the rest of it."""
        return bool(self._buffer)

    def feed_joined(self, chunk: bytes) -> bytes:
        """``b"".join(self.feed(chunk))``: the complete events as one run of bytes, without
        cutting them apart first (the common case ends every chunk at an event's end)."""
        if self._buffer or b"\r" in chunk:
            return b"".join(self.feed(chunk))
        rest = chunk.split(b"\n\n")[-1]  # exactly what feed() would keep back
        self._buffer = rest
        return chunk[: len(chunk) - len(rest)] if rest else chunk

    def flush(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest


def _fields(event: bytes, name: bytes) -> list[bytes]:
    out = []
    for line in event.splitlines():
        if line.startswith(name):
            value = line[len(name) :]
            if value.startswith(b":"):
                value = value[1:]
                out.append(value[1:] if value.startswith(b" ") else value)
    return out


def event_data(event: bytes) -> bytes | None:
    """The event's ``data`` (lines joined by newlines), or ``None`` if it has none."""
    if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:
        return event[6:-2]  # one `data: ...` line, the usual shape
    parts = _fields(event, b"data")
    return b"\n".join(parts) if parts else None


def event_name(event: bytes) -> str | None:
    parts = _fields(event, b"event")
    return parts[-1].decode("utf-8", "replace") if parts else None
