"""The web UI's Kill Switch page, the banners by scope, and roles in the UI (sessions of configured users)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.server import ServerState, create_app
from roost.server.config import hash_password, load_config
from roost.store.db import Store

PASSWORD = "pa55word!"
FLOW = "id: hello\nnamespace: {ns}\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=2)
    eng.start()
    for ns in ("team.a", "team.b"):
        eng.deploy(FLOW.format(ns=ns))
    yield eng
    eng.stop()


@pytest.fixture
def app(engine: Engine, tmp_path: Path) -> ServerState:
    hashed = hash_password(PASSWORD)
    (tmp_path / "roost.yaml").write_text(f"""
server:
  basicAuth:
    users:
      - {{username: oncall, passwordHash: "{hashed}", roles: [ADMIN]}}
      - {{username: dev, passwordHash: "{hashed}", roles: [{{role: DEVELOPER, tenant: main, namespace: team.a}}]}}
""")  # fmt: skip
    return ServerState(engine, load_config(tmp_path / "roost.yaml", env={}))


def session(state: ServerState, user: str) -> tuple[TestClient, str]:
    client = TestClient(create_app(state), raise_server_exceptions=False)
    token = csrf_of(client.get("/ui/login").text)
    r = client.post(
        "/ui/login",
        data={"username": user, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    return client, csrf_of(client.get("/ui/main/flows").text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def banners(html: str) -> list[str]:
    return re.findall(
        r'<div class="killswitch-banner[^"]*" role="alert" data-kill-switch="[^"]+">\s*<strong>([^<]+)</strong>',
        html,
    )


def test_an_administrator_creates_and_deletes_switches_from_the_page(
    app: ServerState, engine: Engine
) -> None:
    admin, token = session(app, "oncall")
    page = admin.get("/ui/main/killswitches")
    assert (
        page.status_code == 200
        and "New kill switch on tenant main" in page.text
        and "Kill Switch</a>" in page.text
    )
    r = admin.post("/ui/main/killswitches", data={"csrf_token": token, "name": "stop team.a", "evaluationType": "CANCEL",
                                                  "namespace": "team.a", "description": "bad release"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    bad = admin.post("/ui/main/killswitches", data={"csrf_token": token, "name": "x", "evaluationType": "KILL",
                                                    "endDate": "2001-01-01T00:00:00"})  # fmt: skip
    assert (
        bad.status_code == 400 and "endDate: must be after startDate" in bad.text and 'value="x"' in bad.text
    )  # the form kept
    listed = admin.get("/ui/main/killswitches").text
    switch_id = re.search(r'<tr data-kill-switch="([^"]+)">', listed).group(1)  # type: ignore[union-attr]
    assert "namespace team.a" in listed and "ACTIVE" in listed and "bad release" in listed
    assert banners(admin.get("/ui/main/namespaces/team.a.sub").text) == ["Kill switch CANCEL: stop team.a"]
    assert banners(admin.get("/ui/main/flows/team.a/hello").text) == ["Kill switch CANCEL: stop team.a"]
    assert banners(admin.get("/ui/main/flows/team.b/hello").text) == []  # another namespace: no banner
    assert banners(admin.get("/ui/main/flows").text) == []  # a namespace's switch is not the whole tenant's
    r = admin.post(f"/ui/main/killswitches/{switch_id}/enabled", data={"csrf_token": token, "enabled": "false"},
                   follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and "DISABLED" in admin.get("/ui/main/killswitches").text
    assert banners(admin.get("/ui/main/namespaces/team.a").text) == []
    admin.post(f"/ui/main/killswitches/{switch_id}/delete", data={"csrf_token": token})
    archived = admin.get("/ui/main/killswitches").text.split('id="ks-2"')[1]
    assert "stop team.a" in archived and "ARCHIVED" in archived
    entries, _ = engine.store.audit.search(tenant="main", resources=["KILL_SWITCH"], ascending=True)
    assert [(e["type"], e["userId"]) for e in entries] == [
        ("CREATE", "oncall"),
        ("UPDATE", "oncall"),
        ("DELETE", "oncall"),
    ]
    logins, _ = engine.store.audit.search(all_tenants=True, resources=["USER"])
    assert [(e["type"], e["detail"]["method"]) for e in logins] == [("LOGIN", "form")]


def test_a_tenant_wide_switch_is_announced_on_every_page(app: ServerState) -> None:
    admin, token = session(app, "oncall")
    admin.post(
        "/ui/main/killswitches", data={"csrf_token": token, "name": "freeze", "evaluationType": "KILL"}
    )
    anonymous = TestClient(create_app(app), raise_server_exceptions=False)
    assert "freeze" not in anonymous.get("/ui/login").text  # nothing is told before signing in
    dev, _ = session(app, "dev")  # every user of the tenant sees it, whatever their role
    for page in ("/ui/main/flows", "/ui/main/namespaces/team.a", "/ui/main/executions"):
        assert banners(dev.get(page).text) == ["Kill switch KILL: freeze"], page


def test_a_developer_sees_and_does_only_what_the_roles_allow(app: ServerState) -> None:
    dev, token = session(app, "dev")
    flows = dev.get("/ui/main/flows").text
    assert "team.a" in flows and "team.b" not in flows
    assert "Kill Switch</a>" not in flows  # no lever in the menu
    r = dev.get("/ui/main/killswitches")
    assert (
        r.status_code == 403
        and "Permission denied" in r.text
        and r.headers["content-type"].startswith("text/html")
    )
    assert dev.get("/ui/main/flows/team.b/hello").status_code == 403
    assert dev.get("/ui/main/flows/team.a/hello").status_code == 200
    r = dev.post("/ui/main/flows/team.b/hello/execute", data={"csrf_token": token})
    assert r.status_code == 403
    assert dev.get("/ui/main/namespaces/team.a", params={"tab": "kv"}).status_code == 200
    assert dev.get("/ui/main/namespaces/team.b", params={"tab": "kv"}).status_code == 403
