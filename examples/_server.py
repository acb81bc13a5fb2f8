"""Where the examples send their calls: the real API when OPENAI_API_KEY is set, otherwise
llmspend's embedded OpenAI-compatible server (offline, no key)."""

from __future__ import annotations

import atexit
import os


def openai_settings() -> dict[str, str]:
    if os.environ.get("OPENAI_API_KEY"):
        return {}
    from llmspend.testing import FakeLLMServer

    server = FakeLLMServer().start()
    atexit.register(server.stop)
    return {"base_url": server.base_url, "api_key": "sk-example-not-a-real-key"}
