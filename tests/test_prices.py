"""The shipped price table, its lookup rules and the LiteLLM importer. No network.

Price tables go wrong in two ways peers' users have reported: a price typed 10x off
(litellm#9833) and a model missing so that it is priced at $0. The invariants below catch the
first kind for every row (cache and batch prices are fixed fractions of the input and output
prices at OpenAI and Anthropic); PUBLISHED pins individual numbers to the pages they were read on.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import openai
import pytest

import llmspend
from llmspend.exceptions import ConfigError
from llmspend.pricing.cost import price_usage
from llmspend.pricing.litellm import from_litellm
from llmspend.pricing.table import ModelPrice, PriceTable
from llmspend.providers.base import Usage
from llmspend.testing import FakeLLMServer

PROVIDERS = {"openai", "anthropic", "gcp.gemini", "mistral_ai", "deepseek", "together", "fireworks", "groq"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.default()


def _is_chat(row: ModelPrice) -> bool:
    return "embedding" not in row.model


def _field(row: ModelPrice, path: str) -> Any:
    """A row's value at ``path``: ``input``, ``long_context.output``, ``tiers.flex.input``."""
    value: Any = row
    for part in path.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


# -- the shipped table -------------------------------------------------------------------


def test_shipped_table_loads_with_every_provider(table: PriceTable) -> None:
    assert table.providers == PROVIDERS
    assert len(table) >= 100
    raw = json.loads(Path(__file__).parents[1].joinpath("llmspend/pricing/data/prices.json").read_text())
    assert raw["schema"] == 1 and raw["unit"] == "USD per 1M tokens"
    assert PriceTable.from_dict(table.to_dict()).to_dict() == table.to_dict()


def test_every_chat_row_is_complete(table: PriceTable) -> None:
    for row in table:
        assert row.source.startswith("https://"), row
        assert row.checked == "" or DATE.match(row.checked), row
        if _is_chat(row):
            assert row.input > 0 and row.output > 0, row
            assert row.context_window and row.context_window >= 4096, row
            assert row.max_output_tokens and 0 < row.max_output_tokens <= row.context_window, row


def test_cache_reads_cost_less_than_input_and_output_costs_more(table: PriceTable) -> None:
    for row in table:
        if row.cache_read is not None:
            assert row.cache_read <= row.input, row
        if row.cache_write is not None and row.provider == "anthropic":
            assert row.input <= row.cache_write <= (row.cache_write_1h or row.cache_write), row
        if _is_chat(row):
            assert row.output >= row.input, row
        lc = row.long_context
        if lc is not None:
            assert lc.input >= row.input and lc.output >= row.output, row
            assert lc.cache_read is None or lc.cache_read <= lc.input, row
        for tier, prices in row.tiers.items():
            assert tier in {"flex", "priority"}, row
            assert prices.get("cache_read", 0.0) <= prices["input"] <= prices["output"], row


def test_batch_is_half_price_at_openai_and_anthropic(table: PriceTable) -> None:
    checked = 0
    for row in table:
        if row.provider in {"openai", "anthropic"} and row.batch_input is not None:
            assert row.batch_output is not None, row
            assert math.isclose(row.batch_input, row.input / 2, rel_tol=1e-9), row
            assert math.isclose(row.batch_output, row.output / 2, rel_tol=1e-9), row
            checked += 1
    assert checked >= 50


# Anthropic publishes cache prices as multiples of the input price (read 0.1x, 5-minute write
# 1.25x, 1-hour write 2x). These rows are priced otherwise on the pricing page, and the table
# must say exactly what the page says for them.
ANTHROPIC_CACHE_EXCEPTIONS = {
    "claude-fable-5-1": {"cache_read": 0.25},  # 0.025x, footnoted on the pricing page
    "claude-opus-5-5": {"cache_read": 0.20},  # 0.05x
    "claude-sonnet-5-5": {"cache_read": 0.10},  # 0.05x since the 2026-10-07 cut
    "claude-3-haiku": {"cache_read": 0.03, "cache_write": 0.30},  # 0.12x and 1.2x
}


def test_anthropic_cache_multipliers(table: PriceTable) -> None:
    rows = [row for row in table if row.provider == "anthropic"]
    assert len(rows) >= 20
    for row in rows:
        expected = {"cache_read": 0.1 * row.input, "cache_write": 1.25 * row.input, "cache_write_1h": 2 * row.input}
        expected.update(ANTHROPIC_CACHE_EXCEPTIONS.get(row.model, {}))
        for field, value in expected.items():
            assert math.isclose(getattr(row, field), value, rel_tol=1e-9), (row.model, field)
        lc = row.long_context
        if lc is not None:
            assert lc.cache_read is not None and math.isclose(lc.cache_read, 0.1 * lc.input, rel_tol=1e-9)
            assert lc.cache_write is not None and math.isclose(lc.cache_write, 1.25 * lc.input, rel_tol=1e-9)
            assert lc.cache_write_1h is not None and math.isclose(lc.cache_write_1h, 2 * lc.input, rel_tol=1e-9)


# (provider, model, field, value, url where the number was read). Numbers are as printed on
# the page. The last group was read in a secondary source that quotes the provider's page
# (named in the comment); the stored copies of those providers' own pages were not found.
OA = "https://developers.openai.com/api/docs/models/"
AN = "https://platform.claude.com/docs/en/about-claude/pricing"
AN_OLD = "https://docs.anthropic.com/en/docs/about-claude/pricing"
GG = "https://ai.google.dev/gemini-api/docs/pricing"
FW = "https://docs.fireworks.ai/serverless/pricing"
AN_NOTES = "https://platform.claude.com/docs/en/release-notes/overview"
MD = "https://docs.mistral.ai/models/"  # model cards, from Mistral's docs repo (platform-docs-public)
PUBLISHED: list[tuple[str, str, str, float, str]] = [
    # OpenAI model pages and the models overview
    ("openai", "gpt-4", "input", 30.0, OA + "gpt-4"),
    ("openai", "gpt-4", "output", 60.0, OA + "gpt-4"),
    ("openai", "gpt-4", "context_window", 8192, OA + "gpt-4"),
    ("openai", "gpt-4", "max_output_tokens", 8192, OA + "gpt-4"),
    ("openai", "gpt-6.2-sol", "input", 2.00, OA + "gpt-6.2-sol"),
    ("openai", "gpt-6.2-sol", "cache_read", 0.10, OA + "gpt-6.2-sol"),
    ("openai", "gpt-6.2-sol", "cache_write", 2.50, OA + "gpt-6.2-sol"),
    ("openai", "gpt-6.2-sol", "output", 10.00, OA + "gpt-6.2-sol"),
    ("openai", "gpt-6.2-sol", "context_window", 1_050_000, OA + "gpt-6.2-sol"),
    ("openai", "gpt-6.2-sol", "max_output_tokens", 128_000, OA + "gpt-6.2-sol"),
    ("openai", "gpt-6-astra", "input", 10.00, OA + "compare"),
    ("openai", "gpt-6-astra", "cache_read", 1.00, OA + "compare"),
    ("openai", "gpt-6-astra", "cache_write", 12.50, OA + "compare"),
    ("openai", "gpt-6-astra", "output", 50.00, OA + "compare"),
    ("openai", "gpt-5.6-sol", "input", 4.0, "https://developers.openai.com/api/docs/models"),
    ("openai", "gpt-5.6-terra", "output", 12.0, "https://developers.openai.com/api/docs/models"),
    ("openai", "gpt-5.6-luna", "input", 0.20, "https://developers.openai.com/api/docs/models"),
    ("openai", "gpt-6.1-terra", "input", 1.0, "https://developers.openai.com/ko-KR/api/docs/models"),
    ("openai", "gpt-6-luna", "output", 0.5, "https://developers.openai.com/ko-KR/api/docs/models"),
    ("openai", "gpt-3.5-turbo-instruct", "input", 1.5, OA + "gpt-3.5-turbo-instruct"),
    ("openai", "gpt-3.5-turbo-instruct", "output", 2.0, OA + "gpt-3.5-turbo-instruct"),
    ("openai", "gpt-3.5-turbo-instruct", "context_window", 4096, OA + "gpt-3.5-turbo-instruct"),
    ("openai", "gpt-3.5-turbo-instruct", "max_output_tokens", 4096, OA + "gpt-3.5-turbo-instruct"),
    ("openai", "davinci-002", "input", 2.0, OA + "davinci-002"),
    ("openai", "davinci-002", "output", 2.0, OA + "davinci-002"),
    ("openai", "davinci-002", "max_output_tokens", 16_384, OA + "davinci-002"),  # the page gives no window
    # Anthropic pricing page and model overview pages
    ("anthropic", "claude-fable-5-1", "cache_read", 0.25, AN),
    ("anthropic", "claude-fable-5-1", "cache_write", 12.50, AN),
    ("anthropic", "claude-fable-5-1", "cache_write_1h", 20.0, AN),
    ("anthropic", "claude-fable-5-1", "output", 50.0, AN),
    ("anthropic", "claude-opus-4-5", "input", 5.0, AN),
    ("anthropic", "claude-opus-4-5", "cache_write_1h", 10.0, AN),
    ("anthropic", "claude-opus-4-1", "cache_write", 18.75, AN),
    ("anthropic", "claude-opus-5-5", "cache_write", 5.0, "https://platform.claude.com/docs/zh-CN/models/opus-5-5/overview"),
    ("anthropic", "claude-opus-5-5", "cache_write_1h", 8.0, "https://platform.claude.com/docs/zh-CN/models/opus-5-5/overview"),
    ("anthropic", "claude-opus-5-5", "cache_read", 0.20, "https://platform.claude.com/docs/zh-CN/models/opus-5-5/overview"),
    # the Sonnet 5.5 overview pages still print $0.20; the release notes of 2026-10-07 cut it
    ("anthropic", "claude-sonnet-5-5", "cache_read", 0.10, AN_NOTES),
    ("anthropic", "claude-sonnet-5-5", "input", 2.0, "https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview"),
    ("anthropic", "claude-sonnet-5-5", "cache_write", 2.50, "https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview"),
    ("anthropic", "claude-sonnet-5-5", "cache_write_1h", 4.0, "https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview"),
    ("anthropic", "claude-sonnet-5-5", "output", 10.0, "https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview"),
    ("anthropic", "claude-sonnet-5", "cache_write_1h", 4.0, "https://platform.claude.com/docs/zh-CN/models/sonnet-5/overview"),
    ("anthropic", "claude-sonnet-4-5", "context_window", 200_000, "https://platform.claude.com/docs/zh-CN/models/sonnet-4-5/overview.md"),
    ("anthropic", "claude-sonnet-4-5", "max_output_tokens", 64_000, "https://platform.claude.com/docs/zh-CN/models/sonnet-4-5/overview.md"),
    ("anthropic", "claude-haiku-4-5", "output", 5.0, "https://platform.claude.com/docs/zh-CN/models/haiku-4-5/overview.md"),
    ("anthropic", "claude-3-haiku", "cache_read", 0.03, AN_OLD),
    ("anthropic", "claude-3-haiku", "cache_write", 0.30, AN_OLD),
    ("anthropic", "claude-3-haiku", "cache_write_1h", 0.50, AN_OLD),
    ("anthropic", "claude-3-haiku", "batch_input", 0.125, AN_OLD),
    ("anthropic", "claude-3-haiku", "batch_output", 0.625, AN_OLD),
    ("anthropic", "claude-3-5-haiku", "input", 0.80, AN_OLD),
    ("anthropic", "claude-3-5-haiku", "cache_write_1h", 1.6, AN_OLD),
    ("anthropic", "claude-3-5-haiku", "batch_output", 2.0, AN_OLD),
    ("anthropic", "claude-sonnet-4", "long_context.input", 6.0, AN_OLD),
    ("anthropic", "claude-sonnet-4", "long_context.output", 22.50, AN_OLD),
    # Gemini API pricing page (verbatim transcription of 2026-10-07) and model pages
    ("gcp.gemini", "gemini-2.5-pro", "input", 1.25, GG),
    ("gcp.gemini", "gemini-2.5-pro", "long_context.input", 2.50, GG),
    ("gcp.gemini", "gemini-3.1-pro-preview", "output", 12.00, GG),
    ("gcp.gemini", "gemini-3.1-pro-preview", "long_context.input", 4.00, GG),
    ("gcp.gemini", "gemini-3.1-pro-preview", "long_context.output", 18.00, GG),
    ("gcp.gemini", "gemini-3.5-flash", "input", 1.50, GG),
    ("gcp.gemini", "gemini-3.5-flash", "output", 9.00, GG),
    ("gcp.gemini", "gemini-3.5-flash-lite", "output", 2.50, GG),
    ("gcp.gemini", "gemini-3.8-flash", "input", 0.75, GG),
    ("gcp.gemini", "gemini-3.8-flash", "output", 3.75, GG),
    ("gcp.gemini", "gemini-2.5-flash", "input", 0.30, GG),
    ("gcp.gemini", "gemini-2.5-flash-lite", "output", 0.40, GG),
    ("gcp.gemini", "gemini-3.5-flash", "max_output_tokens", 65_536, "https://ai.google.dev/gemini-api/docs/models/gemini-3.5-flash"),
    ("gcp.gemini", "gemini-2.0-flash", "max_output_tokens", 8192, "https://ai.google.dev/gemini-api/docs/models/gemini-2.0-flash"),
    # Fireworks serverless pricing page
    ("fireworks", "accounts/fireworks/models/gpt-oss-120b", "input", 0.15, FW),
    ("fireworks", "accounts/fireworks/models/gpt-oss-120b", "cache_read", 0.015, FW),
    ("fireworks", "accounts/fireworks/models/gpt-oss-120b", "output", 0.60, FW),
    ("fireworks", "accounts/fireworks/models/gpt-oss-120b", "batch_input", 0.075, FW),  # batch = 50%
    ("fireworks", "accounts/fireworks/models/gpt-oss-20b", "cache_read", 0.035, FW),
    ("fireworks", "accounts/fireworks/models/deepseek-v3p2", "input", 0.56, FW),  # "DeepSeek V3 family"
    ("fireworks", "accounts/fireworks/models/deepseek-v3p2", "cache_read", 0.28, FW),
    ("fireworks", "accounts/fireworks/models/deepseek-v3p2", "output", 1.68, FW),
    # Read in secondary sources that quote the provider's own page:
    # DeepSeek's pricing page as quoted by benchlm.ai (April 2026).
    ("deepseek", "deepseek-chat", "input", 0.28, "https://benchlm.ai/blog/posts/deepseek-api-pricing"),
    ("deepseek", "deepseek-chat", "cache_read", 0.028, "https://benchlm.ai/blog/posts/deepseek-api-pricing"),
    ("deepseek", "deepseek-reasoner", "output", 0.42, "https://benchlm.ai/blog/posts/deepseek-api-pricing"),
    # DeepSeek's own page (2026-11-22), at the peak rate (off-peak is half; see docs/pricing.md)
    ("deepseek", "deepseek-flash", "cache_read", 0.006, "https://api-docs.deepseek.com/quick_start/pricing"),
    ("deepseek", "deepseek-flash", "input", 0.30, "https://api-docs.deepseek.com/quick_start/pricing"),
    ("deepseek", "deepseek-v4-pro", "output", 3.96, "https://api-docs.deepseek.com/quick_start/pricing"),
    # Mistral's own model cards
    ("mistral_ai", "mistral-small-2603", "input", 0.15, MD + "mistral-small-4-0-26-03"),
    ("mistral_ai", "mistral-small-2603", "output", 0.60, MD + "mistral-small-4-0-26-03"),
    ("mistral_ai", "mistral-small-2506", "input", 0.10, MD + "mistral-small-3-2-25-06"),
    ("mistral_ai", "mistral-small-2506", "output", 0.30, MD + "mistral-small-3-2-25-06"),
    # Mistral's price for Mistral Large 3 as listed by Vercel's gateway (provider: mistral).
    ("mistral_ai", "mistral-large-2512", "input", 0.5, "https://vercel.com/ai-gateway/models/mistral-large-3.md"),
    ("mistral_ai", "mistral-large-2512", "output", 1.5, "https://vercel.com/ai-gateway/models/mistral-large-3.md"),
    ("mistral_ai", "mistral-large-2512", "context_window", 262_144, "https://vercel.com/ai-gateway/models/mistral-large-3.md"),
    ("mistral_ai", "codestral-2508", "output", 0.90, "https://mastra.ai/models/providers/mistral.md"),
    # Groq's and Together's pages as quoted in braintrust-proxy issues #925 and #566.
    ("groq", "openai/gpt-oss-120b", "input", 0.15, "https://github.com/braintrustdata/braintrust-proxy/issues/925"),
    ("groq", "openai/gpt-oss-120b", "output", 0.60, "https://github.com/braintrustdata/braintrust-proxy/issues/925"),
    ("groq", "openai/gpt-oss-120b", "max_output_tokens", 65_536, "https://github.com/braintrustdata/braintrust-proxy/issues/566"),
    ("together", "openai/gpt-oss-120b", "input", 0.15, "https://github.com/braintrustdata/braintrust-proxy/issues/566"),
    ("together", "openai/gpt-oss-120b", "output", 0.60, "https://github.com/braintrustdata/braintrust-proxy/issues/566"),
]


def test_published_covers_every_provider() -> None:
    assert len(PUBLISHED) >= 25
    assert {provider for provider, *_ in PUBLISHED} == PROVIDERS


@pytest.mark.parametrize(("provider", "model", "field", "value", "url"), PUBLISHED, ids=lambda v: str(v)[:40])
def test_table_agrees_with_published_price(
    table: PriceTable, provider: str, model: str, field: str, value: float, url: str
) -> None:
    row = table.lookup(model, provider=provider)
    assert row is not None and row.model == model and row.provider == provider
    assert math.isclose(_field(row, field), value, rel_tol=1e-9), f"{provider}/{model} {field}: see {url}"


# -- lookup ------------------------------------------------------------------------------


def test_a_retired_name_resolves_to_the_model_that_serves_it(table: PriceTable) -> None:
    # DeepSeek serves (and bills) requests for deepseek-v4-flash with deepseek-flash
    row = table.lookup("deepseek-v4-flash", provider="deepseek")
    assert row is not None and row.model == "deepseek-flash" and row.max_output_tokens == 384_000


def test_an_override_moves_every_name_of_the_row_it_replaces(table: PriceTable) -> None:
    cheaper = table.with_overrides({"deepseek-flash": {"input": 0.15, "output": 0.60, "cache_read": 0.003}})
    for name in ("deepseek-flash", "deepseek-v4-flash"):
        row = cheaper.lookup(name, provider="deepseek")
        assert row is not None and row.input == 0.15 and row.output == 0.60
    assert table.lookup("deepseek-v4-flash", provider="deepseek").input == 0.30  # type: ignore[union-attr]
    dated = table.with_overrides({"gpt-4o-2099-01-01": {"input": 9.0}})
    assert dated.lookup("gpt-4o-2099-01-01").input == 9.0  # type: ignore[union-attr]
    assert dated.lookup("gpt-4o") == table.lookup("gpt-4o")  # the alias keeps its own row


def test_an_any_provider_override_serves_every_provider(table: PriceTable) -> None:
    # Before, a {"provider": "*"} row for a shipped name was found only for providers without
    # a row of their own (groq): an openai call, or an Azure one, kept the shipped price.
    custom = table.with_overrides({"gpt-4o": {"input": 1.0, "output": 4.0, "provider": "*"}})
    for provider in ("openai", "azure.ai.openai", "groq", None):
        row = custom.lookup("gpt-4o-2024-08-06", provider=provider)
        assert row is not None and (row.input, row.output) == (1.0, 4.0), provider
    # a provider's own row given after it wins for that provider only
    scoped = custom.with_overrides({"gpt-4o": {"input": 3.0, "provider": "openai"}})
    assert scoped.lookup("gpt-4o", provider="openai").input == 3.0  # type: ignore[union-attr]
    assert scoped.lookup("gpt-4o", provider="azure.ai.openai").input == 1.0  # type: ignore[union-attr]


def test_dated_snapshot_resolves_to_its_alias(table: PriceTable) -> None:
    row = table.lookup("gpt-4o-2024-08-06", provider="openai")
    assert row is not None and (row.model, row.input, row.output, row.cache_read) == ("gpt-4o", 2.5, 10.0, 1.25)


def test_snapshot_priced_differently_has_its_own_row(table: PriceTable) -> None:
    row = table.lookup("gpt-4o-2024-05-13", provider="openai")
    assert row is not None and (row.model, row.input, row.output) == ("gpt-4o-2024-05-13", 5.0, 15.0)


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-1106-preview", "gpt-4-turbo"),
        ("mistral-large-latest", "mistral-large-2512"),
        ("gpt-5.6", "gpt-5.6-sol"),
        ("mistral-small-latest", "mistral-small-2603"),  # Small 4 since 2026-04-30 (Small 3.2's card)
    ],
)
def test_names_resolve(table: PriceTable, name: str, model: str) -> None:
    row = table.lookup(name)
    assert row is not None and row.model == model


def test_same_model_is_priced_per_provider(table: PriceTable) -> None:
    groq = table.lookup("openai/gpt-oss-20b", provider="groq")
    together = table.lookup("openai/gpt-oss-20b", provider="together")
    assert groq is not None and together is not None
    assert (groq.provider, groq.input, groq.output) == ("groq", 0.075, 0.30)
    assert (together.provider, together.input, together.output) == ("together", 0.05, 0.20)
    scout_groq = table.lookup("meta-llama/llama-4-scout-17b-16e-instruct", provider="groq")
    scout_together = table.lookup("meta-llama/Llama-4-Scout-17B-16E-Instruct", provider="together")
    assert scout_groq is not None and scout_groq.input == 0.11
    assert scout_together is not None and scout_together.input == 0.18


def test_unknown_model_is_none_never_zero(table: PriceTable) -> None:
    assert table.lookup("no-such-model-2025-01-01") is None
    assert table.lookup("no-such-model", provider="openai") is None
    assert table.lookup("mistral-large-2407") is None  # an older snapshot we have no price for
    assert table.lookup(None) is None


# -- pricing rules on shipped rows -------------------------------------------------------

# (provider, model, usage, USD worked out by hand from the page's per-million prices)
HAND_PRICED: list[tuple[str, str, Usage, float]] = [
    # 12,000 in x $1.50 + 3,000 out x $2.00
    ("openai", "gpt-3.5-turbo-instruct", Usage(input_tokens=12_000, output_tokens=3_000), 0.018 + 0.006),
    # 50,000 in x $2.00 + 10,000 out x $2.00
    ("openai", "davinci-002", Usage(input_tokens=50_000, output_tokens=10_000), 0.10 + 0.02),
    # 200,000 in x $0.15 + 40,000 out x $0.60 (no cached rate on the card: none charged apart)
    ("mistral_ai", "mistral-small-latest", Usage(input_tokens=200_000, output_tokens=40_000), 0.030 + 0.024),
    # 200,000 in x $0.10 + 40,000 out x $0.30
    ("mistral_ai", "mistral-small-2506", Usage(input_tokens=200_000, output_tokens=40_000), 0.020 + 0.012),
    # 100,000 in of which 80,000 cache reads: 20,000 x $2 + 80,000 x $0.10 + 5,000 out x $10
    ("anthropic", "claude-sonnet-5-5", Usage(input_tokens=100_000, cache_read_tokens=80_000, output_tokens=5_000),
     0.040 + 0.008 + 0.050),
]


@pytest.mark.parametrize(("provider", "model", "usage", "usd"), HAND_PRICED, ids=[m for _, m, _, _ in HAND_PRICED])
def test_row_prices_a_known_usage_to_the_hand_worked_figure(
    table: PriceTable, provider: str, model: str, usage: Usage, usd: float
) -> None:
    row = table.lookup(model, provider=provider)
    assert row is not None
    assert price_usage(usage, row).total_usd == pytest.approx(usd, rel=1e-12)


def test_long_context_and_batch_combine(table: PriceTable) -> None:
    row = table.lookup("claude-sonnet-4-5", provider="anthropic")
    assert row is not None
    usage = Usage(input_tokens=300_000, output_tokens=10_000)
    interactive = price_usage(usage, row)
    batch = price_usage(usage, row, batch=True)
    assert interactive.total_usd is not None and batch.total_usd is not None
    assert math.isclose(interactive.total_usd, 0.3 * 6.0 + 0.01 * 22.5)
    assert math.isclose(batch.total_usd, interactive.total_usd / 2)


def test_us_only_inference_costs_a_tenth_more_on_claude_4_6_and_later(table: PriceTable) -> None:
    """Anthropic bills inference_geo "us" at 1.1x every token price of Claude Opus 4.6, Sonnet
    4.6 and later models (support.claude.com/en/articles/15422948); earlier models at the
    standard rate. Before: the geography was not read, so a US-only call was priced a tenth low."""
    usage = Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=3_000, cache_write_tokens=1_000,
                  cache_write_1h_tokens=400, reasoning_tokens=500)
    for model in ("claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-5", "claude-haiku-5-5"):
        row = table.lookup(model, provider="anthropic")
        assert row is not None
        base, us = price_usage(usage, row), price_usage(usage, row, inference_geo="us")
        assert base.total_usd is not None and us.total_usd is not None
        assert us.total_usd == pytest.approx(base.total_usd * 1.1, rel=1e-12), model
        assert (us.input_usd, us.cache_read_usd, us.cache_write_usd, us.output_usd) == pytest.approx(
            (base.input_usd * 1.1, base.cache_read_usd * 1.1, base.cache_write_usd * 1.1, base.output_usd * 1.1))
        assert price_usage(usage, row, inference_geo="global").total_usd == base.total_usd
        assert price_usage(usage, row, inference_geo="us", batch=True).total_usd == pytest.approx(
            price_usage(usage, row, batch=True).total_usd * 1.1, rel=1e-12)  # type: ignore[operator]
    for model in ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"):
        row = table.lookup(model, provider="anthropic")
        assert row is not None
        assert price_usage(usage, row, inference_geo="us").total_usd == price_usage(usage, row).total_usd, model


def test_geo_multipliers_are_validated() -> None:
    with pytest.raises(ConfigError, match="geo_multipliers"):
        PriceTable.from_dict({"providers": {"p": {"m": {"input": 1, "output": 2, "geo_multipliers": {"us": -1}}}}})
    with pytest.raises(ConfigError, match="geo_multipliers"):
        PriceTable.from_dict({"providers": {"p": {"m": {"input": 1, "output": 2, "geo_multipliers": [1.1]}}}})
    row = PriceTable.from_dict({"providers": {"p": {"m": {"input": 1, "output": 2, "geo_multipliers": {"eu": 1.2}}}}}).lookup("m")
    assert row is not None and row.geo_multipliers == {"eu": 1.2} and row.as_dict()["geo_multipliers"] == {"eu": 1.2}


def test_long_context_one_hour_cache_write(table: PriceTable) -> None:
    row = table.lookup("claude-sonnet-4-5", provider="anthropic")
    assert row is not None
    usage = Usage(input_tokens=300_000, cache_write_tokens=300_000, cache_write_1h_tokens=100_000)
    cost = price_usage(usage, row)
    assert math.isclose(cost.cache_write_usd, 0.2 * 7.5 + 0.1 * 12.0)


def test_long_context_one_hour_write_scales_with_input_when_not_given() -> None:
    """A LiteLLM entry may give the long-context 5-minute write but no long-context 1-hour
    one: the 1-hour rate then scales as the input rate does (2x input either way), not the
    5-minute long-context rate."""
    from llmspend.pricing.table import LongContextPrice, ModelPrice

    row = ModelPrice(model="m", provider="anthropic", input=3.0, output=15.0, cache_read=0.3, cache_write=3.75,
                     cache_write_1h=6.0, long_context=LongContextPrice(threshold=200_000, input=6.0, output=22.5,
                                                                       cache_read=0.6, cache_write=7.5))
    usage = Usage(input_tokens=300_000, cache_write_tokens=300_000, cache_write_1h_tokens=100_000)
    assert math.isclose(price_usage(usage, row).cache_write_usd, 0.2 * 7.5 + 0.1 * 12.0)


def test_long_context_write_rates_follow_the_input_rate() -> None:
    from llmspend.pricing.table import LongContextPrice, ModelPrice

    lc = LongContextPrice(threshold=200_000, input=6.0, output=22.5)  # gives no write rates
    with_writes = ModelPrice(model="m", provider="p", input=3.0, output=15.0, cache_write=3.75, cache_write_1h=6.0,
                             long_context=lc)
    usage = Usage(input_tokens=300_000, cache_write_tokens=300_000, cache_write_1h_tokens=100_000)
    assert math.isclose(price_usage(usage, with_writes).cache_write_usd, 0.2 * 7.5 + 0.1 * 12.0)
    no_writes = ModelPrice(model="n", provider="p", input=5.0, output=15.0, long_context=LongContextPrice(
        threshold=272_000, input=10.0, output=22.5))
    cost = price_usage(Usage(input_tokens=300_000, cache_write_tokens=100_000), no_writes)
    assert math.isclose(cost.cache_write_usd, 0.1 * 10.0)  # at the long-context input rate, not the base one


def test_a_file_override_keeps_the_names_of_the_row_it_replaces(table: PriceTable) -> None:
    before = table.lookup("deepseek-v4-flash", provider="deepseek")
    assert before is not None and before.model == "deepseek-flash"
    cheaper = table.with_overrides({"providers": {"deepseek": {"deepseek-flash": {"input": 0.15, "output": 0.6}}}})
    row = cheaper.lookup("deepseek-v4-flash", provider="deepseek")
    assert row is not None and row.input == 0.15 and row.aliases == before.aliases


def test_prompt_length_tier_applies_to_every_token(table: PriceTable) -> None:
    row = table.lookup("claude-haiku-5-5", provider="anthropic")
    assert row is not None
    short = price_usage(Usage(input_tokens=100_000, output_tokens=1_000_000), row)
    long = price_usage(Usage(input_tokens=100_001, output_tokens=1_000_000), row)
    assert short.output_usd == pytest.approx(0.50) and long.output_usd == pytest.approx(2.50)


# -- LiteLLM import ----------------------------------------------------------------------

LITELLM: dict[str, Any] = {
    "sample_spec": {"max_tokens": "LEGACY", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
    "last_updated": "2026-11-20",
    "gpt-4o": {
        "litellm_provider": "openai",
        "mode": "chat",
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "input_cost_per_token": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "cache_read_input_token_cost": 1.25e-06,
        "input_cost_per_token_batches": 1.25e-06,
        "output_cost_per_token_batches": 5e-06,
        "input_cost_per_token_priority": 4.25e-06,
        "output_cost_per_token_priority": 1.7e-05,
    },
    "o3": {
        "litellm_provider": "openai",
        "input_cost_per_token": 2e-06,
        "output_cost_per_token": 8e-06,
        "output_cost_per_reasoning_token": 8e-06,
        "input_cost_per_token_flex": 1e-06,
        "output_cost_per_token_flex": 4e-06,
    },
    "claude-sonnet-4-5-20250929": {
        "litellm_provider": "anthropic",
        "max_input_tokens": 200000,
        "max_output_tokens": 64000,
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_read_input_token_cost": 3e-07,
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_creation_input_token_cost_above_1hr": 6e-06,
        "input_cost_per_token_batches": 1.5e-06,
        "output_cost_per_token_batches": 7.5e-06,
        "input_cost_per_token_above_200k_tokens": 6e-06,
        "output_cost_per_token_above_200k_tokens": 2.25e-05,
        "cache_read_input_token_cost_above_200k_tokens": 6e-07,
        "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
        "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05,
    },
    "gemini/gemini-1.5-pro": {
        "litellm_provider": "gemini",
        "input_cost_per_token": 1.25e-06,
        "output_cost_per_token": 5e-06,
        "input_cost_per_token_above_128k_tokens": 2.5e-06,
        "output_cost_per_token_above_128k_tokens": 1e-05,
        "max_input_tokens": 2097152,
        "max_output_tokens": 8192,
    },
    "mistral/mistral-small-latest": {"litellm_provider": "mistral", "input_cost_per_token": 1e-07, "output_cost_per_token": 3e-07},
    "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo": {
        "litellm_provider": "together_ai",
        "input_cost_per_token": 8.8e-07,
        "output_cost_per_token": 8.8e-07,
    },
    "fireworks_ai/accounts/fireworks/models/gpt-oss-20b": {
        "litellm_provider": "fireworks_ai",
        "input_cost_per_token": 7e-08,
        "output_cost_per_token": 3e-07,
        "cache_read_input_token_cost": 3.5e-08,
        "max_output_tokens": 0,  # LiteLLM has zeros like this; ignored
    },
    "deepseek-chat": {"litellm_provider": "deepseek", "input_cost_per_token": 2.8e-07, "output_cost_per_token": 4.2e-07},
    "deepseek/deepseek-chat": {"litellm_provider": "deepseek", "input_cost_per_token": 9.9e-06, "output_cost_per_token": 9.9e-06},
    "perplexity/sonar": {"litellm_provider": "perplexity", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "input_cost_per_request": 0.005},
    "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04},
    "whisper-1": {"litellm_provider": "openai", "mode": "audio_transcription", "input_cost_per_second": 0.0001},
}


def test_litellm_import_converts_per_token_prices() -> None:
    table = from_litellm(LITELLM)
    assert table.providers == {"openai", "anthropic", "gcp.gemini", "mistral_ai", "together", "fireworks", "deepseek", "perplexity"}
    assert len(table) == 9  # sample_spec, metadata, image and audio entries skipped

    gpt = table.lookup("gpt-4o-2024-08-06", provider="openai")
    assert gpt is not None and gpt.model == "gpt-4o"
    assert (gpt.input, gpt.output, gpt.cache_read, gpt.batch_input, gpt.batch_output) == (2.5, 10.0, 1.25, 1.25, 5.0)
    assert (gpt.context_window, gpt.max_output_tokens) == (128000, 16384)
    assert gpt.tiers == {"priority": {"input": 4.25, "output": 17.0}}

    o3 = table.lookup("o3", provider="openai")
    assert o3 is not None and o3.reasoning == 8.0 and o3.tiers == {"flex": {"input": 1.0, "output": 4.0}}

    claude = table.lookup("claude-sonnet-4-5-20250929", provider="anthropic")
    assert claude is not None
    assert (claude.cache_read, claude.cache_write, claude.cache_write_1h) == (0.3, 3.75, 6.0)
    assert (claude.batch_input, claude.batch_output) == (1.5, 7.5)
    lc = claude.long_context
    assert lc is not None
    assert (lc.threshold, lc.input, lc.output, lc.cache_read, lc.cache_write, lc.cache_write_1h) == (
        200000, 6.0, 22.5, 0.6, 7.5, 12.0
    )


def test_litellm_import_maps_providers_and_strips_prefixes() -> None:
    table = from_litellm(LITELLM)
    gemini = table.lookup("gemini-1.5-pro", provider="gcp.gemini")
    assert gemini is not None and gemini.long_context is not None
    assert (gemini.long_context.threshold, gemini.long_context.input, gemini.long_context.output) == (128000, 2.5, 10.0)
    assert gemini.context_window == 2097152
    assert table.lookup("mistral-small-latest", provider="mistral_ai") is not None
    llama = table.lookup("meta-llama/Llama-3.3-70B-Instruct-Turbo", provider="together")
    assert llama is not None and llama.input == 0.88
    oss = table.lookup("accounts/fireworks/models/gpt-oss-20b", provider="fireworks")
    assert oss is not None and (oss.input, oss.cache_read, oss.max_output_tokens) == (0.07, 0.035, None)
    deepseek = table.lookup("deepseek-chat", provider="deepseek")
    assert deepseek is not None and deepseek.input == 0.28  # the bare key wins over "deepseek/deepseek-chat"
    sonar = table.lookup("perplexity/sonar", provider="perplexity")
    assert sonar is not None and sonar.model == "sonar" and sonar.per_request == 0.005
    assert table.lookup("dall-e-3") is None


def test_from_file_detects_both_formats(tmp_path: Path, table: PriceTable) -> None:
    ours = tmp_path / "prices.json"
    ours.write_text(json.dumps(table.to_dict()))
    theirs = tmp_path / "model_prices_and_context_window.json"
    theirs.write_text(json.dumps(LITELLM))
    loaded = PriceTable.from_file(ours)
    assert len(loaded) == len(table)
    assert loaded.lookup("gpt-4o-2024-05-13") == table.lookup("gpt-4o-2024-05-13")
    imported = PriceTable.from_file(theirs)
    row = imported.lookup("claude-sonnet-4-5-20250929", provider="anthropic")
    assert row is not None and row.cache_write_1h == 6.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2, 3]", "must be a JSON object"),
        ('{"gpt-4o": "cheap"}', "no model objects"),
        ('"just a string"', "must be a JSON object"),
        ("{not json", "not valid JSON"),
        ('{"m": {"litellm_provider": "openai", "input_cost_per_token": "2.5e-6", "output_cost_per_token": 1e-05}}', "must be a number"),
        ('{"m": {"litellm_provider": "openai", "input_cost_per_token": -1e-06, "output_cost_per_token": 1e-05}}', "must be a number >= 0"),
        ('{"providers": {"openai": {"m": {"input": 1, "output": 2, "long_context": {"above": 5}}}}}', "long_context needs"),
        ('{"providers": {"openai": {"m": {"input": 1, "outptu": 2}}}}', "unknown field"),
    ],
)
def test_bad_price_file_says_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        PriceTable.from_file(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"m": {"input": 1, "output": 2, "long_context": {"threshold": "272k", "input": 2, "output": 4}}}, "threshold must be a whole number"),
        ({"m": {"input": 1, "output": 2, "long_context": {"threshold": 10, "input": 2, "output": "4"}}}, "long_context: output must be a number"),
        ({"m": {"input": 1, "output": 2, "long_context": 272000}}, "long_context needs"),
        ({"m": {"input": 1, "output": 2, "tiers": {"flex": {"input": "half"}}}}, "tier 'flex': input must be a number"),
        ({"m": {"input": 1, "output": 2, "tiers": {"flex": {"inptu": 0.5}}}}, "tier 'flex' has unknown field"),
        ({"m": {"input": 1, "output": 2, "tiers": ["flex"]}}, "tiers must map"),
        ({"m": {"input": 1, "output": 2, "aliases": "m-alias"}}, "aliases must be a list"),
        ({"m": {"input": 1, "output": 2, "context_window": "big"}}, "context_window must be a whole number"),
        ({"m": {"input": float("nan"), "output": 2}}, "input must be a number >= 0"),
        ({"m": {"input": 1, "output": float("inf")}}, "output must be a number >= 0"),
        ({"m": {"input": 1, "output": 2, "provider": 5}}, "provider must be a provider name"),
        ({5: {"input": 1, "output": 2}}, "keyed by model name"),
        ({"providers": {"openai": {"_defaults": 5, "m": {"input": 1, "output": 2}}}}, "_defaults must be an object"),
        ({"providers": {"openai": {"m": 5}}}, "must be an object of prices"),
    ],
)
def test_a_malformed_override_fails_at_wrap_time(server: FakeLLMServer, override: dict[Any, Any], message: str) -> None:
    # Before, each of these was accepted (or raised a bare TypeError/ValueError) and the row
    # then failed or priced NaN on every call, its cost silently lost.
    with pytest.raises(ConfigError, match=message):
        llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key="sk-test"), prices=override)


def test_missing_price_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read price file"):
        PriceTable.from_file(tmp_path / "nope.json")


# -- fast mode (usage.speed) ---------------------------------------------------------------

FAST = "https://platform.claude.com/docs/en/build-with-claude/fast-mode"
# (model, fast input, fast output in USD per 1M tokens, where the figures were read). The fast
# mode page of Anthropic (a copy of its Opus 4.8 version) prices 4.6 and 4.7 at $30/$150 and 4.8
# at $10/$50; its current version names Opus 5 and 5.5 without the table in the stored copy, so
# those come from the gateways that resell them at Anthropic's rates.
FAST_PUBLISHED = [
    ("claude-opus-4-6", 30.0, 150.0, FAST),
    ("claude-opus-4-7", 30.0, 150.0, FAST),
    ("claude-opus-4-8", 10.0, 50.0, FAST),
    ("claude-opus-5", 10.0, 50.0, "https://openrouter.ai/anthropic/claude-opus-5-fast-20260723"),
    ("claude-opus-5-5", 8.0, 40.0, "https://vercel.com/ai-gateway/models/claude-opus-5.5-fast.md"),
]


@pytest.mark.parametrize(("model", "fast_input", "fast_output", "url"), FAST_PUBLISHED)
def test_fast_mode_is_priced_at_the_published_rates(
        table: PriceTable, model: str, fast_input: float, fast_output: float, url: str) -> None:
    """usage.speed "fast" bills a per-model multiple of every rate. Before: standard prices,
    a sixth (Opus 4.6, 4.7) or half (4.8 and later) of the bill."""
    row = table.lookup(model, provider="anthropic")
    assert row is not None and row.model == model
    per_input = price_usage(Usage(input_tokens=1_000_000), row, speed="fast")
    per_output = price_usage(Usage(input_tokens=0, output_tokens=1_000_000), row, speed="fast")
    assert per_input.total_usd == pytest.approx(fast_input, rel=1e-12), url
    assert per_output.total_usd == pytest.approx(fast_output, rel=1e-12), url
    assert per_input.status == "ok"
    for standard in (None, "standard"):  # a request that fell back is billed at standard rates
        assert price_usage(Usage(input_tokens=1_000_000), row, speed=standard).total_usd == pytest.approx(row.input)


def test_fast_mode_stacks_with_caching_batch_and_us_only_inference(table: PriceTable) -> None:
    """Caching, batch and data-residency multipliers apply on top of the fast rates, every part
    scaled; over the whole context window (the first version of the page said 12x above 200K
    input tokens for Opus 4.6: the current one prices every size at the one factor)."""
    usage = Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=3_000, cache_write_tokens=1_000,
                  cache_write_1h_tokens=400, reasoning_tokens=500)
    for model, factor in (("claude-opus-4-6", 6.0), ("claude-opus-4-8", 2.0), ("claude-opus-5-5", 2.0)):
        row = table.lookup(model, provider="anthropic")
        assert row is not None
        for options in ({}, {"batch": True}, {"inference_geo": "us"}, {"batch": True, "inference_geo": "us"}):
            base = price_usage(usage, row, **options)  # type: ignore[arg-type]
            fast = price_usage(usage, row, speed="fast", **options)  # type: ignore[arg-type]
            assert base.total_usd is not None and fast.total_usd is not None
            assert fast.total_usd == pytest.approx(base.total_usd * factor, rel=1e-12), (model, options)
            assert (fast.input_usd, fast.cache_read_usd, fast.cache_write_usd, fast.output_usd) == pytest.approx(
                (base.input_usd * factor, base.cache_read_usd * factor, base.cache_write_usd * factor,
                 base.output_usd * factor), rel=1e-12)
            assert fast.batch == base.batch == bool(options.get("batch"))
        us_batch = price_usage(usage, row, speed="fast", batch=True, inference_geo="us").total_usd
        assert us_batch == pytest.approx(price_usage(usage, row).total_usd * factor * 1.1 / 2, rel=1e-12)  # type: ignore[operator]
    row = table.lookup("claude-opus-4-6", provider="anthropic")
    assert row is not None
    long_input = Usage(input_tokens=600_000, output_tokens=1_000)
    assert price_usage(long_input, row, speed="fast").total_usd == pytest.approx(
        (600_000 * 30.0 + 1_000 * 150.0) / 1e6, rel=1e-12)


def test_fast_mode_on_a_model_without_a_factor_has_no_cost(table: PriceTable) -> None:
    """A speed the row gives no factor for is a price llmspend does not know: no number, and a
    status that says why (never the standard price, a fraction of the bill)."""
    usage = Usage(input_tokens=1_000, output_tokens=100)
    for model in ("claude-sonnet-4-6", "claude-opus-4-5", "claude-fable-5-1"):
        row = table.lookup(model, provider="anthropic")
        assert row is not None and not row.speed_multipliers
        cost = price_usage(usage, row, speed="fast")
        assert cost.total_usd is None and not cost.known and cost.status == "unknown_speed", model
        assert price_usage(usage, row, speed="standard").total_usd == price_usage(usage, row).total_usd
    row = table.lookup("claude-opus-4-6", provider="anthropic")
    assert row is not None
    assert price_usage(usage, row, speed="turbo").status == "unknown_speed"  # a speed of the future


def test_speed_multipliers_are_validated_and_overridable() -> None:
    for bad in ({"fast": -1}, {"fast": 0}, {"fast": float("nan")}, {"fast": float("inf")}, {"fast": True},
                {"fast": "6"}, {"": 6}, [6]):
        with pytest.raises(ConfigError, match=r"price row p/m: speed_multipliers must map a speed to a factor > 0"):
            PriceTable.from_dict({"providers": {"p": {"m": {"input": 1, "output": 2, "speed_multipliers": bad}}}})
        with pytest.raises(ConfigError, match=r"claude-sonnet-4-6: speed_multipliers"):
            PriceTable.default().with_overrides({"claude-sonnet-4-6": {"speed_multipliers": bad}})
    with pytest.raises(ConfigError, match="speed_multipliers"):
        llmspend.wrap(openai.OpenAI(api_key="sk-test"), prices={"gpt-4o": {"speed_multipliers": {"fast": 0}}})
    # "standard" is the speed the row's prices are for: a factor for it would price an answer
    # that says "standard" apart from one that says nothing
    with pytest.raises(ConfigError, match='cannot set "standard"'):
        llmspend.wrap(openai.OpenAI(api_key="sk-test"), prices={"claude-opus-4-6": {"speed_multipliers": {"standard": 2}}})
    # a user's factor for a model the table has none for, the row's other prices kept
    table = PriceTable.default().with_overrides({"claude-sonnet-4-6": {"speed_multipliers": {"fast": 3}}})
    row = table.lookup("claude-sonnet-4-6", provider="anthropic")
    assert row is not None and row.speed_multipliers == {"fast": 3.0} and row.as_dict()["speed_multipliers"] == {"fast": 3.0}
    assert row.input == 3.0 and row.geo_multipliers == {"us": 1.1}
    usage = Usage(input_tokens=1_000, output_tokens=100)
    assert price_usage(usage, row, speed="fast").total_usd == pytest.approx(3 * price_usage(usage, row).total_usd)  # type: ignore[operator]
