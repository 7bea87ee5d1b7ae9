"""Log exporters: the register_log_exporters hook, deploy-time validation, and LogShipper's offsets.

A throwaway plugin registers an exporter that keeps what it receives in memory; the engine is real
(SQLite store, executor, worker), so the lines shipped are the lines tasks logged.
"""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from roost import Dynamic, LogExporter, LogRecords, TaskError, hookimpl
from roost.engine.engine import Engine
from roost.flow.build import FlowInvalid, parse_flow
from roost.flow.schema import flow_schema
from roost.store.db import SqlKV, Store
from roost.testing import registered
from support import flow

RECEIVED: dict[str, list[list[dict[str, Any]]]] = {}
BLOCKED = threading.Event()


class Collect(LogExporter, type="io.test.log.Collect", aliases=("io.test.log.Keep",)):
    """Keep the batches received in memory (tests)."""

    chunk: Dynamic[int] = 100
    """Log lines per batch."""
    fail_at: int | None = None
    """Take half of this batch (0-based), acknowledging each line, then fail."""
    block_at: int | None = None
    """Wait for a kill on this batch."""
    label: Dynamic[str] = "plain"
    """Rendered at run time (expressions, secrets)."""

    def export(self, ctx: Any, records: LogRecords) -> dict[str, Any]:
        sink = RECEIVED.setdefault(self.id, [])
        n = 0
        for n, batch in enumerate(records.batches(self.chunk), start=1):
            if self.fail_at == n - 1:  # the receiver takes half the batch, then fails
                sink.append(batch[: len(batch) // 2])
                for record in batch[: len(batch) // 2]:
                    records.acknowledge(record)
                raise TaskError(f"receiver refused batch {n - 1}")
            if self.block_at == n - 1:
                BLOCKED.set()
                ctx.sleep(60)
            sink.append(batch)
        ctx.logger.info("collector %s saw label %s", self.id, self.label)
        return {"batches": n, "label": self.label}


class Exporters:
    @hookimpl
    def register_log_exporters(self, register):
        register(Collect)


@pytest.fixture
def engine(tmp_path):
    RECEIVED.clear()
    BLOCKED.clear()
    with registered(Exporters()):
        eng = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=4).start()
        try:
            yield eng
        finally:
            eng.stop()
            eng.store.close()


def shipper(exporters: str, extra: str = "", id: str = "ship") -> str:
    """A flow in namespace ``system`` with one LogShipper; ``extra`` holds more properties, one a line."""
    lines = [
        "id: " + id,
        "namespace: system",
        "tasks:",
        "  - id: ship",
        "    type: io.kestra.plugin.ee.core.log.LogShipper",
    ]
    lines += ["    " + line.strip() for line in extra.splitlines() if line.strip()]
    lines += ["    logExporters:"] + ["      " + line for line in exporters.strip().splitlines()]
    return "\n".join(lines) + "\n"


def add_lines(store: Store, n: int, *, namespace: str = "company.team", level: str = "INFO", at: datetime | None = None,
              prefix: str = "line") -> None:  # fmt: skip
    stamp = (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    store.add_logs("main", [{"namespace": namespace, "flowId": "gen", "executionId": "ex1", "taskId": "t",
                             "taskRunId": "tr", "timestamp": stamp, "level": level, "message": f"{prefix} {i}"}
                            for i in range(n)])  # fmt: skip


def shipped(exporter_id: str, prefix: str = "line") -> list[str]:
    return [
        r["message"]
        for batch in RECEIVED.get(exporter_id, [])
        for r in batch
        if r["message"].startswith(prefix)
    ]


def errors(engine: Engine, ex: Any) -> str:
    """The ERROR lines an execution logged (a failed task's error is one)."""
    return "\n".join(r["message"] for r in engine.store.get_logs("main", ex.id, min_level="ERROR"))


def run(engine: Engine, source: str, timeout: float = 60) -> Any:
    return engine.run(engine.deploy(source), timeout=timeout)


# -- the hook and the registry --------------------------------------------------------------------------
def test_exporters_register_through_the_hook_and_resolve_like_task_types(engine):
    plugins = engine.plugins
    assert plugins.resolve("io.test.log.Collect") is Collect
    assert plugins.resolve("io.test.log.Keep") is Collect
    assert "io.test.log.Collect" in plugins.log_exporter_types()
    assert "io.test.log.Collect" not in plugins.task_types()
    info = plugins.info["throwaway"]
    assert "register_log_exporters" in info.hooks and "io.test.log.Collect" in info.types
    assert plugins.resolve("io.kestra.plugin.ee.core.log.LogShipper") is not None


def test_flow_schema_offers_installed_exporters_under_log_exporters(engine):
    schema = flow_schema(engine.plugins)
    defs = schema["$defs"]
    prop = defs["io.kestra.plugin.ee.core.log.LogShipper"]["properties"]["logExporters"]
    assert prop["items"] == {"$ref": "#/$defs/__logExporter"}
    assert {"$ref": "#/$defs/io.test.log.Collect"} in defs["__logExporter"]["oneOf"]
    assert defs["io.test.log.Collect"]["properties"]["type"]["const"] == "io.test.log.Collect"
    assert defs["io.test.log.Collect"]["properties"]["chunk"]["$dynamic"] is True


def test_plugin_list_route_shape_lists_exporters(engine):
    from roost.server.routes.plugins import plugin_list

    mine = next(p for p in plugin_list(engine.plugins) if p["name"] == "throwaway")
    assert [e["cls"] for e in mine["logExporters"]] == ["io.test.log.Collect"]
    assert mine["tasks"] == []


# -- validation at deploy time --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exporters", "expected"),
    [
        ("- id: c\n  type: io.test.log.Nope", "tasks[0].logExporters[0].type: unknown log exporter type 'io.test.log.Nope'"),
        ("- id: c\n  type: io.test.log.Collect\n  chunk: lots", "tasks[0].logExporters[0].chunk: expected an integer or a {{ expression }}"),
        ("- id: c\n  type: io.test.log.Collect\n  colour: red", "tasks[0].logExporters[0].colour: unknown property 'colour'; known properties:"),
        ("- type: io.test.log.Collect", "tasks[0].logExporters[0].id: missing required property 'id'"),
        ("- id: c\n  type: io.test.log.Collect\n- id: c\n  type: io.test.log.Collect", "two log exporters have the id 'c'"),
        ("- id: c\n  type: io.kestra.plugin.core.log.Log", "unknown log exporter type 'io.kestra.plugin.core.log.Log'"),
        ("- just a string", "tasks[0].logExporters[0]: expected a log exporter (a mapping with id and type), got a string"),
    ],
)  # fmt: skip
def test_bad_exporters_are_deploy_time_violations_with_path_and_line(engine, exporters, expected):
    with pytest.raises(FlowInvalid) as caught:
        engine.deploy(shipper(exporters))
    text = str(caught.value)
    assert expected in text, text
    assert "(line " in text
    assert engine.store.get_flow("main", "system", "ship") is None  # nothing half-written


def test_log_exporters_must_not_be_empty(engine):
    with pytest.raises(FlowInvalid, match=r"logExporters: expected at least 1 item"):
        engine.deploy(shipper("[]").replace("logExporters:\n      []", "logExporters: []"))


def test_plugin_defaults_apply_to_exporters(engine):
    source = shipper("- id: c\n  type: io.test.log.Collect") + (
        "\npluginDefaults:\n  - type: io.test.log.Collect\n    values:\n      chunk: 7\n"
    )
    parsed = parse_flow(source, engine.plugins)
    assert parsed.tasks[0].log_exporters[0].chunk == 7


def test_shipper_built_outside_a_flow_file_resolves_exporters(engine):
    from roost.builtin.log_shipper import LogShipper

    task = LogShipper.model_validate(
        {
            "id": "s",
            "type": LogShipper.type_id,
            "logExporters": [{"id": "c", "type": "io.test.log.Collect", "chunk": 3}],
        }
    )
    assert isinstance(task.log_exporters[0], Collect) and task.log_exporters[0].chunk == 3
    with pytest.raises(ValueError, match="unknown log exporter type 'io.x.Nope'"):
        LogShipper.model_validate(
            {"id": "s", "type": LogShipper.type_id, "logExporters": [{"id": "c", "type": "io.x.Nope"}]}
        )


# -- shipping -------------------------------------------------------------------------------------------
def test_lines_are_shipped_once_in_order_in_batches_of_chunk(engine):
    add_lines(engine.store, 1234)
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect\n  chunk: 100", extra="batchSize: 333"))
    assert ex.state.current == "SUCCESS", ex.error
    assert shipped("c") == [f"line {i}" for i in range(1234)]
    assert all(len(b) <= 100 for b in RECEIVED["c"])
    assert [len(b) for b in RECEIVED["c"]][:12] == [100] * 12
    outputs = ex.task_runs[0].outputs
    assert outputs["count"] == 1234 and outputs["outputs"]["c"]["count"] == 1234
    assert outputs["outputs"]["c"]["batches"] == 13

    RECEIVED.clear()
    add_lines(engine.store, 5, prefix="later")
    again = run(engine, shipper("- id: c\n  type: io.test.log.Collect\n  chunk: 100"))
    assert again.state.current == "SUCCESS"
    assert shipped("c") == []  # nothing twice
    assert shipped("c", "later") == [f"later {i}" for i in range(5)]  # nothing skipped
    # the first run's own log lines (written after its range was fixed) come with the second run
    assert any(r["message"].startswith("shipped 1234 log line(s)") for b in RECEIVED["c"] for r in b)


def test_filters_level_namespace_flow_and_execution(engine):
    add_lines(engine.store, 3, level="DEBUG", prefix="debug")
    add_lines(engine.store, 3, level="WARN", prefix="warn")
    add_lines(engine.store, 3, namespace="company.team.sub", prefix="child")
    add_lines(engine.store, 3, namespace="other", prefix="other")
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect", extra="namespace: company.team"))
    assert ex.state.current == "SUCCESS", ex.error
    messages = [r["message"] for b in RECEIVED["c"] for r in b]
    assert messages == [f"warn {i}" for i in range(3)] + [f"child {i}" for i in range(3)]

    RECEIVED.clear()
    ex = run(engine, shipper("- id: d\n  type: io.test.log.Collect",
                             extra="logLevelFilter: DEBUG\nflowId: gen\nexecutionId: ex1", id="ship2"))  # fmt: skip
    assert ex.state.current == "SUCCESS", ex.error
    assert len([r for b in RECEIVED["d"] for r in b]) == 12


def test_lookback_period_bounds_the_first_run_only(engine):
    add_lines(engine.store, 4, at=datetime.now(UTC) - timedelta(days=3), prefix="old")
    add_lines(engine.store, 2, prefix="new")
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect"))
    assert ex.state.current == "SUCCESS", ex.error
    assert shipped("c", "old") == [] and shipped("c", "new") == ["new 0", "new 1"]
    RECEIVED.clear()
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect", extra="lookbackPeriod: P7D"))
    assert shipped("c", "old") == [] and shipped("c", "new") == []  # the offset wins over the lookback


def test_a_failure_keeps_what_was_acknowledged_and_the_next_run_resumes_right_after(engine):
    add_lines(engine.store, 250)
    failing = "- id: c\n  type: io.test.log.Collect\n  chunk: 50\n  failAt: 3"
    ex = run(engine, shipper(failing))
    assert ex.state.current == "FAILED"
    assert "log exporter 'c' (io.test.log.Collect): receiver refused batch 3" in errors(engine, ex)
    assert shipped("c") == [f"line {i}" for i in range(175)]  # three batches, and half the fourth
    state = SqlKV(engine.store).get("system", "LogShipper-state")
    assert state["exporters"]["c"]["seq"] == RECEIVED["c"][-1][-1]["seq"]
    assert state["exporters"]["c"]["timestamp"] == RECEIVED["c"][-1][-1]["timestamp"]

    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect\n  chunk: 50"))
    assert ex.state.current == "SUCCESS", ex.error
    assert shipped("c") == [f"line {i}" for i in range(250)]  # none lost, none twice


def test_one_failing_exporter_does_not_hold_back_the_others(engine):
    add_lines(engine.store, 30)
    ex = run(engine, shipper("- id: bad\n  type: io.test.log.Collect\n  chunk: 10\n  failAt: 0\n"
                             "- id: good\n  type: io.test.log.Collect\n  chunk: 10"))  # fmt: skip
    assert ex.state.current == "FAILED"
    assert shipped("good") == [f"line {i}" for i in range(30)] and shipped("bad") == [
        f"line {i}" for i in range(5)
    ]
    ex = run(engine, shipper("- id: bad\n  type: io.test.log.Collect\n  chunk: 10\n"
                             "- id: good\n  type: io.test.log.Collect\n  chunk: 10"))  # fmt: skip
    assert ex.state.current == "SUCCESS", ex.error
    assert shipped("bad") == [f"line {i}" for i in range(30)]
    assert shipped("good") == [f"line {i}" for i in range(30)]  # not shipped twice


def test_kill_during_a_long_ship_resumes_after_the_last_acknowledged_batch(engine):
    add_lines(engine.store, 100)
    f = engine.deploy(shipper("- id: c\n  type: io.test.log.Collect\n  chunk: 10\n  blockAt: 4"))
    ex = engine.create_execution(f)
    assert BLOCKED.wait(20)
    engine.kill(ex.id)
    killed = engine.wait(ex.id, 20)
    assert killed.state.current == "KILLED"
    assert shipped("c") == [f"line {i}" for i in range(40)]
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect\n  chunk: 10"))
    assert ex.state.current == "SUCCESS", ex.error
    assert shipped("c") == [f"line {i}" for i in range(100)]


def test_delete_removes_only_what_was_shipped(engine):
    add_lines(engine.store, 5, prefix="keep-old", at=datetime.now(UTC) - timedelta(days=2))
    add_lines(engine.store, 5, level="DEBUG", prefix="keep-debug")
    add_lines(engine.store, 5, prefix="ship")
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect", extra="delete: true"))
    assert ex.state.current == "SUCCESS", ex.error
    left = [r["message"] for r in engine.store.get_logs("main")]
    assert not any(m.startswith("ship ") for m in left)
    assert (
        sum(m.startswith("keep-old") for m in left) == 5
        and sum(m.startswith("keep-debug") for m in left) == 5
    )


def test_exporter_properties_are_rendered_and_secrets_masked(engine, monkeypatch):
    monkeypatch.setenv("SECRET_COLLECT_LABEL", base64.b64encode(b"s3cr3t-label").decode())
    add_lines(engine.store, 1)
    ex = run(
        engine, shipper("- id: c\n  type: io.test.log.Collect\n  label: \"{{ secret('COLLECT_LABEL') }}\"")
    )
    assert ex.state.current == "SUCCESS", ex.error
    assert ex.task_runs[0].outputs["outputs"]["c"]["label"] == "s3cr3t-label"
    logged = [r["message"] for r in engine.store.get_logs("main", ex.id)]
    assert "collector c saw label ******" in logged
    assert not any("s3cr3t-label" in m for m in logged)


def test_a_date_under_the_offset_key_ships_what_came_after_it(engine):
    add_lines(engine.store, 3, at=datetime.now(UTC) - timedelta(hours=5), prefix="before")
    add_lines(engine.store, 3, at=datetime.now(UTC) - timedelta(hours=1), prefix="after")
    SqlKV(engine.store).put("system", "from-date", (datetime.now(UTC) - timedelta(hours=2)).isoformat())
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect", extra="offsetKey: from-date"))
    assert ex.state.current == "SUCCESS", ex.error
    assert shipped("c", "before") == [] and shipped("c", "after") == ["after 0", "after 1", "after 2"]


def test_a_foreign_value_under_the_offset_key_is_a_clear_error(engine):
    SqlKV(engine.store).put("system", "taken", [1, 2, 3])
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect", extra="offsetKey: taken"))
    assert ex.state.current == "FAILED"
    assert "KV key 'taken' of namespace 'system' holds" in errors(engine, ex)
    assert SqlKV(engine.store).get("system", "taken") == [1, 2, 3]


def test_an_offset_key_the_kv_store_refuses_fails_before_shipping(engine):
    add_lines(engine.store, 3)
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect", extra="offsetKey: 'my key/../x'"))
    assert ex.state.current == "FAILED"
    assert "offsetKey: invalid key 'my key/../x'" in errors(engine, ex)
    assert RECEIVED == {}


def test_lines_logged_by_tasks_are_shipped_masked(engine, monkeypatch):
    monkeypatch.setenv("SECRET_DB_PASSWORD", base64.b64encode(b"hunter2-very-secret").decode())
    gen = flow("""
        tasks:
          - id: connect
            type: io.kestra.plugin.core.log.Log
            message: "connecting with {{ secret('DB_PASSWORD') }}"
          - id: say
            type: io.kestra.plugin.core.log.Log
            message: done
    """, id="gen")  # fmt: skip
    assert run(engine, gen).state.current == "SUCCESS"
    ex = run(engine, shipper("- id: c\n  type: io.test.log.Collect", extra="flowId: gen"))
    assert ex.state.current == "SUCCESS", ex.error
    messages = [r["message"] for b in RECEIVED["c"] for r in b]
    assert "done" in messages
    assert any(m.startswith("connecting with ") for m in messages)
    assert not any("hunter2" in m for m in messages)
    record = next(r for b in RECEIVED["c"] for r in b if r["message"] == "done")
    assert record["flowId"] == "gen" and record["namespace"] == "company.team" and record["taskId"] == "say"
    assert record["level"] == "INFO" and record["tenantId"] == "main" and record["executionId"]


# -- the record stream ----------------------------------------------------------------------------------
def test_log_records_are_read_lazily_page_by_page_and_once():
    pulled: list[int] = []

    def pages():
        for p in range(5):
            pulled.append(p)
            yield [{"seq": p * 10 + i, "message": str(i)} for i in range(10)]

    acknowledged: list[int] = []
    records = LogRecords(pages(), on_checkpoint=lambda r: acknowledged.append(r["seq"]))
    batches = records.batches(4)
    first = next(batches)
    assert [r["seq"] for r in first] == [0, 1, 2, 3] and pulled == [0] and acknowledged == []
    next(batches)
    assert acknowledged == [3]  # asking for the next batch acknowledges the previous one
    rest = list(batches)
    assert sum(len(b) for b in rest) == 42 and acknowledged[-1] == 49 and records.count == 50
    with pytest.raises(RuntimeError, match="read once"):
        list(records)
    with pytest.raises(ValueError):
        next(LogRecords.of([]).batches(0))


def test_an_exporter_of_a_plugin_not_installed_names_its_package(engine):
    with pytest.raises(FlowInvalid) as caught:
        engine.deploy(
            shipper("- id: g\n  type: io.kestra.plugin.ee.graylog.LogExporter\n  endpoint: http://x/gelf")
        )
    assert "provided by the plugin package 'roost-plugin-graylog' (pip install roost-plugin-graylog" in str(
        caught.value
    )


# -- FileLogExporter ------------------------------------------------------------------------------------
KESTRA_FILE_EXAMPLE = """
id: log_shipper_file
namespace: system

tasks:
  - id: synchronize_logs
    type: io.kestra.plugin.ee.core.log.LogShipper
    logLevelFilter: INFO
    lookbackPeriod: P1D
    offsetKey: LogShipper-local-demo
    delete: false
    namespace: company.team
    logExporters:
      - id: file
        type: io.kestra.plugin.ee.core.log.FileLogExporter

  - id: where
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.synchronize_logs.outputs.file.uri }}"
"""


def test_file_exporter_writes_ion_by_default_as_kestra_documents(engine):
    from amazon.ion import simpleion

    add_lines(engine.store, 25)
    engine.store.add_logs("main", [{"namespace": "company.team", "flowId": "gen", "executionId": "ex1",
                                    "timestamp": "2025-01-01T00:00:00Z", "level": "WARN",
                                    "message": 'quote " backslash \\ newline \n tab \t é 😀 \x7f'}])  # fmt: skip
    ex = run(engine, KESTRA_FILE_EXAMPLE.replace("lookbackPeriod: P1D", "lookbackPeriod: P10000D"))
    assert ex.state.current == "SUCCESS", errors(engine, ex)
    uri = next(tr for tr in ex.task_runs if tr.task_id == "where").outputs["value"]
    assert uri.startswith("kestra:///system/log_shipper_file/executions/") and uri.endswith(".ion")
    data = engine.runtime().storage.get(uri).decode()
    values = list(simpleion.loads(data, single_value=False))
    assert [v["message"] for v in values[:25]] == [f"line {i}" for i in range(25)]
    odd = values[25]
    assert odd["message"] == 'quote " backslash \\ newline \n tab \t é 😀 \x7f' and odd["level"] == "WARN"
    assert odd["timestamp"].year == 2025 and odd["timestamp"].tzinfo is not None
    assert odd["taskId"].ion_type.name == "NULL"  # an Ion null, as the stored line has no task
    assert len(data.splitlines()) == 26  # one line per log line


def test_file_exporter_json_lines_rolled_by_max_lines_per_file(engine):
    import json

    add_lines(engine.store, 25)
    source = shipper(
        "- id: file\n  type: io.kestra.plugin.ee.core.log.FileLogExporter\n  format: JSON\n"
        "  maxLinesPerFile: 10\n  logFilePrefix: audit"
    ).replace(
        "    type: io.kestra.plugin.ee.core.log.LogShipper",
        "    type: io.kestra.plugin.ee.core.log.LogShipper\n    flowId: gen",
    )
    ex = run(engine, source)
    assert ex.state.current == "SUCCESS", errors(engine, ex)
    out = ex.task_runs[0].outputs["outputs"]["file"]
    assert len(out["uris"]) == 3 and out["uri"] == out["uris"][0] and out["count"] == 25
    assert [u.rsplit("/", 1)[-1].split("-", 1)[1].startswith("audit-") for u in out["uris"]] == [True] * 3
    lines = [
        json.loads(x) for u in out["uris"] for x in engine.runtime().storage.get(u).decode().splitlines()
    ]
    assert [x["message"] for x in lines] == [f"line {i}" for i in range(25)]
    assert [len(engine.runtime().storage.get(u).decode().splitlines()) for u in out["uris"]] == [10, 10, 5]


def test_file_exporter_refuses_a_prefix_that_could_leave_its_folder(engine):
    add_lines(engine.store, 1)
    ex = run(
        engine,
        shipper(
            "- id: file\n  type: io.kestra.plugin.ee.core.log.FileLogExporter\n  logFilePrefix: ../../etc"
        ),
    )
    assert ex.state.current == "FAILED"
    assert "logFilePrefix must be letters, digits" in errors(engine, ex)
