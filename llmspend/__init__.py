"""llmspend: the exact cost of every LLM call on an OpenTelemetry span, and a pipeline of stages
that makes the bill smaller, installed in one line::

    import llmspend, openai

    client = llmspend.wrap(openai.OpenAI())

See ``docs/`` for the stages (cache, trim, batch, cascade, retry) and their options.
"""

import importlib
from typing import Any

from ._http import Headers, Request, Response
from ._version import __version__
from .attribution import set_max_metric_features
from .batching import batch
from .budgets import BudgetStatus, spent
from .cache import CacheBackend, CacheConfig, DiskCache
from .context import CallContext
from .exceptions import (
    BudgetExceededError,
    BudgetUnknownCostError,
    ConfigError,
    LedgerError,
    LLMSpendError,
    PluginError,
    PromptTooLongError,
    ResponseParseError,
    ScorerExportError,
)
from .ledger import set_default_ledger
from .pipeline import BuildContext, Pipeline, Stage, StageSpec
from .pricing import Cost, ModelPrice, PriceTable
from .providers.base import Call, Outcome, ProviderAdapter, Usage
from .providers.openai import OpenAIAdapter
from .stages.batch import BatchOptions
from .stages.retry import RetryPolicy
from .stages.trim import TrimOptions
from .telemetry.setup import configure as configure_telemetry
from .track import TrackedScope, track
from .trimming import TrimResult, trim
from .wrap import build_pipeline, known_options, wrap

# Tools used off the call path load on first use, so `import llmspend` stays light.
_LAZY_SUBMODULES = ("economics", "report", "scoring", "cascade")


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__",
    "wrap",
    "build_pipeline",
    "known_options",
    "configure_telemetry",
    # tools, loaded on first use
    "economics",
    "report",
    "scoring",
    "cascade",
    # attribution and budgets
    "track",
    "TrackedScope",
    "spent",
    "BudgetStatus",
    "set_default_ledger",
    "set_max_metric_features",
    "batch",
    "BatchOptions",
    # pipeline
    "Stage",
    "StageSpec",
    "BuildContext",
    "Pipeline",
    "Request",
    "Response",
    "Headers",
    "CallContext",
    # providers and cost
    "ProviderAdapter",
    "OpenAIAdapter",
    "Call",
    "Outcome",
    "Usage",
    "Cost",
    "ModelPrice",
    "PriceTable",
    "RetryPolicy",
    "trim",
    "TrimOptions",
    "TrimResult",
    "CacheConfig",
    "CacheBackend",
    "DiskCache",
    # errors
    "LLMSpendError",
    "ConfigError",
    "PluginError",
    "BudgetExceededError",
    "BudgetUnknownCostError",
    "LedgerError",
    "PromptTooLongError",
    "ResponseParseError",
    "ScorerExportError",
]
