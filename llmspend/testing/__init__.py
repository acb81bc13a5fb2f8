"""Test helpers that ship with llmspend: a deterministic OpenAI-compatible server, and a retry
stage that records its waits instead of sleeping."""

from .retry import RecordingRetryStage
from .server import FakeLLMServer, FakeRequest, FakeResponse

__all__ = ["FakeLLMServer", "FakeRequest", "FakeResponse", "RecordingRetryStage"]
