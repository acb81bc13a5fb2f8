"""``await llmspend.batch(client, requests)``: many chat requests sent so that they batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import ConfigError
from .merge import HEADER

__all__ = ["batch"]


def _has_batch_stage(client: Any) -> bool:
    http = getattr(client, "_client", client)  # an SDK client's httpx2/httpx client, or that client
    pipeline = getattr(getattr(http, "_transport", None), "pipeline", None)
    return pipeline is not None and pipeline.stage("batch") is not None


async def batch(
    client: Any,
    requests: Iterable[Mapping[str, Any]],
    *,
    concurrency: int = 64,
    return_exceptions: bool = False,
) -> list[Any]:
    """Send chat requests through ``client`` concurrently, each marked for batching, and
    return their results in the order given.

    ``client`` is an async SDK client wrapped with the batch stage
    (``llmspend.wrap(openai.AsyncOpenAI(), batch=True)``); each request is the keyword
    arguments of ``client.chat.completions.create``. Requests that share a prefix (model,
    system message, few-shot examples, parameters) are merged by the stage; the rest go out
    as they are. At most ``concurrency`` are in flight at once. With ``return_exceptions``
    an error is returned in its request's place instead of raised.
    """
    if not _has_batch_stage(client):
        raise ConfigError(
            "llmspend.batch() needs an async client wrapped with the batch stage: "
            "client = llmspend.wrap(openai.AsyncOpenAI(...), batch=True)"
        )
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be an int >= 1, got {concurrency!r}")
    gate = asyncio.Semaphore(concurrency)

    async def send(kwargs: Mapping[str, Any]) -> Any:
        headers = dict(kwargs.get("extra_headers") or {})
        if not any(name.lower() == HEADER for name in headers):  # the caller's own marking wins
            headers[HEADER] = "on"
        async with gate:
            return await client.chat.completions.create(**{**kwargs, "extra_headers": headers})

    return list(await asyncio.gather(*(send(r) for r in requests), return_exceptions=return_exceptions))
