"""Scorer training: data files, the head, export checks, int8, fine-tuning, the real MiniLM
encoder and the ``llmspend scorer`` command line."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from llmspend import ConfigError, ScorerExportError
from llmspend.cli import main
from llmspend.scoring import OnnxScorer, TrainingRow, load_rows, rows_sha256

from ._scoring import MODEL, make_rows, needs_torch, tiny_scorer

ROWS = make_rows()


# -- data files (no torch needed) --------------------------------------------------------

def test_load_rows_from_jsonl_and_csv(tmp_path: Path) -> None:
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [
        {"query": "q1", "answer": "a1", "correct": True, "model": "m", "features": {"conf_raw": -0.5, "other": 1}},
        {"query": "q2", "answer": "a2", "correct": 0, "features": [-2.0]},
        {"query": "q3", "answer": "a3", "correct": "yes"},
    ]) + "\n\n")
    rows = load_rows(jsonl, feature_names=["conf_raw"])
    assert [r.correct for r in rows] == [True, False, True]
    assert rows[0].features == (-0.5,) and rows[1].features == (-2.0,) and math.isnan(rows[2].features[0])
    assert rows[0].model == "m" and rows[1].model is None
    assert load_rows(jsonl)[0].features == ()

    table = tmp_path / "rows.csv"
    table.write_text("query,answer,correct,conf_raw\nq1,a1,1,-0.25\nq2,a2,false,-inf\n")
    rows = load_rows(table, feature_names=["conf_raw"])
    assert [(r.query, r.correct, r.features) for r in rows] == [("q1", True, (-0.25,)), ("q2", False, (-math.inf,))]


def test_load_rows_from_a_wide_csv(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    with wide.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["qid", "user_prompt", "m1__answer", "m1__correct", "m1__conf_raw", "m2__answer", "m2__correct", "m2__conf_raw"])
        writer.writerow([1, "Capital of France?", "Paris", 1, -0.1, "Lyon", 0, ""])
        writer.writerow([2, "2 + 2?", "5", 0, -3.0, "4", 1, -0.01])
    rows = load_rows(wide, model="m2", feature_names=["conf_raw"])
    assert [(r.query, r.answer, r.correct, r.model) for r in rows] == [
        ("Capital of France?", "Lyon", False, "m2"), ("2 + 2?", "4", True, "m2")]
    assert math.isnan(rows[0].features[0]) and rows[1].features == (-0.01,)
    with pytest.raises(ConfigError, match=r"one column per model \(m1, m2\)"):
        load_rows(wide)
    with pytest.raises(ConfigError, match="no column m1__logprob"):
        load_rows(wide, model="m1", feature_names=["logprob"])


def test_load_rows_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_rows(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "answer": "a", "correct": "maybe"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: 'correct' must be true/false"):
        load_rows(bad)
    bad.write_text('{"query": "q", "correct": true}\n')
    with pytest.raises(ConfigError, match="missing answer"):
        load_rows(bad)
    bad.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_rows(bad)
    bad.write_text('{"query": "q", "answer": "a", "correct": 1, "model": "x"}\n')
    with pytest.raises(ConfigError, match="no training rows for model 'y'"):
        load_rows(bad, model="y")
    table = tmp_path / "t.csv"
    table.write_text("query,answer,correct\nq,a,1\n")
    with pytest.raises(ConfigError, match="no column for feature 'conf_raw'"):
        load_rows(table, feature_names=["conf_raw"])


def test_rows_hash_follows_content_not_layout() -> None:
    assert rows_sha256(ROWS) == rows_sha256(list(ROWS))
    changed = [TrainingRow(ROWS[0].query, ROWS[0].answer, not ROWS[0].correct, MODEL, ROWS[0].features), *ROWS[1:]]
    assert rows_sha256(changed) != rows_sha256(ROWS)


def test_auc_and_stratified_folds() -> None:
    needs_torch()
    from llmspend.scoring.head import auc, stratified_folds

    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 5, 60).astype(float), rng.random(60) < 0.4
    pairs = [(p > n) + 0.5 * (p == n) for p in scores[labels] for n in scores[~labels]]
    assert auc(scores, labels) == pytest.approx(np.mean(pairs))
    folds = stratified_folds(labels, 4, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    assert max(f.size for f in folds) - min(f.size for f in folds) <= 1
    assert max(labels[f].sum() for f in folds) - min(labels[f].sum() for f in folds) <= 1


# -- training with the tiny encoder ------------------------------------------------------

@pytest.fixture(scope="module")
def encoder() -> object:
    needs_torch()
    from llmspend.scoring import PairEncoder

    return PairEncoder("tiny", progress=False)


def test_round_trip_metadata_and_dynamic_axes(tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tiny_scorer(tmp_path_factory.mktemp("rt"))
    assert sorted(p.name for p in directory.iterdir()) == ["metadata.json", "model.onnx", "tokenizer.json"]
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["format"] == "llmspend-scorer" and meta["schema_version"] == 1
    assert meta["models"] == [MODEL] and meta["feature_names"] == ["conf_raw"]
    assert meta["inputs"] == ["input_ids", "attention_mask", "token_type_ids", "features"]
    assert meta["training"]["data_sha256"] == rows_sha256(ROWS) and meta["training"]["rows"] == len(ROWS)
    assert meta["training"]["date"][:4].isdigit() and meta["quantized"] is False
    assert meta["encoder"]["name"] == "tiny-random-bert" and meta["export"]["opset"] >= 17
    assert meta["export"]["torch_max_abs_diff"] < 1e-4

    import onnx

    graph = onnx.load(str(directory / "model.onnx")).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["input_ids"] == ["batch", "sequence"] and dims["features"] == ["batch", 1]
    scorer = OnnxScorer(directory)
    assert len(scorer.score(["q"] * 3, ["a", "b" * 50, "c"], features=[[0.0]] * 3)) == 3


def test_onnx_agrees_with_pytorch(encoder: object, tmp_path: Path) -> None:
    """Rebuild the same model in PyTorch (same encoder, same head fit) and compare outputs."""
    from llmspend.scoring import PairEncoder, fit_head, train_scorer
    from llmspend.scoring.train import ScorerModel

    assert isinstance(encoder, PairEncoder)
    directory = train_scorer(ROWS, tmp_path / "s", encoder=encoder, feature_names=["conf_raw"], l2=0.5, progress=False)
    embeddings = encoder.embed([r.query for r in ROWS], [r.answer for r in ROWS])
    head = fit_head(embeddings, [r.correct for r in ROWS], features=np.array([r.features for r in ROWS]), l2=0.5)
    torch_scores = ScorerModel(encoder.module, head.module).probabilities(encoder, ROWS)
    onnx_scores = OnnxScorer(directory).score([r.query for r in ROWS], [r.answer for r in ROWS],
                                              features=[list(r.features) for r in ROWS])
    assert np.abs(np.asarray(onnx_scores) - torch_scores).max() < 1e-5
    # and the head learned something real from the feature: in-sample ranking well above chance
    from llmspend.scoring.head import auc

    assert auc(np.asarray(onnx_scores), np.array([r.correct for r in ROWS])) > 0.75


def test_a_head_without_text_exports_the_features_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # what a cascade fit writes for a step whose text cross-validation turned off
    needs_torch()
    from llmspend.scoring import train_scorer
    from llmspend.scoring.head import head_from_weights

    features = np.array([r.features for r in ROWS], dtype=np.float64)
    stats = np.array([features.mean(0), features.std(0), features.min(0), features.max(0)])
    head = head_from_weights(np.zeros((4, 0)), stats, np.array([2.0]), 0.5, l2=math.inf)
    directory = train_scorer(ROWS, tmp_path / "s", head=head, feature_names=["conf_raw"], progress=False)
    assert not (directory / "tokenizer.json").exists()
    scorer = OnnxScorer(directory)
    assert scorer.metadata.inputs == ("features",) and not scorer.metadata.reads_text
    got = scorer.score(["any question"] * 3, ["any answer"] * 3, features=[[-0.1], [None], [-50.0]])
    z = lambda v: 0.5 + 2.0 * (v - stats[0, 0]) / stats[1, 0]  # noqa: E731
    expected = [1 / (1 + math.exp(-z(v))) for v in (-0.1, stats[0, 0], stats[2, 0])]  # NaN: the mean; clipped
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert main(["scorer", "info", str(directory)]) == 0
    assert "the text is off" in capsys.readouterr().out
    with pytest.raises(ValueError, match="reads features"):
        scorer.score(["q"], ["a"])


def test_export_check_raises_when_outputs_disagree(encoder: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmspend.scoring import train, train_scorer

    monkeypatch.setattr(train, "EXPORT_TOLERANCE", 0.0)
    with pytest.raises(ScorerExportError, match="disagrees with PyTorch"):
        train_scorer(ROWS, tmp_path / "s", encoder=encoder, feature_names=["conf_raw"], l2=1.0, progress=False)  # type: ignore[arg-type]


def test_int8_model_loads_and_agrees(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("q")
    fp32, int8 = tiny_scorer(root), tiny_scorer(root, quantize=True)
    meta = json.loads((int8 / "metadata.json").read_text())
    assert meta["quantized"] is True
    report = meta["export"]["int8"]
    assert report["int8_bytes"] < report["fp32_bytes"] / 2 and report["max_abs_diff"] <= 0.1
    import onnx

    ops = {node.op_type for node in onnx.load(str(int8 / "model.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear"}
    rows = make_rows(30, seed=3)
    args = ([r.query for r in rows], [r.answer for r in rows])
    features = [list(r.features) for r in rows]
    a = np.asarray(OnnxScorer(fp32).score(*args, features=features))
    b = np.asarray(OnnxScorer(int8).score(*args, features=features))
    assert np.abs(a - b).max() < 0.1 and not np.array_equal(a, b)


def test_fine_tuning_changes_the_encoder(encoder: object, tmp_path: Path) -> None:
    from llmspend.scoring import PairEncoder, train_scorer

    assert isinstance(encoder, PairEncoder)
    before = [p.detach().clone() for p in encoder.module.parameters()]
    rows = ROWS[:32]
    frozen = train_scorer(rows, tmp_path / "frozen", encoder=encoder, feature_names=["conf_raw"], l2=1.0, progress=False)
    tuned = train_scorer(rows, tmp_path / "tuned", encoder=encoder, feature_names=["conf_raw"], l2=1.0,
                         finetune=True, epochs=2, lr=1e-3, progress=False)
    # the shared encoder (and so its cache) is left alone
    assert all((a == b).all() for a, b in zip(before, encoder.module.parameters()))
    meta = json.loads((tuned / "metadata.json").read_text())
    assert meta["encoder"]["finetuned"] is True and meta["training"]["finetune"]["epochs"] == 2
    assert meta["export"]["torch_max_abs_diff"] < 1e-4
    args = ([r.query for r in rows], [r.answer for r in rows])
    features = [list(r.features) for r in rows]
    assert OnnxScorer(tuned).score(*args, features=features) != pytest.approx(
        OnnxScorer(frozen).score(*args, features=features), abs=1e-4)


def test_pair_encoder_caches_and_out_of_fold_scores(encoder: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmspend.scoring import PairEncoder, fit_head, out_of_fold_scores

    assert isinstance(encoder, PairEncoder)
    queries, answers = [r.query for r in ROWS], [r.answer for r in ROWS]
    first = encoder.embed(queries, answers)
    assert first.shape == (len(ROWS), 32) and len(encoder) == len(set(zip(queries, answers)))

    def no_recompute(*_: object) -> None:
        raise AssertionError("a cached pair was embedded again")

    monkeypatch.setattr(encoder, "_compute", no_recompute)
    assert np.array_equal(encoder.embed(queries[::-1], answers[::-1]), first[::-1])
    held_out = out_of_fold_scores(ROWS, encoder=encoder, folds=4, l2=1.0)
    labels = np.array([r.correct for r in ROWS])
    in_sample = fit_head(first, labels, features=np.array([r.features for r in ROWS]), l2=1.0).predict(
        first, np.array([r.features for r in ROWS]))
    assert held_out.shape == (len(ROWS),) and ((held_out > 0) & (held_out < 1)).all()
    assert not np.allclose(held_out, in_sample, atol=1e-3)  # each row scored by a head that never saw it
    with pytest.raises(ConfigError, match="folds must be from 2"):
        out_of_fold_scores(ROWS, encoder=encoder, folds=1)


def test_in_memory_scorer_matches_the_exported_one(encoder: object, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from llmspend.scoring import PairEncoder, Scorer, fit_scorer, train_scorer

    assert isinstance(encoder, PairEncoder)
    in_memory = fit_scorer(ROWS, encoder=encoder, feature_names=["conf_raw"], l2=1.0)
    exported = OnnxScorer(train_scorer(ROWS, tmp_path / "s", encoder=encoder, feature_names=["conf_raw"], l2=1.0,
                                       progress=False))
    assert isinstance(in_memory, Scorer) and in_memory.models == (MODEL,) and in_memory.provider == "CPUExecutionProvider"
    rows = make_rows(24, seed=5)  # pairs the encoder has not seen yet
    args = ([r.query for r in rows], [r.answer for r in rows])
    features = [{"conf_raw": r.features[0]} for r in rows]
    expected = in_memory.score(*args, features=features)
    assert expected == pytest.approx(exported.score(*args, features=features), abs=1e-5)
    def part(i: int) -> list[float]:
        return in_memory.score(args[0][i:i + 6], args[1][i:i + 6], features=features[i:i + 6])

    # Threads must give exactly what the same calls give one after another. (A batch of 6 and a
    # batch of 24 may differ in the 7th decimal: padding changes the arithmetic, not the answer.)
    serial = [part(i) for i in range(0, 24, 6)]
    assert [x for chunk in serial for x in chunk] == pytest.approx(expected, abs=1e-6)
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(part, range(0, 24, 6))) == serial
    with pytest.raises(ValueError, match="reads features"):
        in_memory.score(*args)
    with pytest.raises(ValueError, match="not 'other'"):
        in_memory.score(*args, model="other", features=features)


def test_head_turns_text_off_when_it_is_noise() -> None:
    needs_torch()
    from llmspend.scoring import fit_head

    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.5
    feature = np.where(labels, rng.normal(1.0, 1.0, 200), rng.normal(-1.0, 1.0, 200))[:, None]
    noise = rng.normal(size=(200, 48)).astype(np.float32)
    head = fit_head(noise, labels, features=feature)
    assert head.l2 >= 10.0 and set(head.selection) == {0.01, 0.1, 1.0, 10.0, 100.0, math.inf}
    signal = noise.copy()
    signal[:, 0] += np.where(labels, 2.0, -2.0)
    assert math.isfinite(fit_head(signal, labels).l2)  # no features: text is all there is
    with pytest.raises(ConfigError, match="l2 must be positive"):
        fit_head(noise, labels, l2=math.inf)


def test_training_input_errors(tmp_path: Path) -> None:
    needs_torch()
    from llmspend.scoring import train_scorer

    all_right = [TrainingRow("q", "a", True), TrainingRow("q2", "a2", True)]
    with pytest.raises(ConfigError, match="all correct"):
        train_scorer(all_right, tmp_path, encoder="tiny", progress=False)
    with pytest.raises(ConfigError, match="row 0 has 1 features but feature_names names 0"):
        train_scorer(ROWS, tmp_path, encoder="tiny", progress=False)
    with pytest.raises(ConfigError, match="encoder must be one of minilm, tiny"):
        train_scorer(ROWS, tmp_path, encoder="bert-large", feature_names=["conf_raw"], progress=False)
    with pytest.raises(ConfigError, match="max_length"):
        train_scorer(ROWS, tmp_path, encoder="tiny", feature_names=["conf_raw"], max_length=1024, progress=False)


# -- the real encoder --------------------------------------------------------------------

@pytest.mark.slow
def test_real_minilm_trains_exports_and_scores(tmp_path: Path) -> None:
    needs_torch()
    from llmspend.scoring import train_scorer

    rows = make_rows(64, seed=11)
    directory = train_scorer(rows, tmp_path / "minilm", encoder="minilm", feature_names=["conf_raw"], progress=False)
    scorer = OnnxScorer(directory)
    meta = scorer.metadata
    assert meta.encoder["name"] == "sentence-transformers/all-MiniLM-L6-v2" and meta.encoder["hidden_size"] == 384
    assert meta.export["torch_max_abs_diff"] < 1e-4
    assert (directory / "model.onnx").stat().st_size > 80_000_000  # the real weights, not a stub
    scores = scorer.score([r.query for r in rows], [r.answer for r in rows], features=[list(r.features) for r in rows])
    from llmspend.scoring.head import auc

    assert auc(np.asarray(scores), np.array([r.correct for r in rows])) > 0.75


@pytest.mark.slow
def test_encoder_matches_sentence_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our BERT with MiniLM's weights computes what sentence-transformers computes."""
    needs_torch()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # before the import: huggingface_hub reads it then
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    st = pytest.importorskip("sentence_transformers", reason="the reference implementation is not installed")
    from llmspend.scoring import PairEncoder
    from llmspend.scoring.embed import minilm_dir

    sentences = ["A man is eating food.", "The stock market fell sharply today, analysts said."]
    ours = PairEncoder("minilm", backend="torch", progress=False)
    encodings = ours.tokens.tokenizer.encode_batch(sentences)  # single sentences, as the reference reads them
    import torch

    arrays = ours.tokens.arrays(encodings)
    with torch.inference_mode():
        from llmspend.scoring.embed import Embedder

        mine = Embedder(ours.module)(*(torch.from_numpy(arrays[n]) for n in ("input_ids", "attention_mask", "token_type_ids")))
    mine = torch.nn.functional.normalize(mine, dim=-1).numpy()
    reference = st.SentenceTransformer(str(minilm_dir()), device="cpu").encode(sentences, normalize_embeddings=True)
    assert np.abs(mine - reference).max() < 1e-5


# -- the command line --------------------------------------------------------------------

def test_cli_train_score_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    needs_torch()
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"query": r.query, "answer": r.answer, "correct": r.correct, "model": r.model,
                                        "features": {"conf_raw": r.features[0]}}) + "\n" for r in ROWS))
    out = tmp_path / "scorer"
    assert main(["scorer", "train", "--data", str(data), "--out", str(out), "--encoder", "tiny",
                 "--features", "conf_raw", "--quantize", "--no-progress", "--l2", "1"]) == 0
    printed = capsys.readouterr()
    assert f"wrote {out}" in printed.out and "int8" in printed.out and "80 rows" in printed.err
    assert os.path.isfile(out / "model.onnx")

    assert main(["scorer", "score", "--scorer", str(out), "--query", "What is 1 + 1?", "--answer", "It is 2.",
                 "--feature", "conf_raw=-0.05", "--json"]) == 0
    sure = json.loads(capsys.readouterr().out)
    assert main(["scorer", "score", "--scorer", str(out), "--query", "What is 1 + 1?", "--answer", "It is 2.",
                 "--feature", "conf_raw=-5"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("P(correct) = ") and sure["provider"] in text
    assert sure["score"] > float(text.split()[2])

    assert main(["scorer", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "runs on" in info and "conf_raw" in info and "int8" in info and rows_sha256(ROWS) in info
    assert main(["scorer", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quantized"] is True

    assert main(["scorer", "score", "--scorer", str(out), "--query", "q", "--answer", "a", "--feature", "oops"]) == 2
    assert "NAME=NUMBER" in capsys.readouterr().err
    assert main(["scorer", "info", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
