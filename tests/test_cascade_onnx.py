"""Cascades with a real ONNX text scorer (``llmspend.scoring``): trained per fold by the fit,
or given with ``--scorer DIR``; loaded by ``cascade eval`` and by ``wrap(cascade=...)``, scored
by a real onnxruntime session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

import llmspend
from llmspend.cascade.data import load_table
from llmspend.cascade.fit import fit_plan
from llmspend.cascade.plan import load_plan
from llmspend.cascade.scorers import trained_text_scorer
from llmspend.cli import main
from llmspend.testing import FakeLLMServer

from ._scoring import needs_torch, tiny_scorer
from .conftest import API_KEY, Spans
from .test_cascade_fit import CHEAP, MID, STRONG, synthetic_rows, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def train_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("onnx") / "train.csv", synthetic_rows(60, 1))


def test_fit_trains_text_scorers_per_fold(train_csv: Path, tmp_path: Path, server: FakeLLMServer, spans: Spans) -> None:
    needs_torch()
    table = load_table(train_csv, models=[CHEAP, STRONG])
    source = trained_text_scorer(tmp_path / "plan.scorer", encoder="tiny")
    plan = fit_plan(table, max_depth=2, margin_z=1.0, folds=3, text_scorer=source)
    assert plan.text_scorer == {"kind": "onnx", "path": str(tmp_path / "plan.scorer")}
    assert (tmp_path / "plan.scorer" / "model.onnx").is_file()  # the one trained on every row
    assert all("text_score" in s.features for s in plan.scorers.values())
    path = tmp_path / "plan.json"
    plan.with_route(alias="quiz").save(path)

    # wrap() loads the ONNX scorer the plan names and the stage scores with it
    server.answer_with(lambda model, messages: ("A", -0.01) if model == CHEAP else ("A", -0.5))
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           cascade=str(path))
    r = client.chat.completions.create(model="quiz", messages=[{"role": "user", "content": "question 1?"}])
    assert r.model in ("gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", CHEAP, STRONG)
    (parent,) = [s for s in spans.finished if s.name == "cascade quiz"]
    assert parent.attributes["llmspend.scorer.provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert parent.attributes["llmspend.cascade.scorer_ms"] > 0
    (event,) = parent.events
    assert 0.0 <= event.attributes["llmspend.cascade.score"] <= 1.0


def test_cli_with_a_given_scorer(train_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    needs_torch()
    from llmspend.scoring import TrainingRow, train_scorer

    out = str(tmp_path / "x.json")
    other = tiny_scorer(tmp_path / "scorers")  # trained on another model's answers only
    assert main(["cascade", "fit", "--train", str(train_csv), "--out", out, "--scorer", str(other)]) == 2
    assert "judges answers of ['small-model']" in capsys.readouterr().err
    # a scorer for any model's answers, reading the provider's log-probability as a feature
    rows = [TrainingRow(r["user_prompt"], r[f"{m}__answer"], bool(r[f"{m}__correct"]), None, (r[f"{m}__conf_raw"],))
            for r in synthetic_rows(60, 7) for m in (CHEAP, MID)]
    scorer_dir = train_scorer(rows, tmp_path / "any", encoder="tiny", feature_names=("conf_raw",), l2=1.0, progress=False)
    plan = tmp_path / "plan.json"
    assert main(["cascade", "fit", "--train", str(train_csv), "--out", str(plan), "--models", f"{CHEAP},{MID}",
                 "--max-depth", "2", "--margin", "1", "--folds", "3", "--scorer", str(scorer_dir)]) == 0
    data = json.loads(plan.read_text())
    assert data["text_scorer"]["kind"] == "onnx" and Path(data["text_scorer"]["path"]).name == scorer_dir.name
    capsys.readouterr()
    test = write_csv(tmp_path / "test.csv", synthetic_rows(40, 2))
    assert main(["cascade", "eval", "--plan", str(plan), "--test", str(test), "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert 0.0 < result["accuracy"] <= 1.0
    assert load_plan(plan).text_scorer == data["text_scorer"]
