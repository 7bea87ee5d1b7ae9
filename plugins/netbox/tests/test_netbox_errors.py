"""Credentials, network failures, throttling, malformed answers, time-outs and kill."""

from __future__ import annotations

import base64
import socket
import threading
import time

import pytest
from nb_fault_proxy import FaultProxy
from roost.testing import Runtime, TaskRunContext, run_task
from roost.testing.http import self_signed_tls
from roost_netbox.tasks import CreateDevice, ListDevices, ListSites, UpdateDevice


@pytest.fixture
def proxy(netbox, seed):
    with FaultProxy(netbox.url) as p:
        yield p


def test_token_from_secret_is_sent_as_bearer_and_never_logged(netbox, seed, proxy, tokens, monkeypatch):
    monkeypatch.setenv("SECRET_NETBOX_TOKEN", base64.b64encode(tokens.v2.encode()).decode())
    res = run_task(
        CreateDevice,
        url=proxy.url,
        token="{{ secret('NETBOX_TOKEN') }}",
        name="secret-01",
        deviceType="acme-switch-48",
        role="access-switch",
        site="sandbox",
    )
    assert res.state == "SUCCESS"
    assert all(r["headers"].get("authorization") == f"Bearer {tokens.v2}" for r in proxy.seen)
    secret_part = tokens.v2.split(".", 1)[1]
    assert res.logs and not any(secret_part in m for m in res.messages)
    assert secret_part not in repr(res.outputs)


def test_failure_message_never_contains_the_token(netbox, seed, tokens, monkeypatch):
    monkeypatch.setenv("SECRET_NETBOX_TOKEN", base64.b64encode(tokens.readonly.encode()).decode())
    res = run_task(
        CreateDevice, url=netbox.url, token="{{ secret('NETBOX_TOKEN') }}", name="ro-01",
        deviceType="acme-switch-48", role="access-switch", site="sandbox", raise_on_failure=False,
    )  # fmt: skip
    assert res.state == "FAILED"
    secret_part = tokens.readonly.split(".", 1)[1]
    assert secret_part not in res.error and not any(secret_part in m for m in res.messages)


def test_legacy_v1_token_is_sent_as_token(netbox, seed, proxy, tokens):
    res = run_task(ListSites, url=proxy.url, token=tokens.v1, status="planned")
    assert [r["slug"] for r in res.outputs["rows"]] == ["lon-dc2"]
    assert proxy.seen[-1]["headers"]["authorization"] == f"Token {tokens.v1}"


def test_bad_token_is_a_clear_403(netbox, seed):
    res = run_task(
        ListSites, url=netbox.url, token="nbt_roostTestKey.WrongPlaintext000000000000000000000000000",
        raise_on_failure=False,
    )  # fmt: skip
    assert res.state == "FAILED"
    assert "HTTP 403" in res.error and "token" in res.error.lower()
    assert "Invalid v2 token" in res.error  # NetBox's own detail


def test_read_only_token_cannot_write_403(netbox, seed, tokens):
    res = run_task(
        CreateDevice, url=netbox.url, token=tokens.readonly, name="ro-02", deviceType="acme-switch-48",
        role="access-switch", site="sandbox", raise_on_failure=False,
    )  # fmt: skip
    assert res.state == "FAILED"
    assert "HTTP 403" in res.error and "creating device 'ro-02'" in res.error


def test_unreachable_url(seed):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run_task(ListSites, url=f"http://127.0.0.1:{port}", token="x", raise_on_failure=False)
    assert res.state == "FAILED"
    assert res.error.startswith(f"cannot reach NetBox at http://127.0.0.1:{port} while listing sites")
    assert "Connection refused" in res.error


def test_wrong_base_path_is_a_404(netbox, seed, tokens):
    res = run_task(ListSites, url=f"{netbox.url}/netbox", token=tokens.v2, raise_on_failure=False)
    assert res.state == "FAILED"
    assert "NetBox error on GET /api/dcim/sites/ while listing sites (HTTP 404)" in res.error
    assert f"is {netbox.url}/netbox the base URL of NetBox" in res.error


def test_url_with_api_suffix_is_accepted(netbox, seed, tokens):
    res = run_task(ListSites, url=f"{netbox.url}/api/", token=tokens.v2, fetchType="NONE")
    assert res.outputs["size"] >= 3


def test_429_is_retried_honouring_retry_after(netbox, seed, proxy, tokens):
    proxy.add("429", times=2, retry_after="0.2")
    t0 = time.monotonic()
    res = run_task(ListSites, url=proxy.url, token=tokens.v2, status="planned")
    assert time.monotonic() - t0 >= 0.4
    assert [r["slug"] for r in res.outputs["rows"]] == ["lon-dc2"]
    warnings = [log["message"] for log in res.logs if log["level"] == "WARN" and "HTTP 429" in log["message"]]
    assert len(warnings) == 2 and "retrying in 0.2s (retry 1 of 3)" in warnings[0]


def test_429_retries_are_bounded(netbox, seed, proxy, tokens):
    proxy.add("429", times=4, retry_after="0")
    res = run_task(ListSites, url=proxy.url, token=tokens.v2, raise_on_failure=False)
    assert res.state == "FAILED"
    assert (
        "kept rate-limiting GET /api/dcim/sites/ while listing sites after 4 attempts (HTTP 429)" in res.error
    )
    assert "Request was throttled." in res.error
    assert len(proxy.seen) == 4


def test_malformed_response(netbox, seed, proxy, tokens):
    proxy.add("garbage")
    res = run_task(ListDevices, url=proxy.url, token=tokens.v2, raise_on_failure=False)
    assert res.state == "FAILED"
    assert "malformed response to GET /api/dcim/devices/ while listing devices" in res.error
    assert "text/html" in res.error and "Please log in" in res.error


def test_request_that_never_completes_times_out(netbox, seed, proxy, tokens):
    proxy.add("hang", seconds=30)
    t0 = time.monotonic()
    res = run_task(ListSites, url=proxy.url, token=tokens.v2, requestTimeout=0.5, raise_on_failure=False)
    assert time.monotonic() - t0 < 5
    assert res.state == "FAILED"
    assert "NetBox did not answer GET /api/dcim/sites/ while listing sites in time" in res.error
    assert "read timeout 0.5s" in res.error


def _run_in_thread(task_cls, props):
    task = task_cls.model_validate({"id": "t", "type": task_cls.type_id, **props})
    ctx = TaskRunContext(Runtime.in_memory(), {}, namespace="n", task_id="t")
    box = {}

    def target():
        try:
            box["out"] = task.run(ctx)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return ctx, thread, box


def test_kill_while_waiting_for_retry_after(netbox, seed, proxy, tokens):
    proxy.add("429", retry_after="30")
    ctx, thread, box = _run_in_thread(ListSites, {"url": proxy.url, "token": tokens.v2})
    deadline = time.monotonic() + 10
    while not proxy.seen and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # now sleeping on Retry-After
    t0 = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - t0 < 2
    assert "out" not in box and "kill" in str(box["error"]).lower()
    assert len(proxy.seen) == 1  # no request after the kill


def test_kill_during_a_hung_request(netbox, seed, proxy, tokens):
    proxy.add("hang", seconds=30)
    ctx, thread, box = _run_in_thread(UpdateDevice, {"url": proxy.url, "token": tokens.v2, "deviceId": 1})
    deadline = time.monotonic() + 10
    while not proxy.seen and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - t0 < 2
    assert type(box["error"]).__name__ == "Killed"  # the engine's own kill, as in every plugin


def test_self_signed_https_needs_verify_ssl_false(netbox, seed, tokens, tmp_path):
    with FaultProxy(netbox.url, tls=self_signed_tls(tmp_path)) as tls_proxy:
        assert tls_proxy.url.startswith("https://")
        res = run_task(ListSites, url=tls_proxy.url, token=tokens.v2, raise_on_failure=False)
        assert res.state == "FAILED"
        assert f"cannot reach NetBox at {tls_proxy.url} while listing sites" in res.error
        assert "certificate verify failed" in res.error
        assert "verifySsl: false" in res.error
        ok = run_task(ListSites, url=tls_proxy.url, token=tokens.v2, verifySsl=False, status="planned")
        assert [r["slug"] for r in ok.outputs["rows"]] == ["lon-dc2"]
