"""llmspend: the exact cost of every LLM call on an OpenTelemetry span, and a pipeline of stages
that makes the bill smaller, installed in one line::

    import llmspend, openai

    client = llmspend.wrap(openai.OpenAI())

See ``docs/`` for the stages (cache, trim, batch, cascade, retry) and their options.
"""

from ._http import Headers, Request, Response
from ._version import __version__
from .context import CallContext
from .exceptions import (
    BudgetExceededError,
    ConfigError,
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
from .stages.retry import RetryPolicy
from .telemetry.setup import configure as configure_telemetry
from .wrap import build_pipeline, known_options, wrap

__all__ = [
    "__version__",
    "wrap",
    "build_pipeline",
    "known_options",
    "configure_telemetry",
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
    # errors
    "LLMSpendError",
    "ConfigError",
    "PluginError",
    "BudgetExceededError",
    "PromptTooLongError",
    "ResponseParseError",
    "ScorerExportError",
]
