"""Images in Messages requests, through the official anthropic SDK: the budget reserves for
them by Anthropic's published rule (width x height / 750 after its resize), in a message and in
a tool result; a URL image gets the rule's upper bound; malformed base64 never fails the call;
trimming counts images against its budget and never edits an image block."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from helpers_anthropic import MODEL, Spans, reserved_usd, sync_client
from PIL import Image

import llmspend
from llmspend.ledger import MemoryLedger
from llmspend.pricing.table import ModelPrice
from llmspend.testing import FakeLLMServer
from llmspend_anthropic.testing import FakeAnthropicAPI


def png(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def image(data: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


URL_IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.com/parcel.jpg"}}
TEXT = {"type": "text", "text": "Is this parcel damaged?"}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("block", "tokens"), [
    (image(png(1000, 1000)), 1334),  # the guide's worked example
    (image(png(200, 200)), 54),
    (image(png(3000, 1500)), 1640),  # resized: no more than the largest unresized image
    ({"type": "tool_result", "tool_use_id": "toolu_1", "content": [image(png(1000, 1000))]}, 1334),
    (URL_IMAGE, 1640),  # size unknown offline: the rule's upper bound
    (image("@@@ not base64 @@@"), 1640),  # malformed: the same bound, and the call goes on
])
async def test_the_budget_reserves_for_images(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans, row: ModelPrice,
                                              mode: str, block: dict[str, Any], tokens: int) -> None:
    # the same request without the image (a tool result keeps its block, with one word of text)
    without = [TEXT, {**block, "content": "ok"}] if block["type"] == "tool_result" else [TEXT]
    text_only = await reserved_usd(server, spans, mode, without)
    with_image = await reserved_usd(server, spans, mode, [TEXT, block])
    assert with_image - text_only == pytest.approx(tokens * row.input / 1_000_000, rel=1e-6, abs=2 * row.input / 1e6)
    assert len(server.requests) >= 2


def test_images_over_the_budget_are_refused_before_sending(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    client = sync_client(server, spans)
    content = [TEXT, *[URL_IMAGE] * 20]  # 20 x 1640 tokens
    with llmspend.track(feature="vision", budget_usd=0.01, period="day", ledger=MemoryLedger()):
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": [TEXT]}])
        with pytest.raises(llmspend.BudgetExceededError):
            client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": content}])
    assert len(server.requests) == 1


def test_trimming_counts_images_and_keeps_them_whole(server: FakeLLMServer, api: FakeAnthropicAPI, spans: Spans) -> None:
    photo = image(png(1000, 1000))  # 1334 tokens each
    turns: list[dict[str, Any]] = []
    for i in range(5):
        turns += [{"role": "user", "content": [{"type": "text", "text": f"Photo {i}"}, photo]},
                  {"role": "assistant", "content": f"Photo {i} shows a parcel."}]
    turns.append({"role": "user", "content": [TEXT, photo]})
    expected = llmspend.trim(turns, model=MODEL, budget=4000)
    assert expected.tokens_before > 6 * 1334 and expected.tokens_after <= 4000
    sync_client(server, spans, trim=4000).messages.create(model=MODEL, max_tokens=50, messages=turns)
    sent = json.loads(server.requests[-1].body)["messages"]
    assert sent == expected.messages and sent[-1] == turns[-1] and len(sent) < len(turns)
    assert all(block == photo for m in sent if isinstance(m["content"], list) for block in m["content"] if block["type"] == "image")
