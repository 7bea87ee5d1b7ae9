"""Fixtures: a fresh fake Prism Central per test, and a self-signed certificate for TLS tests."""

from __future__ import annotations

import ssl

import pytest
from fake_prism import FakePrism
from roost.testing import http


@pytest.fixture
def prism():
    fake = FakePrism(tick=0.05).start()
    yield fake
    fake.stop()


@pytest.fixture
def conn(prism):
    """Admin connection properties."""
    return dict(prism.conn)


def fast(task_cls, props: dict) -> dict:
    """A short poll interval for the tasks that poll."""
    if "poll_interval" in task_cls.model_fields and "pollInterval" not in props:
        return {**props, "pollInterval": "PT0.02S"}
    return props


@pytest.fixture
def run(conn):
    """run_task with the admin connection and a short poll interval."""
    from roost.testing import run_task

    def _run(task_cls, **props):
        return run_task(task_cls, **fast(task_cls, {**conn, **props}))

    return _run


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return http.closed_port()


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory) -> ssl.SSLContext:
    return http.self_signed_tls(tmp_path_factory.mktemp("tls"))
