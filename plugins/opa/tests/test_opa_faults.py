"""Failures: unreachable OPA, 401/403, 404, 429 with Retry-After, malformed answers, hangs, kill, secrets."""

from __future__ import annotations

import threading
import time
from email.utils import formatdate

import pytest
from opa_support import TOKEN, VM_POLICY, assert_no_secret
from pydantic import ValidationError
from roost.testing import Runtime, TaskRunContext, run_task
from roost.testing.http import closed_port
from roost_opa.client import data_path, data_url, parse_retry_after
from roost_opa.tasks import Compile, Evaluate, List, Upload


def test_unreachable_server():
    result = run_task(
        List,
        url=f"http://127.0.0.1:{closed_port()}",
        token="{{ secret('OPA_TOKEN') }}",
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert result.error.startswith("cannot reach OPA at http://127.0.0.1:")
    assert_no_secret(result)


def test_missing_or_wrong_token_is_a_401(opa):
    no_token = run_task(List, url=opa.url, raise_on_failure=False)
    assert no_token.error == (
        "OPA error on GET /v1/policies (HTTP 401): unauthorized: request rejected by administrative policy (check the token)"
    )
    wrong = run_task(List, url=opa.url, token="{{ secret('OPA_BAD_TOKEN') }}", raise_on_failure=False)
    assert "HTTP 401" in wrong.error and "wrong-token-77" not in wrong.error


def test_forbidden_by_a_gateway_is_a_403(opa, conn):
    opa.inject(status=403, body="<html><h1>403 Forbidden</h1></html>", content_type="text/html")
    result = run_task(Upload, policyId="vm", policy=VM_POLICY, raise_on_failure=False, **conn)
    assert result.error == (
        "OPA error on PUT /v1/policies/vm (HTTP 403): <html><h1>403 Forbidden</h1></html> "
        "(the token is not allowed to make this call)"
    )


def test_unknown_route_is_a_404(opa, conn):
    result = run_task(
        List, url=opa.url + "/not-opa", token="{{ secret('OPA_TOKEN') }}", raise_on_failure=False
    )
    assert result.error == "OPA error on GET /v1/policies (HTTP 404): 404 page not found"


def test_rate_limited_by_a_proxy_honours_retry_after(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    opa.inject(
        status=429, headers={"Retry-After": "1"}, body={"code": "too_many_requests", "message": "slow down"}
    )
    started = time.monotonic()
    result = run_task(
        Evaluate,
        policyPath="vm/admission/allow",
        input={"vm": {"cpus": 1, "memory_mb": 1, "image": "x"}},
        **conn,
    )
    assert time.monotonic() - started >= 1.0
    assert result.outputs["allowed"] is True
    assert any("HTTP 429" in m and "retrying in 1s (retry 1 of 3)" in m for m in result.messages)
    assert len(opa.requests) == 2


def test_rate_limit_gives_up(opa, conn):
    opa.inject(
        status=429,
        headers={"Retry-After": "0"},
        times=4,
        body={"code": "too_many_requests", "message": "slow down"},
    )
    result = run_task(List, raise_on_failure=False, **conn)
    assert (
        result.error
        == "OPA kept rate-limiting GET /v1/policies after 4 attempts (HTTP 429): too_many_requests: slow down"
    )
    assert len(opa.requests) == 4


def test_retry_after_beyond_the_cap_fails_at_once(opa, conn):
    opa.inject(status=503, headers={"Retry-After": "600"}, body="maintenance", content_type="text/plain")
    result = run_task(List, raise_on_failure=False, **conn)
    assert result.error == (
        "OPA rate-limited GET /v1/policies (HTTP 503) and asked to retry after 600s, longer than the 60s this task "
        "waits; use the task's retry policy: maintenance"
    )
    assert len(opa.requests) == 1


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(formatdate(500.0 + 10, usegmt=True), now=500.0) == pytest.approx(10, abs=1)
    assert parse_retry_after("later") is None


@pytest.mark.parametrize(
    ("status", "body", "ctype", "expected"),
    [
        (
            200,
            "<html>hello</html>",
            "text/html",
            "OPA returned a malformed response to GET /v1/policies (HTTP 200, content-type text/html, not JSON)",
        ),
        (200, "[1, 2]", "application/json", "expected a JSON object, got [1, 2]"),
        (200, {"result": {"id": "x"}}, "application/json", "'result' should be a list"),
        (
            200,
            {"result": [{"raw": "package x"}]},
            "application/json",
            "malformed policy: expected an object with an 'id'",
        ),
        (
            500,
            {"code": "internal_error", "message": "storage failed"},
            "application/json",
            "OPA error on GET /v1/policies (HTTP 500): internal_error: storage failed",
        ),
    ],
)
def test_malformed_answers(opa, conn, status, body, ctype, expected):
    opa.inject(status=status, body=body, content_type=ctype)
    result = run_task(List, raise_on_failure=False, **conn)
    assert result.state == "FAILED"
    assert expected in result.error


def test_malformed_compile_result(opa, conn):
    opa.inject(status=200, body={"result": {"queries": "nope"}})
    result = run_task(Compile, query="1 > 0", raise_on_failure=False, **conn)
    assert "'result.queries' should be a list" in result.error


def test_hanging_server_times_out(opa, conn):
    opa.inject(status=200, body={"result": []}, delay=5)
    started = time.monotonic()
    result = run_task(
        List, httpOptions={"timeout": {"readIdleTimeout": "PT0.5S"}}, raise_on_failure=False, **conn
    )
    assert time.monotonic() - started < 3
    assert "did not answer GET /v1/policies in time (ReadTimeout; read timeout 0.5s)" in result.error


def test_echoed_token_is_scrubbed(opa, conn):
    opa.inject(status=400, body={"code": "invalid_parameter", "message": f"bad header: Bearer {TOKEN}"})
    result = run_task(List, raise_on_failure=False, **conn)
    assert "bad header: Bearer ****" in result.error
    assert_no_secret(result)


def _start(task_cls, **props):
    ctx = TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="t")
    task = task_cls.model_validate({"id": "t", "type": task_cls.type_id, **props})
    box = {}

    def target():
        try:
            box["out"] = task.run(ctx)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return ctx, thread, box


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_kill_while_waiting_for_retry_after(opa):
    opa.inject(
        status=429, headers={"Retry-After": "30"}, body={"code": "too_many_requests", "message": "wait"}
    )
    ctx, thread, box = _start(List, url=opa.url, token=TOKEN)
    _wait_for(lambda: any("retrying in 30s" in log["message"] for log in ctx.logs))
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"


def test_kill_while_evaluation_is_in_flight(opa):
    opa.inject(status=200, body={"result": True}, delay=10)
    ctx, thread, box = _start(Evaluate, url=opa.url, token=TOKEN, policyPath="vm/allow", failOnDeny=True)
    _wait_for(lambda: bool(opa.requests))
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"


def test_validation_errors():
    with pytest.raises(ValidationError, match="url"):
        List.model_validate({"id": "t", "type": List.type_id})
    with pytest.raises(ValidationError, match="explain"):
        Evaluate.model_validate(
            {"id": "t", "type": Evaluate.type_id, "url": "http://x", "policyPath": "a", "explain": "loud"}
        )


def test_bad_url_is_reported():
    result = run_task(List, url="opa:8181", raise_on_failure=False)
    assert "url must be the http(s) URL of the OPA server" in result.error


def test_data_path_forms():
    assert data_path("vm/allow") == "vm/allow"
    assert data_path("data.vm.allow") == "vm/allow"
    assert data_path("/data/vm/allow/") == "vm/allow"
    assert data_path("data") == ""
    assert data_path("example/v1.2/allow") == "example/v1.2/allow"
    assert data_url("a b/c") == "/v1/data/a%20b/c"
    assert data_url("") == "/v1/data"


def test_token_with_line_breaks(opa, monkeypatch):
    import base64

    monkeypatch.setenv("SECRET_PADDED", base64.b64encode(f"  {TOKEN}\r\n".encode()).decode())
    fine = run_task(List, url=opa.url, token="{{ secret('PADDED') }}")
    assert fine.outputs["total"] == 0
    assert_no_secret(fine)
    broken = run_task(List, url=opa.url, token="a\nb", raise_on_failure=False)
    assert broken.error == "token contains a line break or a character an HTTP header cannot carry"
