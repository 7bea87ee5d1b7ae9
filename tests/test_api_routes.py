"""Routing as Kestra's: fixed routes win over catch-alls, unknown routes are 404, unknown tenants are 404,
success codes follow the specification."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.server import ServerConfig, ServerState, create_app
from roost.server.config import ConfigError, load_config
from roost.server.kestra_routes import KESTRA_ROUTES
from roost.server.routing import handler_path, overlap, rank
from roost.store.db import Store

SPEC = Path("/work/shared/reference/kestra-api-1.3.0.openapi.yaml")
Y = {"content-type": "application/x-yaml"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=2)
    eng.start()
    yield eng
    eng.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app only, its engine never started: route resolution is all these tests look at."""
    folder = tmp_path_factory.mktemp("routes")
    return create_app(ServerState(Engine(Store.sqlite(folder), folder)))


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)


@functools.lru_cache(maxsize=1)
def kestra_spec() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip("the Kestra specification is not on this machine")
    return yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def concrete(template: str) -> str:
    """A path matching ``template``, with sample values no fixed segment uses."""
    return re.sub(r"\{tenant\}", "main", re.sub(r"\{(?!tenant\})[^}]+\}", "x1", template))


@pytest.mark.parametrize("spec", KESTRA_ROUTES)
def test_every_kestra_route_reaches_its_own_handler(app: Any, spec: str) -> None:
    """No fixed route of Kestra's is swallowed by a catch-all: the route answering it is the one with its template
    (ours, or a "No such route" answer where we do not serve it and a catch-all would have)."""
    method, template = spec.split(" ", 1)
    handled = handler_path(app, method, concrete(template))
    assert handled in (template, None), f"{spec} is answered by {handled}"


def test_the_route_index_answers_as_the_whole_table(app: Any) -> None:
    """The index in front of the table (a handful of candidates per request) picks, for every route of the
    app and of Kestra's, with sample values, the route the full pass in table order would pick."""
    from roost.server.routing import RouteIndex
    from starlette.routing import Match

    index, table = app.router.routes[0], app.router.routes[1:]
    assert isinstance(index, RouteIndex)
    templates = {(m, r.path) for r in table for m in getattr(r, "methods", None) or () if hasattr(r, "path")}
    templates |= {tuple(spec.split(" ", 1)) for spec in KESTRA_ROUTES}
    samples = [(m, concrete(t)) for m, t in templates] + [(m, concrete(t) + "/extra") for m, t in templates]
    samples += [("GET", "/ui/"), ("GET", "/health"), ("POST", "/api/v1/main/executions/x1/x1/x1/x1/x1")]
    assert len(samples) > 500
    for method, path in samples:
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        full = next((r for r in table if r.matches(dict(scope))[0] == Match.FULL), None)
        match, child = index.matches(dict(scope))
        assert (child.get("roost.route") if match == Match.FULL else None) is full, (method, path)


def test_the_route_list_is_kestras(app: Any) -> None:
    spec = kestra_spec()
    listed = {
        f"{m.upper()} {p}"
        for p, item in spec["paths"].items()
        for m in item
        if m in ("get", "post", "put", "delete", "patch")
    }
    assert listed == set(KESTRA_ROUTES)


def test_catch_alls_no_longer_take_fixed_routes(client: TestClient, engine: Engine) -> None:
    flow = "id: hello\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    graph = client.post("/api/v1/main/flows/graph", content=flow, headers=Y)
    assert graph.status_code == 200 and {"nodes", "edges", "clusters"} <= set(graph.json())
    assert client.get("/api/v1/main/flows/graph").json() == []  # nothing was deployed in a namespace "graph"
    assert engine.store.list_flows("main") == []
    missing = client.post("/api/v1/main/executions/nope/replay")
    assert missing.status_code == 404 and missing.json() == {"message": "execution nope not found"}
    # a route of Kestra's that Roost does not serve: not an execution of flow "state" in namespace "x1"
    assert client.post("/api/v1/main/executions/x1/state", json={}).json() == {"message": "No such route"}
    assert client.get("/api/v1/users/kv").json() == {
        "message": "No such route"
    }  # not the KV of tenant "users"


@pytest.mark.parametrize(
    "path", ["/api/v1/main/nothing", "/api/v1/main/flows/a/b/c/d/e", "/nothing", "/api/v2/main/flows"]
)
def test_unknown_routes_are_404(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404 and r.json() == {"message": "No such route"}


def test_rank_and_overlap() -> None:
    assert rank("/api/v1/{tenant}/flows/graph") < rank("/api/v1/{tenant}/flows/{namespace}")
    assert rank("/api/v1/{tenant}/executions/{executionId}/replay") < rank(
        "/api/v1/{tenant}/executions/{namespace}/{id}"
    )
    assert (
        overlap("/a/{x}/c", "/a/b/{y}") and not overlap("/a/b", "/a/c") and not overlap("/a/{x}", "/a/{x}/c")
    )


# -- tenants ----------------------------------------------------------------------------------------------------------
TENANT_GETS = ["flows/search", "executions/search", "logs/search", "kv", "namespaces/search", "triggers/search",
               "assets/search", "dependencies", "flows/a/b/graph", "namespaces/a/kv/inheritance", "flows/distinct-namespaces"]  # fmt: skip


@pytest.mark.parametrize("route", TENANT_GETS)
def test_an_unknown_tenant_is_404(client: TestClient, route: str) -> None:
    r = client.get(f"/api/v1/acme/{route}")
    assert r.status_code == 404 and r.json() == {"message": "no tenant 'acme' on this server"}


def test_unknown_tenant_is_refused_before_the_body_is_read(client: TestClient) -> None:
    r = client.post("/api/v1/acme/executions/kill/by-ids", content=b"not json")
    assert r.status_code == 404
    r = client.post("/api/v1/acme/flows", content="id: [", headers=Y)
    assert r.status_code == 404


def test_configured_tenants_are_hosted_and_isolated(engine: Engine) -> None:
    c = TestClient(
        create_app(ServerState(engine, ServerConfig(tenants=("main", "acme")))), raise_server_exceptions=False
    )
    flow = "id: t\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    assert c.post("/api/v1/acme/flows", content=flow, headers=Y).status_code == 200
    assert c.get("/api/v1/acme/flows/company.team/t").status_code == 200
    assert c.get("/api/v1/main/flows/company.team/t").status_code == 404
    assert c.get("/api/v1/beta/flows/company.team/t").status_code == 404


def test_tenant_configuration(tmp_path: Path) -> None:
    assert load_config(None, env={}).tenants == ("main",)
    cfg = tmp_path / "roost.yaml"
    cfg.write_text("server:\n  tenants: [acme, beta]\n")
    assert load_config(cfg, env={"ROOST_SERVER_TENANTS": "gamma, acme"}).tenants == (
        "main",
        "acme",
        "beta",
        "gamma",
    )
    cfg.write_text("server:\n  tenants: [Bad Tenant]\n")
    with pytest.raises(ConfigError, match="server.tenants"):
        load_config(cfg, env={})
    cfg.write_text("server:\n  tenants: acme\n")
    with pytest.raises(ConfigError, match="list of tenant ids"):
        load_config(cfg, env={})


# -- success codes ------------------------------------------------------------------------------------------------------
def test_success_codes_follow_the_specification(app: Any) -> None:
    """Every operation Roost shares with Kestra answers one of the success codes Kestra's specification gives it."""
    spec = kestra_spec()["paths"]
    ours = app.openapi()["paths"]
    wrong = []
    shared = 0
    for path, item in ours.items():
        for method, op in item.items():
            kestra = spec.get(path, {}).get(method)
            if kestra is None:
                continue
            shared += 1
            codes = {c for c in op["responses"] if c.startswith("2")}
            if not codes <= {c for c in kestra["responses"] if c.startswith("2")}:
                wrong.append(f"{method.upper()} {path}: {sorted(codes)}")
    assert not wrong, wrong
    assert shared > 100
