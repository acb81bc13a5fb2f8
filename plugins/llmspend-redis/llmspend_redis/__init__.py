"""Redis for llmspend: ``llmspend.track(..., ledger="redis://host:6379/0")`` keeps budgets in
Redis, shared by every process and machine that names the same server."""

from .ledger import RedisLedger

__all__ = ["RedisLedger"]
