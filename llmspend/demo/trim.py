"""Demo section: a long support conversation, sent whole and trimmed to a budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..cli._table import format_table, usd
from ..stages.trim import TrimOptions
from .app import QUESTIONS, SupportApp

if TYPE_CHECKING:
    from . import DemoContext

TITLE = "Trimming a long conversation to a token budget (trim=TrimOptions(budget=2500))"

BUDGET = 2_500
TURNS = 40

# A tracking log the customer pastes twice, as people do.
_LOG = "\n\n".join(
    f"Order 1182, event {n}:   parcel scanned at depot {n + 3}, status in transit,   next stop depot {n + 4}."
    for n in range(8)
)


def customer_turns(count: int = TURNS) -> list[str]:
    turns = []
    for n in range(count):
        text = QUESTIONS[n % len(QUESTIONS)]
        if n == 3:
            text = f"Here is the tracking log:\n\n{_LOG}\n\nSorry, pasting it again:\n\n{_LOG}\n\n\n\n{text}"
        turns.append(text)
    return turns


def converse(client: Any, turns: list[str]) -> None:
    """The sample app holding one conversation: every call sends the whole history so far."""
    app = SupportApp(client)
    history: list[dict[str, Any]] = []
    for text in turns:
        history.append({"role": "user", "content": text})
        history.append({"role": "assistant", "content": app.chat(history)})


def _totals(spans: list[dict[str, Any]]) -> dict[str, Any]:
    attrs = [s["attributes"] for s in spans]
    return {
        "calls": len(attrs),
        "input": sum(a.get("gen_ai.usage.input_tokens", 0) for a in attrs),
        "cached": sum(a.get("gen_ai.usage.cache_read.input_tokens", 0) for a in attrs),
        "usd": sum(a.get("llmspend.cost.usd", 0.0) for a in attrs),
        "estimated_saving": sum(a.get("llmspend.cost.saved_usd", 0.0) for a in attrs),
        "last_before": attrs[-1].get("llmspend.trim.tokens_before") if attrs else None,
        "last_after": attrs[-1].get("llmspend.trim.tokens_after") if attrs else None,
    }


def run(ctx: DemoContext) -> dict[str, Any]:
    turns = customer_turns()
    converse(ctx.client(), turns)
    whole = _totals(ctx.spans())
    ctx.exporter.clear()
    converse(ctx.client(trim=TrimOptions(budget=BUDGET)), turns)
    spans = ctx.spans()
    trimmed = _totals(spans)

    ctx.print(f"The sample app holds a {TURNS}-turn support chat (a 1,364-token system prompt, a tracking log "
              "pasted twice), sending the whole history with every call.\n")
    rows: list[tuple[object, ...]] = [
        (label, t["calls"], t["input"], t["cached"], usd(t["usd"]))
        for label, t in (("whole history", whole), (f"trim, budget {BUDGET}", trimmed))
    ]
    ctx.print(format_table(["run", "calls", "input tok", "cached tok", "cost"], rows, right=(1, 2, 3, 4)))
    saved = whole["usd"] - trimmed["usd"]
    share = saved / whole["usd"] if whole["usd"] else 0.0
    ctx.print(f"\nMeasured: {usd(saved)} less ({share:.0%}), input tokens {whole['input']:,} -> {trimmed['input']:,}. "
              f"The last call: {trimmed['last_before']:,} tokens -> {trimmed['last_after']:,}.")
    ctx.print(f"The trim stage's own estimate (llmspend.cost.saved_usd, tokens cut x the uncached input price): "
              f"{usd(trimmed['estimated_saving'])}; it cannot know which of the cut tokens the provider would have "
              "served from its prompt cache, so it reads high when the untrimmed prompt would have hit the cache.")
    ctx.print("\nA few of the trimmed calls:")
    for span in spans[4::9]:
        a = span["attributes"]
        saved_usd = a.get("llmspend.cost.saved_usd")
        ctx.print(f"  {a['llmspend.trim.tokens_before']:>6,} -> {a['llmspend.trim.tokens_after']:>5,} tokens"
                  f"  cached={a.get('gen_ai.usage.cache_read.input_tokens', 0):>5,}"
                  f"  dropped={a.get('llmspend.trim.dropped_messages', 0):>3} messages"
                  f"  estimated saving {usd(saved_usd, 7) if saved_usd else 'none'}")
    return {"whole": whole, "trimmed": trimmed, "budget": BUDGET}
