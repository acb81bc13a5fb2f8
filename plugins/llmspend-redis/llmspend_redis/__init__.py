"""Redis for llmspend, shared by every process and machine that names the same server:

- ``llmspend.wrap(client, cache="redis://host:6379/0")``: a cache of LLM answers
  (:class:`RedisCache`, entry points ``llmspend.cache_backends``);
- ``llmspend.track(..., ledger="redis://host:6379/0")``: budgets (:class:`RedisLedger`, entry
  points ``llmspend.ledgers``).

Both register the ``redis``, ``rediss`` and ``unix`` (a socket: ``unix:///run/redis.sock?db=0``) URL schemes.
"""

from .cache import RedisCache
from .ledger import RedisLedger

__all__ = ["RedisCache", "RedisLedger"]
