"""Triggers (date always set, restart, delete, bulk actions, backfills), KV inheritance, file export, icons, inputs."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.server import ServerState, create_app
from roost.store.db import Store

Y = {"content-type": "application/x-yaml"}
T = "/api/v1/main/triggers"
FLOW = """id: timed
namespace: company.team
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: secret-key
"""
REF = {"namespace": "company.team", "flowId": "timed", "triggerId": "hourly"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=2)
    eng.start()
    yield eng
    eng.stop()


@pytest.fixture
def client(engine: Engine) -> TestClient:
    c = TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)
    assert c.post("/api/v1/main/flows", content=FLOW, headers=Y).status_code == 200
    return c


def contexts(client: TestClient, **params: Any) -> dict[str, dict[str, Any]]:
    found = client.get(f"{T}/search", params={"size": 50, **params}).json()["results"]
    return {r["triggerContext"]["triggerId"]: r["triggerContext"] for r in found}


def state(engine: Engine, trigger_id: str = "hourly") -> dict[str, Any] | None:
    return engine.store.get_trigger("main", "company.team", "timed", trigger_id)


def test_search_always_gives_a_date(client: TestClient, engine: Engine) -> None:
    got = contexts(client)
    assert set(got) == {"hourly", "hook"} and all(
        c["date"].endswith("Z") for c in got.values()
    )  # no state stored yet
    engine.store.put_trigger(
        "main", "company.team", "timed", "hourly", {"date": "2024-05-01T10:00:00.000000Z"}, None
    )
    assert contexts(client)["hourly"]["date"] == "2024-05-01T10:00:00.000000Z"
    assert set(contexts(client, **{"filters[triggerId][EQUALS]": "hook"})) == {"hook"}


def test_restart_unlock_and_delete(client: TestClient, engine: Engine) -> None:
    engine.store.put_trigger("main", "company.team", "timed", "hourly",
                             {"executionId": "e1", "evaluateRunningDate": "2024-01-01T00:00:00Z", "fingerprint": "x",
                              "date": "2024-01-01T00:00:00Z"}, 1e9)  # fmt: skip
    restarted = client.post(f"{T}/company.team/timed/hourly/restart")
    assert restarted.status_code == 200 and "executionId" not in restarted.json()
    kept = state(engine)
    assert (
        kept is not None
        and kept["nextDate"] is None
        and "fingerprint" not in kept
        and "executionId" not in kept
    )
    assert client.post(f"{T}/company.team/timed/nope/restart").status_code == 404
    engine.store.put_trigger("main", "company.team", "timed", "hourly", {"executionId": "e2"}, None)
    assert client.post(
        f"{T}/unlock/by-query", params={"filters[namespace][EQUALS]": "company.team"}
    ).json() == {"count": 1}
    assert "executionId" not in (state(engine) or {})
    assert client.post(f"{T}/unlock/by-triggers", json=[REF, {**REF, "triggerId": "nope"}]).json() == {
        "count": 1
    }
    deleted = client.delete(f"{T}/company.team/timed/hourly")
    assert deleted.status_code == 200 and deleted.json()["triggerId"] == "hourly" and state(engine) is None
    assert client.delete(f"{T}/company.team/timed/nope").status_code == 404
    engine.store.put_trigger("main", "company.team", "timed", "hourly", {}, None)
    engine.store.put_trigger("main", "company.team", "timed", "hook", {}, None)
    assert client.request("DELETE", f"{T}/delete/by-triggers", json=[REF]).json() == {"count": 1}
    body = {"filters": [{"field": "TRIGGER_ID", "operation": "EQUALS", "value": "hook"}]}
    assert client.request("DELETE", f"{T}/delete/by-query", json=body).json() == {"count": 1}
    assert state(engine, "hook") is None
    assert (
        client.request("DELETE", f"{T}/delete/by-query", json={"filters": [{"field": "NOPE"}]}).status_code
        == 400
    )


def test_disable_by_query(client: TestClient) -> None:
    params = {"filters[flowId][EQUALS]": "timed", "disabled": "true"}
    assert client.post(f"{T}/set-disabled/by-query", params=params).json() == {"count": 2}
    assert all(c["disabled"] for c in contexts(client).values())
    assert client.post(f"{T}/set-disabled/by-query", params={**params, "disabled": "false"}).json() == {
        "count": 2
    }
    assert not any(c["disabled"] for c in contexts(client).values())


def test_backfill_lifecycle(client: TestClient, engine: Engine) -> None:
    body = {**REF, "backfill": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T05:00:00Z",
                                "inputs": {"a": 1}, "labels": [{"key": "source", "value": "backfill"}]}}  # fmt: skip
    created = client.put(T, json=body)
    assert created.status_code == 200, created.text
    backfill = created.json()["backfill"]
    assert backfill["start"].startswith("2024-01-01T00:00:00") and backfill["paused"] is False
    assert backfill["currentDate"] == backfill["start"] and backfill["labels"] == [
        {"key": "source", "value": "backfill"}
    ]
    assert client.put(f"{T}/backfill/pause", json=REF).json()["backfill"]["paused"] is True
    assert (state(engine) or {})["backfill"]["paused"] is True
    assert client.put(f"{T}/backfill/unpause", json=REF).json()["backfill"]["paused"] is False
    assert client.post(f"{T}/backfill/pause/by-triggers", json=[REF]).json() == {"count": 1}
    assert client.post(
        f"{T}/backfill/unpause/by-query", params={"filters[flowId][EQUALS]": "timed"}
    ).json() == {"count": 1}
    assert "backfill" not in client.post(f"{T}/backfill/delete", json=REF).json()
    missing = client.post(f"{T}/backfill/delete", json=REF)
    assert missing.status_code == 400 and missing.json()["message"] == "No backfill found"
    assert client.post(f"{T}/backfill/delete/by-triggers", json=[REF]).json() == {"count": 0}
    hook = client.put(T, json={**REF, "triggerId": "hook", "backfill": {"start": "2024-01-01T00:00:00Z"}})
    assert hook.status_code == 400 and "only Schedule triggers" in hook.json()["message"]
    reversed_dates = {**REF, "backfill": {"start": "2024-02-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}}
    assert client.put(T, json=reversed_dates).status_code == 400


def test_backfill_runs_on_the_scheduler(client: TestClient, engine: Engine) -> None:
    from roost.engine.scheduler import Scheduler

    scheduler = Scheduler(engine)
    scheduler.tick()  # the trigger gets its state
    body = {**REF, "backfill": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T02:30:00Z"}}
    assert client.put(T, json=body).status_code == 200
    scheduler.tick()
    dates = sorted(
        e["trigger"]["variables"]["date"]
        for e in client.get("/api/v1/main/executions/search", params={"size": 20}).json()["results"]
    )
    assert [d[:19] for d in dates] == ["2024-01-01T00:00:00", "2024-01-01T01:00:00", "2024-01-01T02:00:00"]


# -- KV, files, plugins ----------------------------------------------------------------------------------------------
def test_kv_inherited_from_parent_namespaces(client: TestClient) -> None:
    for ns, key, value in (("company", "shared", "top"), ("company", "region", "eu"), ("company.team", "region", "us"),
                           ("company.team.sub", "own", "mine")):  # fmt: skip
        assert client.put(f"/api/v1/main/namespaces/{ns}/kv/{key}", content=value).status_code == 200
    got = client.get("/api/v1/main/namespaces/company.team.sub/kv/inheritance").json()
    assert [(e["namespace"], e["key"]) for e in got] == [("company.team", "region"), ("company", "shared")]
    assert client.get("/api/v1/main/namespaces/company/kv/inheritance").json() == []


def test_namespace_files_export(client: TestClient) -> None:
    ns = "/api/v1/main/namespaces/company.team/files"
    for path, data in (("/a.txt", b"A"), ("/dir/b.sh", b"echo b")):
        assert client.post(ns, params={"path": path}, files={"fileContent": ("f", data)}).status_code == 200
    assert client.post(ns + "/directory", params={"path": "/empty"}).status_code == 200
    r = client.get(ns + "/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(archive.namelist()) == ["a.txt", "dir/b.sh", "empty/"]
    assert archive.read("dir/b.sh") == b"echo b"


def test_flows_by_query_and_export(client: TestClient) -> None:
    other = FLOW.replace("id: timed", "id: other").replace(
        "namespace: company.team", "namespace: company.ops"
    )
    assert client.post("/api/v1/main/flows", content=other, headers=Y).status_code == 200
    only_ops = {"filters[namespace][EQUALS]": "company.ops"}
    assert client.post("/api/v1/main/flows/disable/by-query", params=only_ops).json() == {"count": 1}
    assert client.get("/api/v1/main/flows/company.ops/other").json()["disabled"] is True
    assert client.post("/api/v1/main/flows/enable/by-query", params=only_ops).json() == {"count": 1}
    archive = zipfile.ZipFile(
        io.BytesIO(client.get("/api/v1/main/flows/export/by-query", params={"namespace": "company"}).content)
    )
    assert sorted(archive.namelist()) == ["company.ops.other.yml", "company.team.timed.yml"]
    picked = client.post(
        "/api/v1/main/flows/export/by-ids", json=[{"namespace": "company.team", "id": "timed"}]
    )
    assert zipfile.ZipFile(io.BytesIO(picked.content)).read("company.team.timed.yml").decode() == FLOW
    assert client.request("DELETE", "/api/v1/main/flows/delete/by-query", params=only_ops).json() == {
        "count": 1
    }
    assert client.get("/api/v1/main/flows/company.ops/other").status_code == 404


def test_plugin_icons(client: TestClient) -> None:
    icons = client.get("/api/v1/plugins/icons").json()
    log, parallel, schedule = (icons[t] for t in ("io.kestra.plugin.core.log.Log", "io.kestra.plugin.core.flow.Parallel",
                                                  "io.kestra.plugin.core.trigger.Schedule"))  # fmt: skip
    assert log["name"] == "Log" and log["flowable"] is False and parallel["flowable"] is True
    assert (
        base64.b64decode(log["icon"]).startswith(b"<svg")
        and len({log["icon"], parallel["icon"], schedule["icon"]}) == 3
    )
    assert "io.kestra.core.tasks.log.Log" in icons  # aliases too: flows may use them
    groups = client.get("/api/v1/plugins/icons/groups").json()
    assert base64.b64decode(groups["roost.builtin.plugin"]["icon"]).startswith(b"<svg")


def test_a_plugin_ships_its_own_icon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "roost_iconic"
    (package / "icons").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text("""
from roost import Output, Task, hookimpl


class Wave(Task, type="io.roost.iconic.Wave"):
    \"\"\"Wave.\"\"\"

    def run(self, ctx):
        return Output()


class Nod(Task, type="io.roost.iconic.Nod"):
    \"\"\"Nod.\"\"\"

    def run(self, ctx):
        return Output()


@hookimpl
def register_task_types(register):
    register(Wave, Nod)
""")
    (package / "icons" / "io.roost.iconic.Wave.svg").write_text("<svg>wave</svg>")
    (package / "icons" / "plugin-icon.svg").write_text("<svg>iconic</svg>")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    from roost.plugins import Plugins

    plugins = Plugins(load_entry_points=False)
    plugins.register_module(importlib.import_module("roost_iconic.plugin"), name="iconic")
    engine = Engine(Store.sqlite(tmp_path / "db"), tmp_path / "db", plugins=plugins)
    c = TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)
    icons = c.get("/api/v1/plugins/icons").json()
    assert base64.b64decode(icons["io.roost.iconic.Wave"]["icon"]) == b"<svg>wave</svg>"
    assert base64.b64decode(icons["io.roost.iconic.Nod"]["icon"]) == b"<svg>iconic</svg>"  # the plugin's icon
    assert (
        base64.b64decode(c.get("/api/v1/plugins/icons/groups").json()["roost_iconic.plugin"]["icon"])
        == b"<svg>iconic</svg>"
    )


def test_input_types(client: TestClient) -> None:
    types = client.get("/api/v1/plugins/inputs").json()
    assert {"type": "STRING", "cls": "io.kestra.core.models.flows.input.StringInput"} in types and len(
        types
    ) == 19
    select = client.get("/api/v1/plugins/inputs/SELECT").json()
    props = select["schema"]["properties"]["properties"]
    assert {"id", "values", "allowCustomValue", "expression"} <= set(props) and "minLength" not in props
    assert props["type"]["const"] == "SELECT" and "id" in select["schema"]["properties"]["required"]
    assert (
        "validator"
        in client.get("/api/v1/plugins/inputs/STRING").json()["schema"]["properties"]["properties"]
    )
    assert client.get("/api/v1/plugins/inputs/NOPE").status_code == 400
