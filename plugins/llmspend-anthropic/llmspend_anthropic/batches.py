"""Anthropic Message Batches (half price, results within 24 hours) for ``llmspend batch``.

    llmspend batch submit requests.jsonl --provider anthropic --wait
    llmspend batch collect --out results.jsonl

The input file is the one ``llmspend batch`` reads for every provider: one
``{"custom_id", "method": "POST", "url": "/v1/messages", "body": <a Messages request>}`` per
line. The API itself::

    POST /v1/messages/batches           {"requests": [{"custom_id", "params": <Messages body>}]}
    GET  /v1/messages/batches/{id}      processing_status, request_counts, results_url
    GET  {results_url}                  JSONL, one line per request, in no set order:
                                        {"custom_id", "result": {"type": "succeeded", "message": {...}}
                                                                | {"type": "errored", "error": {...}}
                                                                | {"type": "canceled"} | {"type": "expired"}}

A succeeded result is a Message whose usage (cache reads and writes included) ``llmspend
batch collect`` prices at the model's batch rates. The decisions are pure functions
(:func:`create_body`, :func:`job_status`, :func:`batch_result`); :class:`AnthropicBatchBackend`
drives them through the official SDK. Registered under the ``llmspend.batch_backends`` entry
point as ``anthropic``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmspend.batching.jobs import BatchRequest, BatchResult, JobStatus
from llmspend.exceptions import BatchJobError, ConfigError
from llmspend.providers.base import ProviderAdapter

from .adapter import MESSAGES_PATH, AnthropicAdapter

__all__ = ["AnthropicBatchBackend", "create_body", "job_status", "batch_result"]

_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


# -- decisions (pure) ----------------------------------------------------------------------
def create_body(requests: Iterable[BatchRequest]) -> dict[str, Any]:
    """The body that creates a batch of ``requests``. A batch result is never streamed, so
    ``stream`` is dropped. Raises :class:`ConfigError` naming the line for a request to
    another endpoint or a ``custom_id`` the API would refuse (1 to 64 of ``a-z A-Z 0-9 _ -``)."""
    items: list[dict[str, Any]] = []
    for request in requests:
        where = f"line {request.line}"
        if not request.url.rstrip("/").endswith(MESSAGES_PATH):
            raise ConfigError(f"{where}: url {request.url}: Message Batches take Messages requests (/v1/messages)")
        if not _CUSTOM_ID.fullmatch(request.custom_id):
            raise ConfigError(f"{where}: custom_id {request.custom_id!r}: Message Batches want 1 to 64 letters, "
                              "digits, '_' or '-'")
        items.append({"custom_id": request.custom_id,
                      "params": {k: v for k, v in request.body.items() if k != "stream"}})
    return {"requests": items}


def _count(counts: Any, key: str) -> int:
    value = counts.get(key) if isinstance(counts, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def job_status(batch: Mapping[str, Any]) -> JobStatus:
    """A Message Batch object as ``llmspend batch`` reports jobs. ``ended`` is ``completed``
    (per-request errors are counted as failed), or ``cancelled`` / ``expired`` when every
    request was; ``canceling`` is ``cancelling``, still under way."""
    counts = batch.get("request_counts")
    succeeded, errored = _count(counts, "succeeded"), _count(counts, "errored")
    canceled, expired, processing = _count(counts, "canceled"), _count(counts, "expired"), _count(counts, "processing")
    done = succeeded + errored + canceled + expired
    status = {"ended": "completed", "canceling": "cancelling"}.get(str(batch.get("processing_status")),
                                                                   str(batch.get("processing_status")))
    if status == "completed" and done and canceled == done:
        status = "cancelled"
    elif status == "completed" and done and expired == done:
        status = "expired"
    url = batch.get("results_url")
    return JobStatus(
        id=str(batch.get("id")), status=status, total=done + processing, completed=done,
        failed=errored + canceled + expired, files={"results": url} if isinstance(url, str) else {},
    )


def batch_result(line: Mapping[str, Any]) -> BatchResult:
    """One results line as ``llmspend batch`` matches and prices it: a succeeded Message with
    status 200, anything else with its error (``{"type": "canceled"}`` for one with none)."""
    result = line.get("result")
    result = result if isinstance(result, Mapping) else {}
    kind = result.get("type")
    custom_id = str(line.get("custom_id"))
    if kind == "succeeded" and isinstance(result.get("message"), Mapping):
        return BatchResult(custom_id, 200, dict(result["message"]))
    error = result.get("error") or {"type": kind if isinstance(kind, str) else "unreadable"}
    return BatchResult(custom_id, None, None, error=error)


# -- the backend ---------------------------------------------------------------------------
class AnthropicBatchBackend:
    """Message Batches through the official ``anthropic`` SDK (its own credentials:
    ``api_key``, else ``ANTHROPIC_API_KEY``)."""

    provider = "anthropic"
    #: "A Message Batch is limited to either 100,000 Message requests or 256 MB in size,
    #: whichever is reached first" (Anthropic, Batch processing): refused before the upload
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, client: Any = None) -> None:
        if client is None:
            import anthropic

            key = api_key or os.environ.get("ANTHROPIC_API_KEY")
            if not key:
                raise ConfigError("no Anthropic API key: set ANTHROPIC_API_KEY or pass --api-key")
            client = anthropic.Anthropic(base_url=base_url, api_key=key)
        self.client = client
        url = client.base_url
        self.origin: str = f"{url.scheme}://{url.netloc.decode() if isinstance(url.netloc, bytes) else url.netloc}"
        self.adapter: ProviderAdapter = AnthropicAdapter()

    def submit(self, requests: list[BatchRequest], source: Path) -> JobStatus:
        body = create_body(requests)
        with _api_errors(f"creating the batch from {source.name}"):
            return job_status(self.client.messages.batches.create(**body).model_dump(mode="json"))

    def status(self, job_id: str) -> JobStatus:
        with _api_errors(f"reading batch {job_id}"):
            return job_status(self.client.messages.batches.retrieve(job_id).model_dump(mode="json"))

    def results(self, job: JobStatus) -> Iterator[BatchResult]:
        with _api_errors(f"downloading the results of {job.id}"):
            for item in self.client.messages.batches.results(job.id):
                yield batch_result(item.model_dump(mode="json"))


@contextmanager
def _api_errors(doing: str) -> Iterator[None]:
    """The SDK's errors as :class:`BatchJobError`, saying what was being done."""
    import anthropic

    try:
        yield
    except anthropic.APIStatusError as exc:
        raise BatchJobError(f"{doing}: the API answered {exc.status_code}: {exc.message}") from exc
    except anthropic.APIError as exc:
        raise BatchJobError(f"{doing}: {exc.message}") from exc
