"""Every route of the server's own OpenAPI, called by every role, against a matrix declared here.

The matrix says, per operation, which principals get past authorization (any answer but 403). It is
written from the roles' meaning, not derived from the permission table, so a wrong rule in the table
shows up here. An operation missing from the matrix fails the test: declare who may call it.

Principals (all bound on tenant ``main`` unless said): S an ADMIN of every tenant, A an ADMIN of main,
D a DEVELOPER, L a LAUNCHER, V a VIEWER, N a DEVELOPER of namespace ``company.team`` only (the requests
name resources of ``other.ns``), X a token without any role (once roles are configured, it may only
read what any authenticated principal may).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.server import ServerState, create_app
from roost.server.config import hash_token, load_config
from roost.server.permissions import ANTICIPATED, ROUTES, app_routes, key
from roost.store.db import Store

ROLES = {"S": "[ADMIN]", "A": "[{role: ADMIN, tenant: main}]", "D": "[{role: DEVELOPER, tenant: main}]",
         "L": "[{role: LAUNCHER, tenant: main}]", "V": "[{role: VIEWER, tenant: main}]",
         "N": "[{role: DEVELOPER, tenant: main, namespace: company.team}]", "X": None}  # fmt: skip

EVERYONE = "SADLVNX"
MEMBERS = "SADLVN"  # any role on tenant main
READ_TENANT = "SADLVN"  # READ somewhere in the tenant: every role has it (N in its namespace)
READ_NS = "SADLV"  # READ on other.ns
WRITE_TENANT = "SADN"  # a developer's write somewhere in the tenant (N narrowed by the route)
WRITE_NS = "SAD"

MATRIX: dict[str, str] = {
    # flows
    "createFlow": WRITE_TENANT, "searchFlows": READ_TENANT, "listDistinctNamespaces": READ_TENANT,
    "validateFlows": READ_TENANT, "bulkUpdateFlows": WRITE_TENANT, "importFlows": WRITE_TENANT,
    "enableFlowsByIds": WRITE_TENANT, "disableFlowsByIds": WRITE_TENANT, "deleteFlowsByIds": WRITE_TENANT,
    "listFlowsByNamespace": READ_NS, "updateFlowsInNamespace": WRITE_NS, "getFlow": READ_NS, "updateFlow": WRITE_NS,
    "deleteFlow": WRITE_NS, "listFlowRevisions": READ_NS,
    # executions
    "searchExecutions": READ_TENANT, "searchExecutionsByFlowId": READ_TENANT, "killExecutionsByIds": WRITE_TENANT,
    "getExecution": READ_NS, "deleteExecution": WRITE_NS, "killExecution": WRITE_NS, "pauseExecution": WRITE_NS,
    "resumeExecution": WRITE_NS, "restartExecution": WRITE_NS, "updateExecutionStatus": WRITE_NS,
    "setLabelsOnTerminatedExecution": WRITE_NS, "followExecution": READ_NS, "downloadFileFromExecution": READ_NS,
    "fileMetadatasFromExecution": READ_NS, "flowFromExecutionById": READ_NS,
    "triggerExecutionByGetWebhook": EVERYONE, "triggerExecutionByPostWebhook": EVERYONE,
    "triggerExecutionByPutWebhook": EVERYONE,  # open URL: the webhook key is the credential
    "createExecution": "SADL",
    # logs
    "searchLogs": READ_TENANT, "listLogsFromExecution": READ_NS, "deleteLogsFromExecution": WRITE_NS,
    "downloadLogsFromExecution": READ_NS, "followLogsFromExecution": READ_NS,
    # namespaces, files, KV (a launcher reads no KV)
    "searchNamespaces": READ_TENANT, "getNamespace": READ_NS, "listNamespaceDirectoryFiles": READ_NS,
    "createNamespaceDirectory": WRITE_NS, "getFileMetadatas": READ_NS, "getFileRevisions": READ_NS,
    "searchNamespaceFiles": READ_NS, "getFileContent": READ_NS, "createNamespaceFile": WRITE_NS,
    "moveFileDirectory": WRITE_NS, "deleteFileDirectory": WRITE_NS, "listKeys": "SADV", "deleteKeyValues": WRITE_NS,
    "getKeyValue": "SADV", "setKeyValue": WRITE_NS, "deleteKeyValue": WRITE_NS, "listAllKeys": "SADVN",
    # triggers (FLOW)
    "searchTriggers": READ_TENANT, "searchTriggersForFlow": READ_NS, "unlockTrigger": WRITE_NS,
    "updateTrigger": WRITE_TENANT, "disabledTriggersByIds": WRITE_TENANT,
    # assets
    "searchAssets": READ_TENANT, "createAsset": WRITE_TENANT, "searchAssetLineageEvents": READ_TENANT,
    "searchAssetUsages": READ_TENANT, "getAsset": READ_TENANT, "deleteAsset": WRITE_TENANT,
    "getAssetDependencies": READ_TENANT, "getAssetEvents": READ_TENANT,
    # the instance
    "listPlugins": EVERYONE, "schemasFromType": EVERYONE, "getPluginDocumentation": EVERYONE, "health": EVERYONE,
    "getConfiguration": EVERYONE, "getVersion": EVERYONE, "metrics": EVERYONE, "openapiYaml": EVERYONE,
    "currentUser": EVERYONE,
    # kill switches: admins only; banners for every member of the tenant
    "createKillSwitch": "SA", "searchKillSwitches": "SA", "getKillSwitch": "SA", "updateKillSwitch": "SA",
    "deleteKillSwitch": "SA", "killSwitchBanners": MEMBERS,
    # the AI Copilot: AI_COPILOT:CREATE (developers and admins), checked by the route, which audits refusals
    "providers": WRITE_TENANT, "generateFlow": WRITE_TENANT, "generateTestSuite": WRITE_TENANT,
    "transcribePrompt": WRITE_TENANT,
    # plugin defaults: a developer's, read by viewers; the instance's are inherited by all, written by instance admins
    "inheritedPluginDefaults": "SADV", "exportPluginDefaults": "SADV", "importPluginDefaults": WRITE_NS,
    "getPluginDefaults": "SADV", "setPluginDefaults": WRITE_NS, "listPluginDefaultsRevisions": "SADV",
    "getPluginDefaultsRevision": "SADV", "listPluginDefaultsNamespaces": "SADVN", "getInstancePluginDefaults": "SADVN",
    "setInstancePluginDefaults": "S", "listInstancePluginDefaultsRevisions": "SADVN",
    "getInstancePluginDefaultsRevision": "SADVN",
    # routes being added in parallel (compat-api): bulk operations need the whole tenant (N may not)
    "pluginIcons": EVERYONE, "pluginGroupIcons": EVERYONE, "allInputTypes": EVERYONE, "schemaFromInputType": EVERYONE,
    "flowDependenciesFromTenant": "SADLV", "generateFlowGraphFromSource": READ_TENANT, "deleteFlowsByQuery": WRITE_NS,
    "enableFlowsByQuery": WRITE_NS, "disableFlowsByQuery": WRITE_NS, "exportFlowsByIds": "SADLV",
    "exportFlowsByQuery": "SADLV", "generateFlowGraph": READ_NS, "flowDependencies": READ_NS,
    "deleteExecutionsByIds": WRITE_NS, "deleteExecutionsByQuery": WRITE_NS, "killExecutionsByQuery": WRITE_NS,
    "restartExecutionsByIds": WRITE_NS, "restartExecutionsByQuery": WRITE_NS, "replayExecutionsByIds": "SADL",
    "replayExecutionsByQuery": "SADL", "resumeExecutionsByIds": WRITE_NS, "resumeExecutionsByQuery": WRITE_NS,
    "pauseExecutionsByIds": WRITE_NS, "pauseExecutionsByQuery": WRITE_NS,
    "setLabelsOnTerminatedExecutionsByIds": WRITE_NS, "setLabelsOnTerminatedExecutionsByQuery": WRITE_NS,
    "updateExecutionsStatusByIds": WRITE_NS, "updateExecutionsStatusByQuery": WRITE_NS, "forceRunByIds": WRITE_NS,
    "forceRunExecutionsByQuery": WRITE_NS, "unqueueExecutionsByIds": WRITE_NS, "unqueueExecutionsByQuery": WRITE_NS,
    "replayExecution": "SADL", "replayExecutionWithinputs": "SADL", "forceRunExecution": WRITE_NS,
    "unqueueExecution": WRITE_NS, "executionFlowGraph": READ_NS, "flowDependenciesFromNamespace": READ_NS,
    "exportNamespaceFiles": READ_NS, "listKeysWithInheritence": "SADV", "pauseBackfill": WRITE_NS,
    "unpauseBackfill": WRITE_NS, "deleteBackfill": WRITE_NS, "disabledTriggersByQuery": WRITE_NS,
    "unlockTriggersByIds": WRITE_NS, "unlockTriggersByQuery": WRITE_NS, "deleteTriggersByIds": WRITE_NS,
    "deleteTriggersByQuery": WRITE_NS, "pauseBackfillByIds": WRITE_NS, "pauseBackfillByQuery": WRITE_NS,
    "unpauseBackfillByIds": WRITE_NS, "unpauseBackfillByQuery": WRITE_NS, "deleteBackfillByIds": WRITE_NS,
    "deleteBackfillByQuery": WRITE_NS, "deleteTrigger": WRITE_NS, "restartTrigger": WRITE_NS,
    # audit logs: admins; the all-tenant routes need a role on every tenant
    "searchAuditLogs": "SA", "exportAuditLogs": "SA", "findAuditLog": "SA", "listAuditLogFromResourceId": "SA",
    "resourceDiffFromAuditLog": "SA", "searchAuditLogsForAllTenants": "S", "exportAuditLogsForAllTenants": "S",
    "globalResourceDiffFromAuditLog": "S",
}  # fmt: skip
SAVED: dict[str, Any] = {}
NOT_IN_SCHEMA = {
    "GET /api/v1/openapi.json": EVERYONE,
    "GET /api/v1/docs": EVERYONE,
    "GET /docs/oauth2-redirect": EVERYONE,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("matrix")
    engine = Engine(Store.sqlite(home), home, workers=2).start()
    lines = ["server:", "  apiTokens:"]
    for name, roles in ROLES.items():
        lines.append(
            f'    - {{name: {name}, tokenHash: "{hash_token(name)}"'
            + (f", roles: {roles}}}" if roles else "}")
        )
    (home / "roost.yaml").write_text("\n".join(lines) + "\n")
    app = create_app(ServerState(engine, load_config(home / "roost.yaml", env={})))
    flow = engine.deploy(
        "id: flow1\nnamespace: other.ns\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
    )
    execution = engine.run(flow, timeout=30)
    SAVED[execution.id] = engine.store.load_execution(execution.id)
    yield TestClient(app, raise_server_exceptions=False), engine, execution
    engine.stop()


def ensure(engine: Engine, execution: Any) -> None:
    """Put the execution back if an admin's request deleted it (so every role meets an existing one)."""
    if engine.store.load_execution(execution.id) is None:
        header, runs = SAVED[execution.id]
        engine.store.save_executions([(header, list(enumerate(runs)))])


def concrete(path: str, execution_id: str) -> str:
    values = {"tenant": "main", "namespace": "other.ns", "executionId": execution_id, "execution_id": execution_id,
              "flowId": "flow1", "flow_id": "flow1", "id": "flow1", "index": "0",
              "key": "k1", "triggerId": "t1", "type": "flow", "cls": "io.kestra.plugin.core.log.Log", "detailId": "flow1"}  # fmt: skip
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


def test_every_route_declares_a_permission(served: Any) -> None:
    client, _engine, _ex = served
    missing = [k for k in (key(m, p) for m, p in app_routes(client.app)) if k not in ROUTES]
    assert missing == [], f"declare a rule for these routes in roost.server.permissions.ROUTES: {missing}"
    stale = [
        k for k in ROUTES if k not in {key(m, p) for m, p in app_routes(client.app)} and k not in ANTICIPATED
    ]
    assert stale == [], f"rules for routes that do not exist: {stale}"


def test_every_operation_of_the_openapi_with_every_role(served: Any) -> None:
    client, engine, execution = served
    spec = client.get("/api/v1/openapi.json", headers={"Authorization": "Bearer S"}).json()
    undeclared, wrong = [], []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            allowed = MATRIX.get(op["operationId"])
            if allowed is None:
                undeclared.append(op["operationId"])
                continue
            for who in ROLES:
                ensure(engine, execution)
                r = client.request(method.upper(), concrete(path, execution.id), headers={"Authorization": f"Bearer {who}"},
                                   ) if "follow" not in path else _first_bytes(client, path, execution.id, who)  # fmt: skip
                if (r.status_code != 403) != (who in allowed):
                    wrong.append(f"{method.upper()} {path} as {who}: {r.status_code} {r.text[:120]}")
                assert r.status_code != 401, f"{who} is a valid token ({method} {path})"
    assert undeclared == [], f"operations missing from the matrix: {undeclared}"
    assert wrong == [], "\n".join(wrong)
    for spec_key, allowed in NOT_IN_SCHEMA.items():
        method, path = spec_key.split(" ", 1)
        for who in ROLES:
            r = client.request(method, path, headers={"Authorization": f"Bearer {who}"})
            assert (r.status_code != 403) == (who in allowed), (spec_key, who, r.status_code)


class _Answer:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.text = ""


def _first_bytes(client: TestClient, path: str, execution_id: str, who: str) -> _Answer:
    """Server-sent events never end on their own: read the status and stop."""
    with client.stream("GET", concrete(path, execution_id), headers={"Authorization": f"Bearer {who}"}) as r:
        return _Answer(r.status_code)


def test_a_namespace_developer_is_narrowed_inside_the_routes(served: Any) -> None:
    client, engine, execution = served
    n = {"Authorization": "Bearer N"}
    yaml = {"content-type": "application/x-yaml", **n}
    mine = "id: mine\nnamespace: company.team.sub\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
    assert client.post("/api/v1/main/flows", content=mine, headers=yaml).status_code == 200
    theirs = mine.replace("company.team.sub", "other.ns").replace("id: mine", "id: theirs")
    r = client.post("/api/v1/main/flows", content=theirs, headers=yaml)
    assert r.status_code == 403 and "other.ns" in r.json()["message"]
    both = mine + "---\n" + theirs
    assert client.post("/api/v1/main/flows/bulk", content=both, headers=yaml).status_code == 403
    assert engine.store.get_flow("main", "other.ns", "theirs") is None  # nothing half-written
    assert {f["namespace"] for f in client.get("/api/v1/main/flows/search", headers=n).json()["results"]} == {
        "company.team.sub"
    }
    assert client.get("/api/v1/main/executions/search", headers=n).json()["total"] == 0
    assert (
        client.get("/api/v1/main/executions/search", headers={"Authorization": "Bearer V"}).json()["total"]
        >= 1
    )
    assert (
        client.get(
            "/api/v1/main/executions", params={"namespace": "other.ns", "flowId": "flow1"}, headers=n
        ).status_code
        == 403
    )
    r = client.request("DELETE", "/api/v1/main/executions/kill/by-ids", json=[execution.id], headers=n)
    assert r.status_code == 403
    r = client.post(
        "/api/v1/main/flows/disable/by-ids", json=[{"namespace": "other.ns", "id": "flow1"}], headers=n
    )
    assert r.status_code == 403
    names = [x["id"] for x in client.get("/api/v1/main/namespaces/search", headers=n).json()["results"]]
    assert names == ["company.team", "company.team.sub"]  # not company, nor other.ns
    assert client.get("/api/v1/acme/flows/search", headers=n).status_code == 403  # bound to main only
    me = client.get("/api/v1/me", headers=n).json()
    assert (
        me["bindings"] == [{"role": "DEVELOPER", "tenant": "main", "namespace": "company.team"}]
        and me["restricted"]
    )


# The web UI's pages (not in the OpenAPI): who gets past authorization. POST forms without a CSRF token are
# refused by the UI itself afterwards, so the middleware's refusal is told apart by its page.
UI_MATRIX: dict[str, str] = {
    "GET /": EVERYONE, "GET /ui": EVERYONE, "GET /ui/": EVERYONE, "GET /ui/login": EVERYONE, "POST /ui/login": EVERYONE,
    "POST /ui/logout": EVERYONE,
    "GET /ui/{tenant}/flows": READ_TENANT, "GET /ui/{tenant}/flows/new": WRITE_TENANT,
    "GET /ui/{tenant}/flows/{namespace}/{flow_id}": READ_NS, "POST /ui/{tenant}/flows/{namespace}/{flow_id}/execute": "SADL",
    "GET /ui/{tenant}/executions": READ_TENANT, "GET /ui/{tenant}/executions/{execution_id}": READ_NS,
    "GET /ui/{tenant}/executions/{namespace}/{flow_id}/{execution_id}": READ_NS,
    "GET /ui/{tenant}/executions/{execution_id}/gantt": READ_NS, "GET /ui/{tenant}/executions/{execution_id}/preview": READ_NS,
    "GET /ui/{tenant}/namespaces": READ_TENANT, "GET /ui/{tenant}/namespaces/{namespace}": READ_NS,
    "GET /ui/{tenant}/namespaces/{namespace}/plugindefaults/form": "SADV",
    "POST /ui/{tenant}/namespaces/{namespace}/plugindefaults": WRITE_NS,
    "POST /ui/{tenant}/namespaces/{namespace}/plugindefaults/{index}/delete": WRITE_NS,
    "GET /ui/{tenant}/namespaces/{namespace}/plugindefaults/export": "SADV",
    "GET /ui/{tenant}/assets": READ_TENANT, "GET /ui/{tenant}/assets/{asset_id:path}": READ_TENANT,
    "GET /ui/{tenant}/plugins": EVERYONE, "GET /ui/{tenant}/plugins/{type_id}": EVERYONE, "GET /ui/{tenant}/x/{name}": EVERYONE,
    "GET /ui/{tenant}/killswitches": "SA", "POST /ui/{tenant}/killswitches": "SA",
    "POST /ui/{tenant}/killswitches/{switch_id}/delete": "SA", "POST /ui/{tenant}/killswitches/{switch_id}/enabled": "SA",
}  # fmt: skip


def test_every_page_of_the_ui_with_every_role(served: Any) -> None:
    client, engine, execution = served
    pages = [(m, p) for m, p in app_routes(client.app) if p == "/" or p.startswith("/ui")]
    missing = [key(m, p) for m, p in pages if key(m, p) not in UI_MATRIX]
    assert missing == [], f"UI routes missing from UI_MATRIX: {missing}"
    wrong = []
    for method, path in pages:
        allowed = UI_MATRIX[key(method, path)]
        target = concrete(path.replace("{asset_id:path}", "a/b"), execution.id)
        for who in ROLES:
            ensure(engine, execution)
            r = client.request(
                method, target, headers={"Authorization": f"Bearer {who}"}, follow_redirects=False
            )
            denied = r.status_code == 403 and "Not allowed" in r.text and "CSRF" not in r.text
            if denied == (who in allowed):
                wrong.append(f"{method} {path} as {who}: {r.status_code} {r.text[:100]}")
    assert wrong == [], "\n".join(wrong)
