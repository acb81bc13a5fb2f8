"""The pipeline as an HTTP transport of one library (``httpx2`` or ``httpx``).

Both libraries share one transport interface (``handle_request`` / ``handle_async_request``
returning a response whose ``stream`` the client reads), so one implementation serves both;
``llmspend.transports.httpx2`` and ``llmspend.transports.httpx`` bind it to each module. This is
the only code that touches the library's request and response types.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from .._http import Headers, Request, Response
from ..pipeline import Pipeline

__all__ = ["make_transports"]


def make_transports(lib: ModuleType) -> tuple[type[Any], type[Any]]:
    """``(PipelineTransport, AsyncPipelineTransport)`` classes for the library ``lib``."""

    def to_request(native: Any, body: bytes) -> Request:
        return Request(native.method, str(native.url), Headers(native.headers.multi_items()), body, native=native)

    def to_native_request(request: Request) -> Any:
        if request.native is not None:
            return request.native
        template = request.template
        return lib.Request(
            request.method,
            request.url,
            # the library sets content-length for the new body itself
            headers=list(request.headers.without("content-length", "transfer-encoding").items()),
            content=request.content,
            extensions=dict(template.extensions) if template is not None else {},
        )

    class _SyncStream(lib.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def __iter__(self) -> Iterator[bytes]:
            return iter(self._stream)

        def close(self) -> None:
            self._stream.close()

    class _AsyncStream(lib.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._stream:
                yield chunk

        async def aclose(self) -> None:
            await self._stream.aclose()

    def to_native_response(response: Response, native_request: Any, is_async: bool) -> Any:
        if response.native is not None:
            return response.native  # untouched, or read through the library itself
        headers = list(response.headers.without_body_framing().items())
        if response.content is not None:
            return lib.Response(response.status_code, headers=headers, content=response.content, request=native_request)
        assert response.stream is not None
        stream = _AsyncStream(response.stream) if is_async else _SyncStream(response.stream)
        return lib.Response(response.status_code, headers=headers, stream=stream, request=native_request)

    class _Reader:
        """Reads a library response's body through the library (decoding included), so the
        response stays valid to hand back as it is."""

        __slots__ = ("native",)

        def __init__(self, native: Any) -> None:
            self.native = native

        def read(self) -> bytes:
            return self.native.read()  # type: ignore[no-any-return]

        async def aread(self) -> bytes:
            return await self.native.aread()  # type: ignore[no-any-return]

        def iter_bytes(self) -> Iterator[bytes]:
            if "content-encoding" not in self.native.headers:
                # Nothing to decode (event streams are sent plain): read the transport's
                # stream itself and skip the library's per-chunk layers, which every token of
                # a streamed answer would otherwise pay for twice.
                return iter(self.native.stream)
            return self.native.iter_bytes()  # type: ignore[no-any-return]

        def aiter_bytes(self) -> AsyncIterator[bytes]:
            if "content-encoding" not in self.native.headers:
                return self.native.stream.__aiter__()  # type: ignore[no-any-return]
            return self.native.aiter_bytes()  # type: ignore[no-any-return]

        def close(self) -> None:
            self.native.close()

        async def aclose(self) -> None:
            await self.native.aclose()

    def from_native_response(native: Any) -> Response:
        return Response(native.status_code, Headers(native.headers.multi_items()), native=native, reader=_Reader(native))

    class PipelineTransport(lib.BaseTransport):  # type: ignore[misc,name-defined]
        """A sync transport that runs ``pipeline`` in front of ``inner``."""

        def __init__(self, pipeline: Pipeline, inner: Any = None) -> None:
            self.pipeline = pipeline
            self.inner = inner if inner is not None else lib.HTTPTransport()
            self._handler = pipeline.bind(self._send)

        def _send(self, request: Request) -> Response:
            return from_native_response(self.inner.handle_request(to_native_request(request)))

        def handle_request(self, request: Any) -> Any:
            response = self._handler(to_request(request, request.read()))
            return to_native_response(response, request, is_async=False)

        def close(self) -> None:
            try:
                self.pipeline.close()
            finally:
                self.inner.close()

    class AsyncPipelineTransport(lib.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        """An async transport that runs ``pipeline`` in front of ``inner``."""

        def __init__(self, pipeline: Pipeline, inner: Any = None) -> None:
            self.pipeline = pipeline
            self.inner = inner if inner is not None else lib.AsyncHTTPTransport()
            self._handler = pipeline.abind(self._send)

        async def _send(self, request: Request) -> Response:
            return from_native_response(await self.inner.handle_async_request(to_native_request(request)))

        async def handle_async_request(self, request: Any) -> Any:
            response = await self._handler(to_request(request, await request.aread()))
            return to_native_response(response, request, is_async=True)

        async def aclose(self) -> None:
            try:
                await self.pipeline.aclose()
            finally:
                await self.inner.aclose()

    for cls in (PipelineTransport, AsyncPipelineTransport):
        cls.__module__ = f"llmspend.transports.{lib.__name__}"
        cls.__qualname__ = cls.__name__
    return PipelineTransport, AsyncPipelineTransport


def install(http_client: Any, pipeline: Pipeline, sync_cls: type[Any], async_cls: type[Any], is_async: bool) -> Any:
    """A shallow copy of ``http_client`` whose transports (the default one and every proxy
    mount) run through ``pipeline``. The copy keeps the client's timeouts, headers, limits and
    proxies; the original is left as it was."""
    cls = async_cls if is_async else sync_cls
    inner = http_client._transport
    if isinstance(inner, (sync_cls, async_cls)):
        inner = inner.inner  # re-wrapping replaces the pipeline rather than stacking two
    wrapped = copy.copy(http_client)
    wrapped._transport = cls(pipeline, inner)
    mounts = {}
    for pattern, transport in http_client._mounts.items():
        if transport is not None and isinstance(transport, (sync_cls, async_cls)):
            transport = transport.inner
        mounts[pattern] = None if transport is None else cls(pipeline, transport)
    wrapped._mounts = mounts
    return wrapped
