"""Fixtures: a fresh fake MAAS per test, and a self-signed certificate for TLS tests."""

from __future__ import annotations

import ssl

import pytest
from fake_maas import FakeMaas
from roost.testing import http


@pytest.fixture
def maas():
    fake = FakeMaas(tick=0.05).start()
    yield fake
    fake.stop()


@pytest.fixture
def conn(maas):
    """Connection properties of the admin user, plus a fast poll interval."""
    return {"url": maas.url, "apiKey": maas.admin_key}


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return http.closed_port()


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory) -> ssl.SSLContext:
    return http.self_signed_tls(tmp_path_factory.mktemp("tls"))
