"""Fixtures: a fake Slack Web API on a free loopback port, the token passed as a secret."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_slack import BOT_TOKEN, READ_ONLY_TOKEN, FakeSlack  # noqa: E402


@pytest.fixture
def fake():
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def slack_secrets(monkeypatch):
    for key, value in {
        "SLACK_TOKEN": BOT_TOKEN,
        "SLACK_READ_ONLY_TOKEN": READ_ONLY_TOKEN,
        "SLACK_BAD_TOKEN": "xoxb-0000-not-a-valid-token",
    }.items():
        monkeypatch.setenv(f"SECRET_{key}", base64.b64encode(value.encode()).decode())


@pytest.fixture
def creds(fake):
    """Connection properties every task takes, the token coming from a secret."""
    return {"token": "{{ secret('SLACK_TOKEN') }}", "baseUrl": fake.api_url}
