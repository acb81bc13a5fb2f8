"""Demo section: a disk cache answers repeated calls at no cost, and the spans say what it saved."""

from __future__ import annotations

import tempfile
import time
from typing import TYPE_CHECKING, Any

from ..cli._table import format_table, usd
from .app import QUESTIONS, SupportApp

if TYPE_CHECKING:
    from . import DemoContext

TITLE = "A disk cache: repeated questions cost nothing and return at once"

# Added to every provider answer in this section, so the time a hit saves shows as well.
_PROVIDER_LATENCY_S = 0.02


def run(ctx: DemoContext) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    latency = ctx.server.latency_s
    ctx.server.latency_s = _PROVIDER_LATENCY_S
    try:
        with tempfile.TemporaryDirectory(prefix="llmspend-demo-cache-") as directory:
            client = ctx.client(cache=directory)
            app = SupportApp(client)
            for number in range(1, max(2, ctx.rounds) + 1):
                started = time.perf_counter()
                for i, question in enumerate(QUESTIONS):
                    if i % 3 == 2:
                        app.answer_streaming(question)
                    else:
                        app.answer(question)
                seconds = time.perf_counter() - started
                spans = [s["attributes"] for s in ctx.spans()[sum(r["calls"] for r in rounds):]]
                rounds.append({
                    "round": number,
                    "calls": len(spans),
                    "hits": sum(1 for a in spans if a.get("llmspend.cache.hit")),
                    "paid_usd": sum(a.get("llmspend.cost.usd", 0.0) for a in spans),
                    "saved_usd": sum(a.get("llmspend.cost.saved_usd", 0.0) for a in spans),
                    "seconds": seconds,
                })
            client.close()
    finally:
        ctx.server.latency_s = latency

    ctx.print(f"The support app answers its {len(QUESTIONS)} questions (temperature 0, some streamed) "
              f"each round, through wrap(client, cache=DIRECTORY); the provider takes {_PROVIDER_LATENCY_S * 1000:.0f} ms.\n")
    ctx.print(format_table(
        ["round", "calls", "cache hits", "paid", "saved by the cache", "time"],
        [(r["round"], r["calls"], r["hits"], usd(r["paid_usd"]), usd(r["saved_usd"]), f"{r['seconds'] * 1000:.0f} ms")
         for r in rounds],
        right=(0, 1, 2, 3, 4, 5),
    ))
    spans = ctx.spans()
    hit = next((s for s in spans if s["attributes"].get("llmspend.cache.hit")), None)
    if hit is not None:
        a = hit["attributes"]
        ctx.print(f"\nA hit's span: {hit['name']}  llmspend.cache.hit=true  llmspend.cost.usd={a.get('llmspend.cost.usd')}  "
                  f"llmspend.cost.saved_usd={usd(a.get('llmspend.cost.saved_usd'), 7)}")
    ctx.print("Repeated questions in round 1 are hits already. `llmspend cache stats --dir DIR` shows a cache's "
              "hits and savings across every process that uses it.")
    total_saved = sum(r["saved_usd"] for r in rounds)
    return {"rounds": rounds, "saved_usd": total_saved, "hits": sum(r["hits"] for r in rounds)}
