"""The telemetry stage: one CLIENT span per call, with its exact cost.

It sits near the caller's end of the chain (order 200), so everything below it (cache hits,
retries, trimming, batching) is recorded on the span of the call it served. Requests that the
provider adapter does not recognise pass through untouched, with no span.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from .._http import Request, Response
from ..exceptions import ConfigError, ResponseParseError
from ..pipeline import AsyncCallNext, BuildContext, CallNext, Stage, StageSpec
from ..pricing.table import PriceTable
from ..providers.base import Call, Outcome, ProviderAdapter, StreamReader
from ..telemetry.instruments import Instruments
from ..telemetry.recorder import CallRecorder, warn_once
from ..telemetry.stream import AsyncObservedStream, ObservedStream

__all__ = ["TelemetryStage"]

logger = logging.getLogger("llmspend")


class TelemetryStage(Stage):
    name = "telemetry"

    def __init__(self, instruments: Instruments, prices: PriceTable, *, capture_content: bool = False) -> None:
        self.instruments = instruments
        self.prices = prices
        self.capture_content = capture_content

    def _begin(self, request: Request) -> tuple[Request, CallRecorder] | None:
        call, adapter = request.call, request.adapter
        if call is None or adapter is None:
            return None
        recorder = CallRecorder(
            self.instruments, self.prices, adapter, request, call, capture_content=self.capture_content
        )
        return adapter.prepare_request(request, call), recorder

    def _reader(self, adapter: ProviderAdapter, call: Call, request: Request) -> StreamReader:
        reader = adapter.stream_reader(call, request)
        if self.capture_content:
            reader.capture_text = True  # type: ignore[attr-defined]
        return reader

    def handle(self, request: Request, call_next: CallNext) -> Response:
        begun = self._begin(request)
        if begun is None:
            return call_next(request)
        request, recorder = begun
        try:
            token = recorder.activate()
            try:
                response = call_next(request)
            finally:
                recorder.deactivate(token)
        except BaseException as exc:
            recorder.fail(exc)
            raise
        if not response.is_success:
            recorder.finish_status(response.status_code)
            return response
        call, adapter = recorder.call, recorder.adapter
        if call.stream and response.is_event_stream:
            return response.with_stream(ObservedStream(response, self._reader(adapter, call, request), recorder))
        try:
            body = response.read()
        except BaseException as exc:
            recorder.fail(exc, answered=True)
            raise
        recorder.finish(_parse(adapter, call, body, self.capture_content))
        return response

    async def ahandle(self, request: Request, call_next: AsyncCallNext) -> Response:
        begun = self._begin(request)
        if begun is None:
            return await call_next(request)
        request, recorder = begun
        try:
            token = recorder.activate()
            try:
                response = await call_next(request)
            finally:
                recorder.deactivate(token)
        except BaseException as exc:
            recorder.fail(exc)
            raise
        if not response.is_success:
            recorder.finish_status(response.status_code)
            return response
        call, adapter = recorder.call, recorder.adapter
        if call.stream and response.is_event_stream:
            return response.with_stream(AsyncObservedStream(response, self._reader(adapter, call, request), recorder))
        try:
            body = await response.aread()
        except BaseException as exc:
            recorder.fail(exc, answered=True)
            raise
        recorder.finish(_parse(adapter, call, body, self.capture_content))
        return response


def _parse(adapter: ProviderAdapter, call: Call, body: bytes, capture_content: bool = False) -> Outcome | None:
    """The outcome, or None (logged once per endpoint) when the body is not what we expect.
    The caller still gets the body unchanged. With ``capture_content``, the outcome carries
    the answer's output messages too."""
    try:
        outcome = adapter.parse_response(call, body)
    except Exception as exc:  # any shape an adapter did not foresee: never the caller's error
        warn_once(
            ("unparsed", call.provider, call.endpoint),
            "llmspend: could not read a %s %s response (%s); it was passed on unchanged and its cost is unknown",
            call.provider,
            call.endpoint,
            # our own message says what was wrong; another error's text may quote the response
            exc if isinstance(exc, ResponseParseError) else type(exc).__name__,
        )
        return None
    if capture_content:
        try:
            messages = adapter.output_messages(call, body)
        except Exception as exc:  # the span goes without the answer's parts; the cost stays
            warn_once(("output_content", call.provider, type(exc).__name__),
                      "llmspend: could not read a %s answer's content for its span (%s)", call.provider, type(exc).__name__)
            messages = None
        if messages is not None:
            outcome = replace(outcome, output_messages=tuple(messages))
    return outcome


def _build(value: Any, context: BuildContext) -> Stage:
    if value is not True:
        raise ConfigError(f"telemetry= takes True or False, got {value!r}")
    capture = context.options.get("capture_content", False)
    if not isinstance(capture, bool):
        raise ConfigError(f"capture_content= takes True or False, got {capture!r}")
    instruments = Instruments(context.tracer_provider, context.meter_provider)
    return TelemetryStage(instruments, context.prices, capture_content=capture)


SPEC = StageSpec(option="telemetry", order=200, build=_build, default=True, doc="one span per call with its cost")
