"""The command line: --help everywhere, prices, demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmspend.cli import COMMANDS, main


def test_help_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    top = capsys.readouterr().out
    for command in COMMANDS:
        assert command in top
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert "usage: llmspend " + command in capsys.readouterr().out


def test_prices_shows_row_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "gpt-4o-2024-08-06"]) == 0
    out = capsys.readouterr().out
    assert "resolves to openai/gpt-4o" in out
    assert "input  2.5 USD per 1M tokens" in out
    assert "source  https://" in out


def test_prices_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "no-such-model-zz"]) == 1
    assert "no price for 'no-such-model-zz'" in capsys.readouterr().out


def test_prices_json_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["prices", "gpt-4o-mini", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"] > 0
    assert main(["prices", "--list", "--provider", "groq"]) == 0
    listing = capsys.readouterr().out
    rows = [line.split()[0] for line in listing.splitlines()[2:] if line.strip() and not line.startswith("USD")]
    assert rows and set(rows) == {"groq"}


def test_demo_runs_offline(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    from llmspend.demo import run_demo

    spans_file = tmp_path / "spans.jsonl"  # type: ignore[operator]
    result = run_demo(rounds=1, show_spans=3, spans_out=str(spans_file))
    out = capsys.readouterr().out
    assert "Exact cost of every call" in out and "total" in out
    cost = result.sections["cost"]
    assert cost["calls"] >= 20
    priced = [s for s in result.spans if s["section"] == "cost" and "llmspend.cost.usd" in s["attributes"]]
    assert cost["total_usd"] == pytest.approx(sum(s["attributes"]["llmspend.cost.usd"] for s in priced))
    assert len(spans_file.read_text().splitlines()) == len(result.spans)
    assert any(s["attributes"].get("gen_ai.usage.cache_read.input_tokens") for s in result.spans)
    assert any(s["attributes"].get("gen_ai.request.stream") for s in result.spans)


def test_console_script_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "llmspend", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("llmspend ")


def test_demo_says_which_extra_a_section_needs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A core install (no numpy): the cascade section is skipped naming its extra; no openai:
    the demo says to install it instead of a traceback."""
    import io
    import sys

    from llmspend.demo import run_demo

    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy now raises ImportError
    out = io.StringIO()
    assert run_demo(out, sections=["cascade"]).sections["cascade"] == {"skipped": True}
    assert "pip install 'llmspend[cascade]'" in out.getvalue()
    monkeypatch.setitem(sys.modules, "openai", None)
    assert main(["demo"]) == 2
    assert "pip install openai" in capsys.readouterr().err
