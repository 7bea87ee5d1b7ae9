"""Kestra 1.3 core types: LoopUntil (WaitFor), log.Fetch, execution.Labels and Resume, trigger.Toggle,
http.Trigger, Pause with its deprecated tasks, and the deprecated types Kestra 1.3 still runs."""

from __future__ import annotations

import json
import time

from roost.testing.http import FakeHttpServer
from support import flow


def read(engine, uri: str) -> bytes:
    return engine.runtime("main").storage.get(uri)


# -- LoopUntil / WaitFor --------------------------------------------------------------------------------
def test_loop_until_runs_until_the_condition_holds(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.WaitFor
            condition: "{{ outputs.return.value == '4' }}"
            checkFrequency:
              interval: PT0.01S
            tasks:
              - id: return
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.loop.iterationCount }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["loop"] == {"iterationCount": 4}
    assert ex.outputs_tree["return"] == {"value": "4"}
    returns = [tr for tr in ex.task_runs if tr.task_id == "return"]
    assert [tr.iteration for tr in returns] == [1, 2, 3, 4]


def test_loop_until_max_iterations(run_flow, states):
    source = """
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.LoopUntil
            condition: "{{ false }}"
            failOnMaxReached: FAIL_FLAG
            checkFrequency:
              interval: PT0.01S
              maxIterations: 3
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: "iteration {{ outputs.loop.iterationCount }}"
    """
    ok = run_flow(flow(source.replace("FAIL_FLAG", "false")))
    assert ok.state.current == "SUCCESS"
    assert len([tr for tr in ok.task_runs if tr.task_id == "log"]) == 3
    failed = run_flow(flow(source.replace("FAIL_FLAG", "true"), id="fails"))
    assert failed.state.current == "FAILED"
    assert states(failed)["loop"] == "FAILED"


def test_loop_until_max_duration_and_a_failing_iteration(run_flow, states):
    slow = run_flow(
        flow("""
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.LoopUntil
            condition: "{{ false }}"
            checkFrequency:
              interval: PT0.1S
              maxDuration: PT0.3S
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: tick
    """)
    )
    assert slow.state.current == "SUCCESS"  # maxDuration ends the loop (between iterations, as Kestra)
    assert 1 <= len([tr for tr in slow.task_runs if tr.task_id == "log"]) <= 5
    broken = run_flow(
        flow(
            """
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.LoopUntil
            condition: "{{ false }}"
            checkFrequency:
              interval: PT0.01S
            tasks:
              - id: fail
                type: io.kestra.plugin.core.execution.Fail
            errors:
              - id: handled
                type: io.kestra.plugin.core.log.Log
                message: handled
    """,
            id="broken",
        )
    )
    assert broken.state.current == "FAILED"
    assert states(broken) == {"loop": "FAILED", "fail": "FAILED", "handled": "SUCCESS"}


# -- EachSequential, EachParallel, Echo, LocalFiles, state --------------------------------------------------
def test_each_sequential_and_each_parallel(run_flow, states):
    ex = run_flow(
        flow(
            """
        tasks:
          - id: seq
            type: io.kestra.core.tasks.flows.EachSequential
            value: ["a", "b"]
            tasks:
              - id: s
                type: io.kestra.plugin.core.debug.Echo
                format: "{{ taskrun.value }}"
          - id: par
            type: io.kestra.plugin.core.flow.EachParallel
            value: '["x", "y", "x"]'
            tasks:
              - id: p1
                type: io.kestra.plugin.core.debug.Return
                format: "1-{{ taskrun.value }}"
              - id: p2
                type: io.kestra.plugin.core.debug.Return
                format: "2-{{ taskrun.value }}"
    """.replace("value:", "values:")
        )
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["p2"] == {"x": {"value": "2-x"}, "y": {"value": "2-y"}}
    assert sorted(tr.value for tr in ex.task_runs if tr.task_id == "s") == ["a", "b"]


def test_local_files_inside_a_working_directory(run_flow, roost_engine):
    ex = run_flow(
        flow("""
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: inputs
                type: io.kestra.core.tasks.storages.LocalFiles
                inputs:
                  data/in.txt: "hello {{ flow.id }}"
              - id: shell
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - tr a-z A-Z < data/in.txt > data/out.txt
              - id: outputs
                type: io.kestra.plugin.core.storage.LocalFiles
                outputs:
                  - data/out.txt
    """)
    )
    assert ex.state.current == "SUCCESS", [tr.extra for tr in ex.task_runs]
    uri = ex.outputs_tree["outputs"]["uris"]["data/out.txt"]
    assert read(roost_engine, uri) == b"HELLO TEST"


def test_state_tasks(run_flow, roost_engine):
    ex = run_flow(
        flow("""
        tasks:
          - id: set
            type: io.kestra.core.tasks.states.Set
            data:
              count: 1
          - id: merge
            type: io.kestra.plugin.core.state.Set
            data:
              other: "{{ outputs.set.count }}"
          - id: get
            type: io.kestra.plugin.core.state.Get
          - id: delete
            type: io.kestra.plugin.core.state.Delete
          - id: gone
            type: io.kestra.plugin.core.state.Get
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["get"] == {"count": 2, "data": {"count": 1, "other": 1}}
    assert ex.outputs_tree["delete"] == {"deleted": True}
    assert ex.outputs_tree["gone"] == {"count": 0, "data": {}}
    assert ex.outputs_tree["set"]["key"] == "test_states_tasks-states_default"


# -- log.Log ----------------------------------------------------------------------------------------------
def test_log_with_a_list_of_messages_writes_one_line_each_rendered(run_flow, roost_engine):
    ex = run_flow(
        flow("""
        tasks:
          - id: several
            type: io.kestra.plugin.core.log.Log
            message:
              - "sum {{ 1 + 1 }}"
              - "{{ execution.id }}"
              - plain
          - id: as_text
            type: io.kestra.plugin.core.log.Log
            message: "{{ [1, 2] }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    lines = [r["message"] for r in roost_engine.store.get_logs("main", ex.id)]
    assert lines == ["sum 2", ex.id, "plain", "[1,2]"]


# -- log.Fetch ----------------------------------------------------------------------------------------------
def test_log_fetch_stores_the_lines_of_this_execution(run_flow, roost_engine):
    ex = run_flow(
        flow("""
        tasks:
          - id: noisy
            type: io.kestra.plugin.core.log.Log
            message: ["first", "second"]
          - id: quiet
            type: io.kestra.plugin.core.log.Log
            level: DEBUG
            message: hidden
          - id: warn
            type: io.kestra.plugin.core.log.Log
            level: WARN
            message: careful
          - id: all
            type: io.kestra.plugin.core.log.Fetch
          - id: warnings
            type: io.kestra.plugin.core.log.Fetch
            level: WARN
          - id: one_task
            type: io.kestra.plugin.core.log.Fetch
            executionId: "{{ execution.id }}"
            tasksId: ["noisy"]
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["all"]["size"] == 3
    from amazon.ion import simpleion

    lines = list(
        simpleion.loads(read(roost_engine, ex.outputs_tree["all"]["uri"]).decode(), single_value=False)
    )
    assert [line["message"] for line in lines] == ["first", "second", "careful"]
    assert lines[0]["taskId"] == "noisy" and lines[0]["executionId"] == ex.id
    assert ex.outputs_tree["warnings"]["size"] == 1
    assert ex.outputs_tree["one_task"]["size"] == 2


# -- execution.Labels ---------------------------------------------------------------------------------------
def test_labels_task_adds_and_overwrites(run_flow, states):
    ex = run_flow(
        flow("""
        labels:
          env: dev
        tasks:
          - id: by_map
            type: io.kestra.plugin.core.execution.Labels
            labels:
              customerId: "{{ 1 + 41 }}"
              env: prod
          - id: by_list
            type: io.kestra.plugin.core.execution.Labels
            labels:
              - key: order_id
                value: "A-{{ labels.customerId }}"
          - id: read
            type: io.kestra.plugin.core.debug.Return
            format: "{{ labels.env }}/{{ labels.order_id }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    labels = ex.label_map()
    assert labels["customerId"] == "42" and labels["env"] == "prod" and labels["order_id"] == "A-42"
    assert ex.outputs_tree["read"]["value"] == "prod/A-42"


def test_labels_task_refuses_system_labels(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: sneaky
            type: io.kestra.plugin.core.execution.Labels
            labels: '{"system.correlationId": "x"}'
    """)
    )
    assert ex.state.current == "FAILED"
    assert "System labels can only be set by Kestra itself" in ex.task_runs[0].extra["error"]
    assert ex.label_map()["system.correlationId"] == ex.id


# -- execution.Resume ---------------------------------------------------------------------------------------
def test_resume_task_resumes_a_paused_branch_of_the_same_execution(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: wait
                type: io.kestra.plugin.core.flow.Pause
              - id: seq
                type: io.kestra.plugin.core.flow.Sequential
                tasks:
                  - id: settle
                    type: io.kestra.plugin.core.flow.Sleep
                    duration: PT0.2S
                  - id: resume
                    type: io.kestra.plugin.core.execution.Resume
                    inputs:
                      approved: true
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.wait.onResume.approved }}"
    """),
        timeout=20,
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["after"]["value"] == "true"
    assert ex.outputs_tree["resume"]["resumedExecution"]["id"] == ex.id


def test_resume_task_resumes_another_execution(roost_engine):
    paused_flow = roost_engine.deploy(
        flow(
            """
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
    """,
            id="paused",
        )
    )
    paused = roost_engine.create_execution(paused_flow)
    deadline = time.monotonic() + 10
    while roost_engine.get_execution(paused.id).state.current != "PAUSED" and time.monotonic() < deadline:
        time.sleep(0.02)
    resumer = roost_engine.deploy(
        flow(
            """
        inputs:
          - id: target
            type: STRING
        tasks:
          - id: resume
            type: io.kestra.plugin.core.execution.Resume
            namespace: company.team
            flowId: paused
            executionId: "{{ inputs.target }}"
          - id: again
            type: io.kestra.plugin.core.execution.Resume
            namespace: company.team
            flowId: paused
            executionId: "{{ inputs.target }}"
            allowFailure: true
    """,
            id="resumer",
        )
    )
    ex = roost_engine.run(resumer, {"target": paused.id}, timeout=20)
    assert roost_engine.wait(paused.id, timeout=20).state.current == "SUCCESS"
    assert ex.task_runs[0].state.current == "SUCCESS"
    # resuming what is no longer paused fails (here allowed): Kestra refuses it too
    assert ex.task_runs[1].state.current == "WARNING"


# -- Pause ------------------------------------------------------------------------------------------------
def test_pause_with_tasks_runs_them_after_the_pause(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            delay: PT0.1S
            behavior: WARN
            tasks:
              - id: inside
                type: io.kestra.plugin.core.log.Log
                message: after the pause
          - id: next
            type: io.kestra.plugin.core.log.Log
            message: next
    """)
    )
    assert [tr.task_id for tr in ex.task_runs] == ["pause", "inside", "next"]
    assert states(ex) == {"pause": "WARNING", "inside": "SUCCESS", "next": "SUCCESS"}
    assert ex.state.current == "WARNING"


def test_pause_timeout_fails_it(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            timeout: PT0.1S
        errors:
          - id: handled
            type: io.kestra.plugin.core.log.Log
            message: handled
    """)
    )
    assert ex.state.current == "FAILED"
    assert states(ex) == {"pause": "FAILED", "handled": "SUCCESS"}


def test_pause_duration_as_an_expression(run_flow):
    ex = run_flow(
        flow("""
        inputs:
          - id: wait
            type: STRING
            defaults: PT0.1S
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            pauseDuration: "{{ inputs.wait }}"
            behavior: "{{ 'WARN' }}"
    """)
    )
    assert ex.state.current == "WARNING"


# -- trigger.Toggle -----------------------------------------------------------------------------------------
def test_toggle_disables_and_enables_a_trigger(roost_engine):
    target = roost_engine.deploy(
        flow(
            """
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: hi
        triggers:
          - id: schedule
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 0 1 1 *"
    """,
            id="target",
        )
    )
    toggler = """
        tasks:
          - id: toggle
            type: io.kestra.core.tasks.trigger.Toggle
            flowId: target
            trigger: TRIGGER
            enabled: ENABLED
    """
    off = roost_engine.run(
        roost_engine.deploy(
            flow(toggler.replace("TRIGGER", "schedule").replace("ENABLED", "false"), id="off")
        )
    )
    assert off.state.current == "SUCCESS"
    assert roost_engine.store.get_trigger("main", target.namespace, "target", "schedule")["disabled"] is True
    on = roost_engine.run(
        roost_engine.deploy(flow(toggler.replace("TRIGGER", "schedule").replace("ENABLED", "true"), id="on"))
    )
    assert on.state.current == "SUCCESS"
    assert roost_engine.store.get_trigger("main", target.namespace, "target", "schedule")["disabled"] is False
    missing = roost_engine.run(
        roost_engine.deploy(flow(toggler.replace("TRIGGER", "nope").replace("ENABLED", "true"), id="missing"))
    )
    assert missing.state.current == "FAILED"
    assert (
        "Unable to find trigger nope for the flow company.team.target" in missing.task_runs[0].extra["error"]
    )


# -- http.Trigger -------------------------------------------------------------------------------------------
class Prices(FakeHttpServer):
    def __init__(self) -> None:
        super().__init__()
        self.prices = [150, 120, 100]

    def answer(self, request):
        price = self.prices.pop(0) if len(self.prices) > 1 else self.prices[0]
        return 200, {"Content-Type": "application/json"}, json.dumps({"price": price}).encode()


def test_http_trigger_starts_an_execution_when_the_response_condition_holds(roost_engine):
    from roost.engine.scheduler import Scheduler

    fake = Prices().start()
    try:
        roost_engine.deploy(
            flow(f"""
            tasks:
              - id: log
                type: io.kestra.plugin.core.debug.Return
                format: "{{{{ json(trigger.body).price }}}}|{{{{ trigger.code }}}}"
            triggers:
              - id: http
                type: io.kestra.plugin.fs.http.Trigger
                uri: {fake.url}/products/1
                responseCondition: "{{{{ json(response.body).price <= 110 }}}}"
                interval: PT0.01S
        """)
        )
        scheduler = Scheduler(roost_engine)
        start = time.time()
        for i in range(1, 4):  # three evaluations, one interval apart at least: 150, 120, then 100 starts one
            scheduler.tick(now=start + i)
        found, _ = roost_engine.store.search_executions("main", flow_id="test")
        assert len(found) == 1
        ex = roost_engine.wait(found[0]["id"], timeout=20)
        assert ex.outputs_tree["log"]["value"] == "100|200"
        assert ex.trigger["type"] == "io.kestra.plugin.fs.http.Trigger"
    finally:
        fake.stop()
