"""Test helpers that ship with llmspend: a deterministic OpenAI-compatible server."""

from .server import FakeLLMServer, FakeRequest, FakeResponse

__all__ = ["FakeLLMServer", "FakeRequest", "FakeResponse"]
