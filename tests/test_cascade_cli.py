"""``llmspend cascade fit`` and ``llmspend cascade eval``: files in, plan and figures out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from llmspend.cli import main

from ._scoring import needs_torch
from .test_cascade_fit import CHEAP, MID, STRONG, synthetic_rows, write_csv, write_jsonl


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    train = write_csv(root / "train.csv", synthetic_rows(300, 1))
    test = write_csv(root / "test.csv", synthetic_rows(500, 2))
    return {"root": root, "train": train, "test": test}


@pytest.fixture(scope="module")
def files(inputs: dict[str, Path]) -> dict[str, Path]:
    # the default step scorers (ONNX scorer directories), with the tiny random encoder for
    # speed: training them needs llmspend[train] (the dev install without it skips, saying so)
    needs_torch()
    plan = inputs["root"] / "out" / "plan.json"
    assert main(["cascade", "fit", "--train", str(inputs["train"]), "--out", str(plan), "--max-depth", "3",
                 "--alias", "faq-bot", "--encoder", "tiny"]) == 0
    return {**inputs, "plan": plan}


def test_fit_writes_a_plan(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    plan = json.loads(files["plan"].read_text())
    assert plan["alias"] == "faq-bot"
    assert [s["model"] for s in plan["chain"]] == [CHEAP, MID, STRONG]
    assert plan["objective"]["mode"] == "max_accuracy_drop" and plan["objective"]["max_accuracy_drop"] == 0.01
    assert plan["training"]["source"] == "train.csv"
    assert plan["training"]["step_scorers"]["kind"] == "onnx"
    # each step's scorer is a scorer directory beside the plan, named relative to it
    for spec in plan["scorers"].values():
        assert spec["kind"] == "onnx" and spec["path"].startswith("plan.scorers/")
        meta = json.loads((files["plan"].parent / spec["path"] / "metadata.json").read_text())
        assert meta["feature_names"] == spec["features"] and meta["models"] == spec["models"]
    used = {Path(s["path"]).name for s in plan["scorers"].values()}
    assert {p.name for p in (files["plan"].parent / "plan.scorers").iterdir()} == used


def test_refit_removes_scorers_it_no_longer_uses(files: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    plan = tmp_path / "plan.json"
    stale = tmp_path / "plan.scorers" / "old-step"
    shutil.copytree(next((files["plan"].parent / "plan.scorers").iterdir()), stale)
    (tmp_path / "plan.scorers" / "notes").mkdir()  # not a scorer: left alone
    assert main(["cascade", "fit", "--train", str(files["train"]), "--out", str(plan), "--max-depth", "2",
                 "--margin", "1", "--encoder", "tiny"]) == 0
    assert not stale.exists() and (tmp_path / "plan.scorers" / "notes").is_dir()


def test_eval_json(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["cascade", "eval", "--plan", str(files["plan"]), "--test", str(files["test"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"accuracy", "cost_usd_per_query", "calls_per_query", "best_single", "singles"}
    assert set(result["best_single"]) == {"model", "accuracy", "cost_usd_per_query"}
    assert result["best_single"]["model"] == STRONG
    assert result["accuracy"] >= result["best_single"]["accuracy"] - 0.02
    assert result["cost_usd_per_query"] < 0.6 * result["best_single"]["cost_usd_per_query"]
    assert set(result["calls_per_query"]) == {CHEAP, MID, STRONG} and result["calls_per_query"][CHEAP] == 1.0
    assert {s["model"] for s in result["singles"]} == {CHEAP, MID, STRONG}


def test_eval_table_and_plot(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    png = files["root"] / "tradeoff.png"
    capsys.readouterr()
    assert main(["cascade", "eval", "--plan", str(files["plan"]), "--test", str(files["test"]), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "cascade" in out and f"{STRONG} (best)" in out and "calls per query" in out
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_fit_budget_on_jsonl(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    calls = write_jsonl(inputs["root"] / "calls.jsonl", synthetic_rows(300, 1))
    plan = inputs["root"] / "budget.json"
    assert main(["cascade", "fit", "--train", str(calls), "--out", str(plan), "--budget", "0.0004",
                 "--max-depth", "2", "--margin", "0", "--no-logprobs", "--numeric-scorers"]) == 0
    data = json.loads(plan.read_text())
    assert data["objective"] == {"mode": "budget", "budget_usd_per_query": 0.0004, "margin_z": 0.0, "margin_chosen_by": "given"}
    assert data["cv"]["cost_usd_per_query"] <= 0.0004
    assert data["requires_logprobs"] is False
    assert all("conf" not in f for s in data["scorers"].values() for f in s["features"])
    assert not (inputs["root"] / "budget.scorers").exists()


def test_numeric_scorers_are_held_in_the_plan(inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.json"
    assert main(["cascade", "fit", "--train", str(inputs["train"]), "--out", str(plan), "--max-depth", "2",
                 "--margin", "1", "--numeric-scorers"]) == 0
    data = json.loads(plan.read_text())
    assert data["scorers"] and {s["kind"] for s in data["scorers"].values()} == {"logistic"}
    assert data["training"]["step_scorers"] == {"kind": "logistic"}
    assert not (tmp_path / "plan.scorers").exists()
    assert main(["cascade", "eval", "--plan", str(plan), "--test", str(inputs["test"]), "--json"]) == 0


def test_eval_says_how_many_queries_it_left_out(inputs: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Before, eval dropped the queries some model had no outcome for without a word (fit says so).
    plan = tmp_path / "plan.json"
    assert main(["cascade", "fit", "--train", str(inputs["train"]), "--out", str(plan), "--max-depth", "2",
                 "--margin", "1", "--numeric-scorers"]) == 0
    rows = synthetic_rows(40, 4)
    for row in rows[:7]:
        row[f"{MID}__correct"] = ""  # not judged
    test = write_csv(tmp_path / "test.csv", rows)
    capsys.readouterr()
    assert main(["cascade", "eval", "--plan", str(plan), "--test", str(test)]) == 0
    printed = capsys.readouterr()
    assert "(33 queries)" in printed.out and "7 queries were left out" in printed.err
    assert main(["cascade", "eval", "--plan", str(plan), "--test", str(test), "--json"]) == 0
    assert "7 queries were left out" in capsys.readouterr().err  # stdout stays one JSON object


def test_errors_are_clear(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = str(inputs["root"] / "x.json")
    assert main(["cascade", "fit", "--train", str(inputs["root"] / "nope.csv"), "--out", out]) == 2
    assert "no such file" in capsys.readouterr().err
    calls = write_jsonl(inputs["root"] / "calls.jsonl", synthetic_rows(5, 3))
    assert main(["cascade", "fit", "--train", str(calls), "--models", f"{MID},gpt-5", "--out", out]) == 2
    assert f"no outcomes for gpt-5; it has {CHEAP}, {MID}, {STRONG}\n" in capsys.readouterr().err
    assert main(["cascade", "fit", "--train", str(inputs["train"]), "--out", out, "--margin", "lots", "--numeric-scorers"]) == 2
    assert "--margin takes" in capsys.readouterr().err
    assert main(["cascade", "fit", "--train", str(inputs["train"]), "--out", out, "--max-length", "long"]) == 2
    assert "--max-length takes" in capsys.readouterr().err
    assert main(["cascade", "eval", "--plan", out, "--test", str(inputs["test"])]) == 2
    assert "no cascade plan at" in capsys.readouterr().err
    assert main(["cascade", "fit", "--train", str(inputs["train"]), "--out", out, "--scorer", str(inputs["root"] / "none")]) == 2
    assert "no scorer at" in capsys.readouterr().err
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "llmspend.scoring.train", None)  # torch not installed
        assert main(["cascade", "fit", "--train", str(inputs["train"]), "--out", out]) == 2
        err = capsys.readouterr().err
        assert "needs llmspend[train]" in err and "--numeric-scorers" in err
    monkeypatch.setitem(sys.modules, "llmspend.scoring.onnx", None)  # the runtime not installed
    assert main(["cascade", "fit", "--train", str(inputs["train"]), "--out", out, "--scorer", str(inputs["root"])]) == 2
    assert "install llmspend[scorer]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cascade", "fit", "--train", str(inputs["train"]), "--out", out, "--budget", "1", "--max-accuracy-drop", "0.1"])


def test_demo_section_saves_money(capsys: pytest.CaptureFixture[str]) -> None:
    from llmspend.demo import run_demo

    result = run_demo(sections=["cascade"]).sections["cascade"]
    out = capsys.readouterr().out
    assert "cascade (plan above)" in out and "less spent" in out
    assert result["plan"] == ["gpt-4o-mini", "gpt-4o"]
    assert 0 < result["cascade_usd"] < 0.5 * result["baseline_usd"]
    assert result["saved"] == pytest.approx(1 - result["cascade_usd"] / result["baseline_usd"])
    assert 0 < result["accepted_cheap"] < result["questions"]
    assert result["cascade_accuracy"] >= result["baseline_accuracy"] - 0.05
