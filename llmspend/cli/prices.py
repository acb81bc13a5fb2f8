"""``llmspend prices MODEL``: a model's price row and where it comes from."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..pricing.table import ModelPrice, PriceTable, coerce_prices
from ._table import format_table


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "prices",
        help="show a model's prices and their source",
        description="Show the price row llmspend uses for MODEL (USD per 1M tokens), its source page and "
        "the date it was checked. Dated snapshots resolve to their alias unless priced apart.",
    )
    parser.add_argument("model", nargs="?", help="model name, e.g. gpt-4o or claude-sonnet-4-5-20250929")
    parser.add_argument("--provider", help="price as this provider (gen_ai.provider.name, e.g. groq)")
    parser.add_argument("--file", help="a price file (llmspend or LiteLLM format) to use on top of the shipped table")
    parser.add_argument("--list", action="store_true", help="list every model in the table")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run, parser=parser)


_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "batch_input", "batch_output", "reasoning", "per_request")


def _rows(row: ModelPrice) -> list[tuple[str, str]]:
    out = [("provider", row.provider), ("model", row.model)]
    for name in _FIELDS:
        value = getattr(row, name)
        if value:
            unit = "USD per call" if name == "per_request" else "USD per 1M tokens"
            out.append((name, f"{value:g} {unit}"))
    if row.long_context is not None:
        lc = row.long_context
        out.append(("long context", f"above {lc.threshold:,} input tokens: input {lc.input:g}, output {lc.output:g}"))
    for tier, prices in row.tiers.items():
        out.append((f"tier {tier}", ", ".join(f"{k} {v:g}" for k, v in prices.items())))
    for geo, factor in row.geo_multipliers.items():
        out.append((f"geo {geo}", f"every token price x{factor:g} when inference ran there"))
    for speed, factor in row.speed_multipliers.items():
        out.append((f"speed {speed}", f"every token price x{factor:g} when the call ran at that speed"))
    for tool, fee in row.tool_fees.items():
        out.append((f"tool {tool}", f"{fee:g} USD per call" + (" (tokens only)" if not fee else "")))
    if row.tool_fees_source:
        out.append(("tool fees source", row.tool_fees_source))
    if row.context_window:
        out.append(("context window", f"{row.context_window:,} tokens"))
    if row.max_output_tokens:
        out.append(("max output", f"{row.max_output_tokens:,} tokens"))
    out.append(("source", row.source or "(none)"))
    out.append(("checked", row.checked or "(not checked against the source)"))
    return out


def run(args: argparse.Namespace) -> int:
    table: PriceTable = coerce_prices(args.file) if args.file else PriceTable.default()
    if args.list or not args.model:
        rows = sorted(table, key=lambda r: (r.provider, r.model))
        if args.provider:
            rows = [r for r in rows if r.provider == args.provider]
        if args.json:
            print(json.dumps([r.as_dict() for r in rows], indent=2))
        else:
            print(format_table(["provider", "model", "input", "output", "cache read"],
                               [(r.provider, r.model, f"{r.input:g}", f"{r.output:g}",
                                 "" if r.cache_read is None else f"{r.cache_read:g}") for r in rows], right=(2, 3, 4)))
            print("\nUSD per 1M tokens. `llmspend prices MODEL` shows a row in full with its source.")
        return 0
    row = table.lookup(args.model, provider=args.provider)
    if row is None:
        where = f" for provider {args.provider!r}" if args.provider else ""
        print(f"llmspend: no price for {args.model!r}{where}. Calls to it are reported with cost unknown "
              f"(llmspend.cost.status=unknown_model) until you add a price: wrap(client, prices={{...}}).")
        return 1
    if args.json:
        print(json.dumps(row.as_dict(), indent=2))
    else:
        if row.model != args.model:
            print(f"{args.model} resolves to {row.provider}/{row.model}\n")
        for key, value in _rows(row):
            print(f"{key:>15}  {value}")
    return 0
