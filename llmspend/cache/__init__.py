"""Caching of LLM answers: keys, entries, backends. The stage itself is
:mod:`llmspend.stages.cache`; ``docs/cache.md`` describes the whole."""

from .base import COUNTERS, CacheBackend
from .config import CacheConfig, is_reproducible, open_backend
from .disk import DiskCache, default_cache_dir

__all__ = ["CacheBackend", "CacheConfig", "DiskCache", "COUNTERS", "default_cache_dir", "is_reproducible", "open_backend"]
