"""Run by test_legacy_openai.py in a subprocess whose path has an openai 2.x (httpx-based) SDK.
Prints one JSON object with what it observed."""

from __future__ import annotations

import asyncio
import json

import httpx
import httpx2
import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmspend
from llmspend.testing import FakeLLMServer

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
MESSAGES = [{"role": "user", "content": "hello"}]
out: dict[str, object] = {"openai": openai.__version__}

with FakeLLMServer() as server:
    client = llmspend.wrap(openai.OpenAI(base_url=server.base_url, api_key="sk-legacy"), tracer_provider=provider)
    out["on_httpx2"] = isinstance(client._client, httpx2.Client)
    out["same_type"] = type(client) is openai.OpenAI
    r = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    out["chat_tokens"] = [r.usage.prompt_tokens, r.usage.completion_tokens]
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    out["stream_chunks_all_have_choices"] = all(c.choices for c in chunks)
    server.fail_next(429, headers={"retry-after-ms": "1"})
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    out["requests_after_retry"] = len(server.requests)

    async def run_async() -> int:
        aclient = llmspend.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-legacy"), tracer_provider=provider)
        response = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return response.usage.completion_tokens

    out["async_output_tokens"] = asyncio.run(run_async())
    out["spans"] = [
        {k: v for k, v in dict(s.attributes).items() if k in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                                                             "llmspend.cost.usd", "llmspend.cost.estimated", "llmspend.stream.complete")}
        | {"events": len(s.events)}
        for s in exporter.get_finished_spans()
    ]
    out["httpx_is_legacy"] = isinstance(client._client, httpx.Client)
print(json.dumps(out))
