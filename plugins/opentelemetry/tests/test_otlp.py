"""The OTLP exporter through the real engine, decoded with OpenTelemetry's own protocol definitions."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from fake_collector import FakeCollector
from roost.store.db import SqlKV
from roost.testing.http import closed_port
from roost.testing.suite import TypeSuite
from roost_opentelemetry.exporter import OtlpExporter

TYPE = "io.kestra.plugin.ee.opentelemetry.LogExporter"
# Kestra's documented example for its OTLP log exporter, as written on kestra.io.
KESTRA_EXAMPLE = """
id: log_shipper
namespace: company.team

triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"

tasks:
  - id: log_export
    type: io.kestra.plugin.ee.core.log.LogShipper
    logLevelFilter: INFO
    batchSize: 1000
    lookbackPeriod: P1D
    logExporters:
      - id: OTLPLogExporter
        type: io.kestra.plugin.ee.opentelemetry.LogExporter
        otlpEndpoint: http://localhost:4318/v1/logs
        authorizationHeaderName: Authorization
        authorizationHeaderValue: Bearer token
"""
README_FLOWS = re.findall(
    r"```yaml\n(.*?)```", (Path(__file__).resolve().parents[1] / "README.md").read_text(), re.S
)


class TestOtlpTypes(TypeSuite):
    types = (OtlpExporter,)
    examples = [KESTRA_EXAMPLE, *README_FLOWS]


def noisy(lines: int, prefix: str = "line") -> str:
    return textwrap.dedent(f"""
        id: noisy
        namespace: company.team
        tasks:
          - id: print
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - seq 1 {lines} | sed 's/^/{prefix} /'
              - echo 'to stderr' >&2
    """)


def shipper(**exporter: Any) -> str:
    return json.dumps({"id": "ship", "namespace": "system", "tasks": [{
        "id": "ship", "type": "io.kestra.plugin.ee.core.log.LogShipper", "flowId": "noisy",
        "logExporters": [{"id": "otel", "type": TYPE, **exporter}]}]})  # fmt: skip


def bodies(collector: FakeCollector, prefix: str = "line") -> list[str]:
    return [r["body"] for r in collector.records() if r["body"].startswith(prefix)]


def logs_of(engine, ex) -> str:
    return "\n".join(r["message"] for r in engine.store.get_logs("main", ex.id))


def test_entry_point_registers_the_exporter_lazily(monkeypatch):
    from roost.plugins import Plugins

    monkeypatch.setenv("ROOST_LOAD_PLUGINS", "opentelemetry")
    plugins = Plugins()
    assert plugins.log_exporter_types()[TYPE] is OtlpExporter
    assert plugins.info["opentelemetry"].distribution == "roost-plugin-opentelemetry"
    code = "import sys, roost_opentelemetry.plugin; print('roost_opentelemetry.exporter' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


def test_lines_arrive_as_otlp_log_records_in_chunks(run_flow, roost_engine, collector):
    assert run_flow(noisy(2500)).state.current == "SUCCESS"
    started = time.time_ns()
    ex = run_flow(shipper(otlpEndpoint=collector.endpoint, serviceName="roost-prod", compression="GZIP"))
    assert ex.state.current == "SUCCESS", logs_of(roost_engine, ex)
    assert bodies(collector) == [f"line {i}" for i in range(1, 2501)]
    assert [len(e.resource_logs[0].scope_logs[0].log_records) for e in collector.exports] == [1000, 1000, 501]
    first = next(r for r in collector.records() if r["body"] == "line 1")
    assert first["resource"] == {"service.name": "roost-prod"} and first["scope"] == "roost"
    assert first["severityNumber"] == 9 and first["severityText"] == "INFO"
    assert started - 120 * 10**9 < first["timeUnixNano"] <= time.time_ns()
    assert first["attributes"]["flowId"] == "noisy" and first["attributes"]["namespace"] == "company.team"
    assert first["attributes"]["tenantId"] == "main" and first["attributes"]["taskId"] == "print"
    assert {"executionId", "taskRunId"} <= set(first["attributes"])
    stderr = next(r for r in collector.records() if r["body"] == "to stderr")
    assert stderr["severityNumber"] == 17 and stderr["severityText"] == "ERROR"
    assert ex.task_runs[0].outputs["outputs"]["otel"] == {"count": 2501, "requests": 3, "rejected": 0}


def test_kestra_example_authenticates_with_its_header(run_flow, roost_engine, monkeypatch):
    monkeypatch.setenv("SECRET_OTEL_TOKEN", base64.b64encode(b"otel-secret-7").decode())
    guarded = FakeCollector(token="otel-secret-7").start()
    try:
        run_flow(noisy(3))
        denied = run_flow(shipper(otlpEndpoint=guarded.endpoint))
        assert denied.state.current == "FAILED"
        assert "OTLP collector error on POST" in logs_of(roost_engine, denied)
        assert "missing or wrong bearer token" in logs_of(roost_engine, denied)
        example = KESTRA_EXAMPLE.replace("http://localhost:4318/v1/logs", guarded.endpoint).replace(
            "Bearer token", "\"Bearer {{ secret('OTEL_TOKEN') }}\""
        )
        ok = run_flow(example)
        assert ok.state.current == "SUCCESS", logs_of(roost_engine, ok)
        assert len(bodies(guarded)) == 3
        assert "otel-secret-7" not in logs_of(roost_engine, ok) + logs_of(roost_engine, denied)
    finally:
        guarded.stop()


def test_partial_success_is_counted_and_logged_not_retried(run_flow, roost_engine):
    dropping = FakeCollector(reject_every=2).start()
    try:
        run_flow(noisy(5))
        ex = run_flow(shipper(otlpEndpoint=dropping.endpoint, chunk=3))
        assert ex.state.current == "SUCCESS"
        assert ex.task_runs[0].outputs["outputs"]["otel"]["rejected"] == 4  # two requests, two dropped each
        assert len(dropping.exports) == 2
        assert "OTLP collector: records too old" in logs_of(roost_engine, ex)
    finally:
        dropping.stop()


@pytest.mark.parametrize(("status", "words"), [(400, "bad data"), (500, "HTTP 500"), (502, "HTTP 502")])
def test_error_answers_fail_and_the_next_run_resumes(run_flow, roost_engine, collector, status, words):
    run_flow(noisy(25))
    collector.inject(status, {"code": 3, "message": "bad data"} if status == 400 else "", path="/v1/logs")
    ex = run_flow(shipper(otlpEndpoint=collector.endpoint, chunk=10))
    assert ex.state.current == "FAILED" and words in logs_of(roost_engine, ex)
    ok = run_flow(shipper(otlpEndpoint=collector.endpoint, chunk=10))
    assert ok.state.current == "SUCCESS"
    assert bodies(collector) == [f"line {i}" for i in range(1, 26)]


def test_rate_limit_is_waited_out(run_flow, roost_engine, collector):
    run_flow(noisy(25))
    collector.inject(429, {"code": 8, "message": "slow down"}, headers={"Retry-After": "0"}, times=2)
    ex = run_flow(shipper(otlpEndpoint=collector.endpoint, chunk=10))
    assert ex.state.current == "SUCCESS", logs_of(roost_engine, ex)
    assert bodies(collector) == [f"line {i}" for i in range(1, 26)]


def test_malformed_success_answer_fails_clearly(run_flow, roost_engine, collector):
    run_flow(noisy(5))
    collector.inject(200, "<html>proxy login</html>", content_type="text/html")
    ex = run_flow(shipper(otlpEndpoint=collector.endpoint))
    assert ex.state.current == "FAILED"
    assert "returned a malformed response" in logs_of(roost_engine, ex)


def test_unreachable_collector_moves_no_offset(run_flow, roost_engine, collector):
    run_flow(noisy(5))
    ex = run_flow(shipper(otlpEndpoint=f"http://127.0.0.1:{closed_port()}/v1/logs"))
    assert ex.state.current == "FAILED" and "cannot reach OTLP collector" in logs_of(roost_engine, ex)
    assert run_flow(shipper(otlpEndpoint=collector.endpoint)).state.current == "SUCCESS"
    assert bodies(collector) == [f"line {i}" for i in range(1, 6)]


def test_kill_mid_ship_resumes_after_the_last_accepted_request(run_flow, roost_engine, collector):
    run_flow(noisy(50))
    collector.inject_at(3, 200, delay=30)  # the collector hangs on the third request
    ex = roost_engine.create_execution(
        roost_engine.deploy(shipper(otlpEndpoint=collector.endpoint, chunk=10))
    )
    deadline = time.time() + 20
    while len(collector.requests) < 3 and time.time() < deadline:
        time.sleep(0.01)
    roost_engine.kill(ex.id)
    assert roost_engine.wait(ex.id, 20).state.current == "KILLED"
    assert bodies(collector) == [f"line {i}" for i in range(1, 21)]
    state = SqlKV(roost_engine.store).get("system", "LogShipper-state")
    assert state["exporters"]["otel"]["seq"] > 0
    assert run_flow(shipper(otlpEndpoint=collector.endpoint, chunk=10)).state.current == "SUCCESS"
    assert bodies(collector) == [f"line {i}" for i in range(1, 51)]
