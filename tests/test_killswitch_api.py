"""The kill-switch API in process: validation, lifecycle (active, scheduled, archived), effect, banners, roles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.server import ServerState, create_app
from roost.server.config import hash_token, load_config
from roost.store.db import Store

LONG = """id: long
namespace: {ns}
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 30"]
"""
TOKENS = {"admin": "ADMIN", "dev": "DEVELOPER", "teamadmin": "ADMIN"}


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now(**delta: float) -> str:
    return iso(datetime.now(UTC) + timedelta(**delta))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=4)
    eng.start()
    yield eng
    eng.stop()


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> TestClient:
    config = tmp_path / "roost.yaml"
    config.write_text(f"""
server:
  apiTokens:
    - {{name: admin, tokenHash: "{hash_token("admin")}", roles: [ADMIN]}}
    - {{name: dev, tokenHash: "{hash_token("dev")}", roles: [{{role: DEVELOPER, tenant: main}}]}}
    - {{name: teamadmin, tokenHash: "{hash_token("teamadmin")}", roles: [{{role: ADMIN, tenant: main, namespace: team.a}}]}}
""")  # fmt: skip
    app = create_app(ServerState(engine, load_config(config, env={})))
    return TestClient(app, raise_server_exceptions=False)


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {who}"}


def create(api: TestClient, who: str = "admin", **body: Any) -> Any:
    payload = {"name": "stop team.a", "tenantId": "main", "namespace": "team.a", "evaluationType": "KILL",
               "startDate": now(), "description": "bad deploy, rollback in progress"}  # fmt: skip
    payload.update(body)
    return api.post(
        "/api/v1/kill-switches", json={k: v for k, v in payload.items() if v is not ...}, headers=auth(who)
    )


@pytest.mark.parametrize("body, message", [
    ({"name": ""}, "name: required"),
    ({"evaluationType": "PASS"}, "PASS is what an execution"),
    ({"evaluationType": "STOP"}, "evaluationType: required, one of KILL"),
    ({"tenantId": ...}, "tenantId: required"),
    ({"tenantId": "Not A Tenant"}, "is not a tenant id"),
    ({"startDate": ...}, "startDate: required"),
    ({"startDate": "yesterday"}, "startDate: 'yesterday' is not an ISO-8601"),
    ({"endDate": now(minutes=-5), "startDate": now(minutes=-10)}, "endDate: already passed"),
    ({"endDate": now(minutes=1), "startDate": now(minutes=2)}, "endDate: must be after startDate"),
    ({"namespace": "Bad Namespace"}, "namespace: 'Bad Namespace' is not a namespace"),
    ({"namespace": ..., "flowId": "f"}, "flowId: a flow scope needs the flow's namespace"),
    ({"executionIds": ["abc"]}, "executionIds: an execution scope names executions only"),
    ({"executionIds": "abc", "namespace": ...}, "executionIds: expected a list"),
])  # fmt: skip
def test_invalid_switches_are_400_naming_the_field(
    api: TestClient, body: dict[str, Any], message: str
) -> None:
    r = create(api, **body)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert api.get("/api/v1/kill-switches/search", headers=auth("admin")).json() == []  # nothing half-written


def test_unknown_tenant_is_refused_when_the_server_lists_its_tenants(engine: Engine, tmp_path: Path) -> None:
    config = load_config(None, env={})
    config.tenants = ("main", "acme")
    client = TestClient(create_app(ServerState(engine, config)), raise_server_exceptions=False)
    r = client.post(
        "/api/v1/kill-switches",
        json={"name": "x", "tenantId": "other", "evaluationType": "KILL", "startDate": now()},
    )
    assert r.status_code == 400 and "unknown tenant 'other'" in r.json()["message"]


def test_lifecycle_create_update_soft_delete_and_audit(api: TestClient, engine: Engine) -> None:
    r = create(api, startDate=now(hours=1))
    assert r.status_code == 200, r.text
    switch = r.json()
    assert (
        switch["status"] == "SCHEDULED"
        and switch["createdBy"] == "token:admin"
        and switch["evaluationType"] == "KILL"
    )
    sid = switch["id"]
    r = api.put(
        f"/api/v1/kill-switches/{sid}",
        headers=auth("admin"),
        json={**switch, "startDate": now(), "evaluationType": "CANCEL"},
    )
    assert r.status_code == 200 and r.json()["status"] == "ACTIVE" and r.json()["evaluationType"] == "CANCEL"
    assert api.delete(f"/api/v1/kill-switches/{sid}", headers=auth("admin")).status_code == 200
    listed = api.get("/api/v1/kill-switches/search", headers=auth("admin")).json()
    assert [(s["id"], s["status"], s["deleted"]) for s in listed] == [
        (sid, "ARCHIVED", True)
    ]  # soft: still listed
    assert (
        api.get("/api/v1/kill-switches/search", params={"status": "ACTIVE"}, headers=auth("admin")).json()
        == []
    )
    r = api.put(f"/api/v1/kill-switches/{sid}", headers=auth("admin"), json={**switch, "startDate": now()})
    assert r.status_code == 409 and "archived" in r.json()["message"]
    assert api.delete(f"/api/v1/kill-switches/{sid}", headers=auth("admin")).status_code == 200  # idempotent
    assert api.get("/api/v1/kill-switches/nope", headers=auth("admin")).status_code == 404
    logs = api.get("/api/v1/main/auditlogs/search", params={"resources": "KILL_SWITCH", "sort": "date:asc"},
                   headers=auth("admin")).json()  # fmt: skip
    assert [e["auditLog"]["type"] for e in logs["results"]] == ["CREATE", "UPDATE", "DELETE"]
    assert all(e["auditLog"]["userId"] == "token:admin" for e in logs["results"])
    diff = api.get(
        f"/api/v1/main/auditlogs/{logs['results'][1]['auditLog']['id']}/diff", headers=auth("admin")
    ).json()
    assert '"evaluationType": "KILL"' in diff["before"] and '"evaluationType": "CANCEL"' in diff["after"]


def test_a_switch_created_through_the_api_kills_at_once_in_process(api: TestClient, engine: Engine) -> None:
    a = engine.deploy(LONG.format(ns="team.a"))
    b = engine.deploy(LONG.format(ns="team.b"))
    ex_a, ex_b = engine.create_execution(a), engine.create_execution(b)
    deadline = time.monotonic() + 10
    while not engine.worker.running and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    created = create(api)
    assert created.status_code == 200
    assert engine.wait(ex_a.id, 10).state.current == "KILLED"
    assert time.monotonic() - started < 3
    assert engine.get_execution(ex_b.id).state.current == "RUNNING"
    r = api.post("/api/v1/main/executions/team.a/long", headers=auth("admin"))
    assert (
        r.status_code == 200 and r.json()["state"]["current"] == "KILLED"
    )  # new executions are killed at creation
    assert {"key": "system.killSwitch", "value": created.json()["id"]} in r.json()["labels"]
    engine.kill(ex_b.id)


def test_banners_by_scope(api: TestClient) -> None:
    tenant_wide = create(api, name="everything", namespace=..., evaluationType="CANCEL").json()
    team = create(api, name="team a").json()
    create(api, name="later", startDate=now(hours=2))  # not active yet: no banner

    def names(**params: str) -> list[str]:
        r = api.get("/api/v1/main/kill-switches/banners", params=params, headers=auth("dev"))
        assert r.status_code == 200, r.text
        return [b["name"] for b in r.json()]

    assert names() == ["everything"]
    assert names(namespace="team.a.sub") == ["team a", "everything"]  # strongest first
    assert names(namespace="team.b") == ["everything"]
    assert {b["level"] for b in api.get("/api/v1/main/kill-switches/banners", params={"namespace": "team.a"},
                                        headers=auth("dev")).json()} == {"TENANT", "NAMESPACE"}  # fmt: skip
    assert tenant_wide["status"] == team["status"] == "ACTIVE"


def test_roles_on_kill_switches(api: TestClient) -> None:
    assert create(api, who="dev").status_code == 403  # developers do not hold the lever
    assert api.get("/api/v1/kill-switches/search", headers=auth("dev")).status_code == 403
    r = create(api, who="teamadmin")  # an admin of team.a: on team.a (and children) only
    assert r.status_code == 200, r.text
    assert create(api, who="teamadmin", namespace="team.a.child").status_code == 200
    r = create(api, who="teamadmin", namespace="team.b")
    assert r.status_code == 403 and "team.b" in r.json()["message"]
    assert create(api, who="teamadmin", namespace=...).status_code == 403  # not the whole tenant
    other = create(api, namespace="team.b").json()
    seen = {s["namespace"] for s in api.get("/api/v1/kill-switches/search", headers=auth("teamadmin")).json()}
    assert seen == {"team.a", "team.a.child"}
    assert api.get(f"/api/v1/kill-switches/{other['id']}", headers=auth("teamadmin")).status_code == 404
    assert api.delete(f"/api/v1/kill-switches/{other['id']}", headers=auth("teamadmin")).status_code == 404
