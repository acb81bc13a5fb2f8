"""Economics: ENCS, API against self-hosting, model memory.

Where the seed material (../shared/ANCHORS.md, "Economics in the seed material") gives the
inputs, the tests recompute its figures from them; where it gives only a result, they say so
and check what can honestly be checked: that the result is consistent with the formula.
"""

from __future__ import annotations

import doctest
import importlib
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import llmspend
from llmspend import ConfigError
from llmspend.economics import (
    MODEL_SHAPES,
    breakeven,
    encs,
    kv_cache_memory_gb,
    read_action_log,
    serverless_usd_per_request,
    sizing,
    weights_memory_gb,
)

CENT = 0.01

# -- the LivePerson case (Howell et al. 2023, arXiv 2306.07402) -------------------------------
# Published inputs: a $10/hour agent, 30 s to write a message, 25 s saved when a drafted
# response is used; cost per response of each model family below (in cents).
HOURLY = 10.0
SECONDS_SAVED_BY_USE = 25.0
COST_CENTS = {
    "gpt2": 0.002,
    "gpt2-distilled": 0.0011,
    "openai": 1.09,
    "openai-fine-tuned": 6.54,
    "cohere": 0.25,
    "cohere-fine-tuned": 0.5,
}
# The share of responses agents used, edited or ignored for each model is not in the seed
# material available here (the paper's tables could not be retrieved through the search
# tools), and neither are edit/ignore timings: tests below never pretend to have them.


def seed_case(use: float, cost_cents: float, **kw: float) -> llmspend.economics.EncsResult:
    return encs(
        action_rates={"use": use, "ignore": 1 - use},
        seconds_saved={"use": SECONDS_SAVED_BY_USE, "ignore": 0.0},
        hourly_rate_usd=HOURLY,
        cost_per_response_usd=cost_cents * CENT,
        **kw,
    )


def test_saving_of_a_used_response_from_rate_and_seconds() -> None:
    r = seed_case(1.0, 0.0)
    # $10 an hour is 10/3600 dollars a second; 25 seconds of it:
    assert r.saving_per_action_usd["use"] == pytest.approx(10 / 3600 * 25)
    assert r.gross_saving_usd == pytest.approx(0.069444, abs=1e-6)


def test_every_model_familys_cost_is_charged_per_response() -> None:
    """ENCS falls by exactly each family's published cost per response, and the cheaper the
    model, the lower the share of used responses it needs to break even (cost / saving)."""
    base = seed_case(0.5, 0.0).encs_usd
    needed = {}
    for name, cents in COST_CENTS.items():
        r = seed_case(0.5, cents)
        assert r.encs_usd == pytest.approx(base - cents * CENT)
        assert r.cost_per_response_usd == pytest.approx(cents * CENT)
        needed[name] = r.cost_per_response_usd / r.saving_per_action_usd["use"]
    assert sorted(needed, key=needed.__getitem__) == sorted(COST_CENTS, key=COST_CENTS.__getitem__)
    # The distilled GPT-2 pays for itself if agents use 1 response in 6,000; fine-tuned
    # GPT-3 only if they use 94% of them as they are.
    assert needed["gpt2-distilled"] == pytest.approx(0.0011 / 6.9444, rel=1e-4)
    assert needed["openai-fine-tuned"] == pytest.approx(0.9418, abs=1e-4)


def test_seed_annual_savings_at_1_2m_messages() -> None:
    """4.47 cents a message over 1.2M messages is about $53.6k a year; the seed's $53,653 is
    that volume times an ENCS which rounds to 4.47 cents."""
    seconds_worth_447_cents = 4.47 * CENT / (HOURLY / 3600)  # 16.09 s of a $10/h agent
    r = encs(action_rates={"use": 1.0}, seconds_saved={"use": seconds_worth_447_cents}, hourly_rate_usd=HOURLY,
             cost_per_response_usd=0.0, annual_volume=1.2e6)
    assert r.encs_usd == pytest.approx(4.47 * CENT)
    assert r.annual_savings_usd == pytest.approx(53_640)
    assert round(r.annual_savings_usd, -2) == 53_600
    assert round(53_653 / 1.2e6 / CENT, 2) == 4.47  # the reported figure is the same arithmetic


def test_seed_distilled_gpt2_figure_is_reproduced_by_the_formula() -> None:
    """Not a published input: inverting the formula, $53,653 a year at 1.2M messages with the
    distilled GPT-2's 0.0011 cents a response needs 64.4% of responses used as is (edits and
    ignores saving nothing). With that share the formula gives the reported dollars to the
    dollar, which says the seed's arithmetic is this one."""
    r = seed_case(0.644, COST_CENTS["gpt2-distilled"], annual_volume=1.2e6)
    assert r.encs_usd / CENT == pytest.approx(4.47, abs=0.005)
    assert round(r.annual_savings_usd) == 53_653


def test_expensive_model_loses_money() -> None:
    """Fine-tuned GPT-3 at 6.54 cents a response: ENCS is negative unless agents use more than
    94% of its responses as they are; the seed's loss (about $18,691 a year at 1.2M) is an
    ENCS of -1.56 cents, inside what the formula allows for that cost."""
    r = seed_case(0.7, COST_CENTS["openai-fine-tuned"], annual_volume=1.2e6)
    assert r.encs_usd < 0 and r.annual_savings_usd is not None and r.annual_savings_usd < 0
    assert r.breakeven_volume is None and r.pays_back is False
    reported = -18_691 / 1.2e6
    gross = reported + COST_CENTS["openai-fine-tuned"] * CENT
    assert 0 < gross < seed_case(1.0, 0).gross_saving_usd


@given(st.floats(min_value=0.0, max_value=0.94))
def test_fine_tuned_gpt3_negative_below_94_percent_use(use: float) -> None:
    assert seed_case(use, COST_CENTS["openai-fine-tuned"]).encs_usd < 0


def test_breakeven_volume_with_setup_cost() -> None:
    """Set-up costs are paid back after setup / ENCS responses. The seed's "about 20M a year
    when set-up costs are high, 500k too few" comes without the set-up figure, so only the
    relation is checked: for a 4.47-cent ENCS, 20M messages pay back about $894k, 500k only
    about $22k."""
    r = seed_case(0.644, COST_CENTS["gpt2-distilled"], setup_cost_usd=894_000, annual_volume=500_000)
    assert r.breakeven_volume == pytest.approx(894_000 / r.encs_usd)
    assert r.breakeven_volume == pytest.approx(20e6, rel=0.001)
    assert r.net_savings_usd(r.breakeven_volume) == pytest.approx(0, abs=1e-6)
    assert r.pays_back is False and r.first_year_net_usd == pytest.approx(500_000 * r.encs_usd - 894_000)
    assert seed_case(0.644, 0.0011, setup_cost_usd=0).breakeven_volume == 0


def test_edit_and_ignore_count_with_their_own_seconds() -> None:
    r = encs(action_rates={"use": 0.5, "edit": 0.3, "ignore": 0.2},
             seconds_saved={"use": 25, "edit": 10, "ignore": -5}, hourly_rate_usd=36, cost_per_response_usd=0.001)
    # $36/h = 1 cent a second
    assert r.gross_saving_usd == pytest.approx((0.5 * 25 + 0.3 * 10 - 0.2 * 5) * CENT)
    assert r.encs_usd == pytest.approx(r.gross_saving_usd - 0.001)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action_rates": {"use": 0.5, "edit": 0.2}}, "add up to 1"),
        ({"action_rates": {"use": 1.5, "ignore": -0.5}}, "between 0 and 1"),
        ({"action_rates": {"accepted": 0.5, "maybe": 0.5}}, "unknown action 'maybe'"),
        ({"action_rates": {"use": 0.5, "edit": 0.5}}, "no entry for edit"),
        ({"hourly_rate_usd": -1}, "hourly_rate_usd must be >= 0"),
        ({"cost_per_response_usd": float("nan")}, "finite"),
        ({"annual_volume": "lots"}, "annual_volume must be a number"),
        ({"action_rates": {}}, "action_rates is empty"),
    ],
)
def test_encs_bad_input_says_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"action_rates": {"use": 0.6, "ignore": 0.4}, "seconds_saved": {"use": 25, "ignore": 0},
                               "hourly_rate_usd": 10, "cost_per_response_usd": 0.01}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        encs(**args)  # type: ignore[arg-type]


def test_action_log_rates_and_seconds(tmp_path: Path) -> None:
    log = tmp_path / "decisions.csv"
    log.write_text(
        "conversation,model,Action,seconds\n"
        "1,gpt2,used,6\n2,gpt2,use,4\n3,gpt2,edited,20\n4,gpt2,ignored,35\n"
        "5,gpt3,use,5\n6,gpt3,dismissed,\n"
    )
    everything = read_action_log(log)
    assert everything.counts == {"use": 3, "edit": 1, "ignore": 2}
    assert everything.rates["use"] == pytest.approx(0.5)
    gpt2 = read_action_log(log, where={"model": "gpt2"})
    assert gpt2.total == 4 and gpt2.filtered_out == 2
    assert gpt2.rates == {"use": 0.5, "edit": 0.25, "ignore": 0.25}
    saved = gpt2.seconds_saved(30)
    assert saved == {"use": 25.0, "edit": 10.0, "ignore": -5.0}
    r = encs(action_rates=gpt2.rates, seconds_saved=saved, hourly_rate_usd=10, cost_per_response_usd=0.0)
    assert r.gross_saving_usd == pytest.approx(10 / 3600 * (0.5 * 25 + 0.25 * 10 - 0.25 * 5))


def test_action_log_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("action\nuse\nmaybe\n")
    with pytest.raises(ConfigError, match="line 3: unknown action 'maybe'"):
        read_action_log(bad)
    headless = tmp_path / "headless.csv"
    headless.write_text("use,3\n")
    with pytest.raises(ConfigError, match="'action' column"):
        read_action_log(headless)
    with pytest.raises(ConfigError, match="cannot read the action log"):
        read_action_log(tmp_path / "missing.csv")
    no_seconds = tmp_path / "nosec.csv"
    no_seconds.write_text("action\nuse\nignore\n")
    with pytest.raises(ConfigError, match="no seconds for use, ignore"):
        read_action_log(no_seconds).seconds_saved(30)
    with pytest.raises(ConfigError, match="names column 'team'"):
        read_action_log(no_seconds, where={"team": "a"})


def test_action_log_exported_by_a_spreadsheet(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts the file with a byte-order mark and ends lines with CRLF: the
    header is still `action`, not an unreadable column named after an invisible character."""
    log = tmp_path / "excel.csv"
    log.write_bytes("action,seconds\r\nused,5\r\nedited,21\r\nignored,34\r\n".encode("utf-8-sig"))
    read = read_action_log(log, where={"action": "used"})
    assert read.counts == {"use": 1, "edit": 0, "ignore": 0} and read.filtered_out == 2
    assert read_action_log(log).seconds_saved(30) == {"use": 25.0, "edit": 9.0, "ignore": -4.0}


# -- "LLM Economics: ChatGPT vs Open-Source" (April 2023) --------------------------------------
LAMBDA = serverless_usd_per_request(seconds=5, memory_mb=128, usd_per_gb_second=0.0000166667)


def blog(volumes: list[float] | None = None) -> llmspend.economics.BreakevenResult:
    return breakeven(tokens_per_request=667, usd_per_1k_tokens=0.002, instance_usd_per_day=150,
                     serverless_usd_per_request=LAMBDA, gateway_usd_per_request=1 / 1e6, volumes=volumes)


def test_blog_figures_from_its_inputs() -> None:
    # 1,000 requests a day of 667 tokens at $0.002 per 1K tokens: about $1.3 a day
    r = blog([1_000, 1_000_000])
    low, high = r.points
    assert low.api_usd_per_day == pytest.approx(1.334) and round(low.api_usd_per_day, 1) == 1.3
    # the instance: about $150 a day whatever the volume
    assert low.self_host_usd_per_day - 1_000 * r.self_host_usd_per_request == pytest.approx(150)
    # Lambda 5 s x 128 MB x $0.0000166667 per GB-s: about $10 per million; gateway $1 per million
    assert LAMBDA * 1e6 == pytest.approx(10.42, abs=0.01) and round(LAMBDA * 1e6) == 10
    assert r.self_host_usd_per_request * 1e6 == pytest.approx(LAMBDA * 1e6 + 1)
    # API cheaper at 1,000 a day, self-hosting cheaper at a million a day
    assert low.cheaper == "api" and high.cheaper == "self-host"
    assert high.api_usd_per_day == pytest.approx(1_334)


def test_blog_crossing_volume() -> None:
    r = blog()
    expected = 150 / (667 / 1000 * 0.002 - LAMBDA - 1e-6)
    assert r.crossover_requests_per_day == pytest.approx(expected)
    assert 1_000 < r.crossover_requests_per_day < 1_000_000
    at = r.at(r.crossover_requests_per_day)
    assert at.api_usd_per_day == pytest.approx(at.self_host_usd_per_day)
    assert r.at(expected * 0.99).cheaper == "api" and r.at(expected * 1.01).cheaper == "self-host"
    assert r.crossover_requests_per_year == pytest.approx(expected * 365)
    assert r.points[0].api_usd_per_year == pytest.approx(r.points[0].api_usd_per_day * 365)


def test_hourly_instance_price_and_capacity() -> None:
    hourly = breakeven(api_usd_per_request=0.001, instance_usd_per_hour=6.25, volumes=[1])
    assert hourly.instance_usd_per_day == pytest.approx(150)
    # One instance serves 100k requests a day: past that a second one is paid for.
    r = breakeven(api_usd_per_request=0.002, instance_usd_per_day=100, requests_per_instance_per_day=100_000,
                  volumes=[50_000, 100_000, 100_001, 250_000])
    assert [p.instances for p in r.points] == [1, 1, 2, 3]
    assert r.crossover_requests_per_day == pytest.approx(50_000)
    assert r.points[2].self_host_usd_per_day == pytest.approx(200)
    # An instance that cannot serve enough requests to pay for itself never wins.
    small = breakeven(api_usd_per_request=0.002, instance_usd_per_day=100, requests_per_instance_per_day=10_000)
    assert small.crossover_requests_per_day is None
    assert all(p.cheaper == "api" for p in small.points)


def test_self_hosting_never_wins_when_fees_exceed_the_api_price() -> None:
    r = breakeven(api_usd_per_request=1e-6, instance_usd_per_day=1, serverless_usd_per_request=2e-6)
    assert r.crossover_requests_per_day is None and all(p.cheaper == "api" for p in r.points)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "price is missing"),
        ({"api_usd_per_request": 0.01, "tokens_per_request": 5, "usd_per_1k_tokens": 1}, "not both"),
        ({"api_usd_per_request": 0.01, "instance_usd_per_day": 1, "instance_usd_per_hour": 1}, "exactly one of"),
        ({"api_usd_per_request": 0.01}, "exactly one of instance_usd_per_hour or instance_usd_per_day"),
        ({"api_usd_per_request": 0.01, "instance_usd_per_day": 1, "instances": 0}, "whole number >= 1"),
        ({"api_usd_per_request": -1, "instance_usd_per_day": 1}, "api_usd_per_request must be >= 0"),
        ({"api_usd_per_request": 0.01, "instance_usd_per_day": 1, "requests_per_instance_per_day": 0}, "> 0"),
    ],
)
def test_breakeven_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        breakeven(**kwargs)  # type: ignore[arg-type]


# -- memory ------------------------------------------------------------------------------------
def test_weights_13b_at_fp32_fp16_int8() -> None:
    assert [weights_memory_gb(13e9, p) for p in ("fp32", "fp16", "int8")] == [52, 26, 13]
    assert weights_memory_gb("13B", "bf16") == weights_memory_gb(13_000_000_000, "float16") == 26
    assert weights_memory_gb("125M", "int4") == pytest.approx(0.0625)


def test_kv_cache_formula_and_grouped_query_attention() -> None:
    # 2 x layers x kv_heads x head_dim x bytes x context x batch
    assert kv_cache_memory_gb(layers=40, kv_heads=40, head_dim=128, context_tokens=4096, batch=1) == pytest.approx(
        2 * 40 * 40 * 128 * 2 * 4096 / 1e9
    )
    assert kv_cache_memory_gb(layers=40, kv_heads=40, head_dim=128, context_tokens=4096, batch=8,
                              precision="int8") == pytest.approx(2 * 40 * 40 * 128 * 1 * 4096 * 8 / 1e9)
    # Llama 2 70B keeps 8 KV heads for 64 query heads: its cache per token is smaller than 13B's.
    big, small = sizing("llama-2-70b"), sizing("llama-2-13b")
    assert big.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2
    assert big.kv_bytes_per_token is not None and small.kv_bytes_per_token is not None
    assert big.kv_bytes_per_token < small.kv_bytes_per_token


def test_sizing_totals_and_accelerator_count() -> None:
    s = sizing("llama-3.1-70b", precision="fp16", context_tokens=8192, batch=16, gpu_memory_gb=80)
    assert s.weights_gb == pytest.approx(70.6 * 2)
    assert s.kv_cache_gb == pytest.approx(2 * 80 * 8 * 128 * 2 * 8192 * 16 / 1e9)
    assert s.total_gb == pytest.approx(s.weights_gb + s.kv_cache_gb)
    assert s.gpus == math.ceil(s.total_gb / 72)
    explicit = sizing(params="13B", layers=40, kv_heads=40, head_dim=128, context_tokens=4096)
    assert explicit.kv_cache_gb == pytest.approx(sizing("llama-2-13b").kv_cache_gb)
    assert sizing(params="13B").kv_cache_gb is None
    for shape in MODEL_SHAPES.values():
        assert shape.source.startswith("https://") and shape.params > 1e9


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: weights_memory_gb(13, "fp16"), "give the count"),
        (lambda: weights_memory_gb("thirteen", "fp16"), "cannot read 'thirteen'"),
        (lambda: weights_memory_gb("13B", "fp12"), "unknown precision 'fp12'"),
        (lambda: sizing("gpt-5"), "no shape known for model 'gpt-5'"),
        (lambda: sizing(params="7B", layers=32), "needs all of layers, kv_heads and head_dim"),
        (lambda: sizing("llama-2-7b", batch=0), "batch must be a whole number"),
        (lambda: sizing(), "give a model name or params"),
    ],
)
def test_sizing_bad_input(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]


def test_docstring_examples_run() -> None:
    # the modules share their names with the functions they define: fetch them by path
    for name in ("encs", "breakeven", "sizing"):
        module = importlib.import_module(f"llmspend.economics.{name}")
        failed, attempted = doctest.testmod(module, raise_on_error=False)
        assert attempted > 0 and failed == 0, module.__name__


def test_public_api() -> None:
    assert llmspend.economics.encs is encs and "economics" in llmspend.__all__
    assert set(llmspend.economics.__all__) <= set(dir(llmspend.economics))
