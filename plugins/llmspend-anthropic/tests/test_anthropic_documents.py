"""Documents in Messages requests, through the official anthropic SDK: a plain-text document
(``source.type`` ``text``) and a custom-content one (``content``) are text the model reads and
Anthropic bills as input, so the budget reserves for them; a PDF is not counted offline
(documented)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers_anthropic import MODEL, Spans, reserved_usd, sync_client

import llmspend
from llmspend.ledger import MemoryLedger
from llmspend.pricing.table import ModelPrice
from llmspend.testing import FakeLLMServer
from llmspend.tokens import count_text
from llmspend_anthropic.testing import FakeAnthropicAPI

POLICY = " ".join(f"Clause {i}: refunds for order class {i} are paid within {i % 9 + 2} working days." for i in range(400))
QUESTION = {"type": "text", "text": "How long does a refund take?"}
TEXT_DOCUMENT = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": POLICY}}
CONTENT_DOCUMENT = {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": POLICY}]}}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("document", [TEXT_DOCUMENT, CONTENT_DOCUMENT], ids=["text", "content"])
async def test_the_budget_reserves_for_text_documents(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans,
                                                      row: ModelPrice, mode: str, document: dict[str, Any]) -> None:
    without = await reserved_usd(server, spans, mode, [QUESTION])
    with_document = await reserved_usd(server, spans, mode, [document, QUESTION])
    tokens = count_text(POLICY, MODEL)
    assert tokens > 4000
    assert with_document - without == pytest.approx(tokens * row.input / 1e6, abs=3 * row.input / 1e6)


def test_a_text_document_over_the_budget_is_refused_before_sending(server: FakeLLMServer, api: FakeAnthropicAPI,
                                                                   spans: Spans, row: ModelPrice) -> None:
    client = sync_client(server, spans)
    budget = 3000 * row.input / 1e6 + 50 * row.output / 1e6  # room for a question, not for the policy
    with llmspend.track(feature="docs", budget_usd=budget, period="day", ledger=MemoryLedger()):
        with pytest.raises(llmspend.BudgetExceededError):
            client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": [TEXT_DOCUMENT, QUESTION]}])
    assert server.requests == []
