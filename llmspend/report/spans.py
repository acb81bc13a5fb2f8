"""Read exported spans one at a time, whatever wrote them.

Two formats, told apart line by line (a file may even mix them):

- **Console exporter JSON lines**: one span per line, as ``ReadableSpan.to_json()`` writes it
  (``llmspend demo --spans-out FILE``, ``llmspend.configure_telemetry("console", out=f)``):
  ``{"name", "context", "start_time": "2025-01-31T12:00:00.000000Z", "attributes": {...}}``.
  The SDK's default ``ConsoleSpanExporter`` indents each span over many lines; those are read
  too. Metric lines written to the same stream are skipped.
- **OTLP JSON** (the OpenTelemetry Collector's ``file`` exporter, ``format: json``): one
  ``ExportTraceServiceRequest`` per line, ``resourceSpans → scopeSpans → spans``, attributes
  as ``[{"key", "value": {"stringValue" | "intValue" | "doubleValue" | "boolValue" |
  "arrayValue"}}]`` with ``intValue`` a string and times as ``startTimeUnixNano`` strings.

Files are read in binary, a line at a time, so memory stays bounded by the longest line, not
the file. ``.gz`` files are decompressed on the fly; ``-`` reads standard input.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

from ..exceptions import ConfigError
from ..telemetry.recorder import warn_once

__all__ = ["SpanRecord", "ReadStats", "iter_spans"]

# A span spread over many lines (the SDK console exporter's indent=4 default) is joined until
# it parses; past this size the lines are not a span and are counted as malformed.
_MAX_RECORD_BYTES = 16 * 1024 * 1024
# Progress is shown by default only for files at least this large (and a terminal to show it on).
_PROGRESS_MIN_BYTES = 64 * 1024 * 1024
_NS_PER_DAY = 86_400 * 10**9


@dataclass(slots=True)
class SpanRecord:
    """One span: its name, attributes (plain Python values) and UTC start day (``YYYY-MM-DD``)."""

    name: str
    attributes: dict[str, Any]
    day: str | None


@dataclass
class ReadStats:
    """What reading found, besides the spans."""

    files: list[str] = field(default_factory=list)
    bytes: int = 0
    lines: int = 0
    spans: int = 0
    #: records that were not spans (metrics, logs) or lines with no LLM call, skipped unparsed
    skipped: int = 0
    malformed: int = 0
    #: where malformed lines were ("file:line"), the first few
    malformed_at: list[str] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": list(self.files), "bytes": self.bytes, "lines": self.lines, "spans": self.spans,
            "skipped": self.skipped, "malformed": self.malformed, "malformed_at": list(self.malformed_at),
            "formats": dict(self.formats),
        }


# -- OTLP JSON ----------------------------------------------------------------------------
def _otlp_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])  # int64 is a string in OTLP JSON
    if "doubleValue" in value:
        return float(value["doubleValue"])  # may be "NaN"/"Infinity" strings
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_otlp_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return {kv["key"]: _otlp_value(kv.get("value") or {}) for kv in (value["kvlistValue"] or {}).get("values", [])}
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


_day_cache: dict[int, str] = {}


def _day_from_ns(ns: int) -> str:
    index = ns // _NS_PER_DAY
    day = _day_cache.get(index)
    if day is None:
        day = datetime.fromtimestamp(index * 86_400, UTC).date().isoformat()
        if len(_day_cache) < 100_000:
            _day_cache[index] = day
    return day


def _otlp_spans(request: dict[str, Any]) -> Iterator[SpanRecord]:
    for resource_spans in request.get("resourceSpans") or ():
        # "instrumentationLibrarySpans": what collectors before OTLP 0.15 wrote
        scopes = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or ()
        for scope_spans in scopes:
            for span in scope_spans.get("spans") or ():
                attrs = {kv["key"]: _otlp_value(kv.get("value") or {}) for kv in span.get("attributes") or ()}
                start = span.get("startTimeUnixNano")
                yield SpanRecord(str(span.get("name", "")), attrs, _day_from_ns(int(start)) if start else None)


# -- console exporter JSON ------------------------------------------------------------------
def _day_from_iso(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    if value.endswith("Z"):  # the SDK writes UTC with a Z: the date is the first ten characters
        return value[:10]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date().isoformat()


def _records(obj: Any) -> tuple[str, list[SpanRecord]]:
    """The spans in one decoded JSON value and the format name ('' when it holds none)."""
    if not isinstance(obj, dict):
        return "", []
    if "resourceSpans" in obj:
        return "otlp-json", list(_otlp_spans(obj))
    if "attributes" in obj and "name" in obj and ("context" in obj or "start_time" in obj):
        attrs = obj.get("attributes")
        return "console-json", [SpanRecord(str(obj["name"]), attrs if isinstance(attrs, dict) else {},
                                           _day_from_iso(obj.get("start_time")))]
    return "", []


# -- files -----------------------------------------------------------------------------------
def _open(path: str) -> tuple[IO[bytes], int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    try:
        size = os.path.getsize(path)
        if path.endswith(".gz"):
            return cast(IO[bytes], gzip.open(path, "rb")), None  # progress counts uncompressed bytes
        if path.endswith(".zst"):
            raise ConfigError(f"{path}: zstd-compressed; decompress it first (zstd -d {path})")
        return open(path, "rb"), size
    except OSError as exc:
        raise ConfigError(f"cannot read span file {path!r}: {exc.strerror or exc}") from exc


def _progress_bar(total: int | None, label: str, progress: bool | None) -> Any:
    if progress is False or (progress is None and (not total or total < _PROGRESS_MIN_BYTES or not sys.stderr.isatty())):
        return None
    try:
        from tqdm import tqdm  # type: ignore[import-untyped]
    except ImportError:  # progress is a nicety; tqdm is optional
        if progress:  # asked for outright: say why there is none
            warn_once(("report-progress",), "llmspend: no progress bar: it needs tqdm (pip install tqdm)")
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr, leave=False)


def iter_spans(
    paths: str | Path | list[str | Path],
    *,
    stats: ReadStats | None = None,
    progress: bool | None = None,
    needle: bytes | None = b"gen_ai.operation.name",
) -> Iterator[SpanRecord]:
    """Yield the spans in ``paths`` one at a time (console JSON lines or OTLP JSON, detected
    per line). ``stats`` is filled in as reading goes. ``progress``: a tqdm bar on stderr by
    file bytes (``None``: only for large files on a terminal). Lines without ``needle`` are
    skipped without parsing (``None`` parses every line)."""
    stats = stats if stats is not None else ReadStats()
    for raw_path in paths if isinstance(paths, list) else [paths]:
        path = str(raw_path)
        stream, size = _open(path)
        stats.files.append(path)
        bar = _progress_bar(size, Path(path).name, progress)
        pending = 0
        buffer: list[bytes] = []
        buffered = 0
        buffer_start = 0
        try:
            for number, line in enumerate(stream, start=1):
                stats.lines += 1
                stats.bytes += len(line)
                if bar is not None:
                    pending += len(line)
                    if pending >= 1 << 20:
                        bar.update(pending)
                        pending = 0
                if buffer:
                    buffer.append(line)
                    buffered += len(line)
                    if line[:1] != b"}" and buffered < _MAX_RECORD_BYTES:
                        continue
                    text, start = b"".join(buffer), buffer_start
                    buffer, buffered = [], 0
                else:
                    stripped = line.strip()
                    if not stripped:
                        continue
                    if stripped == b"{":  # the first line of an indented span
                        buffer, buffered, buffer_start = [line], len(line), number
                        continue
                    text, start = line, number
                if needle is not None and needle not in text:
                    stats.skipped += 1
                    continue
                try:
                    kind, records = _records(json.loads(text))
                except (ValueError, TypeError, KeyError, AttributeError):  # not JSON, or not a span's shape
                    stats.malformed += 1
                    if len(stats.malformed_at) < 5:
                        stats.malformed_at.append(f"{path}:{start}")
                    continue
                if not kind:
                    stats.skipped += 1
                    continue
                stats.formats[kind] = stats.formats.get(kind, 0) + len(records)
                stats.spans += len(records)
                yield from records
            if buffer:
                stats.malformed += 1
                if len(stats.malformed_at) < 5:
                    stats.malformed_at.append(f"{path}:{buffer_start}")
        finally:
            if bar is not None:
                bar.update(pending)
                bar.close()
            if stream is not sys.stdin.buffer:
                stream.close()
