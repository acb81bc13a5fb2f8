"""The pipeline as an HTTP transport of one library (``httpx2`` or ``httpx``).

Both libraries share one transport interface (``handle_request`` / ``handle_async_request``
returning a response whose ``stream`` the client reads), so one implementation serves both;
``llmspend.transports.httpx2`` and ``llmspend.transports.httpx`` bind it to each module. This is
the only code that touches the library's request and response types.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

from .._http import Headers, Request, Response
from ..pipeline import Pipeline

__all__ = ["make_transports"]

# the library sets these for a new body itself
_BODY_HEADERS = ("content-length", "transfer-encoding")


def _header_pairs(native_headers: Any) -> Callable[[], list[tuple[str, str]]]:
    """What ``native_headers.multi_items()`` returns (names lower-cased), for Headers.lazy.
    When every header is ASCII (as HTTP/1.1 wants), that is what the library's own encoding
    guess finds, and decoding the raw bytes straight away gives the same pairs for less than
    half the work (no guess, which decodes every header once more); otherwise the library
    decodes them."""

    def pairs() -> list[tuple[str, str]]:
        try:
            return [(name.lower().decode("ascii"), value.decode("ascii")) for name, value in native_headers.raw]
        except UnicodeDecodeError:
            return native_headers.multi_items()  # type: ignore[no-any-return]

    return pairs


def _native_pairs(headers: Headers) -> list[tuple[str, str | bytes]]:
    """``headers`` for a library request or response of our own making. The library encodes a
    text value as ASCII and fails on any other, yet it decoded what it received with its own
    guess (UTF-8, else Latin-1): a non-ASCII value goes back as UTF-8 bytes, which it reads
    back as the same text."""
    return [(name, value if value.isascii() else value.encode()) for name, value in headers.items()]


def make_transports(lib: ModuleType) -> tuple[type[Any], type[Any]]:
    """``(PipelineTransport, AsyncPipelineTransport)`` classes for the library ``lib``."""

    def to_request(native: Any, body: bytes) -> Request:
        headers = Headers.lazy(_header_pairs(native.headers), native.headers)
        return Request(native.method, str(native.url), headers, body, native=native)

    def to_native_request(request: Request) -> Any:
        if request.native is not None:
            return request.native
        template = request.template
        # A stage changed the request (most often only its body: a stream asked for usage).
        # What it left as it was is taken from the library's request as it stands, rather than
        # parsed and normalised again from strings.
        native_headers = request.headers.origin
        if native_headers is not None:
            headers = native_headers.copy()
            for name in _BODY_HEADERS:
                if name in headers:
                    del headers[name]
        else:
            headers = _native_pairs(request.headers.without(*_BODY_HEADERS))
        url: Any = request.url
        if template is not None and url == str(template.url):
            url = template.url
        return lib.Request(
            request.method,
            url,
            headers=headers,
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
        origin = response.origin
        if response.stream is not None and origin is not None and isinstance(origin._reader, _Reader):
            adopted = origin._reader.adopt(response.stream, is_async)
            if adopted is not None:
                return adopted
        headers = _native_pairs(response.headers.without_body_framing())
        if response.content is not None:
            return lib.Response(response.status_code, headers=headers, content=response.content, request=native_request)
        assert response.stream is not None
        stream = _AsyncStream(response.stream) if is_async else _SyncStream(response.stream)
        return lib.Response(response.status_code, headers=headers, stream=stream, request=native_request)

    class _Reader:
        """Reads a library response's body through the library (decoding included), so the
        response stays valid to hand back as it is."""

        __slots__ = ("native", "raw")

        def __init__(self, native: Any) -> None:
            self.native = native
            self.raw = native.stream  # the transport's own stream, whatever replaces it later

        def adopt(self, stream: Any, is_async: bool) -> Any:
            """The library response again, now with ``stream`` as its body; or None when its
            body must be decoded first. Handing back the same response object saves the
            library's per-chunk layers a second time round, on every token of a stream."""
            headers = self.native.headers
            if "content-encoding" in headers or self.native.is_stream_consumed:
                return None
            if "content-length" in headers:
                del headers["content-length"]  # the body may now be shorter (a dropped chunk)
            self.native.stream = _AsyncStream(stream) if is_async else _SyncStream(stream)
            return self.native

        def read(self) -> bytes:
            return self.native.read()  # type: ignore[no-any-return]

        async def aread(self) -> bytes:
            return await self.native.aread()  # type: ignore[no-any-return]

        def iter_bytes(self) -> Iterator[bytes]:
            if "content-encoding" not in self.native.headers:
                # Nothing to decode (event streams are sent plain): read the transport's
                # stream itself and skip the library's per-chunk layers, which every token of
                # a streamed answer would otherwise pay for twice.
                return iter(self.raw)
            return self.native.iter_bytes()  # type: ignore[no-any-return]

        def aiter_bytes(self) -> AsyncIterator[bytes]:
            if "content-encoding" not in self.native.headers:
                return self.raw.__aiter__()  # type: ignore[no-any-return]
            return self.native.aiter_bytes()  # type: ignore[no-any-return]

        def close(self) -> None:
            # Once adopted, closing the library response closes our stream, which comes back
            # here: close the transport's stream itself then.
            if self.native.stream is self.raw:
                self.native.close()
            else:
                self.raw.close()

        async def aclose(self) -> None:
            if self.native.stream is self.raw:
                await self.native.aclose()
            else:
                await self.raw.aclose()

    def from_native_response(native: Any) -> Response:
        headers = Headers.lazy(_header_pairs(native.headers))
        return Response(native.status_code, headers, native=native, reader=_Reader(native))

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
