"""Shipping through the real engine to a GELF HTTP input: 10,000 lines, both modes, fields, secrets, auth, TLS."""

from __future__ import annotations

import base64
import time
from collections import Counter

import pytest
from fake_graylog import FakeGraylog
from graylog_support import KESTRA_EXAMPLE, lines_of, noisy, shipper
from roost.testing.http import self_signed_tls

TEN_THOUSAND = [f"line {i}" for i in range(1, 10001)]


def logs_of(engine, ex) -> list[str]:
    return [r["message"] for r in engine.store.get_logs("main", ex.id)]


def test_kestra_example_ships_ten_thousand_lines_one_message_per_request(run_flow, roost_engine, graylog):
    assert run_flow(noisy(10000), timeout=120).state.current == "SUCCESS"
    started = time.time()
    ex = run_flow(KESTRA_EXAMPLE.replace("http://localhost:12201/gelf", graylog.endpoint), timeout=300)
    assert ex.state.current == "SUCCESS", logs_of(roost_engine, ex)
    got = lines_of(graylog.messages)
    assert got == TEN_THOUSAND  # none lost, none twice, in order
    assert set(graylog.requests_sizes) == {1} and not graylog.dropped
    out = ex.task_runs[0].outputs
    assert out["outputs"]["GraylogExporter"]["requests"] == len(graylog.requests_sizes)
    assert out["count"] == len(graylog.requests_sizes) >= 10000
    first = next(m for m in graylog.messages if m["message"] == "line 1")
    assert first["source"] == "Kestra" and first["level"] == 6 and first["logLevel"] == "INFO"
    assert first["namespace"] == "company.team" and first["flowId"] == "noisy" and first["taskId"] == "print"
    assert first["tenantId"] == "main" and first["executionId"] and first["taskRunId"]
    assert "full_message" not in first and "version" not in first
    assert started - 120 < first["timestamp"] <= time.time()


def test_bulk_mode_ships_ten_thousand_lines_gzipped_in_batches_of_chunk(run_flow, roost_engine, bulk_graylog):
    assert run_flow(noisy(10000), timeout=120).state.current == "SUCCESS"
    ex = run_flow(shipper({"endpoint": bulk_graylog.endpoint, "chunk": 400, "bulkReceiving": True,
                           "compression": "GZIP", "graylogHost": "roost-prod"}), timeout=300)  # fmt: skip
    assert ex.state.current == "SUCCESS", logs_of(roost_engine, ex)
    assert lines_of(bulk_graylog.messages) == TEN_THOUSAND
    assert not bulk_graylog.dropped
    assert max(bulk_graylog.requests_sizes) <= 400  # batches respected...
    assert sum(bulk_graylog.requests_sizes) == 10000  # ...and each request within 64 KiB (else 413)
    assert set(bulk_graylog.encodings) == {"gzip"}
    assert {m["source"] for m in bulk_graylog.messages} == {"roost-prod"}
    assert ex.task_runs[0].outputs["outputs"]["graylog"]["requests"] == len(bulk_graylog.requests_sizes)


def test_bulk_requests_hold_what_fits_in_max_request_size(run_flow, roost_engine):
    small = FakeGraylog(bulk_receiving=True, max_chunk_size=4096).start()
    try:
        assert run_flow(noisy(600)).state.current == "SUCCESS"
        ex = run_flow(shipper({"endpoint": small.endpoint, "bulkReceiving": True, "maxRequestSize": 4096}))
        assert ex.state.current == "SUCCESS", logs_of(roost_engine, ex)
        assert lines_of(small.messages) == [f"line {i}" for i in range(1, 601)]
        assert len(small.requests_sizes) > 600 // 20  # a 4 KiB body holds about 15 of these messages
    finally:
        small.stop()


def test_second_run_ships_only_new_lines(run_flow, graylog):
    run_flow(noisy(50))
    source = shipper({"endpoint": graylog.endpoint, "chunk": 20})
    assert run_flow(source).state.current == "SUCCESS"
    run_flow(noisy(30, prefix="more"))
    assert run_flow(source).state.current == "SUCCESS"
    assert lines_of(graylog.messages) == [f"line {i}" for i in range(1, 51)]
    assert lines_of(graylog.messages, prefix="more") == [f"more {i}" for i in range(1, 31)]


MIXED = """
id: noisy
namespace: company.team
tasks:
  - id: info
    type: io.kestra.plugin.core.log.Log
    message: plain info
  - id: warn
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message: "first\\nsecond"
  - id: debug
    type: io.kestra.plugin.core.log.Log
    level: DEBUG
    message: a debug line
  - id: trace
    type: io.kestra.plugin.core.log.Log
    level: TRACE
    message: a trace line
  - id: blank
    type: io.kestra.plugin.core.log.Log
    level: ERROR
    message: "   "
  - id: script
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - python3 -c 'print("x" * 100000)'
      - echo 'to stderr' >&2
"""


def test_levels_multiline_blank_and_oversized_lines(run_flow, roost_engine, graylog):
    assert run_flow(MIXED).state.current == "SUCCESS"
    ex = run_flow(shipper({"endpoint": graylog.endpoint}, extra={"logLevelFilter": "TRACE"}))
    assert ex.state.current == "SUCCESS", logs_of(roost_engine, ex)
    mine = [m for m in graylog.messages if m.get("flowId") == "noisy"]
    by_task = {m["taskId"]: m for m in mine if m["taskId"] != "script"}
    assert by_task["info"]["message"] == "plain info" and by_task["info"]["level"] == 6
    assert by_task["warn"]["message"] == "first" and by_task["warn"]["full_message"] == "first\nsecond"
    assert by_task["warn"]["level"] == 4 and by_task["warn"]["logLevel"] == "WARN"
    assert (
        by_task["debug"]["level"] == 7
        and by_task["trace"]["level"] == 7
        and by_task["trace"]["logLevel"] == "TRACE"
    )
    assert by_task["blank"]["message"] == "(empty log line)" and by_task["blank"]["level"] == 3
    assert by_task["blank"]["full_message"] == "   "
    stderr = next(m for m in mine if m["message"] == "to stderr")
    assert stderr["level"] == 3 and stderr["logLevel"] == "ERROR"
    big = next(m for m in mine if m["message"].startswith("xxxx"))
    assert big["message"].endswith("more bytes]") and "[truncated by Roost:" in big["message"]
    assert ex.task_runs[0].outputs["outputs"]["graylog"]["truncated"] == 1
    assert any("cut to fit maxRequestSize" in line for line in logs_of(roost_engine, ex))
    assert not graylog.dropped


def test_shipped_lines_carry_no_secret(run_flow, graylog, monkeypatch):
    monkeypatch.setenv("SECRET_DB_PASSWORD", base64.b64encode(b"hunter2-not-for-graylog").decode())
    leak = """
id: leaky
namespace: company.team
tasks:
  - id: connect
    type: io.kestra.plugin.core.log.Log
    message: "connecting with password {{ secret('DB_PASSWORD') }}"
  - id: script
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      PASSWORD: "{{ secret('DB_PASSWORD') }}"
    commands:
      - echo "script sees $PASSWORD"
"""
    assert run_flow(leak).state.current == "SUCCESS"
    assert run_flow(shipper({"endpoint": graylog.endpoint}, flow_id="leaky")).state.current == "SUCCESS"
    texts = [m["message"] for m in graylog.messages if m.get("flowId") == "leaky"]
    assert "connecting with password ******" in texts and "script sees ******" in texts
    assert not any("hunter2" in str(m) for m in graylog.messages)


def test_authorization_header_of_the_input(run_flow, roost_engine, monkeypatch):
    token = "gl-input-token-4242"
    monkeypatch.setenv("SECRET_GRAYLOG_TOKEN", base64.b64encode(token.encode()).decode())
    guarded = FakeGraylog(auth_header=("X-Graylog-Token", token)).start()
    try:
        run_flow(noisy(5))
        denied = run_flow(shipper({"endpoint": guarded.endpoint}))
        assert denied.state.current == "FAILED"
        text = "\n".join(logs_of(roost_engine, denied))
        assert "HTTP 401" in text and "authorization header" in text
        ok = run_flow(
            shipper(
                {
                    "endpoint": guarded.endpoint,
                    "headers": {"X-Graylog-Token": "{{ secret('GRAYLOG_TOKEN') }}"},
                }
            )
        )
        assert ok.state.current == "SUCCESS", logs_of(roost_engine, ok)
        assert lines_of(guarded.messages) == [f"line {i}" for i in range(1, 6)]
        assert not any(token in line for line in logs_of(roost_engine, ok) + logs_of(roost_engine, denied))
    finally:
        guarded.stop()


@pytest.mark.parametrize(
    ("auth", "header"),
    [
        ({"type": "BEARER", "token": "{{ secret('GRAYLOG_TOKEN') }}"}, "Bearer tok-1"),
        ({"type": "BASIC", "username": "roost", "password": "{{ secret('GRAYLOG_TOKEN') }}"},
         "Basic " + base64.b64encode(b"roost:tok-1").decode()),
    ],
)  # fmt: skip
def test_options_auth_sends_the_authorization_header(run_flow, roost_engine, monkeypatch, auth, header):
    monkeypatch.setenv("SECRET_GRAYLOG_TOKEN", base64.b64encode(b"tok-1").decode())
    guarded = FakeGraylog(auth_header=("Authorization", header)).start()
    try:
        run_flow(noisy(3))
        ex = run_flow(shipper({"endpoint": guarded.endpoint, "options": {"auth": auth}}))
        assert ex.state.current == "SUCCESS", logs_of(roost_engine, ex)
        assert len(lines_of(guarded.messages)) == 3
    finally:
        guarded.stop()


def test_tls_is_verified_unless_told_otherwise(run_flow, roost_engine, tmp_path):
    secure = FakeGraylog().start(ssl_context=self_signed_tls(tmp_path))
    try:
        run_flow(noisy(4))
        refused = run_flow(shipper({"endpoint": secure.endpoint}))
        assert refused.state.current == "FAILED"
        assert "CERTIFICATE_VERIFY_FAILED" in "\n".join(logs_of(roost_engine, refused))
        trusted = run_flow(
            shipper({"endpoint": secure.endpoint, "options": {"ssl": {"insecureTrustAllCertificates": True}}})
        )
        assert trusted.state.current == "SUCCESS", logs_of(roost_engine, trusted)
        assert Counter(lines_of(secure.messages)) == Counter(f"line {i}" for i in range(1, 5))
    finally:
        secure.stop()


def test_bulk_body_sent_to_an_input_without_bulk_receiving_is_lost_silently(run_flow, graylog):
    """Why ``bulkReceiving`` is off by default: Graylog answers 202, then cannot decode the body."""
    run_flow(noisy(3))
    ex = run_flow(shipper({"endpoint": graylog.endpoint, "bulkReceiving": True}))
    assert ex.state.current == "SUCCESS"
    assert lines_of(graylog.messages) == [] and graylog.dropped
