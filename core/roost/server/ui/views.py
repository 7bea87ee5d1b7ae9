"""What the pages show, computed from the server's own data layer (no second one).

Each function takes the :class:`ServerState` and returns plain values a template renders; the
pages call the same store, engine and query functions as the API routes (``search_executions``,
``flow_json``, ``execution_logs``, the asset service, the stored plugin defaults...).
"""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime
from typing import Any

from roost.engine.model import TERMINAL
from roost.server.state import ServerState


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def short_time(value: str | None) -> str:
    when = parse_time(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if when else ""


# -- flows ------------------------------------------------------------------------------------------
def flow_rows(st: ServerState, tenant: str, q: str = "", namespace: str = "") -> list[dict[str, Any]]:
    from roost.server.routes.flows import flow_json

    q = q.lower().strip()
    rows = []
    for ns, fid, rev, src in st.store.list_flows(tenant):
        if namespace and not (ns == namespace or ns.startswith(namespace + ".")):
            continue
        data = flow_json(tenant, ns, fid, rev, src)
        if q and not any(q in str(data.get(k) or "").lower() for k in ("id", "namespace", "description")):
            continue
        rows.append(data)
    rows.sort(key=lambda f: (f["namespace"], f["id"]))
    return rows


def last_states(
    st: ServerState, tenant: str, flows: list[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest execution of each of ``flows`` (namespace, id): one query for the page."""
    import sqlalchemy as sa

    from roost.store.db import executions as t

    if not flows:
        return {}
    wanted = set(flows)
    namespaces = sorted({ns for ns, _ in flows})
    latest = (sa.select(t.c.namespace, t.c.flow_id, sa.func.max(t.c.start_date).label("start"))
              .where(t.c.tenant == tenant, t.c.deleted.is_(False), t.c.namespace.in_(namespaces))
              .group_by(t.c.namespace, t.c.flow_id).subquery())  # fmt: skip
    query = sa.select(t.c.namespace, t.c.flow_id, t.c.id, t.c.state, t.c.start_date).join(
        latest, sa.and_(t.c.namespace == latest.c.namespace, t.c.flow_id == latest.c.flow_id,
                        t.c.start_date == latest.c.start)).where(t.c.tenant == tenant)  # fmt: skip
    with st.store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {(r.namespace, r.flow_id): {"id": r.id, "state": r.state, "start": r.start_date}
            for r in rows if (r.namespace, r.flow_id) in wanted}  # fmt: skip


def revision_diff(old: str, new: str, old_label: str, new_label: str) -> list[tuple[str, str]]:
    """A unified diff as (kind, line) rows: kind is add, del, hunk or ctx."""
    import difflib

    rows = []
    for line in difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_label, new_label, lineterm="", n=3
    ):
        if line.startswith(("---", "+++")):
            continue
        kind = (
            "hunk"
            if line.startswith("@@")
            else "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else "ctx"
        )
        rows.append((kind, line))
    return rows


INPUT_WIDGETS = {"STRING": "text", "EMAIL": "email", "URI": "url", "SECRET": "password", "INT": "number",
                 "FLOAT": "number", "DATETIME": "datetime-local", "DATE": "date", "TIME": "time",
                 "DURATION": "text", "FILE": "file", "JSON": "textarea", "YAML": "textarea", "ARRAY": "textarea",
                 "ENUM": "select", "SELECT": "select", "MULTISELECT": "multiselect", "BOOLEAN": "boolean",
                 "BOOL": "boolean"}  # fmt: skip


def input_fields(flow: Any) -> list[dict[str, Any]]:
    """The Execute form's fields from the flow's typed inputs (secrets never prefilled)."""
    from roost.flow.properties import is_expression

    fields = []
    for inp in flow.inputs:
        widget = INPUT_WIDGETS.get(inp.type, "text")
        values = inp.values if isinstance(inp.values, list) else (inp.options or [])
        default = inp.defaults
        if inp.type == "SECRET" or (isinstance(default, str) and is_expression(default)):
            default = None
        if isinstance(default, dict | list) and widget == "textarea":
            default = json.dumps(default, indent=2)
        fields.append({"id": inp.id, "type": inp.type, "widget": widget, "label": inp.display_name or inp.id,
                       "description": inp.description, "required": inp.required and inp.defaults is None,
                       "default": default, "choices": [str(v) for v in values or []],
                       "accept": ",".join(inp.allowed_file_extensions or []), "step": "any" if inp.type == "FLOAT" else "1"})  # fmt: skip
    return fields


def form_inputs(flow: Any, form: Any) -> dict[str, Any]:
    """The inputs of a submitted Execute form: empty fields left out (defaults apply), files as bytes."""
    from roost.server.routes.executions import NamedBytes

    inputs: dict[str, Any] = {}
    for inp in flow.inputs:
        key = f"input.{inp.id}"
        if inp.type == "MULTISELECT":
            chosen = [str(v) for v in form.getlist(key) if str(v)]
            if chosen:
                inputs[inp.id] = chosen
            continue
        value = form.get(key)
        if hasattr(value, "read"):
            data = NamedBytes(value.file.read())
            if not data and not getattr(value, "filename", ""):
                continue
            data.name = (getattr(value, "filename", None) or inp.id).replace("/", "_").replace(
                "\\", "_"
            ) or inp.id
            inputs[inp.id] = data
        elif value is not None and str(value) != "":
            inputs[inp.id] = str(value)
    return inputs


def parse_labels(text: str) -> list[dict[str, str]]:
    out = []
    for line in text.replace(",", "\n").splitlines():
        key, sep, value = line.strip().partition(":")
        if line.strip():
            if not sep or not key.strip():
                raise ValueError(f"label {line.strip()!r} must be key:value")
            out.append({"key": key.strip(), "value": value.strip()})
    return out


# -- executions -------------------------------------------------------------------------------------
def execution_filters(params: dict[str, str]) -> list[Any]:
    from roost.server.filters import Filter

    out: list[Any] = []
    if params.get("q"):
        out.append(Filter("q", "EQUALS", params["q"]))
    if params.get("namespace"):
        out.append(Filter("namespace", "PREFIX", params["namespace"]))
    if params.get("flowId"):
        out.append(Filter("flowId", "EQUALS", params["flowId"]))
    if params.get("state"):
        out.append(Filter("state", "IN", [params["state"]]))
    if params.get("labels"):
        out.append(
            Filter("labels", "EQUALS", {lbl["key"]: lbl["value"] for lbl in parse_labels(params["labels"])})
        )
    for field, op in (("from", "GREATER_THAN_OR_EQUAL_TO"), ("to", "LESS_THAN_OR_EQUAL_TO")):
        if params.get(field):
            when = parse_time(params[field])
            if when is None:
                raise ValueError(f"{field}: expected a date and time")
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            out.append(Filter("startDate", op, when.isoformat()))
    if params.get("parent"):
        out.append(Filter("triggerExecutionId", "EQUALS", params["parent"]))
    return out


def execution_row(ex: dict[str, Any]) -> dict[str, Any]:
    state = ex.get("state") or {}
    start, end = parse_time(state.get("startDate")), parse_time(state.get("endDate"))
    return {**ex, "start": short_time(state.get("startDate")),
            "duration": human_duration((end - start).total_seconds()) if start and end else ""}  # fmt: skip


def gantt(ex: dict[str, Any]) -> dict[str, Any]:
    """Bars of the task runs on the execution's time line (percentages), with durations and attempts."""
    runs = ex.get("taskRunList") or []
    state = ex.get("state") or {}
    t0 = parse_time(state.get("startDate")) or datetime.now(UTC)
    now = datetime.now(UTC)
    t1 = parse_time(state.get("endDate")) or now
    ends = [parse_time(r["state"].get("endDate")) or now for r in runs]
    t1 = max([t1, *ends]) if ends else t1
    span = max((t1 - t0).total_seconds(), 0.001)
    depth: dict[str, int] = {}
    rows = []
    for run, end in zip(runs, ends, strict=True):
        start = parse_time(run["state"].get("startDate")) or t0
        seconds = (end - start).total_seconds()
        depth[run["id"]] = depth.get(run.get("parentTaskRunId") or "", -1) + 1
        rows.append({"id": run["id"], "taskId": run["taskId"], "value": run.get("value"), "state": run["state"]["current"],
                     "left": max(0.0, (start - t0).total_seconds() / span * 100),
                     "width": max(0.4, seconds / span * 100), "duration": human_duration(seconds),
                     "attempts": len(run.get("attempts") or []) or 1, "depth": min(depth[run["id"]], 8),
                     "ended": run["state"]["current"] in TERMINAL})  # fmt: skip
    return {"rows": rows, "total": human_duration(span), "live": state.get("current") not in TERMINAL}


def output_tree(value: Any) -> Any:
    """Outputs as nested (key, value) rows; storage URIs flagged so the page links them."""
    if isinstance(value, dict):
        return [(str(k), output_tree(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [(f"[{i}]", output_tree(v)) for i, v in enumerate(value)]
    return value


def is_file_uri(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("kestra://")


def preview_file(
    st: ServerState, tenant: str, execution_id: str, path: str, limit: int = 65536
) -> tuple[str, bool]:
    """The first ``limit`` bytes of an execution's file as text (through the API's own access check)."""
    from roost.server.routes.executions import _execution_file, _storage_call

    storage, uri, prefix = _execution_file(st, tenant, execution_id, path)
    with _storage_call(storage.open_read, uri, prefix) as fh:  # any backend; only the preview is read
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text, len(data) > limit


# -- plugins ----------------------------------------------------------------------------------------
def type_doc(cls: type) -> dict[str, Any]:
    """A type's documentation from its schema: properties (required apart), outputs, an example."""
    from roost.flow.schema import type_schema

    schema = type_schema(cls)
    required = set(schema.get("required") or [])
    props = []
    for name, prop in (schema.get("properties") or {}).items():
        if name in ("type",):
            continue
        props.append({"name": name, "type": schema_type(prop), "required": name in required,
                      "dynamic": bool(prop.get("$dynamic")), "default": prop.get("default"),
                      "description": prop.get("description") or "", "enum": enum_of(prop)})  # fmt: skip
    props.sort(key=lambda p: (not p["required"], p["name"]))
    outputs = []
    out_cls = _output_class(cls)
    if out_cls is not None:
        osch = out_cls.model_json_schema(by_alias=True, mode="serialization")
        for name, prop in (osch.get("properties") or {}).items():
            outputs.append(
                {"name": name, "type": schema_type(prop), "description": prop.get("description") or ""}
            )
    example_lines = [f"id: my_{cls.__name__.lower()}", f"type: {getattr(cls, 'type_id', '')}"]
    for p in props:
        if p["required"] and p["name"] != "id":
            example_lines.append(f"{p['name']}: {example_value(p)}")
    return {"schema": schema, "description": (cls.__doc__ or "").strip(), "properties": props,
            "outputs": outputs, "example": "\n".join(example_lines), "aliases": list(getattr(cls, "aliases", ()) or ())}  # fmt: skip


def _output_class(cls: type) -> Any:
    from pydantic import BaseModel

    run = getattr(cls, "run", None)
    if run is None:
        return None
    try:
        hints = typing.get_type_hints(run)
    except Exception:
        return None
    out = hints.get("return")
    return out if isinstance(out, type) and issubclass(out, BaseModel) else None


def schema_type(prop: dict[str, Any]) -> str:
    if "const" in prop:
        return "constant"
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop or "oneOf" in prop:
        kinds = [schema_type(p) for p in prop.get("anyOf", prop.get("oneOf", [])) if p.get("type") != "null"]
        return " | ".join(dict.fromkeys(kinds)) or "any"
    kind = prop.get("type")
    if kind == "array":
        return f"list of {schema_type(prop.get('items') or {})}"
    if kind == "string" and prop.get("format"):
        return f"string ({prop['format']})"
    return str(kind or "any")


def enum_of(prop: dict[str, Any]) -> list[Any]:
    if "enum" in prop:
        return list(prop["enum"])
    for alt in prop.get("anyOf", []) or []:
        if "enum" in alt:
            return list(alt["enum"])
    return []


def example_value(prop: dict[str, Any]) -> str:
    if prop["enum"]:
        return str(prop["enum"][0])
    kind = prop["type"]
    if kind.startswith("list"):
        return "[]"
    if kind in ("integer", "number"):
        return "1"
    if kind == "boolean":
        return "true"
    if kind == "object":
        return "{}"
    return '"..."'


def field_kind(prop: dict[str, Any]) -> str:
    """The form control of a schema property: select, boolean, number, text or yaml (anything nested)."""
    if enum_of(prop):
        return "select"
    kinds = {p.get("type") for p in prop.get("anyOf", [prop]) if p.get("type") != "null"}
    if kinds == {"boolean"}:
        return "boolean"
    if kinds <= {"integer", "number"} and kinds:
        return "number"
    if kinds == {"string"} or (prop.get("$dynamic") and kinds <= {"string", "integer", "number", "boolean"}):
        return "text"
    return "yaml"


def default_form(cls: type, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """A plugin-default form from a type's JSON schema: required fields apart from optional ones."""
    from roost.flow.schema import type_schema

    schema = type_schema(cls)
    required = set(schema.get("required") or [])
    current = current or {}
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        if name in ("id", "type"):
            continue
        kind = field_kind(prop)
        value = current.get(name)
        if kind == "yaml" and value is not None:
            value = _yaml(value)
        fields.append({"name": name, "kind": kind, "required": name in required, "value": value,
                       "description": prop.get("description") or "", "type": schema_type(prop),
                       "enum": [str(e) for e in enum_of(prop)], "dynamic": bool(prop.get("$dynamic"))})  # fmt: skip
    fields.sort(key=lambda f: f["name"])
    return {"required": [f for f in fields if f["required"]], "optional": [f for f in fields if not f["required"]],
            "description": (cls.__doc__ or "").strip().split("\n", 1)[0]}  # fmt: skip


def _yaml(value: Any) -> str:
    import io

    from ruamel.yaml import YAML

    y = YAML()
    y.default_flow_style = False
    buf = io.StringIO()
    y.dump(value, buf)
    return buf.getvalue().rstrip("\n")


def values_from_form(cls: type, form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``values`` of a plugin default from its form (empty fields left out) and any field errors."""
    from roost.flow.schema import type_schema
    from roost.flow.yaml import YamlError, load_document

    schema = type_schema(cls)
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, prop in (schema.get("properties") or {}).items():
        raw = form.get(f"value.{name}")
        if raw is None or str(raw).strip() == "":
            continue
        raw = str(raw)
        kind = field_kind(prop)
        if kind == "boolean":
            values[name] = raw == "true"
        elif kind == "number":
            try:
                values[name] = int(raw) if raw.lstrip("-").isdigit() else float(raw)
            except ValueError:
                errors[name] = "expected a number"
        elif kind == "yaml":
            try:
                values[name] = load_document(raw).data
            except YamlError as exc:
                errors[name] = f"not valid YAML: {exc.violation.message}"
        else:
            values[name] = raw
    return values, errors


def secret_names(st: ServerState, tenant: str, namespace: str) -> tuple[str, list[str] | None]:
    """The backend serving the namespace's secrets and the names it lists (None: it cannot list), never values."""
    secrets = st.engine.runtime(tenant).secrets
    kind = secrets.kind(namespace) if hasattr(secrets, "kind") else getattr(secrets, "kind", "env")
    keys = secrets.keys(namespace) if hasattr(secrets, "keys") else None
    return kind, keys


def file_tree(paths: list[str]) -> list[dict[str, Any]]:
    """Namespace files as nested folders: [{name, path, children|None}]."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part + "/", {})
        node[parts[-1]] = path

    def walk(node: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name in sorted(node, key=lambda n: (not n.endswith("/"), n)):
            value = node[name]
            if isinstance(value, dict):
                out.append(
                    {
                        "name": name.rstrip("/"),
                        "path": prefix + name.rstrip("/"),
                        "children": walk(value, prefix + name),
                    }
                )
            else:
                out.append({"name": name, "path": value, "children": None})
        return out

    return walk(root, "")
