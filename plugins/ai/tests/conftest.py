"""Fixtures: a fake OpenAI/Ollama server (roost.testing.llm), Langfuse's OTLP receiver, an HTTP API."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from roost.testing.llm import FakeLlm

sys.path.insert(0, str(Path(__file__).parent))

from fake_langfuse import FakeLangfuse  # noqa: E402

KEY = "sk-agent-test-0123456789abcdef"


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLlm]:
    monkeypatch.setenv("SECRET_OPENAI_API_KEY", base64.b64encode(KEY.encode()).decode())
    server = FakeLlm(api_key=KEY).start()
    yield server
    server.stop()


@pytest.fixture
def langfuse(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLangfuse]:
    monkeypatch.setenv("SECRET_LANGFUSE_SECRET_KEY", base64.b64encode(b"sk-lf-test").decode())
    server = FakeLangfuse().start()
    yield server
    server.stop()
