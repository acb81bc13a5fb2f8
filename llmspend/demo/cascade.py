"""Demo section: a cascade learnt from logged calls, then serving the app for less.

The demo server plays two models of different quality on a set of routing questions (which
team handles a ticket): gpt-4o-mini knows most answers and is surer when right, gpt-4o knows
nearly all. A week of logged calls (both models, judged against the right team) becomes a JSONL
file, ``fit_plan`` learns a plan from it, and the same app then answers new questions through
``wrap(client, cascade=plan)`` for a fraction of what gpt-4o alone costs.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli._table import format_table, usd
from ..stages.cascade import conf_from_logprobs
from .app import SupportApp

if TYPE_CHECKING:
    from . import DemoContext

TITLE = "A cascade: gpt-4o-mini first, gpt-4o only when the answer looks unsure (learnt from logged calls)"

CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"
TEAMS = ("refunds", "shipping", "accounts", "billing", "privacy")
_PREFIX = "Which team handles ticket #"
#: share of questions each model knows, and how sure it sounds when it knows or guesses
_SKILL = {CHEAP: 0.75, STRONG: 0.97}


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def question(number: int) -> str:
    return f"{_PREFIX}{number}? Answer with the team name only."


def gold(number: int) -> str:
    return TEAMS[int(_unit("team", number) * len(TEAMS))]


def _number(messages: list[dict[str, Any]]) -> int | None:
    text = str(messages[-1].get("content") or "") if messages else ""
    if not text.startswith(_PREFIX):
        return None
    return int(text[len(_PREFIX):].split("?", 1)[0])


def _answer(model: str, messages: list[dict[str, Any]]) -> tuple[str, float] | None:
    """The demo server's routing answers: right on a model's share of questions, with a mean
    log-probability near 0 when right and lower (with overlap) when guessing."""
    number = _number(messages)
    if number is None or model not in _SKILL:
        return None
    right = _unit("hard", number) < _SKILL[model] or _unit(model, number, "lucky") < 0.1
    answer = gold(number) if right else TEAMS[(TEAMS.index(gold(number)) + 1 + number % 4) % len(TEAMS)]
    noise = _unit(model, number, "conf")
    logprob = -0.02 - 0.3 * noise if right else -0.2 - 1.5 * noise
    return answer, logprob


def _log_calls(ctx: DemoContext, numbers: range, path: Path) -> None:
    """What a week of traffic left behind: each question to both models, judged, priced."""
    client = ctx.client()
    system = SupportApp(client).system  # the prompt the app sends, so the logged costs are its costs
    with path.open("w") as fh:
        for number in numbers:
            for model in (CHEAP, STRONG):
                r = client.chat.completions.create(
                    model=model, logprobs=True, temperature=0, max_tokens=200,
                    messages=[{"role": "system", "content": system}, {"role": "user", "content": question(number)}],
                )
                choice = r.choices[0].model_dump()
                cost = ctx.spans()[-1]["attributes"]["llmspend.cost.usd"]
                fh.write(json.dumps({
                    "id": str(number), "query": question(number), "model": model,
                    "answer": choice["message"]["content"], "correct": choice["message"]["content"] == gold(number),
                    "cost_usd": cost, "conf_raw": conf_from_logprobs(choice),
                }) + "\n")
    ctx.exporter.clear()


def _serve(ctx: DemoContext, app: SupportApp, numbers: range, model: str) -> tuple[float, int, list[dict[str, Any]]]:
    right = 0
    for number in numbers:
        right += app.answer(question(number), model=model).strip() == gold(number)
    spans = ctx.spans()
    ctx.exporter.clear()
    return right / len(numbers), len(numbers), spans


def run(ctx: DemoContext) -> dict[str, Any]:
    try:
        import numpy  # noqa: F401  (fitting a plan: the cascade extra)
    except ImportError:
        ctx.print("(skipped: fitting a cascade needs numpy: pip install 'llmspend[cascade]')")
        return {"skipped": True}
    from ..cascade import fit_plan, load_table

    ctx.server.answer_with(_answer)
    with tempfile.TemporaryDirectory(prefix="llmspend-demo-cascade-") as tmp:
        logged = Path(tmp) / "calls.jsonl"
        _log_calls(ctx, range(1, 161), logged)
        plan = fit_plan(load_table(logged), max_accuracy_drop=0.02, max_depth=2, alias="support-cascade")
        plan.save(Path(tmp) / "plan.json")
        ctx.print(f"Logged 160 questions x 2 models; the fitted plan: {' -> '.join(plan.models)} "
                  f"(accept {plan.steps[0].model} when P(correct) >= {plan.steps[0].threshold:.2f})"
                  if len(plan.steps) > 1 else f"The fitted plan: {plan.models[0]} alone")

    new = range(1001, 1101)
    strong_acc, n, strong_spans = _serve(ctx, SupportApp(ctx.client()), new, STRONG)
    strong_usd = sum(s["attributes"].get("llmspend.cost.usd", 0.0) for s in strong_spans)
    cascade_acc, _, spans = _serve(ctx, SupportApp(ctx.client(cascade=plan)), new, "support-cascade")
    parents = [s for s in spans if s["name"].startswith("cascade ")]
    cascade_usd = sum(s["attributes"].get("llmspend.cascade.cost_usd", 0.0) for s in parents)
    accepted = sum(1 for s in parents if s["attributes"]["llmspend.cascade.accepted_step"] == 1)
    saved = 1 - cascade_usd / strong_usd if strong_usd else 0.0
    ctx.print(format_table(
        ["100 new questions", "accuracy", "cost", "calls"],
        [(f"{STRONG} for every question", f"{strong_acc:.0%}", usd(strong_usd), len(strong_spans)),
         ("cascade (plan above)", f"{cascade_acc:.0%}", usd(cascade_usd), len(spans) - len(parents))],
        right=(1, 2, 3),
    ))
    ctx.print(f"\nThe cascade answered {accepted} of {n} with {CHEAP} and sent {n - accepted} on to {STRONG}: "
              f"{saved:.0%} less spent. Each question has a `cascade support-cascade` span with the total "
              f"(llmspend.cascade.cost_usd) over one span per model called.")
    return {
        "plan": list(plan.models),
        "baseline_usd": strong_usd,
        "cascade_usd": cascade_usd,
        "saved": saved,
        "baseline_accuracy": strong_acc,
        "cascade_accuracy": cascade_acc,
        "accepted_cheap": accepted,
        "questions": n,
    }
