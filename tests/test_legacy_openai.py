"""Older openai SDK releases sit on httpx, not httpx2: wrap() must work there too.

The openai 2.x SDK cannot be installed beside 3.x, so it lives in its own directory
(`.ci/run` puts it and `distro`, its one dependency that openai 3 does not share, in
`.cache/legacy-openai` with `pip install --no-deps --target`) and this
test drives it in a subprocess with that directory first on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(os.environ.get("LLMSPEND_LEGACY_OPENAI", ROOT / ".cache" / "legacy-openai"))


@pytest.mark.skipif(not (LEGACY / "openai").is_dir(), reason=(
    f"no openai 2.x at {LEGACY}: pip install --no-deps --target {LEGACY} 'openai>=2,<3' 'distro>=1.7,<2' (.ci/run does this)"))
def test_wrap_on_openai_2_over_httpx() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LEGACY), str(ROOT)])}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("legacy_openai_script.py"))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["openai"].startswith("2.")
    assert out["httpx_is_legacy"] and not out["on_httpx2"] and out["same_type"]
    chat, stream, retried, async_span = out["spans"]
    assert [chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]] == out["chat_tokens"]
    assert chat["llmspend.cost.usd"] > 0 and chat["llmspend.cost.estimated"] is False
    assert out["stream_chunks_all_have_choices"]
    assert stream["llmspend.stream.complete"] is True and stream["llmspend.cost.estimated"] is False
    assert retried["events"] == 1 and out["requests_after_retry"] == 4  # chat, stream, 429, retry
    assert async_span["gen_ai.usage.output_tokens"] == out["async_output_tokens"]
