"""The demo's Anthropic section: Claude calls through the SDK, their cache writes and reads
priced, and a one-line note instead when the plugin is not installed."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from llmspend.demo import SECTIONS, run_demo
from llmspend.report import build_report


def test_demo_section(tmp_path: Path) -> None:
    assert "anthropic" in SECTIONS
    out = io.StringIO()
    spans_file = tmp_path / "spans.jsonl"
    result = run_demo(out, rounds=1, sections=["anthropic"], spans_out=str(spans_file))
    section = result.sections["anthropic"]
    assert section["calls"] == 4 and section["sdk_spans"] == 4
    ours = [s for s in result.spans if s["attributes"].get("llmspend.endpoint") == "messages"]
    assert section["total_usd"] == pytest.approx(sum(s["attributes"]["llmspend.cost.usd"] for s in ours))
    assert ours[0]["attributes"]["gen_ai.usage.cache_creation.input_tokens"] > 1000
    assert all(s["attributes"]["gen_ai.usage.cache_read.input_tokens"] > 1000 for s in ours[1:])
    assert 0 < section["total_usd"] < section["uncached_usd"]
    assert "anthropic.messages.create" in out.getvalue()
    # llmspend's report over both kinds of span counts each call once, at its cost
    report = build_report(spans_file)
    assert len(result.spans) == 8 and report.total.calls == 4 and report.other_spans == 4
    assert report.total.cost_usd == pytest.approx(section["total_usd"]) and report.total.unknown_cost_calls == 0


def test_demo_section_without_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "llmspend_anthropic"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    out = io.StringIO()
    result = run_demo(out, rounds=1, sections=["anthropic"])
    assert result.sections["anthropic"] == {"skipped": True}
    assert "pip install llmspend-anthropic" in out.getvalue()
