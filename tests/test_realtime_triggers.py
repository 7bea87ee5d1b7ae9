"""Realtime triggers (one listening thread per trigger) and generator polling triggers (acknowledge after start)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from roost import PollingTrigger, RealtimeTrigger, hookimpl
from roost.engine.engine import Engine
from roost.engine.scheduler import Scheduler
from roost.store.db import Store
from roost.testing import registered

NS = "company.realtime"
EVENTS: queue.Queue[str] = queue.Queue()
ACKED: list[tuple[str, str | None]] = []  # (event, execution id seen when acknowledging)
LISTENING: list[int] = []  # revisions whose listener is currently open
FAILURES = {"left": 0}


class QueueTrigger(RealtimeTrigger, type="io.roost.test.QueueTrigger"):
    """Start one execution per event of an in-process queue (a stand-in broker)."""

    tag: str = "t"
    """Copied into each execution's trigger variables."""

    def listen(self, ctx: Any) -> Iterator[dict[str, Any] | None]:
        if FAILURES["left"] > 0:
            FAILURES["left"] -= 1
            raise RuntimeError("broker unreachable")
        LISTENING.append(ctx.flow.revision)
        try:
            while True:
                try:
                    event = EVENTS.get(timeout=0.1)
                except queue.Empty:
                    yield None
                    continue
                execution = yield {"event": event, "tag": self.tag, "revision": ctx.flow.revision}
                if execution is not None and ctx.engine.get_execution(execution.id) is not None:
                    ACKED.append((event, execution.id))  # acknowledged only once the execution exists
                else:
                    EVENTS.put(event)  # not started: give it back
        finally:
            LISTENING.remove(ctx.flow.revision)


class BatchTrigger(PollingTrigger, type="io.roost.test.BatchTrigger"):
    """Store a batch file for the next execution and acknowledge it once that execution exists."""

    def evaluate(self, ctx: Any) -> Iterator[dict[str, Any]]:
        path = Path(ctx.runtime.work_root or ".") / f"batch-{time.time_ns()}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a\nb\n")
        uri = ctx.put_file(path, "batch.txt")
        path.unlink()
        execution = yield {"uri": uri, "count": 2}
        ACKED.append(("batch", execution.id if execution is not None else None))


class TestPlugin:
    @hookimpl
    def register_trigger_types(self, register: Callable[..., None]) -> None:
        register(QueueTrigger, BatchTrigger)


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Engine, Scheduler]]:
    while not EVENTS.empty():
        EVENTS.get()
    ACKED.clear()
    LISTENING.clear()
    FAILURES["left"] = 0
    with registered(TestPlugin(), name="realtime-test"):
        engine = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=2)
        engine.start()
        sched = Scheduler(engine, refresh=0.1).start()
        try:
            yield engine, sched
        finally:
            sched.stop()
            engine.stop()
            engine.store.close()


def _flow(trigger: str, flow_id: str = "listener") -> str:
    return f"""id: {flow_id}
namespace: {NS}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger }}}}"
triggers:
{trigger}"""


QUEUE = """  - id: queue
    type: io.roost.test.QueueTrigger
    tag: {tag}
"""


def executions(engine: Engine, flow_id: str = "listener") -> list[dict[str, Any]]:
    found, _ = engine.store.search_executions("main", namespace=NS, flow_id=flow_id, prefix=False, size=1000)
    return found


def test_one_execution_per_event_acknowledged_after_it_exists(running: tuple[Engine, Scheduler]) -> None:
    engine, _ = running
    engine.deploy(_flow(QUEUE.format(tag="first")))
    wait_for(lambda: LISTENING)
    for event in ("e1", "e2", "e3"):
        EVENTS.put(event)
    wait_for(lambda: len(ACKED) == 3)
    found = executions(engine)
    assert sorted(e["trigger"]["variables"]["event"] for e in found) == ["e1", "e2", "e3"]
    assert {e["trigger"]["type"] for e in found} == {"io.roost.test.QueueTrigger"}
    assert {e["id"] for e in found} == {ex_id for _, ex_id in ACKED}
    assert len(LISTENING) == 1  # one thread per trigger


def test_a_new_revision_restarts_the_listener_and_disable_stops_it(running: tuple[Engine, Scheduler]) -> None:
    engine, _ = running
    engine.deploy(_flow(QUEUE.format(tag="first")))
    wait_for(lambda: LISTENING == [1])
    engine.deploy(_flow(QUEUE.format(tag="second")))
    wait_for(lambda: LISTENING == [2])
    EVENTS.put("after-update")
    wait_for(lambda: ACKED)
    (found,) = executions(engine)
    assert found["trigger"]["variables"]["tag"] == "second"
    engine.store.put_trigger("main", NS, "listener", "queue", {}, next_date=None, disabled=True)
    wait_for(lambda: not LISTENING)
    EVENTS.put("while-disabled")
    time.sleep(0.5)
    assert len(executions(engine)) == 1
    engine.store.put_trigger("main", NS, "listener", "queue", {}, next_date=None, disabled=False)
    wait_for(lambda: LISTENING == [2])
    wait_for(lambda: len(executions(engine)) == 2)  # the event waited in the queue
    engine.store.delete_flow("main", NS, "listener")
    wait_for(lambda: not LISTENING)


def test_a_failing_listener_is_started_again(running: tuple[Engine, Scheduler]) -> None:
    engine, _ = running
    FAILURES["left"] = 1
    engine.deploy(_flow(QUEUE.format(tag="x")))
    wait_for(lambda: LISTENING, timeout=10)  # after the 1 s backoff
    EVENTS.put("late")
    wait_for(lambda: ACKED)


def test_stopping_the_scheduler_closes_every_listener(tmp_path: Path) -> None:
    with registered(TestPlugin(), name="realtime-test"):
        LISTENING.clear()
        engine = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=1)
        sched = Scheduler(engine, refresh=0.1).start()
        try:
            engine.deploy(_flow(QUEUE.format(tag="x")))
            wait_for(lambda: LISTENING)
        finally:
            sched.stop()
            engine.store.close()
        assert not LISTENING
        assert not [t for t in threading.enumerate() if t.name.startswith("roost-realtime-")]


def test_generator_polling_stores_files_with_the_execution_and_acknowledges_after(
    running: tuple[Engine, Scheduler],
) -> None:
    engine, _ = running
    engine.deploy(_flow("  - id: batch\n    type: io.roost.test.BatchTrigger\n    interval: PT1H\n", "batch"))
    wait_for(lambda: ACKED)
    (found,) = executions(engine, "batch")
    assert [("batch", found["id"])] == ACKED
    uri = found["trigger"]["variables"]["uri"]
    assert f"/executions/{found['id']}/trigger/batch/" in uri
    assert engine.runtime("main").storage.get(uri) == b"a\nb\n"


def test_generator_polling_refused_by_conditions_leaves_nothing(running: tuple[Engine, Scheduler]) -> None:
    engine, _ = running
    never = """  - id: batch
    type: io.roost.test.BatchTrigger
    interval: PT1H
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ 1 == 2 }}"
"""
    engine.deploy(_flow(never, "refused"))
    wait_for(lambda: ACKED)
    assert ACKED == [("batch", None)]
    assert executions(engine, "refused") == []
    flow_dir = Path(engine.runtime("main").storage.root) / NS.replace(".", "/") / "refused"
    assert not [p for p in flow_dir.rglob("*") if p.is_file()]  # the batch file was removed


def test_interval_is_a_duration() -> None:
    assert BatchTrigger(id="b", type=BatchTrigger.type_id).interval == timedelta(minutes=1)
