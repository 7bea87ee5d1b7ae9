"""The ASGI app: the Kestra-compatible API under ``/api/v1/{tenant}/...``, auth, errors, OpenAPI."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from roost.server import errors, routing, ui
from roost.server.access import AccessMiddleware
from roost.server.auth import AuthMiddleware
from roost.server.permissions import ROUTES, Rule, app_routes, key
from roost.server.routes import (
    ai,
    assets,
    auditlogs,
    execution_actions,
    executions,
    flows,
    graphs,
    killswitches,
    logs,
    namespaces,
    plugin_defaults,
    plugins,
    system,
    triggers,
)
from roost.server.state import ServerState

log = logging.getLogger("roost.server")
UNDECLARED = Rule(
    "UNDECLARED", ("UPDATE",), "instance"
)  # a route without a rule: only unrestricted principals
ROUTE_MODULES = (
    flows,
    executions,
    execution_actions,
    graphs,
    logs,
    namespaces,
    plugin_defaults,
    triggers,
    assets,
    plugins,
    system,
    killswitches,
    auditlogs,
    ai,
)


def create_app(state: ServerState, *, api_threads: int = 6) -> FastAPI:
    """``api_threads`` bounds the threads running store work for requests: more would only queue on
    SQLite's single writer and overflow the store's connection pool (a new connection per call)."""
    from contextlib import asynccontextmanager

    from roost.server.routes.system import version

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = api_threads
        yield

    app = FastAPI(lifespan=lifespan, title="Roost API", version=version(), openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs",
                  redoc_url=None,
                  description="Kestra 1.3-compatible API of Roost. Tenant-scoped routes live under /api/v1/{tenant}/ "
                              "(the open-source tenant is `main`).")  # fmt: skip
    app.state.roost = state
    errors.install(app)
    for module in ROUTE_MODULES:  # the routes themselves, not included routers: they are ranked as one list
        app.router.routes.extend(module.router.routes)
    plugin_defaults.stored(state)  # the store's versioned defaults (ROOST_PLUGIN_DEFAULTS imported)
    sessions = ui.mount(app, state)  # the web UI under /ui/ (and / redirecting there)
    routing.install_route_stubs(app)
    routing.rank_routes(app)
    routing.index_routes(app)
    app.add_middleware(AccessMiddleware, state=state, routes=declared_routes(app))
    app.add_middleware(AuthMiddleware, config=state.config.auth, sessions=sessions, audit=state.audit)
    app.add_middleware(errors.RequestGuard)  # outermost: malformed targets never reach auth or routes
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def declared_routes(app: FastAPI) -> dict[str, Rule]:
    """The permission table, plus a closed rule for every route of the app it forgets (refused to anyone
    roles restrict, and named in the server log: a route added without a rule fails closed)."""
    table = dict(ROUTES)
    missing = [k for k in (key(m, p) for m, p in app_routes(app)) if k not in table]
    for spec in missing:
        table[spec] = UNDECLARED
    if missing:
        log.error(
            "routes without a declared permission (refused to principals with roles): %s", ", ".join(missing)
        )
    return table


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema["components"].setdefault("securitySchemes", {}).update({
        "basicAuth": {"type": "http", "scheme": "basic"},
        "bearerAuth": {"type": "http", "scheme": "bearer"},
    })  # fmt: skip
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            responses = op.get("responses", {})
            # parameter errors answer 400 with {"message": ...} (see roost.server.errors), not FastAPI's 422 shape
            validation = (
                responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            )
            if validation.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            rule = ROUTES.get(key(method, path))
            op["x-roost-permission"] = rule.text() if rule is not None else "undeclared"
            if path != "/health":
                op["security"] = [{"basicAuth": []}, {"bearerAuth": []}]
                responses.setdefault("403", {"description": "Permission denied (roles)",
                                             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})  # fmt: skip
                responses.setdefault("401", {"description": "Authentication required",
                                             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})  # fmt: skip
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    app.openapi_schema = schema
    return schema
