"""A retry stage for tests: it waits for nothing and remembers how long it would have waited."""

from __future__ import annotations

from ..stages.retry import RetryPolicy, RetryStage

__all__ = ["RecordingRetryStage"]


class RecordingRetryStage(RetryStage):
    """``RetryStage`` whose sleeps are recorded in :attr:`waits` instead of taken, so tests of
    backoff and ``Retry-After`` run at once: ``wrap(client, retry=RecordingRetryStage())``."""

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.waits: list[float] = []

        async def asleep(seconds: float) -> None:
            self.waits.append(seconds)

        super().__init__(policy, sleep=self.waits.append, asleep=asleep)
