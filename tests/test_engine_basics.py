"""Core semantics of the executor: order, outputs, flowables, errors and finally."""

from __future__ import annotations

from support import flow


def test_sequential_outputs_and_flow_outputs(run_flow):
    ex = run_flow(
        flow("""
        inputs:
          - id: name
            type: STRING
            defaults: world
        tasks:
          - id: hello
            type: io.kestra.plugin.core.debug.Return
            format: "Hello {{ inputs.name }}"
          - id: upper
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.hello.value | upper }}"
        outputs:
          - id: greeting
            type: STRING
            value: "{{ outputs.upper.value }}"
    """),
        {"name": "roost"},
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs == {"greeting": "HELLO ROOST"}
    assert [tr.task_id for tr in ex.task_runs] == ["hello", "upper"]


def test_foreach_outputs_nested_by_value(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b", "c"]
            concurrencyLimit: 2
            tasks:
              - id: inner
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}-{{ taskrun.iteration }}"
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.inner['b'].value }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["inner"] == {"a": {"value": "a-0"}, "b": {"value": "b-1"}, "c": {"value": "c-2"}}
    assert ex.outputs_tree["after"] == {"value": "b-1"}


def test_nested_foreach_outputs_and_parent(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: outer
            type: io.kestra.plugin.core.flow.ForEach
            values: ["x", "y"]
            tasks:
              - id: inner_loop
                type: io.kestra.plugin.core.flow.ForEach
                values: [1, 2]
                tasks:
                  - id: leaf
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ parent.taskrun.value }}/{{ taskrun.value }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["leaf"]["y"]["2"] == {"value": "y/2"}
    assert ex.outputs_tree["leaf"]["x"]["1"] == {"value": "x/1"}


def test_switch_case_and_fallthrough_to_defaults(run_flow, states):
    body = """
        inputs:
          - id: kind
            type: STRING
        tasks:
          - id: switch
            type: io.kestra.plugin.core.flow.Switch
            value: "{{ inputs.kind }}"
            cases:
              A:
                - id: a
                  type: io.kestra.plugin.core.debug.Return
                  format: a
            defaults:
              - id: other
                type: io.kestra.plugin.core.debug.Return
                format: other
    """
    ex = run_flow(flow(body), {"kind": "A"})
    assert states(ex) == {"switch": "SUCCESS", "a": "SUCCESS"}
    ex = run_flow(flow(body), {"kind": "Z"})
    assert states(ex) == {"switch": "SUCCESS", "other": "SUCCESS"}
    assert ex.outputs_tree["switch"] == {"value": "Z", "defaults": True}


def test_if_then_else(run_flow, states):
    body = """
        inputs:
          - id: go
            type: BOOLEAN
        tasks:
          - id: check
            type: io.kestra.plugin.core.flow.If
            condition: "{{ inputs.go }}"
            then:
              - id: yes
                type: io.kestra.plugin.core.log.Log
                message: yes
            else:
              - id: no
                type: io.kestra.plugin.core.log.Log
                message: no
    """
    assert states(run_flow(flow(body), {"go": "true"})) == {"check": "SUCCESS", "yes": "SUCCESS"}
    assert states(run_flow(flow(body), {"go": "false"})) == {"check": "SUCCESS", "no": "SUCCESS"}


def test_errors_then_finally_order(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: ok
            type: io.kestra.plugin.core.log.Log
            message: first
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: it broke
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: not reached
        errors:
          - id: on_error
            type: io.kestra.plugin.core.debug.Return
            format: "{{ error.message ?? 'none' }}"
        finally:
          - id: cleanup
            type: io.kestra.plugin.core.log.Log
            message: cleanup
    """)
    )
    assert ex.state.current == "FAILED"
    assert [tr.task_id for tr in ex.task_runs] == ["ok", "boom", "on_error", "cleanup"]
    assert states(ex) == {"ok": "SUCCESS", "boom": "FAILED", "on_error": "SUCCESS", "cleanup": "SUCCESS"}
    assert ex.outputs_tree["on_error"]["value"] == "it broke"


def test_local_errors_inside_sequential(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: boom
                type: io.kestra.plugin.core.execution.Fail
            errors:
              - id: local_handler
                type: io.kestra.plugin.core.log.Log
                message: handled locally
        errors:
          - id: global_handler
            type: io.kestra.plugin.core.log.Log
            message: handled globally
    """)
    )
    assert ex.state.current == "FAILED"
    assert [tr.task_id for tr in ex.task_runs] == ["seq", "boom", "local_handler", "global_handler"]


def test_allow_failure_gives_warning(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: allow
            type: io.kestra.plugin.core.flow.AllowFailure
            tasks:
              - id: boom
                type: io.kestra.plugin.core.execution.Fail
          - id: next
            type: io.kestra.plugin.core.log.Log
            message: still runs
    """)
    )
    assert ex.state.current == "WARNING"
    assert states(ex) == {"allow": "WARNING", "boom": "FAILED", "next": "SUCCESS"}


def test_task_allow_failure_property(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
          - id: next
            type: io.kestra.plugin.core.log.Log
            message: still runs
    """)
    )
    assert ex.state.current == "WARNING"
    assert states(ex)["next"] == "SUCCESS"


def test_run_if_skips_and_disabled_is_absent(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: skipped
            type: io.kestra.plugin.core.log.Log
            message: never
            runIf: "{{ 1 > 2 }}"
          - id: disabled_one
            type: io.kestra.plugin.core.log.Log
            message: never
            disabled: true
          - id: runs
            type: io.kestra.plugin.core.log.Log
            message: yes
            runIf: "{{ true }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert states(ex) == {"skipped": "SKIPPED", "runs": "SUCCESS"}


def test_parallel_and_dag(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            concurrent: 2
            tasks:
              - id: p1
                type: io.kestra.plugin.core.debug.Return
                format: "1"
              - id: p2
                type: io.kestra.plugin.core.debug.Return
                format: "2"
              - id: p3
                type: io.kestra.plugin.core.debug.Return
                format: "3"
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: d3
                  type: io.kestra.plugin.core.debug.Return
                  format: "{{ outputs.d1.value }}+{{ outputs.d2.value }}"
                dependsOn: [d1, d2]
              - task:
                  id: d1
                  type: io.kestra.plugin.core.debug.Return
                  format: one
              - task:
                  id: d2
                  type: io.kestra.plugin.core.debug.Return
                  format: two
                dependsOn: [d1]
    """)
    )
    assert ex.state.current == "SUCCESS"
    order = [tr.task_id for tr in ex.task_runs]
    assert order.index("d1") < order.index("d2") < order.index("d3")
    assert ex.outputs_tree["d3"]["value"] == "one+two"


def test_labels_and_variables(run_flow):
    ex = run_flow(
        flow("""
        labels:
          team: data
        variables:
          greeting: hi
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: "{{ vars.greeting }} {{ labels.team }} {{ labels.extra }}"
    """),
        labels={"extra": "x"},
    )
    assert ex.outputs_tree["r"]["value"] == "hi data x"
    assert {"key": "team", "value": "data"} in ex.labels


def test_execution_json_shape(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: x
    """)
    )
    data = ex.to_dict()
    assert data["state"]["current"] == "SUCCESS"
    assert [h["state"] for h in data["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]
    tr = data["taskRunList"][0]
    assert set(tr) >= {
        "id",
        "executionId",
        "namespace",
        "flowId",
        "taskId",
        "parentTaskRunId",
        "value",
        "attempts",
        "outputs",
        "state",
    }
    assert tr["attempts"][0]["state"]["current"] == "SUCCESS"
    assert "_engine" not in tr
