"""The OpenAI Batch API on the fake server: ``/v1/files`` and ``/v1/batches``.

Enough of it for the official SDK and ``llmspend batch``: upload a JSONL file
(``purpose=batch``), create a batch over it, poll it, download its output and error files.
Each request line is answered by the server's own endpoint for its ``url``. A batch moves one
status per poll (``validating``, ``in_progress`` with half its requests counted, then
``completed``); result lines come back in a shuffled order, as the real API gives no order.
Lines the endpoint answers with an HTTP error go to the error file; an input file that is
not valid JSONL, repeats a ``custom_id`` or names another endpoint fails the batch.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from .server import FakeLLMServer, FakeRequest, FakeResponse

__all__ = ["FakeBatchAPI"]


def _header(request: FakeRequest, name: str) -> str | None:
    for key, value in request.headers.items():
        if key.lower() == name:
            return value
    return None


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed"}


@dataclass
class _Batch:
    id: str
    endpoint: str
    input_file_id: str
    created_at: int
    metadata: Any
    polls: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    finalized: bool = False

    @property
    def total(self) -> int:
        return len(self.output) + len(self.failed)


class FakeBatchAPI:
    """See the module docstring. ``FakeLLMServer`` installs one as ``server.batch_api``."""

    def __init__(self, server: FakeLLMServer) -> None:
        self.server = server
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self._lock = threading.Lock()
        self._counter = 0
        server.route("POST", "/v1/files", self._upload)
        server.route_pattern("GET", r"/v1/files/(?P<file_id>[^/]+)/content", self._file_content)
        server.route_pattern("GET", r"/v1/files/(?P<file_id>[^/]+)", self._file)
        server.route("POST", "/v1/batches", self._create)
        server.route_pattern("GET", r"/v1/batches/(?P<batch_id>[^/]+)", self._retrieve)

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}-fake{self._counter:06d}"

    def _store(self, filename: str, purpose: str, content: bytes) -> _File:
        stored = _File(self._next_id("file"), filename, purpose, content, int(time.time()))
        self.files[stored.id] = stored
        return stored

    # -- files ---------------------------------------------------------------------------
    def _upload(self, request: FakeRequest) -> FakeResponse:
        ctype = _header(request, "content-type") or ""
        if not ctype.startswith("multipart/form-data"):
            return _error(400, "files must be uploaded as multipart/form-data")
        message = BytesParser(policy=HTTP).parsebytes(b"content-type: " + ctype.encode() + b"\r\n\r\n" + request.body)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = (part.get_filename(), payload)
        if "file" not in fields or "purpose" not in fields:
            return _error(400, "an upload needs a file and a purpose")
        filename, content = fields["file"]
        stored = self._store(filename or "upload.jsonl", fields["purpose"][1].decode(), content)
        return FakeResponse.json(stored.json())

    def _file(self, request: FakeRequest) -> FakeResponse:
        stored = self.files.get(request.params["file_id"])
        return FakeResponse.json(stored.json()) if stored else _error(404, "no such file")

    def _file_content(self, request: FakeRequest) -> FakeResponse:
        stored = self.files.get(request.params["file_id"])
        if stored is None:
            return _error(404, "no such file")
        return FakeResponse(200, stored.content, {"content-type": "application/octet-stream"})

    # -- batches -------------------------------------------------------------------------
    def _create(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        source = self.files.get(body.get("input_file_id", ""))
        if source is None:
            return _error(404, "no such input file")
        if body.get("completion_window") != "24h":
            return _error(400, "completion_window must be 24h")
        batch = _Batch(self._next_id("batch"), body["endpoint"], source.id, int(time.time()), body.get("metadata"))
        self._run(batch, source.content)
        self.batches[batch.id] = batch
        return FakeResponse.json(self._describe(batch))

    def _run(self, batch: _Batch, content: bytes) -> None:
        """Answer every line now; polls only reveal the result step by step."""
        seen: set[str] = set()
        lines = []
        for number, raw in enumerate(content.splitlines(), 1):
            try:
                line = json.loads(raw)
                custom_id, url, body = line["custom_id"], line["url"], line["body"]
            except (ValueError, KeyError, TypeError):
                batch.errors.append({"code": "invalid_json_line", "line": number, "message": "not a JSON request line"})
                continue
            if custom_id in seen:
                batch.errors.append({"code": "duplicate_custom_id", "line": number, "message": f"custom_id {custom_id!r} repeats"})
            if url != batch.endpoint or line.get("method", "POST") != "POST":
                batch.errors.append({"code": "mismatched_endpoint", "line": number, "message": f"{url} is not {batch.endpoint}"})
            seen.add(custom_id)
            lines.append((custom_id, url, body))
        if batch.errors:
            return
        for custom_id, url, body in lines:
            handler = self.server._handler_for(FakeRequest("POST", url, {}, b""))
            try:
                assert handler is not None, f"no endpoint {url}"
                response = handler(FakeRequest("POST", url, {"content-type": "application/json"}, json.dumps(body).encode()))
                status, payload = response.status, json.loads(response.body)  # type: ignore[arg-type]
            except Exception as exc:  # a body the endpoint cannot answer
                status, payload = 400, {"error": {"message": f"{type(exc).__name__}: {exc}", "type": "invalid_request_error"}}
            record = {
                "id": self._next_id("batch_req"),
                "custom_id": custom_id,
                "response": {"status_code": status, "request_id": self._next_id("req"), "body": payload},
                "error": None,
            }
            (batch.output if status == 200 else batch.failed).append(record)

    def _retrieve(self, request: FakeRequest) -> FakeResponse:
        batch = self.batches.get(request.params["batch_id"])
        if batch is None:
            return _error(404, "no such batch")
        batch.polls += 1
        return FakeResponse.json(self._describe(batch))

    def _describe(self, batch: _Batch) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": batch.id, "object": "batch", "endpoint": batch.endpoint, "input_file_id": batch.input_file_id,
            "completion_window": "24h", "created_at": batch.created_at, "metadata": batch.metadata,
            "errors": None, "output_file_id": None, "error_file_id": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
        }
        if batch.errors:
            data.update(status="failed", failed_at=batch.created_at, errors={"object": "list", "data": batch.errors})
            return data
        if batch.polls == 0:
            data["status"] = "validating"
            return data
        done = batch.polls >= 2
        share = 1.0 if done else 0.5
        data["request_counts"] = {"total": batch.total, "completed": int(len(batch.output) * share),
                                  "failed": int(len(batch.failed) * share)}
        data["in_progress_at"] = batch.created_at
        if not done:
            data["status"] = "in_progress"
            return data
        if not batch.finalized:
            batch.finalized = True
            shuffle = random.Random(batch.id).shuffle
            for records, attr in ((batch.output, "output_file_id"), (batch.failed, "error_file_id")):
                if records:
                    shuffled = list(records)
                    shuffle(shuffled)
                    content = "".join(json.dumps(r) + "\n" for r in shuffled).encode()
                    setattr(batch, attr, self._store(f"{batch.id}_{attr[:-8]}.jsonl", "batch_output", content).id)
        data.update(status="completed", completed_at=batch.created_at, finalizing_at=batch.created_at,
                    output_file_id=batch.output_file_id, error_file_id=batch.error_file_id)
        return data


def _error(status: int, message: str) -> FakeResponse:
    return FakeResponse.json({"error": {"message": message, "type": "invalid_request_error"}}, status)
