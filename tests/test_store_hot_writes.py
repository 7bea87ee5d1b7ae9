"""The store's hot writes (executor batches, KV) on SQLite: upserts on a pooled DBAPI connection."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from roost.store.db import SqlKV, Store, store_unavailable


def _header(ex_id: str, state: str = "RUNNING", **extra: object) -> dict:
    return {"id": ex_id, "namespace": "company.team", "flowId": "f",
            "state": {"current": state, "startDate": "2026-12-03T00:00:00.000000Z"}, **extra}  # fmt: skip


def _row(store: Store, ex_id: str) -> tuple:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT state, data FROM executions WHERE id = ?", (ex_id,)).one()


def test_an_unchanged_header_is_not_rewritten_and_a_changed_one_is(tmp_path):
    store = Store.sqlite(tmp_path)
    written: dict[str, str] = {}
    store.save_executions(
        [(_header("e1"), [(0, {"id": "t1", "state": {"current": "RUNNING"}})])], written=written
    )
    assert "e1" in written
    with store.engine.begin() as conn:  # a mark the next write would erase if it rewrote the header
        conn.exec_driver_sql("UPDATE executions SET data = '{\"marked\": true}' WHERE id = 'e1'")
    store.save_executions(
        [(_header("e1"), [(1, {"id": "t2", "state": {"current": "CREATED"}})])], written=written
    )
    assert _row(store, "e1")[1] == '{"marked": true}'
    header, runs = store.load_execution("e1") or ({}, [])
    assert [r["id"] for r in runs] == ["t1", "t2"]  # the task runs were written all the same
    store.save_executions([(_header("e1", "SUCCESS"), [])], written=written)
    state, data = _row(store, "e1")
    assert state == "SUCCESS" and "marked" not in data


def test_upserts_update_in_place(tmp_path):
    store = Store.sqlite(tmp_path)
    for state in ("RUNNING", "SUCCESS"):
        store.save_executions([(_header("e1", state), [(0, {"id": "t1", "state": {"current": state}})])])
    header, runs = store.load_execution("e1") or ({}, [])
    assert header["state"]["current"] == "SUCCESS" and [r["state"]["current"] for r in runs] == ["SUCCESS"]
    kv = SqlKV(store)
    kv.put("company.team", "k", 1)
    kv.put("company.team", "k", {"a": 2}, ttl=60, description="d")
    assert kv.get("company.team", "k") == {"a": 2}
    assert (kv.entry("company.team", "k") or {})["description"] == "d"
    assert kv.keys("company.team") == ["k"]


def test_a_locked_database_fails_as_sqlalchemy_errors_do_and_writes_nothing(tmp_path):
    store = Store.sqlite(tmp_path, busy_timeout=0.1)
    store.save_executions([(_header("e1"), [])])
    other = sqlite3.connect(tmp_path / "roost.db", timeout=0.1)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(sa.exc.OperationalError) as info:
            store.save_executions(
                [(_header("e1", "SUCCESS"), [(0, {"id": "t1", "state": {"current": "SUCCESS"}})])]
            )
        assert store_unavailable(info.value)  # the executor's _retrying waits and tries again
        with pytest.raises(sa.exc.OperationalError):
            SqlKV(store).put("company.team", "k", 1)
    finally:
        other.rollback()
        other.close()
    header, runs = store.load_execution("e1") or ({}, [])
    assert header["state"]["current"] == "RUNNING" and runs == []
    store.save_executions([(_header("e1", "SUCCESS"), [])])  # the pooled connection is usable again
    assert _row(store, "e1")[0] == "SUCCESS"
