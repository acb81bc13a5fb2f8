"""Message Batches through ``llmspend batch --provider anthropic``: submitted, followed and
collected through the official SDK against the fake API, results matched by custom_id in the
input's order, and priced at half (cache parts included). The pipeline passes batch
endpoints through unmeasured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers_anthropic import API_KEY, MODEL, Spans, price, sync_client

import llmspend
from llmspend.batching.jobs import BatchRequest, batch_backends, read_requests
from llmspend.batching.results import match_results, price_results
from llmspend.cli import main
from llmspend.pricing.table import ModelPrice, coerce_prices
from llmspend.testing import FakeLLMServer
from llmspend_anthropic.batches import AnthropicBatchBackend, create_body, job_status
from llmspend_anthropic.testing import FakeAnthropicAPI

POLICY = [{"type": "text", "text": "Answer as the store's support desk. " * 150, "cache_control": {"type": "ephemeral"}}]


def _body(question: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "system": POLICY, "messages": [{"role": "user", "content": question}], **extra}


def _line(custom_id: str, body: dict[str, Any]) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/messages", "body": body})


@pytest.fixture
def cli(server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LLMSPEND_STATE_DIR", str(tmp_path / "state"))

    def run(*args: str) -> int:
        command, *rest = args
        return main(["batch", command, *rest, "--provider", "anthropic", "--base-url", server.url,
                     "--api-key", API_KEY, "--poll-s", "0"])

    return run


def test_create_body_checks_each_line() -> None:
    body = create_body([BatchRequest("q-1", "/v1/messages", _body("a", stream=True), 1)])
    assert body == {"requests": [{"custom_id": "q-1", "params": _body("a")}]}  # never streamed
    with pytest.raises(llmspend.ConfigError, match="line 2: custom_id 'q 2'"):
        create_body([BatchRequest("q-1", "/v1/messages", _body("a"), 1), BatchRequest("q 2", "/v1/messages", _body("b"), 2)])
    with pytest.raises(llmspend.ConfigError, match="line 1: url /v1/chat/completions"):
        create_body([BatchRequest("q", "/v1/chat/completions", _body("a"), 1)])


@pytest.mark.parametrize(("api", "counts", "expected", "done"), [
    ("in_progress", {"processing": 3}, "in_progress", False),
    ("canceling", {"processing": 1, "canceled": 2}, "cancelling", False),
    ("ended", {"succeeded": 2, "errored": 1}, "completed", True),
    ("ended", {"canceled": 3}, "cancelled", True),
    ("ended", {"expired": 3}, "expired", True),
])
def test_job_status(api: str, counts: dict[str, int], expected: str, done: bool) -> None:
    status = job_status({"id": "msgbatch_1", "type": "message_batch", "processing_status": api, "request_counts": counts})
    assert (status.status, status.done, status.total) == (expected, done, 3)


def test_without_api_key_the_anthropic_key_is_used_never_the_openai_one(
    server: FakeLLMServer, api: FakeAnthropicAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMSPEND_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-travel")
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    source = tmp_path / "in.jsonl"
    source.write_text(_line("q", _body("Refund time?")) + "\n")
    assert main(["batch", "submit", str(source), "--provider", "anthropic", "--base-url", server.url, "--poll-s", "0"]) == 0
    sent = [r for r in server.requests if r.path.startswith("/v1/messages/batches")]
    assert sent and all("sk-openai-must-not-travel" not in str(r.headers) for r in sent)
    assert all(API_KEY in str(r.headers) for r in sent)  # the Anthropic key, as the SDK sends it


def test_registered_for_llmspend_batch() -> None:
    assert batch_backends()["anthropic"] is AnthropicBatchBackend


def test_submit_wait_collect(cli: Any, server: FakeLLMServer, api: FakeAnthropicAPI, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str], row: ModelPrice) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([_line("refund", _body("Refund time?")), _line("bad", _body("x", max_tokens=0)),
                                 _line("gift", _body("Gift refunds?"))]) + "\n")
    assert cli("submit", str(source), "--wait") == 0
    out = capsys.readouterr().out
    assert "submitted 3 requests to /v1/messages as batch msgbatch_" in out
    assert cli("collect", "--out", str(tmp_path / "out.jsonl")) == 0
    out = capsys.readouterr().out
    assert "2 succeeded, 1 failed, 0 without a result" in out
    assert "batch prices saved" in out and "(50%)" in out

    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(x["custom_id"], x["status"]) for x in lines] == [("refund", "succeeded"), ("bad", "failed"), ("gift", "succeeded")]
    assert lines[1]["error"]["error"]["type"] == "invalid_request_error"
    refund, gift = lines[0]["response"], lines[2]["response"]
    assert gift["usage"]["cache_read_input_tokens"] == refund["usage"]["cache_creation_input_tokens"] > 0

    # the same numbers the table printed, checked against the published rates
    backend = AnthropicBatchBackend(server.url, API_KEY)
    (job,) = json.loads((tmp_path / "state" / "batches.json").read_text())["jobs"]
    matched, stray = match_results(read_requests(source), backend.results(backend.status(job["id"])))
    assert stray == []
    (cost,) = price_results(matched, coerce_prices(None), backend.adapter, backend.origin).values()
    regular = sum(price(row, uncached=u["input_tokens"], write_5m=u["cache_creation_input_tokens"],
                        read=u["cache_read_input_tokens"], output=u["output_tokens"])
                  for u in (refund["usage"], gift["usage"]))
    assert (cost.succeeded, cost.failed) == (2, 1) and cost.batch_priced
    assert cost.regular_usd == pytest.approx(regular, rel=1e-12)
    assert cost.batch_usd == pytest.approx(regular / 2, rel=1e-12)  # half, cache parts included


def test_batch_endpoints_pass_through_the_pipeline_unmeasured(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = sync_client(server, spans)
    created = client.messages.batches.create(requests=[{"custom_id": "a", "params": _body("hi")}])  # type: ignore[list-item]
    assert client.messages.batches.retrieve(created.id).processing_status == "ended"
    assert [r.result.type for r in client.messages.batches.results(created.id)] == ["succeeded"]
    assert spans.finished() == []


def test_no_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(llmspend.ConfigError, match="ANTHROPIC_API_KEY or pass --api-key"):
        AnthropicBatchBackend("http://127.0.0.1:9", None)


def test_a_job_over_the_message_batches_limit_is_refused_before_the_upload(
        cli: Any, server: FakeLLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A Message Batch takes at most 100,000 requests: the job is refused here, nothing is sent.
    small = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    source = tmp_path / "big.jsonl"
    source.write_text("\n".join(_line(f"q{i}", small) for i in range(100_001)) + "\n")
    assert cli("submit", str(source)) == 2
    err = capsys.readouterr().err
    assert "100,001 requests" in err and "anthropic Batch API takes at most 100,000" in err
    assert not server.requests
