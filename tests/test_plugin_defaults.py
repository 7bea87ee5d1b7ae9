"""pluginDefaults: exact type or prefix, forced over the task, sources flow → namespace → instance."""

from __future__ import annotations

import pytest
from roost.flow.build import FlowInvalid, parse_flow
from roost.flow.model import PluginDefault
from roost.plugin_defaults import defaults_for

LOG = "io.kestra.plugin.core.log.Log"


def build(body: str, defaults=None):
    return parse_flow("id: f\nnamespace: company.team\n" + body, defaults=defaults)


def test_default_fills_missing_required_property():
    flow = build(f"""
pluginDefaults:
  - type: {LOG}
    values:
      message: from default
tasks:
  - id: a
    type: {LOG}
""")
    assert flow.tasks[0].message == "from default"


def test_task_value_wins_over_non_forced_default():
    flow = build(f"""
pluginDefaults:
  - type: {LOG}
    values:
      message: default
      level: WARN
tasks:
  - id: a
    type: {LOG}
    message: mine
""")
    assert (flow.tasks[0].message, flow.tasks[0].level) == ("mine", "WARN")


def test_forced_default_wins_over_task_value():
    flow = build(f"""
pluginDefaults:
  - type: {LOG}
    forced: true
    values:
      level: ERROR
tasks:
  - id: a
    type: {LOG}
    message: mine
    level: DEBUG
""")
    assert flow.tasks[0].level == "ERROR"


def test_prefix_matches_every_type_below():
    flow = build("""
pluginDefaults:
  - type: io.kestra.plugin.core.log
    values:
      level: WARN
  - type: io.kestra.plugin.core.lo
    values:
      level: ERROR
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
""")
    assert flow.tasks[0].level == "WARN"  # 'io.kestra.plugin.core.lo' is not a dotted prefix


def test_nested_maps_merge_deeply():
    flow = build("""
pluginDefaults:
  - type: io.kestra.plugin.core.http.Request
    values:
      options:
        allowFailed: true
        followRedirects: false
tasks:
  - id: r
    type: io.kestra.plugin.core.http.Request
    uri: http://127.0.0.1:1/
    options:
      followRedirects: true
""")
    opts = flow.tasks[0].options
    assert opts.allow_failed is True and opts.follow_redirects is True


def test_sources_flow_over_namespace_over_instance(tmp_path):
    (tmp_path / "instance.yaml").write_text(
        f"pluginDefaults:\n  - type: {LOG}\n    values: {{level: DEBUG, message: instance}}\n"
    )
    (tmp_path / "company.yaml").write_text(f"pluginDefaults:\n  - type: {LOG}\n    values: {{level: WARN}}\n")
    (tmp_path / "company.team.yaml").write_text(
        f"pluginDefaults:\n  - type: {LOG}\n    values: {{level: ERROR}}\n"
    )
    outer = defaults_for("company.team", tmp_path)
    assert [d.values for d in outer] == [
        {"level": "DEBUG", "message": "instance"},
        {"level": "WARN"},
        {"level": "ERROR"},
    ]
    flow = build(f"tasks:\n  - id: a\n    type: {LOG}\n", outer)
    assert (flow.tasks[0].message, flow.tasks[0].level) == ("instance", "ERROR")
    flow = build(
        f"pluginDefaults:\n  - type: {LOG}\n    values: {{level: TRACE}}\ntasks:\n  - id: a\n    type: {LOG}\n",
        outer,
    )
    assert flow.tasks[0].level == "TRACE"
    assert defaults_for("other", tmp_path)[0].values["message"] == "instance"


def test_forced_instance_default_beats_flow_default():
    outer = [PluginDefault(type=LOG, values={"level": "ERROR"}, forced=True)]
    flow = build(
        f"pluginDefaults:\n  - type: {LOG}\n    forced: true\n    values: {{level: TRACE}}\ntasks:\n  - id: a\n    type: {LOG}\n    message: m\n",
        outer,
    )
    assert flow.tasks[0].level == "ERROR"  # an administrator's forced default has the last word


def test_default_naming_unknown_property_is_an_error():
    with pytest.raises(FlowInvalid) as err:
        build(
            f"pluginDefaults:\n  - type: {LOG}\n    values: {{colour: red}}\ntasks:\n  - id: a\n    type: {LOG}\n    message: m\n"
        )
    [v] = err.value.violations
    assert v.path == "pluginDefaults[0].values.colour"
    assert v.message.startswith("unknown property 'colour' for type 'io.kestra.plugin.core.log.Log'")


def test_defaults_apply_to_nested_tasks_and_triggers():
    flow = build(f"""
pluginDefaults:
  - type: {LOG}
    values:
      message: nested default
  - type: io.kestra.plugin.core.trigger.Schedule
    values:
      timezone: Europe/Paris
tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: a
        type: {LOG}
triggers:
  - id: s
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
""")
    assert flow.tasks[0].tasks[0].message == "nested default"
    assert flow.triggers[0].timezone == "Europe/Paris"
