"""Is an LLM feature worth what it costs, and would self-hosting be cheaper?

Pure functions over numbers you give or measure (docs/economics.md):

- :func:`encs`: expected net cost savings per response of a feature that drafts responses
  for people (LivePerson's method), per year at a volume, and the volume that pays back a
  set-up cost; :func:`read_action_log` counts what agents did with the drafts.
- :func:`breakeven`: daily and yearly cost of an API against self-hosting across request
  volumes, and the volume where they cross.
- :func:`weights_memory_gb`, :func:`kv_cache_memory_gb`, :func:`sizing`: accelerator memory
  for a self-hosted model's weights and KV cache.

Bad inputs raise :class:`llmspend.ConfigError` with a message that says what to fix.
"""

from .breakeven import DAYS_PER_YEAR, BreakevenResult, CostPoint, breakeven, serverless_usd_per_request
from .encs import ACTIONS, ActionLog, EncsResult, encs, read_action_log, saving_per_action_usd
from .sizing import (
    BYTES_PER_PARAM,
    MODEL_SHAPES,
    ModelShape,
    SizingResult,
    kv_cache_memory_gb,
    parse_params,
    sizing,
    weights_memory_gb,
)

__all__ = [
    "encs",
    "EncsResult",
    "ACTIONS",
    "ActionLog",
    "read_action_log",
    "saving_per_action_usd",
    "breakeven",
    "BreakevenResult",
    "CostPoint",
    "DAYS_PER_YEAR",
    "serverless_usd_per_request",
    "weights_memory_gb",
    "kv_cache_memory_gb",
    "sizing",
    "SizingResult",
    "ModelShape",
    "MODEL_SHAPES",
    "BYTES_PER_PARAM",
    "parse_params",
]
