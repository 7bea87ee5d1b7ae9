"""Audit logs (Kestra's ``/api/v1/{tenant}/auditlogs/...`` and the all-tenant ``/api/v1/auditlogs/...``).

Read-only: search, export (CSV), find, the history of one resource and the diff of one change. No
route updates or deletes an entry, and the store refuses to. A principal bound to some namespaces
reads the entries of those namespaces only; the all-tenant routes need a role on every tenant.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import JSONResponse, StreamingResponse

from roost.server import models
from roost.server.access import access_of
from roost.server.errors import bad_request, not_found
from roost.server.routes.common import blocking, state_of
from roost.server.routing import SegmentRoute

router = APIRouter(tags=["Audit Logs"], responses=models.ERRORS, route_class=SegmentRoute)
P = "/api/v1/{tenant}/auditlogs"
G = "/api/v1/auditlogs"
Page = Annotated[int, Query(ge=1, le=100000)]
Size = Annotated[int, Query(ge=1, le=10000)]
CRUD = (
    "READ",
    "CREATE",
    "UPDATE",
    "DELETE",
    "LOGIN",
    "LOGOUT",
    "IMPERSONATE",
    "LOGIN_FAILURE",
    "ACCOUNT_LOCKED",
)


class AuditLogDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    permission: str | None = None
    resourceType: str | None = None
    id: str | None = None


class AuditLog(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    tenantId: str | None = None
    type: str
    detail: AuditLogDetail
    date: str
    userId: str
    ipAddress: str | None = None


class ApiUser(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    username: str


class AuditLogItem(BaseModel):
    auditLog: AuditLog
    user: ApiUser


class AuditLogDiff(BaseModel):
    before: str | None = None
    after: str | None = None


class AuditLogOption(BaseModel):
    id: str
    date: str
    username: str


class FindRequest(BaseModel):
    resource: str | None = None
    type: str | None = None
    detail: dict[str, Any] | None = None


def _ts(value: str | None, name: str) -> float | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise bad_request(f"{name}: {value!r} is not an ISO-8601 date-time") from None
    if dt.tzinfo is None:
        from datetime import UTC

        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _item(entry: dict[str, Any]) -> dict[str, Any]:
    user = entry["userId"]
    return {"auditLog": entry, "user": {"id": user, "username": user.split(":", 1)[-1]}}


def _filters(request: Request, *, tenant: str | None, all_tenants: bool, q: str | None, namespace: str | None,
             flowId: str | None, executionId: str | None, userId: str | None, id: str | None,  # noqa: N803
             resources: list[str] | None, startDate: str | None, endDate: str | None, type: str | None) -> dict[str, Any]:  # noqa: N803  # fmt: skip
    if type is not None and type.upper() not in CRUD:
        raise bad_request(f"type: expected one of {', '.join(CRUD)}")
    details: dict[str, str] = {}
    for key, value in request.query_params.multi_items():  # details[key]=value
        if key.startswith("details[") and key.endswith("]") and len(key) > 9:
            details[key[8:-1]] = value
    within = None
    if tenant is not None:
        scope = access_of(request).scope("AUDITLOG", "READ", tenant)
        within = None if scope.all else list(scope.prefixes)
    return {"tenant": tenant, "all_tenants": all_tenants, "q": q, "namespace": namespace, "flow_id": flowId,
            "execution_id": executionId, "user_id": userId, "resource_id": id,
            "resources": [r.upper() for v in resources or [] for r in v.split(",") if r] or None,
            "types": [type.upper()] if type else None, "start": _ts(startDate, "startDate"), "end": _ts(endDate, "endDate"),
            "details": details or None, "within": within}  # fmt: skip


def _search(
    request: Request, tenant: str | None, page: int, size: int, sort: list[str] | None, **kw: Any
) -> JSONResponse:
    st = state_of(request)
    filters = _filters(request, tenant=tenant, all_tenants=tenant is None, **kw)
    ascending = bool(sort) and (sort or [""])[0].lower() in ("date:asc", "date")
    found, total = st.store.audit.search(**filters, page=page, size=size, ascending=ascending)
    return JSONResponse({"results": [_item(e) for e in found], "total": total})


SEARCH_PARAMS = """q, namespace (and children), flowId, executionId, userId, id (of the resource), resources
(FLOW, EXECUTION, KV_STORE, NAMESPACE_FILE, KILL_SWITCH, USER...), startDate, endDate, type (CREATE, UPDATE,
DELETE, LOGIN, LOGIN_FAILURE...) and details[key]=value (a field of the entry's detail)."""


@router.get(P + "/search", operation_id="searchAuditLogs", summary="Search for audit logs", description=SEARCH_PARAMS,
            responses={200: {"model": models.Paged[AuditLogItem]}})  # fmt: skip
def search(request: Request, tenant: str, page: Page = 1, size: Size = 10, sort: Annotated[list[str] | None, Query()] = None,
           q: str | None = None, namespace: str | None = None, flowId: str | None = None, executionId: str | None = None,  # noqa: N803
           userId: str | None = None, id: str | None = None, resources: Annotated[list[str] | None, Query()] = None,  # noqa: N803
           startDate: str | None = None, endDate: str | None = None, type: str | None = None) -> JSONResponse:  # noqa: N803  # fmt: skip
    st = state_of(request)
    return _search(request, st.tenant(tenant), page, size, sort, q=q, namespace=namespace, flowId=flowId,
                   executionId=executionId, userId=userId, id=id, resources=resources, startDate=startDate,
                   endDate=endDate, type=type)  # fmt: skip


@router.get(G + "/search", operation_id="searchAuditLogsForAllTenants", summary="Search for audit logs of every tenant",
            description=SEARCH_PARAMS, responses={200: {"model": models.Paged[AuditLogItem]}})  # fmt: skip
def search_all(request: Request, page: Page = 1, size: Size = 10, sort: Annotated[list[str] | None, Query()] = None,
               q: str | None = None, namespace: str | None = None, flowId: str | None = None, executionId: str | None = None,  # noqa: N803
               userId: str | None = None, id: str | None = None, resources: Annotated[list[str] | None, Query()] = None,  # noqa: N803
               startDate: str | None = None, endDate: str | None = None, type: str | None = None) -> JSONResponse:  # noqa: N803  # fmt: skip
    return _search(request, None, page, size, sort, q=q, namespace=namespace, flowId=flowId, executionId=executionId,
                   userId=userId, id=id, resources=resources, startDate=startDate, endDate=endDate, type=type)  # fmt: skip


CSV_COLUMNS = ("id", "date", "tenantId", "type", "resourceType", "resourceId", "namespace", "flowId", "executionId",
               "userId", "ipAddress", "detail")  # fmt: skip


def _export(request: Request, tenant: str | None, **kw: Any) -> StreamingResponse:
    st = state_of(request)
    filters = _filters(request, tenant=tenant, all_tenants=tenant is None, **kw)

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        page = 1
        while True:
            found, _total = st.store.audit.search(**filters, page=page, size=1000)
            for e in found:
                d = e["detail"]
                writer.writerow([e["id"], e["date"], e.get("tenantId") or "", e["type"], d.get("resourceType", ""),
                                 d.get("id", ""), d.get("namespace", ""), d.get("flowId", ""), d.get("executionId", ""),
                                 e["userId"], e.get("ipAddress", ""), json.dumps(d, separators=(",", ":"))])  # fmt: skip
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            if len(found) < 1000:
                return
            page += 1

    name = f"auditlogs-{tenant or 'all'}.csv"
    return StreamingResponse(
        rows(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
}


@router.get(P + "/export", operation_id="exportAuditLogs", summary="Export audit logs as a streamed CSV file",
            description=SEARCH_PARAMS, responses=CSV_RESPONSE)  # fmt: skip
def export(request: Request, tenant: str, q: str | None = None, namespace: str | None = None, flowId: str | None = None,  # noqa: N803
           executionId: str | None = None, userId: str | None = None, id: str | None = None,  # noqa: N803
           resources: Annotated[list[str] | None, Query()] = None, startDate: str | None = None,  # noqa: N803
           endDate: str | None = None, type: str | None = None) -> StreamingResponse:  # noqa: N803  # fmt: skip
    st = state_of(request)
    return _export(request, st.tenant(tenant), q=q, namespace=namespace, flowId=flowId, executionId=executionId,
                   userId=userId, id=id, resources=resources, startDate=startDate, endDate=endDate, type=type)  # fmt: skip


@router.get(G + "/export", operation_id="exportAuditLogsForAllTenants", summary="Export audit logs of every tenant (CSV)",
            description=SEARCH_PARAMS, responses=CSV_RESPONSE)  # fmt: skip
def export_all(request: Request, q: str | None = None, namespace: str | None = None, flowId: str | None = None,  # noqa: N803
               executionId: str | None = None, userId: str | None = None, id: str | None = None,  # noqa: N803
               resources: Annotated[list[str] | None, Query()] = None, startDate: str | None = None,  # noqa: N803
               endDate: str | None = None, type: str | None = None) -> StreamingResponse:  # noqa: N803  # fmt: skip
    return _export(request, None, q=q, namespace=namespace, flowId=flowId, executionId=executionId, userId=userId,
                   id=id, resources=resources, startDate=startDate, endDate=endDate, type=type)  # fmt: skip


def _readable(request: Request, tenant: str | None, entry_id: str) -> dict[str, Any]:
    """One entry the principal may read (404 otherwise, whether it exists or not)."""
    st = state_of(request)
    entry = st.store.audit.get(entry_id) if len(entry_id) <= 32 else None
    if entry is None or (tenant is not None and entry.get("tenantId") != tenant):
        raise not_found(f"audit log {entry_id} not found")
    if tenant is not None:
        scope = access_of(request).scope("AUDITLOG", "READ", tenant)
        if not scope.allows(entry["detail"].get("namespace")):
            raise not_found(f"audit log {entry_id} not found")
    return entry


def _text(state: Any) -> str | None:
    """A recorded state as text: a flow's YAML as written, anything else as indented JSON."""
    if state is None:
        return None
    if isinstance(state, str):
        return state
    return json.dumps(state, indent=2, sort_keys=True, default=str)


def _diff(request: Request, tenant: str | None, entry_id: str, previous_id: str | None) -> dict[str, Any]:
    entry = _readable(request, tenant, entry_id)
    before = entry.get("before")
    if previous_id:
        previous = _readable(request, tenant, previous_id)
        if previous["detail"].get("id") != entry["detail"].get("id"):
            raise bad_request(f"previousId: audit log {previous_id} is about another resource")
        before = previous.get("after")
    return {"before": _text(before), "after": _text(entry.get("after"))}


@router.get(P + "/{id}/diff", operation_id="resourceDiffFromAuditLog", summary="The state before and after a change",
            responses={200: {"model": AuditLogDiff}})  # fmt: skip
async def diff(request: Request, tenant: str, id: str, previousId: str | None = None) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    return JSONResponse(await blocking(_diff, request, st.tenant(tenant), id, previousId))


@router.get(G + "/{id}/diff", operation_id="globalResourceDiffFromAuditLog", summary="The state before and after a change (any tenant)",
            responses={200: {"model": AuditLogDiff}})  # fmt: skip
async def diff_all(request: Request, id: str, previousId: str | None = None) -> JSONResponse:  # noqa: N803
    return JSONResponse(await blocking(_diff, request, None, id, previousId))


@router.get(P + "/history/{detailId}", operation_id="listAuditLogFromResourceId", summary="The changes of one resource",
            responses={200: {"model": list[AuditLogOption]}})  # fmt: skip
def history(request: Request, tenant: str, detailId: str, resourceType: str | None = None) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    scope = access_of(request).scope("AUDITLOG", "READ", tenant)
    entries = [e for e in st.store.audit.history(tenant, resourceType.upper() if resourceType else None, detailId)
               if scope.allows(e["detail"].get("namespace"))]  # fmt: skip
    return JSONResponse([{"id": e["id"], "date": e["date"], "username": e["userId"]} for e in entries])


@router.post(P + "/find", operation_id="findAuditLog", summary="The latest audit log matching a resource, type and details",
             responses={200: {"model": AuditLogItem}})  # fmt: skip
def find(request: Request, tenant: str, body: FindRequest) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    detail = {k: v for k, v in (body.detail or {}).items() if v is not None}
    scope = access_of(request).scope("AUDITLOG", "READ", tenant)
    found, _ = st.store.audit.search(tenant=tenant, resources=[body.resource.upper()] if body.resource else None,
                                     types=[body.type.upper()] if body.type else None, resource_id=detail.pop("id", None),
                                     namespace=None, details={k: v for k, v in detail.items()} or None,
                                     within=None if scope.all else list(scope.prefixes), size=1)  # fmt: skip
    if not found:
        raise not_found("no audit log matches")
    return JSONResponse(_item(found[0]))


__all__ = ["router"]
