"""Images in prompts, through the public API with the official openai SDK: the budget stage
reserves for them by the provider's rule (it used to reserve the text only), refuses a call
whose images do not fit, counts them in the estimate of a response without usage; trimming
counts them against its budget and drops whole turns, never an image part. A URL image gets
the rule's upper bound; malformed image data never fails the call."""

from __future__ import annotations

from typing import Any

import openai
import pytest

import llmspend
from llmspend.ledger import MemoryLedger
from llmspend.pricing.table import PriceTable
from llmspend.testing import FakeLLMServer
from llmspend.tokens import count_chat_messages

from .conftest import API_KEY, Spans
from .images import chat_image, data_url, pillow_bytes, png_bytes

MODEL = "gpt-4o"  # tiles: 85 base + 170 per 512px tile
SQUARE = data_url(png_bytes(1024, 1024))  # the guide's worked example: 765 tokens at high detail
URL = "https://example.com/photo.jpg"


def rate(model: str = MODEL) -> float:
    row = PriceTable.default().lookup(model)
    assert row is not None
    return row.input / 1_000_000


def ask(text: str, *images: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text}, *images]}]


def client(server: FakeLLMServer, spans: Spans, mode: str = "sync", **options: Any) -> Any:
    cls = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
    return llmspend.wrap(cls(base_url=server.base_url, api_key=API_KEY, max_retries=0),
                         tracer_provider=spans.provider, retry=False, **options)


async def call(api: Any, mode: str, **kw: Any) -> Any:
    kw.setdefault("model", MODEL)
    kw.setdefault("max_tokens", 50)
    create = api.chat.completions.create
    return create(**kw) if mode == "sync" else await create(**kw)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def last_reservation(spans: Spans) -> float:
    held = [s for s in spans.finished if "llmspend.budget.reserved_usd" in (s.attributes or {})]
    return float((held[-1].attributes or {})["llmspend.budget.reserved_usd"])


async def reservation(api: Any, spans: Spans, mode: str, messages: list[dict[str, Any]], model: str = MODEL) -> float:
    with llmspend.track(feature="vision", budget_usd=100, period="day", ledger=MemoryLedger()):
        await call(api, mode, model=model, messages=messages)
    return last_reservation(spans)


@pytest.mark.parametrize(("image", "tokens"), [
    (chat_image(SQUARE, "high"), 765),  # size read from the PNG header
    (chat_image(SQUARE, "low"), 85),  # low detail: the base tokens, exact
    (chat_image(data_url(pillow_bytes(2048, 4096, "JPEG"), "image/jpeg"), "auto"), 1105),  # the guide's second example
    (chat_image(URL, "high"), 85 + 8 * 170),  # size unknown offline: the most tiles the rule can make
    (chat_image("data:image/png;base64,@@@@ broken", "high"), 85 + 8 * 170),  # malformed: the same bound
])
async def test_the_budget_reserves_for_images_by_the_rule(server: FakeLLMServer, spans: Spans, mode: str,
                                                          image: dict[str, Any], tokens: int) -> None:
    api = client(server, spans, mode, budget={"input_margin": 0})
    text_only = await reservation(api, spans, mode, ask("What is in this picture?"))
    with_image = await reservation(api, spans, mode, ask("What is in this picture?", image))
    assert with_image - text_only == pytest.approx(tokens * rate(), rel=1e-9)
    assert len(server.requests) == 2  # both were sent: a malformed image never fails the call


async def test_ten_high_detail_images_are_refused_where_their_text_fits(server: FakeLLMServer, spans: Spans, mode: str) -> None:
    api = client(server, spans, mode)
    images = [chat_image(URL, "high") for _ in range(10)]  # 10 x 1445 tokens
    limit = 0.01  # the text and 50 output tokens cost about $0.0006; the images alone about $0.036
    with llmspend.track(feature="vision", budget_usd=limit, period="day", ledger=MemoryLedger()):
        await call(api, mode, messages=ask("Compare these photos."))
        with pytest.raises(llmspend.BudgetExceededError) as refused:
            await call(api, mode, messages=ask("Compare these photos.", *images))
        await call(api, mode, messages=ask("Compare these photos.", *[chat_image(URL, "low") for _ in range(10)]))
    assert refused.value.requested_usd > 10 * 1445 * rate() > limit
    assert len(server.requests) == 2  # the refused call was never sent


async def test_the_responses_api_counts_input_images_not_their_base64(server: FakeLLMServer, spans: Spans, mode: str) -> None:
    api = client(server, spans, mode, budget={"input_margin": 0})
    big = data_url(pillow_bytes(1024, 1024, "PNG"))

    async def reserve(detail: str) -> float:
        content = [{"type": "input_text", "text": "Describe it."}, {"type": "input_image", "image_url": big, "detail": detail}]
        with llmspend.track(feature="vision", budget_usd=100, period="day", ledger=MemoryLedger()):
            kw: dict[str, Any] = {"model": MODEL, "max_output_tokens": 50, "input": [{"role": "user", "content": content}]}
            if mode == "sync":
                api.responses.create(**kw)
            else:
                await api.responses.create(**kw)
        return last_reservation(spans)

    high, low = await reserve("high"), await reserve("low")
    assert high - low == pytest.approx((765 - 85) * rate(), rel=1e-9)
    # the text around the image is counted, its base64 (thousands of characters) is not
    assert low < (85 + 100) * rate() + 50 * 10 / 1_000_000


async def test_a_response_without_usage_is_estimated_with_its_images(server: FakeLLMServer, spans: Spans, mode: str) -> None:
    api = client(server, spans, mode)
    messages = ask("What is this?", chat_image(SQUARE, "high"))
    await call(api, mode, messages=messages, extra_headers={"x-fake-usage": "omit"})
    attrs = [s for s in spans.finished if s.name.startswith("chat ")][-1].attributes or {}
    assert attrs["llmspend.cost.estimated"] is True
    text_only = count_chat_messages(ask("What is this?"), MODEL)
    assert attrs["gen_ai.usage.input_tokens"] == text_only + 765


# -- trimming -------------------------------------------------------------------------------------
def _conversation(image: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You compare product photos."}]
    for turn in range(6):
        messages += [{"role": "user", "content": [{"type": "text", "text": f"Photo {turn}:"}, image]},
                     {"role": "assistant", "content": f"Photo {turn} shows a parcel."}]
    return messages + [{"role": "user", "content": [{"type": "text", "text": "Which one is damaged?"}, image]}]


async def test_trimming_counts_images_against_its_budget(server: FakeLLMServer, spans: Spans, mode: str) -> None:
    image = chat_image(SQUARE, "high")  # 765 tokens each, 7 in the conversation
    messages = _conversation(image)
    result = llmspend.trim(messages, model=MODEL, budget=3000)
    assert result.tokens_before > 7 * 765 > 3000  # counted as text only, this prompt was ~150 tokens
    api = client(server, spans, mode, trim=3000)
    await call(api, mode, messages=messages)
    sent = server.requests[-1].json()["messages"]
    assert sent == result.messages and result.tokens_after <= 3000
    assert sent[0] == messages[0] and sent[-1] == messages[-1]  # the system prompt and the question stay
    kept_images = [p for m in sent if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image_url"]
    assert kept_images and all(p == image for p in kept_images)  # whole turns dropped, images never edited
    assert count_chat_messages(sent, MODEL) <= 3000
    attrs = [s for s in spans.finished if s.name.startswith("chat ")][-1].attributes or {}
    assert attrs["llmspend.trim.tokens_after"] == result.tokens_after
    # the fake provider counts images the same way: what it billed is what the trimmer sent
    assert attrs["gen_ai.usage.input_tokens"] == result.tokens_after


async def test_a_prompt_whose_images_alone_overflow_is_refused_before_sending(server: FakeLLMServer, spans: Spans, mode: str) -> None:
    api = client(server, spans, mode, trim=llmspend.TrimOptions(budget=1000, on_overflow="error"))
    question = ask("Which is damaged?", chat_image(URL, "high"))  # the latest turn is never dropped
    with pytest.raises(llmspend.PromptTooLongError) as info:
        await call(api, mode, messages=question)
    assert info.value.tokens > 1445 and server.requests == []
