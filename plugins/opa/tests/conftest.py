"""Fixtures: a fake OPA server (real Rego engine, regopy) on a free loopback port."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_opa import FakeOpa  # noqa: E402
from opa_support import TOKEN  # noqa: E402


@pytest.fixture
def opa():
    """A fake OPA that requires the bearer token TOKEN."""
    server = FakeOpa(token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def opa_secrets(monkeypatch):
    for key, value in {"OPA_TOKEN": TOKEN, "OPA_BAD_TOKEN": "wrong-token-77"}.items():
        monkeypatch.setenv(f"SECRET_{key}", base64.b64encode(value.encode()).decode())


@pytest.fixture
def conn(opa):
    return {"url": opa.url, "token": "{{ secret('OPA_TOKEN') }}"}
