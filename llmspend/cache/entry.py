"""A cached answer as it is stored: JSON, and nothing that could run code when read.

    {"v": 1, "status": 200, "created": 1714000000.0, "cost_usd": 0.00042,
     "headers": [["content-type", "application/json"], ...],
     "body": "{...}"}                        # a read body, or for a stream:
     "chunks": ["data: {...}\\n\\n", ...]     # the event-stream chunks as they arrived

Bodies are text (every LLM API answers in JSON or server-sent events); a body that is not UTF-8
is stored base64-encoded under ``body_b64`` / ``chunks_b64``. Only the provider's answer is
stored: no request header, no prompt. Response headers that describe the connection, the wire
framing or cookies are left out. :func:`decode_entry` checks every field and raises
:class:`~llmspend.exceptions.CorruptCacheEntryError` for anything else.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from typing import Any, NamedTuple

from .._http import Headers
from ..exceptions import CorruptCacheEntryError

__all__ = ["Entry", "encode_entry", "decode_entry", "stored_headers"]

FORMAT_VERSION = 1

# Not kept: wire framing (the body is stored decoded), the connection, and cookies (a cookie
# belongs to one client session, not to the answer).
_DROPPED_HEADERS = frozenset(
    {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive", "set-cookie"}
)


# characters no HTTP header name or value holds
_NOT_IN_HEADERS = re.compile("[\r\n\0]")


def stored_headers(headers: Headers) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS)


class Entry(NamedTuple):
    """One stored answer: a read ``body`` or, for a stream, its ``chunks``."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes | None = None
    chunks: tuple[bytes, ...] | None = None
    #: when it was stored (seconds since the epoch)
    created: float = 0.0
    #: what the original call cost, for the cache's own savings counter (None: unknown)
    cost_usd: float | None = None

    @property
    def size(self) -> int:
        return len(self.body) if self.body is not None else sum(map(len, self.chunks or ()))


def _text(data: bytes) -> tuple[str, bool]:
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), True


def encode_entry(entry: Entry) -> bytes:
    record: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "status": entry.status,
        "created": entry.created or time.time(),
        # a cost that is not a number (a price table's NaN) is unknown, not a corrupt entry
        "cost_usd": entry.cost_usd if entry.cost_usd is None or math.isfinite(entry.cost_usd) else None,
        "headers": [list(kv) for kv in entry.headers],
    }
    if entry.chunks is not None:
        texts = [_text(c) for c in entry.chunks]
        if any(b64 for _, b64 in texts):
            record["chunks_b64"] = [base64.b64encode(c).decode("ascii") for c in entry.chunks]
        else:
            record["chunks"] = [t for t, _ in texts]
    else:
        text, b64 = _text(entry.body or b"")
        record["body_b64" if b64 else "body"] = text
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _fail(why: str) -> CorruptCacheEntryError:
    return CorruptCacheEntryError(f"not a llmspend cache entry: {why}")


def _strings(value: Any, what: str) -> list[str]:
    if type(value) is not list or any(type(v) is not str for v in value):
        raise _fail(f"{what} is not a list of strings")
    return value


def _number(value: Any, what: str) -> float:
    """``value`` as a finite number >= 0 (a time or a cost), or a corrupt entry: NaN, infinity
    and numbers too large for a float would fail later, where the answer is replayed."""
    if type(value) is not float and type(value) is not int:
        raise _fail(f"bad {what}")
    try:
        number = float(value)
    except OverflowError:
        raise _fail(f"bad {what}") from None
    if not math.isfinite(number) or number < 0:
        raise _fail(f"bad {what}")
    return number


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python writes them, JSON has none


# one decoder for every entry: json.loads with a hook builds a new one per call
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def decode_entry(data: bytes | bytearray | str) -> Entry:
    """The entry stored as ``data``; raises ``CorruptCacheEntryError`` for anything else."""
    try:
        record = _DECODER.decode(data.decode("utf-8") if isinstance(data, bytes | bytearray) else data)
    except (ValueError, TypeError, RecursionError) as exc:  # TypeError: not bytes/str; RecursionError: [[[[...
        raise _fail(f"not JSON ({type(exc).__name__})") from None
    if type(record) is not dict or record.get("v") != FORMAT_VERSION:
        raise _fail("unknown format")
    status = record.get("status")
    if type(status) is not int or not 200 <= status < 300:
        raise _fail("bad status")
    created = _number(record.get("created"), "creation time")
    cost = record.get("cost_usd")
    cost_usd = None if cost is None else _number(cost, "cost")
    raw_headers = record.get("headers")
    if type(raw_headers) is not list:
        raise _fail("bad headers")
    headers = []
    for pair in raw_headers:
        if type(pair) is not list or len(pair) != 2 or type(name := pair[0]) is not str or type(value := pair[1]) is not str:
            raise _fail("bad headers")
        if not name:
            raise _fail("a header without a name")
        headers.append((name, value))
    # HTTP has none of these: one would split the header. Checked once over all of them.
    if headers and _NOT_IN_HEADERS.search("".join(map("".join, headers))):
        raise _fail("a header with a line break")
    body: bytes | None = None
    chunks: tuple[bytes, ...] | None = None
    try:
        if type(text := record.get("body")) is str:
            body = text.encode("utf-8")
        elif "chunks" in record:
            chunks = tuple(c.encode("utf-8") for c in _strings(record["chunks"], "chunks"))
        elif type(text := record.get("body_b64")) is str:
            body = base64.b64decode(text, validate=True)
        elif "chunks_b64" in record:
            chunks = tuple(base64.b64decode(c, validate=True) for c in _strings(record["chunks_b64"], "chunks"))
        else:
            raise _fail("no body")
    except (ValueError, UnicodeEncodeError) as exc:  # binascii.Error is a ValueError
        raise _fail(f"bad body ({exc})") from None
    return Entry(status, tuple(headers), body, chunks, created, cost_usd)
