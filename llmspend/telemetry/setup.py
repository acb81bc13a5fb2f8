"""One call to send llmspend's spans and metrics somewhere, for apps with no OpenTelemetry set up.

    import llmspend
    llmspend.configure_telemetry("console")                    # JSON lines on stdout
    llmspend.configure_telemetry("otlp", endpoint="http://localhost:4318")

Apps that already configure OpenTelemetry need none of this: llmspend reports through the
global providers (or the ``tracer_provider=``/``meter_provider=`` given to ``wrap()``).
What an argument leaves out, OpenTelemetry's own environment variables say, as for any other
SDK set-up (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_METRIC_EXPORT_INTERVAL``).
Needs the SDK: ``pip install 'llmspend[otlp]'``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import IO, Any

from ..exceptions import ConfigError

__all__ = ["configure", "Telemetry"]

_DEFAULT_SERVICE_NAME = "llmspend-app"


@dataclass
class Telemetry:
    """The providers ``configure`` installed; call :meth:`shutdown` to flush before exit."""

    tracer_provider: Any
    meter_provider: Any

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def configure(
    exporter: str = "console",
    *,
    endpoint: str | None = None,
    headers: dict[str, str] | None = None,
    out: IO[str] | None = None,
    service_name: str | None = None,
    metric_interval_s: float | None = None,
    set_global: bool = True,
) -> Telemetry:
    """Install an OpenTelemetry SDK that exports to ``exporter``: ``"console"`` (one JSON
    object per line on ``out``, default stdout) or ``"otlp"`` (OTLP over HTTP to ``endpoint``).

    Left out, ``endpoint`` is ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the per-signal
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``..._METRICS_ENDPOINT``), else
    ``http://localhost:4318``; ``service_name`` is ``OTEL_SERVICE_NAME`` (or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES``), else ``llmspend-app``; ``metric_interval_s`` is
    ``OTEL_METRIC_EXPORT_INTERVAL``, else 60 s."""
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as exc:  # pragma: no cover - depends on what is installed
        raise ConfigError("configure_telemetry needs the OpenTelemetry SDK: pip install 'llmspend[otlp]'") from exc

    resource = Resource.create({} if service_name is None else {"service.name": service_name})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):  # named nowhere
        resource = resource.merge(Resource({"service.name": _DEFAULT_SERVICE_NAME}))
    span_exporter: Any
    metric_exporter: Any
    if exporter == "console":
        stream = out or sys.stdout
        span_exporter = ConsoleSpanExporter(out=stream, formatter=lambda span: span.to_json(indent=None) + "\n")
        metric_exporter = ConsoleMetricExporter(out=stream, formatter=lambda m: m.to_json(indent=None) + "\n")
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:  # pragma: no cover
            raise ConfigError(
                "the otlp exporter needs opentelemetry-exporter-otlp-proto-http: pip install 'llmspend[otlp]'"
            ) from exc
        # no endpoint: the exporters read OTEL_EXPORTER_OTLP_*ENDPOINT, else localhost:4318
        base = endpoint.rstrip("/") if endpoint else None
        span_exporter = OTLPSpanExporter(endpoint=base and f"{base}/v1/traces", headers=headers)
        metric_exporter = OTLPMetricExporter(endpoint=base and f"{base}/v1/metrics", headers=headers)
    else:
        raise ConfigError(f"configure_telemetry: exporter must be 'console' or 'otlp', got {exporter!r}")

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    interval_ms = None if metric_interval_s is None else metric_interval_s * 1000  # None: OTEL_METRIC_EXPORT_INTERVAL
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval_ms)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return Telemetry(tracer_provider, meter_provider)
