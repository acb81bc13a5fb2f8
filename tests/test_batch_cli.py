"""``llmspend batch submit | status | collect`` against the fake server's OpenAI Batch API
(files and batches endpoints), through the official openai SDK."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from llmspend.batching.jobs import OpenAIBatchBackend, read_requests
from llmspend.batching.results import match_results, price_results
from llmspend.cli import main
from llmspend.pricing.table import PriceTable
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY

URL = "/v1/chat/completions"


def line(custom_id: str, question: str, model: str = "gpt-4o-mini", **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": URL,
            "body": {"model": model, "max_tokens": 30, "messages": [{"role": "user", "content": question}], **body}}


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture
def cli(server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``llmspend batch ...`` against the fake server with a state file in tmp_path."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("LLMSPEND_STATE_DIR", str(tmp_path / "state"))

    def run(*args: str) -> int:
        command, *rest = args
        extra = ["--base-url", server.base_url, "--poll-s", "0"]
        return main(["batch", command, *rest, *extra])

    return run


def read_out(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def plain_answer(server: FakeLLMServer, body: dict[str, Any]) -> str:
    return str(openai.OpenAI(base_url=server.base_url, api_key=API_KEY).chat.completions.create(**body).choices[0].message.content)


def test_submit_wait_collect_matches_by_custom_id(cli: Any, server: FakeLLMServer, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    lines = [line(f"req-{i}", f"Question {i}?") for i in range(8)]
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    assert cli("submit", str(source), "--wait") == 0
    out, err = capsys.readouterr()
    assert "submitted 8 requests to /v1/chat/completions as batch batch-" in out
    assert "completed, 8 completed and 0 failed of 8 requests" in out
    assert "8/8" in err and "completed" in err  # progress on stderr
    (job,) = server.batch_api.batches.values()
    output_lines = [json.loads(x) for x in server.batch_api.files[job.output_file_id].content.splitlines()]
    assert [x["custom_id"] for x in output_lines] != [x["custom_id"] for x in lines]  # really shuffled

    results = tmp_path / "results.jsonl"
    assert cli("collect", "--out", str(results)) == 0  # the last job submitted, remembered
    collected = read_out(results)
    assert [r["custom_id"] for r in collected] == [x["custom_id"] for x in lines]  # the input's order
    for request, result in zip(lines, collected):
        assert result["status"] == "succeeded" and result["status_code"] == 200
        assert result["response"]["choices"][0]["message"]["content"] == plain_answer(server, request["body"])
    out = capsys.readouterr().out
    assert "8 succeeded, 0 failed, 0 without a result" in out
    assert "gpt-4o-mini" in out and "(50%)" in out


def test_a_line_separator_inside_a_json_line_is_not_a_line_break(cli: Any, server: FakeLLMServer, tmp_path: Path) -> None:
    """JSONL lines end at \\n only: U+2028 (and U+0085, U+001E...) may stand raw inside a JSON
    string, in the input as in the provider's output files, and must not split a line."""
    odd = "First\u2028second\x85third\x1ethe end?"
    lines = [line("req-0", odd), line("req-1", "Plain?")]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    assert [r.body["messages"][0]["content"] for r in read_requests(source)] == [odd, "Plain?"]
    assert cli("submit", str(source), "--wait") == 0
    (job,) = server.batch_api.batches.values()
    output = server.batch_api.files[job.output_file_id]
    results = [json.loads(x) for x in output.content.splitlines()]
    for result in results:
        result["response"]["body"]["choices"][0]["message"]["content"] += "\u2028" + odd
    output.content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results).encode()
    out = tmp_path / "results.jsonl"
    assert cli("collect", "--out", str(out)) == 0
    collected = [json.loads(x) for x in out.read_text(encoding="utf-8").split("\n") if x]
    assert [r["status"] for r in collected] == ["succeeded", "succeeded"]
    for request, result in zip(lines, collected):
        answer = plain_answer(server, request["body"]) + "\u2028" + odd
        assert result["response"]["choices"][0]["message"]["content"] == answer


def test_batch_prices_are_half_where_the_table_has_them(server: FakeLLMServer, tmp_path: Path) -> None:
    lines = [line("a", "one?"), line("b", "two?"), line("c", "three?", model="gpt-3.5-turbo-1106"),
             line("d", "four?", model="my-local-model")]
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    backend = OpenAIBatchBackend(server.base_url, API_KEY)
    requests = read_requests(source)
    job = backend.submit(requests, source)
    for _ in range(2):
        job = backend.status(job.id)
    assert job.status == "completed"
    matched, stray = match_results(requests, backend.results(job))
    assert not stray
    rows = price_results(matched, PriceTable.default(), backend.adapter, backend.origin)
    mini = rows["gpt-4o-mini"]
    assert mini.succeeded == 2 and mini.batch_priced
    assert mini.batch_usd == pytest.approx(mini.regular_usd / 2)  # type: ignore[operator]
    row = PriceTable.default().lookup("gpt-4o-mini")
    assert row is not None and row.batch_input is not None and row.batch_output is not None
    expected = (mini.input_tokens * row.batch_input + mini.output_tokens * row.batch_output) / 1e6
    assert mini.batch_usd == pytest.approx(expected)
    old = rows["gpt-3.5-turbo-1106"]
    assert not old.batch_priced and old.batch_usd == pytest.approx(old.regular_usd)  # no batch price: charged as regular
    unknown = rows["my-local-model"]
    assert unknown.batch_usd is None and unknown.regular_usd is None  # unknown, never $0


def test_error_file_missing_and_stray_results(cli: Any, server: FakeLLMServer, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    lines = [line("ok-1", "fine?"), {"custom_id": "bad", "method": "POST", "url": URL, "body": {"model": "gpt-4o-mini"}},
             line("ok-2", "also fine?"), line("lost", "where did I go?")]
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    assert cli("submit", str(source)) == 0
    (job,) = server.batch_api.batches.values()
    lost = next(r for r in job.output if r["custom_id"] == "lost")
    job.output.remove(lost)  # the provider returned nothing for it (it expired, say)
    job.output.append({**lost, "custom_id": "not-mine"})  # and something that answers no request
    capsys.readouterr()
    results = tmp_path / "results.jsonl"
    assert cli("collect", "--out", str(results), "--wait") == 0
    collected = {r["custom_id"]: r for r in read_out(results)}
    assert collected["bad"]["status"] == "failed" and collected["bad"]["status_code"] == 400
    assert "error" in collected["bad"]["response"]
    assert collected["lost"]["status"] == "missing" and collected["lost"]["response"] is None
    assert "not-mine" not in collected and collected["ok-1"]["status"] == "succeeded"
    out = capsys.readouterr().out
    assert "2 succeeded, 1 failed, 1 without a result" in out
    assert "1 result(s) matched no request" in out and "not-mine" in out


def test_status_and_collect_before_the_job_ends(cli: Any, server: FakeLLMServer, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [line("a", "one?"), line("b", "two?")])
    assert cli("submit", str(source)) == 0
    (job_id,) = server.batch_api.batches
    assert cli("status", job_id) == 0
    assert "in_progress" in capsys.readouterr().out
    assert cli("collect", job_id, "--out", str(tmp_path / "r.jsonl")) == 0  # second poll: completed
    assert cli("status") == 0
    assert f"{job_id}: completed" in capsys.readouterr().out


def test_collect_refuses_an_unfinished_job(cli: Any, server: FakeLLMServer, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [line("a", "one?")])
    assert cli("submit", str(source)) == 0
    assert cli("collect", "--out", str(tmp_path / "r.jsonl")) == 1  # first poll: in progress
    assert "not finished yet" in capsys.readouterr().out
    assert not (tmp_path / "r.jsonl").exists()


def test_progress_without_tqdm(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    source = write_jsonl(tmp_path / "in.jsonl", [line(str(i), f"q{i}?") for i in range(4)])
    assert cli("submit", str(source), "--wait") == 0
    err = capsys.readouterr().err
    assert ": validating 0/?" in err and ": in_progress 2/4" in err and ": completed 4/4" in err


def test_bad_input_is_refused_before_anything_is_uploaded(cli: Any, server: FakeLLMServer, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "dup.jsonl": [line("a", "x"), line("a", "y")],
        "urls.jsonl": [line("a", "x"), {**line("b", "y"), "url": "/v1/embeddings"}],
        "noid.jsonl": [{**line("a", "x"), "custom_id": ""}],
    }
    messages = {"dup.jsonl": "custom_id 'a' is used twice", "urls.jsonl": "differs from line 1",
                "noid.jsonl": "custom_id must be a non-empty string"}
    for name, lines in cases.items():
        assert cli("submit", str(write_jsonl(tmp_path / name, lines))) == 2
        err = capsys.readouterr().err
        assert f"{name}:" in err and messages[name] in err
    (tmp_path / "broken.jsonl").write_text('{"custom_id": "a"\n')
    assert cli("submit", str(tmp_path / "broken.jsonl")) == 2
    assert "broken.jsonl:1: not JSON" in capsys.readouterr().err
    assert cli("submit", str(tmp_path / "absent.jsonl")) == 2
    assert not server.requests


def test_a_job_over_the_providers_limit_is_refused_before_the_upload(cli: Any, server: FakeLLMServer, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # OpenAI takes at most 50,000 requests a batch: before, the file was uploaded and the job
    # then failed at the provider, after the upload of a file that large.
    source = tmp_path / "big.jsonl"
    source.write_text("".join(json.dumps(line(f"q{i}", "hi")) + "\n" for i in range(50_001)))
    assert cli("submit", str(source)) == 2
    err = capsys.readouterr().err
    assert "50,001 requests" in err and "at most 50,000" in err and "split the file" in err
    assert not server.requests


def test_a_job_the_provider_failed(cli: Any, server: FakeLLMServer, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    raw = openai.OpenAI(base_url=server.base_url, api_key=API_KEY)
    bad = json.dumps(line("a", "x")) + "\n" + json.dumps({**line("b", "y"), "url": "/v1/embeddings"}) + "\n"
    uploaded = raw.files.create(file=("bad.jsonl", bad.encode()), purpose="batch")
    job = raw.batches.create(input_file_id=uploaded.id, endpoint=URL, completion_window="24h")
    assert cli("status", job.id) == 1
    out = capsys.readouterr().out
    assert f"{job.id}: failed" in out and "line 2" in out


def test_unknown_job_is_a_clear_error(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("status", "batch-nope") == 2
    assert "reading batch batch-nope: the API answered 404" in capsys.readouterr().err


def test_no_job_yet(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("status") == 2
    assert "none submitted from here yet" in capsys.readouterr().err


def test_api_key_is_never_printed_or_stored(server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    state = tmp_path / "private" / "jobs.json"
    source = write_jsonl(tmp_path / "in.jsonl", [line("a", "one?")])
    common = ["--base-url", server.base_url, "--state", str(state), "--poll-s", "0"]
    assert main(["batch", "submit", str(source), "--api-key", API_KEY, "--wait", *common]) == 0
    assert main(["batch", "collect", "--out", str(tmp_path / "r.jsonl"), "--api-key", API_KEY, *common]) == 0
    out, err = capsys.readouterr()
    assert API_KEY not in out + err
    assert API_KEY not in state.read_text()
    assert {k.lower(): v for k, v in server.requests[0].headers.items()}["authorization"] == f"Bearer {API_KEY}"
    assert (state.parent.stat().st_mode & 0o077) == 0  # made owner-only
    assert (state.stat().st_mode & 0o077) == 0
    assert main(["batch", "status", *common]) == 2  # no key anywhere
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_unknown_backend(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("status", "x", "--provider", "nobody") == 2
    err = capsys.readouterr().err
    assert "no batch backend for provider 'nobody'; known: " in err and "openai" in err  # and any installed plugin's


def test_a_plugin_adds_a_batch_backend(cli: Any, server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from llmspend.exceptions import PluginError

    from .test_plugins import _install_dist

    from llmspend import plugins

    monkeypatch.delenv(plugins.AUTOLOAD_ENV, raising=False)
    plugin_root = tmp_path / "site"
    monkeypatch.syspath_prepend(str(plugin_root))
    module = (
        "from llmspend.batching.jobs import OpenAIBatchBackend\n"
        "class MirrorBackend(OpenAIBatchBackend):\n"
        "    provider = 'mirror'\n"
        "NOT_CALLABLE = 3\n"
    )
    _install_dist(plugin_root, "llmspend_mirror", "[llmspend.batch_backends]\nmirror = llmspend_mirror:MirrorBackend\n", module)
    source = write_jsonl(tmp_path / "in.jsonl", [line("a", "one?")])
    assert cli("submit", str(source), "--provider", "mirror") == 0
    state = json.loads((tmp_path / "state" / "batches.json").read_text())
    assert state["jobs"][-1]["provider"] == "mirror"
    assert cli("status") == 0  # the remembered job goes back through the mirror backend
    assert "in_progress" in capsys.readouterr().out
    (plugin_root / "llmspend_mirror-0.1.dist-info" / "entry_points.txt").write_text(
        "[llmspend.batch_backends]\nmirror = llmspend_mirror:NOT_CALLABLE\n")
    with pytest.raises(PluginError, match="'mirror'.*must be callable"):
        from llmspend.batching.jobs import batch_backends

        batch_backends()
