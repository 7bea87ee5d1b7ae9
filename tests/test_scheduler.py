"""The scheduler: Schedule (seconds crons, missed dates, backfill, restarts), Flow and polling triggers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from roost.engine.engine import Engine
from roost.engine.scheduler import Scheduler, stable_id
from roost.store.db import Store

NS = "company.sched"


def _flow(flow_id: str, triggers: str, tasks: str | None = None, extra: str = "") -> str:
    tasks = (
        tasks
        or "  - id: hello\n    type: io.kestra.plugin.core.log.Log\n    message: hi {{ trigger.date ?? '' }}\n"
    )
    return f"id: {flow_id}\nnamespace: {NS}\n{extra}tasks:\n{tasks}triggers:\n{triggers}"


EVERY_SECOND = """  - id: every_second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
"""


def _open(home: Path) -> Engine:
    return Engine(Store.sqlite(home), home, workers=4)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    eng = _open(home)
    try:
        yield eng
    finally:
        eng.stop()
        eng.store.close()


def executions(engine: Engine, flow_id: str) -> list[dict[str, Any]]:
    found, _ = engine.store.search_executions("main", namespace=NS, flow_id=flow_id, prefix=False, size=10000)
    return sorted(
        found, key=lambda e: (e["trigger"] or {}).get("variables", {}).get("date") or e["state"]["startDate"]
    )


def dates(engine: Engine, flow_id: str) -> list[datetime]:
    return [
        datetime.fromisoformat(e["trigger"]["variables"]["date"].replace("Z", "+00:00"))
        for e in executions(engine, flow_id)
    ]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def whole_second() -> float:
    """A whole second a little ahead of now, so simulated ticks stay in the future of the real clock."""
    return float(int(time.time()) + 1)


# -- Schedule ------------------------------------------------------------------------------------------
def test_schedule_fires_with_trigger_variables_inputs_and_labels(engine: Engine) -> None:
    engine.deploy(_flow("sched", """  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
    timezone: Europe/Paris
    inputs:
      when: "{{ trigger.date }}"
    labels:
      source: schedule
""", extra="inputs:\n  - id: when\n    type: STRING\n"))  # fmt: skip
    sched = Scheduler(engine)
    t0 = whole_second()
    sched.tick(now=t0)  # first sight: the next date is the next hour, nothing fires
    assert executions(engine, "sched") == []
    state = engine.store.get_trigger("main", NS, "sched", "hourly")
    next_date = state["nextDate"]
    assert next_date > t0 and datetime.fromtimestamp(next_date, UTC).minute == 0
    sched.tick(now=next_date + 0.5)
    [ex] = executions(engine, "sched")
    variables = ex["trigger"]["variables"]
    assert ex["trigger"]["id"] == "hourly" and ex["trigger"]["type"].endswith("trigger.Schedule")
    fired = datetime.fromisoformat(variables["date"])
    assert fired.timestamp() == next_date and fired.utcoffset() in (
        timedelta(hours=1),
        timedelta(hours=2),
    )  # Paris
    assert datetime.fromisoformat(variables["next"]) - fired == timedelta(hours=1)
    assert fired - datetime.fromisoformat(variables["previous"]) == timedelta(hours=1)
    assert ex["inputs"]["when"] == variables["date"]
    assert {"key": "source", "value": "schedule"} in ex["labels"]
    sched.tick(now=next_date + 1.0)  # the same date never fires twice
    assert len(executions(engine, "sched")) == 1
    state = engine.store.get_trigger("main", NS, "sched", "hourly")
    assert state["date"] == variables["date"] and state["nextDate"] == next_date + 3600


def test_seconds_cron_fires_once_per_tick_across_restarts(home: Path) -> None:
    engine = _open(home)
    engine.deploy(_flow("secs", EVERY_SECOND))
    engine.start()
    first = Scheduler(engine, refresh=0.2).start()
    time.sleep(1.6)
    first.stop()
    time.sleep(1.2)  # down: dates pass with no scheduler running
    second = Scheduler(engine, refresh=0.2).start()  # same process, new scheduler
    time.sleep(1.3)
    second.stop()
    engine.stop()
    engine.store.close()
    time.sleep(1.1)
    engine = _open(home)  # a new process over the same database
    third = Scheduler(engine, refresh=0.2).start()
    time.sleep(1.3)
    third.stop()
    try:
        fired = dates(engine, "secs")
        assert len(fired) >= 5
        assert len(set(fired)) == len(fired), "a date fired twice"
        gaps = {int((b - a).total_seconds()) for a, b in zip(fired, fired[1:], strict=False)}
        assert gaps == {1}, f"a date was skipped: {fired}"
        ids = [e["id"] for e in executions(engine, "secs")]
        assert len(set(ids)) == len(ids)
    finally:
        engine.stop()
        engine.store.close()


@pytest.mark.parametrize(("policy", "expected"), [("ALL", 11), ("LAST", 2), ("NONE", 1), (None, 11)])
def test_recover_missed_schedules(engine: Engine, policy: str | None, expected: int) -> None:
    recover = f"    recoverMissedSchedules: {policy}\n" if policy else ""
    engine.deploy(_flow("missed", EVERY_SECOND + recover))
    t0 = whole_second()
    Scheduler(engine).tick(now=t0 - 10.5)  # a first scheduler saw the trigger 10 s before...
    restarted = Scheduler(engine)
    restarted._started_at = t0  # ...and the next one starts at t0: 10 dates were missed
    restarted.tick(now=t0)
    fired = dates(engine, "missed")
    assert len(fired) == expected
    assert fired[-1].timestamp() == t0  # the live date always fires
    if policy == "LAST":
        assert fired[0].timestamp() == t0 - 1
    restarted.tick(now=t0 + 0.5)
    assert len(dates(engine, "missed")) == expected


@pytest.mark.parametrize(("policy", "expected"), [("LAST", 2), ("NONE", 1)])
def test_a_long_downtime_is_not_replayed_piecemeal(engine: Engine, policy: str, expected: int) -> None:
    engine.deploy(_flow("down", EVERY_SECOND + f"    recoverMissedSchedules: {policy}\n"))
    t0 = whole_second()
    Scheduler(engine).tick(now=t0 - 2000.5)  # 2000 dates missed: more than one tick handles
    restarted = Scheduler(engine)
    restarted._started_at = t0
    restarted.tick(now=t0)
    restarted.tick(now=t0 + 0.5)
    assert len(dates(engine, "down")) == expected


def test_late_maximum_delay_skips_old_dates(engine: Engine) -> None:
    engine.deploy(_flow("late", EVERY_SECOND + "    lateMaximumDelay: PT3S\n"))
    t0 = whole_second()
    sched = Scheduler(engine)
    sched.tick(now=t0 - 10.5)
    sched.tick(now=t0)
    fired = dates(engine, "late")
    assert [d.timestamp() for d in fired] == [t0 - 3, t0 - 2, t0 - 1, t0]


def test_backfill_replays_past_dates_once(engine: Engine) -> None:
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    start = now.replace(minute=0) - timedelta(hours=5)
    engine.deploy(_flow("bf", f"""  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
    backfill:
      start: "{start.isoformat()}"
      inputs:
        mode: backfill
""", extra="inputs:\n  - id: mode\n    type: STRING\n    defaults: live\n"))  # fmt: skip
    sched = Scheduler(engine)
    sched.tick(now=now.timestamp())
    fired = dates(engine, "bf")
    assert [d.astimezone(UTC) for d in fired] == [start + timedelta(hours=h) for h in range(6)]
    assert all(e["inputs"]["mode"] == "backfill" for e in executions(engine, "bf"))
    assert "backfill" not in engine.store.get_trigger("main", NS, "bf", "hourly")
    sched.tick(now=now.timestamp() + 1)
    assert len(dates(engine, "bf")) == 6


def test_backfill_written_by_the_api_and_paused(engine: Engine) -> None:
    engine.deploy(_flow("bfapi", """  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
""", extra="inputs:\n  - id: mode\n    type: STRING\n    defaults: live\n"))  # fmt: skip
    sched = Scheduler(engine)
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    sched.tick(now=now.timestamp())
    state = engine.store.get_trigger("main", NS, "bfapi", "hourly")
    data = {k: v for k, v in state.items() if k not in ("disabled", "nextDate")}
    start, end = now.replace(minute=0) - timedelta(hours=3), now.replace(minute=0) - timedelta(hours=1)
    data["backfill"] = {"start": start.isoformat(), "end": end.isoformat(), "paused": True, "inputs": {"mode": "api"},
                        "labels": [{"key": "backfill", "value": "yes"}]}  # fmt: skip
    engine.store.put_trigger("main", NS, "bfapi", "hourly", data, next_date=state["nextDate"])
    sched.tick(now=now.timestamp() + 1)
    assert executions(engine, "bfapi") == []  # paused
    data["backfill"]["paused"] = False
    engine.store.put_trigger("main", NS, "bfapi", "hourly", data, next_date=state["nextDate"])
    sched.tick(now=now.timestamp() + 2)
    exs = executions(engine, "bfapi")
    assert [d.astimezone(UTC) for d in dates(engine, "bfapi")] == [start, start + timedelta(hours=1), end]
    assert all(
        e["inputs"]["mode"] == "api" and {"key": "backfill", "value": "yes"} in e["labels"] for e in exs
    )
    assert "backfill" not in engine.store.get_trigger("main", NS, "bfapi", "hourly")


def test_disabled_triggers_and_flows_do_not_fire_nor_replay(engine: Engine) -> None:
    engine.deploy(_flow("dis", EVERY_SECOND))
    t0 = whole_second()
    sched = Scheduler(engine)
    sched.tick(now=t0 - 0.5)
    state = engine.store.get_trigger("main", NS, "dis", "every_second")
    data = {k: v for k, v in state.items() if k not in ("disabled", "nextDate")}
    engine.store.put_trigger(
        "main", NS, "dis", "every_second", data, next_date=state["nextDate"], disabled=True
    )
    sched.tick(now=t0 + 5)
    assert executions(engine, "dis") == []
    assert engine.store.get_trigger("main", NS, "dis", "every_second")["disabled"] is True
    state = engine.store.get_trigger("main", NS, "dis", "every_second")
    engine.store.put_trigger(
        "main", NS, "dis", "every_second", data, next_date=state["nextDate"], disabled=False
    )
    sched.tick(now=t0 + 5.5)
    assert executions(engine, "dis") == []  # the dates passed while disabled are not replayed
    sched.tick(now=t0 + 6)
    assert [d.timestamp() for d in dates(engine, "dis")] == [t0 + 6]
    # a trigger disabled in the YAML, and a disabled flow, start nothing
    engine.deploy(_flow("dis", EVERY_SECOND + "    disabled: true\n"))
    sched.tick(now=t0 + 8)
    engine.deploy(_flow("dis", EVERY_SECOND, extra="disabled: true\n"))
    sched.tick(now=t0 + 10)
    assert len(executions(engine, "dis")) == 1


def test_schedule_conditions(engine: Engine) -> None:
    other_day = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
    t0 = whole_second()
    today = other_day[datetime.fromtimestamp(t0, UTC).weekday()]
    tomorrow = other_day[(datetime.fromtimestamp(t0, UTC).weekday() + 1) % 7]
    for flow_id, day in (("cond_yes", today), ("cond_no", tomorrow)):
        engine.deploy(_flow(flow_id, EVERY_SECOND + f"""    conditions:
      - type: io.kestra.plugin.core.condition.DayWeek
        dayOfWeek: {day}
"""))  # fmt: skip
    sched = Scheduler(engine)
    sched.tick(now=t0 - 0.5)
    sched.tick(now=t0)
    assert len(executions(engine, "cond_yes")) == 1
    assert executions(engine, "cond_no") == []


def test_an_existing_execution_id_is_never_created_twice(engine: Engine) -> None:
    """A crash after starting an execution but before saving the trigger state does not fire twice."""
    engine.deploy(_flow("crash", EVERY_SECOND))
    t0 = whole_second()
    sched = Scheduler(engine)
    sched.tick(now=t0 - 0.5)
    before = engine.store.get_trigger("main", NS, "crash", "every_second")
    sched.tick(now=t0)
    [ex] = executions(engine, "crash")
    assert ex["id"] == stable_id("main", NS, "crash", "every_second", ex["trigger"]["variables"]["date"], "")
    data = {k: v for k, v in before.items() if k not in ("disabled", "nextDate")}
    engine.store.put_trigger(
        "main", NS, "crash", "every_second", data, next_date=before["nextDate"]
    )  # state lost
    Scheduler(engine).tick(now=t0 + 0.2)
    assert len(executions(engine, "crash")) == 1


def test_cron_change_restarts_from_now(engine: Engine) -> None:
    engine.deploy(_flow("change", EVERY_SECOND))
    t0 = whole_second()
    sched = Scheduler(engine)
    sched.tick(now=t0 - 0.5)
    engine.deploy(_flow("change", EVERY_SECOND.replace('"* * * * * *"', '"*/5 * * * * *"')))
    sched.tick(now=t0 + 3)
    state = engine.store.get_trigger("main", NS, "change", "every_second")
    assert executions(engine, "change") == []
    assert state["nextDate"] % 5 == 0 and state["nextDate"] > t0 + 3


# -- Flow triggers ----------------------------------------------------------------------------------------
UPSTREAM = """id: {id}
namespace: company.up
outputs:
  - id: v
    type: STRING
    value: "{{{{ outputs.ret.value }}}}"
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{value}"
{fail}"""

FAIL = "  - id: boom\n    type: io.kestra.plugin.core.execution.Fail\n"


@pytest.fixture
def running(engine: Engine) -> Iterator[tuple[Engine, Scheduler]]:
    engine.start()
    sched = Scheduler(engine, refresh=0.1).start()
    try:
        yield engine, sched
    finally:
        sched.stop()


def test_flow_trigger_with_preconditions_and_trigger_outputs(running: tuple[Engine, Scheduler]) -> None:
    engine, _ = running
    up_a = engine.deploy(UPSTREAM.format(id="a", value="from-a", fail=""))
    up_b = engine.deploy(UPSTREAM.format(id="b", value="from-b", fail=""))
    engine.deploy(_flow("after_a", """  - id: on_a
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      upstream: "{{ trigger.outputs.v }}"
    preconditions:
      id: a_done
      flows:
        - namespace: company.up
          flowId: a
          states: [SUCCESS]
""", extra="inputs:\n  - id: upstream\n    type: STRING\n"))  # fmt: skip
    engine.deploy(_flow("after_both", """  - id: on_both
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: both
      timeWindow:
        type: SLIDING_WINDOW
        window: PT1H
      flows:
        - namespace: company.up
          flowId: a
        - namespace: company.up
          flowId: b
"""))  # fmt: skip
    time.sleep(0.3)  # the scheduler picks up the new flows
    first_a = engine.run(up_a, timeout=30)
    [after_a] = wait_for(lambda: executions(engine, "after_a"))
    assert after_a["inputs"]["upstream"] == "from-a"
    variables = after_a["trigger"]["variables"]
    assert (
        variables["executionId"] == first_a.id
        and variables["flowId"] == "a"
        and variables["state"] == "SUCCESS"
    )
    assert after_a["trigger"]["type"].endswith("trigger.Flow")
    time.sleep(0.4)
    assert executions(engine, "after_both") == []  # b has not run yet
    engine.run(up_b, timeout=30)
    wait_for(lambda: len(executions(engine, "after_both")) == 1)
    engine.run(up_a, timeout=30)  # resetOnSuccess: a alone is not enough again
    wait_for(lambda: len(executions(engine, "after_a")) == 2)
    time.sleep(0.4)
    assert len(executions(engine, "after_both")) == 1
    state = engine.store.get_trigger("main", NS, "after_both", "on_both")
    assert list(state["preconditions"]["both"]["results"]) == ["flow_0:company.up.a"]


def test_flow_trigger_states_and_conditions(running: tuple[Engine, Scheduler]) -> None:
    engine, _ = running
    ok = engine.deploy(UPSTREAM.format(id="ok", value="x", fail=""))
    bad = engine.deploy(UPSTREAM.format(id="bad", value="x", fail=FAIL))
    engine.deploy(_flow("alert", """  - id: on_failure
    type: io.kestra.plugin.core.trigger.Flow
    states: [FAILED, WARNING]
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionNamespace
        namespace: company
        comparison: PREFIX
      - type: io.kestra.plugin.core.condition.Not
        conditions:
          - type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: company.up
            flowId: ok
"""))  # fmt: skip
    engine.deploy(_flow("status", """  - id: on_success
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: company.up
        flowId: ok
"""))  # fmt: skip
    time.sleep(0.3)
    assert engine.run(bad, timeout=30).state.current == "FAILED"
    assert engine.run(ok, timeout=30).state.current == "SUCCESS"
    wait_for(lambda: executions(engine, "alert") and executions(engine, "status"))
    time.sleep(0.4)
    [alert] = executions(engine, "alert")
    assert alert["trigger"]["variables"]["flowId"] == "bad"
    [status] = executions(engine, "status")
    assert status["trigger"]["variables"]["flowId"] == "ok"


def test_a_separate_scheduler_sees_executions_end_through_the_store(home: Path) -> None:
    """A scheduler with no executor in its process (the ``scheduler`` component) reads ended executions from the store."""
    executor = _open(home)
    scheduler_engine = Engine(executor.store, home, workers=1)  # never started: no executor, no callbacks
    try:
        up = executor.deploy(UPSTREAM.format(id="a", value="v", fail=""))
        executor.deploy(_flow("downstream", """  - id: on_a
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: a_done
      flows:
        - namespace: company.up
          flowId: a
"""))  # fmt: skip
        executor.start()
        sched = Scheduler(scheduler_engine, refresh=0.1)
        sched.watch_interval = 0.1
        sched.start()
        try:
            time.sleep(0.3)
            first = executor.run(up, timeout=30)
            [down] = wait_for(lambda: executions(executor, "downstream"))
            assert down["trigger"]["variables"]["executionId"] == first.id
            time.sleep(0.5)
            assert (
                len(executions(executor, "downstream")) == 1
            )  # the overlap of the watermark fires nothing twice
        finally:
            sched.stop()
    finally:
        executor.stop()
        executor.store.close()


def test_stop_after_disables_the_trigger(running: tuple[Engine, Scheduler]) -> None:
    engine, _ = running
    engine.deploy(_flow("stopper", EVERY_SECOND + "    stopAfter: [FAILED]\n", tasks=FAIL))
    wait_for(lambda: (engine.store.get_trigger("main", NS, "stopper", "every_second") or {}).get("disabled"))
    count = len(executions(engine, "stopper"))
    time.sleep(1.5)
    assert len(executions(engine, "stopper")) == count
    assert count >= 1


# -- polling triggers ---------------------------------------------------------------------------------------
def test_freshness_trigger_fires_once_per_interval_while_stale(engine: Engine) -> None:
    from roost.assets.model import Asset

    asset = Asset(id="orders", type="io.kestra.plugin.ee.assets.Table", namespace="company.data")
    engine.deploy(_flow("fresh", """  - id: stale
    type: io.kestra.plugin.ee.assets.FreshnessTrigger
    maxStaleness: PT1S
    interval: PT0.5S
    namespace: company.data
""", tasks="  - id: log\n    type: io.kestra.plugin.core.log.Log\n    message: \"{{ trigger.assets | length }} stale\"\n"))  # fmt: skip
    engine.assets.upsert("main", asset, "company.data")
    updated = time.time()
    time.sleep(0.25)
    sched = Scheduler(
        engine, refresh=0.1
    ).start()  # evaluations at asset ages 0.25, 0.75, 1.25, 1.75, 2.25...
    try:
        time.sleep(max(0.0, updated + 2.5 - time.time()))
        stale = executions(engine, "fresh")
        engine.assets.upsert(
            "main", asset, "company.data"
        )  # fresh again: ages 0.25, 0.75 at the next evaluations
        time.sleep(1.0)
        after = executions(engine, "fresh")
    finally:
        sched.stop()
    assert len(stale) == 3, [e["state"]["startDate"] for e in stale]
    assert len(after) == 3
    starts = sorted(datetime.fromisoformat(e["state"]["startDate"].replace("Z", "+00:00")) for e in stale)
    assert all((b - a).total_seconds() >= 0.4 for a, b in zip(starts, starts[1:], strict=False))
    variables = stale[0]["trigger"]["variables"]
    assert stale[0]["trigger"]["id"] == "stale"
    assert [a["id"] for a in variables["assets"]] == ["orders"] and variables["assets"][0][
        "namespace"
    ] == "company.data"


# -- polling triggers with state ---------------------------------------------------------------------------
class _Crash(Exception):
    pass


def _counting_plugin(fail: list[bool]) -> Any:
    """A throwaway polling trigger whose cursor (``ctx.state``) counts its evaluations."""
    from roost import PollingTrigger, hookimpl

    class Counter(PollingTrigger, type="io.test.Counter"):
        """Fires every evaluation with the count so far; fails while ``fail[0]`` is true."""

        def evaluate(self, ctx: Any) -> dict[str, Any]:
            n = ctx.state.get("n", 0) + 1
            ctx.state["n"] = n
            if fail[0]:
                raise RuntimeError("source down")
            return {"n": n}

    class Plugin:
        @hookimpl
        def register_trigger_types(self, register: Any) -> None:
            register(Counter)

    return Plugin()


COUNTER = "  - id: count\n    type: io.test.Counter\n    interval: PT10S\n"


def _counts(engine: Engine) -> list[int]:
    return sorted(e["trigger"]["variables"]["n"] for e in executions(engine, "counter"))


def test_polling_trigger_state_is_kept_across_restarts_and_failed_evaluations(home: Path) -> None:
    from roost.testing import registered

    fail = [False]
    with registered(_counting_plugin(fail), "counter"):
        engine = _open(home)
        engine.deploy(_flow("counter", COUNTER))
        t0 = whole_second()
        Scheduler(engine).tick(now=t0)
        Scheduler(engine).tick(now=t0 + 10)  # another scheduler over the same store
        fail[0] = True
        Scheduler(engine).tick(now=t0 + 20)  # the state it changed before failing is dropped
        fail[0] = False
        engine.store.close()
        engine = _open(home)  # a new process
        Scheduler(engine).tick(now=t0 + 30)
        try:
            assert _counts(engine) == [1, 2, 3]
            state = engine.store.get_trigger("main", NS, "counter", "count")
            assert state["state"] == {"n": 3} and not state.get("pending")
            from fastapi.testclient import TestClient
            from roost.server import ServerState, create_app

            api = TestClient(create_app(ServerState(engine)))
            [context] = api.get(f"/api/v1/main/triggers/{NS}/counter").json()["results"]
            assert context["triggerId"] == "count" and context["executionId"]
            assert "state" not in context and "pending" not in context  # bookkeeping stays internal
        finally:
            engine.store.close()


@pytest.mark.parametrize("where", ["before starting", "after starting"])
def test_polling_decision_fires_exactly_once_across_a_crash(home: Path, where: str) -> None:
    from roost.testing import registered

    class Crashing(Scheduler):
        def _start_pending(
            self, entry: Any, trig: Any, data: dict[str, Any], next_date: float | None
        ) -> None:
            if where == "before starting" and data.get("pending"):
                raise _Crash(where)
            super()._start_pending(entry, trig, data, next_date)

        def _save(self, entry: Any, trig: Any, data: dict[str, Any], next_date: float | None) -> None:
            if where == "after starting" and "executionId" in data and "pending" not in data:
                raise _Crash(where)
            super()._save(entry, trig, data, next_date)

    with registered(_counting_plugin([False]), "counter"):
        engine = _open(home)
        engine.deploy(_flow("counter", COUNTER))
        t0 = whole_second()
        Crashing(engine).tick(now=t0)  # the tick logs the crash; a real process would be dead here
        assert len(engine.store.get_trigger("main", NS, "counter", "count")["pending"]) == 1
        engine.store.close()
        engine = _open(home)
        try:
            restarted = Scheduler(engine)
            restarted.tick(now=t0 + 1)  # not due, but the saved decision starts at once
            restarted.tick(now=t0 + 2)
            assert _counts(engine) == [1]
            restarted.tick(now=t0 + 10)
            assert _counts(engine) == [1, 2]
        finally:
            engine.store.close()
