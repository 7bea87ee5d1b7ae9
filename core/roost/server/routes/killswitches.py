"""Kill switches (Kestra 1.3's ``/api/v1/kill-switches``) and the banners they raise.

A switch belongs to one tenant (``tenantId`` in the body, as in Kestra where the routes are
instance-level) and acts on the whole tenant, a namespace and its children, one flow, or a list of
execution ids, from ``startDate`` until ``endDate`` (open-ended without one). Creating, updating or
deleting one takes effect in this process at once and in an executor process within a second (the
executor re-reads switches when the store's counter moves; a webserver also sends it a message).
Deletion is soft: a deleted switch stays listed, archived. Every change is in the audit log.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import JSONResponse, Response

from roost.engine.killswitch import TYPES, Switch
from roost.engine.model import new_id
from roost.flow.model import FLOW_ID, NAMESPACE
from roost.server import models
from roost.server.access import Access, access_of
from roost.server.errors import ApiError, bad_request, conflict, not_found
from roost.server.routes.common import blocking, state_of
from roost.server.routing import SegmentRoute
from roost.server.state import TENANT, ServerState

router = APIRouter(tags=["KillSwitches"], responses=models.ERRORS, route_class=SegmentRoute)
P = "/api/v1/kill-switches"
MAX_EXECUTIONS = 10_000
_NS, _FLOW = re.compile(NAMESPACE), re.compile(FLOW_ID)


class KillSwitch(BaseModel):
    """Kestra's ``KillSwitch``, plus Roost's read-only ``status``, ``archived`` and authorship fields."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    name: str
    tenantId: str | None = None
    namespace: str | None = None
    flowId: str | None = None
    executionIds: list[str] | None = None
    startDate: datetime
    endDate: datetime | None = None
    description: str | None = None
    evaluationType: Literal["PASS", "KILL", "CANCEL", "IGNORE"]
    enabled: bool | None = None
    deleted: bool | None = None
    status: Literal["SCHEDULED", "ACTIVE", "DISABLED", "ARCHIVED"] | None = None


class Banner(BaseModel):
    id: str
    name: str
    evaluationType: str
    level: Literal["TENANT", "NAMESPACE", "FLOW", "EXECUTION"]
    scope: str
    namespace: str | None = None
    flowId: str | None = None
    description: str | None = None
    startDate: str
    endDate: str | None = None


BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/KillSwitch"}}}}}  # fmt: skip


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status(row: dict[str, Any], at: float | None = None) -> str:
    at = time.time() if at is None else at
    if (
        row.get("deleted")
        or row.get("archived") is not None
        or (row.get("end_date") is not None and row["end_date"] <= at)
    ):
        return "ARCHIVED"
    if not row.get("enabled", True):
        return "DISABLED"
    return "SCHEDULED" if row["start_date"] > at else "ACTIVE"


def switch_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored switch as Kestra's ``KillSwitch`` (and Roost's status and authorship)."""
    out: dict[str, Any] = {
        "id": row["id"], "name": row["name"], "tenantId": row["tenant"], "namespace": row.get("namespace"),
        "flowId": row.get("flow_id"), "executionIds": list(row.get("execution_ids") or []),
        "startDate": _iso(row["start_date"]), "endDate": _iso(row.get("end_date")), "description": row.get("description"),
        "evaluationType": row["type"], "enabled": bool(row.get("enabled", True)), "deleted": bool(row.get("deleted")),
        "status": status(row), "archived": _iso(row.get("archived")), "created": _iso(row.get("created")),
        "createdBy": row.get("created_by"), "updated": _iso(row.get("updated")), "updatedBy": row.get("updated_by"),
    }  # fmt: skip
    return {k: v for k, v in out.items() if v is not None}


def _date(value: Any, field: str) -> float:
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{field}: expected an ISO-8601 date-time such as 2026-01-31T02:00:00Z")
    try:
        dt = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise bad_request(f"{field}: {value!r} is not an ISO-8601 date-time (2026-01-31T02:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # a date without an offset is UTC, as the API's dates are
    return dt.timestamp()


def parse_switch(st: ServerState, body: Any, *, now: float | None = None) -> dict[str, Any]:
    """The stored fields of a switch from a request body; every mistake is a 400 naming the field."""
    now = time.time() if now is None else now
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object: a KillSwitch")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name: required, the switch's name as the banners and the audit log show it")
    if len(name) > 256:
        raise bad_request("name: at most 256 characters")
    kind = body.get("evaluationType")
    if not isinstance(kind, str) or kind.upper() not in (*TYPES, "PASS"):
        raise bad_request("evaluationType: required, one of KILL (kill running and new executions), CANCEL (new ones "
                          "cancelled, running task runs finish) or IGNORE (drop every message of the executions)")  # fmt: skip
    kind = kind.upper()
    if kind == "PASS":
        raise bad_request("evaluationType: PASS is what an execution no switch covers evaluates to; a switch is KILL, "
                          "CANCEL or IGNORE")  # fmt: skip
    tenant = body.get("tenantId")
    if tenant in (None, ""):
        raise bad_request("tenantId: required, the tenant the switch acts on (the scope: the whole tenant, or a "
                          "namespace, a flow or execution ids in it)")  # fmt: skip
    if not isinstance(tenant, str) or not TENANT.match(tenant):
        raise bad_request(
            f"tenantId: {tenant!r} is not a tenant id (lower-case letters, digits, '-' and '_')"
        )
    if st.config.tenants is not None and tenant not in st.config.tenants:
        raise bad_request(
            f"tenantId: unknown tenant {tenant!r}; this server hosts {', '.join(st.config.tenants)}"
        )
    namespace = body.get("namespace") or None
    if namespace is not None and (
        not isinstance(namespace, str) or not _NS.match(namespace) or len(namespace) > 150
    ):
        raise bad_request(
            f"namespace: {namespace!r} is not a namespace (lower-case letters, digits, '.', '_' and '-')"
        )
    flow_id = body.get("flowId") or None
    if flow_id is not None:
        if not isinstance(flow_id, str) or not _FLOW.match(flow_id) or len(flow_id) > 100:
            raise bad_request(f"flowId: {flow_id!r} is not a flow id")
        if namespace is None:
            raise bad_request("flowId: a flow scope needs the flow's namespace too")
    ids = body.get("executionIds") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        raise bad_request("executionIds: expected a list of execution ids")
    if len(ids) > MAX_EXECUTIONS:
        raise bad_request(f"executionIds: at most {MAX_EXECUTIONS} ids; scope a namespace or a flow instead")
    if ids and (namespace or flow_id):
        raise bad_request("executionIds: an execution scope names executions only; leave namespace and flowId out "
                          "(or drop executionIds to scope the namespace or flow)")  # fmt: skip
    if "startDate" not in body or body.get("startDate") in (None, ""):
        raise bad_request("startDate: required, when the switch starts acting (now: the current date-time)")
    start = _date(body.get("startDate"), "startDate")
    end = None if body.get("endDate") in (None, "") else _date(body.get("endDate"), "endDate")
    if end is not None and end <= start:
        raise bad_request("endDate: must be after startDate")
    if end is not None and end <= now:
        raise bad_request(
            "endDate: already passed; the switch would never act (leave it out for an open-ended switch)"
        )
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 10_000):
        raise bad_request("description: expected a text of at most 10,000 characters (the reason)")
    enabled = body.get("enabled", True)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise bad_request("enabled: expected true or false")
    return {"name": name.strip(), "tenant": tenant, "namespace": namespace, "flow_id": flow_id,
            "execution_ids": sorted(set(ids)), "type": kind, "start_date": start, "end_date": end,
            "description": description or None, "enabled": enabled}  # fmt: skip


def _require(access: Access, st: ServerState, action: str, values: dict[str, Any]) -> None:
    """The principal may act on the switch's whole scope: its namespace (and children), each execution's
    namespace, or the whole tenant."""
    if access.unrestricted:
        return
    tenant = values["tenant"]
    if values.get("execution_ids"):
        for ex_id in values["execution_ids"]:
            found = st.store.execution_namespace(ex_id)
            access.require("KILL_SWITCH", action, found[1] if found and found[0] == tenant else None, tenant)
        return
    access.require("KILL_SWITCH", action, values.get("namespace"), tenant)


def _notify(st: ServerState) -> None:
    """Take the change into account in this process now, and wake the executor (here or over the store)."""
    from roost.engine.queue import Message

    st.engine.kill_switches.refresh(force=True)
    try:
        st.engine.queue.put(Message("switches", ""))
    except Exception:  # the executor still sees it within a second through the store's counter
        pass


def _audit_detail(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "evaluationType": row["type"], "namespace": row.get("namespace"),
            "flowId": row.get("flow_id")}  # fmt: skip


def _who(access: Access) -> str | None:
    principal = access.principal
    return getattr(principal, "id", None) or (str(principal) if principal else None)


# -- the operations (the API's routes and the UI's pages call these) ------------------------------------------
def create_switch(st: ServerState, access: Access, body: Any) -> dict[str, Any]:
    values = parse_switch(st, body)
    _require(access, st, "CREATE", values)
    row = st.store.kill_switches.create(new_id(), values, _who(access))
    st.audit.record(
        "CREATE", "KILL_SWITCH", tenant=row["tenant"], detail=_audit_detail(row), after=switch_json(row)
    )
    _notify(st)
    return switch_json(row)


def visible_switches(st: ServerState, access: Access, tenant: str | None = None) -> list[dict[str, Any]]:
    """Every switch the principal may read (of ``tenant``, or of every tenant), newest first."""
    return [switch_json(row) for row in st.store.kill_switches.list()
            if (tenant is None or row["tenant"] == tenant)
            and access.can("KILL_SWITCH", "READ", row.get("namespace"), row["tenant"])]  # fmt: skip


def existing_switch(st: ServerState, access: Access, switch_id: str, action: str) -> dict[str, Any]:
    """A stored switch the principal may ``action``: 403 when it may read it but not that, else 404."""
    row = st.store.kill_switches.get(switch_id) if len(switch_id) <= 32 else None
    if row is None:
        raise not_found(f"kill switch {switch_id} not found")
    try:
        _require(access, st, action, row)
    except ApiError:
        if action != "READ" and access.can("KILL_SWITCH", "READ", row.get("namespace"), row["tenant"]):
            raise
        raise not_found(f"kill switch {switch_id} not found") from None  # not even its existence is told
    return row


def update_switch(st: ServerState, access: Access, switch_id: str, body: Any) -> dict[str, Any]:
    before = existing_switch(st, access, switch_id, "UPDATE")
    if status(before) == "ARCHIVED":
        raise conflict(f"kill switch {switch_id} is archived ({'deleted' if before.get('deleted') else 'ended'}); "
                       "create a new one")  # fmt: skip
    values = parse_switch(st, body)
    _require(access, st, "UPDATE", values)
    row = st.store.kill_switches.update(switch_id, values, _who(access))
    if row is None:
        raise conflict(f"kill switch {switch_id} was archived meanwhile; create a new one")
    st.audit.record("UPDATE", "KILL_SWITCH", tenant=row["tenant"], detail=_audit_detail(row),
                    before=switch_json(before), after=switch_json(row))  # fmt: skip
    _notify(st)
    return switch_json(row)


def delete_switch(st: ServerState, access: Access, switch_id: str) -> None:
    """Soft delete: it stops acting and stays listed, archived (deleting it again changes nothing)."""
    before = existing_switch(st, access, switch_id, "DELETE")
    if st.store.kill_switches.delete(switch_id, _who(access)):
        after = st.store.kill_switches.get(switch_id) or before
        st.audit.record("DELETE", "KILL_SWITCH", tenant=before["tenant"], detail=_audit_detail(before),
                        before=switch_json(before), after=switch_json(after))  # fmt: skip
        _notify(st)


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise bad_request("the body is not valid JSON") from None


# -- the API --------------------------------------------------------------------------------------------------
@router.post(P, operation_id="createKillSwitch", summary="Create a kill switch", openapi_extra=BODY,
             responses={200: {"model": KillSwitch}, 403: {"model": models.ErrorBody}})  # fmt: skip
async def create(request: Request) -> JSONResponse:
    st = state_of(request)
    body = _body(await request.body())
    return JSONResponse(await blocking(create_switch, st, access_of(request), body))


@router.get(P + "/search", operation_id="searchKillSwitches", summary="Every kill switch (archived ones included)",
            responses={200: {"model": list[KillSwitch]}})  # fmt: skip
def search(request: Request, status_: Annotated[list[str] | None, Query(alias="status", description="SCHEDULED, ACTIVE, DISABLED, ARCHIVED")] = None,
           tenantId: str | None = None) -> JSONResponse:  # noqa: N803  # fmt: skip
    wanted = {s.upper() for v in status_ or [] for s in v.split(",") if s}
    found = visible_switches(state_of(request), access_of(request), tenantId or None)
    return JSONResponse([s for s in found if not wanted or s["status"] in wanted])


@router.get(
    P + "/{id}", operation_id="getKillSwitch", summary="A kill switch", responses={200: {"model": KillSwitch}}
)
def get(request: Request, id: str) -> JSONResponse:
    return JSONResponse(switch_json(existing_switch(state_of(request), access_of(request), id, "READ")))


@router.put(P + "/{id}", operation_id="updateKillSwitch", summary="Update a kill switch (not an archived one)",
            openapi_extra=BODY, responses={200: {"model": KillSwitch}, 409: {"model": models.ErrorBody}})  # fmt: skip
async def update(request: Request, id: str) -> JSONResponse:
    st = state_of(request)
    body = _body(await request.body())
    return JSONResponse(await blocking(update_switch, st, access_of(request), id, body))


@router.delete(P + "/{id}", operation_id="deleteKillSwitch", summary="Delete a kill switch (soft: it stays listed, archived)",
               responses={200: {"description": "Deleted"}})  # fmt: skip
def delete(request: Request, id: str) -> Response:
    delete_switch(state_of(request), access_of(request), id)
    return Response(status_code=200)


def banners(st: ServerState, tenant: str, namespace: str | None = None, flow_id: str | None = None,
            execution_id: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The active switches to announce on a page of ``tenant``: tenant-wide ones on every page; a
    namespace's on the pages of that namespace and its children; a flow's on that flow's pages; an
    execution list's on those executions' pages. Strongest first (IGNORE, KILL, CANCEL)."""
    guard = st.engine.kill_switches
    guard.refresh()
    now = time.time()
    shown: list[Switch] = []
    for sw in guard.current:
        if sw.tenant != tenant or not sw.active(now):
            continue
        if sw.execution_ids:
            if execution_id is not None and execution_id in sw.execution_ids:
                shown.append(sw)
        elif sw.flow_id is not None:
            if namespace == sw.namespace and flow_id == sw.flow_id:
                shown.append(sw)
        elif sw.namespace is not None:
            if namespace is not None and (
                namespace == sw.namespace or namespace.startswith(sw.namespace + ".")
            ):
                shown.append(sw)
        else:
            shown.append(sw)
    order = {"IGNORE": 0, "KILL": 1, "CANCEL": 2}
    shown.sort(key=lambda s: (order.get(s.type, 3), s.start))
    return [{"id": s.id, "name": s.name, "evaluationType": s.type, "scope": s.scope, "description": s.description,
             "level": "EXECUTION" if s.execution_ids else "FLOW" if s.flow_id else "NAMESPACE" if s.namespace else "TENANT",
             "namespace": s.namespace, "flowId": s.flow_id, "startDate": _iso(s.start), "endDate": _iso(s.end)}
            for s in shown]  # fmt: skip


@router.get("/api/v1/{tenant}/kill-switches/banners", operation_id="killSwitchBanners",
            summary="Active kill switches to announce on a page (the whole tenant, or a namespace, flow or execution)",
            responses={200: {"model": list[Banner]}})  # fmt: skip
def banners_route(
    request: Request,
    tenant: str,
    namespace: str | None = None,
    flowId: str | None = None,  # noqa: N803
    executionId: str | None = None,
) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    found = banners(st, st.tenant(tenant), namespace, flowId, executionId)
    return JSONResponse([{k: v for k, v in b.items() if v is not None} for b in found])


__all__ = [
    "KillSwitch",
    "banners",
    "create_switch",
    "delete_switch",
    "existing_switch",
    "parse_switch",
    "router",
    "status",
    "switch_json",
    "update_switch",
    "visible_switches",
]
