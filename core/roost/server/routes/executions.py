"""Executions: create (multipart inputs, ``?wait``), get, search, kill, resume, restart, change status,
labels, delete, follow (server-sent events), output files, and webhooks."""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from roost import WebhookAnswer, WebhookReject, WebhookRequest, WebhookStart, WebhookTrigger
from roost.engine.engine import FlowNotFound
from roost.engine.inputs import InputsInvalid
from roost.engine.model import TERMINAL, iso, new_id, now
from roost.flow.build import FlowInvalid
from roost.flow.task import WebhookOutcome
from roost.server import models
from roost.server.access import access_of
from roost.server.errors import ApiError, bad_request, conflict, not_found, unprocessable
from roost.server.filters import parse_filters
from roost.server.routes.common import (
    SSE_RESPONSE,
    TENANT_SCOPED,
    base_url,
    blocking,
    multipart_body,
    state_of,
)
from roost.server.routing import SegmentRoute
from roost.server.state import ServerState
from roost.store.db import ExecutionExists
from roost.store.search import EXECUTION_FIELDS, search_executions
from roost.store.storage import StorageError, StorageOutside, StorageUnavailable, execution_prefix, uri_key

router = APIRouter(
    tags=["Executions"], responses=models.ERRORS, dependencies=TENANT_SCOPED, route_class=SegmentRoute
)
P = "/api/v1/{tenant}/executions"
Page = Annotated[int, Query(ge=1, le=100000, description="The current page")]
Size = Annotated[int, Query(ge=1, le=10000, description="The current page size")]
RESTARTABLE = ("FAILED", "KILLED", "WARNING", "CANCELLED")
USERNAME_LABEL = "system.username"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class NamedBytes(bytes):
    """An uploaded file's bytes with its file name (FILE inputs keep it in storage)."""

    name: str


class UploadedFile:
    """An uploaded file part of a new execution: its file name and the parser's spooled file (on disk past
    1 MiB), streamed into internal storage by the FILE input, never read whole into memory."""

    def __init__(self, stream: Any, name: str) -> None:
        self.stream = stream
        self.name = name

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def text(self) -> str:
        self.stream.seek(0)
        return self.stream.read().decode("utf-8")

    def close(self) -> None:
        self.stream.close()


def sse(event_id: str, data: Any) -> bytes:
    return f"id: {event_id}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


def _flow(st: ServerState, tenant: str, namespace: str, flow_id: str, revision: int | None = None) -> Any:
    try:
        if revision is None:
            return st.latest_flow(tenant, namespace, flow_id)
        return st.engine.flow(tenant, namespace, flow_id, revision)
    except FlowNotFound:
        raise not_found(
            f"flow {namespace}.{flow_id} not found" + (f" at revision {revision}" if revision else "")
        ) from None
    except FlowInvalid as exc:
        raise unprocessable(f"flow {namespace}.{flow_id} is stored but no longer valid: {exc}") from None


async def _form_inputs(request: Request, stream_files: bool = False) -> dict[str, Any]:
    """The inputs of a request; file parts as :class:`NamedBytes`, or with ``stream_files`` as
    :class:`UploadedFile` streams (close them: :func:`_close_uploads`)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data") or ctype.startswith("application/x-www-form-urlencoded"):
        form = await request.form()
        inputs: dict[str, Any] = {}
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                name = (getattr(value, "filename", None) or key).replace("/", "_").replace("\\", "_") or key
                if stream_files:
                    inputs[key] = UploadedFile(value.file, name)  # type: ignore[union-attr]
                    continue
                data = NamedBytes(await value.read())
                data.name = name
                inputs[key] = data
            else:
                inputs[key] = value
        return inputs
    if ctype.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise bad_request("a JSON body must be an object of inputs")
        return body
    return {}


def _close_uploads(inputs: dict[str, Any]) -> None:
    for value in inputs.values():
        if isinstance(value, UploadedFile):
            value.close()


def _labels(raw: list[str] | None) -> list[dict[str, str]]:
    out = []
    for item in raw or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise bad_request(f"label {item!r} must be key:value")
        out.append({"key": key, "value": value})
    return out


def _check_file_inputs(flow: Any, inputs: dict[str, Any]) -> None:
    """A FILE input comes as an uploaded part (or an existing storage URI), never as a server-side path;
    any other input sent as a file part is read as UTF-8 text."""
    errors = {}
    for inp in flow.inputs:
        value = inputs.get(inp.id)
        if inp.type != "FILE":
            if isinstance(value, bytes | UploadedFile):
                try:
                    inputs[inp.id] = (
                        value.text() if isinstance(value, UploadedFile) else value.decode("utf-8")
                    )
                except UnicodeDecodeError:
                    errors[inp.id] = f"input '{inp.id}' ({inp.type}): the uploaded part is not UTF-8 text"
        elif isinstance(value, str) and value and not value.startswith(("kestra://", "nsfile://")):
            errors[inp.id] = (
                f"input '{inp.id}' (FILE): upload the file as a multipart file part named '{inp.id}'"
            )
    if errors:
        raise unprocessable(
            "Invalid inputs: " + "; ".join(f"inputs.{k}: {v}" for k, v in errors.items()), inputs=errors
        )


def audit_execution(st: ServerState, ex: dict[str, Any], action: str, kind: str = "UPDATE", *,
                    before: Any = None, after: Any = None) -> None:  # fmt: skip
    """The audit entry of an action on an execution (kill, pause, resume, restart, change of state or labels...)."""
    st.audit.record(kind, "EXECUTION", tenant=ex.get("tenantId") or "main",
                    detail={"id": ex["id"], "executionId": ex["id"], "namespace": ex["namespace"], "flowId": ex["flowId"],
                            "action": action},
                    before=None if kind == "CREATE" else before if before is not None else {"state": ex["state"]["current"]},
                    after=after)  # fmt: skip


def create(st: ServerState, tenant: str, namespace: str, flow_id: str, inputs: dict[str, Any],
           labels: list[dict[str, str]], revision: int | None, schedule_date: datetime | None,
           trigger: dict[str, Any] | None = None, execution_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    flow = _flow(st, tenant, namespace, flow_id, revision)
    _check_file_inputs(flow, inputs)
    try:
        ex = st.engine.create_execution(flow, inputs, labels, tenant=tenant, schedule_date=schedule_date, trigger=trigger,
                                        execution_id=execution_id)  # fmt: skip
    except ExecutionExists:  # a deduplicated delivery racing the first one: answer the execution it made
        existing = st.engine.get_execution(execution_id) if execution_id else None
        if existing is None:
            raise
        return st.shape_execution(existing.header_dict(), None)
    except InputsInvalid as exc:
        text = "; ".join(f"inputs.{k}: {v}" for k, v in exc.errors.items())
        raise unprocessable(
            f"Invalid inputs for flow {namespace}.{flow_id}: {text}", inputs=exc.errors
        ) from None
    except ValueError as exc:
        if "disabled" in str(exc):
            raise conflict(str(exc)) from None
        raise unprocessable(str(exc)) from None
    if not st.executor_running:
        getattr(st.engine, "_waiters", {}).pop(ex.id, None)  # no executor here: nobody would ever release it
    return st.shape_execution(ex.header_dict(), None)


@router.get(P + "/search", operation_id="searchExecutions", summary="Search for executions",
            responses={200: {"model": models.Paged[models.Execution]}})  # fmt: skip
def search(request: Request, tenant: str, page: Page = 1, size: Size = 10,
           sort: Annotated[list[str] | None, Query()] = None,
           namespace: Annotated[str | None, Query(description="Deprecated: use filters[namespace][PREFIX]")] = None,
           flowId: Annotated[str | None, Query(description="Deprecated: use filters[flowId][EQUALS]")] = None,  # noqa: N803
           state: Annotated[list[models.StateType] | None, Query(description="Deprecated: use filters[state][IN]")] = None,
           labels: Annotated[list[str] | None, Query(description="Deprecated: key:value")] = None) -> JSONResponse:  # fmt: skip
    """Filters: ``filters[q|namespace|flowId|state|labels|startDate|endDate|timeRange|childFilter|...][OP]=value``."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    filters = parse_filters(request.query_params.multi_items(), EXECUTION_FIELDS)
    from roost.server.filters import Filter

    if namespace:
        filters.append(Filter("namespace", "PREFIX", namespace))
    if flowId:
        filters.append(Filter("flowId", "EQUALS", flowId))
    if state:
        filters.append(Filter("state", "IN", list(state)))
    if labels:
        filters.append(Filter("labels", "EQUALS", {lbl["key"]: lbl["value"] for lbl in _labels(labels)}))
    readable = access_of(request).namespace_filter("EXECUTION", tenant)
    found, total = search_executions(
        st.store, tenant, [*filters, readable] if readable else filters, page, size, sort
    )
    return JSONResponse({"results": [st.shape_execution(d, None) for d in found], "total": total})


@router.get(P, operation_id="searchExecutionsByFlowId", summary="Search for executions for a flow",
            responses={200: {"model": models.Paged[models.Execution]}})  # fmt: skip
def search_by_flow(
    request: Request, tenant: str, namespace: str, flowId: str, page: Page = 1, size: Size = 10
) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    from roost.server.filters import Filter

    access_of(request).require("EXECUTION", "READ", namespace, tenant)
    found, total = search_executions(st.store, tenant, [Filter("namespace", "EQUALS", namespace),
                                                        Filter("flowId", "EQUALS", flowId)], page, size)  # fmt: skip
    return JSONResponse({"results": [st.shape_execution(d, None) for d in found], "total": total})


@router.get(P + "/{executionId}", operation_id="getExecution", summary="Get an execution",
            responses={200: {"model": models.Execution}})  # fmt: skip
def get_execution(request: Request, tenant: str, executionId: str) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    return JSONResponse(st.execution_dict(st.tenant(tenant), executionId))


@router.delete(P + "/{executionId}", operation_id="deleteExecution", summary="Delete an execution", status_code=204,
               responses={204: {"description": "Deleted"}, 409: {"model": models.ErrorBody}})  # fmt: skip
def delete_execution(
    request: Request,
    tenant: str,
    executionId: str,
    deleteLogs: bool = True,  # noqa: N803
    deleteMetrics: bool = True,
    deleteStorage: bool = True,
) -> Response:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    ex = st.execution_dict(tenant, executionId)
    if ex["state"]["current"] not in TERMINAL:
        raise conflict(f"execution {executionId} is {ex['state']['current']}: kill it before deleting it")
    st.store.delete_execution(
        executionId
    )  # the store deletes the logs with it (deleteLogs=false is not honoured)
    audit_execution(st, ex, "DELETE", "DELETE")
    if deleteStorage:
        try:
            st.engine.runtime(tenant).storage.delete_prefix(
                execution_prefix(ex["namespace"], ex["flowId"], executionId)
            )
        except StorageError:
            pass
    return Response(status_code=204)


@router.delete(P + "/{executionId}/kill", operation_id="killExecution", summary="Kill an execution (and its subflows)",
               status_code=202, responses={202: {"description": "Kill requested"}, 409: {"model": models.ErrorBody}})  # fmt: skip
def kill(request: Request, tenant: str, executionId: str, isOnKillCascade: bool = True) -> Response:  # noqa: N803
    """Running subflow executions are killed too, unless ``isOnKillCascade=false``."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    ex = st.execution_dict(tenant, executionId)
    if ex["state"]["current"] in TERMINAL:
        raise conflict(f"execution {executionId} already ended ({ex['state']['current']})")
    st.engine.kill(executionId, cascade=isOnKillCascade)
    audit_execution(st, ex, "KILL", after={"state": "KILLING"})
    return Response(status_code=202)


@router.post(P + "/{executionId}/pause", operation_id="pauseExecution", summary="Pause a running execution",
             status_code=204, responses={204: {"description": "Pause requested"}, 409: {"model": models.ErrorBody}})  # fmt: skip
def pause(request: Request, tenant: str, executionId: str) -> Response:  # noqa: N803
    """Runs in flight end; nothing new starts until the execution is resumed."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    ex = st.execution_dict(tenant, executionId)
    if ex["state"]["current"] != "RUNNING":
        raise conflict(
            f"execution {executionId} is {ex['state']['current']}: only a RUNNING execution pauses"
        )
    st.engine.pause(executionId)
    audit_execution(st, ex, "PAUSE", after={"state": "PAUSED"})
    return Response(status_code=204)


@router.post(P + "/{executionId}/resume", operation_id="resumeExecution", summary="Resume a paused execution",
             status_code=204, openapi_extra=multipart_body(False),
             responses={204: {"description": "Resumed"}, 409: {"model": models.ErrorBody}})  # fmt: skip
async def resume(request: Request, tenant: str, executionId: str) -> Response:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    inputs = await _form_inputs(request)
    ex = await blocking(st.execution_dict, tenant, executionId)
    if ex["state"]["current"] != "PAUSED":
        raise conflict(f"execution {executionId} is {ex['state']['current']}, not PAUSED")
    resumed = {
        k: (v if not isinstance(v, bytes) else v.decode("utf-8", "replace")) for k, v in inputs.items()
    }
    st.engine.resume(executionId, resumed)
    await blocking(audit_execution, st, ex, "RESUME", after={"state": "RUNNING", "inputs": resumed})
    return Response(status_code=204)


@router.post(P + "/{executionId}/restart", operation_id="restartExecution", summary="Restart a failed or killed execution",
             responses={200: {"model": models.Execution}, 409: {"model": models.ErrorBody}})  # fmt: skip
async def restart(
    request: Request,
    tenant: str,
    executionId: str,  # noqa: N803
    revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    ex = await blocking(st.execution_dict, tenant, executionId)
    if ex["state"]["current"] not in RESTARTABLE:
        raise conflict(
            f"execution {executionId} is {ex['state']['current']}: only {', '.join(RESTARTABLE)} executions restart"
        )
    st.engine.restart(executionId)
    await blocking(audit_execution, st, ex, "RESTART", after={"state": "RESTARTED"})
    for _ in range(20):  # answer with the restarted state once the executor took the message
        await asyncio.sleep(0.025)
        current = await blocking(st.execution_dict, tenant, executionId)
        if current["state"]["current"] not in TERMINAL:
            return JSONResponse(current)
    ex["state"] = {**ex["state"], "current": "RESTARTED"}
    return JSONResponse(ex)


@router.post(P + "/{executionId}/change-status", operation_id="updateExecutionStatus",
             summary="Change the state of an ended execution", responses={200: {"model": models.Execution}, 409: {"model": models.ErrorBody}})  # fmt: skip
def change_status(request: Request, tenant: str, executionId: str, status: models.StateType) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    loaded = st.store.load_execution(executionId)
    if loaded is None or (loaded[0].get("tenantId") or "main") != tenant:
        raise not_found(f"execution {executionId} not found")
    from roost.engine.model import Execution

    ex = Execution.from_dicts(*loaded)
    if not ex.state.terminal():
        raise conflict(
            f"execution {executionId} is {ex.state.current}: only an ended execution changes state"
        )
    if status not in TERMINAL:
        raise bad_request(
            f"an ended execution can only move to an end state ({', '.join(sorted(TERMINAL))}), not {status}"
        )
    before = ex.state.current
    ex.state.set(status)
    st.store.save_executions([(ex.header_dict(), [])])
    changed = st.execution_dict(tenant, executionId)
    audit_execution(st, changed, "CHANGE_STATUS", before={"state": before}, after={"state": status})
    return JSONResponse(changed)


@router.post(P + "/{executionId}/labels", operation_id="setLabelsOnTerminatedExecution",
             summary="Add or update labels of an ended execution", responses={200: {"model": models.Execution}})  # fmt: skip
def set_labels(request: Request, tenant: str, executionId: str, body: list[models.Label]) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    loaded = st.store.load_execution(executionId)
    if loaded is None or (loaded[0].get("tenantId") or "main") != tenant:
        raise not_found(f"execution {executionId} not found")
    header = loaded[0]
    if header["state"]["current"] not in TERMINAL:
        raise bad_request(f"execution {executionId} has not ended: labels change only on an ended execution")
    before = list(header.get("labels") or [])
    merged = {lbl["key"]: lbl["value"] for lbl in before}
    merged.update({lbl.key: lbl.value for lbl in body})
    header["labels"] = [{"key": k, "value": v} for k, v in merged.items()]
    st.store.save_executions([(header, [])])
    changed = st.execution_dict(tenant, executionId)
    audit_execution(st, changed, "SET_LABELS", before={"labels": before}, after={"labels": header["labels"]})
    return JSONResponse(changed)


@router.get(P + "/{executionId}/follow", operation_id="followExecution", summary="Follow an execution (server-sent events)",
            responses=SSE_RESPONSE)  # fmt: skip
async def follow(request: Request, tenant: str, executionId: str) -> StreamingResponse:  # noqa: N803
    """Events ``start``, then ``progress`` (the execution) on every change, then ``end`` with the final execution."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    first = await blocking(st.execution_dict, tenant, executionId)

    async def events() -> AsyncIterator[bytes]:
        yield sse("start", {"id": executionId})
        ex, last, idle = first, None, 0.0
        while True:
            runs = ex.get("taskRunList") or []
            sig = (
                ex["state"]["current"],
                len(runs),
                sum(len(tr["state"].get("histories") or ()) for tr in runs),
            )
            if sig != last:
                last, idle = sig, 0.0
                yield sse("progress", ex)
            if ex["state"]["current"] in TERMINAL:
                yield sse("end", ex)
                return
            await asyncio.sleep(0.1)
            idle += 0.1
            if idle >= 15:
                idle = 0.0
                yield b": keep-alive\n\n"
            ex = await blocking(st.execution_dict, tenant, executionId)

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


def _execution_file(st: ServerState, tenant: str, execution_id: str, path: str) -> tuple[Any, str, str]:
    """(the tenant's storage, the URI, the execution's folder) of a file the execution may serve."""
    ex = st.execution_dict(tenant, execution_id)
    try:
        key = uri_key(path)
    except StorageError as exc:
        raise bad_request(str(exc)) from None
    prefix = execution_prefix(ex["namespace"], ex["flowId"], execution_id)
    if not key.startswith(prefix + "/"):
        raise ApiError(403, f"{path} does not belong to execution {execution_id}")
    return st.engine.runtime(tenant).storage, path, prefix


def _storage_call(call: Any, *args: Any) -> Any:
    """A storage read for a route: outside the execution's folder (links resolved) → 403, missing → 404."""
    try:
        return call(*args)
    except StorageOutside:
        raise ApiError(403, f"{args[0]} does not belong to this execution") from None
    except StorageUnavailable:
        raise  # 503 with the backend's reason (errors.unexpected)
    except StorageError as exc:  # missing, or a local link leading out of the storage root
        raise not_found(str(exc)) from None


@router.get(P + "/{executionId}/file", operation_id="downloadFileFromExecution", summary="Download a file of an execution",
            responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The file"}, 403: {"model": models.ErrorBody}})  # fmt: skip
def download_file(request: Request, tenant: str, executionId: str, path: str) -> Response:  # noqa: N803
    """``path`` is a ``kestra://`` URI under this execution's own storage prefix; the file is streamed."""
    st = state_of(request)
    storage, uri, prefix = _execution_file(st, st.tenant(tenant), executionId, path)
    name = uri.rsplit("/", 1)[-1]
    local_path = getattr(storage, "local_path", None)
    if callable(local_path):  # a local file: sent by the OS (sendfile), its real path checked in the folder
        return FileResponse(
            _storage_call(local_path, uri, prefix), media_type="application/octet-stream", filename=name
        )
    size = _storage_call(storage.size, uri, prefix)
    stream = _storage_call(storage.open_read, uri, prefix)

    def chunks() -> Iterator[bytes]:
        with stream:
            while chunk := stream.read(1 << 20):
                yield chunk

    quoted = quote(name)  # as FileResponse writes it
    disposition = (
        f"attachment; filename*=utf-8''{quoted}" if quoted != name else f'attachment; filename="{name}"'
    )
    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={"content-length": str(size), "content-disposition": disposition})  # fmt: skip


@router.get(P + "/{executionId}/file/metas", operation_id="fileMetadatasFromExecution", summary="Size of a file of an execution",
            responses={200: {"model": models.FileMetas}, 403: {"model": models.ErrorBody}})  # fmt: skip
def file_metas(request: Request, tenant: str, executionId: str, path: str) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    storage, uri, prefix = _execution_file(st, st.tenant(tenant), executionId, path)
    return JSONResponse({"size": _storage_call(storage.size, uri, prefix)})


@router.get(P + "/{executionId}/flow", operation_id="flowFromExecutionById", summary="The flow (revision) of an execution",
            responses={200: {"model": models.FlowWithSource}})  # fmt: skip
def flow_of_execution(request: Request, tenant: str, executionId: str) -> JSONResponse:  # noqa: N803
    from roost.server.routes.flows import flow_json

    st = state_of(request)
    tenant = st.tenant(tenant)
    ex = st.execution_dict(tenant, executionId)
    found = st.store.get_flow(tenant, ex["namespace"], ex["flowId"], ex["flowRevision"], allow_deleted=True)
    if found is None:
        raise not_found(f"flow {ex['namespace']}.{ex['flowId']} revision {ex['flowRevision']} not found")
    return JSONResponse(
        flow_json(tenant, ex["namespace"], ex["flowId"], found[0], found[1], with_source=True)
    )


# -- webhooks ------------------------------------------------------------------------------------------------
WEBHOOK = P + "/webhook/{namespace}/{id}/{key}"


def _webhook_trigger(st: ServerState, tenant: str, namespace: str, flow_id: str, key: str) -> tuple[Any, Any]:
    try:
        flow = st.latest_flow(tenant, namespace, flow_id)
    except (FlowNotFound, FlowInvalid):
        raise not_found(f"flow {namespace}.{flow_id} not found") from None
    for trig in flow.triggers:
        if isinstance(trig, WebhookTrigger) and hmac.compare_digest(str(trig.key).encode(), key.encode()):
            if trig.disabled:
                raise not_found(f"the webhook trigger {trig.id} of {namespace}.{flow_id} is disabled")
            ctx = st.store.get_trigger(tenant, namespace, flow_id, trig.id)
            if ctx and ctx.get("disabled"):
                raise not_found(f"the webhook trigger {trig.id} of {namespace}.{flow_id} is disabled")
            return flow, trig
    raise not_found(f"no webhook trigger of {namespace}.{flow_id} has this key")


def _render(st: ServerState, tenant: str, value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str) and "{{" in value:
        return st.engine.runtime(tenant).expressions.render(value, variables)
    if isinstance(value, dict):
        return {k: _render(st, tenant, v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(st, tenant, v, variables) for v in value]
    return value


def _receive(st: ServerState, tenant: str, flow: Any, trig: Any, request: WebhookRequest) -> WebhookOutcome:
    """Ask the trigger what the call does; its own failure is the caller's 422, never a 500."""
    from roost.engine.scheduler import TriggerContext

    try:
        return trig.receive(request, TriggerContext(st.engine, tenant, flow, trig))
    except Exception as exc:
        raise unprocessable(f"webhook trigger {trig.id}: {exc}") from None


# Derived-id starts of this process, checked and created one at a time (a redelivery racing the first).
_dedup_lock = threading.Lock()


def _start(st: ServerState, tenant: str, flow: Any, trig: Any, start: WebhookStart) -> dict[str, Any]:
    """Create the execution a webhook asks for; with a ``dedup_key``, once per key (its id is derived)."""
    from roost.engine.scheduler import stable_id

    variables = start.variables
    trigger = {"id": trig.id, "type": trig.type, "variables": variables}
    scope = {"trigger": variables, "flow": {"id": flow.id, "namespace": flow.namespace}}
    try:
        inputs = _render(st, tenant, trig.inputs or {}, scope)
        labels_raw = _render(st, tenant, trig.labels, scope)
    except Exception as exc:
        raise unprocessable(f"webhook trigger {trig.id}: {exc}") from None
    if isinstance(labels_raw, dict):
        labels = [{"key": str(k), "value": str(v)} for k, v in labels_raw.items()]
    else:
        labels = [
            {"key": str(x.get("key")), "value": str(x.get("value"))}
            for x in labels_raw or []
            if isinstance(x, dict)
        ]
    if start.dedup_key is None:
        return create(st, tenant, flow.namespace, flow.id, inputs, labels, None, None, trigger)
    execution_id = stable_id("webhook", tenant, flow.namespace, flow.id, trig.id, start.dedup_key)
    with _dedup_lock:
        if st.store.load_execution(execution_id) is None:
            return create(
                st, tenant, flow.namespace, flow.id, inputs, labels, None, None, trigger, execution_id
            )
    return st.execution_dict(tenant, execution_id)


async def _webhook(request: Request, tenant: str, namespace: str, id: str, key: str) -> Response:
    st = state_of(request)
    tenant = st.tenant(tenant)
    flow, trig = await blocking(_webhook_trigger, st, tenant, namespace, id, key)
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        if name.lower() not in ("authorization", "cookie"):
            headers.setdefault(name.lower(), []).append(value)
    parameters: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        parameters.setdefault(name, []).append(value)
    call = WebhookRequest(request.method, headers, parameters, await request.body())
    outcome = await blocking(_receive, st, tenant, flow, trig, call)
    if isinstance(outcome, WebhookReject):
        raise ApiError(outcome.status, outcome.message)
    if isinstance(outcome, WebhookAnswer):
        if isinstance(outcome.body, str | bytes):
            return Response(
                outcome.body, outcome.status, outcome.headers, outcome.content_type or "text/plain"
            )
        return JSONResponse(outcome.body, outcome.status, outcome.headers, outcome.content_type)
    ex = await blocking(_start, st, tenant, flow, trig, outcome)
    if outcome.wait:
        ex = await st.wait_end(tenant, ex["id"])
        if outcome.return_outputs:
            return JSONResponse(ex.get("outputs") or {})
    out: dict[str, Any] = {k: ex[k] for k in ("tenantId", "id", "namespace", "flowId", "flowRevision", "trigger", "outputs", "labels", "state")
           if k in ex}  # fmt: skip
    out["url"] = st.execution_url(base_url(request), tenant, ex)
    return JSONResponse(out)


_hook_responses: dict[int | str, dict[str, Any]] = {
    200: {"model": models.WebhookResponse},
    403: {"model": models.ErrorBody},
    409: {"model": models.ErrorBody},
    422: {"model": models.ErrorBody},
}


@router.get(
    WEBHOOK,
    operation_id="triggerExecutionByGetWebhook",
    summary="Start an execution by GET webhook",
    responses=_hook_responses,
)
async def webhook_get(request: Request, tenant: str, namespace: str, id: str, key: str) -> Response:
    return await _webhook(request, tenant, namespace, id, key)


@router.post(WEBHOOK, operation_id="triggerExecutionByPostWebhook", summary="Start an execution by POST webhook",
             openapi_extra={"requestBody": {"required": False, "content": {
                 "application/json": {"schema": {}}, "text/plain": {"schema": {"type": "string"}}}}}, responses=_hook_responses)  # fmt: skip
async def webhook_post(request: Request, tenant: str, namespace: str, id: str, key: str) -> Response:
    return await _webhook(request, tenant, namespace, id, key)


@router.put(WEBHOOK, operation_id="triggerExecutionByPutWebhook", summary="Start an execution by PUT webhook",
            openapi_extra={"requestBody": {"required": False, "content": {
                "application/json": {"schema": {}}, "text/plain": {"schema": {"type": "string"}}}}}, responses=_hook_responses)  # fmt: skip
async def webhook_put(request: Request, tenant: str, namespace: str, id: str, key: str) -> Response:
    return await _webhook(request, tenant, namespace, id, key)


# -- create (declared last: its two free segments would shadow /{executionId}/<action>) -------------------------
@router.post(P + "/{namespace}/{id}", operation_id="createExecution", summary="Create a new execution for a flow",
             openapi_extra=multipart_body(False),
             responses={200: {"model": models.ExecutionResponse}, 409: {"model": models.ErrorBody},
                        422: {"model": models.ErrorBody}})  # fmt: skip
async def create_execution(
    request: Request,
    tenant: str,
    namespace: str,
    id: str,
    wait: bool = False,
    labels: Annotated[list[str] | None, Query(description="Labels as key:value")] = None,
    revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    scheduleDate: datetime | None = None,
) -> JSONResponse:  # noqa: N803
    """Inputs come as multipart parts (files as file parts); ``wait=true`` answers when the execution ends."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    inputs = await _form_inputs(request, stream_files=True)
    execution_id, registered = None, None
    if wait and st.executor_running:  # listen for the end before the execution exists: it may end at once
        execution_id = new_id()
        registered = st.watcher.register(execution_id)
    given = [lbl for lbl in _labels(labels) if lbl["key"] != USERNAME_LABEL]
    who = request.scope.get("state", {}).get("principal")
    if (
        who is not None
    ):  # who started it, as Kestra labels it (not an audit entry: executions are their own record)
        given.append({"key": USERNAME_LABEL, "value": getattr(who, "id", None) or str(who)})
    try:
        ex = await blocking(
            create,
            st,
            tenant,
            namespace,
            id,
            inputs,
            given,
            revision,
            scheduleDate,
            None,
            execution_id,
        )
    except BaseException:
        if registered is not None:
            st.watcher.discard(execution_id or "", registered)
        raise
    finally:
        _close_uploads(inputs)
    if wait:
        ex = await st.wait_end(tenant, ex["id"], registered=registered)
    ex["url"] = st.execution_url(base_url(request), tenant, ex)
    return JSONResponse(ex)


__all__ = ["create", "iso", "now", "router", "sse"]
