"""The audit log: what is recorded (who, when, where, before/after), what is masked, that nothing rewrites it,
logins and their rate limit, and who may read it."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.server import ServerState, create_app
from roost.server.audit import AuditRecorder, client_ip
from roost.server.config import hash_password, hash_token, load_config
from roost.server.permissions import app_routes
from roost.store.audit import SqlAuditLog
from roost.store.db import Store

FLOW = "id: hello\nnamespace: team.a\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: {msg}\n"
YAML = {"content-type": "application/x-yaml"}
PASSWORD_HASH = hash_password("right-password")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=2)
    eng.start()
    yield eng
    eng.stop()


def app_for(
    engine: Engine, tmp_path: Path, extra: str = "", client: tuple[str, int] = ("127.0.0.1", 5000)
) -> TestClient:
    config = tmp_path / "roost.yaml"
    config.write_text(f"""
server:
  basicAuth:
    users:
      - {{username: alice, passwordHash: "{PASSWORD_HASH}", roles: [ADMIN]}}
  apiTokens:
    - {{name: admin, tokenHash: "{hash_token("admin")}", roles: [{{role: ADMIN, tenant: main}}]}}
    - {{name: auditor, tokenHash: "{hash_token("auditor")}", roles: [{{role: AUDITOR, tenant: main, namespace: team.a}}]}}
  roles:
    AUDITOR: {{permissions: {{AUDITLOG: [READ]}}}}
{extra}
""")  # fmt: skip
    state = ServerState(engine, load_config(config, env={}))
    return TestClient(create_app(state), raise_server_exceptions=False, client=client)


def bearer(who: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {who}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def entries(api: TestClient, who: str = "admin", **params: Any) -> list[dict[str, Any]]:
    r = api.get(
        "/api/v1/main/auditlogs/search",
        params={"size": 100, "sort": "date:asc", **params},
        headers=bearer(who),
    )
    assert r.status_code == 200, r.text
    return [item["auditLog"] for item in r.json()["results"]]


def test_flow_changes_are_recorded_with_their_source(engine: Engine, tmp_path: Path) -> None:
    api = app_for(engine, tmp_path)
    assert (
        api.post(
            "/api/v1/main/flows", content=FLOW.format(msg="one"), headers={**YAML, **bearer()}
        ).status_code
        == 200
    )
    assert (
        api.put(
            "/api/v1/main/flows/team.a/hello", content=FLOW.format(msg="two"), headers={**YAML, **bearer()}
        ).status_code
        == 200
    )
    assert api.delete("/api/v1/main/flows/team.a/hello", headers=bearer()).status_code == 204
    found = entries(api, resources="FLOW")
    assert [(e["type"], e["detail"]["namespace"], e["detail"]["flowId"]) for e in found] == [
        ("CREATE", "team.a", "hello"), ("UPDATE", "team.a", "hello"), ("DELETE", "team.a", "hello")]  # fmt: skip
    assert all(
        e["userId"] == "token:admin" and e["ipAddress"] == "127.0.0.1" and e["tenantId"] == "main"
        for e in found
    )
    assert found[1]["detail"]["permission"] == "FLOW" and found[1]["detail"]["revision"] == 2
    diff = api.get(f"/api/v1/main/auditlogs/{found[1]['id']}/diff", headers=bearer()).json()
    assert "message: one" in diff["before"] and "message: two" in diff["after"]
    back = api.get(f"/api/v1/main/auditlogs/{found[2]['id']}/diff", params={"previousId": found[0]["id"]},
                   headers=bearer()).json()  # fmt: skip
    assert "message: one" in back["before"] and back["after"] is None
    history = api.get("/api/v1/main/auditlogs/history/hello", headers=bearer()).json()
    assert len(history) == 3 and history[0]["username"] == "token:admin"


def test_kv_values_are_recorded_and_secret_looking_ones_masked(engine: Engine, tmp_path: Path) -> None:
    api = app_for(engine, tmp_path)
    for key, value in (("threshold", "5"), ("threshold", "50"), ("api_token", '"s3cr3t-value"')):
        assert (
            api.put(f"/api/v1/main/namespaces/team.a/kv/{key}", content=value, headers=bearer()).status_code
            == 200
        )
    assert api.delete("/api/v1/main/namespaces/team.a/kv/threshold", headers=bearer()).json() is True
    found = entries(api, resources="KV_STORE")
    assert [(e["type"], e["detail"]["key"]) for e in found] == [
        ("CREATE", "threshold"), ("UPDATE", "threshold"), ("CREATE", "api_token"), ("DELETE", "threshold")]  # fmt: skip
    diff = api.get(f"/api/v1/main/auditlogs/{found[1]['id']}/diff", headers=bearer()).json()
    assert '"value": 5' in diff["before"] and '"value": 50' in diff["after"]
    secret = api.get(f"/api/v1/main/auditlogs/{found[2]['id']}/diff", headers=bearer()).json()
    assert "s3cr3t" not in secret["after"] and "******" in secret["after"]
    raw = engine.store.engine.connect().execute(sa.text("select after from audit_logs")).all()
    assert not any("s3cr3t" in (r[0] or "") for r in raw)  # not in the database either


def test_namespace_files_and_execution_actions_are_recorded(engine: Engine, tmp_path: Path) -> None:
    api = app_for(engine, tmp_path)
    files = {"fileContent": ("run.sh", b"echo hi\n")}
    assert api.post("/api/v1/main/namespaces/team.a/files", params={"path": "/scripts/run.sh"}, files=files,
                    headers=bearer()).status_code == 200  # fmt: skip
    assert (
        api.delete(
            "/api/v1/main/namespaces/team.a/files", params={"path": "/scripts/run.sh"}, headers=bearer()
        ).status_code
        == 200
    )
    nsfile = entries(api, resources="NAMESPACE_FILE")
    assert [(e["type"], e["detail"]["path"]) for e in nsfile] == [
        ("CREATE", "/scripts/run.sh"),
        ("DELETE", "/scripts/run.sh"),
    ]
    diff = api.get(f"/api/v1/main/auditlogs/{nsfile[0]['id']}/diff", headers=bearer()).json()
    assert "echo hi" in diff["after"] and diff["before"] is None
    sleepy = "id: s\nnamespace: team.a\ntasks:\n  - id: z\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT30S\n"
    api.post("/api/v1/main/flows", content=sleepy, headers={**YAML, **bearer()})
    ex = api.post("/api/v1/main/executions/team.a/s", headers=bearer()).json()
    assert api.delete(f"/api/v1/main/executions/{ex['id']}/kill", headers=bearer()).status_code == 202
    engine.wait(ex["id"], 10)
    assert api.post(f"/api/v1/main/executions/{ex['id']}/restart", headers=bearer()).status_code == 200
    actions = [
        (e["type"], e["detail"]["action"]) for e in entries(api, resources="EXECUTION", executionId=ex["id"])
    ]
    assert actions == [("UPDATE", "KILL"), ("UPDATE", "RESTART")]
    assert {"key": "system.username", "value": "token:admin"} in ex[
        "labels"
    ]  # who started it: on the execution
    engine.kill(ex["id"])


def test_the_log_is_append_only(engine: Engine, tmp_path: Path) -> None:
    api = app_for(engine, tmp_path)
    api.put("/api/v1/main/namespaces/team.a/kv/k", content="1", headers=bearer())
    assert not {"update", "delete", "remove", "truncate"} & {
        n for n in dir(SqlAuditLog) if not n.startswith("_")
    }
    for statement in ("UPDATE audit_logs SET user_id = 'nobody'", "DELETE FROM audit_logs"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.store.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert entries(api)[-1]["userId"] == "token:admin"
    audit_routes = [(m, p) for m, p in app_routes(api.app) if "/auditlogs" in p]
    assert audit_routes and all(m in ("GET", "POST") for m, _p in audit_routes)
    for method in ("PUT", "DELETE", "PATCH"):
        r = api.request(method, f"/api/v1/main/auditlogs/{entries(api)[-1]['id']}/diff", headers=bearer())
        assert r.status_code == 405


def test_logins_are_recorded_and_failures_rate_limited(engine: Engine, tmp_path: Path) -> None:
    api = app_for(engine, tmp_path)
    for _ in range(3):
        assert (
            api.get("/api/v1/main/flows/search", headers=basic("alice", "right-password")).status_code == 200
        )
    for _ in range(40):  # a brute force
        assert api.get("/api/v1/main/flows/search", headers=basic("alice", "guess")).status_code == 401
    assert api.get("/api/v1/main/flows/search", headers=basic("mallory", "x")).status_code == 401
    everything, _ = engine.store.audit.search(all_tenants=True, resources=["USER"], size=100, ascending=True)
    kinds = [(e["type"], e["detail"]["id"]) for e in everything]
    assert kinds == [("LOGIN", "alice"), ("LOGIN_FAILURE", "alice"), ("LOGIN_FAILURE", "mallory")]
    assert all("guess" not in str(e) and "right-password" not in str(e) for e in everything)
    assert everything[1]["detail"]["attempts"] == 1 and everything[1]["tenantId"] is None
    limiter = (
        api.app.state.roost.audit._failures
    )  # a minute later, the next entry counts the held-back attempts
    limiter._last = {k: (v[0] - 61, v[1]) for k, v in limiter._last.items()}
    assert api.get("/api/v1/main/flows/search", headers=basic("alice", "again")).status_code == 401
    latest, _ = engine.store.audit.search(all_tenants=True, types=["LOGIN_FAILURE"], user_id="alice", size=1)
    assert latest[0]["detail"]["attempts"] == 40


def test_global_failure_limit_caps_a_distributed_brute_force() -> None:
    written: list[Any] = []

    class Store:
        class audit:  # noqa: N801
            @staticmethod
            def append(**kw: Any) -> None:
                written.append(kw)

    recorder = AuditRecorder(Store())
    for i in range(500):
        recorder.login(f"user{i}", f"10.0.{i // 250}.{i % 250}", success=False)
    assert len(written) == 60 and recorder._failures.dropped == 440


def test_client_address_comes_from_forwarded_for_only_behind_a_trusted_proxy(
    engine: Engine, tmp_path: Path
) -> None:
    import ipaddress

    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    scope = {"client": ("10.1.2.3", 1), "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.9.9.9")]}
    assert client_ip(scope, trusted) == "203.0.113.7"  # rightmost address that is not one of our proxies
    assert (
        client_ip({**scope, "client": ("198.51.100.1", 1)}, trusted) == "198.51.100.1"
    )  # not a proxy: header ignored
    assert client_ip(scope, ()) == "10.1.2.3"
    assert client_ip({**scope, "headers": [(b"x-forwarded-for", b"not-an-ip")]}, trusted) == "10.1.2.3"
    behind = app_for(engine, tmp_path, "  trustedProxies: [10.0.0.0/8]", client=("10.0.0.2", 4000))
    behind.put(
        "/api/v1/main/namespaces/team.a/kv/k",
        content="1",
        headers={**bearer(), "X-Forwarded-For": "203.0.113.9"},
    )
    direct = app_for(engine, tmp_path, client=("198.51.100.4", 4000))
    direct.put(
        "/api/v1/main/namespaces/team.a/kv/k", content="2", headers={**bearer(), "X-Forwarded-For": "1.1.1.1"}
    )
    assert [e["ipAddress"] for e in entries(direct, resources="KV_STORE")] == ["203.0.113.9", "198.51.100.4"]


def test_readers_see_their_namespaces_only_and_instance_routes_need_every_tenant(
    engine: Engine, tmp_path: Path
) -> None:
    api = app_for(engine, tmp_path)
    for ns in ("team.a", "team.a.sub", "team.b"):
        api.put(f"/api/v1/main/namespaces/{ns}/kv/k", content="1", headers=bearer())
    assert {e["detail"]["namespace"] for e in entries(api, who="auditor")} == {"team.a", "team.a.sub"}
    other = next(e for e in entries(api) if e["detail"].get("namespace") == "team.b")
    assert api.get(f"/api/v1/main/auditlogs/{other['id']}/diff", headers=bearer("auditor")).status_code == 404
    assert (
        api.get("/api/v1/auditlogs/search", headers=bearer("admin")).status_code == 403
    )  # admin of main only
    r = api.get("/api/v1/auditlogs/search", headers=basic("alice", "right-password"))  # admin of every tenant
    assert r.status_code == 200 and r.json()["total"] >= 3
    csv = api.get("/api/v1/main/auditlogs/export", params={"resources": "KV_STORE"}, headers=bearer())
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("id,date,tenantId,type") and len(lines) == 4
    assert (
        api.get(
            "/api/v1/main/auditlogs/search", headers=bearer("auditor"), params={"type": "BOGUS"}
        ).status_code
        == 400
    )


def test_changes_outside_a_request_are_not_a_users(engine: Engine) -> None:
    recorder = AuditRecorder(engine.store)
    assert recorder.record("UPDATE", "FLOW", tenant="main", detail={"id": "x"}) is None
    time.sleep(0)
    assert engine.store.audit.search(all_tenants=True)[1] == 0


def test_credentials_and_roles_changes_in_the_configuration_are_recorded_at_start(
    engine: Engine, tmp_path: Path
) -> None:
    from roost.server.audit import record_configuration

    def config(role: str, client: str) -> Any:
        path = tmp_path / "c.yaml"
        path.write_text(f"""
server:
  basicAuth:
    users:
      - {{username: alice, passwordHash: "{PASSWORD_HASH}", roles: [{role}]}}
credentials:
  api:
    type: oauth2_client_credentials
    tokenEndpoint: https://auth.example.com/token
    clientId: {client}
    clientSecret: "{{{{ secret('API_SECRET') }}}}"
""")  # fmt: skip
        return load_config(path, env={})

    assert record_configuration(engine.store, config("ADMIN", "roost")) == ["credentials", "roles"]
    assert record_configuration(engine.store, config("ADMIN", "roost")) == []  # unchanged: nothing recorded
    assert record_configuration(engine.store, config("VIEWER", "roost")) == ["roles"]
    assert record_configuration(engine.store, config("VIEWER", "other")) == ["credentials"]
    found, total = engine.store.audit.search(
        all_tenants=True, resources=["SETTING", "CREDENTIAL"], ascending=True
    )
    assert total == 4 and {e["userId"] for e in found} == {"system"}
    roles = engine.store.audit.get(found[2]["id"])
    assert (
        roles["before"]["users"]["alice"][0]["role"] == "ADMIN"
        and roles["after"]["users"]["alice"][0]["role"] == "VIEWER"
    )
    assert "scrypt" not in str(roles)  # no password hash
    creds = engine.store.audit.get(found[3]["id"])
    assert creds["before"]["api"]["clientId"] == "roost" and creds["after"]["api"]["clientId"] == "other"
    assert creds["after"]["api"]["clientSecret"] == "******"
