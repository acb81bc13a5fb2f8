"""The public names of the package, pinned: removing or renaming one is a visible decision."""

from __future__ import annotations

import subprocess
import sys

import llmspend

EXPECTED = {
    "__version__", "wrap", "build_pipeline", "known_options", "configure_telemetry",
    "economics", "report", "scoring", "cascade",
    "track", "TrackedScope", "spent", "BudgetStatus", "set_default_ledger", "set_max_metric_features",
    "batch", "BatchOptions", "trim", "TrimOptions", "TrimResult", "CacheConfig", "CacheBackend", "DiskCache",
    "Stage", "StageSpec", "BuildContext", "Pipeline", "Request", "Response", "Headers", "CallContext",
    "ProviderAdapter", "OpenAIAdapter", "Call", "Outcome", "Usage", "Cost", "ModelPrice", "PriceTable", "RetryPolicy",
    "LLMSpendError", "ConfigError", "PluginError", "BudgetExceededError", "BudgetUnknownCostError", "LedgerError",
    "PromptTooLongError", "ResponseParseError", "ScorerExportError",
}


def test_exported_members() -> None:
    assert set(llmspend.__all__) == EXPECTED
    for name in llmspend.__all__:
        assert getattr(llmspend, name) is not None, name


def test_errors_share_one_base() -> None:
    for name in ("ConfigError", "PluginError", "BudgetExceededError", "BudgetUnknownCostError", "LedgerError",
                 "PromptTooLongError", "ResponseParseError", "ScorerExportError"):
        assert issubclass(getattr(llmspend, name), llmspend.LLMSpendError), name


def test_import_stays_light() -> None:
    # Tools off the call path (economics, report, scoring, cascade) and heavy libraries load on use.
    code = ("import sys, llmspend; heavy = [m for m in ('llmspend.economics', 'llmspend.report', 'llmspend.cascade', "
            "'numpy', 'torch', 'onnxruntime', 'matplotlib') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
