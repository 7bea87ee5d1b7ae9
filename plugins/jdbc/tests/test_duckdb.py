from __future__ import annotations

import json
from pathlib import Path

import duckdb
from roost.testing import run_task
from roost_jdbc.tasks import DuckdbQueries, DuckdbQuery

TABLE = "io.kestra.plugin.ee.assets.Table"


def test_fetch_types_and_type_conversion():
    sql = (
        "SELECT 1.10::DECIMAL(10, 2) AS dec, 123456789012345678.9::DECIMAL(38, 1) AS big, "
        "TIMESTAMPTZ '2024-01-01 12:00:00+00' AS ts, DATE '2024-02-29' AS d, 'ab'::BLOB AS b, "
        "INTERVAL 90 MINUTE AS i, [1, 2] AS l, {'k': 'v'} AS s, uuid() IS NOT NULL AS u"
    )
    one = run_task(DuckdbQuery, sql=sql, fetchType="FETCH_ONE", timeZoneId="Asia/Tokyo")
    assert one.outputs["size"] == 1
    assert one.outputs["row"] == {
        "dec": 1.1,
        "big": "123456789012345678.9",
        "ts": "2024-01-01T21:00:00+09:00",
        "d": "2024-02-29",
        "b": "YWI=",
        "i": "PT1H30M",
        "l": [1, 2],
        "s": {"k": "v"},
        "u": True,
    }
    rows = run_task(DuckdbQuery, sql="SELECT range AS n FROM range(5)", fetchType="FETCH", fetchSize=2)
    assert rows.outputs == {"rows": [{"n": i} for i in range(5)], "size": 5}
    stored = run_task(DuckdbQuery, sql="SELECT range AS n FROM range(3)", fetchType="STORE")
    data = stored.context.read_file(stored.outputs["uri"]).decode().splitlines()
    assert [json.loads(x) for x in data] == [{"n": 0}, {"n": 1}, {"n": 2}] and stored.outputs["size"] == 3
    assert run_task(DuckdbQuery, sql="SELECT 1", fetchType="NONE").outputs == {}


def test_dml_is_not_a_result_set_but_returning_is():
    result = run_task(
        DuckdbQueries,
        fetchType="FETCH",
        sql="CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2); INSERT INTO t VALUES (3) RETURNING a; "
        "UPDATE t SET a = a * 10; SET TimeZone = 'UTC'; SELECT sum(a) AS total FROM t",
    )
    assert result.outputs["outputs"] == [
        {"rows": [{"a": 3}], "size": 1},
        {"rows": [{"total": 60}], "size": 1},
    ]


def test_parameters():
    result = run_task(
        DuckdbQuery,
        sql="SELECT :a + :b AS s, :txt AS t, len(:xs) AS n",
        fetchType="FETCH_ONE",
        parameters={"a": 1, "b": 2, "txt": "it's", "xs": [1, 2, 3]},
    )
    assert result.outputs["row"] == {"s": 3, "t": "it's", "n": 3}


def test_file_database_rollback_output_db_file_and_database_uri(tmp_path: Path):
    db = tmp_path / "warehouse.duckdb"
    run_task(DuckdbQueries, url=f"jdbc:duckdb:{db}", sql="CREATE TABLE t (a INT); INSERT INTO t VALUES (1)")
    failed = run_task(
        DuckdbQueries,
        url=f"jdbc:duckdb:{db}",
        raise_on_failure=False,
        sql="INSERT INTO t VALUES (2); CREATE TABLE u (b INT); SELECT * FROM missing",
    )
    assert failed.state == "FAILED"
    assert (
        "statement 3 of 3 failed" in failed.error and "Table with name missing does not exist" in failed.error
    )
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT a FROM t").fetchall() == [(1,)]
        assert conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'u'"
        ).fetchone() == (0,)

    made = run_task(DuckdbQueries, sql="CREATE TABLE k AS SELECT 42 AS v", outputDbFile=True)
    uri = made.outputs["databaseUri"]
    reread = run_task(
        DuckdbQuery,
        sql="SELECT v FROM k",
        databaseUri=uri,
        fetchType="FETCH_ONE",
        runtime=made.context.runtime,
    )
    assert reread.outputs["row"] == {"v": 42}


def test_relative_paths_resolve_in_the_working_directory(tmp_path):
    # reads resolve relative paths in the task's folder (file_search_path); DuckDB writes relative to the
    # process's folder, so the file is written with an absolute path and read back by a relative one
    csv = tmp_path / "in.csv"
    result = run_task(
        DuckdbQueries,
        url="jdbc:duckdb:local.duckdb",
        fetchType="FETCH_ONE",
        outputDbFile=True,
        sql=f"COPY (SELECT 7 AS x) TO '{csv}' (HEADER); SELECT x FROM read_csv_auto('{csv}')",
    )
    assert result.outputs["outputs"] == [{"row": {"x": 7}, "size": 1}]
    assert result.outputs["databaseUri"].endswith("local.duckdb")


def test_auto_assets_schema_aware_ids():
    result = run_task(
        DuckdbQueries,
        url="jdbc:duckdb:lake.duckdb",
        assets={"enableAuto": True},
        sql="CREATE SCHEMA staging; CREATE TABLE staging.raw AS SELECT range AS id FROM range(3); "
        "CREATE TABLE mart AS SELECT id FROM staging.raw; "
        "MERGE INTO mart USING staging.raw AS s ON mart.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
    )
    summary = [([a.id for a in b.inputs], [a.id for a in b.outputs]) for b in result.assets]
    assert summary == [
        ([], ["lake.staging.raw"]),
        (["lake.staging.raw"], ["lake.mart"]),
        (["lake.staging.raw"], ["lake.mart"]),
    ]
    mart = result.assets[1].outputs[0]
    assert mart.metadata == {"system": "duckdb", "database": "lake", "schema": "main", "name": "mart"}
    assert result.assets[0].outputs[0].type == TABLE


def test_sql_error_message():
    result = run_task(DuckdbQuery, sql="SELECT * FROM nowhere", raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error.startswith("DuckDB error: Catalog Error: Table with name nowhere does not exist")
