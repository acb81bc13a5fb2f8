"""The request and response the pipeline works on, independent of any HTTP library.

A transport adapter (``llmspend.transports``) turns an ``httpx2``/``httpx`` request into a
:class:`Request`, runs the pipeline, and turns the :class:`Response` back. Stages never see the
HTTP library's own types, so one pipeline serves both libraries and any future one.

Bodies are always *decoded* here (no ``content-encoding``): the adapter decodes what the server
sent, and when it builds a response of its own it drops the encoding headers to match.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import SplitResult, urlsplit

from .context import CallContext

if TYPE_CHECKING:
    from .providers.base import Call, ProviderAdapter

__all__ = ["Headers", "Request", "Response", "SyncByteStream", "AsyncByteStream"]

# Headers that describe the body on the wire; wrong once we hand back a body we decoded or made.
_BODY_FRAMING = ("content-encoding", "content-length", "transfer-encoding")


class _Unset:
    __slots__ = ()


_UNSET: Any = _Unset()
_UNSET_ARG: Any = _Unset()


class _URLInfo(NamedTuple):
    parts: SplitResult
    host: str
    port: int | None  # None: the URL's port is not a number (reading it raises)


@functools.lru_cache(maxsize=256)
def _url_info(url: str) -> _URLInfo:
    """A URL split once, with its host and port. A client sends to a handful of URLs, and
    ``SplitResult.hostname``/``.port`` re-parse the netloc on every read: memoised, since
    every call's span needs both."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return _URLInfo(parts, parts.hostname or "", None)
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return _URLInfo(parts, parts.hostname or "", port)


class Headers:
    """An ordered, case-insensitive multi-dict of ``str`` header pairs. Treated as immutable.

    ``Headers.lazy(fn)`` defers building the pairs until something reads them: most calls
    never look at the provider's response headers, so the transport need not copy them.
    """

    __slots__ = ("_pairs", "_source", "origin")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: tuple[tuple[str, str], ...] | None = tuple(items)
        self._source: Callable[[], Iterable[tuple[str, str]]] | None = None
        #: the HTTP library's own headers object these were read from (see :meth:`lazy`)
        self.origin: Any = None

    @classmethod
    def lazy(cls, source: Callable[[], Iterable[tuple[str, str]]], origin: Any = None) -> Headers:
        """Headers read from ``source()`` when first needed. ``origin``: the library's headers
        object that ``source`` reads, which a transport may send again instead of rebuilding
        it from these pairs (headers are never changed in place, only replaced)."""
        headers = cls()
        headers._pairs, headers._source, headers.origin = None, source, origin
        return headers

    @property
    def _items(self) -> tuple[tuple[str, str], ...]:
        if self._pairs is None:
            assert self._source is not None
            self._pairs, self._source = tuple(self._source()), None
        return self._pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for key, value in self._items:
            if key.lower() == lname:
                return value
        return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def set(self, name: str, value: str) -> Headers:
        """A copy with ``name`` set to ``value`` (replacing every earlier value)."""
        return Headers((*self.without(name)._items, (name, value)))

    def without(self, *names: str) -> Headers:
        drop = {n.lower() for n in names}
        return Headers(kv for kv in self._items if kv[0].lower() not in drop)

    def without_body_framing(self) -> Headers:
        return self.without(*_BODY_FRAMING)

    def __repr__(self) -> str:
        # Values are left out on purpose: they may hold credentials.
        return f"Headers({[k for k, _ in self._items]!r})"


class Request:
    """One HTTP request on its way to the provider.

    Stages treat a request as immutable and use :meth:`replace` to change it; the per-call
    :class:`~llmspend.context.CallContext` travels with every replacement, so what one stage
    learns (a cache hit, a retry) the telemetry stage can report.
    """

    __slots__ = (
        "method", "url", "headers", "content", "native", "context", "adapter",
        "_template", "_json", "_call", "_url_info",
    )

    def __init__(
        self,
        method: str,
        url: str,
        headers: Headers,
        content: bytes = b"",
        *,
        native: Any = None,
        context: CallContext | None = None,
        adapter: ProviderAdapter | None = None,
        template: Any = None,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.content = content
        #: the HTTP library's own request, kept while this request is unchanged so the
        #: transport can send it as it came (extensions, timeouts and all).
        self.native = native
        self.context = context if context is not None else CallContext()
        self.adapter = adapter
        self._template = template
        self._json: Any = _UNSET
        self._call: Any = _UNSET
        self._url_info: _URLInfo | None = None

    # -- URL ---------------------------------------------------------------------------
    @property
    def _info(self) -> _URLInfo:
        info = self._url_info
        if info is None:
            info = self._url_info = _url_info(self.url)
        return info

    @property
    def parts(self) -> SplitResult:
        return self._info.parts

    @property
    def host(self) -> str:
        return self._info.host

    @property
    def port(self) -> int:
        port = self._info.port
        if port is None:  # not a number: read it again, so that urlsplit raises its ValueError
            return self._info.parts.port or 0
        return port

    @property
    def path(self) -> str:
        return self._info.parts.path

    # -- body --------------------------------------------------------------------------
    def json(self) -> Any:
        """The body parsed as JSON (parsed once). Raises ``ValueError`` when it is not JSON."""
        if self._json is _UNSET:
            self._json = loads(self.content) if self.content else None
        return self._json

    @property
    def call(self) -> Call | None:
        """What the provider adapter reads from this request, or ``None`` if it is not an LLM
        call it knows (such requests pass through the pipeline unmeasured)."""
        if self._call is _UNSET:
            self._call = self.adapter.parse_request(self) if self.adapter is not None else None
        return self._call  # type: ignore[no-any-return]

    def replace(
        self,
        *,
        json_body: Any = _UNSET_ARG,
        content: bytes | None = None,
        headers: Headers | None = None,
        url: str | None = None,
    ) -> Request:
        """A changed copy sharing this request's call context."""
        if json_body is not _UNSET_ARG:
            content = dumps(json_body)
        new = Request(
            self.method,
            url if url is not None else self.url,
            headers if headers is not None else self.headers,
            content if content is not None else self.content,
            native=None,
            context=self.context,
            adapter=self.adapter,
            # keep the library's request as a template (timeouts, extensions) for the rebuild
            template=self.template,
        )
        if json_body is not _UNSET_ARG:
            new._json = json_body
        return new

    @property
    def template(self) -> Any:
        """The library request this one was derived from, for its extensions (timeouts)."""
        return self.native if self.native is not None else self._template

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.parts.scheme}://{self.parts.netloc}{self.path}>"


class SyncByteStream(Protocol):
    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class AsyncByteStream(Protocol):
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Response:
    """A provider response: status, headers and a body that is either read (``content``) or a
    stream still to be read (``stream``).

    ``native`` is the HTTP library's own response while the body is untouched or was read
    through it, so the transport can hand it back without a copy.
    """

    __slots__ = ("status_code", "headers", "content", "stream", "native", "origin", "_reader")

    def __init__(
        self,
        status_code: int,
        headers: Headers,
        *,
        content: bytes | None = None,
        stream: SyncByteStream | AsyncByteStream | None = None,
        native: Any = None,
        reader: Any = None,
        origin: Response | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.stream = stream
        self.native = native
        #: the response this one was derived from (``with_stream``): a transport may reuse its
        #: library response for this body instead of building another
        self.origin = origin
        # an object with read()/aread() that reads the native body (set by transports)
        self._reader = reader

    @property
    def is_event_stream(self) -> bool:
        ctype = self.headers.get("content-type") or ""
        return ctype.startswith("text/event-stream")

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def read(self) -> bytes:
        """Read the whole body (decoded) and release the connection."""
        if self.content is None:
            if self._reader is not None:
                self.content = self._reader.read()
            else:
                stream = self.stream
                assert stream is not None and hasattr(stream, "__iter__"), "no sync body to read"
                try:
                    self.content = b"".join(stream)  # type: ignore[arg-type]
                finally:
                    stream.close()  # type: ignore[union-attr]
        return self.content

    async def aread(self) -> bytes:
        if self.content is None:
            if self._reader is not None:
                self.content = await self._reader.aread()
            else:
                stream = self.stream
                assert stream is not None and hasattr(stream, "__aiter__"), "no async body to read"
                try:
                    self.content = b"".join([chunk async for chunk in stream])  # type: ignore[union-attr]
                finally:
                    await stream.aclose()  # type: ignore[union-attr]
        return self.content

    def iter_bytes(self) -> Iterator[bytes]:
        """The body's chunks as they arrive (decoded). A body can be iterated once."""
        if self.content is not None:
            if self.content:
                yield self.content
        elif self._reader is not None:
            yield from self._reader.iter_bytes()
        elif self.stream is not None:
            yield from self.stream  # type: ignore[misc]

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        if self.content is not None:
            if self.content:
                yield self.content
        elif self._reader is not None:
            async for chunk in self._reader.aiter_bytes():
                yield chunk
        elif self.stream is not None:
            async for chunk in self.stream:  # type: ignore[union-attr]
                yield chunk

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        elif self.stream is not None and hasattr(self.stream, "close"):
            self.stream.close()

    async def aclose(self) -> None:
        if self._reader is not None:
            await self._reader.aclose()
        elif self.stream is not None and hasattr(self.stream, "aclose"):
            await self.stream.aclose()

    def with_stream(self, stream: SyncByteStream | AsyncByteStream) -> Response:
        """A response with the same status and headers whose body is ``stream``."""
        return Response(self.status_code, self.headers.without_body_framing(), stream=stream, origin=self)

    def with_content(self, content: bytes) -> Response:
        return Response(self.status_code, self.headers.without_body_framing(), content=content)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


def dumps(obj: Any) -> bytes:
    """Compact JSON, as the SDKs send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


_DECODER = json.JSONDecoder()  # what json.loads uses when given no options


def loads(data: bytes) -> Any:
    """``json.loads(data)``, minus its encoding sniffing for the usual body. A body that starts
    with ``{`` and then a byte other than NUL is UTF-8 by ``json.detect_encoding``'s own rules
    (UTF-16 and UTF-32 put a NUL next to it), so decode it so straight away; anything else
    goes through ``json.loads``. Raises ``ValueError`` as ``json.loads`` does."""
    if data[:1] == b"{" and data[1:2] != b"\x00":
        return _DECODER.decode(data.decode("utf-8", "surrogatepass"))
    return json.loads(data)

