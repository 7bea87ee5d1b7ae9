"""Fixtures: a fake Password Safe on a free loopback port, and backends built as the engine builds them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_password_safe import FakePasswordSafe  # noqa: E402
from roost.plugins import Plugins  # noqa: E402
from roost.secret_backends import SecretBackends  # noqa: E402

ENV = {"PS_API_KEY": "A" * 128, "PS_CLIENT_SECRET": "client-s3cret-value"}


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


def build(settings, **scopes):
    """The tenant view of a `secret:` configuration whose default is the beyondtrust backend."""
    config = {"type": "beyondtrust", "beyondtrust": settings, **scopes}
    return SecretBackends.from_config(config, plugins=Plugins(), environ=ENV)


@pytest.fixture
def backend(settings):
    backends = build(settings)
    yield backends.backend_for("main", "company.team")[2]
    backends.close()
