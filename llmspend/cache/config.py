"""What the cache stage is told: where the cache is and what it may keep.

    llmspend.wrap(client, cache="~/.cache/llmspend")                     # a directory
    llmspend.wrap(client, cache="redis://cache.internal:6379/0")         # a plugin, by URL scheme
    llmspend.wrap(client, cache=llmspend.CacheConfig("~/.cache/llmspend", ttl_s=3600, policy="all"))
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..exceptions import ConfigError, PluginError
from .base import CacheBackend

if TYPE_CHECKING:
    from ..providers.base import Call

__all__ = ["CacheConfig", "Policy", "is_reproducible", "open_backend", "POLICIES"]

DEFAULT_TTL_S = 7 * 24 * 3600.0
DEFAULT_MAX_ENTRY_BYTES = 8 * 2**20

Policy = Callable[["Call"], bool]


def is_reproducible(call: Call) -> bool:
    """Whether the answer to ``call`` is meant to be the same every time: embeddings, or a
    generation at temperature 0 or with a fixed seed. The default cache policy."""
    if call.operation == "embeddings":
        return True
    seed = call.params.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return True
    return call.params.get("temperature") == 0


def _everything(call: Call) -> bool:
    return True


#: named policies: ``"reproducible"`` (the default) and ``"all"``
POLICIES: dict[str, Policy] = {"reproducible": is_reproducible, "all": _everything}


def _positive(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"cache {name} must be a number > 0{' or None' if allow_none else ''}, got {value!r}")


@dataclass(frozen=True)
class CacheConfig:
    """How the cache stage works.

    ``location``: a directory (the built-in disk cache), a URL whose scheme a backend plugin
    registers (``redis://host:6379/0`` with ``llmspend-redis``), or a :class:`CacheBackend`.
    ``options`` go to the backend built from ``location`` (e.g. ``size_limit_bytes`` and
    ``timeout_s`` for the disk cache, ``timeout_s`` for Redis).

    ``namespace``: the scope of the cache. By default each credential (API key) has its own;
    a namespace replaces that, e.g. to keep the cache across a key rotation, or to give each
    tenant its own with several sharing one key.

    ``policy``: which requests are cached: ``"reproducible"`` (embeddings, temperature 0 or a
    fixed seed), ``"all"``, or a function of the :class:`~llmspend.Call`. ``ttl_s``: how long
    an answer is kept (``None``: until evicted). ``max_entry_bytes``: larger answers are not
    stored.
    """

    location: str | os.PathLike[str] | CacheBackend | None = None
    namespace: str | None = None
    policy: str | Policy = "reproducible"
    ttl_s: float | None = DEFAULT_TTL_S
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.location is not None and not isinstance(self.location, str | os.PathLike | CacheBackend):
            raise ConfigError(
                f"cache location must be a directory, a URL (redis://...) or a CacheBackend, got {type(self.location).__name__}"
            )
        if self.namespace is not None and (not isinstance(self.namespace, str) or not self.namespace):
            raise ConfigError(f"cache namespace must be a non-empty str, got {self.namespace!r}")
        if isinstance(self.policy, str):
            if self.policy not in POLICIES:
                raise ConfigError(f"cache policy {self.policy!r} is not one of {', '.join(POLICIES)} (or a function of the Call)")
        elif not callable(self.policy):
            raise ConfigError(f"cache policy must be {' or '.join(map(repr, POLICIES))} or a function of the Call, got {self.policy!r}")
        _positive("ttl_s", self.ttl_s, allow_none=True)
        if not isinstance(self.max_entry_bytes, int) or isinstance(self.max_entry_bytes, bool) or self.max_entry_bytes <= 0:
            raise ConfigError(f"cache max_entry_bytes must be an int > 0, got {self.max_entry_bytes!r}")
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"cache options must be a dict of backend options, got {type(self.options).__name__}")
        if isinstance(self.location, CacheBackend) and self.options:
            raise ConfigError("cache options apply to a backend built from a path or URL; configure a CacheBackend object itself")

    @property
    def should_cache(self) -> Policy:
        return POLICIES[self.policy] if isinstance(self.policy, str) else self.policy


def _scheme(location: str) -> str:
    """The URL scheme of ``location``, or "" for a plain path (``C:\\cache`` included)."""
    # not urlsplit: it raises on a malformed host ("[::1"), which the backend is to report
    return location.partition("://")[0].lower() if "://" in location else ""


def open_backend(location: str | os.PathLike[str] | CacheBackend | None, **options: Any) -> CacheBackend:
    """The backend for ``location``: itself if it is one, the disk cache for a path (or a
    ``file://`` URL), else the plugin registered for the URL's scheme."""
    from .. import plugins
    from .disk import DiskCache

    if isinstance(location, CacheBackend):
        return location
    text = os.fspath(location) if location is not None else None
    scheme = _scheme(text) if text is not None else ""
    if scheme in ("", "file"):
        path = urlsplit(text).path if scheme == "file" and text is not None else text
        factory: Callable[..., Any] = DiskCache
        what = "the disk cache"
    else:
        found = plugins.cache_backends()
        if scheme not in found:
            installed = ", ".join(f"{s}://" for s in sorted(found)) or "none"
            hint = " For Redis: pip install llmspend-redis (or pip install -e plugins/llmspend-redis in a checkout)." if scheme.startswith("redis") else ""
            raise ConfigError(
                f"no cache backend handles {scheme}:// URLs (installed: {installed}).{hint} "
                "A directory path uses the built-in disk cache."
            )
        factory, path, what = found[scheme], text, f"the {scheme}:// cache backend"
    try:
        backend = factory(path, **options)
    except TypeError as exc:
        raise ConfigError(f"{what} does not take these options {sorted(options)}: {exc}") from exc
    if not isinstance(backend, CacheBackend):
        raise PluginError(f"{what} returned a {type(backend).__name__}, not a llmspend.cache.CacheBackend")
    return backend
