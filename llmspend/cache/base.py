"""The cache backend contract.

A backend stores opaque ``bytes`` under hex-digest ``str`` keys; the cache stage does
everything else (keys, policy, entry format). Backends ship in llmspend (:class:`DiskCache`)
or as plugins registered under the ``llmspend.cache_backends`` entry-point group by URL scheme
(``llmspend-redis`` registers ``redis`` and ``rediss``), each a callable
``(url, **options) -> CacheBackend``.

Contract for implementers:

- ``get`` returns the stored bytes, or ``None`` when the key is absent or expired.
- Any method may raise on a fault (unreachable, timed out, full, corrupt); the cache stage
  catches it, records it on the call's span and goes on to the provider. A backend must bound
  how long it waits (a slow cache must not make calls slower than no cache).
- Values are stored and returned as given, never deserialised by the backend itself.
- Methods are called from many threads at once; the ``a``-prefixed twins from event loops.
  The defaults of the async twins call the sync methods, right for backends whose calls do
  not wait on the network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

__all__ = ["CacheBackend", "COUNTERS"]

#: the counters a backend keeps for ``llmspend cache stats`` (all since the last clear)
COUNTERS = ("hits", "misses", "stores", "errors", "saved_usd")


class CacheBackend(ABC):
    """Where cached answers live. See the module docstring for the contract."""

    #: a short name for messages and ``llmspend cache stats`` (``"disk"``, ``"redis"``)
    kind: str = "backend"

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        """Store ``value``; it expires after ``ttl_s`` seconds (``None``: no expiry)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def clear(self) -> int:
        """Remove every entry and reset the counters; return how many entries were removed."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """``entries``, ``bytes`` (or ``None`` if unknown), the :data:`COUNTERS`, and anything
        else worth showing (location, limits)."""

    def describe(self) -> str:
        """Where the cache is, for messages: never a password."""
        return self.kind

    def add_counts(self, counts: Mapping[str, float]) -> None:
        """Add to the persistent :data:`COUNTERS` (default: not kept)."""

    def close(self) -> None:
        """Release files and connections."""

    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl_s: float | None) -> None:
        self.set(key, value, ttl_s)

    async def adelete(self, key: str) -> None:
        self.delete(key)

    async def aadd_counts(self, counts: Mapping[str, float]) -> None:
        self.add_counts(counts)

    async def aclose(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
