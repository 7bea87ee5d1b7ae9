"""Plugins: the installed plugins and their types, JSON schemas for editors, icons, input types."""

from __future__ import annotations

import base64
import functools
import importlib.util
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from roost.server import models
from roost.server.errors import not_found
from roost.server.routes.common import state_of
from roost.server.routing import SegmentRoute

router = APIRouter(tags=["Plugins"], responses=models.ERRORS, route_class=SegmentRoute)


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


# -- icons ---------------------------------------------------------------------------------------------------------
DEFAULT_ICONS = Path(__file__).resolve().parent.parent / "icons"


def _svg(path: Path | None) -> str | None:
    """The base64 of an SVG file, or None when there is none."""
    if path is None or not path.is_file():
        return None
    return base64.b64encode(path.read_bytes()).decode()


def _package_dir(module: str) -> Path | None:
    """The folder of the package holding a plugin's hook module (``roost_jdbc.plugin`` → ``roost_jdbc/``)."""
    package = module.rpartition(".")[0] or module
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def _kind(cls: type) -> str:
    from roost.flow.task import FlowableTask, TaskRunner, Trigger

    if issubclass(cls, Trigger):
        return "trigger"
    if issubclass(cls, TaskRunner):
        return "runner"
    return "flowable" if issubclass(cls, FlowableTask) else "task"


@functools.lru_cache(maxsize=4)
def plugin_icons(plugins_id: int, plugins: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Icons by type id (and alias) and by plugin group. A plugin ships its own as ``icons/<type id>.svg``
    (one type) or ``icons/plugin-icon.svg`` (all its types) in its package; otherwise a default per kind."""
    del plugins_id
    defaults = {
        kind: _svg(DEFAULT_ICONS / f"{kind}.svg") or ""
        for kind in ("task", "flowable", "trigger", "runner", "plugin")
    }
    by_type: dict[str, Any] = {}
    by_group: dict[str, Any] = {}
    plugins.types  # noqa: B018 - fills each plugin's list of types
    for info in plugins.info.values():
        folder = _package_dir(info.module)
        own = _svg(folder / "icons" / "plugin-icon.svg") if folder else None
        by_group[info.module] = {"name": info.name, "icon": own or defaults["plugin"], "flowable": False}
        for tid in info.types:
            cls = plugins.types.get(tid) or plugins.task_runners.get(tid)
            if cls is None:
                continue
            kind = _kind(cls)
            safe = "/" not in tid and "\\" not in tid and not tid.startswith(".")
            icon = (
                (_svg(folder / "icons" / f"{tid}.svg") if folder and safe else None) or own or defaults[kind]
            )
            entry = {"name": cls.__name__, "icon": icon, "flowable": kind == "flowable"}
            for alias in (tid, *getattr(cls, "type_aliases", ())):
                by_type[alias] = entry
    return by_type, by_group


@router.get("/api/v1/plugins/icons", operation_id="pluginIcons", summary="Icons of every task, trigger and runner type",
            responses={200: {"model": dict[str, models.PluginIcon]}})  # fmt: skip
def icons(request: Request) -> JSONResponse:
    """``icon`` is the SVG, base64-encoded; ``flowable`` tells a flowable task."""
    plugins = state_of(request).engine.plugins
    return JSONResponse(plugin_icons(id(plugins), plugins)[0])


@router.get("/api/v1/plugins/icons/groups", operation_id="pluginGroupIcons", summary="Icons of every plugin",
            responses={200: {"model": dict[str, models.PluginIcon]}})  # fmt: skip
def group_icons(request: Request) -> JSONResponse:
    """By plugin group: the ``group`` of ``GET /api/v1/plugins``."""
    plugins = state_of(request).engine.plugins
    return JSONResponse(plugin_icons(id(plugins), plugins)[1])


# -- input types ------------------------------------------------------------------------------------------------------
INPUT_CLASSES = {"STRING": "StringInput", "ENUM": "EnumInput", "SELECT": "SelectInput", "MULTISELECT": "MultiselectInput",
                 "INT": "IntInput", "FLOAT": "FloatInput", "BOOLEAN": "BooleanInput", "BOOL": "BoolInput",
                 "DATETIME": "DateTimeInput", "DATE": "DateInput", "TIME": "TimeInput", "DURATION": "DurationInput",
                 "FILE": "FileInput", "JSON": "JsonInput", "URI": "URIInput", "SECRET": "SecretInput", "ARRAY": "ArrayInput",
                 "YAML": "YamlInput", "EMAIL": "EmailInput"}  # fmt: skip
COMMON_INPUT_FIELDS = (
    "id",
    "type",
    "description",
    "displayName",
    "required",
    "defaults",
    "dependsOn",
    "prefill",
)
INPUT_FIELDS = {
    "STRING": ("validator", "minLength", "maxLength"), "ENUM": ("values",),
    "SELECT": ("values", "expression", "allowCustomValue", "isRadio", "autoSelectFirst"),
    "MULTISELECT": ("values", "options", "expression", "allowCustomValue", "autoSelectFirst"),
    "INT": ("min", "max"), "FLOAT": ("min", "max"), "DATETIME": ("after", "before"), "DATE": ("after", "before"),
    "TIME": ("after", "before"), "DURATION": ("min", "max"), "FILE": ("allowedFileExtensions",), "JSON": ("schema",),
    "ARRAY": ("itemType",),
}  # fmt: skip
InputTypeName = Literal["STRING", "ENUM", "SELECT", "MULTISELECT", "INT", "FLOAT", "BOOLEAN", "BOOL", "DATETIME", "DATE", "TIME",
                        "DURATION", "FILE", "JSON", "URI", "SECRET", "ARRAY", "YAML", "EMAIL"]  # fmt: skip


@router.get("/api/v1/plugins/inputs", operation_id="allInputTypes", summary="Get all types for an inputs",
            responses={200: {"model": list[models.InputType]}})  # fmt: skip
def input_types() -> JSONResponse:
    return JSONResponse(
        [{"type": t, "cls": "io.kestra.core.models.flows.input." + c} for t, c in INPUT_CLASSES.items()]
    )


@functools.lru_cache(maxsize=32)
def input_schema(kind: str) -> dict[str, Any]:
    """The JSON schema of one input type: the flow model's ``Input`` with the properties that type uses."""
    from roost.flow.model import Input
    from roost.flow.schema import type_schema

    schema = type_schema(Input)
    keep = (*COMMON_INPUT_FIELDS, *INPUT_FIELDS.get(kind, ()))
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k in keep}
    schema["properties"]["type"] = {"const": kind, "title": "Type", "description": "Input type."}
    schema["required"] = [r for r in schema.get("required", []) if r in keep]
    schema["title"] = "io.kestra.core.models.flows.input." + INPUT_CLASSES[kind]
    return schema


@router.get("/api/v1/plugins/inputs/{type}", operation_id="schemaFromInputType", summary="Get the JSON schema for an input type",
            responses={200: {"model": models.DocumentationWithSchema}})  # fmt: skip
def input_type_schema(type: InputTypeName) -> JSONResponse:
    """A JSON schema (draft 7 compatible), as a plugin type's documentation carries it."""
    schema = input_schema(type)
    return JSONResponse({"markdown": schema.get("description"), "schema": {"properties": schema}})


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
