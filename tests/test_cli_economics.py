"""The command line of ``llmspend economics`` and ``llmspend report``: tables, --json, --plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmspend.cli import COMMANDS, main
from llmspend.testing.spans import write_synthetic_spans

PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 10_000 and data.startswith(PNG)


def test_commands_are_listed() -> None:
    assert "economics" in COMMANDS and "report" in COMMANDS


def test_group_without_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "economics")
    assert code == 0 and "encs" in out and "breakeven" in out and "sizing" in out


# -- encs ----------------------------------------------------------------------------------------
SEED = ["--hourly-rate", "10", "--rates", "use=0.644,ignore=0.356", "--saved", "use=25,ignore=0"]


def test_encs_table_compares_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "economics", "encs", *SEED, "--cost-cents", "distilled=0.0011",
                       "--cost-cents", "ft-gpt3=6.54", "--volume", "1.2M")
    assert code == 0
    distilled = next(line for line in out.splitlines() if line.startswith("distilled"))
    assert "4.4711¢" in distilled and "$53,653" in distilled
    gpt3 = next(line for line in out.splitlines() if line.startswith("ft-gpt3"))
    assert "-2.0678¢" in gpt3 and "never" in gpt3


def test_encs_json_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    chart = tmp_path / "encs.png"
    code, out, _ = run(capsys, "economics", "encs", *SEED, "--cost-usd", "0.000011", "--volume", "20M",
                       "--setup-usd", "894k", "--json", "--plot", str(chart))
    assert code == 0
    result = json.loads(out)["model"]
    assert result["encs_usd"] == pytest.approx(0.044711, abs=1e-6)
    assert result["breakeven_volume"] == pytest.approx(894_000 / result["encs_usd"])
    assert result["pays_back"] is True
    assert_png(chart)


def test_encs_from_an_action_log_and_measured_spans(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "decisions.csv"
    log.write_text("action,seconds\nuse,5\nuse,5\nedit,20\nignore,33\n")
    spans = tmp_path / "spans.jsonl"
    truth = write_synthetic_spans(spans, 400, seed=4)
    code, out, _ = run(capsys, "economics", "encs", "--hourly-rate", "36", "--actions", str(log),
                       "--baseline-seconds", "30", "--spans", str(spans), "--json")
    assert code == 0
    result = json.loads(out)["measured"]
    assert result["action_rates"] == {"use": 0.5, "edit": 0.25, "ignore": 0.25}
    assert result["seconds_saved"] == {"use": 25.0, "edit": 10.0, "ignore": -3.0}
    priced = truth.calls - truth.unknown - truth.failed
    assert result["cost_per_response_usd"] == pytest.approx(truth.cost_usd / priced)
    assert result["gross_saving_usd"] == pytest.approx(0.01 * (0.5 * 25 + 0.25 * 10 - 0.25 * 3))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hourly-rate", "10", "--saved", "use=25", "--cost-usd", "0.01"], "give the action rates"),
        (["--hourly-rate", "10", "--rates", "use=0.5,ignore=0.4", "--saved", "use=25,ignore=0", "--cost-usd", "0.01"],
         "add up to 1"),
        (["--hourly-rate", "10", "--rates", "use=1", "--cost-usd", "0.01"], "how many seconds each action saves"),
    ],
)
def test_encs_errors_say_what_to_fix(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, "economics", "encs", *argv)
    assert code == 2 and out == "" and message in err and err.startswith("llmspend: error:")


def test_bad_number_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["economics", "encs", "--hourly-rate", "ten", "--rates", "use=1", "--cost-usd", "0"])
    assert info.value.code == 2 and "not a number: 'ten'" in capsys.readouterr().err


# -- breakeven -----------------------------------------------------------------------------------
BLOG = ["--tokens", "667", "--usd-per-1k", "0.002", "--instance-usd-per-day", "150",
        "--lambda", "5,128,0.0000166667", "--gateway-usd-per-million", "1"]


def test_breakeven_blog_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    chart = tmp_path / "breakeven.png"
    code, out, _ = run(capsys, "economics", "breakeven", *BLOG, "--volumes", "1000,1M", "--plot", str(chart))
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()[:1].isdigit()}
    assert rows["1,000"][1] == "$1.33" and rows["1,000"][-1] == "api"
    assert rows["1,000,000"][-1] == "self-host"
    assert "Self-hosting costs less from 113,414 requests a day" in out
    assert f"Chart written to {chart}" in out
    assert_png(chart)


def test_breakeven_json_from_spans_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spans = tmp_path / "spans.jsonl"
    truth = write_synthetic_spans(spans, 300, seed=9)
    code, out, _ = run(capsys, "economics", "breakeven", "--spans", str(spans), "--instance-usd-per-hour", "1",
                       "--volumes", "10", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["api_usd_per_request"] == pytest.approx(truth.cost_usd / (truth.calls - truth.unknown - truth.failed))
    assert data["instance_usd_per_day"] == 24 and data["points"][0]["cheaper"] == "api"
    code, _, err = run(capsys, "economics", "breakeven", "--tokens", "10", "--usd-per-1k", "1",
                       "--instance-usd-per-day", "1", "--lambda", "5,128")
    assert code == 2 and "--lambda takes SECONDS,MB,USD_PER_GB_SECOND" in err


# -- sizing --------------------------------------------------------------------------------------
def test_sizing_table_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "economics", "sizing", "--params", "13B")
    assert code == 0
    weights = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.split()[:1] in (["fp32"], ["fp16"], ["int8"])}
    assert weights == {"fp32": "52.00", "fp16": "26.00", "int8": "13.00"}
    code, out, _ = run(capsys, "economics", "sizing", "llama-3.1-70b", "--precision", "fp16", "--context", "8192",
                       "--batch", "16", "--gpu-gb", "80", "--json")
    data = json.loads(out)[0]
    assert code == 0 and data["kv_cache_gb"] == pytest.approx(2 * 80 * 8 * 128 * 2 * 8192 * 16 / 1e9)
    assert data["gpus"] >= 3
    code, out, _ = run(capsys, "economics", "sizing", "--list")
    assert code == 0 and "llama-2-13b" in out and "800 KiB" in out
    code, _, err = run(capsys, "economics", "sizing", "gpt-5")
    assert code == 2 and "no shape known for model 'gpt-5'" in err


# -- report --------------------------------------------------------------------------------------
def test_report_on_the_demos_spans(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from llmspend.demo import run_demo

    spans = tmp_path / "demo.jsonl"
    with open(os.devnull, "w") as quiet:
        demo = run_demo(out=quiet, rounds=1, show_spans=0, spans_out=str(spans), sections=["cost"])
    chart = tmp_path / "spend.png"
    code, out, _ = run(capsys, "report", str(spans), "--plot", str(chart))
    assert code == 0
    calls = demo.sections["cost"]["calls"]
    assert f"{calls} LLM calls in 1 file" in out
    assert f"Cost ${demo.sections['cost']['total_usd']:,.6f}" in out
    for title in ("By model", "By feature", "By user", "By day (UTC", "Saved by stage"):
        assert title in out
    assert_png(chart)
    code, out, _ = run(capsys, "report", str(spans), "--json", "--top", "2")
    data = json.loads(out)
    assert data["total"]["calls"] == calls and len(data["by_model"]) <= 3
    assert data["total"]["cost_usd"] == pytest.approx(demo.sections["cost"]["total_usd"])


def test_report_unknown_costs_are_not_zero(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spans = tmp_path / "syn.jsonl"
    truth = write_synthetic_spans(spans, 500, seed=11)
    code, out, _ = run(capsys, "report", str(spans), "--by", "model")
    assert code == 0 and truth.unknown > 0
    assert f"{truth.unknown} of unknown cost (unknown_model {truth.unknown}), not counted as $0" in out
    assert "By feature" not in out
    code, _, err = run(capsys, "report", str(spans), "--by", "team")
    assert code == 2 and "unknown breakdown team" in err


def test_report_reads_stdin_and_shows_progress(tmp_path: Path) -> None:
    pytest.importorskip("tqdm", reason="the progress bar is drawn by tqdm, which is optional")
    spans = tmp_path / "syn.jsonl"
    truth = write_synthetic_spans(spans, 200, seed=12)
    env = {**os.environ, "LLMSPEND_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-m", "llmspend", "report", "-", "--json"], input=spans.read_bytes(),
                          capture_output=True, check=True, env=env)
    assert json.loads(done.stdout)["total"]["calls"] == truth.calls
    done = subprocess.run([sys.executable, "-m", "llmspend", "report", str(spans), "--progress", "--by", "day"],
                          capture_output=True, text=True, check=True, env=env)
    assert "B/s" in done.stderr or "100%" in done.stderr  # tqdm's bar, by bytes


def test_report_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "report", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "cannot read span file" in err


def test_argument_shapes_are_checked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["economics", "encs", "--hourly-rate", "10", "--actions", "x.csv", "--where", "gpt2", "--cost-usd", "0"])
    assert "COLUMN=VALUE" in capsys.readouterr().err
    spans = tmp_path / "syn.jsonl"
    write_synthetic_spans(spans, 20, seed=1)
    code, _, err = run(capsys, "report", str(spans), "--top", "0")
    assert code == 2 and "--top must be at least 1" in err
