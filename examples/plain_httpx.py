"""The same pipeline on a plain httpx2 client (and httpx, sync or async) with no SDK at all.

    python examples/plain_httpx.py

With OPENAI_API_KEY set it calls the real API (OPENAI_BASE_URL, as the SDK reads it, or
api.openai.com) with that key; without one, llmspend's embedded server.
"""

from __future__ import annotations

import os

import httpx2
from _server import openai_settings

import llmspend

settings = openai_settings()
base_url = settings.get("base_url") or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
api_key = settings.get("api_key") or os.environ["OPENAI_API_KEY"]
headers = {"authorization": f"Bearer {api_key}"}
telemetry = llmspend.configure_telemetry("console", set_global=False)

with llmspend.wrap(httpx2.Client(base_url=base_url, headers=headers), tracer_provider=telemetry.tracer_provider) as http:
    body = http.post("/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).json()
    print(body["choices"][0]["message"]["content"])
telemetry.shutdown()  # flushes the span: one JSON line with llmspend.cost.usd
