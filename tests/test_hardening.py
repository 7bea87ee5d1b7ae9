"""Hardening (issue 9): open URLs, malformed requests, errors without internals, per-execution masks,
store faults, KV keys and execution files. The HTTP-server halves are in tests/e2e/test_hardening_e2e.py."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from roost import TaskError
from roost.builtin.kv import Delete, Get, Set
from roost.engine.context import KVMemory
from roost.engine.engine import Engine
from roost.expr.masking import MASK, MaskSet
from roost.server import ServerConfig, ServerState, create_app
from roost.server.auth import open_url
from roost.server.config import ConfigError, compile_open_url, hash_password, load_config
from roost.server.errors import RequestGuard, install
from roost.server.runner import QueryStringMask
from roost.store.db import Store
from roost.store.keys import InvalidKey, kv_key
from roost.store.storage import LocalStorage, StorageError, StorageOutside
from roost.testing import run_task

WEBHOOK = [compile_open_url("/api/v1/{tenant}/executions/webhook/{namespace}/{id}/{key}")]


# -- 1. open URLs match whole segments --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "open_"),
    [
        ("/api/v1/main/executions/webhook/sec.ns/hook/k3y", True),
        ("/api/v1/main/executions/webhook/pwn", False),  # createExecution of flow webhook.pwn
        ("/api/v1/main/flows/executions/webhook/revisions", False),  # a flow's source
        ("/api/v1/main/executions/webhook/a/b/c/d", False),  # what a%2Fb decodes to
        ("/api/v1/main/executions/webhook/a/b/", False),
        ("/api/v1/main/executions/webhook/a/b/c/", False),
        ("/api/v1/main//executions/webhook/a/b/c", False),
        ("/api/v1/main/executions/webhook/../b/c", False),
        ("/api/v1/main/executions/webhook/./b/c", False),
        ("/API/v1/main/executions/webhook/a/b/c", False),
        ("/api/v1/main/executions/Webhook/a/b/c", False),
        ("api/v1/main/executions/webhook/a/b/c", False),
    ],
)
def test_open_urls_match_whole_segments(path: str, open_: bool) -> None:
    assert open_url(WEBHOOK, path) is open_


def test_double_star_opens_the_rest_of_a_path_only() -> None:
    patterns = [compile_open_url("/public/**")]
    assert open_url(patterns, "/public") and open_url(patterns, "/public/a/b")
    assert not open_url(patterns, "/publicity") and not open_url(patterns, "/x/public/a")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("/api/v1/*/executions/webhook/", "empty path segment"),  # the old prefix form: refused, with the fix
        ("/api/v1/main/exec*", "mixes text and wildcards"),
        ("/api/**/webhook", "last segment only"),
        ("api/v1", "absolute path"),
        ("/a/../b", "'..'"),
    ],
)
def test_bad_open_url_patterns_are_configuration_errors(tmp_path: Path, pattern: str, problem: str) -> None:
    config = tmp_path / "roost.yaml"
    config.write_text(f'server:\n  basicAuth:\n    openUrls: ["/health", "{pattern}"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(config, env={})
    assert "server.basicAuth.openUrls[1]" in str(err.value) and problem in str(err.value)


def test_open_urls_are_configurable(tmp_path: Path) -> None:
    config = tmp_path / "roost.yaml"
    config.write_text(
        "server:\n  basicAuth:\n    openUrls: ['/api/v1/{tenant}/executions/webhook/{namespace}/**']\n"
    )
    assert load_config(config, env={}).auth.open_urls == (
        "/api/v1/{tenant}/executions/webhook/{namespace}/**",
    )
    config.write_text("server:\n  basicAuth:\n    openUrls: []\n")
    assert load_config(config, env={}).auth.open_urls == ()


# -- 2. malformed requests: 4xx, never 500 ------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=2)
    eng.start()
    yield eng
    eng.stop()


def test_malformed_credentials_are_401(engine: Engine) -> None:
    config = ServerConfig()
    config.auth.users["ada"] = hash_password("lovelace")
    c = TestClient(create_app(ServerState(engine, config)), raise_server_exceptions=False)
    url = "/api/v1/main/flows/search"
    utf8 = base64.b64encode("adä:lövelace".encode()).decode()
    latin1 = base64.b64encode("ada:l\xf6velace".encode("latin-1")).decode()
    for header in [b"Basic \xc3\xa9\xff", b"Basic \xff\xfe", b"Bearer \xff", f"Basic {utf8}".encode(),
                   f"Basic {latin1}".encode(), b"Basic !!!", b"Basic", b"Digest x", b"Basic " + b"QUFB" * 5000]:  # fmt: skip
        r = c.get(url, headers=[(b"authorization", header)])
        assert r.status_code == 401, (header[:40], r.text)
        assert r.json()["message"] == "Invalid credentials"
    assert c.get(url, auth=("ada", "lovelace")).status_code == 200
    assert c.get(url, auth=("nobody", "lovelace")).status_code == 401


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/main/namespaces/company.team/files?path=a%00b",
        "/api/v1/main/namespaces/company%00team/kv/key",
        "/api/v1/main/namespaces/company.team/kv/k%00",
        "/api/v1/main/namespaces/company.team/files?path=%FF%FE",
        "/api/v1/main/executions/x/file?path=kestra:///a%00/b",
    ],
)
def test_nul_and_invalid_utf8_in_targets_are_400(engine: Engine, target: str) -> None:
    c = TestClient(create_app(ServerState(engine, ServerConfig())), raise_server_exceptions=False)
    r = c.get(target)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("Invalid request: the ")


def test_internal_errors_never_show_their_text(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    install(app)
    app.add_middleware(RequestGuard)

    @app.get("/locked")
    def locked() -> None:
        raise sa.exc.OperationalError("INSERT INTO kv (tenant, key) VALUES (?, ?)", ("main", "k"),
                                      Exception("database is locked"))  # fmt: skip

    @app.get("/bug")
    def bug() -> None:
        raise RuntimeError("SELECT secret FROM users WHERE id = 1")

    c = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, "roost.server"):
        r = c.get("/locked")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "INSERT" not in r.text and "locked" not in r.text
        ref = r.json()["reference"]
        assert ref in caplog.text and "INSERT INTO kv" in caplog.text  # the detail is in the server log
        r = c.get("/bug")
    assert (
        r.status_code == 500
        and r.headers["content-type"] == "application/json"
        and "SELECT" not in r.text
        and "RuntimeError" not in r.text
    )
    assert r.json()["reference"] in r.json()["message"]
    assert f"reference {r.json()['reference']}" in caplog.text and "SELECT secret" in caplog.text


# -- 5. store faults: retried, reported at start ------------------------------------------------------------
LOCKER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
sys.stdin.readline()
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""

SLOW = """id: slow
namespace: company.team
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: started
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.8S
  - id: last
    type: io.kestra.plugin.core.log.Log
    message: finished {{ execution.id }}
"""


def test_a_store_locked_by_another_process_delays_work_but_strands_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite locked for longer than its busy timeout while executions run: the batch writes fail, are
    retried, and every execution ends (none stays RUNNING), with all its log lines."""
    store = Store.sqlite(tmp_path, busy_timeout=0.2)
    engine = Engine(store, tmp_path, workers=6).start()
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(tmp_path / "roost.db"), "3"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        flow = engine.deploy(SLOW)
        ids = [engine.create_execution(flow).id for _ in range(5)]
        with caplog.at_level(logging.WARNING, "roost.engine"):
            assert locker.stdin is not None and locker.stdout is not None
            locker.stdin.write("go\n")
            locker.stdin.flush()
            assert locker.stdout.readline().strip() == "locked"
            ended = [engine.wait(i, timeout=30) for i in ids]
        assert [ex.state.current for ex in ended] == ["SUCCESS"] * 5
        assert "cannot write the state of" in caplog.text  # the lock was really met, and outlasted
        for ex_id in ids:
            assert Engine(Store.sqlite(tmp_path), tmp_path).get_execution(ex_id).state.current == "SUCCESS"  # type: ignore[union-attr]
        engine._flush_logs()
        messages = [r["message"] for r in store.get_logs("main")]
        assert all(f"finished {i}" in messages for i in ids)
    finally:
        locker.kill()
        locker.wait()
        engine.stop()


def test_an_unwritable_store_is_reported_by_the_start_up_check(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path)
    store.check_writable()  # a row written and rolled back: nothing stays
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM schema_version WHERE version = -1")).scalar() == 0
    store.close()
    read_only = Store(f"sqlite:///file:{tmp_path / 'roost.db'}?mode=ro&uri=true")
    with pytest.raises(sa.exc.OperationalError, match="readonly"):
        read_only.check_writable()


def test_the_embedded_store_is_this_process_alone(tmp_path: Path) -> None:
    """`roost server local`'s SQLite: no -shm file another process could truncate (SIGBUS), and no second
    process on the same data folder."""
    store = Store.sqlite(tmp_path, exclusive=True)
    store.save_flow("main", "a", "b", "id: b\nnamespace: a\n")
    assert store.get_flow("main", "a", "b") is not None
    assert not (tmp_path / "roost.db-shm").exists()
    other = subprocess.run([sys.executable, "-c", "import sys; from roost.store.db import Store; "
                            "Store.sqlite(sys.argv[1], busy_timeout=0.2)", str(tmp_path)],
                           capture_output=True, text=True)  # fmt: skip
    assert other.returncode != 0 and "database is locked" in other.stderr


# -- 6. masks belong to the execution and survive a restart ------------------------------------------------
def test_mask_set_state_holds_no_secret() -> None:
    masks = MaskSet()
    masks.add("from-backend-s3cret", ("company.team", "API_KEY"))
    masks.add("minted-t0ken-value")
    state = masks.state()
    assert "s3cret" not in str(state) and "t0ken" not in str(state)
    assert state["refs"] == [["company.team", "API_KEY"]] and len(state["digests"]) == 1
    back = MaskSet.restore(state, lambda ns, key: "from-backend-s3cret" if key == "API_KEY" else None)
    line = "a=from-backend-s3cret b=minted-t0ken-value, b again: minted-t0ken-value"
    assert back.mask(line) == f"a={MASK} b={MASK}, b again: {MASK}"
    assert back.mask("minted-t0ken-value") == MASK  # found by its digest once: now known in clear
    assert (
        not MaskSet.restore(state, lambda ns, key: None).mask("x from-backend-s3cret").endswith("x " + MASK)
    )


SECRET_FLOW = """id: masked
namespace: company.team
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('API_TOKEN') }}"
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "{{ decrypt('k3y', encrypt('k3y', 'minted-t0ken-value')) }}"
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
  - id: b
    type: io.kestra.plugin.core.log.Log
    message: "b saw {{ outputs.a.value }} and {{ outputs.t.value }}"
  - id: fails
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.a.value ~ outputs.nope.value }}"
"""


def test_a_secret_of_one_task_is_masked_in_the_logs_of_the_others_even_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(b"from-backend-s3cret").decode())
    engine = Engine(Store.sqlite(tmp_path), tmp_path, workers=2).start()
    ex = engine.create_execution(engine.deploy(SECRET_FLOW))
    deadline = time.monotonic() + 20
    while (engine.get_execution(ex.id) or ex).state.current != "PAUSED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    engine.stop()
    state = engine.store.load_masks(ex.id)
    assert state is not None and "s3cret" not in str(state) and "t0ken" not in str(state)

    again = Engine(Store.sqlite(tmp_path), tmp_path, workers=2).start()  # a new process: nothing in memory
    try:
        again.resume(ex.id)
        ended = again.wait(ex.id, timeout=20)
        assert ended.state.current == "FAILED"
        again._flush_logs()
        lines = [r["message"] for r in again.store.get_logs("main", ex.id)]
    finally:
        again.stop()
    assert f"b saw {MASK} and {MASK}" in lines
    text = "\n".join(lines) + str(ended.to_dict()["taskRunList"][-1])
    assert "s3cret" not in text and "t0ken" not in text


# -- 7. KV keys and execution files -----------------------------------------------------------------------
@pytest.mark.parametrize("key", ["../../etc/x", "", "a/b", "..", ".hidden", "k\n", "x" * 256, "k\x00"])
def test_kv_tasks_refuse_keys_the_api_refuses(key: str) -> None:
    with pytest.raises(InvalidKey):
        kv_key(key)
    for task, props in ((Set, {"value": "v"}), (Get, {}), (Delete, {})):
        with pytest.raises(TaskError, match="invalid key"):
            run_task(task, key=key, **props)
    with pytest.raises(InvalidKey):
        KVMemory().put("company.team", key, "v")


def test_kv_tasks_refuse_namespaces_the_api_refuses() -> None:
    with pytest.raises(TaskError, match="invalid namespace"):
        run_task(Set, key="ok", value="v", namespace="../other")


def test_a_valid_key_round_trips() -> None:
    assert run_task(Set, key="My-key_1.2", value="v").state == "SUCCESS"


def test_execution_files_are_checked_against_their_real_path(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    own = "company/team/flow/executions/AAA"
    uri = storage.put("company/team/flow/executions/BBB/tasks/t/r/secret.txt", b"not yours")
    assert storage.local_path(uri, within="company/team/flow/executions/BBB").read_bytes() == b"not yours"
    link = tmp_path / "main" / own / "tasks" / "t" / "r"
    link.mkdir(parents=True)
    (link / "out.txt").symlink_to(tmp_path / "main" / "company/team/flow/executions/BBB/tasks/t/r/secret.txt")
    with pytest.raises(StorageOutside):
        storage.local_path(f"kestra:///{own}/tasks/t/r/out.txt", within=own)
    (tmp_path / "main" / "company/team/flow/executions/CCC").symlink_to(
        tmp_path / "main" / "company/team/flow/executions/BBB"
    )
    with pytest.raises(StorageOutside):  # the execution's folder itself a link
        storage.local_path("kestra:///company/team/flow/executions/CCC/tasks/t/r/secret.txt",
                           within="company/team/flow/executions/CCC")  # fmt: skip
    with pytest.raises(StorageError, match="NUL"):
        storage.local_path(f"kestra:///{own}/a\x00b", within=own)


def test_query_strings_are_masked_in_request_lines() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/api/v1/main/flows?token=s3cret&page=2", "1.1", 200), None)  # fmt: skip
    QueryStringMask().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /api/v1/main/flows?token=***&page=*** HTTP/1.1" 200'
    record = logging.LogRecord(
        "httpx", logging.WARNING, __file__, 1, "HTTP Request: %s", ("https://x/y?sig=abc",), None
    )
    QueryStringMask().filter(record)
    assert "abc" not in record.getMessage()


def test_roost_servers_keep_httpx_quiet() -> None:
    code = ("import logging; from roost.server.runner import configure_logging; configure_logging(); "
            "print(logging.getLogger('httpx').getEffectiveLevel(), logging.getLogger('httpcore').getEffectiveLevel())")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}
    ).stdout
    assert out.split() == ["30", "30"]


def test_execution_file_routes_refuse_a_link_to_another_executions_file(engine: Engine) -> None:
    flow = engine.deploy(SLOW.replace("PT0.8S", "PT0S"))
    mine, other = engine.run(flow, timeout=20), engine.run(flow, timeout=20)
    storage = engine.runtime().storage
    secret_uri = storage.put(f"company/team/slow/executions/{other.id}/tasks/t/r/secret.txt", b"not yours")
    own_file = storage.local_path(
        storage.put(f"company/team/slow/executions/{mine.id}/tasks/t/r/own.txt", b"mine")
    )
    (own_file.parent / "link.txt").symlink_to(storage.local_path(secret_uri))
    c = TestClient(create_app(ServerState(engine, ServerConfig())), raise_server_exceptions=False)
    base = f"/api/v1/main/executions/{mine.id}"
    own = f"kestra:///company/team/slow/executions/{mine.id}/tasks/t/r/"
    assert c.get(base + "/file", params={"path": own + "own.txt"}).content == b"mine"
    for route in ("/file", "/file/metas"):
        r = c.get(base + route, params={"path": own + "link.txt"})
        assert r.status_code == 403 and "not yours" not in r.text, r.text
        assert c.get(base + route, params={"path": secret_uri}).status_code == 403
