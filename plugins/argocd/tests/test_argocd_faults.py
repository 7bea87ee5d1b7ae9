"""Failures: unreachable, 401/403/404, 429 with Retry-After, 5xx, malformed answers, hangs, kills, secrets."""

from __future__ import annotations

import time

import pytest
from argocd_support import TOKEN, assert_no_secret, start, wait_for
from pydantic import ValidationError
from roost.testing import run_task
from roost.testing.http import closed_port
from roost_argocd.client import app_path, server_url
from roost_argocd.tasks import Status, Sync

FAST = {"pollFrequency": "PT0.01S"}


def test_unreachable_server():
    result = run_task(
        Sync,
        server=f"http://127.0.0.1:{closed_port()}",
        token="{{ secret('ARGOCD_TOKEN') }}",
        application="guestbook",
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert result.error.startswith("cannot reach Argo CD at http://127.0.0.1:")
    assert_no_secret(result)


def test_missing_and_invalid_tokens_are_401(argo, conn):
    wrong = run_task(Status, **{**conn, "token": "not-the-token"}, raise_on_failure=False)
    assert wrong.error == (
        "Argo CD error on GET /api/v1/applications/guestbook (HTTP 401): invalid session: token signature "
        "is invalid (Unauthenticated) (check the token, or the user name and password)"
    )
    argo.inject(401, {"error": "no session information", "code": 16, "message": "no session information"})
    missing = run_task(Status, **conn, raise_on_failure=False)
    assert "HTTP 401): no session information (Unauthenticated)" in missing.error


def test_read_only_account_cannot_sync_403(argo, conn):
    result = run_task(Sync, **{**conn, "token": "{{ secret('ARGOCD_READONLY') }}"}, raise_on_failure=False)
    assert result.error == (
        "Argo CD error on POST /api/v1/applications/guestbook/sync (HTTP 403): permission denied: applications, "
        "sync, default/guestbook, sub: readonly, iat: 2024-05-01T09:00:00Z (PermissionDenied) "
        "(the account lacks the Argo CD RBAC permission for this call)"
    )
    assert_no_secret(result)
    assert argo.app("guestbook").get("operation") is None


def test_unknown_application_404(argo, conn):
    result = run_task(Status, **{**conn, "application": "nope"}, raise_on_failure=False)
    assert result.error == (
        'Argo CD error on GET /api/v1/applications/nope (HTTP 404): applications.argoproj.io "nope" not found '
        "(NotFound)"
    )


def test_another_operation_in_progress(argo, conn):
    argo.plan("guestbook", outcome="hang")
    run_task(Sync, wait=False, **conn)
    result = run_task(Sync, raise_on_failure=False, **conn)
    assert result.error == (
        "Argo CD error on POST /api/v1/applications/guestbook/sync (HTTP 400): another operation is already "
        "in progress (FailedPrecondition)"
    )


def test_rate_limited_by_a_proxy_honours_retry_after(argo, conn):
    argo.inject(
        429, "Too Many Requests", content_type="text/plain", headers={"Retry-After": "1"}, method="POST"
    )
    started = time.monotonic()
    result = run_task(Sync, **conn, **FAST)
    assert time.monotonic() - started >= 1.0
    assert result.outputs["healthStatus"] == "Healthy"
    assert any(
        "HTTP 429 to POST /api/v1/applications/guestbook/sync; retrying in 1s" in m for m in result.messages
    )
    assert len(argo.syncs) == 1  # the rejected call never reached the fake's model


def test_rate_limit_gives_up(argo, conn):
    argo.inject(429, "Too Many Requests", content_type="text/plain", headers={"Retry-After": "0"}, times=4)
    result = run_task(Status, raise_on_failure=False, **conn)
    assert result.error == (
        "Argo CD kept rate-limiting GET /api/v1/applications/guestbook after 4 attempts (HTTP 429): Too Many Requests"
    )


@pytest.mark.parametrize(
    ("status", "body", "ctype", "expected"),
    [
        (
            500,
            {
                "error": "etcdserver: request timed out",
                "code": 13,
                "message": "etcdserver: request timed out",
            },
            "application/json",
            "Argo CD error on GET /api/v1/applications/guestbook (HTTP 500): etcdserver: request timed out (Internal)",
        ),
        (
            502,
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "text/html",
            "Argo CD error on GET /api/v1/applications/guestbook (HTTP 502): <html><body><h1>502 Bad Gateway</h1>",
        ),
        (
            503,
            "upstream connect error",
            "text/plain",
            "Argo CD error on GET /api/v1/applications/guestbook (HTTP 503): upstream connect error",
        ),
        (
            200,
            "<html>login</html>",
            "text/html",
            "Argo CD returned a malformed response to GET /api/v1/applications/guestbook (HTTP 200, "
            "content-type text/html, not JSON): <html>login</html>",
        ),
        (
            200,
            [1, 2],
            "application/json",
            "Argo CD returned a malformed response to GET /api/v1/applications/guestbook: expected an "
            "Application object with 'metadata'",
        ),
        (
            200,
            {"metadata": {"name": "guestbook"}, "status": "Healthy"},
            "application/json",
            "'status' should be an object",
        ),
    ],
)
def test_server_errors_and_malformed_answers(argo, conn, status, body, ctype, expected):
    argo.inject(status, body, content_type=ctype)
    result = run_task(Status, raise_on_failure=False, **conn)
    assert result.state == "FAILED"
    assert expected in result.error


def test_malformed_answer_during_the_wait(argo, conn):
    argo.inject(200, "{not json", method="GET")
    result = run_task(Sync, raise_on_failure=False, **conn, **FAST)
    assert "malformed response to GET /api/v1/applications/guestbook" in result.error


def test_hanging_server_times_out(argo, conn):
    argo.inject(200, {}, delay=5)
    started = time.monotonic()
    result = run_task(
        Status, options={"timeout": {"readIdleTimeout": "PT0.3S"}}, raise_on_failure=False, **conn
    )
    assert time.monotonic() - started < 3
    assert "did not answer GET /api/v1/applications/guestbook in time (ReadTimeout; read timeout 0.3s)" in (
        result.error
    )


def test_echoed_token_is_scrubbed(argo, conn):
    argo.inject(400, {"error": f"bad token {TOKEN}", "code": 3, "message": f"bad token {TOKEN}"})
    result = run_task(Status, raise_on_failure=False, **conn)
    assert "bad token **** (InvalidArgument)" in result.error
    assert_no_secret(result)


def test_kill_during_the_wait_stops_polling_and_terminates_the_operation(argo):
    argo.plan("guestbook", outcome="hang")
    ctx, thread, box = start(
        Sync, server=argo.url, token=TOKEN, application="guestbook", pollFrequency="PT0.05S"
    )
    wait_for(lambda: argo.app("guestbook")["status"].get("operationState", {}).get("phase") == "Running")
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"
    assert argo.terminations == ["guestbook"]
    polls = len(argo.requests)
    time.sleep(0.2)
    assert len(argo.requests) == polls  # no more polling
    assert any("execution killed: sync operation of application guestbook terminated" in log["message"]
               for log in ctx.logs)  # fmt: skip
    # the controller ends the terminated operation
    status = run_task(Status, server=argo.url, token=TOKEN, application="guestbook").outputs
    assert status["operationPhase"] == "Failed" and status["operationMessage"] == "Operation terminated"


def test_kill_while_the_sync_request_is_in_flight(argo):
    argo.inject(200, {}, method="POST", delay=10)
    ctx, thread, box = start(Sync, server=argo.url, token=TOKEN, application="guestbook")
    wait_for(lambda: bool(argo.requests))
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert type(box["error"]).__name__ == "Killed"
    # the request never reached Argo CD's model: the kill finds no operation to terminate
    assert argo.terminations == []
    assert any("no sync operation of guestbook left to terminate" in log["message"] for log in ctx.logs)


def test_kill_while_waiting_for_retry_after(argo):
    argo.inject(429, "slow down", content_type="text/plain", headers={"Retry-After": "30"})
    ctx, thread, box = start(Status, server=argo.url, token=TOKEN, application="guestbook")
    wait_for(lambda: any("retrying in 30s" in log["message"] for log in ctx.logs))
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and type(box["error"]).__name__ == "Killed"


def test_validation_errors():
    with pytest.raises(ValidationError, match="application"):
        Sync.model_validate({"id": "t", "type": Sync.type_id, "server": "argocd", "token": "x"})
    with pytest.raises(ValidationError, match="prune"):
        Sync.model_validate(
            {
                "id": "t",
                "type": Sync.type_id,
                "server": "a",
                "token": "x",
                "application": "b",
                "prune": "maybe",
            }
        )
    with pytest.raises(ValidationError, match="entries must not be empty"):
        Sync.model_validate(
            {
                "id": "t",
                "type": Sync.type_id,
                "server": "a",
                "token": "x",
                "application": "b",
                "syncOptions": [" "],
            }
        )


def test_bad_inputs_are_reported(argo, conn):
    with pytest.raises(
        ValidationError, match="Argo CD credentials are missing: set token, or username and password"
    ):
        Status.model_validate({"id": "t", "type": Status.type_id, "server": argo.url, "application": "a"})
    empty = run_task(Status, **{**conn, "token": "{{ '' }}"}, raise_on_failure=False)
    assert empty.error == "Argo CD credentials are missing: set token, or username and password"
    bad_app = run_task(Status, **{**conn, "application": "a/b/c"}, raise_on_failure=False)
    assert bad_app.error == "application must be a name or namespace/name, got 'a/b/c'"
    bad_server = run_task(Status, **{**conn, "server": "ftp://argo"}, raise_on_failure=False)
    assert bad_server.error == "server must be a host name or an http(s) URL, got 'ftp://argo'"
    bad_resource = run_task(Sync, resources=["Deployment"], raise_on_failure=False, **conn)
    assert "resources: 'Deployment' is not GROUP:KIND:NAME" in bad_resource.error
    broken = run_task(Status, **{**conn, "token": "a\nb"}, raise_on_failure=False)
    assert broken.error == "token contains a line break or a character an HTTP header cannot carry"


def test_helpers():
    assert server_url("argocd.example.com") == "https://argocd.example.com"
    assert server_url("argocd.example.com:8080/", plaintext=True) == "http://argocd.example.com:8080"
    assert server_url("https://argocd.example.com") == "https://argocd.example.com"
    assert app_path("guestbook") == ("guestbook", None)
    assert app_path("team-a/web") == ("web", "team-a")
