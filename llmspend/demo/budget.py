"""Demo section: what each feature and user costs (llmspend.track), and budgets that refuse a
call, or send it to a cheaper model, before anything is spent."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..budgets import spent
from ..cli._table import format_table, usd
from ..exceptions import BudgetExceededError
from ..ledger import MemoryLedger
from ..track import track
from .app import QUESTIONS, SupportApp

if TYPE_CHECKING:
    from . import DemoContext

TITLE = "Cost by feature and user (llmspend.track), and budgets that stop a call before it is sent"

CUSTOMERS = ("ana", "ben", "chloe")


def _by(spans: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = defaultdict(lambda: {"calls": 0, "usd": 0.0})
    for span in spans:
        a = span["attributes"]
        if span["name"].startswith("llmspend.track") or key not in a:
            continue
        rows[str(a[key])]["calls"] += 1
        rows[str(a[key])]["usd"] += a.get("llmspend.cost.usd", 0.0)
    return dict(rows)


def run(ctx: DemoContext) -> dict[str, Any]:
    tp = ctx.tracer_provider
    app = SupportApp(ctx.client())
    # The app knows nothing of llmspend; the call sites say what each call is for.
    reply = track(feature="support-reply", tracer_provider=tp)(app.answer)
    triage = track(feature="triage", tracer_provider=tp)(app.classify)
    digest = track(feature="daily-digest", tracer_provider=tp)(app.summarise)
    for i, question in enumerate(QUESTIONS):
        with track(user=CUSTOMERS[i % len(CUSTOMERS)], tracer_provider=tp):
            reply(question)
            triage(question)
    digest(QUESTIONS)
    spans = ctx.spans()
    by_feature, by_user = _by(spans, "llmspend.feature"), _by(spans, "llmspend.user")
    ctx.print(format_table(["feature", "calls", "cost"],
                           [(f, int(r["calls"]), usd(r["usd"])) for f, r in sorted(by_feature.items())], right=(1, 2)))
    ctx.print()
    ctx.print(format_table(["user", "calls", "cost"],
                           [(u, int(r["calls"]), usd(r["usd"])) for u, r in sorted(by_user.items())], right=(1, 2)))
    totals = [s for s in spans if s["name"] == "llmspend.track support-reply"]
    ctx.print(f"\nEach tracked call also has a parent span: {len(totals)} `llmspend.track support-reply` spans, "
              f"their llmspend.cost.total_usd adding up to "
              f"{usd(sum(s['attributes']['llmspend.cost.total_usd'] for s in totals))}.")

    # A budget that runs out: every call reserves the most it could cost, so the one that
    # would go over is refused before it leaves, and the server never sees it.
    ledger = MemoryLedger()
    limit = 0.001
    bulk = track(feature="bulk-rewrite", budget_usd=limit, period="day", ledger=ledger, tracer_provider=tp)
    before, sent, refusal = len(ctx.server.requests), 0, ""
    try:
        with bulk:
            for question in QUESTIONS:
                app.answer(question)
                sent += 1
    except BudgetExceededError as exc:
        refusal = str(exc)
    reached = len(ctx.server.requests) - before
    status = spent("bulk-rewrite", period="day", ledger=ledger)
    ctx.print(f"\nBudget ${limit} a day on feature bulk-rewrite: {sent} calls went through "
              f"({usd(status.spent_usd)} spent), then:\n  BudgetExceededError: {refusal}\n"
              f"  The server received {reached} requests: the refused call was never sent.")

    # The same with a fallback: calls that would not fit on gpt-4o go to gpt-4o-mini instead.
    fallback = track(feature="premium-reply", budget_usd=0.01, period="day", fallback_model="gpt-4o-mini",
                     ledger=ledger, tracer_provider=tp)
    models = []
    with fallback:
        for question in QUESTIONS[:5]:
            app.answer(question, model="gpt-4o")
            models.append(ctx.server.requests[-1].json()["model"])
    status = spent("premium-reply", period="day", ledger=ledger)
    ctx.print(f"\nBudget $0.01 a day on premium-reply with fallback_model='gpt-4o-mini': the app asked for "
              f"gpt-4o 5 times; sent as {', '.join(models)} ({usd(status.spent_usd)} of $0.01 spent).")
    return {
        "by_feature": by_feature,
        "by_user": by_user,
        "sent_before_refusal": sent,
        "requests_reached_server": reached,
        "refusal": refusal,
        "fallback_models": models,
    }
