"""``llmspend.report``: span files written by the real exporters and encoders, read back into
spend by model, feature, user and day, and savings by stage."""

from __future__ import annotations

import gzip
import io
import json
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.trace import SpanKind

import llmspend
from llmspend import ConfigError, Request, Response, Stage, StageSpec
from llmspend.economics import encs
from llmspend.report import OTHER, UNATTRIBUTED, build_report, iter_spans, stage_savings
from llmspend.stages import builtin_specs
from llmspend.testing import FakeLLMServer
from llmspend.testing.spans import write_synthetic_spans

from .conftest import API_KEY, Spans


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1e9)


LLM = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"}

# (attributes, start) of a small day of traffic; what it adds up to is spelled out in the test
TRAFFIC: list[tuple[dict[str, Any], str]] = [
    ({**LLM, "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "llmspend.feature": "answer", "llmspend.user": "ann",
      "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.cache_read.input_tokens": 600, "gen_ai.usage.output_tokens": 50,
      "llmspend.cost.status": "ok", "llmspend.cost.usd": 0.0010, "gen_ai.usage.cost": 0.0010},
     "2025-03-01T23:30:00+00:00"),
    ({**LLM, "gen_ai.request.model": "gpt-4o", "llmspend.feature": "answer", "llmspend.user": "bob",
      "gen_ai.usage.input_tokens": 200, "gen_ai.usage.output_tokens": 20, "llmspend.cost.status": "ok",
      "llmspend.cost.usd": 0.0040, "llmspend.cost.estimated": True}, "2025-03-02T00:30:00+00:00"),
    # served from the cache: nothing bought, what it would have cost is the saving
    ({**LLM, "llmspend.feature": "answer", "llmspend.user": "ann", "llmspend.served_from": "cache",
      "llmspend.cost.status": "ok", "llmspend.cost.usd": 0.0, "llmspend.cost.saved_usd": 0.0010},
     "2025-03-02T08:00:00+00:00"),
    # an unpriced model: cost unknown, never $0
    ({**LLM, "gen_ai.request.model": "my-finetune", "llmspend.feature": "classify", "llmspend.user": "bob",
      "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 3, "llmspend.cost.status": "unknown_model"},
     "2025-03-02T09:00:00+00:00"),
    # a 429 from the provider: failed, nothing billed
    ({**LLM, "llmspend.feature": "classify", "error.type": "429"}, "2025-03-02T09:01:00+00:00"),
    # a tracked scope's parent span with the totals of its calls: not an LLM call, not counted again
    ({"llmspend.feature": "answer", "llmspend.cost.usd": 0.0050, "llmspend.cost.saved_usd": 0.0010},
     "2025-03-02T09:02:00+00:00"),
]


def record(spans: Spans, traffic: list[tuple[dict[str, Any], str]] = TRAFFIC) -> list[ReadableSpan]:
    tracer = spans.provider.get_tracer("test")
    for attrs, start in traffic:
        kind = SpanKind.CLIENT if "gen_ai.operation.name" in attrs else SpanKind.INTERNAL
        span = tracer.start_span("span", kind=kind, attributes=attrs, start_time=_ns(start))
        span.end(end_time=_ns(start) + 10**8)
    return spans.finished


def check_traffic_report(report: llmspend.report.SpendReport) -> None:
    total = report.total
    assert total.calls == 5  # the parent span is not a call
    assert (total.priced_calls, total.unknown_cost_calls, total.failed_calls) == (3, 1, 1)
    assert total.cost_usd == pytest.approx(0.0050)
    assert total.saved_usd == pytest.approx(0.0010)
    assert total.estimated_calls == 1 and total.served_by_stage == 1
    assert (total.input_tokens, total.cached_input_tokens, total.output_tokens) == (1230, 600, 73)
    assert report.unknown_reasons == {"unknown_model": 1}
    by_model = dict(report.by("model"))
    assert list(by_model)[0] == "gpt-4o"  # most expensive first
    assert by_model["gpt-4o-mini-2024-07-18"].cost_usd == pytest.approx(0.0010)
    assert by_model["my-finetune"].unknown_cost_calls == 1 and by_model["my-finetune"].cost_usd == 0
    by_feature = dict(report.by("feature"))
    assert by_feature["answer"].cost_usd == pytest.approx(0.0050) and by_feature["answer"].calls == 3
    assert by_feature["classify"].calls == 2 and by_feature["classify"].priced_calls == 0
    assert dict(report.by("user"))["(none)"].failed_calls == 1
    days = report.by("day")
    assert [d for d, _ in days] == ["2025-03-01", "2025-03-02"]  # UTC days, in date order
    assert days[0][1].cost_usd == pytest.approx(0.0010) and days[1][1].calls == 4
    assert [(s, v.usd) for s, v in report.savings_by_stage()] == [("cache", pytest.approx(0.0010))]
    assert report.mean_cost_usd() == pytest.approx(0.0050 / 3)
    assert report.mean_cost_usd("answer") == pytest.approx(0.0050 / 3)
    assert report.mean_cost_usd("classify") is None


def test_console_json_lines(spans: Spans, tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(s.to_json(indent=None) + "\n" for s in record(spans)))
    report = build_report(path)
    check_traffic_report(report)
    assert report.read.formats == {"console-json": 5} and report.read.skipped == 1  # the parent has no gen_ai.*


def test_a_group_with_no_priced_call_reads_unknown_not_zero(spans: Spans, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmspend.cli import main

    path = tmp_path / "spans.jsonl"
    path.write_text("".join(s.to_json(indent=None) + "\n" for s in record(spans)))
    assert main(["report", str(path), "--by", "model"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("my-finetune")]
    assert "unknown" in row.split() and "$0.000000" not in row
    assert main(["report", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    models = data["by_model"]
    assert models["my-finetune"]["cost_usd"] is None and models["my-finetune"]["unknown_cost_calls"] == 1
    assert models["gpt-4o-mini-2024-07-18"]["cost_usd"] == pytest.approx(0.0010)


def test_a_report_with_no_priced_call_reads_unknown_not_zero(spans: Spans, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Before, the headline said "Cost $0.000000" when every call was of unknown cost.
    from llmspend.cli import main

    path = tmp_path / "spans.jsonl"
    path.write_text("".join(s.to_json(indent=None) + "\n" for s in record(spans, [TRAFFIC[3]])))
    assert main(["report", str(path), "--by", "model"]) == 0
    (headline,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Cost ")]
    assert headline.startswith("Cost unknown;") and "1 of unknown cost" in headline


def test_indented_console_exporter_output(spans: Spans, tmp_path: Path) -> None:
    """The SDK's ConsoleSpanExporter as it comes (each span indented over many lines)."""
    out = io.StringIO()
    ConsoleSpanExporter(out=out).export(record(spans))
    assert out.getvalue().count("\n") > 100
    path = tmp_path / "spans.txt"
    path.write_text(out.getvalue())
    check_traffic_report(build_report(path))


def test_otlp_json_from_the_real_encoder(spans: Spans, tmp_path: Path) -> None:
    """ExportTraceServiceRequest as OTLP JSON, one request per line, as the Collector's file
    exporter writes it (here encoded by the SDK's OTLP encoder)."""
    finished = record(spans)
    lines = [MessageToJson(encode_spans(finished[:3]), indent=None), MessageToJson(encode_spans(finished[3:]), indent=None)]
    assert '"intValue": "1000"' in lines[0]
    path = tmp_path / "otlp.json"
    path.write_text("\n".join(lines) + "\n")
    report = build_report(path)
    check_traffic_report(report)
    assert report.read.formats == {"otlp-json": 6} and report.other_spans == 1


def test_collector_line_with_hex_ids_enum_kinds_and_old_scope_name(tmp_path: Path) -> None:
    def attr(key: str, **value: Any) -> dict[str, Any]:
        return {"key": key, "value": value}

    span = {
        "traceId": "5b8aa5a2d2c872e8321cf37308d69df2", "spanId": "051581bf3cb55c13", "name": "chat gpt-4o", "kind": 3,
        "startTimeUnixNano": str(_ns("2025-06-30T23:59:59+00:00")), "endTimeUnixNano": str(_ns("2025-07-01T00:00:01+00:00")),
        "attributes": [
            attr("gen_ai.operation.name", stringValue="chat"), attr("gen_ai.request.model", stringValue="gpt-4o"),
            attr("gen_ai.usage.input_tokens", intValue="1200"), attr("gen_ai.usage.output_tokens", intValue="80"),
            attr("llmspend.cost.usd", doubleValue=0.0038), attr("llmspend.cost.estimated", boolValue=False),
            attr("gen_ai.response.finish_reasons", arrayValue={"values": [{"stringValue": "stop"}]}),
            attr("llmspend.trim.tokens_removed", intValue="300"), attr("llmspend.cost.saved_usd", doubleValue=0.00075),
        ],
        "status": {"code": 1},
    }
    line = {"resourceSpans": [{"resource": {"attributes": [attr("service.name", stringValue="app")]},
                               "instrumentationLibrarySpans": [{"spans": [span]}]}]}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "gen_ai.client.token.usage"}]}]}]}
    path = tmp_path / "collector.json"
    path.write_text(json.dumps(line) + "\n" + json.dumps(metrics) + "\n")
    report = build_report(path)
    assert report.total.calls == 1 and report.total.input_tokens == 1200
    assert report.total.cost_usd == pytest.approx(0.0038)
    assert [d for d, _ in report.by("day")] == ["2025-06-30"]
    assert dict(report.savings_by_stage())["trim"].usd == pytest.approx(0.00075)
    assert report.read.skipped == 1  # the metrics line


def test_day_is_the_utc_date_of_the_start(tmp_path: Path) -> None:
    lines = [
        {"name": "a", "context": {}, "start_time": "2025-03-01T23:30:00+02:00", "attributes": {**LLM, "llmspend.cost.usd": 1.0}},
        {"name": "b", "context": {}, "start_time": "2025-03-01T22:00:00-03:00", "attributes": {**LLM, "llmspend.cost.usd": 2.0}},
        {"name": "c", "context": {}, "start_time": "2025-03-01T00:00:00.000001Z", "attributes": {**LLM, "llmspend.cost.usd": 4.0}},
        {"name": "d", "context": {}, "attributes": {**LLM, "llmspend.cost.usd": 8.0}},
    ]
    path = tmp_path / "tz.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    days = {d: t.cost_usd for d, t in build_report(path).by("day")}
    assert days == {"2025-03-01": 5.0, "2025-03-02": 2.0, "(none)": 8.0}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({}, {}),
        ({"llmspend.cost.saved_usd": 0.3, "llmspend.served_from": "cache"}, {"cache": 0.3}),
        ({"llmspend.cost.saved_usd": 0.3, "llmspend.cache.hit": True}, {"cache": 0.3}),
        ({"llmspend.cost.saved_usd": 0.3, "llmspend.cache.hit": False, "llmspend.trim.tokens_removed": 9}, {"trim": 0.3}),
        ({"llmspend.cost.saved_usd": 0.3, "llmspend.cascade.accepted_step": 1}, {"cascade": 0.3}),
        ({"llmspend.cost.saved_usd": 0.3, "llmspend.batch.size": 4}, {"batch": 0.3}),
        ({"llmspend.cost.saved_usd": 0.3, "llmspend.served_from": "batch"}, {"batch": 0.3}),
        # a stage that failed open saved nothing: its error attribute is not a marker
        ({"llmspend.cost.saved_usd": 0.3, "llmspend.cache.error": "ConnectionError: x", "llmspend.trim.kept": 3},
         {"trim": 0.3}),
        # two stages marked and no split: counted once, not guessed
        ({"llmspend.cost.saved_usd": 0.3, "llmspend.trim.kept": 3, "llmspend.batch.size": 2}, {UNATTRIBUTED: 0.3}),
        ({"llmspend.cost.saved_usd": 0.3}, {UNATTRIBUTED: 0.3}),
        # per-stage figures are exact; a remainder goes through the markers
        ({"llmspend.cost.saved_usd": 0.5, "llmspend.cost.saved.trim_usd": 0.2, "llmspend.cost.saved.cache_usd": 0.3},
         {"trim": 0.2, "cache": 0.3}),
        ({"llmspend.cost.saved_usd": 0.5, "llmspend.cost.saved.trim_usd": 0.2, "llmspend.trim.kept": 1,
          "llmspend.cascade.step": 2}, {"trim": 0.2, "cascade": 0.3}),
        ({"llmspend.cost.saved.trim_usd": 0.2, "llmspend.cost.saved.my_plugin_usd": 0.1}, {"trim": 0.2, "my_plugin": 0.1}),
        ({"llmspend.cost.saved_usd": "n/a"}, {}),
    ],
)
def test_stage_mapping(attributes: dict[str, Any], expected: dict[str, float]) -> None:
    assert stage_savings(attributes) == pytest.approx(expected)


# -- real calls through wrap(), with stages that save ------------------------------------------
class TrimLikeStage(Stage):
    """Says it saved a fixed amount on every call, as a trimming stage would."""

    name = "trim"

    def handle(self, request: Request, call_next: Any) -> Response:
        request.context.add_saving("trim", 0.0001)
        request.context.set_attribute("llmspend.trim.tokens_removed", 42)
        return call_next(request)  # type: ignore[no-any-return]

    async def ahandle(self, request: Request, call_next: Any) -> Response:
        request.context.add_saving("trim", 0.0001)
        return await call_next(request)  # type: ignore[no-any-return]


class RepeatStage(Stage):
    """Answers a request it has seen before without a provider call, as a cache would."""

    name = "cache"

    def __init__(self) -> None:
        self.seen: dict[bytes, bytes] = {}

    def handle(self, request: Request, call_next: Any) -> Response:
        body = request.content or b""
        if body in self.seen:
            request.context.served_from = "cache"
            return Response(200, llmspend.Headers([("content-type", "application/json")]), content=self.seen[body])
        response = call_next(request)
        self.seen[body] = response.read()
        return response  # type: ignore[no-any-return]

    async def ahandle(self, request: Request, call_next: Any) -> Response:
        return await call_next(request)  # type: ignore[no-any-return]


@pytest.fixture
def saving_stages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    extra = (
        StageSpec(option="test_trim", order=300, build=lambda value, ctx: TrimLikeStage()),
        StageSpec(option="test_cache", order=400, build=lambda value, ctx: RepeatStage()),
    )
    # llmspend.wrap is also the name of the function: patch the module through sys.modules
    monkeypatch.setattr(sys.modules["llmspend.wrap"], "stage_specs", lambda: builtin_specs() + extra)
    yield


def test_savings_by_stage_from_real_calls(saving_stages: None, server: FakeLLMServer, spans: Spans, tmp_path: Path) -> None:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           test_trim=True, test_cache=True)
    for question in ("refund?", "shipping?", "refund?", "refund?"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    assert len(server.requests) == 2  # two answered by the repeat stage
    finished = spans.finished
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(s.to_json(indent=None) + "\n" for s in finished))
    report = build_report(path)
    attrs = [dict(s.attributes or {}) for s in finished]
    bought = [a["llmspend.cost.usd"] for a in attrs if "llmspend.served_from" not in a]
    assert report.total.calls == 4 and report.total.served_by_stage == 2
    assert report.total.cost_usd == pytest.approx(sum(bought))
    saved = dict(report.savings_by_stage())
    assert saved["trim"].usd == pytest.approx(4 * 0.0001) and saved["trim"].calls == 4
    # what the cache saved is what its answer cost when it was bought (the first "refund?")
    assert saved["cache"].usd == pytest.approx(2 * attrs[0]["llmspend.cost.usd"]) and saved["cache"].calls == 2
    assert UNATTRIBUTED not in saved
    assert all(a["llmspend.cost.saved.trim_usd"] == pytest.approx(0.0001) for a in attrs)


async def test_a_merged_batch_request_is_not_one_more_call(server: FakeLLMServer, spans: Spans, tmp_path: Path) -> None:
    """Four callers merged into one request: four calls, priced by their shares, and the merged
    request's own span (no cost of its own) is not counted as a fifth of unknown cost."""
    import asyncio

    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY), tracer_provider=spans.provider,
                           batch={"window_ms": 150, "max_size": 4})
    system = "You answer quiz questions briefly. " * 30
    await asyncio.gather(*(client.chat.completions.create(
        model="gpt-4o-mini", max_tokens=40, messages=[{"role": "system", "content": system}, {"role": "user", "content": q}])
        for q in ("Capital of France?", "Author of Hamlet?", "7 times 6?", "Largest planet?")))
    await client.close()
    assert len(server.requests) == 1
    path = tmp_path / "batched.jsonl"
    path.write_text("".join(s.to_json(indent=None) + "\n" for s in spans.finished))
    total = build_report(path).total
    assert (total.calls, total.priced_calls, total.unknown_cost_calls) == (4, 4, 0)
    callers = [dict(s.attributes or {}) for s in spans.finished if not s.name.startswith("batch ")]
    assert total.cost_usd == pytest.approx(sum(a["llmspend.cost.usd"] for a in callers))


async def test_a_merged_batch_request_whose_callers_all_gave_up_is_counted(server: FakeLLMServer, spans: Spans,
                                                                            tmp_path: Path) -> None:
    """Every caller timed out while the merged request was in flight: no caller's span carries
    a share, yet the provider answered and billed it. The merged request's span carries the
    cost then, and the report counts it as the one call it was."""
    import asyncio

    server.latency_s = 0.3
    client = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0),
                           tracer_provider=spans.provider, batch={"window_ms": 50, "max_size": 3})
    system = "You answer quiz questions briefly. " * 30

    async def impatient(question: str) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.chat.completions.create(
                model="gpt-4o-mini", max_tokens=40,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": question}]), 0.15)

    await asyncio.gather(*(impatient(q) for q in ("Capital of France?", "Author of Hamlet?", "7 times 6?")))
    for _ in range(50):  # the merged request is still in flight: let it answer
        if any(s.name.startswith("batch ") for s in spans.finished):
            break
        await asyncio.sleep(0.05)
    await client.close()
    (merged,) = [dict(s.attributes or {}) for s in spans.finished if s.name.startswith("batch ")]
    assert merged["llmspend.batch.unclaimed"] is True
    assert merged["llmspend.cost.usd"] == merged["llmspend.batch.cost_usd"] > 0
    path = tmp_path / "abandoned.jsonl"
    path.write_text("".join(s.to_json(indent=None) + "\n" for s in spans.finished))
    total = build_report(path).total
    assert total.cost_usd == pytest.approx(merged["llmspend.cost.usd"])  # paid, so counted


def test_configure_telemetry_console_output_with_metrics(server: FakeLLMServer, tmp_path: Path) -> None:
    """What ``configure_telemetry("console", out=f)`` writes: spans and metrics on one stream."""
    path = tmp_path / "console.jsonl"
    with path.open("w") as out:
        telemetry = llmspend.configure_telemetry("console", out=out, set_global=False)
        client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key=API_KEY),
                               tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        telemetry.shutdown()
    text = path.read_text()
    assert "resource_metrics" in text  # metrics share the stream
    report = build_report(path)
    assert report.total.calls == 3 and report.total.priced_calls == 3
    assert report.read.skipped >= 1 and report.read.malformed == 0
    assert dict(report.by("model"))[next(iter(dict(report.by("model"))))].cost_usd == pytest.approx(report.total.cost_usd)


def test_measured_cost_per_response_feeds_encs(spans: Spans, tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(s.to_json(indent=None) + "\n" for s in record(spans)))
    cost = build_report(path).mean_cost_usd("answer")
    assert cost is not None
    r = encs(action_rates={"use": 0.5, "ignore": 0.5}, seconds_saved={"use": 25, "ignore": 0}, hourly_rate_usd=10,
             cost_per_response_usd=cost)
    assert r.cost_per_response_usd == pytest.approx(0.0050 / 3)


# -- bad and big input -------------------------------------------------------------------------
def test_malformed_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    good = json.dumps({"name": "x", "context": {}, "start_time": "2025-01-01T00:00:00Z",
                       "attributes": {**LLM, "llmspend.cost.usd": 0.5}})
    path = tmp_path / "mixed.jsonl"
    path.write_text(good + "\n" + '{"name": "cut off", "attributes": {"gen_ai.operation.name": "ch\n' + "\n" + good + "\n")
    report = build_report(path)
    assert report.total.calls == 2 and report.read.malformed == 1
    assert report.read.malformed_at == [f"{path}:2"]


def test_not_a_span_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some text\nwith gen_ai.operation.name in it\n")
    with pytest.raises(ConfigError, match="no LLM call spans .* docs/report.md"):
        build_report(path)
    with pytest.raises(ConfigError, match="cannot read span file"):
        build_report(tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert build_report(empty).total.calls == 0


def test_gzip_and_several_files(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    truth_a = write_synthetic_spans(plain, 300, seed=1)
    packed = tmp_path / "b.jsonl.gz"
    buffer = io.StringIO()
    truth_b = write_synthetic_spans(buffer, 200, seed=2)
    with gzip.open(packed, "wt") as f:
        f.write(buffer.getvalue())
    report = build_report([plain, packed])
    assert report.total.calls == 500
    assert report.total.cost_usd == pytest.approx(truth_a.cost_usd + truth_b.cost_usd)
    assert report.total.unknown_cost_calls == truth_a.unknown + truth_b.unknown


def test_synthetic_traffic_adds_up(tmp_path: Path) -> None:
    path = tmp_path / "syn.jsonl"
    truth = write_synthetic_spans(path, 5_000, seed=7)
    report = build_report(path)
    assert report.total.calls == truth.calls == 5_000
    assert report.total.cost_usd == pytest.approx(truth.cost_usd)
    assert (report.total.unknown_cost_calls, report.total.failed_calls) == (truth.unknown, truth.failed)
    assert {k: v.usd for k, v in report.savings.items()} == pytest.approx(truth.saved)
    assert {d: t.cost_usd for d, t in report.by("day")} == pytest.approx(truth.by_day)
    assert {f: t.cost_usd for f, t in report.by("feature")} == pytest.approx(truth.by_feature)


def test_many_distinct_users_fold_into_other(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    truth = write_synthetic_spans(path, 2_000, seed=3, users=500)
    report = build_report(path, max_keys=50)
    groups = report.groups["user"]
    assert len(groups) == 51 and OTHER in groups
    assert sum(t.calls for t in groups.values()) == 2_000
    assert report.overflow["user"] == groups[OTHER].calls > 0
    assert report.total.cost_usd == pytest.approx(truth.cost_usd)
    top = report.by("user", top=5)
    assert len(top) == 6 and top[-1][0].startswith(OTHER)
    assert sum(t.cost_usd for _, t in top) == pytest.approx(truth.cost_usd)


def _peak_reading(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        report = build_report(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, report.total.calls


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Streaming: ten times the spans, not ten times the memory (throughput and the
    million-span figure are in benchmarks/bench_report.py)."""
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    write_synthetic_spans(small, 800, seed=5, users=100)
    large.write_bytes(small.read_bytes() * 10)
    peak_small, calls_small = _peak_reading(small)
    peak_large, calls_large = _peak_reading(large)
    assert (calls_small, calls_large) == (800, 8_000)
    assert peak_large < 1.5 * peak_small + 256 * 1024
    assert peak_large < large.stat().st_size / 20


def test_iter_spans_yields_records_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "syn.jsonl"
    write_synthetic_spans(path, 10, seed=1)
    stream = iter_spans(path)
    first = next(stream)
    assert first.attributes["gen_ai.operation.name"] == "chat" and first.day == "2025-03-01"
    assert sum(1 for _ in stream) == 9


def test_otlp_line_of_the_wrong_shape_is_malformed_not_fatal(tmp_path: Path) -> None:
    bad = {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x", "startTimeUnixNano": "soon",
                                                          "attributes": [{"key": "gen_ai.operation.name"}]}]}]}]}
    good = {"name": "y", "context": {}, "attributes": {**LLM, "llmspend.cost.usd": 0.25}}
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(bad) + "\n" + json.dumps(good) + "\n")
    report = build_report(path)
    assert report.read.malformed == 1 and report.total.calls == 1 and report.total.cost_usd == 0.25


def test_top_days_are_the_latest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A month of spans with `--top 20`: the table keeps the 20 latest days (yesterday's spend
    is what a reader looks for) and sums the earlier ones, not the other way round."""
    from llmspend.cli import main

    path = tmp_path / "month.jsonl"
    truth = write_synthetic_spans(path, 600, seed=5, days=30)
    days = sorted(truth.by_day)
    assert len(days) == 30
    rows = build_report(path).by("day", top=20)
    assert [key for key, _ in rows[1:]] == days[-20:]
    assert rows[0][0] == f"{OTHER} 10 earlier"
    assert rows[0][1].cost_usd == pytest.approx(sum(truth.by_day[d] for d in days[:10]))
    assert main(["report", str(path), "--by", "day", "--top", "20"]) == 0
    out = capsys.readouterr().out
    assert days[-1] in out and days[0] not in out and f"{OTHER} 10 earlier" in out
