"""roost.ApiClient over real HTTP (roost.testing.http.FakeHttpServer): per-request signing,
per-call headers, retry policies, "while <doing>" in messages, URLs without credentials, TLS
hints, and kill during a request or a wait."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Generator
from email.utils import formatdate

import httpx
import pytest
from roost import ApiClient, ApiError, HttpOptions, HttpRetry, HttpTimeout
from roost.engine.context import Killed, Runtime, TaskRunContext
from roost.rest import parse_retry_after
from roost.testing.http import FakeHttpServer, Request, closed_port, self_signed_tls

FAST = HttpRetry(backoff=0.01)


class Echo(FakeHttpServer):
    """Answers every call with what it received."""

    def answer(self, request: Request):
        body = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "authorization": request.headers.get("Authorization"),
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


class Acme(ApiClient):
    service = "Acme API"
    retry = FAST


class Signer(httpx.Auth):
    """A signature that must differ on every request, as an OAuth nonce does."""

    def __init__(self) -> None:
        self.counter = itertools.count(1)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Sig n={next(self.counter)}"
        yield request


@pytest.fixture
def server():
    fake = Echo().start()
    yield fake
    fake.stop()


def _context() -> TaskRunContext:
    return TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="t")


# -- signing and headers ---------------------------------------------------------------------------
def test_auth_signs_every_request_and_every_retry_anew(server):
    server.inject(429, {"error": "busy"}, headers={"Retry-After": "0"}, times=2)
    with Acme(server.url, auth=Signer()) as api:
        assert api.request("GET", "/things")["authorization"] == "Sig n=3"
        assert api.request("GET", "/things")["authorization"] == "Sig n=4"
    assert [r.headers["Authorization"] for r in server.requests] == [f"Sig n={i}" for i in range(1, 5)]


def test_per_call_headers_are_the_same_on_retries_and_only_on_that_call(server):
    server.inject(503, "later", headers={"Retry-After": "0"})
    with Acme(server.url, headers={"X-Every": "1"}) as api:
        api.send("POST", "/jobs", json_body={"a": 1}, headers={"Idempotency-Key": "k-1"})
        api.send("GET", "/jobs")
    first, retry, other = server.requests
    assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"] == "k-1"
    assert retry.body == b'{"a":1}'
    assert other.headers.get("Idempotency-Key") is None
    assert all(r.headers["X-Every"] == "1" for r in server.requests)


def test_params_as_pairs_repeat_keys_and_drop_none(server):
    with Acme(server.url) as api:
        body = api.request("GET", "/machines/?op=list", params=[("tag", "a"), ("tag", "b"), ("zone", None)])
    assert body["query"] == {"op": ["list"], "tag": ["a", "b"]}


# -- retry policies ---------------------------------------------------------------------------------
def test_default_policy_retries_429_with_backoff_and_503_only_with_retry_after(server):
    server.inject(429, "slow down", times=2)  # no Retry-After: backoff
    with Acme(server.url) as api:
        assert api.request("GET", "/a")["path"] == "/a"
        server.inject(503, "down")  # no Retry-After: an error at once
        with pytest.raises(ApiError) as caught:
            api.request("GET", "/b")
    assert caught.value.status == 503 and "Acme API error on GET /b (HTTP 503): down" in str(caught.value)
    assert [r.path for r in server.requests] == ["/a", "/a", "/a", "/b"]


def test_policy_says_which_statuses_and_how_many_times(server):
    only_with_header = HttpRetry(
        statuses=frozenset(), statuses_with_retry_after=frozenset({429}), max_retries=1
    )
    with Acme(server.url, retry=only_with_header) as api:
        server.inject(429, "no header")
        with pytest.raises(ApiError, match=r"\(HTTP 429\): no header"):
            api.request("GET", "/x")
        server.inject(429, "again", headers={"Retry-After": "0"}, times=5)
        with pytest.raises(ApiError) as caught:
            api.request("GET", "/y")
    assert "Acme API kept rate-limiting GET /y after 2 attempts (HTTP 429): again" in str(caught.value)
    assert [r.path for r in server.requests] == ["/x", "/y", "/y"]


def test_retry_after_longer_than_the_limit_fails_at_once(server):
    server.inject(429, "come back tomorrow", headers={"Retry-After": "86400"})
    started = time.monotonic()
    with Acme(server.url) as api, pytest.raises(ApiError) as caught:
        api.request("GET", "/z")
    assert time.monotonic() - started < 2 and len(server.requests) == 1
    assert "asked to retry after 86400s, longer than the 60s this task waits" in str(caught.value)


def test_delay_reads_retry_after_or_backs_off():
    policy = HttpRetry(backoff=2.0)

    def answer(status, **headers):
        return httpx.Response(status, headers=headers)

    assert policy.delay(answer(429), 0) == 2.0 and policy.delay(answer(429), 2) == 8.0
    assert policy.delay(answer(429, **{"Retry-After": "5"}), 2) == 5.0
    assert policy.delay(answer(503), 0) is None
    assert policy.delay(answer(503, **{"Retry-After": "soon"}), 0) is None  # not usable: not retried
    assert policy.delay(answer(503, **{"Retry-After": "1"}), 0) == 1.0
    assert policy.delay(answer(500, **{"Retry-After": "1"}), 0) is None


def test_parse_retry_after_forms():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(formatdate(1000.0 + 30, usegmt=True), now=1000.0) == pytest.approx(30, abs=1)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: at once
    assert parse_retry_after("later") is None and parse_retry_after(None) is None


def test_retries_are_logged_with_their_wait(server):
    ctx = _context()
    server.inject(429, "busy", headers={"Retry-After": "0"})
    with Acme(server.url, ctx=ctx) as api:
        api.request("GET", "/w")
    messages = [(log["level"], log["message"]) for log in ctx.logs]
    assert ("WARN", "Acme API answered HTTP 429 to GET /w; retrying in 0s (retry 1 of 3)") in messages
    assert ("DEBUG", "Acme API GET /w -> HTTP 200") in messages


# -- messages ---------------------------------------------------------------------------------------
def test_doing_names_what_the_calls_were_for(server):
    with Acme(server.url) as api:
        with api.doing("listing things"):
            server.inject(404, "no such thing")
            with pytest.raises(
                ApiError, match=r"^Acme API error on GET /t while listing things \(HTTP 404\)"
            ):
                api.request("GET", "/t")
            with api.doing("reading thing 7"):
                server.inject(200, "<html>login</html>", content_type="text/html")
                with pytest.raises(ApiError, match=r"malformed response to GET /t/7 while reading thing 7"):
                    api.request("GET", "/t/7")
            server.inject(500, "boom")
            with pytest.raises(ApiError, match=r"on GET /t while listing things \(HTTP 500\): boom"):
                api.request("GET", "/t")
        server.inject(500, "boom")
        with pytest.raises(ApiError, match=r"^Acme API error on GET /t \(HTTP 500\): boom$"):
            api.request("GET", "/t")


def test_unreachable_and_timeout_messages():
    port = closed_port()
    with (
        Acme(f"http://127.0.0.1:{port}") as api,
        api.doing("listing things"),
        pytest.raises(ApiError) as caught,
    ):
        api.request("GET", "/t")
    assert str(caught.value).startswith(
        f"cannot reach Acme API at http://127.0.0.1:{port} while listing things: ConnectError"
    )
    assert caught.value.status is None

    slow = Echo().start()
    try:
        slow.inject(200, "{}", delay=10)
        options = HttpOptions(timeout=HttpTimeout(read_idle_timeout="PT0.2S"))
        with Acme(slow.url, options=options) as api, pytest.raises(ApiError) as caught:
            api.request("GET", "/slow")
        assert "Acme API did not answer GET /slow in time (ReadTimeout; read timeout 0.2s)" in str(
            caught.value
        )
    finally:
        slow.stop()


def test_credentials_in_the_url_never_reach_a_message(server):
    url = server.url.replace("http://", "http://admin:Pa55word-in-url@")
    server.inject(400, "bad request from admin:Pa55word-in-url")
    with Acme(url) as api:
        assert api.display_url == server.url
        with pytest.raises(ApiError) as caught:
            api.request("GET", "/t")
    assert "Pa55word-in-url" not in str(caught.value) and "****" in str(caught.value)
    port = closed_port()
    with Acme(f"http://admin:Pa55word-in-url@127.0.0.1:{port}") as api, pytest.raises(ApiError) as caught:
        api.request("GET", "/t")
    assert "Pa55word-in-url" not in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)


def test_untrusted_certificate_names_the_setting_that_turns_verification_off(tmp_path):
    class Vendor(Acme):
        insecure_setting = "verifySsl: false"

    fake = Echo().start(ssl_context=self_signed_tls(tmp_path))
    try:
        with Vendor(fake.url) as api, pytest.raises(ApiError) as caught:
            api.request("GET", "/t")
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
        assert "for a trusted test setup only, set verifySsl: false" in str(caught.value)
        with Acme(fake.url) as api, pytest.raises(ApiError, match="options.ssl.insecureTrustAllCertificates"):
            api.request("GET", "/t")
    finally:
        fake.stop()


# -- kill -------------------------------------------------------------------------------------------
def _call_in_thread(api: ApiClient, path: str) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target() -> None:
        try:
            box["body"] = api.request("GET", path)
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 200, "body": "{}", "delay": 30},  # a request under way
        {"status": 429, "body": "busy", "headers": {"Retry-After": "30"}},  # a Retry-After wait
    ],
    ids=["request", "retry-wait"],
)
def test_kill_returns_at_once(server, fault):
    server.inject(**fault)
    ctx = _context()
    api = Acme(server.url, ctx=ctx)
    thread, box = _call_in_thread(api, "/long")
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    started = time.monotonic()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert isinstance(box.get("error"), Killed)
    assert len(server.requests) == 1  # nothing sent after the kill
    with pytest.raises(Killed):
        api.request("GET", "/after")
