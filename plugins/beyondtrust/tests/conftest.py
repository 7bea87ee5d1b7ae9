"""Fixtures: a fake Password Safe on a free loopback port, and backends built as the engine builds them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bt_support import build  # noqa: E402
from fake_password_safe import FakePasswordSafe  # noqa: E402


@pytest.fixture
def safe():
    fake = FakePasswordSafe().start()
    fake.add_account("db01", "svc_app", "Sup3r-Secret-Pw")
    fake.add_secret("team/app", "api-token", "tok-9f8e7d6c5b4a")
    yield fake
    fake.stop()


@pytest.fixture
def settings(safe):
    return {"url": safe.base, "apiKey": "${PS_API_KEY}", "runAs": "svc-roost"}


@pytest.fixture
def backend(settings):
    backends = build(settings)
    yield backends.backend_for("main", "company.team")[2]
    backends.close()
