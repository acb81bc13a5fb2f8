"""Cascades with real ONNX scorers (``llmspend.scoring``): the step scorers ``cascade fit``
trains by default (exported exactly, loaded by ``cascade eval`` and by ``wrap(cascade=...)``,
scored by real onnxruntime sessions, sync and async), and a scorer given with ``--scorer DIR``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

import llmspend
from llmspend.cascade import Plan, Step
from llmspend.cascade.data import load_table
from llmspend.cascade.fit import FeatureTable, fit_plan
from llmspend.cascade.heads import StepHead, TextBasis, fit_step_head
from llmspend.cascade.plan import OnnxStepScorer, load_plan
from llmspend.cli import main
from llmspend.exceptions import ConfigError
from llmspend.scoring.base import TrainingRow
from llmspend.scoring.logistic import LogisticScorer
from llmspend.testing import FakeLLMServer

from ._scoring import needs_torch, tiny_scorer
from .conftest import API_KEY, Spans
from .test_cascade_fit import CHEAP, MID, STRONG, synthetic_rows, write_csv
from .test_cascade_stage import SNAPSHOT, answers, ask
from .test_cascade_stage import CHEAP as STAGE_CHEAP
from .test_cascade_stage import STRONG as STAGE_STRONG

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def train_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("onnx") / "train.csv", synthetic_rows(60, 1))


def _export(tmp: Path) -> Any:
    from llmspend.cascade.scorers import StepScorerExport

    return StepScorerExport(tmp, encoder="tiny")


def test_exported_step_scorers_match_the_fitted_heads(train_csv: Path, tmp_path: Path) -> None:
    # the fit's heads are linear in the standardised embedding: the ONNX graph must give the
    # very scores the thresholds were tuned on, with the text on and with it off
    needs_torch()
    from llmspend.scoring import OnnxScorer

    table = load_table(train_csv)
    feats = FeatureTable(table)
    export = _export(tmp_path)
    export.embed(feats)
    assert feats.embeddings is not None and feats.embeddings.shape[:2] == (3, len(table))
    model, prefix = table.index(MID), [table.index(CHEAP)]
    names = feats.names(prefix)
    x, y = feats.matrix(model, prefix), table.correct[:, model]
    basis = TextBasis.fit(feats.embeddings[model])
    rows = feats.step_rows(model, prefix, names)
    for text_l2 in (math.inf, 10.0):
        head = fit_step_head(x, y, features=names, l2=1.0, text=basis.components(feats.embeddings[model]),
                             text_l2=text_l2, basis=basis, models=(MID,), after=(CHEAP,))
        assert head.uses_text == math.isfinite(text_l2)
        spec = export.export(f"{MID}|{CHEAP}", head, rows)
        assert spec.text == head.uses_text and spec.features == names and spec.after == (CHEAP,)
        scorer = OnnxScorer(spec.path)
        assert ("input_ids" in scorer.metadata.inputs) == head.uses_text  # text off: the features alone
        assert (Path(spec.path) / "tokenizer.json").exists() == head.uses_text
        got = scorer.score([r.query for r in rows], [r.answer for r in rows], model=MID,
                           features=[list(r.features) for r in rows])
        np.testing.assert_allclose(got, head.predict(x, feats.embeddings[model]), atol=1e-4)
        # the same head exported again is the same directory, written once
        assert export.export(f"{MID}|{CHEAP}", head, rows).path == spec.path


def test_fit_writes_onnx_step_scorers_and_eval_runs_them(train_csv: Path, tmp_path: Path) -> None:
    needs_torch()
    table = load_table(train_csv)
    plan = fit_plan(table, max_depth=2, margin_z=1.0, folds=3, step_scorers=_export(tmp_path / "plan.scorers"))
    specs = plan.used_scorers
    assert specs and all(isinstance(s, OnnxStepScorer) for s in specs.values())
    assert plan.training["step_scorers"]["encoder"] == "tiny-random-bert"
    assert plan.training["step_scorers"]["max_length"] == 64  # suited to these short pairs
    plan.save(tmp_path / "plan.json")
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert all(s["path"].startswith("plan.scorers/") for s in saved["scorers"].values())
    # the ONNX graphs replay what the in-memory fit measured: its numeric twin gives the same
    # decisions wherever the text is off
    from llmspend.cascade.evaluate import evaluate_plan, feature_table, step_scores

    again = load_plan(tmp_path / "plan.json")
    result = evaluate_plan(again, table)
    assert 0.5 < result["accuracy"] <= 1.0
    numeric = fit_plan(table, max_depth=2, margin_z=1.0, folds=3)
    assert numeric.models == again.models and len(again.steps) > 1
    onnx_scores = step_scores(again, again.steps, feature_table(again, table))
    numeric_scores = step_scores(numeric, numeric.steps, feature_table(numeric, table))
    off = [k for k, s in enumerate(again.steps[:-1]) if not getattr(again.scorers[s.scorer or ""], "text", True)]
    assert off  # with 60 rows and a random encoder, cross-validation keeps the text off
    np.testing.assert_allclose(onnx_scores[:, off], numeric_scores[:, off], atol=1e-4)


def _conf_step_scorer(tmp_path: Path, *, text: bool) -> OnnxStepScorer:
    """P(correct) = sigmoid(5 + 5 * conf) as an ONNX step scorer (the stage tests' logistic
    one); with ``text``, plus a small weight on the tiny encoder's embedding."""
    numeric = LogisticScorer(features=("conf",), weights=(5.0,), bias=5.0, mean=(0.0,), scale=(1.0,), models=(STAGE_CHEAP,))
    rows = [TrainingRow(f"q{i}", a, a == "Paris", STAGE_CHEAP, (c,))
            for i, (a, c) in enumerate([("Paris", -0.01), ("Lyon", -3.0)] * 10)]
    export = _export(tmp_path / "scorers")
    head = StepHead(numeric, feature_low=(-20.0,), feature_high=(0.0,))
    if text:
        encoder = export.encoder_for([r.query for r in rows], [r.answer for r in rows])
        emb = encoder.embed([r.query for r in rows], [r.answer for r in rows])
        basis = TextBasis.fit(emb)
        head = StepHead(numeric, 10.0, basis, np.full(emb.shape[1], 0.01), (-20.0,), (0.0,))
    return export.export(STAGE_CHEAP, head, rows)


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("text", [False, True])
async def test_the_stage_scores_with_onnx_step_scorers(server: FakeLLMServer, spans: Spans, tmp_path: Path,
                                                       is_async: bool, text: bool) -> None:
    needs_torch()
    from llmspend.scoring import OnnxScorer

    spec = _conf_step_scorer(tmp_path, text=text)
    Plan(steps=(Step(STAGE_CHEAP, 0.5, "cheap"), Step(STAGE_STRONG)), scorers={"cheap": spec},
         alias="support-bot").save(tmp_path / "plan.json")
    server.answer_with(answers)
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    client = llmspend.wrap(cls(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           cascade=str(tmp_path / "plan.json"))
    assert (await ask(client, "an easy one", is_async=is_async)).model == SNAPSHOT[STAGE_CHEAP]
    assert (await ask(client, "a hard one", is_async=is_async)).model == SNAPSHOT[STAGE_STRONG]
    parents = [s for s in spans.finished if s.name.startswith("cascade ")]
    assert [p.attributes["llmspend.scorer.provider"] for p in parents] == ["CPUExecutionProvider"] * 2
    # the score on the span is the scorer directory's own, for the features the stage computed
    scorer = OnnxScorer(spec.path)
    expected = scorer.score(["an easy one", "a hard one"], ["Paris", "Lyon"], features=[[-0.01], [-3.0]])
    got = [p.events[0].attributes["llmspend.cascade.score"] for p in parents]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_a_plan_and_its_scorer_directories_must_match(tmp_path: Path) -> None:
    needs_torch()
    spec = _conf_step_scorer(tmp_path, text=False)
    steps = (Step(STAGE_CHEAP, 0.5, "cheap"), Step(STAGE_STRONG))
    missing = Plan(steps=steps, scorers={"cheap": OnnxStepScorer(str(tmp_path / "gone"), ("conf",), (STAGE_CHEAP,))})
    with pytest.raises(ConfigError, match="no scorer at"):
        llmspend.wrap(openai.OpenAI(api_key=API_KEY), cascade=missing)
    other = Plan(steps=steps, scorers={"cheap": OnnxStepScorer(spec.path, ("conf", "answer_len"), (STAGE_CHEAP,))})
    with pytest.raises(ConfigError, match="do not belong together"):
        llmspend.wrap(openai.OpenAI(api_key=API_KEY), cascade=other)


def test_cli_default_with_the_real_encoder(train_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # what `llmspend cascade fit` does with no options, all-MiniLM-L6-v2 included, on a small sample
    needs_torch()
    plan = tmp_path / "plan.json"
    assert main(["cascade", "fit", "--train", str(train_csv), "--out", str(plan), "--max-depth", "2",
                 "--margin", "1", "--folds", "3"]) == 0
    assert "step scorers in" in capsys.readouterr().out
    data = json.loads(plan.read_text())
    assert data["training"]["step_scorers"]["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert all(s["kind"] == "onnx" for s in data["scorers"].values())
    test = write_csv(tmp_path / "test.csv", synthetic_rows(40, 2))
    assert main(["cascade", "eval", "--plan", str(plan), "--test", str(test), "--json"]) == 0
    assert 0.0 < json.loads(capsys.readouterr().out)["accuracy"] <= 1.0


def test_cli_with_a_given_scorer(train_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    needs_torch()
    from llmspend.scoring import train_scorer

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
    assert all(s["kind"] == "logistic" and "text_score" in s["features"] for s in data["scorers"].values())
    capsys.readouterr()
    test = write_csv(tmp_path / "test.csv", synthetic_rows(40, 2))
    assert main(["cascade", "eval", "--plan", str(plan), "--test", str(test), "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert 0.0 < result["accuracy"] <= 1.0
    assert load_plan(plan).text_scorer == data["text_scorer"]
    assert STRONG not in data["training"]["models"]
