"""Spans and metrics: names, buckets, opt-in content, privacy, no-op without an SDK, and
telemetry faults that never reach the caller."""

from __future__ import annotations

import json
import logging

import openai
import pytest
from opentelemetry.sdk.trace import SpanProcessor

import llmspend
from llmspend.telemetry import attributes as A
from llmspend.testing import FakeLLMServer

from .conftest import API_KEY, Metrics, Spans

MESSAGES = [{"role": "system", "content": "be kind"}, {"role": "user", "content": "my secret question"}]


def test_metrics_follow_the_conventions(server: FakeLLMServer, spans: Spans, metrics: Metrics) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=spans.provider, meter_provider=metrics.provider)
    r = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    found = metrics.collect()
    usage = found["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    points = {p.attributes["gen_ai.token.type"]: p for p in usage.data.data_points}
    assert points["input"].sum == r.usage.prompt_tokens  # type: ignore[union-attr]
    assert points["output"].sum == r.usage.completion_tokens  # type: ignore[union-attr]
    assert tuple(points["input"].explicit_bounds) == A.TOKEN_BUCKETS
    assert A.TOKEN_BUCKETS[:3] == (1.0, 4.0, 16.0) and A.TOKEN_BUCKETS[-1] == 67108864.0
    assert points["input"].attributes["gen_ai.operation.name"] == "chat"
    assert points["input"].attributes["gen_ai.provider.name"] == "openai"
    assert points["input"].attributes["gen_ai.request.model"] == "gpt-4o"
    duration = found["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert tuple(point.explicit_bounds) == A.DURATION_BUCKETS
    assert A.DURATION_BUCKETS[0] == 0.01 and A.DURATION_BUCKETS[-1] == pytest.approx(81.92)
    assert point.count == 1
    cost = found["llmspend.cost"]
    assert cost.unit == "USD"
    assert cost.data.data_points[0].value == pytest.approx(spans.attrs()["llmspend.cost.usd"])


@pytest.mark.parametrize("is_async", [False, True])
async def test_streams_record_the_time_to_their_first_chunk(server: FakeLLMServer, spans: Spans, metrics: Metrics,
                                                            is_async: bool) -> None:
    """`gen_ai.client.operation.time_to_first_chunk`: for streaming calls only, the same value
    as the span's `gen_ai.response.time_to_first_chunk`, under the conventions' attributes."""
    sdk = openai.AsyncOpenAI if is_async else openai.OpenAI
    client = llmspend.wrap(sdk(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           meter_provider=metrics.provider)
    if is_async:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[misc]
        async for _ in await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):  # type: ignore[misc]
            pass
    else:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):  # type: ignore[union-attr]
            pass
    metric = metrics.collect()[A.METRIC_TIME_TO_FIRST_CHUNK]
    (point,) = metric.data.data_points  # the plain call recorded none
    assert metric.unit == "s" and tuple(point.explicit_bounds) == A.DURATION_BUCKETS
    assert point.count == 1 and point.sum == pytest.approx(spans.attrs(1)[A.RESPONSE_TIME_TO_FIRST_CHUNK])
    assert point.attributes["gen_ai.operation.name"] == "chat" and point.attributes["gen_ai.request.model"] == "gpt-4o"
    assert "error.type" not in point.attributes and "gen_ai.token.type" not in point.attributes


def test_cost_counter_adds_every_wrapped_client_on_one_provider(server: FakeLLMServer, spans: Spans,
                                                                metrics: Metrics) -> None:
    """The SDK keeps the first observable counter of a name and drops a second one's callback:
    clients wrapped one after another on one provider must all count."""
    clients = [llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                             meter_provider=metrics.provider) for _ in range(3)]
    for client, model in zip(clients, ("gpt-4o-mini", "gpt-4o", "gpt-4o")):
        client.chat.completions.create(model=model, messages=MESSAGES)
    spent: dict[str, float] = {}
    for span in spans.finished:
        a = span.attributes or {}
        spent[a[A.REQUEST_MODEL]] = spent.get(a[A.REQUEST_MODEL], 0.0) + a["llmspend.cost.usd"]
    points = metrics.collect()[A.METRIC_COST].data.data_points
    counted = {p.attributes[A.REQUEST_MODEL]: p.value for p in points}
    assert counted == pytest.approx(spent) and len(counted) == 2  # the third client's call included


def test_token_histogram_holds_reported_usage_only(server: FakeLLMServer, spans: Spans, metrics: Metrics) -> None:
    """The conventions: usage the provider did not report MUST NOT go on the token histogram
    (a local count stays on the span, marked estimated); embeddings have no output tokens."""
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           meter_provider=metrics.provider)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-fake-usage": "omit"})
    assert spans.attrs()["llmspend.cost.estimated"] is True and spans.attrs()["gen_ai.usage.input_tokens"] > 0
    found = metrics.collect()
    assert A.METRIC_TOKEN_USAGE not in found  # nothing reported, nothing recorded
    assert found[A.METRIC_OPERATION_DURATION].data.data_points[0].count == 1
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    points = metrics.collect()[A.METRIC_TOKEN_USAGE].data.data_points
    assert [p.attributes[A.TOKEN_TYPE] for p in points] == ["input"]


def test_long_captured_content_stays_valid_json(server: FakeLLMServer, spans: Spans) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           capture_content=True)
    long = "word " * 20_000
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "system", "content": "Be brief."},
                                                               {"role": "user", "content": long}])
    text = spans.attrs()["gen_ai.input.messages"]
    assert len(text) <= 64_000
    messages = json.loads(text)  # cut inside the strings, never the JSON
    assert messages[0] == {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}
    (part,) = messages[1]["parts"]
    assert part["type"] == "text" and part["content"].startswith("word word") and part["content"].endswith("more characters]")


def test_errors_carry_error_type_on_metrics(server: FakeLLMServer, spans: Spans, metrics: Metrics) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=spans.provider, meter_provider=metrics.provider, retry=False)
    server.fail_next(404)
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI.with_options(client, max_retries=0).chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    (point,) = metrics.collect()["gen_ai.client.operation.duration"].data.data_points
    assert point.attributes["error.type"] == "404"
    assert spans.one().status.status_code.name == "ERROR"


def test_content_only_when_opted_in(server: FakeLLMServer, spans: Spans) -> None:
    plain = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    plain.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert A.INPUT_MESSAGES not in spans.attrs() and A.OUTPUT_MESSAGES not in spans.attrs()
    assert "my secret question" not in json.dumps(spans.attrs())
    opted = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider, capture_content=True)
    r = opted.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    a = spans.attrs()
    assert json.loads(a[A.INPUT_MESSAGES]) == [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
                                               for m in MESSAGES]
    assert json.loads(a[A.OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": r.choices[0].message.content}]


def test_api_key_never_in_spans_metrics_or_logs(server: FakeLLMServer, spans: Spans, metrics: Metrics, caplog: pytest.LogCaptureFixture) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=spans.provider, meter_provider=metrics.provider, capture_content=True)
    with caplog.at_level(logging.DEBUG):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        list(client.chat.completions.create(model="unknown-model-x", messages=MESSAGES, stream=True))
        server.fail_next(401)
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert {k.lower(): v for k, v in server.requests[0].headers.items()}["authorization"] == f"Bearer {API_KEY}"  # sent ...
    dumped = "".join(s.to_json() for s in spans.finished)
    dumped += str(metrics.reader.get_metrics_data().to_json())  # type: ignore[union-attr]
    dumped += caplog.text
    assert API_KEY not in dumped and "SECRET" not in dumped  # ... and recorded nowhere


def test_noop_without_an_sdk(server: FakeLLMServer) -> None:
    # No tracer_provider and no global SDK: the API's no-op tracer; the call works as usual.
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY))
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices


def test_exporter_fault_never_fails_the_call(server: FakeLLMServer, spans: Spans, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(SpanProcessor):
        def on_end(self, span: object) -> None:
            raise RuntimeError("exporter down")

    spans.provider.add_span_processor(Broken())
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    with caplog.at_level(logging.ERROR, logger="llmspend"):
        r = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert r.choices
        assert list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "telemetry failed" in caplog.text


def test_a_span_processor_failing_on_start_never_fails_the_call(
    server: FakeLLMServer, spans: Spans, caplog: pytest.LogCaptureFixture, metrics: Metrics
) -> None:
    class Broken(SpanProcessor):
        def on_start(self, span: object, parent_context: object = None) -> None:
            raise RuntimeError("processor down")

    spans.provider.add_span_processor(Broken())
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=spans.provider, meter_provider=metrics.provider)
    with caplog.at_level(logging.WARNING, logger="llmspend"):
        with llmspend.track(feature="f") as scope:
            assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
            assert list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "failed to start a span" in caplog.text and "processor down" in caplog.text
    assert len(server.requests) == 2
    # no span, but the cost is still counted where it does not need one
    assert scope.total_usd > 0 and scope.complete
    (point,) = metrics.collect()[A.METRIC_COST].data.data_points
    assert point.value == pytest.approx(scope.total_usd)


def test_spans_nest_under_the_callers_span(server: FakeLLMServer, spans: Spans) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider)
    tracer = spans.provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as parent:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    llm = [s for s in spans.finished if s.name == "chat gpt-4o"][0]
    assert llm.parent is not None and llm.parent.span_id == parent.get_span_context().span_id


def test_configure_telemetry_console(server: FakeLLMServer) -> None:
    import io

    out = io.StringIO()
    telemetry = llmspend.configure_telemetry("console", out=out, set_global=False)
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    telemetry.shutdown()
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    span = [line for line in lines if line.get("name") == "chat gpt-4o"][0]
    assert span["attributes"]["llmspend.cost.usd"] > 0
    with pytest.raises(llmspend.ConfigError, match="console' or 'otlp"):
        llmspend.configure_telemetry("zipkin", set_global=False)


def test_configure_telemetry_otlp_posts_to_the_endpoint(server: FakeLLMServer) -> None:
    from llmspend.testing import FakeResponse

    server.route("POST", "/v1/traces", lambda req: FakeResponse(200, b"", {"content-type": "application/x-protobuf"}))
    server.route("POST", "/v1/metrics", lambda req: FakeResponse(200, b"", {"content-type": "application/x-protobuf"}))
    telemetry = llmspend.configure_telemetry("otlp", endpoint=server.url, set_global=False)
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    telemetry.shutdown()
    paths = [r.path for r in server.requests]
    assert "/v1/traces" in paths and "/v1/metrics" in paths
    traces = [r for r in server.requests if r.path == "/v1/traces"][0]
    assert b"llmspend.cost.usd" in traces.body  # protobuf carries attribute keys as plain bytes


def test_streamed_content_captured_when_opted_in(server: FakeLLMServer, spans: Spans) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider, capture_content=True)
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert json.loads(spans.attrs()[A.OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": text}]


_GLOBAL_PROVIDER_SCRIPT = """
import json, sys
import openai
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import llmspend

base_url = sys.argv[1]
early = llmspend.wrap(openai.OpenAI(base_url=base_url, api_key="sk-test"))   # at import, before the SDK
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
late = llmspend.wrap(openai.OpenAI(base_url=base_url, api_key="sk-test"))    # after the app configured it
for client, model in ((early, "gpt-4o"), (late, "gpt-4o-mini")):
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
counted = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            if m.name == "llmspend.cost":
                counted.update({p.attributes["gen_ai.request.model"]: p.value for p in m.data.data_points})
print(json.dumps(counted))
"""


def test_cost_counter_counts_clients_wrapped_before_and_after_the_global_sdk(server: FakeLLMServer) -> None:
    """A client wrapped at import (the global meter provider still the API's proxy) and one
    wrapped after the app set its SDK both count in `llmspend.cost`: the proxy hands the first
    one's counter to the SDK, which dropped the second one's as a duplicate."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _GLOBAL_PROVIDER_SCRIPT, server.base_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    counted = json.loads(done.stdout)
    assert set(counted) == {"gpt-4o", "gpt-4o-mini"} and all(usd > 0 for usd in counted.values())


def test_configure_telemetry_otlp_follows_the_otel_environment(server: FakeLLMServer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With no endpoint or service name given, the OpenTelemetry variables a deployment sets
    decide them (as for any SDK set-up), not localhost and a fixed name."""
    from llmspend.testing import FakeResponse

    server.route("POST", "/v1/traces", lambda req: FakeResponse(200, b"", {"content-type": "application/x-protobuf"}))
    server.route("POST", "/v1/metrics", lambda req: FakeResponse(200, b"", {"content-type": "application/x-protobuf"}))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout-api")
    telemetry = llmspend.configure_telemetry("otlp", set_global=False)
    assert telemetry.tracer_provider.resource.attributes["service.name"] == "checkout-api"
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                           tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    telemetry.shutdown()
    traces = [r for r in server.requests if r.path == "/v1/traces"]
    assert traces and b"checkout-api" in traces[0].body and b"llmspend.cost.usd" in traces[0].body
    assert any(r.path == "/v1/metrics" for r in server.requests)
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    named = llmspend.configure_telemetry("console", set_global=False)
    assert named.tracer_provider.resource.attributes["service.name"] == "llmspend-app"  # named nowhere
    named.shutdown()
