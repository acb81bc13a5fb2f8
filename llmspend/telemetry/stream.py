"""Stream bodies that report to a :class:`CallRecorder` as they pass to the caller.

The caller gets the provider's bytes as they arrive (minus only what llmspend itself asked for;
see the provider adapter). The call's span ends when the stream ends, when the caller closes
it early (cost then estimated from what was received, and marked so), or when it breaks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from .._http import Response
from ..providers.base import StreamReader
from .recorder import CallRecorder

__all__ = ["ObservedStream", "AsyncObservedStream"]


class ObservedStream:
    def __init__(self, source: Response, reader: StreamReader, recorder: CallRecorder) -> None:
        self._source = source
        self._reader = reader
        self._recorder = recorder

    def __iter__(self) -> Iterator[bytes]:
        reader, recorder = self._reader, self._recorder
        try:
            for chunk in self._source.iter_bytes():
                recorder.first_chunk()
                out = reader.feed(chunk)
                if out:
                    yield out
            tail = reader.flush()
            if tail:
                yield tail
        except GeneratorExit:
            recorder.finish(reader.outcome(complete=False))
            raise
        except BaseException as exc:
            recorder.finish(reader.outcome(complete=False), error=exc)
            raise
        recorder.finish(reader.outcome(complete=True))

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            if not self._recorder.ended:  # the caller stopped reading early
                self._recorder.finish(self._reader.outcome(complete=False))


class AsyncObservedStream:
    def __init__(self, source: Response, reader: StreamReader, recorder: CallRecorder) -> None:
        self._source = source
        self._reader = reader
        self._recorder = recorder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        reader, recorder = self._reader, self._recorder
        try:
            async for chunk in self._source.aiter_bytes():
                recorder.first_chunk()
                out = reader.feed(chunk)
                if out:
                    yield out
            tail = reader.flush()
            if tail:
                yield tail
        except GeneratorExit:
            recorder.finish(reader.outcome(complete=False))
            raise
        except BaseException as exc:
            recorder.finish(reader.outcome(complete=False), error=exc)
            raise
        recorder.finish(reader.outcome(complete=True))

    async def aclose(self) -> None:
        try:
            await self._source.aclose()
        finally:
            if not self._recorder.ended:
                self._recorder.finish(self._reader.outcome(complete=False))
