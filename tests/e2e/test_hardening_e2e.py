"""Hardening against a real server process (issue 9): anonymous access on every route, malformed
requests, secrets in logs, request logging, start-up checks, a full disk. Unit halves: tests/test_hardening.py."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from roost.server.config import hash_password, hash_token
from roost.testing.http import FakeHttpServer

from tests.e2e.conftest import ServerProcess, deploy

pytestmark = pytest.mark.e2e
TOKEN = "roost_hardening_token_0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEBHOOK_ROUTE = "/api/v1/{tenant}/executions/webhook/{namespace}/{id}/{key}"


def _raw(port: int, method: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request with its target sent exactly as given (httpx would normalise '..' and '//')."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("roost-hardening")
    config = root / "roost.yaml"
    config.write_text(f"""
server:
  basicAuth:
    users:
      - username: admin@example.com
        passwordHash: "{hash_password("correct horse")}"
  apiTokens:
    - name: ci
      tokenHash: "{hash_token(TOKEN)}"
""")
    proc = ServerProcess("local", root / "data", config=config).wait_ready()
    with httpx.Client(base_url=proc.url + "/api/v1/main", headers=AUTH, timeout=30) as api:
        hook = ("tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
                "triggers:\n  - id: w\n    type: io.kestra.plugin.core.trigger.Webhook\n    key: k3y\n")  # fmt: skip
        deploy(api, f"id: hook\nnamespace: sec.ns\n{hook}")
        # flows whose ids collide with the webhook route's words: the bypass of issue 9 reached them
        deploy(api, f"id: pwn\nnamespace: webhook\n{hook}")
        deploy(api, f"id: webhook\nnamespace: executions\n{hook}")
    yield proc
    proc.stop()


# -- 1. anonymous access --------------------------------------------------------------------------------------
PLAUSIBLE = {"tenant": "main", "namespace": "sec.ns", "id": "hook", "flowId": "hook", "key": "k3y"}
CRAFTED = ["webhook", "executions", "a%2Fb", "..", "%2E%2E", "x%2F..%2Fy", "main", "revisions"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def _open_by_default(path: str) -> bool:
    """The default open URL, re-stated independently: 8 segments, 'executions/webhook' in place."""
    from urllib.parse import unquote

    segments = unquote(path.split("?", 1)[0]).split("/")[1:]
    return (
        len(segments) == 8
        and segments[:2] == ["api", "v1"]
        and segments[3:5] == ["executions", "webhook"]
        and all(s not in ("", ".", "..") for s in segments)
    )


def test_every_route_of_the_openapi_refuses_anonymous_requests(secured: ServerProcess) -> None:
    spec = httpx.get(secured.url + "/api/v1/openapi.json", headers=AUTH, timeout=30).json()
    templates = list(spec["paths"])
    assert WEBHOOK_ROUTE in templates and len(templates) > 40
    conn = http.client.HTTPConnection("127.0.0.1", secured.port, timeout=15)
    answered: dict[str, set[int]] = {}
    for template in templates:
        params = [p.split("}")[0] for p in template.split("{")[1:]]
        variants = [{p: PLAUSIBLE.get(p, "x") for p in params}] + [{p: v for p in params} for v in CRAFTED]
        for values in variants if params else [{}]:
            path = template
            for name, value in values.items():
                path = path.replace("{" + name + "}", value)
            for method in METHODS:
                try:
                    conn.request(method, path)
                    response = conn.getresponse()
                    response.read()
                except (http.client.HTTPException, OSError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", secured.port, timeout=15)
                    conn.request(method, path)
                    response = conn.getresponse()
                    response.read()
                status = response.status
                answered.setdefault(template, set()).add(status)
                assert status < 500, (method, path, status)
                if template == "/health" or (template == WEBHOOK_ROUTE and _open_by_default(path)):
                    continue
                assert status == 401, (method, path, status)
    conn.close()
    assert answered["/health"] != {401} and 200 in answered[WEBHOOK_ROUTE]  # the real webhook still works


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", "/api/v1/main/executions/webhook/pwn"),  # createExecution of webhook.pwn (issue 9)
        ("GET", "/api/v1/main/flows/executions/webhook/revisions"),  # the source of executions.webhook
        ("GET", "/api/v1/main/flows/executions/webhook"),
        ("POST", "/api/v1/main/executions/webhook/a%2Fb/c/d"),
        ("POST", "/api/v1/main/executions/webhook/sec.ns%2Fhook/k3y/x"),
        ("POST", "/api/v1/main/executions/webhook/sec.ns/hook/k3y/"),
        ("POST", "/api/v1/main/executions/webhook/sec.ns/hook/"),
        ("POST", "//api/v1/main/executions/webhook/sec.ns/hook/k3y"),
        ("POST", "/api/v1/main//executions/webhook/sec.ns/hook/k3y"),
        ("GET", "/api/v1/main/executions/webhook/../../flows/search"),
        ("GET", "/api/v1/main/executions/webhook/%2E%2E/%2E%2E/flows/search"),
        ("GET", "/api/v1/main/executions/webhook/x/../../../flows/executions/webhook/revisions"),
        ("POST", "/API/v1/main/executions/webhook/sec.ns/hook/k3y"),
        ("POST", "/api/v1/main/executions/WEBHOOK/sec.ns/hook/k3y"),
        ("GET", "/api/v1/main/flows/search?/api/v1/main/executions/webhook/a/b/c"),
        ("GET", "/api/v1/main/flows/search#/api/v1/main/executions/webhook/a/b/c"),
        ("GET", "/api/v1/openapi.json"),
    ],
)
def test_path_tricks_do_not_reach_closed_routes(secured: ServerProcess, method: str, target: str) -> None:
    status, body = _raw(secured.port, method, target)
    assert status == 401, (target, body[:200])


def test_the_webhook_route_is_open_and_nothing_else_ran(secured: ServerProcess) -> None:
    assert httpx.post(secured.url + "/api/v1/main/executions/webhook/sec.ns/hook/k3y").status_code == 200
    # an open path that routes only to the webhook route: its key, not its shape, decides
    status, _ = _raw(secured.port, "POST", "/api/v1/main/executions/webhook/webhook/pwn/nope")
    assert status == 404
    found = httpx.get(secured.url + "/api/v1/main/executions/search", params={"namespace": "webhook"},
                      headers=AUTH).json()  # fmt: skip
    assert found["total"] == 0  # no anonymous request started webhook.pwn


# -- 2. malformed headers and targets ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        b"Basic \xc3\xa9\xff",
        b"Basic \xff\xfe\xfd",
        b"Bearer \xe2\x82\xac",
        b"Basic " + base64.b64encode("admin@example.com:\xe9".encode("latin-1")),
        b"Basic %%%%",
        b"Basic " + b"A" * 60_000,
        b"Bearer " + b"x" * 60_000,
    ],
)
def test_malformed_authorization_headers_are_refused_cleanly(secured: ServerProcess, header: bytes) -> None:
    with socket.create_connection(("127.0.0.1", secured.port), timeout=15) as sock:
        sock.sendall(b"GET /api/v1/main/flows/search HTTP/1.1\r\nHost: x\r\nAuthorization: " + header
                     + b"\r\nConnection: close\r\n\r\n")  # fmt: skip
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    assert status in (400, 401, 431), data[:300]
    if status == 401:
        assert json.loads(data.split(b"\r\n\r\n", 1)[1]) == {"message": "Invalid credentials"}
    assert httpx.get(secured.url + "/health").status_code == 200  # and the server is fine


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/main/namespaces/sec.ns/files?path=a%00b",
        "/api/v1/main/namespaces/sec.ns/files?path=%C0%AF",
        "/api/v1/main/namespaces/sec%00ns/kv",
        "/api/v1/main/namespaces/sec.ns/kv/k%00",
        "/api/v1/main/flows/sec.ns/hook%FF",
    ],
)
def test_nul_bytes_and_bad_encodings_in_targets_are_400(secured: ServerProcess, target: str) -> None:
    status, body = _raw(secured.port, "GET", target, AUTH)
    assert status == 400, body
    assert json.loads(body)["message"].startswith("Invalid request: the ")


# -- 6. secrets and request logging --------------------------------------------------------------------------
class Echo(FakeHttpServer):
    def answer(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "text/plain"}, b"ok"


SECRET = "from-backend-s3cret-value"


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("roost-secrets")
    config = root / "roost.yaml"
    config.write_text("server:\n  accessLog: true\n")
    env = {"SECRET_API_TOKEN": base64.b64encode(SECRET.encode()).decode()}
    proc = ServerProcess("local", root / "data", config=config, env=env).wait_ready()
    yield proc, root / "data"
    proc.stop()


def test_a_secret_one_task_read_is_masked_in_every_log_of_the_execution(
    logged: tuple[ServerProcess, Path],
) -> None:
    server, data_dir = logged
    echo = Echo().start()
    try:
        with httpx.Client(base_url=server.url + "/api/v1/main", timeout=30) as api:
            deploy(
                api,
                f"""id: leak
namespace: sec.ns
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ secret('API_TOKEN') }}}}"
  - id: b
    type: io.kestra.plugin.core.log.Log
    message: "task b logs {{{{ outputs.a.value }}}}"
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: "{echo.url}/hook?token={{{{ outputs.a.value }}}}&plain=visible-token-123"
  - id: c
    type: io.kestra.plugin.core.log.Log
    message: "the http call went to {{{{ outputs.call.uri }}}}"
""",
            )
            ex = api.post("/executions/sec.ns/leak", params={"wait": "true"}).json()
            assert ex["state"]["current"] == "SUCCESS", ex
            listed = api.get(f"/logs/{ex['id']}").json()
            download = api.get(f"/logs/{ex['id']}/download").text
            follow = api.get(f"/logs/{ex['id']}/follow").text
            api.get("/flows/search", params={"token": "access-log-t0ken"})
    finally:
        echo.stop()
    messages = [line["message"] for line in listed]
    assert "task b logs ******" in messages
    assert any(m.startswith("the http call went to") and "******" in m for m in messages)
    for text in (json.dumps(listed), download, follow):
        assert SECRET not in text and "task b logs ******" in text
    server.stop()  # the embedded store is the server's alone while it runs
    with contextlib.closing(sqlite3.connect(data_dir / "roost.db")) as db:
        stored = [r[0] for r in db.execute("SELECT message FROM logs WHERE execution_id = ?", (ex["id"],))]
        masks = db.execute("SELECT data FROM execution_masks WHERE execution_id = ?", (ex["id"],)).fetchone()
    assert "task b logs ******" in stored and not any(SECRET in m for m in stored)
    assert masks is not None and SECRET not in masks[0]
    server_log = server.log.read_text()
    assert SECRET not in server_log and "visible-token-123" not in server_log
    assert "HTTP Request:" not in server_log  # httpx's INFO request lines stay out of the server log
    assert "token=***" in server_log and "access-log-t0ken" not in server_log  # the access log, masked


# -- 5. faults: start-up checks, a full disk -----------------------------------------------------------------
@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only even for root: a tmpfs remounted read-only (skips where mounting is refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return
    staged = folder.with_name(folder.name + "-staged")
    folder.rename(staged)
    folder.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        subprocess.run(["cp", "-a", f"{staged}/.", str(folder)], check=True)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _start_fails(data_dir: Path, component: str = "local", *extra: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "roost.cli.main", "server", component, "--data-dir", str(data_dir),
                           "--port", "1", *extra], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ROOST_LOAD_PLUGINS": ""})  # fmt: skip
    assert done.returncode != 0 and time.monotonic() - started < 30
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_an_unwritable_data_folder_is_reported_at_start(tmp_path: Path) -> None:
    data = tmp_path / "empty"
    with read_only(data):
        done = _start_fails(data)
    assert "cannot write" in done.stderr and str(data) in done.stderr


def test_a_read_only_database_is_reported_at_start(tmp_path: Path) -> None:
    db = tmp_path / "db"
    subprocess.run([sys.executable, "-c", "import sys; from roost.store.db import Store; Store.sqlite(sys.argv[1])",
                    str(db)], check=True)  # fmt: skip
    with read_only(db):
        done = _start_fails(tmp_path / "data", "standalone", "--db-url", str(db / "roost.db"))
    assert "cannot write the store" in done.stderr and "roost.db" in done.stderr


def test_a_second_server_on_the_same_data_folder_is_refused(tmp_path: Path) -> None:
    first = ServerProcess("local", tmp_path / "data").wait_ready()
    try:
        done = _start_fails(tmp_path / "data")
        assert "another Roost process" in done.stderr
        assert httpx.get(first.url + "/health").status_code == 200
    finally:
        first.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_fails_writes_cleanly_keeps_reads_and_strands_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(data)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    server = None
    try:
        server = ServerProcess("local", data).wait_ready()
        assert not (data / "roost.db-shm").exists()  # no shared memory file: nothing to truncate under us
        (data / "roost.db-shm").write_bytes(b"")  # another process making one changes nothing
        with httpx.Client(base_url=server.url + "/api/v1/main", timeout=60) as api:
            deploy(api, "id: nap\nnamespace: disk.full\ntasks:\n  - id: z\n    type: io.kestra.plugin.core.flow.Sleep\n"
                        "    duration: PT2S\n  - id: done\n    type: io.kestra.plugin.core.log.Log\n    message: woke up\n")  # fmt: skip
            running = [api.post("/executions/disk.full/nap").json()["id"] for _ in range(3)]
            filler = data / "filler"
            with filler.open("wb") as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * (1 << 20))
            big = "id: big\nnamespace: disk.full\ndescription: " + "x" * 4_000_000 + "\ntasks:\n  - id: l\n" \
                  "    type: io.kestra.plugin.core.log.Log\n    message: hi\n"  # fmt: skip
            r = api.post("/flows", content=big, headers={"content-type": "application/x-yaml"})
            assert r.status_code == 503, r.text
            assert "INSERT" not in r.text and "store is unavailable" in r.json()["message"]
            assert api.get("/flows/disk.full/nap").status_code == 200  # reads go on
            time.sleep(3)  # the executions' ends cannot be written now
            assert server.proc.poll() is None
            filler.unlink()
            for ex_id in running:
                deadline = time.monotonic() + 60
                while (state := api.get(f"/executions/{ex_id}").json()["state"]["current"]) != "SUCCESS":
                    assert time.monotonic() < deadline, state
                    time.sleep(0.2)
            assert r.status_code == 503 and api.post("/flows", content=big.replace("x" * 4_000_000, "small"),
                                                     headers={"content-type": "application/x-yaml"}).status_code == 200  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["umount", "-l", str(data)], check=False)
