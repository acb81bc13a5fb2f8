"""Demo section: Claude through the official ``anthropic`` SDK, prompt caching priced exactly.

Needs the ``llmspend-anthropic`` plugin; imported here, when the section runs, so the core
never depends on it. Without it the section says how to install it and returns.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..cli._table import format_table, usd
from .app import QUESTIONS, system_prompt

if TYPE_CHECKING:
    from . import DemoContext

TITLE = "Claude through the anthropic SDK: cache writes and reads priced exactly"

MODEL = "claude-haiku-4-5"


def run(ctx: DemoContext) -> dict[str, Any]:
    try:
        import anthropic

        plugin_testing = importlib.import_module("llmspend_anthropic.testing")
    except ImportError:
        ctx.print("(skipped: install the plugin to see this: pip install llmspend-anthropic, "
                  "or pip install -e plugins/llmspend-anthropic in a checkout)")
        return {"skipped": True}

    import llmspend
    from llmspend.pricing.cost import price_usage
    from llmspend.pricing.table import coerce_prices
    from llmspend.providers.base import Usage

    plugin_testing.FakeAnthropicAPI(ctx.server)  # the Messages API, on the demo's embedded server
    raw = anthropic.Anthropic(base_url=ctx.server.url, api_key="sk-ant-demo-not-a-real-key",
                              open_telemetry={"tracer_provider": ctx.tracer_provider})  # the SDK's own spans too
    client: Any = llmspend.wrap(raw, tracer_provider=ctx.tracer_provider)
    # A long system prompt marked for caching, as Anthropic's docs advise.
    system = [{"type": "text", "text": system_prompt(), "cache_control": {"type": "ephemeral"}}]
    questions = QUESTIONS[: 2 + 2 * ctx.rounds]
    for i, question in enumerate(questions):
        messages = [{"role": "user", "content": question}]
        if i % 3 == 2:
            with client.messages.stream(model=MODEL, max_tokens=200, system=system, messages=messages) as stream:
                stream.get_final_message()
        else:
            client.messages.create(model=MODEL, max_tokens=200, system=system, messages=messages)

    spans = ctx.spans()
    ours = [s for s in spans if s["attributes"].get("llmspend.endpoint") == "messages"]
    sdk = [s for s in spans if s["name"] == "anthropic.messages.create"]
    row = coerce_prices(None).lookup(MODEL, provider="anthropic")
    rows: list[tuple[object, ...]] = []
    total = uncached = 0.0
    for number, span in enumerate(ours, 1):
        a = span["attributes"]
        total += a.get("llmspend.cost.usd", 0.0)
        if row is not None:  # the same tokens with no prompt cache: all input at the input rate
            plain = Usage(input_tokens=a["gen_ai.usage.input_tokens"], output_tokens=a["gen_ai.usage.output_tokens"])
            uncached += price_usage(plain, row).total_usd or 0.0
        rows.append((number, "stream" if a.get("gen_ai.request.stream") else "create", a["gen_ai.usage.input_tokens"],
                     a.get("gen_ai.usage.cache_creation.input_tokens", 0), a.get("gen_ai.usage.cache_read.input_tokens", 0),
                     a["gen_ai.usage.output_tokens"], usd(a.get("llmspend.cost.usd"), 7)))
    rows.append(("total", "", "", "", "", "", usd(total, 7)))
    ctx.print(format_table(["call", "how", "input tok", "cache write", "cache read", "output tok", "cost"], rows,
                           right=(2, 3, 4, 5, 6)))
    ctx.print(f"\nWithout the prompt cache the same calls would cost {usd(uncached, 7)}; the first call's cache "
              f"write is charged at the write rate instead of the input rate, never both.")
    ctx.print(f"Each call is one trace: the SDK's own span ({len(sdk)} x anthropic.messages.create) with "
              f"llmspend's span (chat {MODEL}, carrying the cost) inside it.")
    return {"calls": len(ours), "sdk_spans": len(sdk), "total_usd": total, "uncached_usd": uncached}
