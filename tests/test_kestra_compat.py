"""Kestra 1.3 compatibility: the flow language Kestra still accepts, and its semantics.

Each test is a flow shaped like the ones in Kestra's own core tests, with the states and outputs
Kestra gives it.
"""

from __future__ import annotations

import json

import pytest
from roost.flow.build import FlowInvalid, flow_notices, parse_flow
from support import flow


def notices(source: str) -> list[tuple[str, str, str]]:
    return [(n.path, n.kind, n.message) for n in flow_notices(parse_flow(source))]


# -- the flow language: aliases Kestra 1.3 still accepts --------------------------------------------------
def test_retry_max_attempt_alias_runs_and_warns(run_flow):
    source = flow("""
        tasks:
          - id: failed
            type: io.kestra.plugin.core.execution.Fail
            retry:
              type: constant
              interval: PT0.05S
              maxAttempt: 3
    """)
    assert [(p, k) for p, k, _ in notices(source)] == [("tasks[0].retry.maxAttempt", "deprecated")]
    ex = run_flow(source)
    assert ex.state.current == "FAILED"
    assert len(ex.task_runs[0].attempts) == 3


def test_input_name_is_the_old_spelling_of_id(run_flow):
    source = flow("""
        inputs:
          - name: who
            type: STRING
            defaults: world
        tasks:
          - id: hello
            type: io.kestra.plugin.core.debug.Return
            format: "hello {{ inputs.who }}"
    """)
    assert [(p, k) for p, k, _ in notices(source)] == [("inputs[0].name", "deprecated")]
    ex = run_flow(source, {"who": "Ada"})
    assert ex.outputs_tree["hello"]["value"] == "hello Ada"


def test_old_type_ids_run_with_a_relocation_notice(run_flow):
    source = flow("""
        tasks:
          - id: seq
            type: io.kestra.core.tasks.flows.Sequential
            tasks:
              - id: ret
                type: io.kestra.core.tasks.debugs.Return
                format: "{{ task.type }}"
              - id: log
                type: io.kestra.core.tasks.log.Log
                message: done
              - id: outputs
                type: io.kestra.core.tasks.outputs.OutputValues
                values:
                  a: b
    """)
    found = notices(source)
    assert [(p, k) for p, k, _ in found] == [
        ("tasks[0].type", "relocated"),
        ("tasks[0].tasks[0].type", "relocated"),
        ("tasks[0].tasks[1].type", "relocated"),
        ("tasks[0].tasks[2].type", "relocated"),
    ]
    assert "replaced by 'io.kestra.plugin.core.output.OutputValues'" in found[3][2]
    ex = run_flow(source)
    assert ex.state.current == "SUCCESS"
    # task.type is the type as the flow writes it, as in Kestra
    assert ex.outputs_tree["ret"]["value"] == "io.kestra.core.tasks.debugs.Return"
    assert ex.outputs_tree["outputs"]["values"] == {"a": "b"}


def test_old_trigger_and_toggle_ids_resolve():
    parsed = parse_flow(
        flow("""
        tasks:
          - id: toggle
            type: io.kestra.core.tasks.trigger.Toggle
            trigger: poll
            enabled: false
        triggers:
          - id: poll
            type: io.kestra.plugin.fs.http.Trigger
            uri: http://127.0.0.1:9/
    """)
    )
    assert parsed.tasks[0].type_id == "io.kestra.plugin.core.trigger.Toggle"
    assert parsed.triggers[0].type_id == "io.kestra.plugin.core.http.Trigger"
    assert {n.kind for n in flow_notices(parsed)} == {"relocated"}


def test_unknown_old_type_is_still_an_error():
    with pytest.raises(FlowInvalid) as exc:
        parse_flow(
            flow("""
            tasks:
              - id: x
                type: io.kestra.core.tasks.flows.NoSuchTask
        """)
        )
    assert "unknown task type 'io.kestra.core.tasks.flows.NoSuchTask'" in str(exc.value)


def test_validate_shows_warnings_and_exits_zero(tmp_path):
    from click.testing import CliRunner
    from roost.cli.main import cli

    path = tmp_path / "old.yaml"
    path.write_text(
        flow("""
        tasks:
          - id: log
            type: io.kestra.core.tasks.log.Log
            message: hi
            retry:
              type: constant
              interval: PT1S
              maxAttempt: 2
    """)
    )
    result = CliRunner().invoke(cli, ["flow", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "tasks[0].retry.maxAttempt" in result.output
    result = CliRunner().invoke(cli, ["flow", "validate", str(path), "-o", "json"])
    report = json.loads(result.output)
    assert report[0]["valid"] is True
    assert {w["path"] for w in report[0]["warnings"]} == {"tasks[0].type", "tasks[0].retry.maxAttempt"}


def test_flow_trigger_without_conditions_is_a_warning():
    found = notices(
        flow("""
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: hi
        triggers:
          - id: listen
            type: io.kestra.plugin.core.trigger.Flow
    """)
    )
    assert [(p, k) for p, k, _ in found] == [("triggers[0]", "warning")]
    assert "EVERY execution of EVERY flow" in found[0][2]


# -- durations, keys, nulls ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT0.25s", 0.25), ("pt1m", 60), ("P1DT2H", 93600), ("PT-6H3M", -21420), ("-PT1S", -1), ("PT0,5S", 0.5)],
)
def test_java_durations(text, seconds):
    parsed = parse_flow(
        flow(f"""
        tasks:
          - id: sleep
            type: io.kestra.plugin.core.flow.Sleep
            duration: {text}
            timeout: {text}
    """)
    )
    assert parsed.tasks[0].duration.total_seconds() == seconds
    assert parsed.tasks[0].timeout.total_seconds() == seconds


@pytest.mark.parametrize("text", ["P1W", "P1M", "P1Y", "PT", "1H"])
def test_durations_java_refuses_are_errors(text):
    with pytest.raises(FlowInvalid) as exc:
        parse_flow(
            flow(f"""
            tasks:
              - id: sleep
                type: io.kestra.plugin.core.flow.Sleep
                duration: {text}
        """)
        )
    assert "tasks[0].duration: expected an ISO-8601 duration" in str(exc.value)


def test_switch_integer_keys_and_null_defaults(run_flow):
    ex = run_flow(
        flow("""
        inputs:
          - id: n
            type: INT
        tasks:
          - id: switch
            type: io.kestra.plugin.core.flow.Switch
            value: "{{ inputs.n }}"
            cases:
              1:
                - id: one
                  type: io.kestra.plugin.core.debug.Return
                  format: one
              2:
                - id: two
                  type: io.kestra.plugin.core.debug.Return
                  format: two
            defaults: null
    """),
        {"n": 2},
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["two"] == {"value": "two"}
    assert ex.outputs_tree["switch"] == {"value": "2", "defaults": False}


def test_null_properties_are_unset():
    parsed = parse_flow(
        flow("""
        description: null
        labels: null
        inputs:
          - id: x
            type: STRING
            defaults: null
            required: false
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: hi
            retry: null
            errors: null
    """)
    )
    assert parsed.description is None and parsed.tasks[0].retry is None


# -- variables ----------------------------------------------------------------------------------------------
def test_labels_are_nested_and_every_execution_has_a_correlation_id(run_flow):
    ex = run_flow(
        flow("""
        labels:
          team.name: data
          env: prod
        tasks:
          - id: read
            type: io.kestra.plugin.core.debug.Return
            format: "{{ labels.system.correlationId }}|{{ labels.team.name }}|{{ labels.env }}"
    """)
    )
    assert ex.label_map()["system.correlationId"] == ex.id
    assert ex.outputs_tree["read"]["value"] == f"{ex.id}|data|prod"


def test_worker_taskrun_is_the_working_directory_run(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a"]
            tasks:
              - id: wd
                type: io.kestra.plugin.core.flow.WorkingDirectory
                tasks:
                  - id: inside
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ workerTaskrun.id }}|{{ workerTaskrun.value }}|{{ taskrun.value }}"
    """)
    )
    wd = next(tr for tr in ex.task_runs if tr.task_id == "wd")
    assert ex.outputs_tree["inside"]["a"]["value"] == f"{wd.id}|a|a"


def test_error_logs_and_tasks_with_state_in_errors_branch(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: boom here
        errors:
          - id: report
            type: io.kestra.plugin.core.debug.Return
            format: "{{ errorLogs()[0].message }}|{{ errorLogs()[0].taskId }}|{{ tasksWithState('failed')[0].taskId }}"
    """)
    )
    assert ex.state.current == "FAILED"
    assert ex.outputs_tree["report"]["value"] == "boom here|fail|fail"


def test_parent_output_and_iteration_output(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["x", "y", "z"]
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: "v-{{ taskrun.value }}"
              - id: prev
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.iteration == 0 ? 'none' : iterationOutput('ret') }}"
    """)
    )
    assert ex.state.current == "SUCCESS", ex.task_runs
    assert [ex.outputs_tree["prev"][v]["value"] for v in "xyz"] == ["none", "v-x", "v-y"]


def test_class_name_filter():
    from roost.expr import get_engine

    render = get_engine().render
    assert render('{{ "12.3" | number | className }}', {}, None) == "java.lang.Float"
    assert render('{{ "9223372036854775807" | number("BIGDECIMAL") | className }}', {}, None) == (
        "java.math.BigDecimal"
    )
    assert render("{{ x | className }}", {"x": {"a": 1}}, None) == "java.util.LinkedHashMap"
    assert render("{{ x | className }}", {"x": "s"}, None) == "java.lang.String"


def test_calendar_functions():
    from roost.expr import get_engine

    render = get_engine().render
    assert render("{{ dayOfWeek('2024-12-25T10:00:00Z') }}", {}, None) == "WEDNESDAY"
    assert render("{{ isPublicHoliday('2024-12-25', 'FR') }}", {}, None) is True
    assert render("{{ isPublicHoliday('2024-01-06', 'DE', 'DE-BY') }}", {}, None) is True
    assert render("{{ isPublicHoliday('2024-01-06', 'DE', 'DE-BE') }}", {}, None) is False
    assert render("{{ isDayWeekInMonth('2024-12-30', 'MONDAY', 'LAST') }}", {}, None) is True
    assert render("{{ isWeekend('2024-12-28') }}", {}, None) is True
    assert (
        render("{{ monthOfYear('2024-12-28') }}|{{ hourOfDay('2024-12-28T07:30:00+02:00') }}", {}, None)
        == "12|7"
    )
    assert len(render("{{ ksuid() }}", {}, None)) == 27


def test_file_functions(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: write
            type: io.kestra.plugin.scripts.shell.Commands
            outputFiles: ["out.txt", "empty.txt"]
            commands:
              - printf 'hello' > out.txt
              - touch empty.txt
          - id: check
            type: io.kestra.plugin.core.debug.Return
            format: >-
              {{ fileSize(outputs.write.outputFiles['out.txt']) }}|{{ isFileEmpty(outputs.write.outputFiles['empty.txt']) }}|{{ fileExists(outputs.write.outputFiles['out.txt']) }}
    """)
    )
    assert ex.state.current == "SUCCESS", [tr.extra for tr in ex.task_runs]
    assert ex.outputs_tree["check"]["value"] == "5|true|true"


# -- semantics ----------------------------------------------------------------------------------------------
def test_allow_failure_and_allow_warning_end_success(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: failed
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
            allowWarning: true
          - id: only_failure
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
    """)
    )
    assert states(ex) == {"failed": "SUCCESS", "only_failure": "WARNING"}
    assert ex.state.current == "WARNING"


def test_allow_failure_and_allow_warning_on_subflow(roost_engine, states):
    roost_engine.deploy(
        flow(
            """
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
    """,
            id="child",
        )
    )
    ex = roost_engine.run(
        roost_engine.deploy(
            flow(
                """
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: child
            allowFailure: true
            allowWarning: true
          - id: no_transmit
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: child
            transmitFailed: false
    """,
                id="parent",
            )
        ),
        timeout=30,
    )
    assert states(ex) == {"call": "SUCCESS", "no_transmit": "SUCCESS"}
    assert ex.state.current == "SUCCESS"


def test_foreach_deduplicates_values(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "a", "b", 1, "1"]
            concurrencyLimit: 0
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}"
    """),
        timeout=20,
    )
    assert ex.state.current == "SUCCESS"
    assert sorted(ex.outputs_tree["ret"]) == ["1", "a", "b"]


@pytest.mark.parametrize("values", ['["a", null]', "\"{{ '[1, null]' }}\""])
def test_foreach_null_value_fails_the_task(run_flow, states, values):
    ex = run_flow(
        flow(f"""
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: {values}
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: x
        errors:
          - id: handled
            type: io.kestra.plugin.core.log.Log
            message: handled
    """)
    )
    assert ex.state.current == "FAILED"
    assert states(ex) == {"each": "FAILED", "handled": "SUCCESS"}
    assert "Found a null value inside the iteration values" in ex.task_runs[0].extra["error"]


def test_if_condition_error_fails_the_task_and_runs_errors_and_finally(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: if
            type: io.kestra.plugin.core.flow.If
            condition: "{{ undefined_variable.field }}"
            then:
              - id: never
                type: io.kestra.plugin.core.log.Log
                message: never
        errors:
          - id: on_error
            type: io.kestra.plugin.core.log.Log
            message: handled
        finally:
          - id: cleanup
            type: io.kestra.plugin.core.log.Log
            message: cleanup
    """)
    )
    assert ex.state.current == "FAILED"
    assert states(ex) == {"if": "FAILED", "on_error": "SUCCESS", "cleanup": "SUCCESS"}
    assert all(tr.state.terminal() for tr in ex.task_runs)


def test_retry_max_duration_stops_before_an_attempt_past_it(run_flow):
    # the next attempt would start 2 s after the first, past its 1 s: Kestra does not retry at all
    source = """
        tasks:
          - id: failed
            type: io.kestra.plugin.core.execution.Fail
            retry:
              type: constant
              interval: INTERVAL
              maxDuration: PT1S
              maxAttempts: 3
    """
    ex = run_flow(flow(source.replace("INTERVAL", "PT2S")))
    assert ex.state.current == "FAILED"
    assert len(ex.task_runs[0].attempts) == 1
    ex = run_flow(flow(source.replace("INTERVAL", "PT0.01S"), id="within"))
    assert len(ex.task_runs[0].attempts) == 3


def test_retry_on_a_flowable_replays_its_children(run_flow, tmp_path):
    marker = tmp_path / "count"
    ex = run_flow(
        flow(f"""
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            retry:
              type: constant
              interval: PT0.05S
              maxAttempts: 3
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: first
              - id: flaky
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - echo x >> {marker}
                  - test $(wc -l < {marker}) -ge 2
    """)
    )
    assert ex.state.current == "SUCCESS"
    seq = ex.task_runs[0]
    assert [a["state"]["current"] for a in seq.attempts] == ["FAILED"]
    assert sorted(tr.task_id for tr in ex.task_runs) == ["first", "flaky", "seq"]
    assert marker.read_text().count("x") == 2


def test_retry_on_a_subflow_starts_a_new_execution(roost_engine, tmp_path):
    marker = tmp_path / "count"
    roost_engine.deploy(
        flow(
            f"""
        tasks:
          - id: flaky
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - echo x >> {marker}
              - test $(wc -l < {marker}) -ge 3
    """,
            id="child",
        )
    )
    parent = roost_engine.deploy(
        flow(
            """
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: child
            retry:
              type: constant
              interval: PT0.05S
              maxAttempts: 5
    """,
            id="parent",
        )
    )
    ex = roost_engine.run(parent, timeout=30)
    assert ex.state.current == "SUCCESS"
    call = ex.task_runs[0]
    assert len(call.attempts) == 3
    child = roost_engine.get_execution(call.outputs["executionId"])
    assert child.state.current == "SUCCESS"


def test_expression_is_accepted_where_kestra_declares_a_property():
    parsed = parse_flow(
        flow("""
        inputs:
          - id: rows
            type: INT
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            delay: "{{ 'PT1S' }}"
            behavior: "{{ 'RESUME' }}"
          - id: items
            type: io.kestra.plugin.core.flow.ForEachItem
            items: "{{ outputs.x.uri }}"
            batch:
              rows: "{{ inputs.rows }}"
            namespace: company.team
            flowId: other
    """)
    )
    assert parsed.tasks[1].batch.rows == "{{ inputs.rows }}"


def test_api_validate_reports_deprecations_as_kestra_does(roost_engine):
    from fastapi.testclient import TestClient
    from roost.server.app import create_app
    from roost.server.state import ServerState

    source = flow("""
        inputs:
          - name: old
            type: STRING
        tasks:
          - id: log
            type: io.kestra.core.tasks.log.Log
            message: hi
            retry:
              type: constant
              interval: PT1S
              maxAttempt: 2
        triggers:
          - id: listen
            type: io.kestra.plugin.core.trigger.Flow
    """)
    with TestClient(create_app(ServerState(roost_engine, None))) as client:
        answer = client.post(
            "/api/v1/main/flows/validate", content=source, headers={"Content-Type": "application/x-yaml"}
        )
    assert answer.status_code == 200, answer.text
    [result] = answer.json()
    assert "constraints" not in result
    assert result["deprecationPaths"] == ["tasks[0].retry.maxAttempt", "inputs[0].name"]
    assert result["infos"] == ["io.kestra.core.tasks.log.Log is replaced by io.kestra.plugin.core.log.Log"]
    assert len(result["warnings"]) == 1 and "preconditions" in result["warnings"][0]


def test_expressions_where_kestra_declares_properties_run(roost_engine, states):
    roost_engine.deploy(
        flow(
            """
        inputs:
          - id: n
            type: INT
        tasks:
          - id: ret
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.n * 2 }}"
        outputs:
          - id: doubled
            type: STRING
            value: "{{ outputs.ret.value }}"
    """,
            id="child",
        )
    )
    ex = roost_engine.run(
        roost_engine.deploy(
            flow(
                """
        inputs:
          - id: level
            type: STRING
            defaults: WARN
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            level: "{{ inputs.level }}"
            message: at a rendered level
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: "{{ flow.namespace }}"
            flowId: "{{ 'chi' ~ 'ld' }}"
            inheritLabels: "{{ true }}"
            inputs:
              n: 21
          - id: kv
            type: io.kestra.plugin.core.kv.Set
            key: k
            value: v
            overwrite: "{{ false }}"
          - id: kv_again
            type: io.kestra.plugin.core.kv.Set
            key: k
            value: w
            overwrite: "{{ 1 == 2 }}"
            allowFailure: true
    """,
                id="parent",
            )
        ),
        timeout=30,
    )
    assert states(ex) == {"log": "SUCCESS", "call": "SUCCESS", "kv": "SUCCESS", "kv_again": "WARNING"}
    assert ex.outputs_tree["call"]["outputs"] == {"doubled": "42"}
    roost_engine._flush_logs()
    [line] = [r for r in roost_engine.store.get_logs("main", ex.id) if r["message"] == "at a rendered level"]
    assert line["level"] == "WARN"


def test_numbers_and_booleans_where_text_is_expected(run_flow, states):
    ex = run_flow(
        flow("""
        tasks:
          - id: switch
            type: io.kestra.plugin.core.flow.Switch
            value: 1
            cases:
              1:
                - id: log
                  type: io.kestra.plugin.core.log.Log
                  message: 42
          - id: ret
            type: io.kestra.plugin.core.debug.Return
            format: true
          - id: not_failing
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ 0 }}"
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert states(ex) == {"switch": "SUCCESS", "log": "SUCCESS", "ret": "SUCCESS", "not_failing": "SUCCESS"}
    assert ex.outputs_tree["ret"]["value"] == "true"


def test_to_ion_filter_writes_ion_text():
    from amazon.ion import simpleion
    from roost.expr import get_engine

    value = {"a": 1, "b": [1.5, "x", True], "null": "n", "weird key": {"k": -2.5e-7}}
    text = get_engine().render("{{ v | toIon }}", {"v": value}, None)
    assert text.startswith('{a:1,b:[1.5e0,"x",true],"null":"n"')
    assert simpleion.loads(text) == value
