"""The examples run offline and print what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmspend.testing import FakeLLMServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str, **env_set: str) -> str:
    env = {**{k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}, **env_set}
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, env=env, timeout=120, cwd=EXAMPLES)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quickstart() -> None:
    out = run("quickstart.py")
    assert "chat gpt-4o-mini:" in out and "(ok)" in out


def test_plain_httpx() -> None:
    out = run("plain_httpx.py")
    assert '"llmspend.cost.usd"' in out


def test_plain_httpx_sends_the_key_when_one_is_set(server: FakeLLMServer) -> None:
    # OPENAI_API_KEY set means "the real API": the example must send it, else a real call is a 401.
    out = run("plain_httpx.py", OPENAI_API_KEY="sk-example-key", OPENAI_BASE_URL=server.base_url)
    assert '"llmspend.cost.usd"' in out and "sk-example-key" not in out
    assert [r.headers.get("authorization", r.headers.get("Authorization")) for r in server.requests] == ["Bearer sk-example-key"]


@pytest.mark.parametrize("name", ["custom_prices.py"])
def test_custom_prices(name: str) -> None:
    lines = run(name).strip().splitlines()
    assert lines[0] == "unknown_model no cost number"
    assert lines[1].startswith("ok ")
