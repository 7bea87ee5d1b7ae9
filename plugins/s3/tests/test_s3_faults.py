"""Faults: a missing bucket, refused keys, an endpoint that is down -- clear errors for the server at start,
for tasks and for the API, and never a key in any of them."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from roost.engine.engine import Engine
from roost.plugins import Plugins
from roost.store.db import Store
from roost.testing.server import ServerProcess, free_port
from roost_s3.seaweedfs import SeaweedFS

WRITE = """
id: write
namespace: company.team
tasks:
  - id: out
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["out.txt"]
    commands:
      - echo hello > out.txt
"""


def run(tmp_path, storage, monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    engine = Engine(
        Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=2, plugins=Plugins(), storage=storage
    )
    engine.start()
    try:
        ex = engine.run(engine.deploy(WRITE), timeout=120)
        errors = [m["message"] for m in engine.store.get_logs("main", ex.id) if m["level"] == "ERROR"]
        return ex.state.current, errors
    finally:
        engine.stop()
        engine.store.close()


def test_a_missing_bucket_fails_the_task_with_the_bucket_named(tmp_path, seaweed, monkeypatch):
    state, errors = run(tmp_path, seaweed.storage_config("no-such-bucket"), monkeypatch, seaweed.environ())
    assert state == "FAILED"
    assert any("the bucket 'no-such-bucket' does not exist" in e for e in errors), errors


def test_refused_keys_fail_the_task_and_the_key_is_never_shown(tmp_path, seaweed, bucket, monkeypatch):
    env = {**seaweed.environ(), "ROOST_TEST_S3_SECRET_KEY": "wrong-secret-key-0123456789"}
    state, errors = run(tmp_path, seaweed.storage_config(bucket), monkeypatch, env)
    assert state == "FAILED"
    assert any("was refused (SignatureDoesNotMatch)" in e and "check the access key" in e for e in errors), (
        errors
    )
    assert not any("wrong-secret-key" in e or seaweed.secret_key in e for e in errors)


def test_an_endpoint_down_fails_the_task_with_the_endpoint_named(tmp_path, seaweed, monkeypatch):
    down = f"http://127.0.0.1:{free_port()}"
    storage = seaweed.storage_config("roost", endpoint=down, maxAttempts=1, connectTimeout=2)
    state, errors = run(tmp_path, storage, monkeypatch, seaweed.environ())
    assert state == "FAILED"
    assert any(f"cannot reach {down}" in e for e in errors), errors


@pytest.mark.parametrize("case", ["bucket", "keys", "down"])
def test_the_server_refuses_to_start_on_storage_it_cannot_write(tmp_path, seaweed, bucket, case):
    env = dict(seaweed.environ())
    storage = seaweed.storage_config(bucket, maxAttempts=1, connectTimeout=2)
    expected = {"bucket": "the bucket 'absent-bucket' does not exist", "keys": "was refused",
                "down": "cannot reach"}[case]  # fmt: skip
    if case == "bucket":
        storage["s3"]["bucket"] = "absent-bucket"
    elif case == "keys":
        env["ROOST_TEST_S3_SECRET_KEY"] = "not-the-key"
    else:
        storage["s3"]["endpoint"] = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "roost.yaml"
    config.write_text(json.dumps({"storage": storage}))
    done = subprocess.run([sys.executable, "-m", "roost.cli.main", "server", "local", "--data-dir", str(tmp_path / "d"),
                           "--config", str(config), "--port", str(free_port())], capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "ROOST_LOAD_PLUGINS": "s3", **env})  # fmt: skip
    assert done.returncode != 0
    assert "cannot write the internal storage s3://" in done.stderr and expected in done.stderr, done.stderr
    assert "not-the-key" not in done.stderr and seaweed.secret_key not in done.stderr


def test_a_malformed_storage_section_is_refused_with_its_path(tmp_path):
    config = tmp_path / "roost.yaml"
    config.write_text(
        json.dumps({"storage": {"type": "s3", "s3": {"bucket": "roost", "secretKey": "in-clear"}}})
    )
    done = subprocess.run([sys.executable, "-m", "roost.cli.main", "server", "local", "--data-dir", str(tmp_path / "d"),
                           "--config", str(config)], capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, "ROOST_LOAD_PLUGINS": "s3"})  # fmt: skip
    assert done.returncode != 0 and "storage.s3.secretKey: write a reference" in done.stderr, done.stderr


def test_the_api_answers_503_when_the_endpoint_goes_down(tmp_path):
    with SeaweedFS(tmp_path / "own") as own:
        own.create_bucket("roost")
        config = tmp_path / "roost.yaml"
        config.write_text(
            json.dumps({"storage": own.storage_config("roost", maxAttempts=1, connectTimeout=2)})
        )
        server = ServerProcess("local", tmp_path / "data", config=config,
                               env={"ROOST_LOAD_PLUGINS": "s3", **own.environ()}).wait_ready(60)  # fmt: skip
        try:
            api = httpx.Client(base_url=server.url + "/api/v1/main", timeout=60)
            api.post(
                "/flows", content=WRITE, headers={"content-type": "application/x-yaml"}
            ).raise_for_status()
            ex = api.post("/executions/company.team/write", params={"wait": "true"}).json()
            assert ex["state"]["current"] == "SUCCESS"
            uri = ex["taskRunList"][0]["outputs"]["outputFiles"]["out.txt"]
            assert api.get(f"/executions/{ex['id']}/file", params={"path": uri}).content == b"hello\n"
            own.stop()
            answer = api.get(f"/executions/{ex['id']}/file", params={"path": uri})
            assert answer.status_code == 503 and answer.headers["retry-after"]
            assert "cannot reach" in answer.json()["message"] and own.secret_key not in answer.text
            assert api.get(f"/executions/{ex['id']}/file/metas", params={"path": uri}).status_code == 503
            failed = api.post("/executions/company.team/write", params={"wait": "true"}).json()
            assert failed["state"]["current"] == "FAILED"
        finally:
            server.stop()
