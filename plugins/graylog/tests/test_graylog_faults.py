"""Faults: error statuses, rate limits, timeouts, an unreachable or non-HTTP input, a kill mid-ship.

Every failure leaves the offset right after the last message Graylog accepted, so the next run
ships the rest: across both runs each line arrives exactly once.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from graylog_support import lines_of, noisy, shipper
from roost.store.db import SqlKV
from roost.testing.http import closed_port

FIFTY = [f"line {i}" for i in range(1, 51)]


def logs_of(engine, ex) -> str:
    return "\n".join(r["message"] for r in engine.store.get_logs("main", ex.id))


def ship(run_flow, endpoint: str, **exporter):
    return run_flow(shipper({"endpoint": endpoint, "chunk": 10, **exporter}))


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (400, "HTTP 400"),
        (401, "requires an authorization header"),
        (403, "refused the credentials"),
        (404, "must end with /gelf"),
        (413, "lower `maxRequestSize`"),
        (500, "HTTP 500"),
        (502, "HTTP 502"),
        (503, "HTTP 503"),
    ],
)
def test_error_status_fails_the_run_and_the_next_run_resumes(run_flow, roost_engine, graylog, status, words):
    assert run_flow(noisy(50)).state.current == "SUCCESS"
    graylog.inject_at(23, status)  # mid third batch of ten
    failed = ship(run_flow, graylog.endpoint)
    assert failed.state.current == "FAILED"
    text = logs_of(roost_engine, failed)
    assert "Graylog GELF HTTP input error on POST" in text and words in text, text
    assert lines_of(graylog.messages) == FIFTY[:22]
    ok = ship(run_flow, graylog.endpoint)
    assert ok.state.current == "SUCCESS", logs_of(roost_engine, ok)
    assert lines_of(graylog.messages) == FIFTY  # exactly once across both runs


def test_rate_limit_is_waited_out_and_nothing_is_sent_twice(run_flow, roost_engine, graylog):
    run_flow(noisy(50))
    graylog.inject_at(5, 429, headers={"Retry-After": "0"})
    graylog.inject_at(31, 503, headers={"Retry-After": "0"})
    ex = ship(run_flow, graylog.endpoint)
    assert ex.state.current == "SUCCESS", logs_of(roost_engine, ex)
    assert lines_of(graylog.messages) == FIFTY
    text = logs_of(roost_engine, ex)
    assert "answered HTTP 429" in text and "answered HTTP 503" in text


def test_rate_limit_asking_too_long_a_wait_fails_and_resumes(run_flow, roost_engine, graylog):
    run_flow(noisy(50))
    graylog.inject_at(12, 429, headers={"Retry-After": "3600"})
    failed = ship(run_flow, graylog.endpoint)
    assert failed.state.current == "FAILED"
    assert "asked to retry after 3600s" in logs_of(roost_engine, failed)
    assert ship(run_flow, graylog.endpoint).state.current == "SUCCESS"
    assert lines_of(graylog.messages) == FIFTY


def test_unreachable_input_fails_without_moving_the_offset(run_flow, roost_engine, graylog):
    run_flow(noisy(50))
    failed = ship(run_flow, f"http://127.0.0.1:{closed_port()}/gelf")
    assert failed.state.current == "FAILED"
    assert "cannot reach Graylog GELF HTTP input" in logs_of(roost_engine, failed)
    state = SqlKV(roost_engine.store).get("system", "LogShipper-state")
    assert not (isinstance(state, dict) and state.get("exporters", {}).get("graylog"))  # nothing acknowledged
    assert ship(run_flow, graylog.endpoint).state.current == "SUCCESS"
    assert lines_of(graylog.messages) == FIFTY


def test_timeout_fails_and_the_unanswered_message_is_sent_again(run_flow, roost_engine, graylog):
    run_flow(noisy(50))
    graylog.inject_at(17, 202, delay=5)
    failed = ship(run_flow, graylog.endpoint, options={"timeout": {"readIdleTimeout": "PT0.5S"}})
    assert failed.state.current == "FAILED"
    assert "did not answer POST" in logs_of(roost_engine, failed)
    assert ship(run_flow, graylog.endpoint).state.current == "SUCCESS"
    assert lines_of(graylog.messages) == FIFTY


def test_redirect_not_followed_is_not_taken_for_acceptance(run_flow, roost_engine, graylog):
    run_flow(noisy(50))
    graylog.inject_at(3, 302, headers={"Location": "http://elsewhere.invalid/gelf"})
    failed = ship(run_flow, graylog.endpoint, options={"followRedirects": False})
    assert failed.state.current == "FAILED"
    assert "expected 202 Accepted, got HTTP 302" in logs_of(roost_engine, failed)
    assert ship(run_flow, graylog.endpoint).state.current == "SUCCESS"
    assert lines_of(graylog.messages) == FIFTY


class NotHttp:
    """A TCP server that answers every connection with bytes that are not HTTP."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"220 mail.example.com ESMTP ready\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def test_an_answer_that_is_not_http_fails_clearly(run_flow, roost_engine, graylog):
    run_flow(noisy(50))
    server = NotHttp()
    try:
        failed = ship(run_flow, f"http://127.0.0.1:{server.port}/gelf")
    finally:
        server.close()
    assert failed.state.current == "FAILED"
    assert "Graylog GELF HTTP input request POST" in logs_of(roost_engine, failed)
    assert ship(run_flow, graylog.endpoint).state.current == "SUCCESS"
    assert lines_of(graylog.messages) == FIFTY


def test_kill_during_a_long_ship_resumes_after_the_last_accepted_message(run_flow, roost_engine, graylog):
    run_flow(noisy(50))
    graylog.inject_at(27, 202, delay=30)  # Graylog hangs on the 27th message
    flow = roost_engine.deploy(shipper({"endpoint": graylog.endpoint, "chunk": 10}))
    ex = roost_engine.create_execution(flow)
    deadline = time.time() + 20
    while len(graylog.requests) < 27 and time.time() < deadline:
        time.sleep(0.02)
    started = time.time()
    roost_engine.kill(ex.id)
    killed = roost_engine.wait(ex.id, 20)
    assert killed.state.current == "KILLED"
    assert time.time() - started < 5  # the hanging request does not hold the kill
    assert lines_of(graylog.messages) == FIFTY[:26]
    state = SqlKV(roost_engine.store).get("system", "LogShipper-state")
    assert state["exporters"]["graylog"]["seq"] > 0
    assert ship(run_flow, graylog.endpoint).state.current == "SUCCESS"
    assert lines_of(graylog.messages) == FIFTY


@pytest.mark.parametrize(
    ("exporter", "words"),
    [
        ({"endpoint": "graylog:12201/gelf"}, "endpoint must be the http(s) URL"),
        ({"graylogHost": "  "}, "graylogHost must not be blank"),
        ({"chunk": 0}, "chunk must be at least 1"),
        ({"headers": {"X-Token": "a\r\nInjected: yes"}}, "header 'X-Token' contains a line break"),
    ],
)
def test_bad_settings_fail_before_anything_is_sent(run_flow, roost_engine, graylog, exporter, words):
    run_flow(noisy(5))
    ex = run_flow(shipper({"endpoint": graylog.endpoint, **exporter}))
    assert ex.state.current == "FAILED"
    assert words in logs_of(roost_engine, ex)
    assert graylog.requests == []
