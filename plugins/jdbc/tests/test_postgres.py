from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest
from conftest import PG_SECURE_PASSWORD, PG_SECURE_USER
from roost.testing import Runtime, TaskRunContext, run_task
from roost.testing.postgres import PgServer, free_port
from roost_jdbc.tasks import PostgresQueries, PostgresQuery

TABLE = "io.kestra.plugin.ee.assets.Table"


def query(pg: PgServer, db: str, sql: str) -> list[tuple]:
    with psycopg.connect(pg.dsn(db)) as conn:
        return conn.execute(sql).fetchall()


def test_fetch_types_and_conversion(postgres: PgServer, pg_db: str):
    url = postgres.jdbc_url(pg_db)
    run_task(
        PostgresQueries,
        url=url,
        username="postgres",
        sql="""
        CREATE TABLE items (id serial PRIMARY KEY, name text, price numeric(10, 2), at timestamptz,
                            day date, data jsonb, raw bytea, span interval, tags text[]);
        INSERT INTO items (name, price, at, day, data, raw, span, tags) VALUES
          ('a', 1.10, '2024-01-01 12:00:00+00', '2024-01-01', '{"k": 1}', '\\x00ff', '1 day 2 hours', '{x,y}'),
          ('b', 2.50, '2024-01-02 00:00:00+00', '2024-01-02', NULL, NULL, NULL, NULL),
          ('c', 99999999.99, NULL, NULL, NULL, NULL, NULL, NULL);
    """,
    )
    select = "SELECT name, price, at, day, data, raw, span, tags FROM items ORDER BY id"
    one = run_task(
        PostgresQuery,
        url=url,
        username="postgres",
        sql=select,
        fetchType="FETCH_ONE",
        timeZoneId="Europe/Paris",
    )
    assert one.outputs == {
        "row": {
            "name": "a",
            "price": 1.1,
            "at": "2024-01-01T13:00:00+01:00",
            "day": "2024-01-01",
            "data": {"k": 1},
            "raw": "AP8=",
            "span": "P1DT2H",
            "tags": ["x", "y"],
        },
        "size": 1,
    }
    many = run_task(PostgresQuery, url=url, username="postgres", sql=select, fetchType="FETCH")
    assert [r["name"] for r in many.outputs["rows"]] == ["a", "b", "c"] and many.outputs["size"] == 3
    assert many.outputs["rows"][2]["price"] == 99999999.99
    stored = run_task(
        PostgresQuery,
        url=url,
        username="postgres",
        fetchType="STORE",
        fetchSize=2,
        sql="SELECT g AS n FROM generate_series(1, 5) g",
    )
    lines = stored.context.read_file(stored.outputs["uri"]).decode().splitlines()
    assert [json.loads(x)["n"] for x in lines] == [1, 2, 3, 4, 5] and stored.outputs["size"] == 5
    none = run_task(PostgresQuery, url=url, username="postgres", sql=select)
    assert none.outputs == {}
    empty = run_task(
        PostgresQuery, url=url, username="postgres", sql="SELECT 1 WHERE false", fetchType="FETCH_ONE"
    )
    assert empty.outputs == {"row": None, "size": 0}


def test_parameters_casts_and_percent(postgres: PgServer, pg_db: str):
    result = run_task(
        PostgresQuery,
        url=postgres.jdbc_url(pg_db) + "?user=postgres",
        fetchType="FETCH_ONE",
        sql="SELECT :n::int + 1 AS next, :name AS name, 'x%y' LIKE '%\\%%' AS has_pct, ':n' AS literal, "
        "cardinality(:ids::int[]) AS n_ids",
        parameters={"n": "41", "name": "O'Brien; DROP TABLE x", "ids": [1, 2, 3]},
    )
    assert result.outputs["row"] == {
        "next": 42,
        "name": "O'Brien; DROP TABLE x",
        "has_pct": True,
        "literal": ":n",
        "n_ids": 3,
    }


def test_queries_rollback_leaves_table_unchanged(postgres: PgServer, pg_db: str):
    url = postgres.jdbc_url(pg_db)
    run_task(
        PostgresQueries,
        url=url,
        username="postgres",
        sql="CREATE TABLE acct (id int PRIMARY KEY, balance int); INSERT INTO acct VALUES (1, 100), (2, 50)",
    )
    result = run_task(
        PostgresQueries,
        url=url,
        username="postgres",
        raise_on_failure=False,
        sql="UPDATE acct SET balance = balance - 30 WHERE id = 1;"
        "CREATE TABLE side (x int);"
        "INSERT INTO acct VALUES (1, 0);"  # duplicate key: fails
        "UPDATE acct SET balance = balance + 30 WHERE id = 2;",
    )
    assert result.state == "FAILED"
    assert "statement 3 of 4 failed; the transaction was rolled back" in result.error
    assert 'duplicate key value violates unique constraint "acct_pkey"' in result.error
    assert "SQLSTATE 23505" in result.error
    assert query(postgres, pg_db, "SELECT id, balance FROM acct ORDER BY id") == [(1, 100), (2, 50)]
    assert query(postgres, pg_db, "SELECT to_regclass('side') IS NULL") == [(True,)]


def test_queries_outputs_and_after_sql(postgres: PgServer, pg_db: str):
    url = postgres.jdbc_url(pg_db)
    result = run_task(
        PostgresQueries,
        url=url,
        username="postgres",
        fetchType="FETCH",
        sql="CREATE TABLE q (id int, done bool DEFAULT false); INSERT INTO q (id) VALUES (1), (2); "
        "SELECT id FROM q ORDER BY id; SELECT count(*) AS n FROM q",
        afterSql="UPDATE q SET done = true",
    )
    assert result.outputs["outputs"] == [
        {"rows": [{"id": 1}, {"id": 2}], "size": 2},
        {"rows": [{"n": 2}], "size": 1},
    ]
    assert query(postgres, pg_db, "SELECT bool_and(done) FROM q") == [(True,)]


def test_sql_error_carries_postgres_message(postgres: PgServer, pg_db: str):
    result = run_task(
        PostgresQuery,
        url=postgres.jdbc_url(pg_db),
        username="postgres",
        sql="SELECT * FROM missing_table",
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert result.error.startswith('PostgreSQL error: relation "missing_table" does not exist')
    assert "(SQLSTATE 42P01)" in result.error


def test_vacuum_and_create_database_run_in_autocommit(postgres: PgServer, pg_db: str):
    url = postgres.jdbc_url(pg_db)
    assert run_task(PostgresQuery, url=url, username="postgres", sql="VACUUM").state == "SUCCESS"
    made = run_task(PostgresQuery, url=url, username="postgres", sql=f"CREATE DATABASE {pg_db}_copy")
    assert made.state == "SUCCESS"
    assert query(
        postgres, "postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{pg_db}_copy'"
    ) == [(1,)]
    in_tx = run_task(
        PostgresQueries, url=url, username="postgres", sql="SELECT 1; VACUUM", raise_on_failure=False
    )
    assert in_tx.state == "FAILED" and "VACUUM cannot run inside a transaction block" in in_tx.error


def test_credentials_from_secrets_never_logged(postgres: PgServer, pg_db: str, secret_env):
    secret_env("PG_USER", PG_SECURE_USER)
    secret_env("PG_PASSWORD", PG_SECURE_PASSWORD)
    ok = run_task(
        PostgresQuery,
        url=postgres.jdbc_url(pg_db),
        username="{{ secret('PG_USER') }}",
        password="{{ secret('PG_PASSWORD') }}",
        sql="SELECT current_user AS u, :p AS echoed",
        fetchType="FETCH_ONE",
        parameters={"p": "{{ secret('PG_PASSWORD') }}"},
    )
    assert ok.outputs["row"]["u"] == PG_SECURE_USER
    assert all(PG_SECURE_PASSWORD not in m for m in ok.messages)
    assert any("Starting query" in m for m in ok.messages)

    secret_env("PG_PASSWORD", "wrong-" + PG_SECURE_PASSWORD)
    bad = run_task(
        PostgresQuery,
        url=postgres.jdbc_url(pg_db),
        username=PG_SECURE_USER,
        password="{{ secret('PG_PASSWORD') }}",
        sql="SELECT 1",
        raise_on_failure=False,
    )
    assert bad.state == "FAILED"
    assert f'password authentication failed for user "{PG_SECURE_USER}"' in bad.error
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{postgres.port}" in bad.error
    assert PG_SECURE_PASSWORD not in bad.error and all(PG_SECURE_PASSWORD not in m for m in bad.messages)


def test_password_in_url_is_used_and_not_leaked(postgres: PgServer, pg_db: str):
    url = f"{postgres.jdbc_url(pg_db)}?user={PG_SECURE_USER}&password={PG_SECURE_PASSWORD}&ApplicationName=roost"
    ok = run_task(
        PostgresQuery, url=url, sql="SELECT current_setting('application_name') AS app", fetchType="FETCH_ONE"
    )
    assert ok.outputs["row"] == {"app": "roost"}
    assert all(PG_SECURE_PASSWORD not in m for m in ok.messages)


def test_unreachable_server_and_missing_url():
    port = free_port()
    result = run_task(
        PostgresQuery,
        url=f"jdbc:postgresql://127.0.0.1:{port}/db?connectTimeout=3",
        sql="SELECT 1",
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert result.error.startswith(f"cannot connect to PostgreSQL at 127.0.0.1:{port}:")
    assert "Connection refused" in result.error
    missing = run_task(PostgresQuery, sql="SELECT 1", raise_on_failure=False)
    assert missing.state == "FAILED" and "property 'url' is required" in missing.error


def test_seed_flow_audit_asset_deletions(postgres: PgServer, pg_db: str):
    """The acceptance flow's task as written; url/username come from plugin defaults there."""
    url = postgres.jdbc_url(pg_db)
    run_task(
        PostgresQuery,
        url=url,
        username="postgres",
        sql="CREATE TABLE audit_log (asset_id text, asset_type text, namespace text, event text, event_time timestamptz)",
    )
    trigger = {
        "asset": {
            "id": "customers_by_country",
            "type": TABLE,
            "namespace": "company.data",
            "event": "DELETED",
            "eventTime": "2026-01-15T10:00:00Z",
        }
    }
    result = run_task(
        PostgresQuery,
        id="log_deletion",
        url=url,
        username="postgres",
        namespace="company.security",
        variables={"trigger": trigger},
        sql="INSERT INTO audit_log (asset_id, asset_type, namespace, event, event_time)\n"
        "VALUES (\n  '{{ trigger.asset.id }}',\n  '{{ trigger.asset.type }}',\n  '{{ trigger.asset.namespace }}',\n"
        "  '{{ trigger.asset.event }}',\n  '{{ trigger.asset.eventTime }}'\n)\n",
    )
    assert result.state == "SUCCESS" and result.outputs == {}
    assert query(postgres, pg_db, "SELECT asset_id, event, event_time::text FROM audit_log") == [
        ("customers_by_country", "DELETED", "2026-01-15 10:00:00+00")
    ]


def test_auto_assets(postgres: PgServer, pg_db: str):
    url = postgres.jdbc_url(pg_db)
    result = run_task(
        PostgresQueries,
        url=url,
        username="postgres",
        assets={"enableAuto": True},
        sql="""
        CREATE SCHEMA raw;
        CREATE TABLE raw.orders (id int, customer_id int, amount numeric);
        CREATE TABLE Customers (id int, country text);
        INSERT INTO raw.orders VALUES (1, 1, 10), (2, 2, 5);
        INSERT INTO customers VALUES (1, 'FR'), (2, 'DE');
        CREATE TABLE sales_by_country AS
          SELECT c.country, sum(o.amount) AS total FROM raw.orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1;
        WITH big AS (SELECT * FROM raw.orders WHERE amount > 6)
          INSERT INTO sales_by_country SELECT 'big', sum(amount) FROM big;
        CREATE VIEW top_countries AS SELECT country FROM sales_by_country ORDER BY total DESC LIMIT 1;
        MERGE INTO customers c USING raw.orders o ON c.id = o.customer_id
          WHEN NOT MATCHED THEN INSERT VALUES (o.customer_id, 'unknown');
        DELETE FROM sales_by_country WHERE country IN (SELECT country FROM customers WHERE country = 'zz');
        """,
    )
    assert result.state == "SUCCESS"
    summary = [([a.id for a in b.inputs], [a.id for a in b.outputs]) for b in result.assets]
    db = pg_db
    assert summary == [
        ([], [f"{db}.raw.orders"]),
        ([], [f"{db}.customers"]),
        ([], [f"{db}.raw.orders"]),
        ([], [f"{db}.customers"]),
        ([f"{db}.raw.orders", f"{db}.customers"], [f"{db}.sales_by_country"]),
        ([f"{db}.raw.orders"], [f"{db}.sales_by_country"]),
        ([f"{db}.sales_by_country"], [f"{db}.top_countries"]),
        ([f"{db}.raw.orders"], [f"{db}.customers"]),
        ([f"{db}.customers"], [f"{db}.sales_by_country"]),
    ]
    orders = result.assets[0].outputs[0]
    assert orders.type == TABLE
    assert orders.metadata == {
        "system": "postgresql",
        "database": db,
        "schema": "raw",
        "name": "orders",
        "host": "127.0.0.1",
        "port": postgres.port,
    }
    assert result.assets[1].outputs[0].metadata["schema"] == "public"


def test_unparsable_statement_warns_and_runs(postgres: PgServer, pg_db: str):
    url = postgres.jdbc_url(pg_db)
    result = run_task(
        PostgresQueries,
        url=url,
        username="postgres",
        assets={"enableAuto": True},
        sql="CREATE TABLE ids (id int GENERATED ALWAYS AS IDENTITY, v int);"
        "INSERT INTO ids OVERRIDING SYSTEM VALUE VALUES (7, 1);"
        "INSERT INTO ids (v) VALUES (2)",
    )
    assert result.state == "SUCCESS"
    warnings = [log["message"] for log in result.logs if log["level"] == "WARN"]
    assert (
        len(warnings) == 1 and "statement 2 could not be parsed by sqlglot (postgres dialect)" in warnings[0]
    )
    assert len(result.assets) == 2
    assert query(postgres, pg_db, "SELECT count(*) FROM ids") == [(2,)]


def test_kill_cancels_the_running_query(postgres: PgServer, pg_db: str):
    rt = Runtime.in_memory()
    ctx = TaskRunContext(rt, {}, namespace="n", task_id="t")
    task = PostgresQuery(
        id="t",
        type=PostgresQuery.type_id,
        url=postgres.jdbc_url(pg_db),
        username="postgres",
        sql="SELECT pg_sleep(30)",
    )
    outcome: dict[str, BaseException] = {}

    def work() -> None:
        try:
            task.run(ctx)
        except BaseException as exc:  # noqa: BLE001
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if query(
            postgres, pg_db, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'"
        )[0][0]:
            break
        time.sleep(0.05)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert "killed" in str(outcome["error"])


@pytest.mark.parametrize("mode", ["REQUIRE", "VERIFY_FULL"])
def test_ssl_mode_reaches_the_driver(postgres: PgServer, pg_db: str, mode: str):
    # the test server has no TLS: a required TLS connection is refused with libpq's own reason
    result = run_task(
        PostgresQuery,
        url=postgres.jdbc_url(pg_db),
        username="postgres",
        sslMode=mode,
        sql="SELECT 1",
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert "server does not support SSL" in result.error or "root certificate file" in result.error


def test_savepoints_work_inside_the_task_transaction(postgres: PgServer, pg_db: str):
    result = run_task(
        PostgresQueries,
        url=postgres.jdbc_url(pg_db),
        username="postgres",
        fetchType="FETCH",
        sql="CREATE TABLE s (a int); INSERT INTO s VALUES (1); SAVEPOINT sp; INSERT INTO s VALUES (2); "
        "ROLLBACK TO SAVEPOINT sp; SELECT a FROM s",
    )
    assert result.outputs["outputs"] == [{"rows": [{"a": 1}], "size": 1}]
    refused = run_task(
        PostgresQueries,
        url=postgres.jdbc_url(pg_db),
        username="postgres",
        sql="COMMIT",
        raise_on_failure=False,
    )
    assert refused.state == "FAILED" and "remove 'COMMIT'" in refused.error
