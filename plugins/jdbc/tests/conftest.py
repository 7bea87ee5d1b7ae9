"""Fixtures: a real PostgreSQL and a real MariaDB, each started once per test session."""

from __future__ import annotations

import base64
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mysql_server import MariaDbServer, mariadb_server  # noqa: E402
from roost.testing.postgres import PgServer, postgres_server  # noqa: E402

PG_SECURE_USER = "secure_user"
PG_SECURE_PASSWORD = "s3cr3t-Pg-pw-4711"
MY_SECURE_USER = "secure_user"
MY_SECURE_PASSWORD = "s3cr3t-My-pw-0815"


@pytest.fixture(scope="session")
def postgres() -> PgServer:
    # Password (SCRAM) authentication for one role, trust for the superuser.
    with postgres_server(extra_hba=[f"host all {PG_SECURE_USER} 127.0.0.1/32 scram-sha-256"]) as pg:
        pg.psql(f"CREATE ROLE {PG_SECURE_USER} LOGIN SUPERUSER PASSWORD '{PG_SECURE_PASSWORD}'")
        yield pg


@pytest.fixture
def pg_db(postgres: PgServer) -> str:
    """A fresh database per test; its name."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    postgres.psql(f"CREATE DATABASE {name}")
    return name


@pytest.fixture(scope="session")
def mariadb() -> MariaDbServer:
    with mariadb_server() as server:
        conn = server.connect()
        with conn.cursor() as cur:
            cur.execute(f"CREATE USER '{MY_SECURE_USER}'@'127.0.0.1' IDENTIFIED BY '{MY_SECURE_PASSWORD}'")
            cur.execute(f"GRANT ALL ON *.* TO '{MY_SECURE_USER}'@'127.0.0.1'")
        conn.close()
        yield server


@pytest.fixture
def my_db(mariadb: MariaDbServer) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return name


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch):
    """Set a Kestra-style secret (env SECRET_<KEY>, base64) for the test."""

    def put(key: str, value: str) -> None:
        monkeypatch.setenv(f"SECRET_{key}", base64.b64encode(value.encode()).decode())

    return put
