"""Kill switches and the audit log on PostgreSQL (the store of several processes): the migration's
append-only triggers, the switches' version counter, the audit searches, and a KILL switch acting on an
engine over that store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from roost.engine.engine import Engine
from roost.engine.killswitch import store_guard
from roost.engine.model import new_id
from roost.engine.queue import Message
from roost.store.db import Store

pytestmark = pytest.mark.e2e


def switch(pg_store: Store, **values: object) -> str:
    switch_id = new_id()
    pg_store.kill_switches.create(switch_id, {"name": "pg", "tenant": "main", "namespace": "team.a", "flow_id": None,
                                           "execution_ids": [], "type": "KILL", "start_date": time.time(), "end_date": None,
                                           "description": None, "enabled": True, **values}, "tester")  # fmt: skip
    return switch_id


def test_audit_log_is_append_only_on_postgres(pg_store: Store) -> None:
    pg_store.audit.append(type="CREATE", resource_type="FLOW", tenant="main", user_id="u",
                       detail={"id": "f", "namespace": "team_a.x", "flowId": "f"}, after="id: f")  # fmt: skip
    pg_store.audit.append(type="LOGIN_FAILURE", resource_type="USER", tenant=None, user_id="mallory",
                       detail={"id": "mallory", "attempts": 3})  # fmt: skip
    for statement in ("UPDATE audit_logs SET user_id = 'x'", "DELETE FROM audit_logs", "TRUNCATE audit_logs"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), pg_store.engine.begin() as conn:
            conn.execute(sa.text(statement))
    found, total = pg_store.audit.search(tenant="main", namespace="team_a")
    assert total == 1 and found[0]["detail"]["flowId"] == "f"
    assert pg_store.audit.search(tenant="main", namespace="teamxa")[1] == 0  # '_' is not a wildcard
    assert pg_store.audit.search(all_tenants=True, details={"attempts": 3})[1] == 1
    assert (
        pg_store.audit.search(tenant="main", within=["team_a"])[1] == 1
        and pg_store.audit.search(tenant="main", within=[])[1] == 0
    )


def test_switches_version_counter_and_guard_on_postgres(pg_store: Store) -> None:
    guard = store_guard(pg_store, interval=0.0)
    before = pg_store.kill_switches.version()
    sid = switch(pg_store)
    assert pg_store.kill_switches.version() == before + 1
    assert guard.match("main", "team.a.b", "f", "e") is not None
    assert pg_store.kill_switches.delete(sid, "tester") and not pg_store.kill_switches.delete(sid, "tester")
    assert guard.match("main", "team.a.b", "f", "e") is None
    assert pg_store.kill_switches.archive(switch(pg_store, end_date=time.time() + 60), time.time())
    assert [r["deleted"] for r in pg_store.kill_switches.list()].count(True) == 1


def test_a_kill_switch_kills_executions_of_an_engine_over_postgres(pg_store: Store, tmp_path: Path) -> None:
    engine = Engine(pg_store, tmp_path, workers=4)
    engine.kill_switches.interval = 0.05
    engine.start()
    try:
        flow = engine.deploy("id: nap\nnamespace: team.a\ntasks:\n  - id: s\n    type: io.kestra.plugin.scripts.shell.Commands\n"
                             "    commands: [\"sleep 30\"]\n")  # fmt: skip
        ids = [engine.create_execution(flow).id for _ in range(3)]
        deadline = time.monotonic() + 20
        while len(engine.worker.running) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pg_store.active_execution_ids("main", ("RUNNING",), namespace="team.a") == set(ids)
        switch(pg_store)
        engine.queue.put(Message("switches", ""))
        for ex_id in ids:
            assert engine.wait(ex_id, 15).state.current == "KILLED"
    finally:
        engine.stop()
