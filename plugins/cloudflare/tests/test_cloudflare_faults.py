"""Failures: credentials, unreachable host, rate limits, malformed answers, hangs, kill."""

from __future__ import annotations

import threading
import time
from email.utils import formatdate

import pytest
from cloudflare_support import API_KEY, EMAIL, TOKEN, assert_no_secret
from pydantic import ValidationError
from roost.testing import Runtime, TaskRunContext, run_task
from roost.testing.http import closed_port
from roost_cloudflare import dns, zones
from roost_cloudflare.client import parse_retry_after


def test_unreachable_host(creds):
    creds = {**creds, "baseUrl": f"http://127.0.0.1:{closed_port()}/client/v4"}
    result = run_task(zones.List, raise_on_failure=False, **creds)
    assert result.state == "FAILED"
    assert result.error.startswith("cannot reach Cloudflare API at http://127.0.0.1:")
    assert_no_secret(result)


def test_invalid_token_is_a_401(fake):
    result = run_task(
        zones.List,
        apiToken="{{ secret('CLOUDFLARE_BAD_TOKEN') }}",
        baseUrl=fake.base_url,
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert "HTTP 401" in result.error and "[9109] Invalid access token" in result.error
    assert "check the credentials" in result.error
    assert "not-a-valid-token-99" not in result.error


def test_token_without_permission_is_a_403(fake):
    zone = fake.add_zone("example.com")
    result = run_task(
        dns.Create,
        apiToken="{{ secret('CLOUDFLARE_READ_ONLY_TOKEN') }}",
        baseUrl=fake.base_url,
        zoneId=zone,
        recordType="A",
        name="x",
        content="192.0.2.1",
        raise_on_failure=False,
    )
    assert "HTTP 403" in result.error and "[10000] Authentication error" in result.error
    assert "lack a permission" in result.error
    assert_no_secret(result)


def test_global_api_key_authentication(fake):
    zone = fake.add_zone("example.com")
    props = dict(email=EMAIL, apiKey="{{ secret('CLOUDFLARE_API_KEY') }}", baseUrl=fake.base_url)
    result = run_task(zones.Get, zoneId=zone, **props)
    assert result.outputs["name"] == "example.com"
    req = fake.requests[-1]
    assert req.headers["x-auth-email"] == EMAIL and req.headers["x-auth-key"] == API_KEY
    assert "authorization" not in req.headers
    wrong = run_task(
        zones.Get,
        zoneId=zone,
        email="other@example.com",
        apiKey=API_KEY,
        baseUrl=fake.base_url,
        raise_on_failure=False,
    )
    assert "HTTP 403" in wrong.error and "[9103] Unknown X-Auth-Key or X-Auth-Email" in wrong.error
    assert API_KEY not in wrong.error
    assert_no_secret(result)


def test_credentials_are_required_at_validation():
    base = {"id": "t", "type": zones.List.type_id}
    with pytest.raises(ValidationError, match="credentials are missing"):
        zones.List.model_validate(base)
    with pytest.raises(ValidationError, match="email and apiKey go together"):
        zones.List.model_validate({**base, "email": "a@b.c"})
    with pytest.raises(ValidationError, match="set zoneId or zoneName"):
        dns.List.model_validate({**base, "type": dns.List.type_id, "apiToken": "x"})


def test_rate_limit_honours_retry_after(fake, creds):
    fake.add_zone("example.com")
    fake.inject(
        status=429,
        path=r"/zones$",
        headers={"Retry-After": "1"},
        body={
            "success": False,
            "errors": [{"code": 971, "message": "Please wait and consider throttling your request speed"}],
            "messages": [],
            "result": None,
        },
    )
    started = time.monotonic()
    result = run_task(zones.List, **creds)
    assert time.monotonic() - started >= 1.0
    assert result.outputs["count"] == 1
    assert len(fake.requests) == 2
    assert any("HTTP 429" in m and "retrying in 1s (retry 1 of 3)" in m for m in result.messages)
    assert_no_secret(result)


def test_rate_limit_with_http_date_and_without_header():
    assert parse_retry_after(formatdate(1000.0 + 5, usegmt=True), now=1000.0) == pytest.approx(5, abs=1)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_rate_limit_gives_up_after_bounded_retries(fake, creds):
    fake.inject(
        status=429,
        path=r"/zones$",
        headers={"Retry-After": "0"},
        times=10,
        body={
            "success": False,
            "errors": [{"code": 971, "message": "Please wait"}],
            "messages": [],
            "result": None,
        },
    )
    result = run_task(zones.List, raise_on_failure=False, **creds)
    assert result.state == "FAILED"
    assert "kept rate-limiting GET /zones after 4 attempts" in result.error
    assert "[971] Please wait" in result.error
    assert len(fake.requests) == 4


def test_retry_after_longer_than_the_cap_fails_at_once(fake, creds):
    fake.inject(status=429, path=r"/zones$", headers={"Retry-After": "3600"}, body="slow down")
    started = time.monotonic()
    result = run_task(zones.List, raise_on_failure=False, **creds)
    assert time.monotonic() - started < 5
    assert "asked to retry after 3600s" in result.error
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (
            200,
            "<html>maintenance</html>",
            "text/html",
            "malformed response to GET /zones (HTTP 200, content-type text/html, not JSON)",
        ),
        (200, {"result": []}, "application/json", "expected an object with 'success' and 'result'"),
        (
            200,
            {"success": True, "errors": [], "messages": [], "result": {"not": "a list"}},
            "application/json",
            "'result' should be a list, got an object",
        ),
        (
            502,
            "<html>Bad gateway</html>",
            "text/html",
            "Cloudflare API error on GET /zones (HTTP 502): <html>Bad gateway</html>",
        ),
    ],
)
def test_malformed_answers(fake, creds, status, body, content_type, expected):
    fake.inject(status=status, path=r"/zones$", body=body, content_type=content_type)
    result = run_task(zones.List, raise_on_failure=False, **creds)
    assert result.state == "FAILED"
    assert expected in result.error


def test_malformed_record_result(fake, creds):
    zone = fake.add_zone("example.com")
    fake.inject(
        status=200,
        method="POST",
        path="/dns_records$",
        body={"success": True, "errors": [], "messages": [], "result": ["x"]},
    )
    result = run_task(
        dns.Create,
        zoneId=zone,
        recordType="A",
        name="a",
        content="192.0.2.1",
        raise_on_failure=False,
        **creds,
    )
    assert "'result' should be an object, got a list" in result.error


def test_success_false_with_200_is_an_error(fake, creds):
    fake.inject(
        status=200,
        path=r"/zones$",
        body={"success": False, "errors": [{"code": 1234, "message": "odd"}], "messages": [], "result": None},
    )
    result = run_task(zones.List, raise_on_failure=False, **creds)
    assert "(HTTP 200): [1234] odd" in result.error


def test_vendor_text_echoing_the_token_is_scrubbed(fake, creds):
    fake.inject(
        status=400,
        path=r"/zones$",
        body={
            "success": False,
            "errors": [{"code": 6003, "message": f"bad header Bearer {TOKEN}"}],
            "messages": [],
            "result": None,
        },
    )
    result = run_task(zones.List, raise_on_failure=False, **creds)
    assert "bad header Bearer ****" in result.error
    assert_no_secret(result)


def test_hanging_server_times_out(fake, creds):
    fake.inject(
        status=200,
        path=r"/zones$",
        body={"success": True, "errors": [], "messages": [], "result": []},
        delay=5,
    )
    started = time.monotonic()
    result = run_task(
        zones.List, options={"timeout": {"readIdleTimeout": "PT0.5S"}}, raise_on_failure=False, **creds
    )
    assert time.monotonic() - started < 3
    assert result.state == "FAILED"
    assert "did not answer GET /zones in time (ReadTimeout; read timeout 0.5s)" in result.error


def test_unknown_http_options_are_ignored_with_a_warning(fake, creds):
    result = run_task(zones.List, options={"logs": ["REQUEST_HEADERS"], "followRedirects": False}, **creds)
    assert any("HTTP options not supported here and ignored: logs" in m for m in result.messages)


def _run_in_thread(task_cls, **props):
    rt = Runtime.in_memory()
    ctx = TaskRunContext(rt, {}, namespace="company.team", task_id="t")
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


def test_kill_while_waiting_for_retry_after(fake):
    fake.inject(status=429, path=r"/zones$", headers={"Retry-After": "30"}, body="slow down")
    ctx, thread, box = _run_in_thread(zones.List, apiToken=TOKEN, baseUrl=fake.base_url)
    deadline = time.monotonic() + 5
    while not any("retrying in 30s" in log["message"] for log in ctx.logs) and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"
    assert len(fake.requests) == 1


def test_kill_while_a_request_is_in_flight(fake):
    fake.inject(
        status=200,
        path=r"/zones$",
        body={"success": True, "errors": [], "messages": [], "result": []},
        delay=10,
    )
    ctx, thread, box = _run_in_thread(zones.List, apiToken=TOKEN, baseUrl=fake.base_url)
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"


def test_secret_values_never_reach_logs_across_tasks(fake, creds):
    zone = fake.add_zone("example.com")
    results = [
        run_task(zones.List, **creds),
        run_task(dns.Upsert, zoneName="example.com", recordType="A", name="a", content="192.0.2.1", **creds),
        run_task(dns.Get, zoneId=zone, recordId="0" * 32, raise_on_failure=False, **creds),
        run_task(
            zones.List,
            apiToken="{{ secret('CLOUDFLARE_BAD_TOKEN') }}",
            baseUrl=fake.base_url,
            raise_on_failure=False,
        ),
    ]
    for result in results:
        assert result.logs or result.error
        assert_no_secret(result)
        assert "not-a-valid-token-99" not in str(result.error) + str(result.messages)


def test_token_with_line_breaks(fake, monkeypatch):
    import base64

    monkeypatch.setenv("SECRET_PADDED", base64.b64encode(f"{TOKEN}\n".encode()).decode())
    fine = run_task(zones.List, apiToken="{{ secret('PADDED') }}", baseUrl=fake.base_url)
    assert fake.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert_no_secret(fine)
    monkeypatch.setenv("SECRET_BROKEN", base64.b64encode(b"half-of-a\ntoken").decode())
    broken = run_task(
        zones.List, apiToken="{{ secret('BROKEN') }}", baseUrl=fake.base_url, raise_on_failure=False
    )
    assert broken.error == "apiToken contains a line break or a character an HTTP header cannot carry"
