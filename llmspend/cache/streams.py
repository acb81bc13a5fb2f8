"""Event streams through the cache: recorded as they pass to the caller, replayed from storage.

A recording keeps a copy of every chunk on its way to the caller and hands the copy on once
the stream ends, whichever way it ends: read to the last byte, or closed by the SDK (which
stops reading at the provider's end-of-answer event). The cache stage then stores it only if
the provider's own end event is among the chunks, so a stream the caller stopped early, or one
that broke, is never stored. A recording that grows past its limit keeps nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

from .._http import Response

__all__ = ["ReplayStream", "RecordingStream", "AsyncRecordingStream"]


class ReplayStream:
    """Stored chunks handed out again (a sync and an async byte stream). Like a live body it
    is read once: iterating it again goes on where the last iteration stopped."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = iter(chunks)

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class _Recording:
    """The chunks seen so far and how the stream ended."""

    __slots__ = ("chunks", "size", "limit", "broken", "ended")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] | None = []
        self.size = 0
        self.limit = limit
        self.broken = False
        self.ended = False

    def keep(self, chunk: bytes) -> None:
        if self.chunks is not None:
            self.size += len(chunk)
            if self.size > self.limit:
                self.chunks = None  # too big to store: stop holding it
            else:
                self.chunks.append(chunk)

    def end(self) -> list[bytes] | None:
        """The chunks to offer for storage, the first time the stream ends; else None."""
        if self.ended:
            return None
        self.ended = True
        return None if self.broken else self.chunks


class RecordingStream:
    """``source``'s body, passed on unchanged; ``on_end(chunks)`` runs once when it ends
    (``chunks`` is None when it broke or grew past ``limit`` bytes).

    Iterating it again goes on where the last iteration stopped, as the SDKs expect when they
    drain a response after the provider's end event."""

    def __init__(self, source: Response, limit: int, on_end: Callable[[list[bytes] | None], None]) -> None:
        self._source = source
        self._chunks = source.iter_bytes()
        self._recording = _Recording(limit)
        self._on_end = on_end

    def __iter__(self) -> Iterator[bytes]:
        recording = self._recording
        try:
            for chunk in self._chunks:
                recording.keep(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException:
            recording.broken = True
            raise
        finally:
            self._end()

    def _end(self) -> None:
        if not self._recording.ended:
            self._on_end(self._recording.end())

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            self._end()


class AsyncRecordingStream:
    """The async twin of :class:`RecordingStream`."""

    def __init__(self, source: Response, limit: int, on_end: Callable[[list[bytes] | None], Awaitable[None]]) -> None:
        self._source = source
        self._chunks = source.aiter_bytes()
        self._recording = _Recording(limit)
        self._on_end = on_end

    async def __aiter__(self) -> AsyncIterator[bytes]:
        recording = self._recording
        try:
            async for chunk in self._chunks:
                recording.keep(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException:
            recording.broken = True
            raise
        finally:
            await self._end()

    async def _end(self) -> None:
        if not self._recording.ended:
            await self._on_end(self._recording.end())

    async def aclose(self) -> None:
        try:
            await self._source.aclose()
        finally:
            await self._end()
