"""The examples run offline and print what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, env=env, timeout=120, cwd=EXAMPLES)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quickstart() -> None:
    out = run("quickstart.py")
    assert "chat gpt-4o-mini:" in out and "(ok)" in out


def test_plain_httpx() -> None:
    out = run("plain_httpx.py")
    assert '"llmspend.cost.usd"' in out


@pytest.mark.parametrize("name", ["custom_prices.py"])
def test_custom_prices(name: str) -> None:
    lines = run(name).strip().splitlines()
    assert lines[0] == "unknown_model no cost number"
    assert lines[1].startswith("ok ")
