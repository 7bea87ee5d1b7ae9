"""Fixtures: a fake Cloudflare API on a free loopback port, credentials passed as secrets."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cloudflare_support import API_KEY, READ_ONLY_TOKEN, TOKEN  # noqa: E402
from fake_cloudflare import FakeCloudflare  # noqa: E402


@pytest.fixture
def fake():
    server = FakeCloudflare().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def cloudflare_secrets(monkeypatch):
    for key, value in {
        "CLOUDFLARE_API_TOKEN": TOKEN,
        "CLOUDFLARE_READ_ONLY_TOKEN": READ_ONLY_TOKEN,
        "CLOUDFLARE_API_KEY": API_KEY,
        "CLOUDFLARE_BAD_TOKEN": "not-a-valid-token-99",
    }.items():
        monkeypatch.setenv(f"SECRET_{key}", base64.b64encode(value.encode()).decode())


@pytest.fixture
def creds(fake):
    """Connection properties every task takes, the token coming from a secret."""
    return {"apiToken": "{{ secret('CLOUDFLARE_API_TOKEN') }}", "baseUrl": fake.base_url}
