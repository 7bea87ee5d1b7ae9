"""A real ``roost server`` process on a free loopback port, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from roost.engine.model import new_id
from roost.store.db import Store
from roost.testing.postgres import PgServer, postgres_server
from roost.testing.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e
__all__ = ["ServerProcess", "free_port", "flow_yaml", "deploy"]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``roost server local`` without auth, shared by the tests of a session."""
    root = tmp_path_factory.mktemp("roost-server")
    proc = ServerProcess("local", root / "data").wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """A real PostgreSQL server, one per test module."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_store(pg: PgServer) -> Iterator[Store]:
    """A store over a fresh database of ``pg``."""
    name = "t" + new_id().lower()[:12]
    pg.psql(f"CREATE DATABASE {name}")
    store = Store(f"postgresql+psycopg://{pg.user}@{pg.host}:{pg.port}/{name}")
    yield store
    store.close()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v1/main", timeout=30) as client:
        yield client


def flow_yaml(body: str, id: str, namespace: str = "e2e.team") -> str:
    import textwrap

    return f"id: {id}\nnamespace: {namespace}\n" + textwrap.dedent(body)


def deploy(api: httpx.Client, source: str) -> dict[str, Any]:
    r = api.post("/flows", content=source, headers={"content-type": "application/x-yaml"})
    if r.status_code == 422 and "already exists" in r.text:
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(source)
        r = api.put(
            f"/flows/{data['namespace']}/{data['id']}",
            content=source,
            headers={"content-type": "application/x-yaml"},
        )
    assert r.status_code == 200, r.text
    return r.json()
