"""Demo section: the exact cost of every call, by model, from the spans."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..cli._table import format_table, usd
from .app import QUESTIONS, SupportApp

if TYPE_CHECKING:
    from . import DemoContext

TITLE = "Exact cost of every call (chat, streaming, JSON mode, Responses API, embeddings)"


def run(ctx: DemoContext) -> dict[str, Any]:
    app = SupportApp(ctx.client())
    for _ in range(ctx.rounds):
        for i, question in enumerate(QUESTIONS):
            if i % 3 == 2:
                app.answer_streaming(question)
            else:
                app.answer(question)
            app.classify(question)
        app.summarise(QUESTIONS)
        app.embed(QUESTIONS)
    spans = ctx.spans()

    by_model: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"calls": 0, "input": 0, "cached": 0, "output": 0, "usd": 0.0, "unknown": 0}
    )
    for span in spans:
        a = span["attributes"]
        row = by_model[str(a.get("gen_ai.response.model") or a.get("gen_ai.request.model"))]
        row["calls"] += 1
        row["input"] += a.get("gen_ai.usage.input_tokens", 0)
        row["cached"] += a.get("gen_ai.usage.cache_read.input_tokens", 0)
        row["output"] += a.get("gen_ai.usage.output_tokens", 0)
        if "llmspend.cost.usd" in a:
            row["usd"] += a["llmspend.cost.usd"]
        else:
            row["unknown"] += 1
    total = sum(r["usd"] for r in by_model.values())
    rows: list[tuple[object, ...]] = [
        (m, r["calls"], r["input"], r["cached"], r["output"],
         usd(r["usd"]) if not r["unknown"] else f"unknown ({r['unknown']} calls unpriced)")
        for m, r in sorted(by_model.items())
    ]
    rows.append(("total", len(spans), "", "", "", usd(total)))
    ctx.print(format_table(["model", "calls", "input tok", "cached tok", "output tok", "cost"], rows, right=(1, 2, 3, 4, 5)))

    ctx.print(f"\nThe first {min(ctx.show_spans, len(spans))} of {len(spans)} spans:")
    for span in spans[: ctx.show_spans]:
        a = span["attributes"]
        ctx.print(
            f"  {span['name']:<28} in={a.get('gen_ai.usage.input_tokens', '-')} "
            f"cached={a.get('gen_ai.usage.cache_read.input_tokens', 0)} out={a.get('gen_ai.usage.output_tokens', '-')} "
            f"reasoning={a.get('gen_ai.usage.reasoning.output_tokens', 0)} cost={usd(a.get('llmspend.cost.usd'), 7)}"
            + (" (estimated)" if a.get("llmspend.cost.estimated") else "")
        )
    return {"calls": len(spans), "total_usd": total, "by_model": dict(by_model)}
