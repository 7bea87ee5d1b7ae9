"""The store's hot writes on PostgreSQL: KV upserts, execution headers written only when they change."""

from __future__ import annotations

import pytest
from roost.store.db import SqlKV, Store
from roost.testing.postgres import PgServer

pytestmark = pytest.mark.e2e


def test_kv_put_overwrites_in_place(pg_store: Store) -> None:
    kv = SqlKV(pg_store)
    kv.put("company.team", "k", 1)
    kv.put("company.team", "k", {"a": 2}, ttl=60, description="d")
    kv.put("company.team", "other", "x")
    assert kv.get("company.team", "k") == {"a": 2}
    assert (kv.entry("company.team", "k") or {})["description"] == "d"
    assert kv.keys("company.team") == ["k", "other"]
    assert kv.delete("company.team", "k") and kv.keys("company.team") == ["other"]


def test_headers_written_when_they_change(pg_store: Store) -> None:
    def header(state: str) -> dict:
        return {"id": "e1", "namespace": "company.team", "flowId": "f",
                "state": {"current": state, "startDate": "2026-12-03T00:00:00.000000Z"}}  # fmt: skip

    written: dict[str, str] = {}
    pg_store.save_executions(
        [(header("RUNNING"), [(0, {"id": "t1", "state": {"current": "RUNNING"}})])], written=written
    )
    pg_store.save_executions(
        [(header("RUNNING"), [(1, {"id": "t2", "state": {"current": "CREATED"}})])], written=written
    )
    pg_store.save_executions(
        [(header("SUCCESS"), [(0, {"id": "t1", "state": {"current": "SUCCESS"}})])], written=written
    )
    loaded = pg_store.load_execution("e1")
    assert loaded is not None
    head, runs = loaded
    assert head["state"]["current"] == "SUCCESS"
    assert [(r["id"], r["state"]["current"]) for r in runs] == [("t1", "SUCCESS"), ("t2", "CREATED")]


def test_a_connection_the_server_closed_is_replaced_after_it_sat_idle(
    pg_store: Store, pg: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping at every checkout (a round trip of each one-statement write): one after idling."""
    import roost.store.db as db

    kv = SqlKV(pg_store)
    kv.put("company.team", "k", 1)
    database = pg_store.engine.url.database
    pg.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
    monkeypatch.setattr(db, "_PING_AFTER", 0.0)  # every pooled connection has now sat idle long enough
    kv.put("company.team", "k", 2)  # the dead pooled connection is found on checkout and replaced
    assert kv.get("company.team", "k") == 2


def test_one_statement_writes_commit_without_a_transaction(pg_store: Store) -> None:
    kv = SqlKV(pg_store)
    kv.put("company.team", "k", "v")
    other = Store(str(pg_store.engine.url.render_as_string(hide_password=False)))
    try:
        assert SqlKV(other).get("company.team", "k") == "v"  # visible to another connection at once
    finally:
        other.close()


def test_an_error_the_pipelined_batch_reports_at_its_end_is_a_store_error_and_writes_nothing(
    pg_store: Store,
) -> None:
    """The executor batch goes in psycopg's pipeline mode: an error reported by its final sync comes out
    as SQLAlchemy's errors do (what the engine's retry tells apart), and the transaction is rolled back."""
    import sqlalchemy as sa

    header = {"id": "e9", "namespace": "company.team", "flowId": "f",
              "state": {"current": "RUNNING", "startDate": "2026-12-03T00:00:00.000000Z"}}  # fmt: skip
    run = (0, {"id": "t9", "state": {"current": "RUNNING"}})
    with pytest.raises(sa.exc.DBAPIError, match="division by zero"):
        pg_store.save_executions([(header, [run])], also=lambda cur: cur.execute("SELECT 1 / 0"))
    assert pg_store.load_execution("e9") is None
    pg_store.save_executions([(header, [run])])  # the next batch gets a working connection
    assert pg_store.load_execution("e9") is not None


def test_executions_are_read_back_a_batch_at_a_time(pg_store: Store) -> None:
    """An executor reads the executions an API process created in one statement: runs in order, masks."""
    for n in (1, 2):
        header = {"id": f"b{n}", "namespace": "company.team", "flowId": "f",
                  "state": {"current": "CREATED", "startDate": "2026-12-03T00:00:00.000000Z"}}  # fmt: skip
        runs = [(seq, {"id": f"b{n}-t{seq}", "state": {"current": "CREATED"}}) for seq in (1, 0, 2)]
        pg_store.save_executions([(header, runs)], masks={"b1": {"salt": "s"}} if n == 1 else None)
    loaded = pg_store.load_executions(["b2", "missing", "b1"])
    assert sorted(loaded) == ["b1", "b2"]
    header, runs, masks = loaded["b1"]
    assert header["id"] == "b1" and [r["id"] for r in runs] == ["b1-t0", "b1-t1", "b1-t2"]
    assert masks == {"salt": "s"} and loaded["b2"][2] is None
    assert pg_store.load_executions(["b1"], masks=False)["b1"][2] is None
