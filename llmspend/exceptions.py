"""Exceptions raised by llmspend.

Our own errors form one small tree; errors from the provider are *not* part of it. An HTTP
error from the provider reaches the caller unchanged, as the SDK's own exception type, because
llmspend sits below the SDK in its HTTP transport and hands the provider's response back as is.

    LLMSpendError
    ├── ConfigError              a wrong option: raised by wrap()/constructors, before any call
    │   └── PluginError          an entry-point plugin that failed to load or validate
    ├── BudgetExceededError      a call would overspend a budget; raised before it is sent
    │   └── BudgetUnknownCostError   a budgeted call whose most possible cost cannot be known
    ├── LedgerError              a budget ledger (disk, Redis) could not be reached or read
    ├── PromptTooLongError       a prompt cannot fit its token budget even after trimming
    ├── BatchJobError            a provider's Batch API refused or lost a job (llmspend batch)
    ├── ResponseParseError       internal: a provider response we could not read (never
    │                            reaches the caller; the response passes through unchanged)
    ├── ScorerExportError        a trained scorer's ONNX export disagrees with PyTorch (or its
    │                            int8 copy with the float one) beyond tolerance
    └── CacheError               a cache backend fault; an LLM call goes on to the provider
        │                        without the cache (it never reaches the caller there);
        │                        `llmspend cache stats|clear` report it in one line
        └── CorruptCacheEntryError   a stored entry that is not a valid llmspend entry
                                     (garbled, or pickled: never loaded)
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "LLMSpendError",
    "ConfigError",
    "PluginError",
    "BudgetExceededError",
    "BudgetUnknownCostError",
    "LedgerError",
    "PromptTooLongError",
    "BatchJobError",
    "ResponseParseError",
    "ScorerExportError",
    "CacheError",
    "CorruptCacheEntryError",
]


class LLMSpendError(Exception):
    """Base class of every error llmspend raises itself."""


class ConfigError(LLMSpendError, ValueError):
    """A configuration mistake. The message says what to change."""


class PluginError(ConfigError):
    """An entry-point plugin could not be loaded or is not what its group expects."""


class BudgetExceededError(LLMSpendError):
    """A call would take a budget past its limit. Nothing was sent."""

    def __init__(
        self,
        budget: str,
        *,
        limit_usd: float,
        remaining_usd: float,
        requested_usd: float,
        resets_at: datetime | None,
    ) -> None:
        self.budget = budget
        self.limit_usd = limit_usd
        self.remaining_usd = remaining_usd
        self.requested_usd = requested_usd
        self.resets_at = resets_at
        when = f"resets at {resets_at.isoformat()}" if resets_at else "never resets (period none)"
        super().__init__(
            f"budget {budget!r} would be exceeded: this call may cost up to ${requested_usd:.6f}, "
            f"${remaining_usd:.6f} of ${limit_usd:.6f} is left; the budget {when}"
        )


class BudgetUnknownCostError(BudgetExceededError):
    """A budgeted call whose most possible cost cannot be known (no price for its model, or no
    output limit), refused because its budget says ``on_unknown="refuse"``. Nothing was sent."""

    def __init__(self, budget: str, *, reason: str, limit_usd: float, remaining_usd: float,
                 resets_at: datetime | None) -> None:
        self.budget = budget
        self.reason = reason
        self.limit_usd = limit_usd
        self.remaining_usd = remaining_usd
        self.requested_usd = float("inf")
        self.resets_at = resets_at
        LLMSpendError.__init__(
            self,
            f"budget {budget!r} cannot bound this call's cost: {reason}. Add a price "
            f"(wrap(..., prices={{MODEL: {{'input': USD_PER_1M, 'output': USD_PER_1M}}}})) or max_tokens, "
            f"or let such calls through with track(..., on_unknown='allow')",
        )


class LedgerError(LLMSpendError):
    """A budget ledger could not be reached or read (disk, Redis). The call was not sent."""


class PromptTooLongError(LLMSpendError):
    """A prompt does not fit its token budget even after every safe trim."""

    def __init__(self, tokens: int, budget: int, detail: str = "") -> None:
        self.tokens = tokens
        self.budget = budget
        msg = f"prompt needs {tokens} tokens after trimming but the budget is {budget}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class BatchJobError(LLMSpendError):
    """A provider's Batch API answered with an error (an unknown job id, a refused upload)."""


class ResponseParseError(LLMSpendError):
    """A provider response that an adapter could not read."""


class ScorerExportError(LLMSpendError):
    """An exported scorer does not compute what the trained model computes (see docs/scoring.md)."""


class CacheError(LLMSpendError):
    """A cache backend fault: unreachable, timed out, full. The cache stage records it on the
    span and the call goes on to the provider."""


class CorruptCacheEntryError(CacheError):
    """A stored entry that is not a valid llmspend cache entry (garbled, truncated, or written
    in another format such as pickle, which is never loaded)."""
