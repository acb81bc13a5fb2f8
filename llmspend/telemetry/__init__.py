"""OpenTelemetry for llmspend: spans and metrics per call, and a one-call setup helper."""

from .instruments import Instruments
from .setup import configure

__all__ = ["Instruments", "configure"]
