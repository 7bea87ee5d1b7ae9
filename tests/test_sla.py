"""Flow SLAs (``sla``): MAX_DURATION and EXECUTION_ASSERTION with FAIL, CANCEL and NONE, and their labels."""

from __future__ import annotations

import pytest
from roost.flow.build import FlowInvalid, parse_flow
from support import flow


def logs_of(engine, ex):
    engine._flush_logs()
    return [r["message"] for r in engine.store.get_logs("main", ex.id)]


@pytest.mark.parametrize(("behavior", "state"), [("FAIL", "FAILED"), ("CANCEL", "CANCELLED")])
def test_max_duration_ends_the_execution(run_flow, roost_engine, states, behavior, state):
    ex = run_flow(
        flow(f"""
        sla:
          - id: maxDuration
            type: MAX_DURATION
            duration: PT0.5S
            behavior: {behavior}
            labels:
              sla: miss
              reason: durationExceeded
        tasks:
          - id: punctual
            type: io.kestra.plugin.core.log.Log
            message: Workflow started, monitoring SLA compliance
          - id: sleepyhead
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT30S
          - id: never_executed_task
            type: io.kestra.plugin.core.log.Log
            message: never
    """),
        timeout=20,
    )
    assert ex.state.current == state
    assert states(ex) == {"punctual": "SUCCESS", "sleepyhead": state}
    labels = ex.label_map()
    assert labels["sla"] == "miss" and labels["reason"] == "durationExceeded"
    messages = logs_of(roost_engine, ex)
    assert any(m.startswith("SLA 'maxDuration' violated: execution duration of PT0.") for m in messages)


def test_max_duration_none_only_labels(run_flow, states):
    ex = run_flow(
        flow("""
        sla:
          - id: slow
            type: MAX_DURATION
            duration: PT0.3S
            behavior: NONE
            labels:
              - key: sla
                value: missed
        tasks:
          - id: sleep
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1S
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: still runs
    """),
        timeout=20,
    )
    assert ex.state.current == "SUCCESS"
    assert states(ex) == {"sleep": "SUCCESS", "after": "SUCCESS"}
    assert ex.label_map()["sla"] == "missed"


def test_an_execution_within_its_max_duration_is_untouched(run_flow):
    ex = run_flow(
        flow("""
        sla:
          - id: generous
            type: MAX_DURATION
            duration: PT1H
            behavior: FAIL
            labels:
              sla: miss
        tasks:
          - id: quick
            type: io.kestra.plugin.core.log.Log
            message: quick
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert "sla" not in ex.label_map()


def test_execution_assertion_fails_when_false(run_flow, roost_engine, states):
    ex = run_flow(
        flow("""
        inputs:
          - id: expected
            type: STRING
            defaults: ok
        sla:
          - id: myOutput
            type: EXECUTION_ASSERTION
            assert: "{{ outputs.check.value == inputs.expected }}"
            behavior: FAIL
            labels:
              sla: violated
        tasks:
          - id: check
            type: io.kestra.plugin.core.debug.Return
            format: not ok
          - id: next
            type: io.kestra.plugin.core.log.Log
            message: never
        finally:
          - id: cleanup
            type: io.kestra.plugin.core.log.Log
            message: never either
        afterExecution:
          - id: notify
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - sleep 0.3
              - echo done
    """)
    )
    assert ex.state.current == "FAILED"
    # as Kestra: the last run not finished (next, just created) takes the SLA's state; it never runs
    assert states(ex) == {"check": "SUCCESS", "next": "FAILED", "notify": "SUCCESS"}
    assert ex.label_map()["sla"] == "violated"
    messages = logs_of(roost_engine, ex)
    assert (
        "SLA 'myOutput' violated: assertion is false: {{ outputs.check.value == inputs.expected }}."
        in messages
    )
    assert any(
        m.startswith("Ignoring SLA 'myOutput' because of the error") for m in messages
    )  # before check ran
    assert "never" not in messages


def test_execution_assertion_that_holds_changes_nothing(run_flow):
    ex = run_flow(
        flow("""
        sla:
          - id: state
            type: EXECUTION_ASSERTION
            assert: "{{ execution.state != 'FAILED' }}"
            behavior: CANCEL
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: a
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: b
    """)
    )
    assert ex.state.current == "SUCCESS"


def test_execution_assertion_cancel_kills_a_task_in_flight(run_flow, states):
    ex = run_flow(
        flow("""
        sla:
          - id: no_slow_branch
            type: EXECUTION_ASSERTION
            assert: "{{ outputs.fast is not defined }}"
            behavior: CANCEL
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: slow
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT30S
              - id: fast
                type: io.kestra.plugin.core.debug.Return
                format: done
    """),
        timeout=20,
    )
    assert ex.state.current == "CANCELLED"
    final = states(ex)
    assert final["fast"] == "SUCCESS"
    assert {final["parallel"], final["slow"]} == {"CANCELLED", "KILLED"}


def test_sla_is_validated():
    with pytest.raises(FlowInvalid) as exc:
        parse_flow(
            flow("""
            sla:
              - id: nope
                type: MAX_DURATION
                behavior: FAIL
              - id: bad_label
                type: EXECUTION_ASSERTION
                assert: "{{ true }}"
                behavior: NONE
                labels:
                  system.readOnly: "true"
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: a
        """)
        )
    text = str(exc.value)
    assert "sla[0]: a MAX_DURATION SLA needs a positive duration" in text
    assert "sla[1]: label 'system.readOnly' is reserved" in text


def test_max_duration_survives_a_restart_of_the_engine(tmp_path):
    import time

    from roost.engine.engine import Engine
    from roost.store.db import Store

    source = flow("""
        sla:
          - id: max
            type: MAX_DURATION
            duration: PT1S
            behavior: FAIL
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
    """)
    engine = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=2).start()
    ex = engine.create_execution(engine.deploy(source))
    deadline = time.monotonic() + 10
    while engine.get_execution(ex.id).state.current != "PAUSED" and time.monotonic() < deadline:
        time.sleep(0.02)
    engine.stop()
    again = Engine(engine.store, tmp_path / "home", workers=2).start()
    try:
        done = again.wait(ex.id, timeout=20)
        assert done.state.current == "FAILED"
        assert done.task_runs[0].state.current == "FAILED"
    finally:
        again.stop()
        engine.store.close()
