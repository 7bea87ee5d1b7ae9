"""Triggers: search (the flows' triggers with their state), enable/disable, unlock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from roost.server import models
from roost.server.access import access_of
from roost.server.errors import not_found
from roost.server.filters import match_text, page_slice, parse_filters
from roost.server.routes.common import state_of
from roost.server.state import ServerState

router = APIRouter(tags=["Triggers"], responses=models.ERRORS)
P = "/api/v1/{tenant}/triggers"
Page = Annotated[int, Query(ge=1, le=100000)]
Size = Annotated[int, Query(ge=1, le=10000)]
_STATE_KEYS = ("disabled", "nextDate", "namespace", "flowId", "triggerId")


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _context(
    tenant: str, namespace: str, flow_id: str, trigger_id: str, stored: dict[str, Any] | None
) -> dict[str, Any]:
    stored = stored or {}
    out: dict[str, Any] = {k: v for k, v in stored.items() if k not in _STATE_KEYS and v is not None}
    out.update(tenantId=tenant, namespace=namespace, flowId=flow_id, triggerId=trigger_id,
               disabled=bool(stored.get("disabled", False)))  # fmt: skip
    nxt = _iso(stored.get("nextDate")) or _iso(stored.get("nextExecutionDate"))
    if nxt:
        out["nextExecutionDate"] = nxt
    if "date" in out:
        out["date"] = _iso(out["date"])
    return out


def _all(
    st: ServerState, tenant: str, namespace: str | None = None, flow_id: str | None = None
) -> list[dict[str, Any]]:
    stored = {
        (t["namespace"], t["flowId"], t["triggerId"]): t for t in st.store.list_triggers(tenant, namespace)
    }
    out = []
    for ns, fid, rev, _src in st.store.list_flows(tenant, namespace, prefix=True):
        if flow_id is not None and fid != flow_id:
            continue
        try:
            flow = st.engine.flow(tenant, ns, fid, rev)
        except Exception:
            continue
        for trig in flow.triggers:
            declared = trig.model_dump(by_alias=True, mode="json", exclude_none=True)
            ctx = _context(tenant, ns, fid, trig.id, stored.get((ns, fid, trig.id)))
            if trig.disabled:
                ctx["disabled"] = True
            out.append({"abstractTrigger": declared, "triggerContext": ctx})
    return out


@router.get(P + "/search", operation_id="searchTriggers", summary="Search for triggers",
            responses={200: {"model": models.Paged[models.Triggers]}})  # fmt: skip
def search(request: Request, tenant: str, page: Page = 1, size: Size = 10,
           sort: Annotated[list[str] | None, Query()] = None) -> JSONResponse:  # fmt: skip
    st = state_of(request)
    tenant = st.tenant(tenant)
    filters = parse_filters(request.query_params.multi_items(), ("q", "namespace", "flowId", "triggerId", "scope",
                                                                 "workerId", "startDate", "endDate", "triggerState"))  # fmt: skip
    items = access_of(request).filter(
        _all(st, tenant), "FLOW", tenant, namespace=lambda i: i["triggerContext"]["namespace"]
    )
    for flt in filters:
        field = {"namespace": "namespace", "flowId": "flowId", "triggerId": "triggerId"}.get(flt.field)
        if field:
            items = [i for i in items if match_text(i["triggerContext"][field], flt.op, flt.value)]
        elif flt.field == "q":
            items = [i for i in items if any(match_text(i["triggerContext"][k], "CONTAINS", flt.value)
                                             for k in ("namespace", "flowId", "triggerId"))]  # fmt: skip
        elif flt.field == "triggerState":
            want_disabled = str(flt.value).upper() == "DISABLED"
            items = [i for i in items if i["triggerContext"]["disabled"] == want_disabled]
    desc = bool(sort) and (sort or [""])[0].endswith(":desc")
    items.sort(key=lambda i: (i["triggerContext"]["namespace"], i["triggerContext"]["flowId"], i["triggerContext"]["triggerId"]),
               reverse=desc)  # fmt: skip
    return JSONResponse({"results": page_slice(items, page, size), "total": len(items)})


@router.get(P + "/{namespace}/{flowId}", operation_id="searchTriggersForFlow", summary="Triggers of a flow",
            responses={200: {"model": models.Paged[models.TriggerContext]}})  # fmt: skip
def for_flow(request: Request, tenant: str, namespace: str, flowId: str, page: Page = 1, size: Size = 10,  # noqa: N803
             q: str | None = None) -> JSONResponse:  # fmt: skip
    st = state_of(request)
    tenant = st.tenant(tenant)
    items = [
        i["triggerContext"]
        for i in _all(st, tenant, namespace, flowId)
        if i["triggerContext"]["namespace"] == namespace
    ]
    if q:
        items = [i for i in items if q.lower() in i["triggerId"].lower()]
    return JSONResponse({"results": page_slice(items, page, size), "total": len(items)})


def _find(st: ServerState, tenant: str, namespace: str, flow_id: str, trigger_id: str) -> dict[str, Any]:
    for item in _all(st, tenant, namespace, flow_id):
        ctx = item["triggerContext"]
        if ctx["namespace"] == namespace and ctx["triggerId"] == trigger_id:
            return item
    raise not_found(f"no trigger {trigger_id} on flow {namespace}.{flow_id}")


def _set(st: ServerState, tenant: str, namespace: str, flow_id: str, trigger_id: str, *, disabled: bool | None = None,
         unlock: bool = False) -> dict[str, Any]:  # fmt: skip
    before = _find(st, tenant, namespace, flow_id, trigger_id)["triggerContext"]
    stored = st.store.get_trigger(tenant, namespace, flow_id, trigger_id) or {}
    data = {k: v for k, v in stored.items() if k not in ("disabled", "nextDate")}
    if unlock:
        data.pop("executionId", None)
        data.pop("evaluateRunningDate", None)
    st.store.put_trigger(tenant, namespace, flow_id, trigger_id, data, stored.get("nextDate"),
                         disabled if disabled is not None else bool(stored.get("disabled", False)))  # fmt: skip
    after = _find(st, tenant, namespace, flow_id, trigger_id)["triggerContext"]
    st.audit.record("UPDATE", "TRIGGER", tenant=tenant, detail={"id": f"{namespace}.{flow_id}.{trigger_id}", "namespace": namespace,
                    "flowId": flow_id, "triggerId": trigger_id, "action": "UNLOCK" if unlock else "SET_DISABLED"},
                    before=before, after=after)  # fmt: skip
    return after


@router.post(P + "/{namespace}/{flowId}/{triggerId}/unlock", operation_id="unlockTrigger", summary="Unlock a trigger",
             responses={200: {"model": models.TriggerContext}})  # fmt: skip
def unlock(request: Request, tenant: str, namespace: str, flowId: str, triggerId: str) -> JSONResponse:  # noqa: N803
    """Forget the execution a trigger waits for, so that it may fire again."""
    st = state_of(request)
    return JSONResponse(_set(st, st.tenant(tenant), namespace, flowId, triggerId, unlock=True))


@router.put(P, operation_id="updateTrigger", summary="Update a trigger's state (disabled)",
            responses={200: {"model": models.TriggerContext}})  # fmt: skip
def update(request: Request, tenant: str, body: models.TriggerContext) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    access_of(request).require("FLOW", "UPDATE", body.namespace, tenant)
    return JSONResponse(_set(st, tenant, body.namespace, body.flowId, body.triggerId, disabled=body.disabled))


@router.post(P + "/set-disabled/by-triggers", operation_id="disabledTriggersByIds", summary="Disable or enable triggers",
             responses={200: {"model": models.BulkResponse}})  # fmt: skip
def set_disabled(request: Request, tenant: str, body: models.SetDisabledRequest) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    access = access_of(request)
    for ref in body.triggers:
        access.require("FLOW", "UPDATE", ref.namespace, tenant)
    for ref in body.triggers:
        _set(st, tenant, ref.namespace, ref.flowId, ref.triggerId, disabled=body.disabled)
    return JSONResponse({"count": len(body.triggers)})
