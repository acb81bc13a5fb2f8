"""Import a price file in LiteLLM's format (``model_prices_and_context_window.json``).

LiteLLM keeps prices in USD per token, one flat object per model name::

    {"claude-sonnet-4-5": {"litellm_provider": "anthropic", "input_cost_per_token": 3e-06, ...}}

This module turns such a file into a :class:`~llmspend.pricing.table.PriceTable` (USD per million
tokens). Only what llmspend prices is read: token prices, cache reads and writes, batch prices,
reasoning tokens, per-request fees, long-context prices, ``flex``/``priority`` tiers and the
token limits. Entries without both an input and an output price (image, audio and other
non-token models) are skipped, and so is the ``sample_spec`` entry that documents the format.

    >>> table = from_litellm({"groq/llama-3.1-8b-instant": {
    ...     "litellm_provider": "groq", "input_cost_per_token": 5e-08, "output_cost_per_token": 8e-08}})
    >>> row = table.lookup("llama-3.1-8b-instant", provider="groq")
    >>> (row.model, row.input, row.output)
    ('llama-3.1-8b-instant', 0.05, 0.08)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..exceptions import ConfigError
from .table import ModelPrice, PriceTable, _row

__all__ = ["from_litellm", "PROVIDER_NAMES"]

#: LiteLLM provider names that differ from the ``gen_ai.provider.name`` value llmspend uses.
#: Providers not listed keep the name LiteLLM gives them.
PROVIDER_NAMES: Mapping[str, str] = {
    "gemini": "gcp.gemini",
    "vertex_ai-language-models": "gcp.gemini",
    "mistral": "mistral_ai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}

_PER_MILLION = 1_000_000
_SKIP = frozenset({"sample_spec"})

# LiteLLM field -> llmspend field; all are USD per token except per-request fees.
_TOKEN_FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "input_cost_per_token_batches": "batch_input",
    "output_cost_per_token_batches": "batch_output",
    "output_cost_per_reasoning_token": "reasoning",
}
_TIER_FIELDS = {
    "input_cost_per_token_{tier}": "input",
    "output_cost_per_token_{tier}": "output",
    "cache_read_input_token_cost_{tier}": "cache_read",
}
_TIERS = ("flex", "priority")
# e.g. input_cost_per_token_above_200k_tokens, cache_read_input_token_cost_above_128k_tokens
_ABOVE = re.compile(
    r"^(?P<field>input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)"
    r"_above_(?P<k>\d+)k_tokens$"
)
_ABOVE_FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
}


def _number(entry: Mapping[str, Any], key: str, name: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"LiteLLM price entry {name!r}: {key} must be a number, got {value!r}")
    return float(value)


def _per_million(value: float) -> float:
    # Round away the binary noise of per-token floats (3e-06 * 1e6 = 2.9999999999999996).
    return round(value * _PER_MILLION, 9)


def _token_limit(entry: Mapping[str, Any], key: str) -> int | None:
    # Limits are informational; LiteLLM's file has entries with 0 or strings here, which we drop.
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return int(value)


def _model_name(key: str, litellm_provider: str, provider: str) -> str:
    """``key`` without a leading ``provider/`` segment naming the entry's own provider."""
    head, sep, rest = key.partition("/")
    if sep and rest and head in {litellm_provider, provider, litellm_provider.split("-", 1)[0]}:
        return rest
    return key


def _convert(name: str, entry: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """(provider, model, row in llmspend's layout), or None for an entry without token prices."""
    input_cost = _number(entry, "input_cost_per_token", name)
    output_cost = _number(entry, "output_cost_per_token", name)
    if input_cost is None or output_cost is None:
        return None
    litellm_provider = entry.get("litellm_provider")
    if not isinstance(litellm_provider, str) or not litellm_provider:
        litellm_provider = "custom"
    provider = PROVIDER_NAMES.get(litellm_provider, litellm_provider)

    row: dict[str, Any] = {}
    for key, field in _TOKEN_FIELDS.items():
        value = _number(entry, key, name)
        if value is not None:
            row[field] = _per_million(value)
    per_request = _number(entry, "input_cost_per_request", name)
    if per_request:
        row["per_request"] = per_request

    # Long-context prices: LiteLLM names one field per threshold; llmspend keeps one threshold,
    # the lowest one that has an input price.
    above: dict[int, dict[str, float]] = {}
    for key in entry:
        match = _ABOVE.match(key)
        if match:
            value = _number(entry, key, name)
            if value is not None:
                above.setdefault(int(match["k"]) * 1000, {})[_ABOVE_FIELDS[match["field"]]] = _per_million(value)
    thresholds = sorted(t for t, prices in above.items() if "input" in prices)
    if thresholds:
        threshold = thresholds[0]
        prices = above[threshold]
        row["long_context"] = {
            "threshold": threshold,
            **prices,
            "output": prices.get("output", row["output"]),
        }

    tiers: dict[str, dict[str, float]] = {}
    for tier in _TIERS:
        for pattern, field in _TIER_FIELDS.items():
            value = _number(entry, pattern.format(tier=tier), name)
            if value is not None:
                tiers.setdefault(tier, {})[field] = _per_million(value)
    if tiers:
        row["tiers"] = tiers

    context_window = _token_limit(entry, "max_input_tokens")
    max_output = _token_limit(entry, "max_output_tokens")
    if context_window is not None:
        row["context_window"] = context_window
    if max_output is not None:
        row["max_output_tokens"] = max_output
    return provider, _model_name(name, litellm_provider, provider), row


def from_litellm(data: Mapping[str, Any]) -> PriceTable:
    """A :class:`PriceTable` from the parsed JSON of a LiteLLM price file.

    Per-token prices become prices per million tokens; ``litellm_provider`` names become
    OpenTelemetry ``gen_ai.provider.name`` values where they differ (see :data:`PROVIDER_NAMES`);
    a ``provider/`` prefix naming the entry's own provider is dropped from the model name.
    ``max_input_tokens`` becomes ``context_window``. Top-level values that are not objects
    (LiteLLM's file carries a ``"last_updated"`` string) are ignored. Raises
    :class:`ConfigError` when ``data`` is not an object, holds no model objects, or a price is
    not a non-negative number.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"a LiteLLM price file must be a JSON object mapping model names to objects, got {type(data).__name__}"
        )
    entries = {name: entry for name, entry in data.items() if isinstance(entry, Mapping)}
    if not entries:
        raise ConfigError(
            "a LiteLLM price file must be a JSON object mapping model names to objects "
            '(e.g. {"gpt-4o": {"input_cost_per_token": 2.5e-06, ...}}); this one has no model objects'
        )
    rows: dict[tuple[str, str], ModelPrice] = {}
    exact: set[tuple[str, str]] = set()
    for name, entry in entries.items():
        if name in _SKIP:
            continue
        converted = _convert(str(name), entry)
        if converted is None:
            continue
        provider, model, raw = converted
        key = (provider, model)
        stripped = model != name
        if key in exact and stripped:
            continue  # "deepseek/deepseek-chat" does not replace "deepseek-chat"
        rows[key] = _row(provider, model, raw, {})
        if not stripped:
            exact.add(key)
    return PriceTable(rows.values())
