"""Flows shaped like the examples of Kestra's task documentation behave as the documentation says."""

from __future__ import annotations

from support import flow


def test_foreach_with_if_and_parent_taskrun_value(run_flow):
    # ForEach page: direct children see taskrun.value; nested ones use parent.taskrun.value.
    ex = run_flow(
        flow("""
        tasks:
          - id: for_each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["value 1", "value 2", "value 3"]
            tasks:
              - id: before_if
                type: io.kestra.plugin.core.debug.Return
                format: "Before if {{ taskrun.value }}"
              - id: if
                type: io.kestra.plugin.core.flow.If
                condition: '{{ taskrun.value == "value 2" }}'
                then:
                  - id: after_if
                    type: io.kestra.plugin.core.debug.Return
                    format: "After if {{ parent.taskrun.value }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["before_if"]["value 3"] == {"value": "Before if value 3"}
    assert ex.outputs_tree["after_if"] == {
        "value 2": {"value": "After if value 2"}
    }  # only the matching value


def test_foreach_concurrency_limit_and_task_id(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: for_each
            type: io.kestra.plugin.core.flow.ForEach
            values:
              - value 1
              - value 2
              - value 3
              - value 4
            concurrencyLimit: 2
            tasks:
              - id: return
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }} with value {{ taskrun.value }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert [ex.outputs_tree["return"][f"value {i}"]["value"] for i in range(1, 5)] == [
        f"return with value value {i}" for i in range(1, 5)
    ]
    iterations = sorted(tr.iteration for tr in ex.task_runs if tr.task_id == "return")
    assert iterations == [0, 1, 2, 3]


def test_foreach_wrapping_parallel_tasks(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: for_each
            type: io.kestra.plugin.core.flow.ForEach
            values: [1, 2, 3, 4]
            concurrencyLimit: 2
            tasks:
              - id: parallel
                type: io.kestra.plugin.core.flow.Parallel
                tasks:
                  - id: log
                    type: io.kestra.plugin.core.log.Log
                    message: "Processing {{ parent.taskrun.value }}"
                  - id: shell
                    type: io.kestra.plugin.scripts.shell.Commands
                    commands:
                      - 'echo "::{\\"outputs\\":{\\"n\\":{{ parent.taskrun.value }}}}::"'
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert sorted(v["vars"]["n"] for v in ex.outputs_tree["shell"].values()) == [1, 2, 3, 4]


def test_sequential_and_sibling_outputs(run_flow):
    # Flowable tasks page: a Sequential groups tasks; siblings read each other's outputs.
    ex = run_flow(
        flow("""
        tasks:
          - id: sequential
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: 1st
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }} > {{ taskrun.startDate }}"
              - id: 2nd
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }} > {{ outputs['1st'].value }}"
          - id: last
            type: io.kestra.plugin.core.debug.Return
            format: "{{ task.id }} > {{ taskrun.id }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    first = ex.outputs_tree["1st"]["value"]
    assert first.startswith("1st > 20")
    assert ex.outputs_tree["2nd"]["value"] == f"2nd > {first}"
    last = next(tr for tr in ex.task_runs if tr.task_id == "last")
    assert ex.outputs_tree["last"]["value"] == f"last > {last.id}"
