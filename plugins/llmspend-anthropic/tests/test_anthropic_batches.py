"""Message Batches: the plugin's half of a batch backend (request file, progress, results,
batch prices), driven through the official SDK against the fake API. The pipeline itself
passes batch requests through unmeasured until llmspend has a batch command."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from helpers_anthropic import MODEL, Spans, price, sync_client

import llmspend
from llmspend.pricing.table import ModelPrice, coerce_prices
from llmspend.testing import FakeLLMServer
from llmspend_anthropic import AnthropicAdapter
from llmspend_anthropic.batches import create_body, parse_results, price_result, progress
from llmspend_anthropic.testing import FakeAnthropicAPI

POLICY = [{"type": "text", "text": "Answer as the store's support desk. " * 150, "cache_control": {"type": "ephemeral"}}]


def _params(question: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "system": POLICY, "messages": [{"role": "user", "content": question}], **extra}


def test_create_body_checks_ids() -> None:
    body = create_body([("q-1", _params("a", stream=True)), ("q_2", _params("b"))])
    assert [r["custom_id"] for r in body["requests"]] == ["q-1", "q_2"]
    assert "stream" not in body["requests"][0]["params"]  # batch results are never streamed
    with pytest.raises(llmspend.ConfigError, match="'q 1'"):
        create_body([("q 1", _params("a"))])
    with pytest.raises(llmspend.ConfigError, match="appears twice"):
        create_body([("q", _params("a")), ("q", _params("b"))])


def test_batch_through_the_sdk_priced_at_half(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice) -> None:
    items = [("refund", _params("Refund time?")), ("gift", _params("Gift refunds?")), ("bad", _params("x", max_tokens=0))]
    client = sync_client(server, spans)
    created = client.messages.batches.create(requests=create_body(items)["requests"])  # type: ignore[arg-type]
    started = progress(created.model_dump(mode="json"))
    assert started.status == "in_progress" and started.processing == 3 and not started.done
    ended = progress(client.messages.batches.retrieve(created.id).model_dump(mode="json"))
    assert ended.done and (ended.succeeded, ended.errored, ended.total) == (2, 1, 3)
    assert spans.finished() == []  # batch endpoints pass through the pipeline unmeasured

    typed = {r.custom_id: r.result.type for r in client.messages.batches.results(created.id)}
    assert typed == {"refund": "succeeded", "gift": "succeeded", "bad": "errored"}
    assert ended.results_url is not None
    raw = httpx2.get(ended.results_url).content.splitlines()
    results = {line.custom_id: line for line in parse_results([*raw, b"", b"not json"])}
    assert results[""].kind == "unreadable"  # a broken line is kept, never dropped
    assert results["bad"].kind == "errored" and results["bad"].error["error"]["type"] == "invalid_request_error"

    prices = coerce_prices(None)
    by_id = dict(items)
    first, second = results["refund"].message, results["gift"].message
    assert first is not None and second is not None
    assert second["usage"]["cache_read_input_tokens"] == first["usage"]["cache_creation_input_tokens"] > 0
    for line in (results["refund"], results["gift"]):
        assert line.message is not None
        usage = line.message["usage"]
        cost = price_result(AnthropicAdapter(), prices, by_id[line.custom_id], line.message)
        regular = price(row, uncached=usage["input_tokens"], write_5m=usage["cache_creation_input_tokens"],
                        read=usage["cache_read_input_tokens"], output=usage["output_tokens"])
        assert cost.batch and cost.status == "ok"
        assert cost.total_usd == pytest.approx(regular / 2, rel=1e-12)  # half price, cache parts included
