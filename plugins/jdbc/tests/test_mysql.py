"""MySQL tasks against a real MariaDB server (Debian's mariadb-server, started by the fixture)."""

from __future__ import annotations

import json
import threading
import time

from conftest import MY_SECURE_PASSWORD, MY_SECURE_USER
from mysql_server import MariaDbServer
from roost.testing import Runtime, TaskRunContext, run_task
from roost_jdbc.tasks import MysqlQueries, MysqlQuery

TABLE = "io.kestra.plugin.ee.assets.Table"


def query(server: MariaDbServer, db: str, sql: str) -> list[tuple]:
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def test_fetch_types_parameters_and_conversion(mariadb: MariaDbServer, my_db: str):
    url = mariadb.jdbc_url(my_db)
    run_task(
        MysqlQueries,
        url=url,
        username="root",
        sql="""
        CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20), price DECIMAL(10, 2),
                            at DATETIME, raw VARBINARY(4), span TIME);
        INSERT INTO items (name, price, at, raw, span) VALUES ('a', 1.10, '2024-01-01 12:00:00', x'00ff', '01:30:00'),
                                                             ('b%', 2.50, NULL, NULL, NULL);
    """,
    )
    one = run_task(
        MysqlQuery,
        url=url,
        username="root",
        fetchType="FETCH_ONE",
        sql="SELECT name, price, at, raw, span FROM items WHERE name = :name AND name LIKE 'a%'",
        parameters={"name": "a"},
    )
    assert one.outputs == {
        "row": {"name": "a", "price": 1.1, "at": "2024-01-01T12:00:00", "raw": "AP8=", "span": "PT1H30M"},
        "size": 1,
    }
    rows = run_task(
        MysqlQuery, url=url, username="root", fetchType="FETCH", sql="SELECT name FROM items ORDER BY id"
    )
    assert rows.outputs == {"rows": [{"name": "a"}, {"name": "b%"}], "size": 2}
    stored = run_task(
        MysqlQuery,
        url=url,
        username="root",
        fetchType="STORE",
        fetchSize=1,
        sql="SELECT id FROM items ORDER BY id",
    )
    lines = stored.context.read_file(stored.outputs["uri"]).decode().splitlines()
    assert [json.loads(x) for x in lines] == [{"id": 1}, {"id": 2}]
    assert run_task(MysqlQuery, url=url, username="root", sql="SELECT 1").outputs == {}


def test_queries_rollback_of_data_changes(mariadb: MariaDbServer, my_db: str):
    url = mariadb.jdbc_url(my_db)
    run_task(
        MysqlQueries,
        url=url,
        username="root",
        sql="CREATE TABLE acct (id INT PRIMARY KEY, balance INT) ENGINE=InnoDB; INSERT INTO acct VALUES (1, 100), (2, 50)",
    )
    result = run_task(
        MysqlQueries,
        url=url,
        username="root",
        raise_on_failure=False,
        sql="UPDATE acct SET balance = balance - 30 WHERE id = 1;"
        "UPDATE acct SET balance = balance + 30 WHERE id = 2;"
        "INSERT INTO acct VALUES (1, 0);"
        "DELETE FROM acct",
    )
    assert result.state == "FAILED"
    assert (
        "statement 3 of 4 failed; the transaction was rolled back: (1062) Duplicate entry '1'" in result.error
    )
    assert query(mariadb, my_db, "SELECT id, balance FROM acct ORDER BY id") == [(1, 100), (2, 50)]


def test_credentials_and_errors(mariadb: MariaDbServer, my_db: str, secret_env):
    secret_env("MY_PASSWORD", MY_SECURE_PASSWORD)
    ok = run_task(
        MysqlQuery,
        url=mariadb.jdbc_url(my_db),
        username=MY_SECURE_USER,
        password="{{ secret('MY_PASSWORD') }}",
        sql="SELECT CURRENT_USER() AS u",
        fetchType="FETCH_ONE",
    )
    assert ok.outputs["row"]["u"] == f"{MY_SECURE_USER}@127.0.0.1"
    assert all(MY_SECURE_PASSWORD not in m for m in ok.messages)

    bad = run_task(
        MysqlQuery,
        url=f"{mariadb.jdbc_url(my_db)}?user={MY_SECURE_USER}&password=nope-{MY_SECURE_PASSWORD}",
        sql="SELECT 1",
        raise_on_failure=False,
    )
    assert bad.state == "FAILED"
    assert f"cannot connect to MySQL at 127.0.0.1:{mariadb.port}: (1045) Access denied" in bad.error
    assert MY_SECURE_PASSWORD not in bad.error
    assert all(MY_SECURE_PASSWORD not in m for m in bad.messages)

    err = run_task(
        MysqlQuery,
        url=mariadb.jdbc_url(my_db),
        username="root",
        sql="SELECT * FROM nope",
        raise_on_failure=False,
    )
    assert err.error == f"MySQL error: (1146) Table '{my_db}.nope' doesn't exist"


def test_auto_assets(mariadb: MariaDbServer, my_db: str):
    result = run_task(
        MysqlQueries,
        url=mariadb.jdbc_url(my_db),
        username="root",
        assets={"enableAuto": True},
        sql="CREATE TABLE src (id INT); CREATE TABLE dst (id INT); "
        "INSERT INTO dst SELECT s.id FROM src s JOIN mysql.user u ON 1 = 0",
    )
    summary = [([a.id for a in b.inputs], [a.id for a in b.outputs]) for b in result.assets]
    assert summary == [([], [f"{my_db}.src"]), ([], [f"{my_db}.dst"]), ([f"{my_db}.src"], [f"{my_db}.dst"])]
    meta = result.assets[0].outputs[0].metadata
    assert meta == {
        "system": "mysql",
        "database": my_db,
        "name": "src",
        "host": "127.0.0.1",
        "port": mariadb.port,
    }


def test_kill_cancels_the_running_query(mariadb: MariaDbServer, my_db: str):
    rt = Runtime.in_memory()
    ctx = TaskRunContext(rt, {}, namespace="n", task_id="t")
    task = MysqlQuery(
        id="t",
        type=MysqlQuery.type_id,
        url=mariadb.jdbc_url(my_db),
        username="root",
        sql="SELECT SLEEP(30)",
        fetchType="FETCH_ONE",
    )
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["out"] = task.run(ctx)
        except BaseException as exc:  # noqa: BLE001
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if query(
            mariadb,
            my_db,
            "SELECT count(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(30)'",
        )[0][0]:
            break
        time.sleep(0.05)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    # KILL QUERY makes SLEEP() return 1 early, or fails the statement: either way the task stops as killed
    assert "killed" in str(outcome.get("error", ""))
