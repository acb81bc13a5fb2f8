"""Where a cascade step on another provider is sent, and with which credentials: an official
SDK client the application configured for that provider.

    client = llmspend.wrap(openai.OpenAI(), cascade={
        "plan": plan,                                   # a step {"model": "claude-haiku-4-5", "provider": "anthropic"}
        "clients": {"anthropic": anthropic.Anthropic()},
    })

The step's request is built by that client, as it builds its own (its base URL, API version,
default headers and its credentials, however it gets them: a key, a token provider), through
the SDK's documented ``client.post(path, body=..., cast_to=<library>.Response)`` and an HTTP
transport that only captures the request. It is then sent down the wrapped client's own
pipeline and connection, so the step gets its own span, retries, cache and budget check like
any call. Nothing of the request is kept: no ``repr``, error message, span or log shows its
headers.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._http import Headers, Request
from ..cache.keys import is_credential_header
from ..exceptions import ConfigError
from ..providers.base import ProviderAdapter

__all__ = ["StepEndpoint", "endpoint_for_client", "endpoints_from"]

#: per-request llmspend headers (cache controls, ...) that a step on another provider keeps
_OWN_HEADERS = "x-llmspend-"


@dataclass(frozen=True, eq=False, repr=False)
class StepEndpoint:
    """Another provider's chat API, reached through a copy of its SDK client whose transport
    only captures what the SDK would send."""

    provider: str
    adapter: ProviderAdapter
    #: the client's default headers without credentials (they say, e.g., the API version)
    defaults: Headers
    #: the copy of the SDK client that builds requests, and what its ``post`` returns them in
    capture: Any
    response_type: Any
    is_async: bool

    def build(self, body: Mapping[str, Any], caller: Headers) -> Request:
        """The request the SDK client sends for ``body``, plus the caller's llmspend controls
        (and none of the caller's own headers: its key never goes to another provider)."""
        if self.is_async:
            raise RuntimeError("an async SDK client builds its requests with abuild()")
        return self._request(self.capture.post(self.adapter.chat_path, cast_to=self.response_type, body=body), caller)

    async def abuild(self, body: Mapping[str, Any], caller: Headers) -> Request:
        if not self.is_async:
            return self.build(body, caller)  # no I/O: the transport answers at once
        return self._request(await self.capture.post(self.adapter.chat_path, cast_to=self.response_type, body=body), caller)

    def _request(self, response: Any, caller: Headers) -> Request:
        native = response.request
        own = [(k, v) for k, v in caller.items() if k.lower().startswith(_OWN_HEADERS)]
        headers = Headers((*native.headers.multi_items(), *own))
        # the native request is the template: the client's own timeouts go with it
        return Request(native.method, str(native.url), headers, native.content, adapter=self.adapter, template=native)

    def __repr__(self) -> str:
        return f"StepEndpoint({self.provider!r}, {self.adapter.name!r})"


def _capturing_client(lib: Any, is_async: bool) -> Any:
    """An HTTP client of ``lib`` whose transport answers every request with an empty 200 and
    sends nothing: the response carries the request the SDK built."""
    if is_async:
        class _AsyncCapture(lib.AsyncBaseTransport):  # type: ignore[misc,name-defined]
            async def handle_async_request(self, request: Any) -> Any:
                return lib.Response(200, content=b"", request=request)

        return lib.AsyncClient(transport=_AsyncCapture())

    class _Capture(lib.BaseTransport):  # type: ignore[misc,name-defined]
        def handle_request(self, request: Any) -> Any:
            return lib.Response(200, content=b"", request=request)

    return lib.Client(transport=_Capture())


def _has_credential(client: Any, defaults: Mapping[str, Any]) -> bool:
    """Whether the SDK client will authenticate its requests: a key or token in its headers,
    or an auth flow that fetches one per request (token providers)."""
    static = {**(getattr(client, "auth_headers", None) or {}), **defaults}
    return any(is_credential_header(k.lower()) and isinstance(v, str) and v for k, v in static.items()) or (
        getattr(client, "custom_auth", None) is not None)


def endpoint_for_client(provider: str, client: object, *, caller_is_async: bool) -> StepEndpoint:
    """The chat API of an official SDK ``client``, for steps that name ``provider``."""
    from ..plugins import provider_adapters
    from ..transports import library_of

    what = f"cascade clients[{provider!r}]"
    kind = f"{type(client).__module__}.{type(client).__name__}"
    http = getattr(client, "_client", None)
    found = library_of(http) if http is not None else None
    defaults = getattr(client, "default_headers", None)
    if found is None or not callable(getattr(client, "post", None)) or not callable(getattr(client, "copy", None)) \
            or not isinstance(defaults, Mapping):
        raise ConfigError(f"{what} takes an official SDK client (anthropic.Anthropic(...), openai.OpenAI(...)), got {kind}")
    adapter = next((a for a in provider_adapters() if a.supports_client(client)), None)
    if adapter is None:
        raise ConfigError(f"{what}: no llmspend provider adapter handles {kind}; install its plugin (e.g. pip install llmspend-anthropic)")
    if adapter.chat_path is None:
        raise ConfigError(f"{what}: the {adapter.name} adapter does not translate chat requests, so its models cannot be steps on another client")
    lib_name, is_async = found
    if is_async and not caller_is_async:
        raise ConfigError(f"{what}: {kind} is async but the wrapped client is not; give its sync twin (e.g. anthropic.Anthropic)")
    if not _has_credential(client, defaults):
        raise ConfigError(
            f"{what}: the {type(client).__name__} client has no credentials to send: give it api_key= "
            "(or set its environment variable)"
        )
    lib = importlib.import_module(lib_name)
    capture = client.copy(http_client=_capturing_client(lib, is_async))  # type: ignore[attr-defined]
    plain = Headers((k, v) for k, v in defaults.items() if isinstance(v, str) and not is_credential_header(k.lower()))
    return StepEndpoint(provider, adapter, plain, capture, lib.Response, is_async)


def endpoints_from(clients: Any, *, caller_is_async: bool) -> dict[str, StepEndpoint]:
    """``cascade={"clients": ...}``: a dict from provider name (as the plan's steps name it)
    to an SDK client."""
    if not isinstance(clients, Mapping) or not all(isinstance(k, str) and k for k in clients):
        raise ConfigError(
            "cascade clients= takes a dict from provider name (as the plan's steps name it) to an SDK client, "
            "e.g. {'anthropic': anthropic.Anthropic()}"
        )
    return {p: endpoint_for_client(p, client, caller_is_async=caller_is_async) for p, client in clients.items()}
