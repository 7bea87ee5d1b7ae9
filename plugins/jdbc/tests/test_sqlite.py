from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from roost.testing import Runtime, TaskRunContext, run_task
from roost_jdbc.tasks import SqliteQueries, SqliteQuery

TABLE = "io.kestra.plugin.ee.assets.Table"
SEED = """
CREATE TABLE trips (VendorID INTEGER, passenger_count INTEGER, trip_distance REAL, picked DATE, payload BLOB);
INSERT INTO trips VALUES (1, 2, 3.5, '2024-01-01', x'00ff');
INSERT INTO trips VALUES (2, 1, 0.75, '2024-01-02', NULL);
INSERT INTO trips VALUES (1, 4, 12.25, '2024-01-03', NULL);
"""


def seeded_db(runtime: Runtime | None = None) -> tuple[str, Runtime]:
    """Run the seed through the Queries task itself and return the uploaded database file."""
    result = run_task(SqliteQueries, url="jdbc:sqlite:trips.db", sql=SEED, outputDbFile=True, runtime=runtime)
    return result.outputs["databaseUri"], result.context.runtime


def rows_of(runtime: Runtime, uri: str, sql: str) -> list[tuple]:
    path = runtime.storage.local_path(uri)
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_seed_flow_create_trips_table_with_output_db_file_and_asset():
    # acceptance flow jdbc_create_trips, task create_trips_table, as written
    result = run_task(
        SqliteQuery,
        id="create_trips_table",
        url="jdbc:sqlite:myfile.db",
        outputDbFile=True,
        sql="CREATE TABLE IF NOT EXISTS trips (\n  VendorID INTEGER,\n  passenger_count INTEGER,\n  trip_distance REAL\n);\n",
        assets={"enableAuto": True},
    )
    assert result.state == "SUCCESS"
    uri = result.outputs["databaseUri"]
    assert uri.startswith("kestra://") and uri.endswith("myfile.db")
    assert rows_of(result.context.runtime, uri, "select name from sqlite_master") == [("trips",)]
    assert len(result.assets) == 1
    bundle = result.assets[0]
    assert bundle.inputs == []
    [asset] = bundle.outputs
    assert (asset.id, asset.type) == ("myfile.trips", TABLE)
    assert asset.metadata == {"system": "sqlite", "database": "myfile", "name": "trips"}


def test_fetch_types():
    uri, runtime = seeded_db()
    common = {"url": "jdbc:sqlite:trips.db", "sqliteFile": uri, "runtime": runtime}
    sql = "SELECT VendorID, trip_distance, picked, payload FROM trips ORDER BY trip_distance"

    one = run_task(SqliteQuery, sql=sql, fetchType="FETCH_ONE", **common)
    assert one.outputs == {
        "row": {"VendorID": 2, "trip_distance": 0.75, "picked": "2024-01-02", "payload": None},
        "size": 1,
    }

    many = run_task(SqliteQuery, sql=sql, fetchType="FETCH", fetchSize=1, **common)
    assert many.outputs["size"] == 3
    assert [r["trip_distance"] for r in many.outputs["rows"]] == [0.75, 3.5, 12.25]
    assert many.outputs["rows"][1]["payload"] == "AP8="  # bytes as base64

    stored = run_task(SqliteQuery, sql=sql, fetchType="STORE", fetchSize=2, **common)
    assert stored.outputs["size"] == 3
    assert stored.outputs["uri"].endswith(".ion")
    lines = runtime.storage.get(stored.outputs["uri"]).decode().splitlines()
    assert [json.loads(line)["trip_distance"] for line in lines] == [0.75, 3.5, 12.25]

    none = run_task(SqliteQuery, sql=sql, fetchType="NONE", **common)
    assert none.outputs == {}

    empty = run_task(SqliteQuery, sql="SELECT * FROM trips WHERE 0", fetchType="FETCH_ONE", **common)
    assert empty.outputs == {"row": None, "size": 0}

    deprecated = run_task(SqliteQuery, sql=sql, store=True, **common)
    assert deprecated.outputs["size"] == 3 and "uri" in deprecated.outputs
    assert [m["name"] for m in stored.context.metrics] == ["fetch.size"]
    assert stored.context.metrics[0]["value"] == 3


def test_parameters_are_bound_not_interpolated():
    uri, runtime = seeded_db()
    evil = "1; DROP TABLE trips; --"
    result = run_task(
        SqliteQueries,
        url="jdbc:sqlite:trips.db",
        sqliteFile=uri,
        runtime=runtime,
        outputDbFile=True,
        fetchType="FETCH",
        sql="INSERT INTO trips (VendorID, passenger_count) VALUES (:vendor, :count);"
        "SELECT VendorID, passenger_count FROM trips WHERE passenger_count = :count AND ':vendor' = ':vendor'",
        parameters={"vendor": evil, "count": 9},
    )
    assert result.outputs["outputs"] == [{"rows": [{"VendorID": evil, "passenger_count": 9}], "size": 1}]
    assert rows_of(runtime, result.outputs["databaseUri"], "select count(*) from trips") == [(4,)]


def test_parameters_from_expressions():
    result = run_task(
        SqliteQuery,
        sql="SELECT :name AS name, :n * 2 AS twice",
        fetchType="FETCH_ONE",
        parameters={"name": "{{ who }}", "n": 21},
        variables={"who": "ada"},
    )
    assert result.outputs["row"] == {"name": "ada", "twice": 42}


def test_queries_roll_back_when_the_third_statement_fails(tmp_path: Path):
    db = tmp_path / "shop.db"
    run_task(SqliteQueries, url=f"jdbc:sqlite:{db}", sql=SEED)
    result = run_task(
        SqliteQueries,
        url=f"jdbc:sqlite:{db}",
        raise_on_failure=False,
        sql="INSERT INTO trips (VendorID) VALUES (10);"
        "CREATE TABLE extra (b);"
        "INSERT INTO no_such_table VALUES (1);"
        "INSERT INTO trips (VendorID) VALUES (11);",
    )
    assert result.state == "FAILED"
    assert "statement 3 of 4 failed" in result.error
    assert "no such table: no_such_table" in result.error  # SQLite's own message
    assert "rolled back" in result.error
    with sqlite3.connect(db) as conn:
        assert conn.execute("select VendorID from trips order by rowid").fetchall() == [(1,), (2,), (1,)]
        assert conn.execute("select name from sqlite_master").fetchall() == [("trips",)]


def test_transaction_false_keeps_statements_before_the_failure(tmp_path: Path):
    db = tmp_path / "x.db"
    failed = run_task(
        SqliteQueries,
        url=f"jdbc:sqlite:{db}",
        transaction=False,
        raise_on_failure=False,
        sql="CREATE TABLE t (a); INSERT INTO t VALUES (1); INSERT INTO nope VALUES (2)",
    )
    assert failed.state == "FAILED"
    with sqlite3.connect(db) as conn:
        assert conn.execute("select a from t").fetchall() == [(1,)]


def test_queries_outputs_per_result_set_and_trigger_bodies():
    result = run_task(
        SqliteQueries,
        fetchType="FETCH",
        sql="""
        CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE audit (id INTEGER);
        CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN INSERT INTO audit VALUES (new.id); END;
        INSERT INTO t (v) VALUES ('a;b'), ('c');
        SELECT v FROM t ORDER BY id;
        SELECT count(*) AS n FROM audit;
        """,
    )
    assert result.outputs["outputs"] == [
        {"rows": [{"v": "a;b"}, {"v": "c"}], "size": 2},
        {"rows": [{"n": 2}], "size": 1},
    ]


def test_query_refuses_several_statements():
    result = run_task(SqliteQuery, sql="SELECT 1; SELECT 2", raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error == (
        "Query task supports only a single SQL statement. Use the Queries task to run multiple statements."
    )


def test_sql_error_carries_sqlite_message():
    result = run_task(SqliteQuery, sql="SELEC 1", raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error.startswith("SQLite error:") and 'near "SELEC": syntax error' in result.error


def test_transaction_statements_are_refused_inside_the_task_transaction():
    result = run_task(SqliteQueries, sql="BEGIN; SELECT 1; COMMIT", raise_on_failure=False)
    assert result.state == "FAILED" and "remove 'BEGIN'" in result.error
    ok = run_task(SqliteQueries, sql="BEGIN; CREATE TABLE t (a); COMMIT", transaction=False)
    assert ok.state == "SUCCESS"


def test_vacuum_runs_outside_a_transaction(tmp_path: Path):
    db = tmp_path / "v.db"
    run_task(SqliteQuery, url=f"jdbc:sqlite:{db}", sql="CREATE TABLE t (a)")
    assert run_task(SqliteQuery, url=f"jdbc:sqlite:{db}", sql="VACUUM").state == "SUCCESS"


def test_sqlite_file_must_be_internal_storage():
    result = run_task(SqliteQuery, sql="SELECT 1", sqliteFile="/etc/passwd", raise_on_failure=False)
    assert result.state == "FAILED" and "internal-storage URI" in result.error


def test_wrong_url_scheme():
    result = run_task(
        SqliteQuery,
        url="jdbc:postgresql://localhost/db?password=hunter2",
        sql="SELECT 1",
        raise_on_failure=False,
    )
    assert result.state == "FAILED" and "not a SQLite JDBC URL" in result.error
    assert "hunter2" not in result.error


def test_in_memory_database_by_default():
    result = run_task(
        SqliteQueries,
        fetchType="FETCH_ONE",
        assets={"enableAuto": True},
        sql="CREATE TABLE t (a); INSERT INTO t VALUES (5); SELECT a FROM t",
    )
    assert result.outputs["outputs"] == [{"row": {"a": 5}, "size": 1}]
    assert [a.id for b in result.assets for a in b.outputs] == ["memory.t", "memory.t"]


def test_auto_assets_one_bundle_per_statement_with_lineage():
    uri, runtime = seeded_db()
    result = run_task(
        SqliteQueries,
        url="jdbc:sqlite:analytics.db",
        sqliteFile=uri,
        runtime=runtime,
        assets={"enableAuto": True},
        sql="""
        CREATE TABLE vendors (id INTEGER, name TEXT);
        INSERT INTO vendors VALUES (1, 'a'), (2, 'b');
        CREATE VIEW by_vendor AS SELECT v.name, sum(t.trip_distance) d FROM trips t JOIN vendors v ON v.id = t.VendorID GROUP BY v.name;
        WITH long AS (SELECT * FROM trips WHERE trip_distance > 3) INSERT INTO vendors SELECT VendorID, 'long' FROM long;
        SELECT * FROM by_vendor;
        """,
    )
    summary = [([a.id for a in b.inputs], [a.id for a in b.outputs]) for b in result.assets]
    assert summary == [
        ([], ["analytics.vendors"]),
        ([], ["analytics.vendors"]),
        (["analytics.trips", "analytics.vendors"], ["analytics.by_vendor"]),
        (["analytics.trips"], ["analytics.vendors"]),
        (["analytics.by_vendor"], []),
    ]
    assert all(a.type == TABLE for b in result.assets for a in (*b.inputs, *b.outputs))


def test_unparsable_statement_is_a_warning_and_the_run_goes_on():
    result = run_task(
        SqliteQueries,
        assets={"enableAuto": True},
        sql="CREATE TABLE t (a INTEGER PRIMARY KEY, b); REPLACE INTO t VALUES (1, 'x'); INSERT INTO t VALUES (2, 'y')",
    )
    assert result.state == "SUCCESS"
    warnings = [log["message"] for log in result.logs if log["level"] == "WARN"]
    assert len(warnings) == 1 and "statement 2 could not be parsed" in warnings[0]
    assert [[a.id for a in b.outputs] for b in result.assets] == [["memory.t"], ["memory.t"]]


def test_no_assets_without_enable_auto():
    result = run_task(SqliteQuery, sql="CREATE TABLE t (a)")
    assert result.assets == []


def test_time_zone_is_validated():
    result = run_task(SqliteQuery, sql="SELECT 1", timeZoneId="Mars/Olympus", raise_on_failure=False)
    assert result.state == "FAILED" and "unknown timeZoneId 'Mars/Olympus'" in result.error


def test_kill_interrupts_a_running_statement():
    rt = Runtime.in_memory()
    ctx = TaskRunContext(rt, {}, namespace="n", task_id="t")
    task = SqliteQuery(
        id="t",
        type=SqliteQuery.type_id,
        fetchType="FETCH_ONE",
        sql="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
    )
    outcome: dict[str, BaseException] = {}

    def work() -> None:
        try:
            task.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert "killed" in str(outcome["error"])


@pytest.mark.parametrize("prop", ["fetch", "fetchOne"])
def test_deprecated_flags(prop):
    result = run_task(SqliteQuery, sql="SELECT 1 AS a", **{prop: True})
    assert result.outputs["size"] == 1
