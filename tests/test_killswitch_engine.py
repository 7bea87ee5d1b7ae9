"""Kill switches in the engine: the index, the guard's refresh and dates, KILL / CANCEL / IGNORE on real runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from roost.engine.engine import Engine
from roost.engine.killswitch import KillSwitchGuard, Switch, SwitchIndex
from roost.engine.model import TERMINAL, new_id, parse_iso
from roost.engine.queue import Message
from roost.store.db import Store
from support import flow


# -- the index ----------------------------------------------------------------------------------------------
def sw(type: str = "KILL", **kw: Any) -> Switch:
    return Switch(
        id=kw.pop("id", new_id()), name=kw.pop("name", "s"), type=type, tenant=kw.pop("tenant", "main"), **kw
    )


def test_index_scopes_namespace_children_but_not_siblings() -> None:
    idx = SwitchIndex([sw(namespace="company.team")])
    assert idx.match("main", "company.team", "f", "e1") is not None
    assert idx.match("main", "company.team.sub.deep", "f", "e1") is not None
    assert idx.match("main", "company.teams", "f", "e1") is None  # a sibling sharing a prefix of letters
    assert idx.match("main", "company", "f", "e1") is None  # the parent
    assert idx.match("other", "company.team", "f", "e1") is None  # another tenant


def test_index_flow_execution_tenant_and_strength() -> None:
    kill_flow = sw("KILL", namespace="a.b", flow_id="f")
    cancel_tenant = sw("CANCEL")
    ignore_ex = sw("IGNORE", execution_ids=frozenset({"x1"}))
    idx = SwitchIndex([kill_flow, cancel_tenant, ignore_ex])
    assert idx.match("main", "a.b", "f", "e") is kill_flow  # KILL beats CANCEL
    assert idx.match("main", "a.b", "g", "e") is cancel_tenant
    assert idx.match("main", "a.b.c", "f", "e") is cancel_tenant  # a flow scope is one flow, not children
    assert idx.match("main", "z", "f", "x1") is ignore_ex  # IGNORE beats everything
    assert idx.match("acme", "z", "f", "x1") is None  # an execution id of another tenant
    assert SwitchIndex().match("main", "a", "f", "e") is None


def test_guard_rereads_only_when_the_version_moves_and_follows_dates() -> None:
    loads: list[int] = []
    version = [1]
    now = time.time()
    switches = [sw(namespace="a", start=now + 0.4, end=now + 0.8)]

    def load() -> list[Switch]:
        loads.append(1)
        return switches

    guard = KillSwitchGuard(load, lambda: version[0], interval=0.05)
    assert guard.match("main", "a", "f", "e") is None  # not started yet
    for _ in range(5):
        time.sleep(0.06)
        guard.match("main", "a", "f", "e")
    assert len(loads) == 1  # the version did not move: no reload
    time.sleep(max(0.0, now + 0.45 - time.time()))
    assert guard.match("main", "a", "f", "e") is not None  # started on its own, no reload needed
    assert switches[0].id in guard.activated
    time.sleep(max(0.0, now + 0.85 - time.time()))
    assert guard.match("main", "a", "f", "e") is None  # ended
    assert guard.ended() == switches
    version[0] = 2
    switches = []
    time.sleep(0.06)
    guard.match("main", "a", "f", "e")
    assert len(loads) == 2


def test_guard_keeps_its_switches_when_the_store_fails() -> None:
    calls = [0]

    def load() -> list[Switch]:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError("database is locked")
        return [sw()]

    guard = KillSwitchGuard(load, lambda: calls[0], interval=0.0)
    assert guard.match("main", "a", "f", "e") is not None
    assert guard.match("main", "a", "f", "e") is not None  # the failed reload kept the known switch


# -- on real executions -----------------------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path: Any) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=4)
    eng.kill_switches.interval = 0.05
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()
        eng.store.close()


def add_switch(engine: Engine, type: str, *, tenant: str = "main", namespace: str | None = None,
               flow_id: str | None = None, ids: tuple[str, ...] = (), start: float | None = None,
               end: float | None = None) -> str:  # fmt: skip
    switch_id = new_id()
    engine.store.kill_switches.create(switch_id, {
        "name": f"{type} for the test", "tenant": tenant, "namespace": namespace, "flow_id": flow_id,
        "execution_ids": list(ids), "type": type, "start_date": time.time() if start is None else start,
        "end_date": end, "description": "a test", "enabled": True}, "tester")  # fmt: skip
    engine.kill_switches.refresh(force=True)
    engine.queue.put(Message("wake", ""))
    return switch_id


STEPS = """
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 0.4"]
  - id: second
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 0.4"]
"""
LONG = """
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 30"]
"""


def wait_state(engine: Engine, ex_id: str, states: set[str], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        ex = engine.get_execution(ex_id)
        if ex is not None and ex.state.current in states:
            return ex
        if time.monotonic() > deadline:
            raise AssertionError(f"{ex_id} is {ex.state.current if ex else None}, expected {states}")
        time.sleep(0.02)


def labels(ex: Any) -> dict[str, str]:
    return {lbl["key"]: lbl["value"] for lbl in ex.labels}


def test_kill_switch_kills_running_and_new_executions_of_its_namespace_only(engine: Engine) -> None:
    a = engine.deploy(flow(LONG, id="long", namespace="team.a"))
    a_child = engine.deploy(flow(LONG, id="long", namespace="team.a.sub"))
    b = engine.deploy(flow(LONG, id="long", namespace="team.b"))
    running = [engine.create_execution(f) for f in (a, a_child, b)]
    for ex in running:
        wait_state(engine, ex.id, {"RUNNING"})
    time.sleep(0.3)  # the shell steps are running
    started = time.monotonic()
    switch_id = add_switch(engine, "KILL", namespace="team.a")
    for ex in running[:2]:
        done = engine.wait(ex.id, 10)
        assert done.state.current == "KILLED"
        assert labels(done)["system.killSwitch"] == switch_id
    assert time.monotonic() - started < 5  # the sleep 30 was killed, not waited for
    assert engine.get_execution(running[2].id).state.current == "RUNNING"  # team.b untouched
    fresh = engine.create_execution(a)
    assert fresh.state.current == "KILLED" and labels(fresh)["system.killSwitch"] == switch_id
    assert engine.wait(fresh.id, 5).task_runs == []  # never started a task
    engine.kill(running[2].id)
    assert engine.wait(running[2].id, 10).state.current == "KILLED"


def test_cancel_switch_lets_running_steps_finish_and_starts_nothing_new(engine: Engine) -> None:
    f = engine.deploy(flow(STEPS, id="steps", namespace="team.c"))
    ex = engine.create_execution(f)
    deadline = time.monotonic() + 10
    while not (engine.get_execution(ex.id).task_runs) and time.monotonic() < deadline:
        time.sleep(0.01)
    add_switch(engine, "CANCEL", flow_id="steps", namespace="team.c")
    done = engine.wait(ex.id, 10)
    assert done.state.current == "CANCELLED"
    runs = {tr.task_id: tr.state.current for tr in done.task_runs}
    assert runs == {"first": "SUCCESS"}  # the step in flight finished; the second never started
    fresh = engine.create_execution(f)
    assert fresh.state.current == "CANCELLED"


def test_ignore_switch_drops_messages_for_good(engine: Engine) -> None:
    f = engine.deploy(flow(STEPS, id="steps", namespace="team.i"))
    ex = engine.create_execution(f)
    wait_state(engine, ex.id, {"RUNNING"})
    deadline = time.monotonic() + 10
    while not engine.get_execution(ex.id).task_runs and time.monotonic() < deadline:
        time.sleep(0.01)
    switch_id = add_switch(engine, "IGNORE", ids=(ex.id,), end=time.time() + 1.2)
    time.sleep(1.6)  # the first step ended meanwhile: its result was dropped, the switch has ended
    current = engine.get_execution(ex.id)
    assert current.state.current == "RUNNING"
    assert [(tr.task_id, tr.state.current) for tr in current.task_runs] == [("first", "RUNNING")]
    assert "system.killSwitch" not in labels(current)  # IGNORE marks nothing: it never touched the execution
    row = engine.store.kill_switches.get(switch_id)
    assert row["archived"] is not None  # its end passed: archived by the executor, and audited
    entries, _ = engine.store.audit.search(tenant="main", resource_id=switch_id)
    assert entries and entries[0]["userId"] == "system"
    engine.kill(ex.id)  # messages flow again: an administrator can kill what the switch froze
    assert engine.wait(ex.id, 10).state.current == "KILLED"


def test_switch_starts_on_its_start_date_without_restart(engine: Engine) -> None:
    f = engine.deploy(flow(LONG, id="later", namespace="team.d"))
    ex = engine.create_execution(f)
    wait_state(engine, ex.id, {"RUNNING"})
    add_switch(engine, "KILL", namespace="team.d", start=time.time() + 0.6)
    time.sleep(0.3)
    assert engine.get_execution(ex.id).state.current == "RUNNING"
    assert engine.wait(ex.id, 10).state.current == "KILLED"


def test_queued_jobs_do_not_start_after_the_switch(tmp_path: Any) -> None:
    engine = Engine(Store.sqlite(tmp_path), tmp_path, workers=1)  # one thread: the others wait in the queue
    engine.start()
    try:
        f = engine.deploy(flow(LONG.replace("sleep 30", "sleep 0.5"), id="q", namespace="team.q"))
        exs = [engine.create_execution(f) for _ in range(4)]
        wait_state(engine, exs[0].id, {"RUNNING"})
        time.sleep(0.2)
        add_switch(engine, "CANCEL", namespace="team.q")
        activated = max(engine.kill_switches.activated.values())
        for ex in exs:
            done = engine.wait(ex.id, 10)
            assert done.state.current == "CANCELLED"
            for tr in done.task_runs:
                for attempt in tr.attempts:
                    hist = attempt["state"]["histories"]
                    if hist[0]["state"] == "RUNNING":  # a step that ran started before the switch acted
                        assert parse_iso(hist[0]["date"]).timestamp() <= activated
        ran = [
            tr for ex in exs for tr in engine.get_execution(ex.id).task_runs if tr.state.current == "SUCCESS"
        ]
        assert len(ran) <= 1
    finally:
        engine.stop()


def test_kill_reaches_subflows_in_cascade(engine: Engine) -> None:
    engine.deploy(flow(LONG, id="child", namespace="other.ns"))
    parent = engine.deploy(flow("""
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: other.ns
            flowId: child
            wait: true
        """, id="parent", namespace="team.p"))  # fmt: skip
    ex = engine.create_execution(parent)
    deadline = time.monotonic() + 10
    child_id = None
    while child_id is None and time.monotonic() < deadline:
        runs = engine.get_execution(ex.id).task_runs
        child_id = runs[0].extra.get("subflow") if runs else None
        time.sleep(0.02)
    assert child_id
    wait_state(engine, child_id, {"RUNNING"})
    add_switch(engine, "KILL", namespace="team.p")
    assert engine.wait(ex.id, 10).state.current == "KILLED"
    assert wait_state(engine, child_id, TERMINAL).state.current == "KILLED"


def test_restart_under_a_kill_switch_ends_killed_at_once(engine: Engine) -> None:
    f = engine.deploy(flow(LONG, id="r", namespace="team.r"))
    ex = engine.create_execution(f)
    wait_state(engine, ex.id, {"RUNNING"})
    add_switch(engine, "KILL", namespace="team.r")
    assert engine.wait(ex.id, 10).state.current == "KILLED"
    engine.restart(ex.id)
    done = engine.wait(ex.id, 10)
    assert done.state.current == "KILLED"
    assert all(tr.state.current == "KILLED" for tr in done.task_runs)
