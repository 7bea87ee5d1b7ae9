"""Plugins: the installed plugins and their types, JSON schemas for editors."""

from __future__ import annotations

import functools
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from roost.server import models
from roost.server.errors import not_found
from roost.server.routes.common import state_of

router = APIRouter(tags=["Plugins"], responses=models.ERRORS)


def _element(cls: type) -> dict[str, Any]:
    doc = (cls.__doc__ or "").strip()
    return {"cls": getattr(cls, "type_id", cls.__name__), "title": doc.split("\n", 1)[0] if doc else None,
            "description": doc or None, "deprecated": False}  # fmt: skip


def plugin_list(plugins: Any) -> list[dict[str, Any]]:
    from roost.flow.log_export import LogExporter
    from roost.flow.task import Task, TaskRunner, Trigger

    plugins.types  # noqa: B018 - fills each plugin's list of types
    out = []
    for info in plugins.info.values():
        tasks, triggers, runners, exporters = [], [], [], []
        for tid in info.types:
            cls = plugins.types.get(tid) or plugins.task_runners.get(tid)
            if cls is None:
                continue
            if issubclass(cls, Trigger):
                triggers.append(_element(cls))
            elif issubclass(cls, Task):
                tasks.append(_element(cls))
            elif issubclass(cls, TaskRunner):
                runners.append(_element(cls))
            elif issubclass(cls, LogExporter):
                exporters.append(_element(cls))
        out.append({"name": info.name, "title": info.name, "version": info.version, "group": info.module,
                    "tasks": tasks, "triggers": triggers, "taskRunners": runners, "logExporters": exporters})  # fmt: skip
    return out


@router.get("/api/v1/plugins", operation_id="listPlugins", summary="Installed plugins and their types",
            responses={200: {"model": list[models.Plugin]}})  # fmt: skip
def list_plugins(request: Request) -> JSONResponse:
    return JSONResponse(plugin_list(state_of(request).engine.plugins))


@functools.lru_cache(maxsize=4)
def _flow_schema(plugins_id: int, plugins: Any) -> dict[str, Any]:
    from roost.flow.schema import flow_schema

    del plugins_id
    return flow_schema(plugins)


@router.get("/api/v1/plugins/schemas/{type}", operation_id="schemasFromType", summary="The JSON schema of flows, tasks or triggers",
            responses={200: {"model": dict[str, Any]}})  # fmt: skip
def schemas(
    request: Request,
    type: Literal["FLOW", "TASK", "TRIGGER", "flow", "task", "trigger"],
    arrayOf: bool = False,
) -> JSONResponse:  # noqa: N803
    plugins = state_of(request).engine.plugins
    schema = _flow_schema(id(plugins), plugins)
    kind = type.upper()
    if kind == "FLOW":
        out = schema
    else:
        out = {"$defs": schema["$defs"], "$ref": "#/$defs/__task" if kind == "TASK" else "#/$defs/__trigger"}
    if arrayOf:
        out = {"type": "array", "items": out}
    return JSONResponse(out)


@router.get("/api/v1/plugins/{cls}", operation_id="getPluginDocumentation", summary="Documentation and schema of a type",
            responses={200: {"model": dict[str, Any]}})  # fmt: skip
def plugin_doc(request: Request, cls: str) -> JSONResponse:
    from roost.flow.schema import type_schema

    plugins = state_of(request).engine.plugins
    found = plugins.types.get(cls) or plugins.task_runners.get(cls)
    if found is None:
        raise not_found(f"no plugin type {cls}" + (f"; did you mean {', '.join(plugins.close_matches(cls))}?"
                                                   if plugins.close_matches(cls) else ""))  # fmt: skip
    schema = type_schema(found)
    return JSONResponse({"markdown": (found.__doc__ or "").strip(), "schema": {"properties": schema}})
