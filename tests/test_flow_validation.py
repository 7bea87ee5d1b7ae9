"""Every invalid flow in tests/invalid_flows is reported with its exact path, line and message."""

from __future__ import annotations

from pathlib import Path

import pytest
from roost.flow.build import FlowInvalid, parse_flow
from roost.flow.yaml import Violation, YamlError, decode_source

HERE = Path(__file__).parent / "invalid_flows"

EXPECTED = {
    "01_yaml_syntax": [
        ("", 7, "invalid YAML: while parsing a flow sequence did not find expected ',' or ']'")
    ],
    "02_duplicate_key": [("", 7, "duplicate key 'message'")],
    "03_unknown_property": [
        (
            "tasks[0].mesage",
            7,
            "unknown property 'mesage'; known properties: allowFailure, allowWarning, assets, description, disabled, id, level, logLevel, logToFile, message, retry, runIf, taskCache, timeout, workerGroup",
        )
    ],
    "04_unknown_type": [
        (
            "tasks[0].type",
            5,
            "unknown task type 'io.kestra.plugin.core.log.Logg'; did you mean 'io.kestra.plugin.core.log.Log', 'io.kestra.plugin.core.flow.Dag', 'io.kestra.plugin.core.log.Fetch'?",
        )
    ],
    "05_unknown_type_registry": [
        (
            "tasks[0].type",
            5,
            "unknown task type 'io.kestra.plugin.jdbc.sqlite.Query'; it is provided by the plugin package 'roost-plugin-jdbc' (pip install roost-plugin-jdbc, or from a Roost checkout pip install '.[all]' for the whole suite)",
        )
    ],
    "06_missing_required": [("tasks[0].message", 4, "missing required property 'message'")],
    "07_wrong_type_literal": [("tasks[0].concurrent", 6, 'expected an integer, got "many"')],
    "08_dynamic_wrong_shape": [
        (
            "tasks[0].timeout",
            7,
            'expected an ISO-8601 duration (e.g. PT5M) or a {{ expression }}, got "five minutes"',
        )
    ],
    "09_duplicate_task_id": [("tasks[1].id", 7, "duplicate task id 'a' (also at tasks[0])")],
    "10_duplicate_nested_task_id": [
        ("tasks[0].id", 4, "duplicate task id 'seq' (also at tasks[0].tasks[0])")
    ],
    "11_duplicate_trigger_id": [("triggers[1].id", 11, "duplicate trigger id 't'")],
    "12_duplicate_input_id": [("inputs[1].id", 6, "duplicate input id 'x'")],
    "13_switch_no_tasks": [("tasks[0]", 4, "a Switch needs tasks in at least one case or in defaults")],
    "14_working_directory_flowable_child": [
        (
            "tasks[0]",
            4,
            "task 'par' (io.kestra.plugin.core.flow.Parallel) is not runnable: a WorkingDirectory holds only runnable tasks",
        )
    ],
    "15_dag_cycle": [("tasks[0]", 4, "the Dag has a cycle: a -> b -> a")],
    "16_dag_unknown_dependency": [("tasks[0]", 4, "task 'a' depends on unknown task 'zzz' (known: a)")],
    "17_subflow_self": [
        ("tasks[0].flowId", 7, "a Subflow cannot start its own flow (company.team.self_caller)")
    ],
    "18_system_label": [
        (
            "labels.system.correlationId",
            4,
            "label 'system.correlationId' is reserved: labels starting with 'system.' are set by the system (users may set only system.readOnly)",
        )
    ],
    "19_bad_namespace": [
        ("namespace", 2, 'expected a value matching ^[a-z0-9][a-z0-9._-]*$, got "Company Team"')
    ],
    "20_bad_flow_id": [("id", 1, 'expected a value matching ^[a-zA-Z0-9][a-zA-Z0-9._-]*$, got "bad id!"')],
    "21_no_tasks": [("tasks", 3, "expected at least 1 item(s), got []")],
    "22_missing_namespace": [("namespace", 1, "missing required property 'namespace'")],
    "23_task_without_type": [("tasks[0]", 4, "missing required property 'type'")],
    "24_tasks_not_a_list": [("tasks", 3, "expected a list of tasks, got a mapping")],
    "25_bad_input_type": [
        (
            "inputs[0].type",
            5,
            "expected one of 'STRING', 'ENUM', 'SELECT', 'MULTISELECT', 'INT', 'FLOAT', 'BOOLEAN', 'BOOL', 'DATETIME', 'DATE', 'TIME', 'DURATION', 'FILE', 'JSON', 'URI', 'SECRET', 'ARRAY', 'YAML' or 'EMAIL', got \"STRNG\"",
        )
    ],
    "26_bad_cron": [("triggers[0].cron", 10, "invalid cron expression '61 * * * *'")],
    "27_retry_without_bound": [("tasks[0].retry", 7, "a retry needs maxAttempts or maxDuration")],
    "28_plugin_default_unknown_property": [
        (
            "pluginDefaults[0].values.levell",
            6,
            "unknown property 'levell' for type 'io.kestra.plugin.core.log.Log'; known properties: allowFailure, allowWarning, assets, description, disabled, level, logLevel, logToFile, message, retry, runIf, taskCache, timeout, workerGroup",
        )
    ],
    "29_bad_task_id": [
        ("tasks[0].id", 4, 'expected a value matching ^[a-zA-Z0-9][a-zA-Z0-9_-]*$, got "has space"')
    ],
    "30_unknown_flow_property": [
        (
            "taks",
            3,
            "unknown property 'taks'; known properties: afterExecution, concurrency, deleted, description, disabled, errors, finally, id, inputs, labels, namespace, outputs, pluginDefaults, retry, revision, sla, taskDefaults, tasks, tenantId, triggers, variables",
        )
    ],
    "31_bad_concurrency": [
        ("concurrency.limit", 4, "expected a value of at least 1, got 0"),
        ("concurrency.behavior", 5, "expected one of 'QUEUE', 'CANCEL' or 'FAIL', got \"DROP\""),
    ],
    "32_unknown_nested_property": [
        (
            "tasks[0].retry.maxAttemps",
            11,
            "unknown property 'maxAttemps'; known properties: behavior, delayFactor, interval, maxAttempts, maxDuration, maxInterval, minInterval, warningOnRetry",
        )
    ],
    "33_bad_timezone": [("triggers[0].timezone", 11, "unknown time zone 'Mars/Olympus'")],
    "34_bad_log_level": [
        (
            "tasks[0].level",
            7,
            "expected one of 'TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR' or a {{ expression }}, got \"LOUD\"",
        )
    ],
    "35_array_item_array": [("inputs[0].itemType", 6, "an ARRAY input cannot have itemType ARRAY")],
    # YAML is untrusted input: each of these is one violation with its line, never a crash.
    "36_tag_int_invalid": [("tasks[0].timeout", 7, "invalid !!int value 'abc': expected an integer")],
    "37_tag_timestamp_invalid": [
        ("variables.when", 4, "invalid date or timestamp 'nope' (quote it to keep it as text)")
    ],
    "38_binary_value": [
        (
            "variables.blob",
            4,
            "binary values (!!binary) are not supported: a flow holds text (use a base64 string)",
        )
    ],
    "39_impossible_date": [
        (
            "variables.day",
            4,
            "invalid date or timestamp '2024-13-45': month must be in 1..12 (quote it to keep it as text)",
        )
    ],
    "40_huge_integer": [
        ("variables.n", 4, "integer too long: more than 1000 digits (quote it to keep it as text)")
    ],
    "41_deep_nesting": [("variables.deep[0][0][0][0][0][0]", 4, "the document nests deeper than 100 levels")],
    "42_billion_laughs": [
        ("variables.f[0]", 9, "the document holds more than 100000 values (aliases expanded)")
    ],
    "43_infinity": [
        (
            "variables.big",
            4,
            "'.inf' is not a finite number: infinity and NaN cannot be stored as JSON "
            "(quote the value to keep it as text)",
        )
    ],
    "44_nan": [
        (
            "variables.y",
            5,
            "'.NaN' is not a finite number: infinity and NaN cannot be stored as JSON "
            "(quote the value to keep it as text)",
        )
    ],
    "45_python_tag": [
        ("tasks[0].message", 6, "unsupported YAML tag '!!python/object/apply:os.system' on a list")
    ],
    "46_recursive_alias": [
        ("variables.loop[0]", 5, "the alias '*loop' refers to a value that contains it (recursive data)")
    ],
    "47_too_many_aliases": [("variables.many[100]", 5, "the document uses more than 100 aliases")],
    "48_map_key_not_scalar": [
        ("variables", 4, "a map key must be a plain value (text or a number), not a map or list")
    ],
    "49_not_utf8": [("", 6, "the file is not UTF-8 text: byte 0xe9 cannot be decoded")],
}


def violations_of(path: Path) -> list[Violation]:
    """What validating a file reports, decoding its bytes as the CLI does."""
    try:
        parse_flow(decode_source(path.read_bytes()))
    except YamlError as exc:
        return [exc.violation]
    except FlowInvalid as exc:
        return exc.violations
    pytest.fail(f"{path.name} was accepted")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_flow_reports_path_line_and_message(name):
    got = [(v.path, v.line, v.message) for v in violations_of(HERE / f"{name}.yaml")]
    assert got == EXPECTED[name]


def test_corpus_is_complete():
    assert sorted(p.stem for p in HERE.glob("*.yaml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 30


def test_report_names_flow_and_lines():
    with pytest.raises(FlowInvalid) as err:
        parse_flow((HERE / "03_unknown_property.yaml").read_text())
    text = str(err.value)
    assert text.startswith("flow company.team.unknown_prop is invalid:")
    assert "tasks[0].mesage: unknown property 'mesage'" in text and "(line 7)" in text


def test_dynamic_property_accepts_expression_and_literal():
    flow = parse_flow("""
id: ok
namespace: company.team
tasks:
  - id: a
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 2
    tasks:
      - id: b
        type: io.kestra.plugin.core.log.Log
        message: hi
        timeout: "{{ inputs.t }}"
      - id: c
        type: io.kestra.plugin.core.log.Log
        message: hi
        timeout: PT5M
""")
    assert flow.tasks[0].tasks[0].timeout == "{{ inputs.t }}"
    assert flow.tasks[0].tasks[1].timeout.total_seconds() == 300
