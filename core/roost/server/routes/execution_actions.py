"""Executions, acted on: replay (with new inputs, from a task run), force-run, unqueue, and every bulk action.

A bulk action takes ids (``.../by-ids``, a JSON list) or the search filters (``.../by-query``, the same
``filters[field][OP]=value`` parameters and deprecated ones as ``GET /executions/search``). As Kestra,
it first checks every execution: when one is missing or in the wrong state nothing is done and the
answer is 422 with ``invalids`` (each refused id and why); otherwise ``{"count": n}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from roost.engine.engine import FlowNotFound
from roost.engine.inputs import InputsInvalid
from roost.engine.model import FAILED, PAUSED, QUEUED, RUNNING, TERMINAL, Execution
from roost.engine.replay import REPLAYED_LABEL, ReplayError, replay
from roost.flow.build import FlowInvalid
from roost.server import models
from roost.server.access import Access, access_of
from roost.server.errors import ApiError, bad_request, conflict, not_found, unprocessable
from roost.server.filters import Filter, parse_filters
from roost.server.queries import EXECUTION_FIELDS, search_executions
from roost.server.routes.common import TENANT_SCOPED, blocking, multipart_body, state_of
from roost.server.routing import SegmentRoute
from roost.server.state import ServerState
from roost.store.storage import StorageError, execution_prefix

router = APIRouter(
    tags=["Executions"], responses=models.ERRORS, dependencies=TENANT_SCOPED, route_class=SegmentRoute
)
P = "/api/v1/{tenant}/executions"
RESTARTABLE = ("FAILED", "KILLED", "WARNING", "CANCELLED")
UNQUEUE_STATES = (RUNNING, "CANCELLED", FAILED)
BULK: dict[int | str, dict[str, Any]] = {
    200: {"model": models.BulkResponse},
    422: {"model": models.BulkErrorResponse},
}
ONE: dict[int | str, dict[str, Any]] = {200: {"model": models.Execution}, 409: {"model": models.ErrorBody},
                                         422: {"model": models.ErrorBody}}  # fmt: skip
Revision = Annotated[
    int | None, Query(ge=1, le=2**31 - 1, description="The flow revision to use for the new execution")
]
TaskRunId = Annotated[
    str | None, Query(description="Replay from this task run (it and what follows run again)")
]
Breakpoints = Annotated[str | None, Query(description="Accepted for compatibility: Roost has no breakpoints")]


# -- shared ---------------------------------------------------------------------------------------------------------
def load(st: ServerState, tenant: str, execution_id: str) -> Execution | None:
    loaded = st.store.load_execution(execution_id) if 0 < len(execution_id) <= 64 else None
    if loaded is None or (loaded[0].get("tenantId") or "main") != tenant:
        return None
    return Execution.from_dicts(*loaded)


def _existing(st: ServerState, tenant: str, execution_id: str) -> Execution:
    ex = load(st, tenant, execution_id)
    if ex is None:
        raise not_found(f"execution {execution_id} not found")
    return ex


def _shaped(st: ServerState, ex: Execution) -> dict[str, Any]:
    return st.shape_execution(ex.header_dict(), [tr.to_dict() for tr in ex.task_runs])


def bulk(st: ServerState, tenant: str, ids: list[str], action: str, refuse: Callable[[Execution], str | None],
         act: Callable[[Execution], None], access: Access | None = None) -> JSONResponse:  # fmt: skip
    """Check every execution first (Kestra: all or nothing), then act on each, each action audited.

    ``access``: the caller's rights, for routes whose rule lets a namespace-bound principal in: every
    execution's namespace is checked (403) before anything is done."""
    found: list[Execution] = []
    invalids: dict[str, str] = {}
    for execution_id in dict.fromkeys(ids):
        ex = load(st, tenant, execution_id)
        if ex is not None and access is not None:
            access.require("EXECUTION", "DELETE" if action == "delete" else "UPDATE", ex.namespace, tenant)
        reason = "execution not found" if ex is None else refuse(ex)
        if reason:
            invalids[execution_id] = reason
        elif ex is not None:
            found.append(ex)
    if invalids:
        return JSONResponse({"message": f"invalid bulk {action}", "invalids": invalids}, status_code=422)
    for ex in found:
        before = ex.state.current
        act(ex)
        audit(st, tenant, ex, action, before)
    return JSONResponse({"count": len(found)})


def audit(st: ServerState, tenant: str, ex: Execution, action: str, before: str, after: Any = None) -> None:
    """The audit entry of an action on one execution (as the single-execution routes record theirs)."""
    from roost.server.routes.executions import audit_execution

    shaped = {"id": ex.id, "tenantId": tenant, "namespace": ex.namespace, "flowId": ex.flow_id,
              "state": {"current": before}}  # fmt: skip
    kind = "DELETE" if action == "delete" else "UPDATE"
    audit_execution(st, shaped, action.upper().replace(" ", "_").replace("-", "_"), kind,
                    after=None if kind == "DELETE" else after)  # fmt: skip


def legacy_filters(request: Request) -> list[Filter]:
    """The search filters of a request: ``filters[...]`` and the deprecated plain parameters."""
    params = request.query_params
    filters = parse_filters(params.multi_items(), EXECUTION_FIELDS)
    if params.get("namespace"):
        filters.append(Filter("namespace", "PREFIX", params["namespace"]))
    if params.get("flowId"):
        filters.append(Filter("flowId", "EQUALS", params["flowId"]))
    if params.get("q"):
        filters.append(Filter("q", "EQUALS", params["q"]))
    states = [s for s in params.getlist("state") if s]
    if states:
        filters.append(Filter("state", "IN", states))
    labels = {}
    for item in params.getlist("labels"):
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise bad_request(f"label {item!r} must be key:value")
        labels[key] = value
    if labels:
        filters.append(Filter("labels", "EQUALS", labels))
    return filters


def query_ids(st: ServerState, tenant: str, request: Request) -> list[str]:
    filters = legacy_filters(request)
    ids: list[str] = []
    page = 1
    while True:
        found, total = search_executions(st.store, tenant, filters, page, 1000)
        ids += [d["id"] for d in found]
        if not found or len(ids) >= total:
            return ids
        page += 1


def _ids_body(body: list[str]) -> list[str]:
    if len(body) > 10000:
        raise bad_request("at most 10000 executions per bulk request")
    return body


Ids = list[str]


# -- replay ---------------------------------------------------------------------------------------------------------------
def do_replay(st: ServerState, tenant: str, execution_id: str, *, taskrun_id: str | None = None, revision: int | None = None,
              inputs: dict[str, Any] | None = None, latest: bool = False) -> dict[str, Any]:  # fmt: skip
    original = _existing(st, tenant, execution_id)
    ns, fid = original.namespace, original.flow_id
    try:
        original_flow = st.engine.flow(tenant, ns, fid, original.flow_revision)
        flow = (st.latest_flow(tenant, ns, fid) if latest
                else original_flow if revision is None else st.engine.flow(tenant, ns, fid, revision))  # fmt: skip
    except FlowNotFound as exc:
        raise not_found(str(exc)) from None
    except FlowInvalid as exc:
        raise unprocessable(f"flow {ns}.{fid} is stored but no longer valid: {exc}") from None
    if flow.disabled:
        raise conflict(f"flow {ns}.{fid} is disabled: it cannot be replayed")
    try:
        new = replay(st.engine, original, flow, original_flow, taskrun_id=taskrun_id, inputs=inputs)
    except ReplayError as exc:
        raise not_found(str(exc)) from None
    except InputsInvalid as exc:
        text = "; ".join(f"inputs.{k}: {v}" for k, v in exc.errors.items())
        raise unprocessable(f"Invalid inputs for flow {ns}.{fid}: {text}", inputs=exc.errors) from None
    if not st.executor_running:
        st.engine._waiters.pop(new.id, None)  # no executor in this process: nobody would release it
    if original.state.terminal() and original.label_map().get(REPLAYED_LABEL) != "true":
        header = original.header_dict()
        header["labels"] = [*original.labels, {"key": REPLAYED_LABEL, "value": "true"}]
        st.store.save_executions([(header, [])])
    audit(st, tenant, original, "replay", original.state.current, after={"replayedAs": new.id})
    return _shaped(st, new)


@router.post(P + "/{executionId}/replay", operation_id="replayExecution", responses=ONE,
             summary="Create a new execution from an old one and start it from a specified task run id")  # fmt: skip
def replay_execution(request: Request, tenant: str, executionId: str, taskRunId: TaskRunId = None,  # noqa: N803
                     revision: Revision = None, breakpoints: Breakpoints = None) -> JSONResponse:  # fmt: skip
    """The new execution keeps the original's inputs and labels (plus ``system.replay``); ``parentId`` is the original."""
    st = state_of(request)
    return JSONResponse(
        do_replay(st, st.tenant(tenant), executionId, taskrun_id=taskRunId, revision=revision)
    )


@router.post(P + "/{executionId}/replay-with-inputs", operation_id="replayExecutionWithinputs", responses=ONE,
             summary="Create a new execution from an old one, with new inputs", openapi_extra=multipart_body(False))  # fmt: skip
async def replay_with_inputs(request: Request, tenant: str, executionId: str, taskRunId: TaskRunId = None,  # noqa: N803
                             revision: Revision = None, breakpoints: Breakpoints = None) -> JSONResponse:  # fmt: skip
    """Inputs come as multipart parts (files as file parts), typed again against the flow; the others are the flow's defaults."""
    from roost.server.routes.executions import _check_file_inputs, _form_inputs

    st = state_of(request)
    tenant = st.tenant(tenant)
    inputs = await _form_inputs(request)

    def run() -> dict[str, Any]:
        original = _existing(st, tenant, executionId)
        try:
            _check_file_inputs(st.engine.flow(tenant, original.namespace, original.flow_id, revision or original.flow_revision),
                               inputs)  # fmt: skip
        except (FlowNotFound, FlowInvalid):
            pass  # do_replay reports it
        return do_replay(st, tenant, executionId, taskrun_id=taskRunId, revision=revision, inputs=inputs)

    return JSONResponse(await blocking(run))


# -- force-run, unqueue ----------------------------------------------------------------------------------------------------
async def _after(st: ServerState, tenant: str, execution_id: str, before: str) -> dict[str, Any]:
    """The execution once the executor took the message (its state moved), or as it is after a short wait."""
    current: dict[str, Any] = {}
    for _ in range(20):
        await asyncio.sleep(0.025)
        current = await blocking(st.execution_dict, tenant, execution_id)
        if current["state"]["current"] != before:
            break
    return current


@router.post(
    P + "/{executionId}/force-run",
    operation_id="forceRunExecution",
    responses=ONE,
    summary="Force run an execution",
)
async def force_run(request: Request, tenant: str, executionId: str) -> JSONResponse:  # noqa: N803
    """CREATED and QUEUED executions start now, whatever the concurrency limit; a PAUSED one resumes."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    ex = await blocking(_existing, st, tenant, executionId)
    if ex.state.terminal():
        raise conflict(
            f"execution {executionId} is {ex.state.current}: only a non terminated execution can be forced to run"
        )
    st.engine.force_run(executionId)
    current = await _after(st, tenant, executionId, ex.state.current)
    audit(st, tenant, ex, "force-run", ex.state.current, after={"state": current["state"]["current"]})
    return JSONResponse(current)


UnqueueState = Annotated[models.StateType | None, Query(description="RUNNING (default), CANCELLED or FAILED")]


def _unqueue_target(state: str | None) -> str:
    target = state or RUNNING
    if target not in UNQUEUE_STATES:
        raise bad_request(f"an unqueued execution moves to {', '.join(UNQUEUE_STATES)}, not {target}")
    return target


@router.post(
    P + "/{executionId}/unqueue",
    operation_id="unqueueExecution",
    responses=ONE,
    summary="Unqueue an execution",
)
async def unqueue(
    request: Request, tenant: str, executionId: str, state: UnqueueState = None
) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    target = _unqueue_target(state)
    ex = await blocking(_existing, st, tenant, executionId)
    if ex.state.current != QUEUED:
        raise conflict(
            f"execution {executionId} is {ex.state.current}: only a QUEUED execution can be unqueued"
        )
    st.engine.unqueue(executionId, target)
    current = await _after(st, tenant, executionId, QUEUED)
    audit(st, tenant, ex, "unqueue", QUEUED, after={"state": target})
    return JSONResponse(current)


# -- the actions, one execution at a time ------------------------------------------------------------------------------
def delete_one(st: ServerState, tenant: str, ex: Execution, delete_storage: bool = True) -> None:
    st.store.delete_execution(ex.id)  # its task runs and logs with it
    if delete_storage:
        try:
            st.engine.runtime(tenant).storage.delete_prefix(execution_prefix(ex.namespace, ex.flow_id, ex.id))
        except StorageError:
            pass


def change_status(st: ServerState, ex: Execution, status: str) -> None:
    ex.state.set(status)
    st.store.save_executions([(ex.header_dict(), [])])


def add_labels(st: ServerState, ex: Execution, labels: list[models.Label]) -> None:
    merged = ex.label_map()
    merged.update({lbl.key: lbl.value for lbl in labels})
    ex.labels = [{"key": k, "value": v} for k, v in merged.items()]
    st.store.save_executions([(ex.header_dict(), [])])


def _ended(ex: Execution) -> str | None:
    return None if ex.state.terminal() else "execution is not terminated"


def _running(ex: Execution) -> str | None:
    return "execution already finished" if ex.state.terminal() else None


# -- by ids and by query ----------------------------------------------------------------------------------------------------
def _delete(
    st: ServerState, tenant: str, ids: list[str], include_running: bool, delete_storage: bool
) -> JSONResponse:
    def refuse(ex: Execution) -> str | None:
        return None if include_running or ex.state.terminal() else "execution is not terminated"

    def act(ex: Execution) -> None:
        if (
            not ex.state.terminal()
        ):  # killed first, deleted once ended: the executor would write it back otherwise
            st.engine.kill(ex.id)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                current = load(st, tenant, ex.id)
                if current is None or current.state.terminal():
                    break
                time.sleep(0.05)
        delete_one(st, tenant, ex, delete_storage)

    return bulk(st, tenant, ids, "delete", refuse, act)


IncludeRunning = Annotated[
    bool, Query(description="Also delete executions that have not ended (killed first)")
]


@router.delete(
    P + "/by-ids", operation_id="deleteExecutionsByIds", summary="Delete a list of executions", responses=BULK
)
def delete_by_ids(request: Request, tenant: str, body: Ids, includeNonTerminated: IncludeRunning = False,  # noqa: N803
                  deleteLogs: bool = True, deleteMetrics: bool = True, deleteStorage: bool = True) -> JSONResponse:  # noqa: N803 # fmt: skip
    st = state_of(request)
    return _delete(st, st.tenant(tenant), _ids_body(body), includeNonTerminated, deleteStorage)


@router.delete(P + "/by-query", operation_id="deleteExecutionsByQuery", summary="Delete executions filter by query parameters",
               responses=BULK)  # fmt: skip
def delete_by_query(request: Request, tenant: str, includeNonTerminated: IncludeRunning = False,  # noqa: N803
                    deleteLogs: bool = True, deleteMetrics: bool = True, deleteStorage: bool = True) -> JSONResponse:  # noqa: N803 # fmt: skip
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _delete(st, tenant, query_ids(st, tenant, request), includeNonTerminated, deleteStorage)


def _kill(st: ServerState, tenant: str, ids: list[str], access: Access | None = None) -> JSONResponse:
    # as Kestra: no cascade
    return bulk(st, tenant, ids, "kill", _running, lambda ex: st.engine.kill(ex.id, cascade=False), access)


@router.delete(
    P + "/kill/by-ids",
    operation_id="killExecutionsByIds",
    summary="Kill a list of executions",
    responses=BULK,
)
def kill_by_ids(request: Request, tenant: str, body: Ids) -> JSONResponse:
    """Their subflow executions are not killed (as Kestra's bulk kill)."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _kill(
        st, tenant, _ids_body(body), access_of(request)
    )  # its rule lets namespace-bound principals in


@router.delete(P + "/kill/by-query", operation_id="killExecutionsByQuery", summary="Kill executions filter by query parameters",
               responses=BULK)  # fmt: skip
def kill_by_query(request: Request, tenant: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _kill(st, tenant, query_ids(st, tenant, request))


def _restart(st: ServerState, tenant: str, ids: list[str]) -> JSONResponse:
    def refuse(ex: Execution) -> str | None:
        return (
            None if ex.state.current in RESTARTABLE else f"execution is {ex.state.current}: not restartable"
        )

    return bulk(st, tenant, ids, "restart", refuse, lambda ex: st.engine.restart(ex.id))


@router.post(
    P + "/restart/by-ids",
    operation_id="restartExecutionsByIds",
    summary="Restart a list of executions",
    responses=BULK,
)
def restart_by_ids(request: Request, tenant: str, body: Ids) -> JSONResponse:
    st = state_of(request)
    return _restart(st, st.tenant(tenant), _ids_body(body))


@router.post(P + "/restart/by-query", operation_id="restartExecutionsByQuery", summary="Restart executions filter by query parameters",
             responses=BULK)  # fmt: skip
def restart_by_query(request: Request, tenant: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _restart(st, tenant, query_ids(st, tenant, request))


def _replay_many(st: ServerState, tenant: str, ids: list[str], latest: bool) -> JSONResponse:
    def act(ex: Execution) -> None:
        try:
            do_replay(st, tenant, ex.id, latest=latest)
        except ApiError:
            pass  # a flow deleted or disabled meanwhile: that one is not replayed

    return bulk(st, tenant, ids, "replay", lambda ex: None, act)


LatestRevision = Annotated[
    bool, Query(description="Replay on the flow's latest revision instead of the original one")
]


@router.post(P + "/replay/by-ids", operation_id="replayExecutionsByIds", responses=BULK,
             summary="Create new executions from old ones. Keep the flow revision")  # fmt: skip
def replay_by_ids(
    request: Request, tenant: str, body: Ids, latestRevision: LatestRevision = False
) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    return _replay_many(st, st.tenant(tenant), _ids_body(body), latestRevision)


@router.post(P + "/replay/by-query", operation_id="replayExecutionsByQuery", responses=BULK,
             summary="Create new executions from old ones filter by query parameters. Keep the flow revision")  # fmt: skip
def replay_by_query(request: Request, tenant: str, latestRevision: LatestRevision = False) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _replay_many(st, tenant, query_ids(st, tenant, request), latestRevision)


def _resume(st: ServerState, tenant: str, ids: list[str]) -> JSONResponse:
    def refuse(ex: Execution) -> str | None:
        return None if ex.state.current == PAUSED else "execution not in state PAUSED"

    return bulk(st, tenant, ids, "resume", refuse, lambda ex: st.engine.resume(ex.id))


@router.post(
    P + "/resume/by-ids",
    operation_id="resumeExecutionsByIds",
    summary="Resume a list of paused executions",
    responses=BULK,
)
def resume_by_ids(request: Request, tenant: str, body: Ids) -> JSONResponse:
    st = state_of(request)
    return _resume(st, st.tenant(tenant), _ids_body(body))


@router.post(P + "/resume/by-query", operation_id="resumeExecutionsByQuery", summary="Resume executions filter by query parameters",
             responses=BULK)  # fmt: skip
def resume_by_query(request: Request, tenant: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _resume(st, tenant, query_ids(st, tenant, request))


def _pause(st: ServerState, tenant: str, ids: list[str]) -> JSONResponse:
    def refuse(ex: Execution) -> str | None:
        return None if ex.state.current == RUNNING else "execution not in state RUNNING"

    return bulk(st, tenant, ids, "pause", refuse, lambda ex: st.engine.pause(ex.id))


@router.post(
    P + "/pause/by-ids",
    operation_id="pauseExecutionsByIds",
    summary="Pause a list of running executions",
    responses=BULK,
)
def pause_by_ids(request: Request, tenant: str, body: Ids) -> JSONResponse:
    st = state_of(request)
    return _pause(st, st.tenant(tenant), _ids_body(body))


@router.post(P + "/pause/by-query", operation_id="pauseExecutionsByQuery", summary="Pause executions filter by query parameters",
             responses=BULK)  # fmt: skip
def pause_by_query(request: Request, tenant: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _pause(st, tenant, query_ids(st, tenant, request))


def _labels(st: ServerState, tenant: str, ids: list[str], labels: list[models.Label]) -> JSONResponse:
    return bulk(st, tenant, ids, "set labels", _ended, lambda ex: add_labels(st, ex, labels))


@router.post(P + "/labels/by-ids", operation_id="setLabelsOnTerminatedExecutionsByIds", responses=BULK,
             summary="Set labels on a list of executions")  # fmt: skip
def labels_by_ids(request: Request, tenant: str, body: models.SetLabelsByIdsRequest) -> JSONResponse:
    st = state_of(request)
    return _labels(st, st.tenant(tenant), _ids_body(body.executionsId), body.executionLabels)


@router.post(P + "/labels/by-query", operation_id="setLabelsOnTerminatedExecutionsByQuery", responses=BULK,
             summary="Set label on executions filter by query parameters")  # fmt: skip
def labels_by_query(request: Request, tenant: str, body: list[models.Label]) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _labels(st, tenant, query_ids(st, tenant, request), body)


def _change_status(st: ServerState, tenant: str, ids: list[str], status: str) -> JSONResponse:
    if status not in TERMINAL:
        raise bad_request(
            f"an execution's state can only be changed to an end state ({', '.join(sorted(TERMINAL))}), not {status}"
        )
    return bulk(st, tenant, ids, "change executions state", _ended, lambda ex: change_status(st, ex, status))


NewStatus = Annotated[models.StateType, Query(description="The new (end) state of the executions")]


@router.post(P + "/change-status/by-ids", operation_id="updateExecutionsStatusByIds", responses=BULK,
             summary="Change executions state by id")  # fmt: skip
def change_status_by_ids(request: Request, tenant: str, body: Ids, newStatus: NewStatus) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    return _change_status(st, st.tenant(tenant), _ids_body(body), newStatus)


@router.post(P + "/change-status/by-query", operation_id="updateExecutionsStatusByQuery", responses=BULK,
             summary="Change executions state by query parameters")  # fmt: skip
def change_status_by_query(request: Request, tenant: str, newStatus: NewStatus) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _change_status(st, tenant, query_ids(st, tenant, request), newStatus)


def _force_run(st: ServerState, tenant: str, ids: list[str]) -> JSONResponse:
    def refuse(ex: Execution) -> str | None:
        return "execution in a terminated state" if ex.state.terminal() else None

    return bulk(st, tenant, ids, "force run", refuse, lambda ex: st.engine.force_run(ex.id))


@router.post(
    P + "/force-run/by-ids",
    operation_id="forceRunByIds",
    summary="Force run a list of executions",
    responses=BULK,
)
def force_run_by_ids(request: Request, tenant: str, body: Ids) -> JSONResponse:
    st = state_of(request)
    return _force_run(st, st.tenant(tenant), _ids_body(body))


@router.post(P + "/force-run/by-query", operation_id="forceRunExecutionsByQuery", responses=BULK,
             summary="Force run executions filter by query parameters")  # fmt: skip
def force_run_by_query(request: Request, tenant: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _force_run(st, tenant, query_ids(st, tenant, request))


def _unqueue(st: ServerState, tenant: str, ids: list[str], state: str | None) -> JSONResponse:
    target = _unqueue_target(state)

    def refuse(ex: Execution) -> str | None:
        return None if ex.state.current == QUEUED else "execution not in state QUEUED"

    return bulk(st, tenant, ids, "unqueue", refuse, lambda ex: st.engine.unqueue(ex.id, target))


@router.post(
    P + "/unqueue/by-ids",
    operation_id="unqueueExecutionsByIds",
    summary="Unqueue a list of executions",
    responses=BULK,
)
def unqueue_by_ids(request: Request, tenant: str, body: Ids, state: UnqueueState = None) -> JSONResponse:
    st = state_of(request)
    return _unqueue(st, st.tenant(tenant), _ids_body(body), state)


@router.post(P + "/unqueue/by-query", operation_id="unqueueExecutionsByQuery", responses=BULK,
             summary="Unqueue executions filter by query parameters")  # fmt: skip
def unqueue_by_query(request: Request, tenant: str, newState: UnqueueState = None) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _unqueue(st, tenant, query_ids(st, tenant, request), newState)


__all__ = [
    "add_labels",
    "bulk",
    "change_status",
    "delete_one",
    "do_replay",
    "legacy_filters",
    "load",
    "router",
]
