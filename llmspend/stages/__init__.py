"""The built-in pipeline stages, one per module."""

from __future__ import annotations

from ..pipeline import StageSpec

__all__ = ["builtin_specs"]


def builtin_specs() -> tuple[StageSpec, ...]:
    from . import batch, budget, cache, cascade, retry, telemetry, trim

    return (telemetry.SPEC, budget.SPEC, trim.SPEC, cache.SPEC, batch.SPEC, retry.SPEC, cascade.SPEC)
