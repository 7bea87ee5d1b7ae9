"""Triggers: search (the flows' triggers with their state), enable/disable, unlock, restart, delete, backfills.

A trigger's state (its context: next date, lock, backfill...) lives in the store's ``triggers`` table,
written by the scheduler; these routes change it and the scheduler reads it on its next pass. Bulk
routes take triggers (``.../by-triggers``, a list of ``{namespace, flowId, triggerId}``) or the search
filters (``.../by-query``) and answer ``{"count": n}``: the triggers the action applied to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from roost.server import models
from roost.server.access import access_of
from roost.server.errors import ApiError, bad_request, not_found
from roost.server.filters import Filter, from_query_filters, match_text, page_slice, parse_filters
from roost.server.routes.common import TENANT_SCOPED, state_of
from roost.server.routing import SegmentRoute
from roost.server.state import ServerState

router = APIRouter(
    tags=["Triggers"], responses=models.ERRORS, dependencies=TENANT_SCOPED, route_class=SegmentRoute
)
P = "/api/v1/{tenant}/triggers"
Page = Annotated[int, Query(ge=1, le=100000)]
Size = Annotated[int, Query(ge=1, le=10000)]
# bookkeeping kept out of the API's trigger context: a polling trigger's own state (a cursor, possibly
# large) and the executions it decided that are not started yet
_STATE_KEYS = ("disabled", "nextDate", "namespace", "flowId", "triggerId", "state", "pending")
FIELDS = (
    "q",
    "namespace",
    "flowId",
    "triggerId",
    "scope",
    "workerId",
    "startDate",
    "endDate",
    "triggerState",
)
ONE: dict[int | str, dict[str, Any]] = {200: {"model": models.TriggerContext}}
BULK: dict[int | str, dict[str, Any]] = {200: {"model": models.BulkResponse}}
LOCK_KEYS = ("executionId", "evaluateRunningDate", "workerId")
FILTERS_BODY = {"type": "object", "properties": {"filters": {"type": "array", "items": {
    "type": "object", "properties": {"field": {"type": "string"}, "operation": {"type": "string"}, "value": {}}}}}}  # fmt: skip


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _context(tenant: str, namespace: str, flow_id: str, trigger_id: str, stored: dict[str, Any] | None,
             flow_date: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Kestra's trigger context. ``date`` is always set: the last date the trigger fired for, else the
    last change of its state, else the deployment of the flow that declares it."""
    stored = stored or {}
    out: dict[str, Any] = {k: v for k, v in stored.items() if k not in _STATE_KEYS and v is not None}
    out.update(tenantId=tenant, namespace=namespace, flowId=flow_id, triggerId=trigger_id,
               disabled=bool(stored.get("disabled", False)))  # fmt: skip
    nxt = _iso(stored.get("nextDate")) or _iso(stored.get("nextExecutionDate"))
    if nxt:
        out["nextExecutionDate"] = nxt
    date = out.get("date") or out.get("updatedDate") or flow_date
    out["date"] = _iso(date) or _iso(datetime.now(UTC).timestamp())
    return out


def _flow_dates(st: ServerState, tenant: str) -> dict[tuple[str, str], float]:
    """When each flow's latest revision was saved."""
    from roost.store.db import flows

    with st.store.engine.connect() as conn:
        rows = conn.execute(sa.select(flows.c.namespace, flows.c.id, sa.func.max(flows.c.updated))
                            .where(flows.c.tenant == tenant).group_by(flows.c.namespace, flows.c.id)).all()  # fmt: skip
    return {(r[0], r[1]): float(r[2]) for r in rows}


def _all(
    st: ServerState, tenant: str, namespace: str | None = None, flow_id: str | None = None
) -> list[dict[str, Any]]:
    stored = {
        (t["namespace"], t["flowId"], t["triggerId"]): t for t in st.store.list_triggers(tenant, namespace)
    }
    dates = _flow_dates(st, tenant)
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
            ctx = _context(tenant, ns, fid, trig.id, stored.get((ns, fid, trig.id)), dates.get((ns, fid)))
            if trig.disabled:
                ctx["disabled"] = True
            out.append({"abstractTrigger": declared, "triggerContext": ctx, "_trigger": trig})
    return out


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _filtered(items: list[dict[str, Any]], filters: list[Filter]) -> list[dict[str, Any]]:
    for flt in filters:
        field = {
            "namespace": "namespace",
            "flowId": "flowId",
            "triggerId": "triggerId",
            "workerId": "workerId",
        }.get(flt.field)
        if field:
            items = [i for i in items if match_text(i["triggerContext"].get(field), flt.op, flt.value)]
        elif flt.field == "q":
            items = [i for i in items if any(match_text(i["triggerContext"][k], "CONTAINS", flt.value)
                                             for k in ("namespace", "flowId", "triggerId"))]  # fmt: skip
        elif flt.field == "triggerState":
            want_disabled = str(flt.value).upper() == "DISABLED"
            items = [i for i in items if i["triggerContext"]["disabled"] == want_disabled]
        elif flt.field == "scope":
            wanted = {
                v.upper() for v in (flt.value if isinstance(flt.value, list) else str(flt.value).split(","))
            }
            items = [
                i
                for i in items
                if ("SYSTEM" if i["triggerContext"]["namespace"] == "system" else "USER") in wanted
            ]
    return items


def _query(request: Request, body_filters: list[models.QueryFilter] | None = None) -> list[Filter]:
    """The filters of a by-query request: ``filters[...]`` parameters, deprecated ``q``/``namespace``, a JSON body."""
    params = request.query_params
    filters = parse_filters(params.multi_items(), FIELDS)
    if params.get("q"):
        filters.append(Filter("q", "CONTAINS", params["q"]))
    if params.get("namespace"):
        filters.append(Filter("namespace", "PREFIX", params["namespace"]))
    if body_filters:
        filters += from_query_filters([f.model_dump() for f in body_filters], FIELDS)
    return filters


@router.get(P + "/search", operation_id="searchTriggers", summary="Search for triggers",
            responses={200: {"model": models.Paged[models.Triggers]}})  # fmt: skip
def search(request: Request, tenant: str, page: Page = 1, size: Size = 10,
           sort: Annotated[list[str] | None, Query()] = None) -> JSONResponse:  # fmt: skip
    st = state_of(request)
    tenant = st.tenant(tenant)
    items = access_of(request).filter(
        _filtered(_all(st, tenant), _query(request)),
        "FLOW",
        tenant,
        namespace=lambda i: i["triggerContext"]["namespace"],
    )
    desc = bool(sort) and (sort or [""])[0].endswith(":desc")
    items.sort(key=lambda i: (i["triggerContext"]["namespace"], i["triggerContext"]["flowId"], i["triggerContext"]["triggerId"]),
               reverse=desc)  # fmt: skip
    return JSONResponse({"results": [_public(i) for i in page_slice(items, page, size)], "total": len(items)})


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


def _update(st: ServerState, tenant: str, namespace: str, flow_id: str, trigger_id: str,
            change: Callable[[dict[str, Any], dict[str, Any]], None], *, disabled: bool | None = None) -> dict[str, Any]:  # fmt: skip
    """Apply ``change(data, item)`` to a trigger's stored state (``nextDate`` in ``data`` too); its new context."""
    item = _find(st, tenant, namespace, flow_id, trigger_id)
    stored = st.store.get_trigger(tenant, namespace, flow_id, trigger_id) or {}
    data = {k: v for k, v in stored.items() if k != "disabled"}
    change(data, item)
    next_date = data.pop("nextDate", None)
    st.store.put_trigger(tenant, namespace, flow_id, trigger_id, data, next_date,
                         disabled if disabled is not None else bool(stored.get("disabled", False)))  # fmt: skip
    after = _find(st, tenant, namespace, flow_id, trigger_id)["triggerContext"]
    st.audit.record("UPDATE", "TRIGGER", tenant=tenant, detail={"id": f"{namespace}.{flow_id}.{trigger_id}", "namespace": namespace,
                    "flowId": flow_id, "triggerId": trigger_id, "action": "SET_DISABLED" if disabled is not None else change.__name__.strip("_").upper()},
                    before=item["triggerContext"], after=after)  # fmt: skip
    return after


def _unlock(data: dict[str, Any], _item: dict[str, Any]) -> None:
    for key in LOCK_KEYS:
        data.pop(key, None)


def _restart(data: dict[str, Any], _item: dict[str, Any]) -> None:
    """Forget the lock, the last evaluation and the next date: the scheduler evaluates it afresh."""
    _unlock(data, _item)
    for key in ("date", "nextExecutionDate", "fingerprint"):
        data.pop(key, None)
    data["nextDate"] = None


@router.post(P + "/{namespace}/{flowId}/{triggerId}/unlock", operation_id="unlockTrigger", summary="Unlock a trigger",
             responses=ONE)  # fmt: skip
def unlock(request: Request, tenant: str, namespace: str, flowId: str, triggerId: str) -> JSONResponse:  # noqa: N803
    """Forget the execution a trigger waits for, so that it may fire again."""
    st = state_of(request)
    return JSONResponse(_update(st, st.tenant(tenant), namespace, flowId, triggerId, _unlock))


@router.post(P + "/{namespace}/{flowId}/{triggerId}/restart", operation_id="restartTrigger", summary="Restart a trigger",
             responses=ONE)  # fmt: skip
def restart(request: Request, tenant: str, namespace: str, flowId: str, triggerId: str) -> JSONResponse:  # noqa: N803
    """Clear a stuck or failing trigger's state (lock, last evaluation, next date): it is evaluated again from now."""
    st = state_of(request)
    return JSONResponse(_update(st, st.tenant(tenant), namespace, flowId, triggerId, _restart))


def _delete_state(st: ServerState, tenant: str, namespace: str, flow_id: str, trigger_id: str) -> bool:
    from roost.store.db import triggers

    with st.store.write_lock, st.store.engine.begin() as conn:
        deleted = conn.execute(triggers.delete().where(
            triggers.c.tenant == tenant, triggers.c.namespace == namespace, triggers.c.flow_id == flow_id,
            triggers.c.trigger_id == trigger_id)).rowcount  # fmt: skip
    if deleted:
        st.audit.record("DELETE", "TRIGGER", tenant=tenant, detail={"id": f"{namespace}.{flow_id}.{trigger_id}",
                        "namespace": namespace, "flowId": flow_id, "triggerId": trigger_id}, before={"state": "stored"}, after=None)  # fmt: skip
    return bool(deleted)


@router.delete(P + "/{namespace}/{flowId}/{triggerId}", operation_id="deleteTrigger", summary="Delete a trigger",
               responses=ONE)  # fmt: skip
def delete(request: Request, tenant: str, namespace: str, flowId: str, triggerId: str) -> JSONResponse:  # noqa: N803
    """Delete the trigger's state (its context): the trigger itself stays in the flow and starts afresh."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    _find(st, tenant, namespace, flowId, triggerId)
    _delete_state(st, tenant, namespace, flowId, triggerId)
    return JSONResponse(_find(st, tenant, namespace, flowId, triggerId)["triggerContext"])


# -- update: disable, backfill -------------------------------------------------------------------------------------------
def _parse_date(value: Any, what: str) -> datetime:
    try:
        when = (
            value
            if isinstance(value, datetime)
            else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        )
    except ValueError:
        raise bad_request(f"backfill.{what}: {value!r} is not an ISO-8601 date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _set_backfill(body: dict[str, Any]) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def backfill(data: dict[str, Any], item: dict[str, Any]) -> None:
        trig = item["_trigger"]
        if not hasattr(trig, "next_after"):
            raise bad_request(f"trigger {trig.id} is a {trig.type}: only Schedule triggers backfill")
        if not isinstance(body, dict) or not body.get("start"):
            raise bad_request("backfill.start is required")
        start = _parse_date(body["start"], "start")
        end = _parse_date(body["end"], "end") if body.get("end") else None
        if end is not None and end < start:
            raise bad_request("backfill.end is before backfill.start")
        inputs = body.get("inputs")
        if inputs is not None and not isinstance(inputs, dict):
            raise bad_request("backfill.inputs must be an object of inputs")
        labels = body.get("labels") or []
        if isinstance(labels, dict):
            labels = [{"key": str(k), "value": str(v)} for k, v in labels.items()]
        if not isinstance(labels, list) or not all(isinstance(x, dict) and "key" in x for x in labels):
            raise bad_request("backfill.labels must be a list of {key, value}")
        iso = _iso
        data["backfill"] = {"start": iso(start.timestamp()), "end": iso(end.timestamp()) if end else None,
                            "currentDate": iso(start.timestamp()), "paused": False, "inputs": inputs,
                            "labels": [{"key": str(x["key"]), "value": str(x.get("value"))} for x in labels],
                            "previousNextExecutionDate": item["triggerContext"].get("nextExecutionDate")}  # fmt: skip

    return backfill


def _backfill_paused(paused: bool) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def pause_backfill(data: dict[str, Any], _item: dict[str, Any]) -> None:
        if not data.get("backfill"):
            raise bad_request("No backfill found")
        data["backfill"] = {**data["backfill"], "paused": paused}

    return pause_backfill


def _backfill_delete(data: dict[str, Any], _item: dict[str, Any]) -> None:
    if not data.get("backfill"):
        raise bad_request("No backfill found")
    del data["backfill"]


@router.put(
    P,
    operation_id="updateTrigger",
    summary="Update a trigger: disable it, or start a backfill",
    responses=ONE,
)
def update(request: Request, tenant: str, body: models.TriggerContext) -> JSONResponse:
    """With ``backfill`` (``start``, optional ``end``, ``inputs``, ``labels``) a Schedule trigger replays its past
    dates; otherwise ``disabled`` is applied."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    access_of(request).require("FLOW", "UPDATE", body.namespace, tenant)
    if body.backfill is not None:
        change = _set_backfill(body.backfill)
        return JSONResponse(_update(st, tenant, body.namespace, body.flowId, body.triggerId, change))
    return JSONResponse(_update(st, tenant, body.namespace, body.flowId, body.triggerId, lambda d, i: None,
                                disabled=body.disabled))  # fmt: skip


@router.put(P + "/backfill/pause", operation_id="pauseBackfill", summary="Pause a backfill", responses=ONE)
def pause_backfill(request: Request, tenant: str, body: models.TriggerRef) -> JSONResponse:
    st = state_of(request)
    return JSONResponse(
        _update(st, st.tenant(tenant), body.namespace, body.flowId, body.triggerId, _backfill_paused(True))
    )


@router.put(
    P + "/backfill/unpause", operation_id="unpauseBackfill", summary="Unpause a backfill", responses=ONE
)
def unpause_backfill(request: Request, tenant: str, body: models.TriggerRef) -> JSONResponse:
    st = state_of(request)
    return JSONResponse(
        _update(st, st.tenant(tenant), body.namespace, body.flowId, body.triggerId, _backfill_paused(False))
    )


@router.post(
    P + "/backfill/delete", operation_id="deleteBackfill", summary="Delete a backfill", responses=ONE
)
def delete_backfill(request: Request, tenant: str, body: models.TriggerRef) -> JSONResponse:
    st = state_of(request)
    return JSONResponse(
        _update(st, st.tenant(tenant), body.namespace, body.flowId, body.triggerId, _backfill_delete)
    )


# -- bulk ------------------------------------------------------------------------------------------------------------------
def _each(
    st: ServerState, tenant: str, refs: list[tuple[str, str, str]], action: Callable[[str, str, str], Any]
) -> JSONResponse:
    """Apply ``action`` to each trigger; one that does not exist or refuses it (400) is skipped, as Kestra does."""
    count = 0
    for ns, fid, tid in refs:
        try:
            action(ns, fid, tid)
        except ApiError as exc:
            if exc.status not in (400, 404):
                raise
            continue
        count += 1
    return JSONResponse({"count": count})


def _refs(body: list[models.TriggerRef]) -> list[tuple[str, str, str]]:
    return [(t.namespace, t.flowId, t.triggerId) for t in body]


def _matching(st: ServerState, tenant: str, request: Request, body_filters: list[models.QueryFilter] | None = None,
              keep: Callable[[dict[str, Any]], bool] = lambda ctx: True) -> list[tuple[str, str, str]]:  # fmt: skip
    items = _filtered(_all(st, tenant), _query(request, body_filters))
    return [
        (c["namespace"], c["flowId"], c["triggerId"]) for c in (i["triggerContext"] for i in items) if keep(c)
    ]


@router.post(P + "/set-disabled/by-triggers", operation_id="disabledTriggersByIds", summary="Disable or enable triggers",
             responses=BULK)  # fmt: skip
def set_disabled(request: Request, tenant: str, body: models.SetDisabledRequest) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    access = access_of(request)
    for ref in body.triggers:
        access.require("FLOW", "UPDATE", ref.namespace, tenant)
    for ref in body.triggers:
        _update(
            st, tenant, ref.namespace, ref.flowId, ref.triggerId, lambda d, i: None, disabled=body.disabled
        )
    return JSONResponse({"count": len(body.triggers)})


@router.post(P + "/set-disabled/by-query", operation_id="disabledTriggersByQuery", responses=BULK,
             summary="Disable/enable triggers by query parameters")  # fmt: skip
def set_disabled_by_query(request: Request, tenant: str, disabled: bool = True) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _each(st, tenant, _matching(st, tenant, request),
                 lambda ns, fid, tid: _update(st, tenant, ns, fid, tid, lambda d, i: None, disabled=disabled))  # fmt: skip


def _locked(ctx: dict[str, Any]) -> bool:
    return any(ctx.get(k) for k in ("executionId", "evaluateRunningDate"))


@router.post(
    P + "/unlock/by-triggers",
    operation_id="unlockTriggersByIds",
    summary="Unlock given triggers",
    responses=BULK,
)
def unlock_by_triggers(request: Request, tenant: str, body: list[models.TriggerRef]) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _each(st, tenant, _refs(body), lambda ns, fid, tid: _update(st, tenant, ns, fid, tid, _unlock))


@router.post(P + "/unlock/by-query", operation_id="unlockTriggersByQuery", summary="Unlock triggers by query parameters",
             responses=BULK)  # fmt: skip
def unlock_by_query(request: Request, tenant: str) -> JSONResponse:
    """Only the locked ones (waiting for an execution) count."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _each(st, tenant, _matching(st, tenant, request, keep=_locked),
                 lambda ns, fid, tid: _update(st, tenant, ns, fid, tid, _unlock))  # fmt: skip


def _delete_one(st: ServerState, tenant: str) -> Callable[[str, str, str], None]:
    def act(ns: str, fid: str, tid: str) -> None:
        if not _delete_state(st, tenant, ns, fid, tid):
            raise not_found(f"no state for trigger {tid} of {ns}.{fid}")

    return act


@router.delete(
    P + "/delete/by-triggers",
    operation_id="deleteTriggersByIds",
    summary="Delete given triggers",
    responses=BULK,
)
def delete_by_triggers(request: Request, tenant: str, body: list[models.TriggerRef]) -> JSONResponse:
    """Deletes their state; those with none are not counted."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _each(st, tenant, _refs(body), _delete_one(st, tenant))


@router.delete(P + "/delete/by-query", operation_id="deleteTriggersByQuery", summary="Delete triggers by query parameters",
               responses=BULK, openapi_extra={"requestBody": {"required": False, "content": {
                   "application/json": {"schema": FILTERS_BODY}}}})  # fmt: skip
async def delete_by_query(request: Request, tenant: str) -> JSONResponse:
    """Filters as ``filters[...]`` parameters, or Kestra's body ``{"filters": [{"field", "operation", "value"}]}``."""
    from roost.server.routes.common import blocking

    st = state_of(request)
    tenant = st.tenant(tenant)
    body_filters = await _body_filters(request)
    return await blocking(
        lambda: _each(st, tenant, _matching(st, tenant, request, body_filters), _delete_one(st, tenant))
    )


async def _body_filters(request: Request) -> list[models.QueryFilter]:
    raw = await request.body()
    if not raw.strip():
        return []
    from pydantic import ValidationError

    try:
        return models.FiltersBody.model_validate_json(raw).filters
    except ValidationError as exc:
        raise bad_request(
            f'the body must be {{"filters": [{{"field", "operation", "value"}}]}}: {exc.errors()[0]["msg"]}'
        ) from None


def _backfills(action: Callable[[dict[str, Any], dict[str, Any]], None]) -> Any:
    def by_triggers(request: Request, tenant: str, body: list[models.TriggerRef]) -> JSONResponse:
        st = state_of(request)
        tenant = st.tenant(tenant)
        return _each(st, tenant, _refs(body), lambda ns, fid, tid: _update(st, tenant, ns, fid, tid, action))

    def by_query(request: Request, tenant: str) -> JSONResponse:
        st = state_of(request)
        tenant = st.tenant(tenant)
        return _each(st, tenant, _matching(st, tenant, request, keep=lambda ctx: bool(ctx.get("backfill"))),
                     lambda ns, fid, tid: _update(st, tenant, ns, fid, tid, action))  # fmt: skip

    return by_triggers, by_query


for _name, _op, _action, _summary in (("pause", "pauseBackfill", _backfill_paused(True), "Pause backfill for given triggers"),
                                      ("unpause", "unpauseBackfill", _backfill_paused(False), "Unpause backfill for given triggers"),
                                      ("delete", "deleteBackfill", _backfill_delete, "Delete backfill for given triggers")):  # fmt: skip
    _by_triggers, _by_query = _backfills(_action)
    router.add_api_route(P + f"/backfill/{_name}/by-triggers", _by_triggers, methods=["POST"], operation_id=_op + "ByIds",
                         summary=_summary, responses=BULK)  # fmt: skip
    router.add_api_route(P + f"/backfill/{_name}/by-query", _by_query, methods=["POST"], operation_id=_op + "ByQuery",
                         summary=_summary + " (by query parameters)", responses=BULK)  # fmt: skip


__all__ = ["router"]
