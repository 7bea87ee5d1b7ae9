"""The API end to end: a real ``roost server local`` process, spoken to over loopback HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerProcess, deploy, flow_yaml

pytestmark = pytest.mark.e2e
YAML = {"content-type": "application/x-yaml"}


def sse_events(client: httpx.Client, url: str, limit: float = 30) -> list[tuple[str, Any]]:
    """Read a server-sent event stream to its end: [(id, data)]."""
    events: list[tuple[str, Any]] = []
    deadline = time.monotonic() + limit
    with client.stream("GET", url, timeout=limit) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        event_id, data = None, None
        for line in r.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and event_id is not None:
                events.append((event_id, data))
                if event_id == "end":
                    break
                event_id, data = None, None
            assert time.monotonic() < deadline, "stream did not end"
    return events


def test_flow_lifecycle(api: httpx.Client) -> None:
    src = flow_yaml("""
        description: first
        labels:
          team: data
        tasks:
          - id: hello
            type: io.kestra.plugin.core.log.Log
            message: hi
        """, "lifecycle")  # fmt: skip
    created = api.post("/flows", content=src, headers=YAML)
    assert created.status_code == 200, created.text
    body = created.json()
    assert (
        body["revision"] == 1
        and body["source"] == src
        and body["labels"] == [{"key": "team", "value": "data"}]
    )
    again = api.post("/flows", content=src, headers=YAML)
    assert again.status_code == 422 and "already exists" in again.json()["message"]
    updated = api.put("/flows/e2e.team/lifecycle", content=src.replace("first", "second"), headers=YAML)
    assert updated.status_code == 200 and updated.json()["revision"] == 2
    wrong = api.put("/flows/e2e.team/other-id", content=src, headers=YAML)
    assert wrong.status_code == 422 and "cannot change" in wrong.json()["message"]
    got = api.get("/flows/e2e.team/lifecycle", params={"source": "true"}).json()
    assert got["description"] == "second" and "second" in got["source"]
    assert api.get("/flows/e2e.team/lifecycle", params={"revision": 1}).json()["description"] == "first"
    revs = api.get("/flows/e2e.team/lifecycle/revisions").json()
    assert [r["revision"] for r in revs] == [1, 2]
    listed = api.get("/flows/e2e.team").json()
    assert "lifecycle" in [f["id"] for f in listed]
    search = api.get(
        "/flows/search", params={"filters[namespace][PREFIX]": "e2e", "filters[q][EQUALS]": "lifecycle"}
    ).json()
    assert search["total"] == 1 and search["results"][0]["id"] == "lifecycle"
    by_label = api.get("/flows/search", params={"filters[labels][EQUALS][team]": "data"}).json()
    assert [f["id"] for f in by_label["results"]] == ["lifecycle"]
    assert api.get("/flows/search", params={"filters[nope][EQUALS]": "x"}).status_code == 400
    assert api.delete("/flows/e2e.team/lifecycle").status_code == 204
    assert api.get("/flows/e2e.team/lifecycle").status_code == 404
    assert api.delete("/flows/e2e.team/lifecycle").status_code == 404


def test_validate_reports_each_document(api: httpx.Client) -> None:
    good = flow_yaml(
        "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: ok\n", "valid-one"
    )
    bad = flow_yaml(
        "tasks:\n  - id: b\n    type: io.kestra.plugin.core.log.Log\n    mesage: typo\n", "invalid-one"
    )
    r = api.post("/flows/validate", content=good + "---\n" + bad, headers=YAML)
    assert r.status_code == 200, r.text
    results = r.json()
    assert [x["index"] for x in results] == [0, 1]
    assert results[0]["flow"] == "valid-one" and not results[0].get("constraints")
    assert results[1]["flow"] == "invalid-one"
    assert "tasks[0]" in results[1]["constraints"] and "mesage" in results[1]["constraints"]
    assert results[1]["violations"][0]["line"] >= 6  # the line in the whole body, not in its document
    rejected = api.post("/flows", content=bad, headers=YAML)
    assert rejected.status_code == 422
    assert rejected.json()["violations"][0]["path"].startswith("tasks[0]")


def test_run_with_wait_inputs_labels_and_secret_masking(api: httpx.Client) -> None:
    deploy(api, flow_yaml("""
        inputs:
          - id: name
            type: STRING
          - id: count
            type: INT
            defaults: 1
          - id: token
            type: SECRET
            required: false
        tasks:
          - id: out
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.name }} x{{ inputs.count }}"
        outputs:
          - id: result
            type: STRING
            value: "{{ outputs.out.value }}"
        """, "inputs"))  # fmt: skip
    r = api.post("/executions/e2e.team/inputs", params={"wait": "true", "labels": ["env:test", "run:1"]},
                 files={"name": (None, "roost"), "count": (None, "3"), "token": (None, "s3cret")})  # fmt: skip
    assert r.status_code == 200, r.text
    ex = r.json()
    assert ex["state"]["current"] == "SUCCESS"
    assert ex["outputs"] == {"result": "roost x3"}
    assert {"key": "env", "value": "test"} in ex["labels"]
    assert ex["inputs"]["token"] == "******" and "s3cret" not in r.text
    assert ex["url"].endswith(f"/ui/main/executions/e2e.team/inputs/{ex['id']}")
    again = api.get(f"/executions/{ex['id']}").json()
    assert again["inputs"]["token"] == "******" and again["taskRunList"][0]["taskId"] == "out"
    bad = api.post("/executions/e2e.team/inputs", files={"count": (None, "many")})
    assert bad.status_code == 422
    assert set(bad.json()["inputs"]) == {"name", "count"}
    assert "count" in bad.json()["message"] and "name" in bad.json()["message"]
    assert api.post("/executions/e2e.team/missing-flow").status_code == 404
    found = api.get(
        "/executions/search",
        params={"filters[labels][EQUALS][env]": "test", "filters[state][IN]": "SUCCESS,FAILED"},
    ).json()
    assert ex["id"] in [e["id"] for e in found["results"]]
    none = api.get(
        "/executions/search", params={"filters[state][EQUALS]": "KILLED", "filters[flowId][EQUALS]": "inputs"}
    ).json()
    assert none == {"results": [], "total": 0}


def test_follow_logs_and_execution_over_sse(server: Any, api: httpx.Client) -> None:
    deploy(api, flow_yaml("""
        tasks:
          - id: one
            type: io.kestra.plugin.core.log.Log
            message: first line
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.5S
          - id: two
            type: io.kestra.plugin.core.log.Log
            message: second line
        """, "chatty"))  # fmt: skip
    ex = api.post("/executions/e2e.team/chatty").json()
    logs = sse_events(api, f"/logs/{ex['id']}/follow")
    assert logs[0][0] == "start" and logs[-1][0] == "end"
    messages = [data["message"] for kind, data in logs if kind == "progress"]
    assert "first line" in messages and "second line" in messages
    events = sse_events(api, f"/executions/{ex['id']}/follow")
    assert events[-1][0] == "end" and events[-1][1]["state"]["current"] == "SUCCESS"
    text = api.get(f"/logs/{ex['id']}/download").text
    assert "first line" in text and "second line" in text
    page = api.get("/logs/search", params={"filters[executionId][EQUALS]": ex["id"], "size": 1}).json()
    assert page["total"] >= 2 and len(page["results"]) == 1


def test_kill_a_long_execution(api: httpx.Client) -> None:
    deploy(api, flow_yaml("""
        tasks:
          - id: long
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - sleep 60
        """, "long"))  # fmt: skip
    ex = api.post("/executions/e2e.team/long").json()
    deadline = time.monotonic() + 15
    while api.get(f"/executions/{ex['id']}").json()["state"]["current"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    started = time.monotonic()
    assert api.delete(f"/executions/{ex['id']}/kill").status_code == 202
    while (state := api.get(f"/executions/{ex['id']}").json()["state"]["current"]) not in (
        "KILLED",
        "FAILED",
        "SUCCESS",
    ):
        assert time.monotonic() - started < 15, state
        time.sleep(0.1)
    assert state == "KILLED"
    assert time.monotonic() - started < 10  # the sleep was stopped, not waited for
    assert api.delete(f"/executions/{ex['id']}/kill").status_code == 409
    restarted = api.post(f"/executions/{ex['id']}/restart")
    assert restarted.status_code == 200
    api.delete(f"/executions/{ex['id']}/kill")


def test_output_file_download_stays_inside_its_execution(api: httpx.Client) -> None:
    deploy(api, flow_yaml("""
        tasks:
          - id: make
            type: io.kestra.plugin.scripts.shell.Commands
            outputFiles: ["out.txt"]
            commands:
              - echo produced > out.txt
        """, "files"))  # fmt: skip
    ex = api.post("/executions/e2e.team/files", params={"wait": "true"}).json()
    assert ex["state"]["current"] == "SUCCESS", ex
    uri = ex["taskRunList"][0]["outputs"]["outputFiles"]["out.txt"]
    got = api.get(f"/executions/{ex['id']}/file", params={"path": uri})
    assert got.status_code == 200 and got.content.strip() == b"produced"
    assert api.get(f"/executions/{ex['id']}/file/metas", params={"path": uri}).json()["size"] == len(
        got.content
    )
    other = api.post("/executions/e2e.team/files", params={"wait": "true"}).json()
    assert api.get(f"/executions/{other['id']}/file", params={"path": uri}).status_code == 403
    sneaky = uri.rsplit("/", 1)[0] + "/../../../../../../../../etc/passwd"
    assert api.get(f"/executions/{ex['id']}/file", params={"path": sneaky}).status_code in (400, 403)
    assert api.get(f"/executions/{ex['id']}/file", params={"path": "/etc/passwd"}).status_code == 400


def test_namespace_files_round_trip(api: httpx.Client) -> None:
    ns = "/namespaces/e2e.files/files"
    assert (
        api.post(
            ns, params={"path": "/scripts/hello.sh"}, files={"fileContent": ("hello.sh", b"echo v1\n")}
        ).status_code
        == 200
    )
    assert (
        api.post(
            ns, params={"path": "/scripts/hello.sh"}, files={"fileContent": ("hello.sh", b"echo v2\n")}
        ).status_code
        == 200
    )
    assert api.post(ns + "/directory", params={"path": "/empty"}).status_code == 200
    root = {a["fileName"]: a["type"] for a in api.get(ns + "/directory").json()}
    assert root == {"scripts": "Directory", "empty": "Directory"}
    inside = api.get(ns + "/directory", params={"path": "/scripts"}).json()
    assert inside[0]["fileName"] == "hello.sh" and inside[0]["type"] == "File" and inside[0]["size"] == 8
    assert api.get(ns, params={"path": "/scripts/hello.sh"}).content == b"echo v2\n"
    assert api.get(ns, params={"path": "/scripts/hello.sh", "revision": 1}).content == b"echo v1\n"
    assert [
        r["revision"] for r in api.get(ns + "/revisions", params={"path": "/scripts/hello.sh"}).json()
    ] == [1, 2]
    assert api.get(ns + "/stats", params={"path": "/scripts/hello.sh"}).json()["size"] == 8
    assert api.get(ns + "/search", params={"q": "hello"}).json() == ["/scripts/hello.sh"]
    assert api.put(ns, params={"from": "/scripts", "to": "/bin"}).status_code == 200
    assert api.get(ns, params={"path": "/bin/hello.sh"}).content == b"echo v2\n"
    assert api.get(ns, params={"path": "/scripts/hello.sh"}).status_code == 404
    assert api.get(ns, params={"path": "/../etc/passwd"}).status_code == 400
    deploy(api, flow_yaml("""
        tasks:
          - id: run
            type: io.kestra.plugin.scripts.shell.Commands
            namespaceFiles:
              enabled: true
            commands:
              - sh bin/hello.sh
        """, "uses-files", "e2e.files"))  # fmt: skip
    ex = api.post("/executions/e2e.files/uses-files", params={"wait": "true"}).json()
    assert ex["state"]["current"] == "SUCCESS", ex
    logs = " ".join(x["message"] for x in api.get(f"/logs/{ex['id']}").json())
    assert "v2" in logs
    assert api.delete(ns, params={"path": "/bin"}).status_code == 200
    assert api.get(ns, params={"path": "/bin/hello.sh"}).status_code == 404


def test_kv_round_trip(api: httpx.Client) -> None:
    kv = "/namespaces/e2e.kv/kv"
    assert (
        api.put(kv + "/greeting", content="hello", headers={"content-type": "text/plain"}).status_code == 200
    )
    assert api.put(kv + "/answer", content="42", headers={"content-type": "text/plain"}).status_code == 200
    assert (
        api.put(kv + "/config", content='{"a": [1, 2]}', headers={"content-type": "text/plain"}).status_code
        == 200
    )
    assert api.get(kv + "/greeting").json()["value"] == "hello"
    assert api.get(kv + "/answer").json() == {**api.get(kv + "/answer").json(), "type": "NUMBER", "value": 42}
    assert api.get(kv + "/config").json()["value"] == {"a": [1, 2]}
    assert sorted(e["key"] for e in api.get(kv).json()) == ["answer", "config", "greeting"]
    assert api.delete(kv + "/answer").json() is True
    assert api.delete(kv + "/answer").json() is False
    assert api.get(kv + "/answer").status_code == 404
    assert api.get(kv + "/bad key").status_code == 400


def test_webhook_starts_an_execution(api: httpx.Client, server: Any) -> None:
    deploy(api, flow_yaml("""
        tasks:
          - id: echo
            type: io.kestra.plugin.core.debug.Return
            format: "{{ trigger.body.name }}"
        outputs:
          - id: name
            type: STRING
            value: "{{ outputs.echo.value }}"
        triggers:
          - id: hook
            type: io.kestra.plugin.core.trigger.Webhook
            key: s3cr3t-key
        """, "hooked"))  # fmt: skip
    r = api.post(
        "/executions/webhook/e2e.team/hooked/s3cr3t-key", json={"name": "octocat"}, params={"x": "1"}
    )
    assert r.status_code == 200, r.text
    hook = r.json()
    assert hook["trigger"]["id"] == "hook" and hook["trigger"]["variables"]["body"] == {"name": "octocat"}
    assert hook["trigger"]["variables"]["parameters"] == {"x": ["1"]}
    done = None
    for _ in range(100):
        done = api.get(f"/executions/{hook['id']}").json()
        if done["state"]["current"] == "SUCCESS":
            break
        time.sleep(0.05)
    assert done is not None and done["outputs"] == {"name": "octocat"}
    assert api.get("/executions/webhook/e2e.team/hooked/wrong-key").status_code == 404
    assert api.put("/executions/webhook/e2e.team/nope/s3cr3t-key").status_code == 404


def test_tenants_are_isolated(tmp_path: Path) -> None:
    """Hosted tenants: `main` and those configured (here through ROOST_SERVER_TENANTS); any other is 404."""
    src = flow_yaml(
        "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n",
        "tenant-flow",
        "iso.ns",
    )
    server = ServerProcess("local", tmp_path / "data", env={"ROOST_SERVER_TENANTS": "acme"}).wait_ready()
    try:
        _tenant_isolation(server, src)
    finally:
        server.stop()


def _tenant_isolation(server: ServerProcess, src: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.post("/api/v1/acme/flows", content=src, headers=YAML).status_code == 200
        assert c.get("/api/v1/main/flows/iso.ns/tenant-flow").status_code == 404
        ex = c.post("/api/v1/acme/executions/iso.ns/tenant-flow", params={"wait": "true"}).json()
        assert ex["tenantId"] == "acme" and ex["state"]["current"] == "SUCCESS"
        assert c.get(f"/api/v1/main/executions/{ex['id']}").status_code == 404
        assert c.get(f"/api/v1/acme/executions/{ex['id']}").status_code == 200
        assert c.get("/api/v1/Bad Tenant/flows/search").status_code == 400
        unknown = c.post("/api/v1/beta/flows", content=src, headers=YAML)
        assert unknown.status_code == 404 and unknown.json() == {"message": "no tenant 'beta' on this server"}


def test_system_routes(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/health").json()["status"] == "UP"
        assert c.get("/api/v1/configs").json()["edition"] == "OSS"
        metrics = c.get("/metrics").text
        assert "roost_executions" in metrics and "roost_queue_depth" in metrics
        spec = c.get("/api/v1/openapi.json").json()
        assert "/api/v1/{tenant}/executions/{namespace}/{id}" in spec["paths"]
        assert c.get("/api/v1/openapi.yaml").text.startswith(("openapi:", "components:", "info:", "paths:"))
        schema = c.get("/api/v1/plugins/schemas/flow").json()
        assert "io.kestra.plugin.core.log.Log" in schema["$defs"]
        plugins = c.get("/api/v1/plugins").json()
        assert any(t["cls"] == "io.kestra.plugin.core.log.Log" for p in plugins for t in p["tasks"])
        assert c.get("/api/v1/plugins/io.kestra.plugin.core.log.Log").status_code == 200
        assert c.get("/api/v1/nowhere").status_code == 404


def test_file_input_upload_and_download(api: httpx.Client) -> None:
    deploy(api, flow_yaml("""
        inputs:
          - id: data
            type: FILE
          - id: note
            type: STRING
        tasks:
          - id: echo
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.data }}"
        """, "upload"))  # fmt: skip
    files = {"data": ("report.csv", b"a,b\n1,2\n", "text/csv"), "note": ("note.txt", b"from a file part")}
    ex = api.post("/executions/e2e.team/upload", params={"wait": "true"}, files=files).json()
    assert ex["state"]["current"] == "SUCCESS", ex
    uri = ex["inputs"]["data"]
    assert uri.startswith("kestra:///e2e/team/upload/executions/") and uri.endswith("/report.csv")
    assert ex["inputs"]["note"] == "from a file part"
    assert api.get(f"/executions/{ex['id']}/file", params={"path": uri}).content == b"a,b\n1,2\n"
    local = api.post(
        "/executions/e2e.team/upload", files={"data": (None, "/etc/passwd"), "note": (None, "x")}
    )
    assert local.status_code == 422 and "data" in local.json()["inputs"]
