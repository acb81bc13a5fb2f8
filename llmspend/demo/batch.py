"""Demo section: ticket triage with a few-shot prompt, asked one by one and then batched."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..cli._table import format_table, usd
from .app import QUESTIONS

if TYPE_CHECKING:
    from . import DemoContext

TITLE = "Query batching: concurrent questions behind one few-shot prompt, asked as one request"

_EXAMPLES = [
    ("I want my money back for order 2231.", "refunds"),
    ("The parcel has not arrived after a week.", "shipping"),
    ("I cannot sign in since yesterday.", "accounts"),
    ("Please send me last month's invoice.", "billing"),
    ("You charged my card twice for one order.", "billing"),
    ("Can you deliver to a post office box?", "shipping"),
    ("How do I close my account for good?", "accounts"),
    ("The refund I was promised never came.", "refunds"),
]
_SYSTEM = ("Classify each support ticket into one topic: refunds, shipping, accounts or billing. "
           "Answer with the topic only.")


def _request(question: str) -> dict[str, Any]:
    messages: list[dict[str, str]] = [{"role": "system", "content": _SYSTEM}]
    for ticket, topic in _EXAMPLES:
        messages += [{"role": "user", "content": ticket}, {"role": "assistant", "content": topic}]
    messages.append({"role": "user", "content": question})
    return {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 60, "messages": messages}


async def _ask_all(client: Any, questions: list[str]) -> None:
    try:
        await asyncio.gather(*(client.chat.completions.create(**_request(q)) for q in questions))
    finally:
        await client.close()


def _totals(spans: list[dict[str, Any]]) -> dict[str, Any]:
    calls = [s for s in spans if not s["name"].startswith("batch ")]
    merged = [s for s in spans if s["name"].startswith("batch ")]
    alone = [s for s in calls if "llmspend.batch.size" not in s["attributes"] or "llmspend.batch.resent" in s["attributes"]]
    return {
        "calls": len(calls),
        "requests": len(merged) + len(alone),
        "input_tokens": sum(s["attributes"].get("gen_ai.usage.input_tokens", 0) for s in calls),
        "usd": sum(s["attributes"].get("llmspend.cost.usd", 0.0) for s in calls),
        "saved_usd": sum(s["attributes"].get("llmspend.cost.saved_usd", 0.0) for s in calls),
    }


def run(ctx: DemoContext) -> dict[str, Any]:
    questions = list(dict.fromkeys(QUESTIONS))[:8]
    asyncio.run(_ask_all(ctx.async_client(), questions))
    before = len(ctx.spans())
    asyncio.run(_ask_all(ctx.async_client(batch={"window_ms": 50, "max_size": 4}), questions))
    spans = ctx.spans()
    alone, batched = _totals(spans[:before]), _totals(spans[before:])

    rows = [
        ("one by one", alone["calls"], alone["requests"], alone["input_tokens"], usd(alone["usd"])),
        ("batched (batch=True)", batched["calls"], batched["requests"], batched["input_tokens"], usd(batched["usd"])),
    ]
    ctx.print(format_table(["", "calls", "requests sent", "input tok", "cost"], rows, right=(1, 2, 3, 4)))
    if alone["usd"]:
        ctx.print(f"\n{len(questions)} answers for {batched['input_tokens'] / alone['input_tokens']:.0%} of the input tokens "
                  f"and {batched['usd'] / alone['usd']:.0%} of the cost (output is not shared): the "
                  f"{len(_EXAMPLES)}-example prompt is paid once per request of up to 4 questions, and each caller's "
                  f"span carries its share (estimated saving on the spans: {usd(batched['saved_usd'])}).")
    merged = next((s for s in spans[before:] if s["name"].startswith("batch ")), None)
    if merged is not None:
        a = merged["attributes"]
        ctx.print(f"A merged request's span: {merged['name']} asked {a['llmspend.batch.size']} questions, "
                  f"{a.get('llmspend.batch.input_tokens', '-')} input tokens, linked to its "
                  f"{len(merged['span'].links)} callers' spans.")
    return {"alone": alone, "batched": batched}
