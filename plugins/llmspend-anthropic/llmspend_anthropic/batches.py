"""Anthropic Message Batches (half price, results within 24 hours): the provider-specific half
of a batch backend, as pure functions, for ``llmspend batch`` to drive.

    POST /v1/messages/batches           {"requests": [{"custom_id", "params": <Messages body>}]}
    GET  /v1/messages/batches/{id}      progress: processing_status, request_counts, results_url
    GET  {results_url}                  JSONL, one line per request, in no set order:
                                        {"custom_id", "result": {"type": "succeeded", "message": {...}}
                                                                | {"type": "errored", "error": {...}}
                                                                | {"type": "canceled"} | {"type": "expired"}}

A succeeded result is a Message whose usage (cache reads and writes included) is priced at the
batch rates. Until llmspend has a batch command these functions are used only by tests; the
pipeline passes ``/v1/messages/batches`` requests through unmeasured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llmspend import Headers, Request
from llmspend.exceptions import ConfigError, ResponseParseError
from llmspend.pricing.cost import NO_USAGE, Cost, unknown_cost
from llmspend.pricing.table import PriceTable
from llmspend.providers.base import ProviderAdapter
from llmspend.telemetry.recorder import price_call

__all__ = ["BATCHES_PATH", "BatchProgress", "ResultLine", "create_body", "progress", "parse_results", "price_result"]

BATCHES_PATH = "/v1/messages/batches"
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_KINDS = frozenset({"succeeded", "errored", "canceled", "expired"})


def create_body(items: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The body that creates a batch of ``(custom_id, Messages request body)`` items. A batch
    result is never streamed, so ``stream`` is dropped. Raises :class:`ConfigError` for an id the
    API would refuse (1 to 64 of ``a-z A-Z 0-9 _ -``) or a repeated one, naming it."""
    requests: list[dict[str, Any]] = []
    seen: set[str] = set()
    for custom_id, body in items:
        if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
            raise ConfigError(f"Message Batches custom_id {custom_id!r}: use 1 to 64 letters, digits, '_' or '-'")
        if custom_id in seen:
            raise ConfigError(f"Message Batches custom_id {custom_id!r} appears twice; each request needs its own")
        seen.add(custom_id)
        requests.append({"custom_id": custom_id, "params": {k: v for k, v in body.items() if k != "stream"}})
    return {"requests": requests}


@dataclass(frozen=True)
class BatchProgress:
    id: str
    #: ``in_progress``, ``canceling`` or ``ended``
    status: str
    succeeded: int = 0
    errored: int = 0
    processing: int = 0
    canceled: int = 0
    expired: int = 0
    results_url: str | None = None

    @property
    def done(self) -> bool:
        return self.status == "ended"

    @property
    def total(self) -> int:
        return self.succeeded + self.errored + self.processing + self.canceled + self.expired


def _count(counts: Any, key: str) -> int:
    value = counts.get(key) if isinstance(counts, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def progress(batch: Mapping[str, Any]) -> BatchProgress:
    """A Message Batch object (from create or retrieve) read. Raises :class:`ResponseParseError`
    for an object that is not one."""
    if batch.get("type") != "message_batch" or not isinstance(batch.get("id"), str):
        raise ResponseParseError("not a message_batch object")
    counts = batch.get("request_counts")
    url = batch.get("results_url")
    return BatchProgress(
        id=batch["id"],
        status=str(batch.get("processing_status")),
        succeeded=_count(counts, "succeeded"),
        errored=_count(counts, "errored"),
        processing=_count(counts, "processing"),
        canceled=_count(counts, "canceled"),
        expired=_count(counts, "expired"),
        results_url=url if isinstance(url, str) else None,
    )


@dataclass(frozen=True)
class ResultLine:
    custom_id: str
    #: ``succeeded``, ``errored``, ``canceled``, ``expired``, or ``unreadable`` for a line that
    #: is not a result (kept, so that nothing is silently lost)
    kind: str
    message: dict[str, Any] | None = None
    error: Any = None


def parse_results(lines: Iterable[bytes | str]) -> Iterator[ResultLine]:
    """The lines of a results file, read. Blank lines are skipped."""
    for raw in lines:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            yield ResultLine("", "unreadable", error=text[:200])
            continue
        result = line.get("result") if isinstance(line, Mapping) else None
        custom_id = line.get("custom_id") if isinstance(line, Mapping) else None
        kind = result.get("type") if isinstance(result, Mapping) else None
        if not isinstance(custom_id, str) or kind not in _KINDS or not isinstance(result, Mapping):
            yield ResultLine(custom_id if isinstance(custom_id, str) else "", "unreadable", error=text[:200])
            continue
        message = result.get("message")
        yield ResultLine(custom_id, str(kind), message=dict(message) if isinstance(message, Mapping) else None,
                         error=result.get("error"))


def price_result(adapter: ProviderAdapter, prices: PriceTable, params: Mapping[str, Any], message: Mapping[str, Any],
                 *, origin: str = "https://api.anthropic.com") -> Cost:
    """What a succeeded result cost: its usage at the model's batch prices (regular prices for
    a model without batch prices, which the cost then says: ``cost.batch`` is False)."""
    request = Request("POST", origin + "/v1/messages", Headers([("content-type", "application/json")]), _dumps(params))
    request.adapter = adapter
    call = request.call
    if call is None:
        return unknown_cost(NO_USAGE)
    outcome = adapter.parse_response(call, _dumps(message))
    if outcome.usage is None:
        return unknown_cost(NO_USAGE)
    return price_call(prices, call, outcome, outcome.usage, batch=True)


def _dumps(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
