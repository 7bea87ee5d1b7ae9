"""Faults: credentials, missing objects, rate limits, unreachable and broken servers, tasks
that fail or never complete, kill while waiting, TLS, and credentials kept out of logs."""

from __future__ import annotations

import threading
import time

import pytest
from fake_prism import CLUSTER, FakePrism
from roost.testing import Runtime, TaskRunContext, run_task
from roost_nutanix.client import error_detail
from roost_nutanix.tasks import (
    CreateVm,
    CreateVmSnapshot,
    DeleteVmSnapshot,
    ListVms,
    RebootVm,
    StartVm,
    StopVm,
    UpdateVm,
)


def _everything(result) -> str:
    return " ".join([*result.messages, result.error or "", str(result.outputs)])


# -- credentials --------------------------------------------------------------------------------------
def test_wrong_password_is_401_without_the_password(prism):
    result = run_task(ListVms, **{**prism.conn, "password": "Wr0ng-Password!"}, raise_on_failure=False)
    assert result.state == "FAILED"
    assert "HTTP 401" in result.error and "authentication failed" in result.error
    assert "Authentication failed: invalid credentials [IAM-10001]" in result.error
    assert "Wr0ng-Password!" not in _everything(result)


def test_missing_credentials_are_reported_before_any_call(prism):
    result = run_task(
        ListVms, host="127.0.0.1", port=prism.port, scheme="http", username="admin", raise_on_failure=False
    )
    assert "credentials are missing" in result.error
    assert prism.requests == []


def test_read_only_user_gets_403(prism, run):
    viewer = prism.accounts[1]
    db = prism.vm_by_name("db-01")["extId"]
    result = run(StartVm, username=viewer.name, password=viewer.password, vmExtId=db, raise_on_failure=False)
    assert result.state == "FAILED"
    assert "HTTP 403" in result.error and "not authorized to perform this operation" in result.error


def test_credentials_never_reach_logs_or_outputs(prism):
    admin = prism.accounts[0]
    base = {"host": f"http://127.0.0.1:{prism.port}", "pollInterval": "PT0.02S"}
    db = prism.vm_by_name("db-01")["extId"]
    results = [
        run_task(
            StartVm,
            **base,
            username="admin",
            password="{{ pc.password }}",
            vmExtId=db,
            variables={"pc": {"password": admin.password}},
        ),
        run_task(CreateVm, **base, token=admin.token, vm={"name": "n1", "cluster": {"extId": CLUSTER}}),
        run_task(CreateVmSnapshot, **base, apiKey=admin.api_key, vmExtId=db, snapshotName="s1"),
        run_task(
            ListVms,
            **{k: v for k, v in base.items() if k != "pollInterval"},
            token=admin.token + "x",
            raise_on_failure=False,
        ),
    ]
    for result in results:
        text = _everything(result)
        for secret in (admin.password, admin.token, admin.api_key):
            assert secret not in text
    assert any(log["level"] == "DEBUG" for log in results[0].logs)


# -- missing objects ----------------------------------------------------------------------------------
def test_unknown_vm_and_snapshot_are_404(run):
    result = run(StopVm, vmExtId="00000000-0000-0000-0000-000000000000", raise_on_failure=False)
    assert result.state == "FAILED"
    assert (
        "no VM with extId '00000000-0000-0000-0000-000000000000'" in result.error
        and "HTTP 404" in result.error
    )
    assert "[VMM-20005]" in result.error
    result = run(DeleteVmSnapshot, snapshotExtId="nope", raise_on_failure=False)
    assert "no snapshot (recovery point) 'nope'" in result.error


def test_unknown_cluster_is_a_400_with_prism_words(run):
    result = run(CreateVm, vm={"name": "x", "cluster": {"extId": "c-404"}}, raise_on_failure=False)
    assert "HTTP 400" in result.error and "Cluster c-404 was not found [VMM-20007]" in result.error


# -- rate limiting ----------------------------------------------------------------------------------------
def test_429_is_retried_with_the_same_request_id(prism, run):
    prism.inject(
        429,
        '{"message": "Too many requests"}',
        headers={"Retry-After": "0"},
        times=2,
        path_contains="/ahv/config/vms",
    )
    result = run(CreateVm, vm={"name": "rate-limited", "cluster": {"extId": CLUSTER}})
    assert result.outputs["taskStatus"] == "SUCCEEDED"
    posts = [r for r in prism.requests if r["method"] == "POST" and r["path"].endswith("/ahv/config/vms")]
    assert len(posts) == 3
    assert len({p["headers"]["NTNX-Request-Id"] for p in posts}) == 1  # one logical request, no duplicate VM
    assert [v.vm["name"] for v in prism.vms.values()].count("rate-limited") == 1
    assert sum("HTTP 429" in log["message"] for log in result.logs if log["level"] == "WARN") == 2


def test_retry_after_is_honoured_then_gives_up(prism, run):
    prism.inject(429, "", headers={"Retry-After": "1"}, times=1)
    started = time.monotonic()
    assert run(ListVms, fetchType="NONE").outputs["size"] == 5
    assert time.monotonic() - started >= 0.9
    prism.inject(503, '{"message": "Service unavailable"}', headers={"Retry-After": "0"}, times=50)
    result = run(ListVms, raise_on_failure=False)
    assert "kept rate-limiting GET /api/vmm/v4.0/ahv/config/vms after 6 attempts (HTTP 503)" in result.error
    assert "Service unavailable" in result.error


def test_answers_without_retry_after_are_not_retried(prism, run):
    prism.inject(429, '{"message": "Too many requests"}', path_contains="/ahv/config/vms")
    result = run(ListVms, raise_on_failure=False)
    assert "HTTP 429" in result.error and "Too many requests" in result.error
    assert len(prism.requests) == 1


def test_retry_after_longer_than_a_minute_fails_at_once(prism, run):
    prism.inject(503, '{"message": "upgrading"}', headers={"Retry-After": "900"})
    started = time.monotonic()
    result = run(ListVms, raise_on_failure=False)
    assert time.monotonic() - started < 5
    assert "asked to retry after 900s, longer than the 60s this task waits" in result.error
    assert "upgrading" in result.error and len(prism.requests) == 1


def test_request_that_never_answers_times_out(prism, run):
    prism.inject(200, "{}", delay=30, path_contains="/ahv/config/vms")
    started = time.monotonic()
    result = run(ListVms, requestTimeout="PT0.3S", raise_on_failure=False)
    assert time.monotonic() - started < 5
    assert (
        "Prism Central did not answer GET /api/vmm/v4.0/ahv/config/vms in time (ReadTimeout" in result.error
    )


# -- concurrency control ------------------------------------------------------------------------------------
def test_update_gives_up_after_repeated_412(prism, run):
    db = prism.vm_by_name("db-01")["extId"]
    prism.bump_after_get[db] = 10
    result = run(UpdateVm, vmExtId=db, vm={"description": "x"}, raise_on_failure=False)
    assert result.state == "FAILED"
    assert "HTTP 412" in result.error and "stale If-Match ETag" in result.error
    assert len([r for r in prism.requests if r["method"] == "PUT"]) == 3


# -- broken or absent servers -----------------------------------------------------------------------------
def test_unreachable_prism_central(closed_port):
    result = run_task(
        ListVms,
        host="127.0.0.1",
        port=closed_port,
        scheme="http",
        username="u",
        password="p4ssword",
        raise_on_failure=False,
    )
    assert f"cannot reach Prism Central at http://127.0.0.1:{closed_port}" in result.error
    assert "ConnectError" in result.error


def test_malformed_responses(prism, run):
    prism.inject(200, "<html>maintenance</html>", content_type="text/html")
    result = run(ListVms, raise_on_failure=False)
    assert "not JSON" in result.error and "text/html" in result.error and "maintenance" in result.error

    prism.inject(200, '{"entities": []}', path_contains="/ahv/config/vms")
    result = run(ListVms, raise_on_failure=False)
    assert "malformed response to GET /api/vmm/v4.0/ahv/config/vms" in result.error

    prism.inject(202, '{"data": {}}', path_contains="/ahv/config/vms")
    result = run(CreateVm, vm={"name": "x", "cluster": {"extId": CLUSTER}}, raise_on_failure=False)
    assert "returned no task reference" in result.error

    prism.inject(200, '{"data": {"extId": "t"}}', path_contains="/config/tasks/")
    result = run(CreateVm, vm={"name": "y", "cluster": {"extId": CLUSTER}}, raise_on_failure=False)
    assert "without a status" in result.error


def test_tls_certificate_is_verified_unless_turned_off(tls_context):
    fake = FakePrism().start(ssl_context=tls_context)
    try:
        result = run_task(ListVms, **fake.conn, raise_on_failure=False)
        assert "cannot reach Prism Central" in result.error and "certificate" in result.error.lower()
        assert "verifySsl: false" in result.error
        assert run_task(ListVms, **fake.conn, verifySsl=False).outputs["size"] == 5
    finally:
        fake.stop()


def test_error_envelopes():
    v4 = '{"data": {"error": [{"message": "VM not found", "code": "VMM-20005"}]}}'
    assert error_detail(v4) == "VM not found [VMM-20005]"
    schema = (
        '{"data": {"error": {"statusCode": 400, "validationErrorMessages": '
        '[{"attributePath": "name", "message": "must not be null"}]}}}'
    )
    assert error_detail(schema) == "name: must not be null"
    v3 = '{"state": "ERROR", "code": 409, "message_list": [{"message": "spec_version mismatch", "reason": "CONFLICT"}]}'
    assert error_detail(v3) == "spec_version mismatch"
    assert error_detail("plain words") == "plain words"


# -- tasks that fail or never complete --------------------------------------------------------------------
def test_failed_prism_task_is_a_clear_error(prism, run):
    db = prism.vm_by_name("db-01")["extId"]
    result = run(RebootVm, vmExtId=db, raise_on_failure=False)  # db-01 is off
    assert result.state == "FAILED"
    assert "power-cycle of VM 'db-01' failed" in result.error and "ended FAILED" in result.error
    assert "it is not powered on [VMM-30203]" in result.error

    web = prism.vm_by_name("app-01")["extId"]
    prism.plan("FAIL")
    result = run(StartVm, vmExtId=web, raise_on_failure=False)
    assert "insufficient resources on the cluster [VMM-30100]" in result.error


def test_operation_that_never_completes_times_out_and_is_cancelled(prism, run):
    db = prism.vm_by_name("db-01")["extId"]
    prism.plan("HANG")
    started = time.monotonic()
    result = run(StartVm, vmExtId=db, timeout="PT0.3S", raise_on_failure=False)
    assert 0.25 <= time.monotonic() - started < 5
    assert "did not complete within 0.3 s" in result.error and "still RUNNING at 50%" in result.error
    assert "asked to cancel" in result.error
    [task_id] = prism.cancel_calls
    time.sleep(2 * prism.tick)
    with prism.lock:
        prism._advance()
        assert prism.tasks[task_id].status() == "CANCELED"
    assert prism.vm_by_name("db-01")["powerState"] == "OFF"


def test_non_cancelable_task_is_left_alone(prism, run):
    db = prism.vm_by_name("db-01")["extId"]
    prism.plan("HANG_NOCANCEL")
    result = run(StartVm, vmExtId=db, timeout="PT0.2S", raise_on_failure=False)
    assert "could not be cancelled" in result.error
    assert prism.cancel_calls == []
    assert any("isCancelable is false" in log["message"] for log in result.logs)


def test_kill_while_waiting_cancels_the_prism_task(prism, conn):
    db = prism.vm_by_name("db-01")["extId"]
    prism.plan("HANG")
    task = StartVm.model_validate(
        {"id": "t", "type": StartVm.type_id, **conn, "vmExtId": db, "pollInterval": "PT0.02S"}
    )
    ctx = TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="t")
    box: dict = {}

    def target():
        try:
            box["out"] = task.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        t.status() == "RUNNING" for t in list(prism.tasks.values())
    ):
        time.sleep(0.01)
    time.sleep(0.05)
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive()
    assert type(box.get("error")).__name__ == "Killed"
    [task_id] = prism.cancel_calls
    assert prism.tasks[task_id].cancel_at is not None
    assert any("asked Prism Central to cancel task" in log["message"] for log in ctx.logs)


def test_kill_during_a_request_returns_at_once(prism, conn):
    prism.inject(200, "{}", delay=30, path_contains="/ahv/config/vms")
    task = ListVms.model_validate({"id": "t", "type": ListVms.type_id, **conn})
    ctx = TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="t")
    box: dict = {}

    def target():
        try:
            box["out"] = task.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not prism.requests:
        time.sleep(0.01)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box.get("error")).__name__ == "Killed"


@pytest.mark.parametrize("name", ["hang-on-create"])
def test_create_that_never_completes(prism, run, name):
    result = run(
        CreateVm, vm={"name": name, "cluster": {"extId": CLUSTER}}, timeout="PT0.2S", raise_on_failure=False
    )
    assert "creation of VM 'hang-on-create' did not complete" in result.error
