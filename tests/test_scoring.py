"""OnnxScorer: real onnxruntime sessions on scorers trained with the tiny encoder."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from llmspend import ConfigError
from llmspend.scoring import OnnxScorer, Scorer

from ._scoring import MODEL, make_rows, tiny_scorer

CPU = "CPUExecutionProvider"


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_scorer(tmp_path_factory.mktemp("scorers"))


@pytest.fixture(scope="module")
def scorer(scorer_dir: Path) -> OnnxScorer:
    return OnnxScorer(scorer_dir)


ROWS = make_rows(40, seed=7)
QUERIES = [r.query for r in ROWS]
ANSWERS = [r.answer for r in ROWS]
FEATURES = [list(r.features) for r in ROWS]


def test_scores_are_probabilities_in_input_order(scorer: OnnxScorer) -> None:
    assert isinstance(scorer, Scorer)
    together = scorer.score(QUERIES, ANSWERS, features=FEATURES)
    assert len(together) == len(ROWS) and all(0.0 < p < 1.0 for p in together)
    # the runtime sorts by length and batches; each result must still land on its own pair
    one_by_one = [scorer.score([q], [a], features=[f])[0] for q, a, f in zip(QUERIES, ANSWERS, FEATURES)]
    assert together == pytest.approx(one_by_one, abs=1e-5)
    assert len(set(round(p, 6) for p in together)) > 10


def test_batch_size_does_not_change_scores(scorer_dir: Path, scorer: OnnxScorer) -> None:
    small = OnnxScorer(scorer_dir, batch_size=1, threads=1)
    assert small.score(QUERIES, ANSWERS, features=FEATURES) == pytest.approx(
        scorer.score(QUERIES, ANSWERS, features=FEATURES), abs=1e-5)


def test_features_change_the_score(scorer: OnnxScorer) -> None:
    query, answer = "What is 12 + 30?", "It is 42."
    sure, unsure = scorer.score([query, query], [answer, answer], features=[[-0.01], [-5.0]])
    assert sure > unsure + 0.1  # trained on rows where a low log-probability means wrong
    by_name = scorer.score([query], [answer], features=[{"conf_raw": -5.0}])
    assert by_name == pytest.approx([unsure])
    # not known (None/NaN) reads as the training mean; -inf is clipped to the training minimum
    mean = scorer.metadata.training["feature_stats"]["conf_raw"]["mean"]
    low = scorer.metadata.training["feature_stats"]["conf_raw"]["low"]
    assert scorer.score([query], [answer], features=[[None]]) == pytest.approx(scorer.score([query], [answer], features=[[mean]]), abs=1e-6)
    assert scorer.score([query], [answer], features=[[math.nan]]) == pytest.approx(scorer.score([query], [answer], features=[[mean]]), abs=1e-6)
    assert scorer.score([query], [answer], features=[[-math.inf]]) == pytest.approx(scorer.score([query], [answer], features=[[low]]), abs=1e-6)
    # a value past float32's range is an infinity too, clipped the same way, without a numpy
    # RuntimeWarning on every call (before: "overflow encountered in cast")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scorer.score([query], [answer], features=[[-1e300]]) == pytest.approx(scorer.score([query], [answer], features=[[low]]), abs=1e-6)


def test_text_changes_the_score(tmp_path_factory: pytest.TempPathFactory) -> None:
    plain = OnnxScorer(tiny_scorer(tmp_path_factory.mktemp("nofeatures"), features=False))
    assert plain.feature_names == () and "features" not in plain.metadata.inputs
    a, b = plain.score(["What is 2 + 2?", "What is 2 + 2?"], ["It is 4.", "Let me explain. " * 20])
    assert a != pytest.approx(b, abs=1e-6)
    with pytest.raises(ValueError, match="reads no features"):
        plain.score(["q"], ["a"], features=[[1.0]])


def test_concurrent_scoring_matches_serial(scorer: OnnxScorer) -> None:
    chunks = [(QUERIES[i:i + 5], ANSWERS[i:i + 5], FEATURES[i:i + 5]) for i in range(0, len(ROWS), 5)] * 4
    serial = [scorer.score(q, a, features=f) for q, a, f in chunks]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda c: scorer.score(c[0], c[1], features=c[2]), chunks))
    assert concurrent == serial


def test_provider_is_the_one_that_ran_and_choice_is_quiet(scorer_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from llmspend.scoring.onnx import cuda_unavailable_reason

    capfd.readouterr()
    scorer = OnnxScorer(scorer_dir)  # automatic choice: onnxruntime-gpu here has no CUDA to run on
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert scorer.provider == scorer._session.get_providers()[0]
    reason = cuda_unavailable_reason()
    if reason is None:
        assert scorer.provider == "CUDAExecutionProvider" and scorer.why_not_cuda is None
    else:
        assert scorer.provider == CPU and scorer.why_not_cuda == reason
    assert OnnxScorer(scorer_dir, providers=[CPU]).provider == CPU
    import onnxruntime

    if reason is not None and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        # asked for anyway: onnxruntime complains and falls back, and the report says so
        forced = OnnxScorer(scorer_dir, providers=["CUDAExecutionProvider", CPU])
        assert forced.provider == CPU and "fell back" in (forced.why_not_cuda or "")
        assert "CUDA" in capfd.readouterr().err  # the noise the automatic choice avoids
    info = scorer.describe()
    assert info["provider"] == scorer.provider and info["models"] == [MODEL]


def test_why_not_cuda_names_the_caller_s_choice_of_the_cpu(scorer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """providers=[CPU] on a machine where CUDA would start: the CPU runs, and why_not_cuda says
    it was asked for (before: None, as if CUDA were running). The probe is the one thing
    replaced: this machine has no GPU to make it say yes."""
    import llmspend.scoring.onnx as onnx_module

    monkeypatch.setattr(onnx_module, "cuda_unavailable_reason", lambda: None)
    scorer = OnnxScorer(scorer_dir, providers=[CPU])
    assert scorer.provider == CPU
    assert scorer.why_not_cuda is not None and "providers=" in scorer.why_not_cuda
    assert scorer.describe()["why_not_cuda"] == scorer.why_not_cuda


def test_call_errors_are_clear(scorer: OnnxScorer) -> None:
    assert scorer.score([], [], features=[]) == []
    with pytest.raises(ValueError, match="2 queries but 1 answers"):
        scorer.score(["a", "b"], ["c"], features=[[0.0], [0.0]])
    with pytest.raises(ValueError, match=r"reads features \['conf_raw'\]"):
        scorer.score(["a"], ["b"])
    with pytest.raises(ValueError, match="feature row 0 has 2 values"):
        scorer.score(["a"], ["b"], features=[[0.0, 1.0]])
    with pytest.raises(ValueError, match="not 'other-model'"):
        scorer.score(["a"], ["b"], model="other-model", features=[[0.0]])
    assert scorer.score(["a"], ["b"], model=MODEL, features=[[0.0]])
    with pytest.raises(ValueError, match=r"unknown features \['x'\]; this scorer reads \['conf_raw'\]"):
        scorer.score(["a"], ["b"], features=[{"conf_raw": -0.02, "x": 1}])


def test_cli_score_asks_for_the_features_the_scorer_reads(scorer_dir: Path, scorer: OnnxScorer,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from llmspend.cli import main

    ask = ["scorer", "score", "--scorer", str(scorer_dir), "--query", "What is 2 + 2?", "--answer", "4", "--json"]
    assert main(ask) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.count("\n") == 1
    assert "reads features ['conf_raw']" in printed.err and "--feature conf_raw=VALUE" in printed.err
    # an unknown value said so explicitly reads as the training mean, as in the Python API
    assert main([*ask, "--feature", "conf_raw=nan"]) == 0
    unknown = json.loads(capsys.readouterr().out)["score"]
    assert unknown == pytest.approx(scorer.score(["What is 2 + 2?"], ["4"], features=[[None]])[0], abs=1e-6)
    assert main([*ask, "--feature", "conf_raw=-5"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] != pytest.approx(unknown, abs=1e-6)
    assert main([*ask, "--feature", "conf_raw=-5", "--feature", "x=1"]) == 2
    assert "not ['x']" in capsys.readouterr().err


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_bad_directories_raise_config_error(scorer_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        OnnxScorer(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="model.onnx is missing"):
        OnnxScorer(tmp_path)
    with pytest.raises(ConfigError, match="not all available"):
        OnnxScorer(scorer_dir, providers=["NoSuchExecutionProvider"])
    with pytest.raises(ConfigError, match="batch_size"):
        OnnxScorer(scorer_dir, batch_size=0)

    broken = _copy(scorer_dir, tmp_path / "json")
    (broken / "metadata.json").write_text("{not json")
    with pytest.raises(ConfigError, match="could not be read as JSON"):
        OnnxScorer(broken)

    meta = json.loads((scorer_dir / "metadata.json").read_text())
    cases = {
        "format": ({**meta, "format": "something-else"}, "'format' must be 'llmspend-scorer'"),
        "version": ({**meta, "schema_version": 99}, "schema_version 99 is not supported"),
        "inputs": ({**meta, "inputs": ["input_ids", "attention_mask", "token_type_ids"], "feature_names": []},
                   "the files do not belong together"),
        "features": ({**meta, "feature_names": ["conf_raw", "other"]}, "takes 1 features but metadata.json names 2"),
        "length": ({**meta, "max_length": 4096}, "max_length"),
        "no text ids": ({**meta, "inputs": ["attention_mask", "features"]}, "must include input_ids \\(or be \\['features'\\] alone"),
        # a text scorer's graph declared as reading the features alone
        "features alone": ({**meta, "inputs": ["features"]}, "the files do not belong together"),
    }
    for name, (data, message) in cases.items():
        bad = _copy(scorer_dir, tmp_path / name)
        (bad / "metadata.json").write_text(json.dumps(data))
        with pytest.raises(ConfigError, match=message):
            OnnxScorer(bad)

    no_tokenizer = _copy(scorer_dir, tmp_path / "tok")
    (no_tokenizer / "tokenizer.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a tokenizers JSON file"):
        OnnxScorer(no_tokenizer)
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match="tokenizer.json is missing: a scorer that reads text"):
        OnnxScorer(no_tokenizer)

    bad_graph = _copy(scorer_dir, tmp_path / "graph")
    (bad_graph / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="could not be loaded by onnxruntime"):
        OnnxScorer(bad_graph)


def test_tampered_metadata_fields_raise_config_error(scorer_dir: Path, tmp_path: Path) -> None:
    """A field of the wrong type is named in a ConfigError, never a bare ValueError/TypeError
    (a traceback from `llmspend scorer score`) nor read as something else ("no" as True)."""
    meta = json.loads((scorer_dir / "metadata.json").read_text())
    cases = {
        "pad_str": {"pad_id": "x"}, "pad_none": {"pad_id": None}, "pad_negative": {"pad_id": -1},
        "pad_bool": {"pad_id": True}, "output_none": {"output": None}, "output_empty": {"output": ""},
        "quantized_str": {"quantized": "no"}, "encoder_list": {"encoder": ["a"]},
        "training_str": {"training": "abc"}, "export_list": {"export": [1]}, "hints_list": {"threshold_hints": [1]},
    }
    for name, change in cases.items():
        bad = _copy(scorer_dir, tmp_path / name)
        (bad / "metadata.json").write_text(json.dumps({**meta, **change}))
        key = next(iter(change))
        with pytest.raises(ConfigError, match=f"'{key}'"):
            OnnxScorer(bad)


def test_a_tokenizer_of_another_vocabulary_is_refused(scorer_dir: Path, tmp_path: Path) -> None:
    """Two tokens' ids swapped: the file still loads and every id is in the embedding's range,
    so without the check the scorer would load and score silently wrong."""
    assert json.loads((scorer_dir / "metadata.json").read_text())["vocab_sha256"]
    swapped = _copy(scorer_dir, tmp_path / "swapped")
    tokenizer = json.loads((swapped / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab["hello"], vocab["world"] = vocab["world"], vocab["hello"]
    (swapped / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ConfigError, match="tokenizer.json does not belong with model.onnx"):
        OnnxScorer(swapped)
    # a directory from before the hash was recorded is not checked (and still loads)
    meta = json.loads((swapped / "metadata.json").read_text())
    del meta["vocab_sha256"]
    (swapped / "metadata.json").write_text(json.dumps(meta))
    assert OnnxScorer(swapped).score(["hello"], ["world"], features=[[None]])[0] > 0


def test_importing_the_package_stays_light() -> None:
    code = ("import sys, llmspend, llmspend.scoring; "
            "print(sorted(m for m in ('numpy', 'onnxruntime', 'torch', 'tokenizers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
