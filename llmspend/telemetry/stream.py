"""Stream bodies that report to a :class:`CallRecorder` as they pass to the caller.

The caller gets the provider's bytes as they arrive (minus only what llmspend itself asked for;
see the provider adapter). The call's span ends when the stream ends, when the caller closes
it early (cost then estimated from what was received, and marked so), or when it breaks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from .._http import Response
from ..providers.base import Outcome, StreamReader
from .recorder import CallRecorder, warn_once

__all__ = ["ObservedStream", "AsyncObservedStream"]


def _outcome(reader: StreamReader, *, complete: bool) -> Outcome | None:
    """What the stream said, or None (its cost then unknown) when its events are not what the
    adapter expects: the caller has had the bytes unchanged, and must not get an error from
    llmspend's reading of them."""
    try:
        return reader.outcome(complete=complete)
    except Exception as exc:
        warn_once(("unparsed-stream", type(exc).__name__),
                  "llmspend: could not read a stream's events (%s); its cost is unknown", type(exc).__name__)
        return None


class ObservedStream:
    def __init__(self, source: Response, reader: StreamReader, recorder: CallRecorder) -> None:
        self._source = source
        self._reader = reader
        self._recorder = recorder

    def __iter__(self) -> Iterator[bytes]:
        reader, recorder = self._reader, self._recorder
        feed = reader.feed  # this loop runs once per token: keep it to the bare minimum
        try:
            chunks = iter(self._source.iter_bytes())
            for chunk in chunks:
                recorder.first_chunk()
                out = feed(chunk)
                if out:
                    yield out
                break
            for chunk in chunks:
                out = feed(chunk)
                if out:
                    yield out
            tail = reader.flush()
            if tail:
                yield tail
        except GeneratorExit:
            if not recorder.ended:  # closed before the end (close() may have recorded it already)
                recorder.finish(_outcome(reader, complete=False))
            raise
        except BaseException as exc:
            recorder.finish(_outcome(reader, complete=False), error=exc)
            raise
        recorder.finish(_outcome(reader, complete=True))

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            if not self._recorder.ended:  # the caller stopped reading early
                self._recorder.finish(_outcome(self._reader, complete=False))


class AsyncObservedStream:
    def __init__(self, source: Response, reader: StreamReader, recorder: CallRecorder) -> None:
        self._source = source
        self._reader = reader
        self._recorder = recorder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        reader, recorder = self._reader, self._recorder
        feed = reader.feed
        first = True
        try:
            async for chunk in self._source.aiter_bytes():
                if first:
                    recorder.first_chunk()
                    first = False
                out = feed(chunk)
                if out:
                    yield out
            tail = reader.flush()
            if tail:
                yield tail
        except GeneratorExit:
            if not recorder.ended:  # closed before the end (close() may have recorded it already)
                recorder.finish(_outcome(reader, complete=False))
            raise
        except BaseException as exc:
            recorder.finish(_outcome(reader, complete=False), error=exc)
            raise
        recorder.finish(_outcome(reader, complete=True))

    async def aclose(self) -> None:
        try:
            await self._source.aclose()
        finally:
            if not self._recorder.ended:
                self._recorder.finish(_outcome(self._reader, complete=False))
