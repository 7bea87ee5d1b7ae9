"""Faults: bad credentials, missing machines, rate limits, unreachable and broken servers,
operations that never complete, kill while waiting, TLS, and credentials kept out of logs."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import unquote

import pytest
from fake_maas import FakeMaas
from roost.testing import Runtime, TaskRunContext, run_task
from roost_maas.client import oauth_header, parse_api_key
from roost_maas.tasks import (
    CommissionMachine,
    DeployMachine,
    EnlistMachine,
    ListMachines,
    PowerControlMachine,
)

FAST = {"pollInterval": "PT0.02S"}


def _everything(result) -> str:
    return " ".join([*result.messages, result.error or "", str(result.outputs)])


# -- credentials -----------------------------------------------------------------------------------
def test_bad_api_key_is_401_and_the_key_is_not_repeated(maas):
    consumer, token, _ = maas.admin_key.split(":")
    bad = f"{consumer}:{token}:WrongSecret99"
    result = run_task(ListMachines, url=maas.url, apiKey=bad, raise_on_failure=False)
    assert result.state == "FAILED"
    assert "HTTP 401" in result.error and "API key was not accepted" in result.error

    unknown = "AbCdConsumer:UnknownToken77:WhateverSecret"
    result = run_task(ListMachines, url=maas.url, apiKey=unknown, raise_on_failure=False)
    assert "HTTP 401" in result.error and "Invalid access token" in result.error
    # MAAS names the token in its 401 text: the client scrubs it.
    assert "UnknownToken77" not in _everything(result)
    assert "****" in result.error


def test_forbidden_operation_is_403(maas):
    sid = maas.by_hostname("new01").system_id
    result = run_task(
        CommissionMachine, url=maas.url, apiKey=maas.viewer_key, systemId=sid, raise_on_failure=False
    )
    assert result.state == "FAILED"
    assert "HTTP 403" in result.error and "You do not have permission to perform this action." in result.error


def test_malformed_api_key_is_rejected_without_echoing_it(maas):
    result = run_task(ListMachines, url=maas.url, apiKey="NotAKeySecretValue", raise_on_failure=False)
    assert result.state == "FAILED" and "consumer_key:token_key:token_secret" in result.error
    assert "NotAKeySecretValue" not in _everything(result)


def test_credentials_never_reach_logs_or_outputs(maas):
    """Keys and power passwords given as plain values (no masking to hide a leak) never appear."""
    key = maas.admin_key
    parts = key.split(":")
    results = [
        run_task(
            ListMachines,
            url=maas.url,
            apiKey="{{ creds.maas }}",
            variables={"creds": {"maas": key}},
            logLevel="TRACE",
        ),
        run_task(
            EnlistMachine,
            url=maas.url,
            apiKey=key,
            macAddress="52:54:00:de:ad:01",
            powerType="ipmi",
            powerParameters={
                "power_address": "10.1.1.1",
                "power_user": "admin",
                "power_pass": "BmcPassw0rd!",
            },
            waitForCommissioning=True,
            **FAST,
        ),
        run_task(
            DeployMachine,
            url=maas.url,
            apiKey=key,
            systemId=maas.by_hostname("ready01").system_id,
            waitForDeployment=True,
            **FAST,
        ),
        run_task(
            ListMachines,
            url=maas.url,
            apiKey=parts[0] + ":" + parts[1] + ":BadSecret1",
            raise_on_failure=False,
        ),
    ]
    for result in results:
        text = _everything(result)
        for secret in (key, *parts, "BmcPassw0rd!"):
            assert secret not in text
    assert any(
        log["level"] == "DEBUG" for log in results[0].logs
    )  # the request trace was logged, without auth


# -- missing objects and conflicts ------------------------------------------------------------------
def test_unknown_machine_is_404(maas):
    for task, extra in (
        (CommissionMachine, {}),
        (DeployMachine, {}),
        (PowerControlMachine, {"action": "QUERY"}),
    ):
        result = run_task(
            task, url=maas.url, apiKey=maas.admin_key, systemId="nope42", raise_on_failure=False, **extra
        )
        assert result.state == "FAILED"
        assert "no machine with system_id 'nope42'" in result.error and "404" in result.error


# -- rate limiting ----------------------------------------------------------------------------------
def test_429_with_retry_after_is_retried(maas):
    maas.inject(429, "Too many requests", headers={"Retry-After": "1"}, times=1, path_contains="/machines/")
    started = time.monotonic()
    result = run_task(ListMachines, url=maas.url, apiKey=maas.admin_key)
    assert time.monotonic() - started >= 0.9  # the Retry-After delay was honoured
    assert result.outputs["count"] == 7
    warnings = [log["message"] for log in result.logs if log["level"] == "WARN"]
    assert any("HTTP 429" in w and "retrying in 1s (retry 1 of 5)" in w for w in warnings)


def test_503_with_retry_after_is_retried_then_429_gives_up(maas):
    maas.inject(503, "MAAS is starting", headers={"Retry-After": "0"}, times=2)
    assert run_task(ListMachines, url=maas.url, apiKey=maas.admin_key).outputs["count"] == 7

    maas.inject(429, "slow down", headers={"Retry-After": "0"}, times=100)
    result = run_task(ListMachines, url=maas.url, apiKey=maas.admin_key, raise_on_failure=False)
    assert result.state == "FAILED"
    assert "kept rate-limiting GET /machines/ after 6 attempts (HTTP 429)" in result.error
    assert "slow down" in result.error
    assert (
        len([r for r in maas.requests if r["method"] == "GET"]) == 3 + 6
    )  # 2 retries + ok, then 1 + 5 retries


def test_answers_without_retry_after_are_not_retried(maas):
    """MAAS says when to come back; a 429 or 503 that does not is an error at once."""
    for status in (429, 503):
        maas.inject(status, "busy", path_contains="/machines/")
        result = run_task(ListMachines, url=maas.url, apiKey=maas.admin_key, raise_on_failure=False)
        assert result.state == "FAILED" and f"HTTP {status}" in result.error and "busy" in result.error
    assert len(maas.requests) == 2


def test_retry_after_longer_than_a_minute_fails_at_once(maas):
    maas.inject(503, "upgrading", headers={"Retry-After": "3600"}, path_contains="/machines/")
    started = time.monotonic()
    result = run_task(ListMachines, url=maas.url, apiKey=maas.admin_key, raise_on_failure=False)
    assert time.monotonic() - started < 5
    assert "asked to retry after 3600s, longer than the 60s this task waits" in result.error
    assert "upgrading" in result.error and len(maas.requests) == 1


def test_every_retry_is_signed_anew(maas):
    maas.inject(429, "slow down", headers={"Retry-After": "0"}, times=2, path_contains="/machines/")
    assert run_task(ListMachines, url=maas.url, apiKey=maas.admin_key).outputs["count"] == 7
    nonces = [re.search(r'oauth_nonce="(\w+)"', r["auth"]).group(1) for r in maas.requests]
    assert len(nonces) == 3 and len(set(nonces)) == 3  # MAAS accepts a nonce once


# -- broken or absent servers -------------------------------------------------------------------------
def test_unreachable_maas_is_a_clear_error(closed_port):
    result = run_task(
        ListMachines,
        url=f"http://127.0.0.1:{closed_port}/MAAS",
        apiKey="a1b2:c3d4:e5f6",
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert f"cannot reach MAAS at http://127.0.0.1:{closed_port}/MAAS" in result.error
    assert "ConnectError" in result.error


def test_malformed_responses_are_clear_errors(maas):
    maas.inject(200, "<html><body>Proxy login</body></html>", content_type="text/html")
    result = run_task(ListMachines, url=maas.url, apiKey=maas.admin_key, raise_on_failure=False)
    assert result.state == "FAILED"
    assert "not JSON" in result.error and "text/html" in result.error and "Proxy login" in result.error

    maas.inject(200, '{"machines": []}', content_type="application/json")
    result = run_task(ListMachines, url=maas.url, apiKey=maas.admin_key, raise_on_failure=False)
    assert "malformed response to GET /machines/" in result.error
    assert "expected a list of machines, got dict" in result.error

    sid = maas.by_hostname("ready01").system_id
    maas.inject(200, '{"state": 3}', content_type="application/json", path_contains="query_power_state")
    result = run_task(
        PowerControlMachine,
        url=maas.url,
        apiKey=maas.admin_key,
        systemId=sid,
        action="QUERY",
        raise_on_failure=False,
    )
    assert "malformed response to GET /machines/" in result.error and "?op=query_power_state" in result.error
    assert "expected {'state': ...}, got dict" in result.error


def test_tls_certificate_is_verified_unless_turned_off(tls_context):
    fake = FakeMaas().start(ssl_context=tls_context)
    try:
        assert fake.url.startswith("https://")
        result = run_task(ListMachines, url=fake.url, apiKey=fake.admin_key, raise_on_failure=False)
        assert result.state == "FAILED"
        assert "cannot reach MAAS" in result.error and "certificate" in result.error.lower()
        assert "verifySsl: false" in result.error
        trusted = run_task(ListMachines, url=fake.url, apiKey=fake.admin_key, verifySsl=False)
        assert trusted.outputs["count"] == 7
    finally:
        fake.stop()


def test_request_that_never_answers_times_out(maas):
    maas.inject(200, "[]", content_type="application/json", delay=30, path_contains="/machines/")
    started = time.monotonic()
    result = run_task(
        ListMachines, url=maas.url, apiKey=maas.admin_key, requestTimeout="PT0.3S", raise_on_failure=False
    )
    assert time.monotonic() - started < 5
    assert result.state == "FAILED"
    assert "MAAS did not answer GET /machines/ in time (ReadTimeout; read timeout 0.3s)" in result.error


def test_kill_during_a_request_returns_at_once(maas):
    maas.inject(200, "[]", content_type="application/json", delay=30, path_contains="/machines/")
    ctx, thread, box = _run_in_thread(ListMachines, {"url": maas.url, "apiKey": maas.admin_key})
    _wait_for(lambda: len(maas.requests) == 1)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box.get("error")).__name__ == "Killed"


# -- operations that never complete ---------------------------------------------------------------------
def test_commissioning_that_never_completes_times_out(maas):
    sid = maas.by_hostname("hang01").system_id
    started = time.monotonic()
    result = run_task(
        CommissionMachine,
        url=maas.url,
        apiKey=maas.admin_key,
        systemId=sid,
        waitForCompletion=True,
        timeout="PT0.4S",
        raise_on_failure=False,
        **FAST,
    )
    assert 0.35 <= time.monotonic() - started < 5
    assert result.state == "FAILED"
    assert "did not finish within 0.4 s" in result.error and "still 'Commissioning'" in result.error
    # the wait limit is the task's timeout: like a kill on timeout, it aborts the MAAS operation
    assert "the MAAS operation was aborted" in result.error
    assert maas.ops(sid)[-1] == "abort" and maas.machines[sid].status == 0  # back to New


def test_power_state_that_never_arrives_times_out(maas):
    sid = maas.by_hostname("deployed01").system_id
    maas.tick = 60  # the BMC never answers in time
    result = run_task(
        PowerControlMachine,
        url=maas.url,
        apiKey=maas.admin_key,
        systemId=sid,
        action="OFF",
        waitForPowerState=True,
        timeout="PT0.3S",
        raise_on_failure=False,
        **FAST,
    )
    assert result.state == "FAILED"
    assert "did not reach power state 'off' within 0.3 s" in result.error and "reports 'on'" in result.error


def _run_in_thread(task_cls, props):
    task = task_cls.model_validate({"id": "t", "type": task_cls.type_id, **props})
    ctx = TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="t")
    box: dict = {}

    def target():
        try:
            box["out"] = task.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return ctx, thread, box


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize(
    ("task_cls", "hostname", "flag", "waiting_status", "after_abort"),
    [
        (DeployMachine, "ready03", "waitForDeployment", 9, 10),  # Deploying -> Allocated
        (CommissionMachine, "hang01", "waitForCompletion", 1, 0),  # Commissioning -> New
    ],
)
def test_kill_while_waiting_aborts_the_maas_operation(
    maas, task_cls, hostname, flag, waiting_status, after_abort
):
    sid = maas.by_hostname(hostname).system_id
    ctx, thread, box = _run_in_thread(
        task_cls,
        {"url": maas.url, "apiKey": maas.admin_key, "systemId": sid, flag: True, "pollInterval": "PT0.05S"},
    )
    _wait_for(
        lambda: (
            maas.machines[sid].status == waiting_status
            and len([r for r in maas.requests if r["op"] == ""]) > 2
        )
    )
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box.get("error")).__name__ == "Killed"
    assert maas.ops(sid)[-1] == "abort"
    assert maas.machines[sid].status == after_abort
    assert any("abort" in log["message"] for log in ctx.logs)


def test_kill_after_the_wait_does_not_abort(maas):
    sid = maas.by_hostname("ready01").system_id
    ctx, thread, box = _run_in_thread(
        DeployMachine,
        {
            "url": maas.url,
            "apiKey": maas.admin_key,
            "systemId": sid,
            "waitForDeployment": True,
            "pollInterval": "PT0.02S",
        },
    )
    thread.join(5)
    assert box["out"].status == "Deployed"
    ctx.fire_kill()
    assert "abort" not in maas.ops(sid)


# -- the OAuth signature ---------------------------------------------------------------------------------
def test_oauth_plaintext_header():
    consumer, token, secret = parse_api_key("cOnSuMeR:tOkEn:s3cr+t/")
    first, second = oauth_header(consumer, token, secret), oauth_header(consumer, token, secret)
    assert first.startswith("OAuth ")
    params = dict(p.split("=", 1) for p in first[len("OAuth ") :].split(", "))
    values = {k: unquote(v.strip('"')) for k, v in params.items()}
    assert values["oauth_signature_method"] == "PLAINTEXT" and values["oauth_version"] == "1.0"
    assert values["oauth_consumer_key"] == "cOnSuMeR" and values["oauth_token"] == "tOkEn"
    # empty consumer secret, then the percent-encoded token secret (RFC 5849 3.4.4)
    assert values["oauth_signature"] == "&s3cr%2Bt%2F"
    assert values["oauth_timestamp"].isdigit() and abs(int(values["oauth_timestamp"]) - time.time()) < 5
    assert values["oauth_nonce"] != dict(
        (k, v) for k, v in (p.split("=", 1) for p in second[len("OAuth ") :].split(", "))
    )["oauth_nonce"].strip('"')
