"""Offline bulk work through a provider's Batch API, at its batch prices (half price at OpenAI
and Anthropic, results within 24 hours).

A *batch backend* submits a JSONL file of requests, reports a job's progress and hands back
its results, each matched to its request by ``custom_id`` (results come in no set order).
The OpenAI backend (files + batches endpoints, through the official SDK) is built in; a
plugin adds another (Anthropic's Message Batches, say) under the ``llmspend.batch_backends``
entry-point group as a callable ``(base_url, api_key) -> BatchBackend``.

The input format is OpenAI's: one request per line,
``{"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..exceptions import BatchJobError, ConfigError, PluginError
from ..providers.base import ProviderAdapter
from ..providers.openai import OpenAIAdapter

__all__ = [
    "BatchRequest",
    "BatchResult",
    "JobStatus",
    "BatchBackend",
    "OpenAIBatchBackend",
    "BATCH_BACKENDS_GROUP",
    "batch_backends",
    "read_requests",
    "check_limits",
    "jsonl_lines",
]

BATCH_BACKENDS_GROUP = "llmspend.batch_backends"
#: statuses after which a job changes no more
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class BatchRequest:
    """One line of an input file."""

    custom_id: str
    url: str
    body: dict[str, Any]
    line: int


@dataclass(frozen=True)
class BatchResult:
    """One result line: the response (status and body) or an error, for one ``custom_id``."""

    custom_id: str
    status_code: int | None
    body: Any
    error: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class JobStatus:
    id: str
    status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    #: why the job failed as a whole (a bad input file), when it did
    errors: tuple[str, ...] = ()
    #: the backend's own ids of what the job reads and writes (input, output and error files)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class BatchBackend(Protocol):
    """A provider's Batch API. Implementations must not print or log the API key."""

    provider: str
    #: reads the request and response bodies of this API (for usage and prices)
    adapter: ProviderAdapter
    #: ``scheme://host[:port]`` of the API, which the adapter may use to name the provider
    origin: str

    def submit(self, requests: list[BatchRequest], source: Path) -> JobStatus:
        """Upload ``source`` (whose lines are ``requests``) and start a job over it."""
        ...

    def status(self, job_id: str) -> JobStatus: ...

    def results(self, job: JobStatus) -> Iterator[BatchResult]:
        """Every result of a finished job, successes and errors, in the provider's order."""
        ...


def jsonl_lines(text: str) -> list[str]:
    """The lines of JSONL ``text``. Lines end at ``\\n`` (``\\r\\n``) only: ``str.splitlines``
    would also break at U+2028, U+0085 or U+001E, which JSON lets stand raw inside a string."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def check_limits(requests: list[BatchRequest], source: Path, backend: Any) -> None:
    """Refuse a job over the provider's own limits (a backend's optional ``max_requests`` and
    ``max_bytes``) before anything is uploaded: the provider would reject it after the upload."""
    most = getattr(backend, "max_requests", None)
    if isinstance(most, int) and len(requests) > most:
        raise ConfigError(f"{source} has {len(requests):,} requests; the {backend.provider} Batch API takes at most "
                          f"{most:,} in one job: split the file")
    size, limit = source.stat().st_size, getattr(backend, "max_bytes", None)
    if isinstance(limit, int) and size > limit:
        raise ConfigError(f"{source} is {size:,} bytes; the {backend.provider} Batch API takes at most {limit:,} "
                          "in one job: split the file")


def read_requests(path: str | Path) -> list[BatchRequest]:
    """The requests of a JSONL input file, checked before anything is uploaded: every line a
    JSON request with a unique string ``custom_id``, ``method`` POST, one ``url`` for all, and
    an object ``body``. Raises :class:`~llmspend.exceptions.ConfigError` naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the batch input file {path}: {exc.strerror or exc}") from exc
    requests: list[BatchRequest] = []
    seen: set[str] = set()
    for number, raw in enumerate(jsonl_lines(text), 1):
        if not raw.strip():
            raise ConfigError(f"{path}:{number}: blank line (the Batch API accepts none)")
        try:
            line = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: not JSON ({exc})") from exc
        if not isinstance(line, dict):
            raise ConfigError(f"{path}:{number}: expected an object with custom_id, method, url and body")
        custom_id, url, body = line.get("custom_id"), line.get("url"), line.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            raise ConfigError(f"{path}:{number}: custom_id must be a non-empty string")
        if custom_id in seen:
            raise ConfigError(f"{path}:{number}: custom_id {custom_id!r} is used twice; results are matched by it")
        if line.get("method", "POST") != "POST":
            raise ConfigError(f"{path}:{number}: method must be POST")
        if not isinstance(url, str) or not url.startswith("/"):
            raise ConfigError(f"{path}:{number}: url must be an API path such as /v1/chat/completions")
        if requests and url != requests[0].url:
            raise ConfigError(f"{path}:{number}: url {url} differs from line 1's {requests[0].url}; one batch, one endpoint")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}:{number}: body must be an object (the request as it would be sent)")
        seen.add(custom_id)
        requests.append(BatchRequest(custom_id, url, body, number))
    if not requests:
        raise ConfigError(f"{path} has no requests")
    return requests


class OpenAIBatchBackend:
    """The OpenAI Batch API (and servers that copy it) through the official ``openai`` SDK."""

    provider = "openai"
    #: "A single batch may include up to 50,000 requests, and a batch input file can be up to
    #: 200 MB in size" (OpenAI, Batch API guide): a larger job is refused before the upload
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, client: Any = None) -> None:
        if client is None:
            try:
                import openai
            except ImportError as exc:  # pragma: no cover - a dev dependency
                raise ConfigError("llmspend batch needs the openai package: pip install openai") from exc
            try:
                client = openai.OpenAI(base_url=base_url, api_key=api_key)
            except openai.OpenAIError as exc:
                raise ConfigError("no API key: set OPENAI_API_KEY or pass --api-key") from exc
        self.client = client
        url = client.base_url
        self.origin: str = f"{url.scheme}://{url.netloc.decode() if isinstance(url.netloc, bytes) else url.netloc}"
        self.adapter: ProviderAdapter = OpenAIAdapter()  # names the provider from the host (api.groq.com is groq)

    def submit(self, requests: list[BatchRequest], source: Path) -> JobStatus:
        with _api_errors("uploading " + source.name), source.open("rb") as handle:
            uploaded = self.client.files.create(file=(source.name, handle), purpose="batch")
        with _api_errors("creating the batch"):
            job = self.client.batches.create(
                input_file_id=uploaded.id, endpoint=requests[0].url, completion_window="24h",
                metadata={"source": source.name[:512], "submitted_by": "llmspend"},
            )
        return self._status(job)

    def status(self, job_id: str) -> JobStatus:
        with _api_errors(f"reading batch {job_id}"):
            return self._status(self.client.batches.retrieve(job_id))

    def results(self, job: JobStatus) -> Iterator[BatchResult]:
        for kind in ("output", "error"):
            file_id = job.files.get(kind)
            if not file_id:
                continue
            with _api_errors(f"downloading the {kind} file {file_id}"):
                text = self.client.files.content(file_id).text
            for raw in jsonl_lines(text):
                if raw.strip():
                    yield _openai_result(json.loads(raw))

    @staticmethod
    def _status(job: Any) -> JobStatus:
        counts = job.request_counts
        errors = tuple(
            f"line {e.line}: {e.message}" if e.line is not None else str(e.message)
            for e in ((job.errors.data or []) if job.errors is not None else [])
        )
        files = {k: v for k, v in (("input", job.input_file_id), ("output", job.output_file_id),
                                   ("error", job.error_file_id)) if v}
        return JobStatus(
            id=job.id, status=job.status,
            total=counts.total if counts else 0, completed=counts.completed if counts else 0,
            failed=counts.failed if counts else 0, errors=errors, files=files,
        )


@contextmanager
def _api_errors(doing: str) -> Iterator[None]:
    """The SDK's errors as :class:`BatchJobError`, saying what was being done."""
    import openai

    try:
        yield
    except openai.APIStatusError as exc:
        raise BatchJobError(f"{doing}: the API answered {exc.status_code}: {exc.message}") from exc
    except openai.APIError as exc:
        raise BatchJobError(f"{doing}: {exc.message}") from exc


def _openai_result(line: dict[str, Any]) -> BatchResult:
    response = line.get("response") or {}
    return BatchResult(
        custom_id=str(line.get("custom_id")),
        status_code=response.get("status_code") if isinstance(response, dict) else None,
        body=response.get("body") if isinstance(response, dict) else None,
        error=line.get("error"),
    )


BackendFactory = Callable[[str | None, str | None], BatchBackend]


def batch_backends() -> dict[str, BackendFactory]:
    """Batch backends by provider name: the built-in ``openai`` one, then plugins'."""
    from ..plugins import _load

    found: dict[str, BackendFactory] = {"openai": OpenAIBatchBackend}
    for ep, obj in _load(BATCH_BACKENDS_GROUP):
        if not callable(obj):
            raise PluginError(f"batch backend plugin {ep.name!r} ({ep.value}) must be callable as (base_url, api_key)")
        found[ep.name] = obj
    return found
