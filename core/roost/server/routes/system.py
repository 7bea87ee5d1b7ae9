"""Health, configuration and version, Prometheus metrics, the server's own OpenAPI document."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from roost.server import models
from roost.server.routes.common import state_of
from roost.server.routing import SegmentRoute

router = APIRouter(tags=["Misc"], route_class=SegmentRoute)
_INSTANCE = str(uuid.uuid4())


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("roost")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@router.get(
    "/health",
    operation_id="health",
    summary="Liveness (no authentication)",
    responses={200: {"model": models.Health}},
)
def health(request: Request) -> JSONResponse:
    st = state_of(request)
    return JSONResponse({"status": "UP", "component": st.component, "executor": st.executor_running})


@router.get("/api/v1/configs", operation_id="getConfiguration", summary="The instance configuration and version",
            responses={200: {"model": models.Configuration}})  # fmt: skip
def configs(request: Request) -> JSONResponse:
    st = state_of(request)
    return JSONResponse({
        "uuid": _INSTANCE, "version": version(), "edition": "OSS", "isBasicAuthInitialized": st.config.auth.enabled,
        "url": st.config.url, "systemNamespace": "system", "hiddenLabelsPrefixes": ["system."],
        "isTemplateEnabled": False, "isAnonymousUsageEnabled": False, "isAiEnabled": False,
    })  # fmt: skip


@router.get(
    "/api/v1/version",
    operation_id="getVersion",
    summary="The server's version",
    responses={200: {"model": dict[str, str]}},
)
def get_version() -> JSONResponse:
    return JSONResponse({"version": version(), "edition": "OSS"})


@router.get("/api/v1/me", operation_id="currentUser", summary="The authenticated principal, its roles and tenants",
            responses={200: {"model": models.Me}})  # fmt: skip
def me(request: Request) -> JSONResponse:
    """Kestra's ``ApiMe`` (id, superAdmin, tenants) plus Roost's ``bindings`` and each role's permissions."""
    from roost.server.rbac import describe

    st = state_of(request)
    policy = st.config.auth.policy
    principal = request.scope.get("state", {}).get("principal")
    bindings = list(policy.bindings_of(principal))
    if not policy.enforced:  # no role configured: everyone authenticated is ADMIN everywhere
        from roost.server.rbac import Binding

        bindings = [Binding("ADMIN")]
    tenants = sorted({b.tenant for b in bindings if b.tenant} | ({"main", *(st.config.tenants or ())}
                     if any(b.tenant is None for b in bindings) else set()))  # fmt: skip
    return JSONResponse({
        "id": getattr(principal, "id", None) or principal or "anonymous",
        "username": str(principal) if principal else "anonymous",
        "type": getattr(principal, "kind", "user") if principal else "anonymous",
        "superAdmin": policy.unrestricted(principal), "restricted": not policy.unrestricted(principal),
        "tenants": [{"id": t, "name": t} for t in tenants],
        "bindings": [{"role": b.role, "tenant": b.tenant, "namespace": b.namespace} for b in bindings],
        "roles": describe(policy.roles[b] for b in sorted({b.role for b in bindings}) if b in policy.roles),
    })  # fmt: skip


def _line(name: str, labels: dict[str, Any], value: float) -> str:
    if labels:
        inner = ",".join(
            f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
            for k, v in labels.items()
        )
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def render_metrics(st: Any) -> str:
    from roost.server.queries import count_by_state

    out: list[str] = []
    out += [
        "# HELP roost_executions Executions in the store, by tenant and state.",
        "# TYPE roost_executions gauge",
    ]
    for (tenant, state), count in sorted(count_by_state(st.store).items()):
        out.append(_line("roost_executions", {"tenant": tenant, "state": state}, count))
    m = st.metrics
    with m.lock:
        out += ["# HELP roost_executions_ended_total Executions this process saw end, by final state.",
                "# TYPE roost_executions_ended_total counter"]  # fmt: skip
        out += [_line("roost_executions_ended_total", {"state": s}, c) for s, c in sorted(m.ended.items())]
        out += ["# HELP roost_execution_duration_seconds_sum Total duration of ended executions, by final state.",
                "# TYPE roost_execution_duration_seconds_sum counter"]  # fmt: skip
        out += [
            _line("roost_execution_duration_seconds_sum", {"state": s}, v)
            for s, v in sorted(m.exec_sums.items())
        ]
        out += ["# HELP roost_task_duration_seconds Duration of finished task runs, by final state.",
                "# TYPE roost_task_duration_seconds histogram"]  # fmt: skip
        for state, counts in sorted(m.task_counts.items()):
            for bound, count in zip(m.task_buckets, counts, strict=False):
                out.append(
                    _line("roost_task_duration_seconds_bucket", {"state": state, "le": f"{bound:g}"}, count)
                )
            out.append(
                _line("roost_task_duration_seconds_bucket", {"state": state, "le": "+Inf"}, counts[-1])
            )
            out.append(_line("roost_task_duration_seconds_count", {"state": state}, counts[-1]))
            out.append(
                _line("roost_task_duration_seconds_sum", {"state": state}, m.task_sums.get(state, 0.0))
            )
    depth = getattr(st.engine.queue, "depth", None)
    if depth is not None:
        out += ["# HELP roost_queue_depth Messages waiting for the executor.", "# TYPE roost_queue_depth gauge",
                _line("roost_queue_depth", {}, depth())]  # fmt: skip
    worker = getattr(st.engine, "worker", None)
    if worker is not None and st.executor_running:
        out += ["# HELP roost_worker_running Task runs running on this process's worker.", "# TYPE roost_worker_running gauge",
                _line("roost_worker_running", {}, len(worker.running))]  # fmt: skip
    return "\n".join(out) + "\n"


@router.get("/metrics", operation_id="metrics", summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"}})  # fmt: skip
def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(render_metrics(state_of(request)), media_type="text/plain; version=0.0.4")


@router.get("/api/v1/openapi.yaml", operation_id="openapiYaml", summary="This server's OpenAPI document (YAML)",
            responses={200: {"content": {"application/yaml": {"schema": {"type": "object"}}}, "description": "OpenAPI"}})  # fmt: skip
def openapi_yaml(request: Request) -> Response:
    import io

    from ruamel.yaml import YAML

    buf = io.StringIO()
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.dump(request.app.openapi(), buf)
    return Response(buf.getvalue(), media_type="application/yaml")
