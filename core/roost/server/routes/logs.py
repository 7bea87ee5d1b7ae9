"""Logs: search, an execution's logs (list, download, delete, follow over server-sent events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from roost.engine.model import TERMINAL
from roost.server import models
from roost.server.access import access_of
from roost.server.filters import parse_filters
from roost.server.queries import LOG_FIELDS, delete_logs, execution_logs, search_logs
from roost.server.routes.common import SSE_RESPONSE, TENANT_SCOPED, blocking, state_of
from roost.server.routes.executions import SSE_HEADERS, sse
from roost.server.routing import SegmentRoute

router = APIRouter(
    tags=["Logs"], responses=models.ERRORS, dependencies=TENANT_SCOPED, route_class=SegmentRoute
)
P = "/api/v1/{tenant}/logs"
Page = Annotated[int, Query(ge=1, le=100000)]
Size = Annotated[int, Query(ge=1, le=10000)]


@router.get(P + "/search", operation_id="searchLogs", summary="Search for logs",
            responses={200: {"model": models.Paged[models.LogEntry]}})  # fmt: skip
def search(request: Request, tenant: str, page: Page = 1, size: Size = 10,
           sort: Annotated[list[str] | None, Query()] = None) -> JSONResponse:  # fmt: skip
    """Filters: ``filters[q|namespace|flowId|executionId|taskId|level|startDate|endDate|scope][OP]=value``."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    filters = parse_filters(request.query_params.multi_items(), LOG_FIELDS)
    readable = access_of(request).namespace_filter("EXECUTION", tenant)
    results, total = search_logs(
        st.store, tenant, [*filters, readable] if readable else filters, page, size, sort
    )
    return JSONResponse({"results": results, "total": total})


@dataclass
class Selection:
    """Which logs of an execution a route works on (shared by list, delete and download)."""

    minLevel: models.Level | None = None  # noqa: N815 - Kestra's query names
    taskRunId: str | None = None  # noqa: N815
    taskId: str | None = None  # noqa: N815

    def filters(self) -> dict[str, Any]:
        return {"min_level": self.minLevel, "task_id": self.taskId, "taskrun_id": self.taskRunId}


Selected = Annotated[Selection, Depends()]


def _execution(request: Request, tenant: str, execution_id: str) -> tuple[Any, str]:
    """The server state and tenant, once the execution is known to exist (404 otherwise)."""
    st, tenant, _ex = _execution_of(request, tenant, execution_id)
    return st, tenant


def _execution_of(request: Request, tenant: str, execution_id: str) -> tuple[Any, str, dict[str, Any]]:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return st, tenant, st.execution_dict(tenant, execution_id)


@router.get(P + "/{executionId}", operation_id="listLogsFromExecution", summary="Logs of an execution",
            responses={200: {"model": list[models.LogEntry]}})  # fmt: skip
def list_logs(request: Request, tenant: str, executionId: str, sel: Selected) -> JSONResponse:  # noqa: N803
    st, tenant = _execution(request, tenant, executionId)
    rows = execution_logs(st.store, tenant, executionId, **sel.filters())
    return JSONResponse([r for _seq, r in rows])


@router.delete(P + "/{executionId}", operation_id="deleteLogsFromExecution", summary="Delete logs of an execution",
               status_code=200, response_class=Response, responses={200: {"description": "Deleted"}})  # fmt: skip
def delete(request: Request, tenant: str, executionId: str, sel: Selected) -> Response:  # noqa: N803
    st, tenant, ex = _execution_of(request, tenant, executionId)
    deleted = delete_logs(st.store, tenant, execution_id=executionId, **sel.filters())
    st.audit.record("DELETE", "EXECUTION", tenant=tenant, detail={
        "id": executionId, "executionId": executionId, "namespace": ex["namespace"], "flowId": ex["flowId"],
        "action": "DELETE_LOGS"}, before={"logs": deleted, "selection": sel.filters()}, after={"logs": 0})  # fmt: skip
    return Response(status_code=200)


@router.get(P + "/{executionId}/download", operation_id="downloadLogsFromExecution", summary="Download an execution's logs",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "The logs"}})  # fmt: skip
def download(request: Request, tenant: str, executionId: str, sel: Selected) -> PlainTextResponse:  # noqa: N803
    st, tenant = _execution(request, tenant, executionId)
    rows = execution_logs(st.store, tenant, executionId, **sel.filters())
    text = "".join(
        f"{r['timestamp']} {r['level']:<5} {r.get('taskId') or '-'} {r['message']}\n" for _s, r in rows
    )
    return PlainTextResponse(
        text, headers={"Content-Disposition": f'attachment; filename="{executionId}.log"'}
    )


@router.get(P + "/{executionId}/follow", operation_id="followLogsFromExecution",
            summary="Follow an execution's logs (server-sent events)",
            responses=SSE_RESPONSE)  # fmt: skip
async def follow(
    request: Request, tenant: str, executionId: str, minLevel: models.Level | None = None
) -> StreamingResponse:  # noqa: N803
    """One ``progress`` event per log entry as it is stored; ``end`` once the execution ended and its logs are all sent."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    await blocking(st.execution_dict, tenant, executionId)

    async def events() -> AsyncIterator[bytes]:
        yield sse("start", {"executionId": executionId})
        seq, idle, ended_at = 0, 0.0, None
        while True:
            rows = await blocking(
                execution_logs, st.store, tenant, executionId, min_level=minLevel, after_seq=seq, limit=1000
            )
            for s, row in rows:
                seq = s
                yield sse("progress", row)
            if rows:
                idle = 0.0
                continue
            if ended_at is not None and ended_at >= 2:
                yield sse("end", {"executionId": executionId})
                return
            ex = await blocking(st.execution_dict, tenant, executionId)
            if ex["state"]["current"] in TERMINAL:
                ended_at = (
                    ended_at or 0
                ) + 1  # drain twice more: the last batch's logs land right after the state
            await asyncio.sleep(0.15)
            idle += 0.15
            if idle >= 15:
                idle = 0.0
                yield b": keep-alive\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
