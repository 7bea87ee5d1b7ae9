"""JSON schemas from the task classes: per type, and the flow schema editors use.

Each task slot of the flow schema is a ``oneOf`` over the installed task types
(a LogShipper's ``logExporters`` over the installed log-exporter types), each
branch pinned by ``type: {const: <id>}``; ``Dynamic`` properties carry
``"$dynamic": true`` so editors and forms know an expression is accepted there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from roost.flow.task import plugin_slots, task_slots


class _Schema(GenerateJsonSchema):
    pass


def type_schema(cls: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of one task, trigger or runner type, with the dynamic marker on its properties."""
    schema = cls.model_json_schema(by_alias=True, mode="validation", schema_generator=_Schema)
    props = schema.get("properties", {})
    for name, marker in getattr(cls, "dynamic_fields", lambda: ())():
        alias = cls.model_fields[name].alias or name
        if alias in props:
            props[alias]["$dynamic"] = True
            del marker
    type_id = getattr(cls, "type_id", "")
    if type_id and "type" in props:
        props["type"] = {"const": type_id, "title": "Type", "description": "The plugin type id."}
    schema["title"] = type_id or schema.get("title")
    if cls.__doc__:
        schema["description"] = cls.__doc__.strip()
    return schema


def flow_schema(plugins: Any = None) -> dict[str, Any]:
    """The flow's JSON schema; task slots are a oneOf over installed task types, triggers over trigger types."""
    from roost.flow.model import Flow

    if plugins is None:
        from roost.plugins import get_plugins

        plugins = get_plugins()
    defs: dict[str, Any] = {}
    task_refs, trigger_refs = [], []
    for tid, cls in sorted(plugins.task_types().items()):
        key = tid
        defs[key] = _strip_defs(type_schema(cls), defs)
        task_refs.append({"$ref": f"#/$defs/{key}"})
    for tid, cls in sorted(plugins.trigger_types().items()):
        defs[tid] = _strip_defs(type_schema(cls), defs)
        trigger_refs.append({"$ref": f"#/$defs/{tid}"})
    exporter_refs = []
    for tid, cls in sorted(plugins.log_exporter_types().items()):
        defs[tid] = _strip_defs(type_schema(cls), defs)
        exporter_refs.append({"$ref": f"#/$defs/{tid}"})
    defs["__task"] = {"oneOf": task_refs}
    defs["__trigger"] = {"oneOf": trigger_refs}
    defs["__logExporter"] = {"oneOf": exporter_refs}
    flow = _strip_defs(Flow.model_json_schema(by_alias=True), defs)
    for key in ("tasks", "errors", "finally", "afterExecution"):
        if key in flow["properties"]:
            flow["properties"][key] = {"type": "array", "items": {"$ref": "#/$defs/__task"},
                                       "description": flow["properties"][key].get("description", "")}  # fmt: skip
    flow["properties"]["triggers"] = {"type": "array", "items": {"$ref": "#/$defs/__trigger"}}
    # child task slots of flowable types point at the same oneOf
    for tid, cls in plugins.task_types().items():
        for name, kind in task_slots(cls).items():
            alias = cls.model_fields[name].alias or name
            prop = defs[tid].get("properties", {}).get(alias)
            if prop is None:
                continue
            if kind == "list":
                defs[tid]["properties"][alias] = {"type": "array", "items": {"$ref": "#/$defs/__task"}}
            elif kind == "dict":
                defs[tid]["properties"][alias] = {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"$ref": "#/$defs/__task"}},
                }
            elif kind == "single":
                defs[tid]["properties"][alias] = {"$ref": "#/$defs/__task"}
        for name, base in plugin_slots(cls).items():
            defs.pop(base.__name__, None)  # the base class's own schema, replaced by the oneOf
            alias = cls.model_fields[name].alias or name
            prop = defs[tid].get("properties", {}).get(alias)
            if prop is not None:
                prop.pop("items", None)
                defs[tid]["properties"][alias] = {
                    **prop,
                    "type": "array",
                    "items": {"$ref": "#/$defs/__logExporter"},
                }
    flow["$defs"] = defs
    flow["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    flow["title"] = "Roost flow"
    return flow


def _strip_defs(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    for k, v in schema.pop("$defs", {}).items():
        defs.setdefault(k, v)
    return schema
