"""llmspend: the exact cost of every LLM call on an OpenTelemetry span, and a pipeline of stages
that makes the bill smaller, installed in one line::

    import llmspend, openai

    client = llmspend.wrap(openai.OpenAI())

See ``docs/`` for the stages (cache, trim, batch, cascade, retry) and their options.
"""

from ._http import Headers, Request, Response
from . import economics, report
from ._version import __version__
from .batching import batch
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
from .pipeline import BuildContext, Pipeline, Stage, StageSpec
from .pricing import Cost, ModelPrice, PriceTable
from .providers.base import Call, Outcome, ProviderAdapter, Usage
from .providers.openai import OpenAIAdapter
from .stages.batch import BatchOptions
from .stages.retry import RetryPolicy
from .stages.trim import TrimOptions
from .telemetry.setup import configure as configure_telemetry
from .trimming import TrimResult, trim
from .wrap import build_pipeline, known_options, wrap
from .track import track, TrackedScope
from .budgets import BudgetStatus, spent
from .ledger import set_default_ledger
from .attribution import set_max_metric_features

__all__ = [
    "__version__",
    "wrap",
    "build_pipeline",
    "known_options",
    "configure_telemetry",
    "economics",
    "report",
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
