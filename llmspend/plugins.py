"""Plugin discovery through entry points.

A plugin declares itself in its own packaging, exactly as a first-party plugin in ``plugins/``
does::

    [project.entry-points."llmspend.providers"]
    anthropic = "llmspend_anthropic:AnthropicAdapter"

Groups: ``llmspend.providers`` (a :class:`~llmspend.providers.base.ProviderAdapter` subclass or
instance), ``llmspend.stages`` (a :class:`~llmspend.pipeline.StageSpec`, or a callable returning
one), ``llmspend.cache_backends`` (a callable ``(url, **options) -> backend`` keyed by URL
scheme), ``llmspend.ledgers`` (a callable ``(url) -> Ledger`` keyed by URL scheme). Each plugin is validated when it loads and named in any error. Set
``LLMSPEND_DISABLE_PLUGIN_AUTOLOAD=1`` to load none (built-ins still work).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .exceptions import PluginError
from .pipeline import CORE_OPTIONS, StageSpec
from .providers.base import ProviderAdapter

__all__ = [
    "AUTOLOAD_ENV",
    "PROVIDERS_GROUP",
    "STAGES_GROUP",
    "CACHE_BACKENDS_GROUP",
    "LEDGERS_GROUP",
    "provider_adapters",
    "stage_specs",
    "cache_backends",
    "ledger_backends",
    "reload",
]

AUTOLOAD_ENV = "LLMSPEND_DISABLE_PLUGIN_AUTOLOAD"
PROVIDERS_GROUP = "llmspend.providers"
STAGES_GROUP = "llmspend.stages"
CACHE_BACKENDS_GROUP = "llmspend.cache_backends"
LEDGERS_GROUP = "llmspend.ledgers"


def autoload_enabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("1", "true", "yes", "on")


def _describe(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    origin = f" from {dist.name} {dist.version}" if dist is not None else ""
    return f"plugin {ep.name!r} ({ep.value}){origin} in group {ep.group!r}"


def _load(group: str) -> list[tuple[EntryPoint, Any]]:
    if not autoload_enabled():
        return []
    loaded = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            loaded.append((ep, ep.load()))
        except Exception as exc:
            raise PluginError(
                f"{_describe(ep)} failed to load: {type(exc).__name__}: {exc}. "
                f"Fix or uninstall it, or set {AUTOLOAD_ENV}=1 to skip plugins."
            ) from exc
    return loaded


@functools.lru_cache(maxsize=1)
def _providers() -> tuple[ProviderAdapter, ...]:
    from .providers.openai import OpenAIAdapter

    found: list[ProviderAdapter] = []
    for ep, obj in _load(PROVIDERS_GROUP):
        if isinstance(obj, type) and issubclass(obj, ProviderAdapter):
            try:
                obj = obj()
            except Exception as exc:
                raise PluginError(f"{_describe(ep)}: could not create the adapter: {exc}") from exc
        if not isinstance(obj, ProviderAdapter):
            raise PluginError(
                f"{_describe(ep)} is a {type(obj).__name__}, not a llmspend.providers.base.ProviderAdapter"
            )
        found.append(obj)
    # Plugins first, so a plugin can claim clients and paths before the generic adapter.
    return (*found, OpenAIAdapter())


@functools.lru_cache(maxsize=1)
def _stages() -> tuple[StageSpec, ...]:
    from .stages import builtin_specs

    builtins = builtin_specs()
    taken = {spec.option for spec in builtins} | set(CORE_OPTIONS)
    found: list[StageSpec] = []
    for ep, obj in _load(STAGES_GROUP):
        if not isinstance(obj, StageSpec) and callable(obj):
            try:
                obj = obj()
            except Exception as exc:
                raise PluginError(f"{_describe(ep)}: calling it to get its StageSpec failed: {exc}") from exc
        if not isinstance(obj, StageSpec):
            raise PluginError(f"{_describe(ep)} must be a llmspend.pipeline.StageSpec, got {type(obj).__name__}")
        if obj.option in taken:
            raise PluginError(f"{_describe(ep)} wants the wrap() option {obj.option!r}, which is already taken")
        taken.add(obj.option)
        found.append(obj)
    return (*builtins, *found)


@functools.lru_cache(maxsize=1)
def _cache_backends() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for ep, obj in _load(CACHE_BACKENDS_GROUP):
        if not callable(obj):
            raise PluginError(f"{_describe(ep)} must be callable as (url, **options) -> backend")
        found[ep.name] = obj
    return found


@functools.lru_cache(maxsize=1)
def _ledger_backends() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for ep, obj in _load(LEDGERS_GROUP):
        if not callable(obj):
            raise PluginError(f"{_describe(ep)} must be callable as (url) -> llmspend.ledger.Ledger")
        found[ep.name] = obj
    return found


def provider_adapters() -> tuple[ProviderAdapter, ...]:
    """Every provider adapter: installed plugins', then the built-in OpenAI-compatible one."""
    return _providers()


def stage_specs() -> tuple[StageSpec, ...]:
    """Every stage spec: built-in, then plugins'."""
    return _stages()


def cache_backends() -> dict[str, Callable[..., Any]]:
    """Cache backend factories from plugins, by URL scheme (e.g. ``"redis"``)."""
    return _cache_backends()


def ledger_backends() -> dict[str, Callable[..., Any]]:
    """Budget ledger factories from plugins, by URL scheme (e.g. ``"redis"``)."""
    return _ledger_backends()


def reload() -> None:
    """Forget what was loaded, so the next use looks at entry points again (tests, notebooks)."""
    _providers.cache_clear()
    _stages.cache_clear()
    _cache_backends.cache_clear()
    _ledger_backends.cache_clear()
