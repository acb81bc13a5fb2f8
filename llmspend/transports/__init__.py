"""Transport adapters: the pipeline installed in an HTTP library's transport layer.

One thin adapter per library (``httpx2``, ``httpx``); the pipeline itself knows neither.
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

from ..exceptions import ConfigError
from ..pipeline import Pipeline

__all__ = ["install", "library_of", "transient_errors"]

_LIBRARIES = ("httpx2", "httpx")


@functools.lru_cache(maxsize=1)
def transient_errors() -> tuple[type[BaseException], ...]:
    """Exception types of the installed HTTP libraries that mean "the network failed, the
    request may be tried again": connection errors, timeouts, protocol errors."""
    errors: list[type[BaseException]] = []
    for name in _LIBRARIES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - both are dependencies
            continue
        errors.append(module.TransportError)
    return tuple(errors)


def library_of(http_client: object) -> tuple[str, bool] | None:
    """``(library name, is_async)`` for an ``httpx2``/``httpx`` client, else ``None``."""
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        if module is None:
            continue
        if isinstance(http_client, module.AsyncClient):
            return name, True
        if isinstance(http_client, module.Client):
            return name, False
    return None


def install(http_client: Any, pipeline: Pipeline) -> Any:
    """A copy of ``http_client`` (``httpx2``/``httpx``, sync or async) running ``pipeline``."""
    found = library_of(http_client)
    if found is None:
        raise ConfigError(
            f"llmspend can install its pipeline in httpx2 and httpx clients, not {type(http_client).__name__}"
        )
    name, is_async = found
    module = importlib.import_module(f"llmspend.transports.{name}")
    from ._library import install as _install

    return _install(http_client, pipeline, module.PipelineTransport, module.AsyncPipelineTransport, is_async)
