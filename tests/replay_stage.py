"""A stage that answers a request it has seen before, as a cache would, so tests of tracking
and budgets can see calls served by a stage (``served_from="cache"``) and their savings."""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from llmspend import Headers, OpenAIAdapter, Pipeline, PriceTable, Request, Response, Stage
from llmspend.stages.budget import BudgetStage
from llmspend.stages.telemetry import TelemetryStage
from llmspend.telemetry.instruments import Instruments
from llmspend.transports.httpx2 import AsyncPipelineTransport, PipelineTransport


class ReplayStage(Stage):
    name = "replay"

    def __init__(self) -> None:
        self.seen: dict[bytes, bytes] = {}

    def _replay(self, request: Request) -> Response | None:
        body = self.seen.get(request.content)
        if body is None:
            return None
        request.context.served_from = "cache"
        return Response(200, Headers([("content-type", "application/json")]), content=body)

    def handle(self, request: Request, call_next: Any) -> Response:
        replayed = self._replay(request)
        if replayed is not None:
            return replayed
        response = call_next(request)
        if response.is_success and not response.is_event_stream:
            self.seen[request.content] = response.read()
        return response

    async def ahandle(self, request: Request, call_next: Any) -> Response:
        replayed = self._replay(request)
        if replayed is not None:
            return replayed
        response = await call_next(request)
        if response.is_success and not response.is_event_stream:
            self.seen[request.content] = await response.aread()
        return response


def replaying_client(base_url: str, tracer_provider: Any, *, is_async: bool = False, meter_provider: Any = None) -> Any:
    """An openai client whose pipeline is telemetry, budget, then the replay stage."""
    prices = PriceTable.default()
    stages = [TelemetryStage(Instruments(tracer_provider, meter_provider), prices), BudgetStage(prices), ReplayStage()]
    pipeline = Pipeline(stages, (OpenAIAdapter(),), is_async=is_async)
    if is_async:
        http = httpx2.AsyncClient(transport=AsyncPipelineTransport(pipeline))
        return openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", http_client=http, max_retries=0)
    http_sync = httpx2.Client(transport=PipelineTransport(pipeline))
    return openai.OpenAI(base_url=base_url, api_key="sk-test", http_client=http_sync, max_retries=0)
