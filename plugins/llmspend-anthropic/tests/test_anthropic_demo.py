"""The demo's Anthropic section: Claude calls through the SDK, their cache writes and reads
priced, and a one-line note instead when the plugin is not installed."""

from __future__ import annotations

import io
import sys

import pytest

from llmspend.demo import SECTIONS, run_demo


def test_demo_section() -> None:
    assert "anthropic" in SECTIONS
    out = io.StringIO()
    result = run_demo(out, rounds=1, sections=["anthropic"])
    section = result.sections["anthropic"]
    assert section["calls"] == 4 and section["sdk_spans"] == 4
    ours = [s for s in result.spans if s["attributes"].get("llmspend.endpoint") == "messages"]
    assert section["total_usd"] == pytest.approx(sum(s["attributes"]["llmspend.cost.usd"] for s in ours))
    assert ours[0]["attributes"]["gen_ai.usage.cache_creation.input_tokens"] > 1000
    assert all(s["attributes"]["gen_ai.usage.cache_read.input_tokens"] > 1000 for s in ours[1:])
    assert 0 < section["total_usd"] < section["uncached_usd"]
    assert "anthropic.messages.create" in out.getvalue()


def test_demo_section_without_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "llmspend_anthropic"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    out = io.StringIO()
    result = run_demo(out, rounds=1, sections=["anthropic"])
    assert result.sections["anthropic"] == {"skipped": True}
    assert "pip install llmspend-anthropic" in out.getvalue()
