"""From YAML to a validated :class:`Flow`, collecting every violation with its path and line.

Tasks and triggers are resolved through the plugin registry; plugin defaults
are merged in before validation (so a property a default supplies is not
missing); pydantic's errors are reworded into messages that say what was
expected.
"""

from __future__ import annotations

import copy
import json
import re
import typing
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from importlib import resources
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from roost.flow.model import USER_SYSTEM_LABELS, Flow, PluginDefault, child_tasks
from roost.flow.properties import is_expression
from roost.flow.task import PluginType, Task, Trigger
from roost.flow.yaml import Document, Path, Violation, YamlError, format_path, load_document
from roost.plugins import is_old_type_id

TASK_LISTS = ("tasks", "errors", "finally", "afterExecution")


@dataclass
class Notice:
    """Something valid that is worth telling: a deprecated property or type, an old type id.

    ``kind`` is ``deprecated`` (Kestra's ``deprecationPaths``), ``relocated`` (an old type id,
    Kestra's ``infos``: "old is replaced by new") or ``warning`` (Kestra's ``warnings``).
    """

    path: str
    message: str
    line: int | None = None
    kind: str = "deprecated"
    replaced: tuple[str, str] | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path or '<root>'}: {self.message}{where}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, "line": self.line, "kind": self.kind}


class FlowInvalid(Exception):
    """A flow failed validation; ``violations`` lists every problem."""

    def __init__(self, violations: list[Violation], flow_ref: str = "") -> None:
        self.violations = violations
        self.flow_ref = flow_ref
        head = f"flow {flow_ref} is invalid" if flow_ref else "flow is invalid"
        super().__init__(head + ":\n" + "\n".join(f"  - {v}" for v in violations))


@cache
def task_slots(cls: type) -> dict[str, str]:
    """Fields of ``cls`` that hold tasks: ``list`` (list[Task]), ``dict`` (dict[str, list[Task]]) or ``single``."""
    slots: dict[str, str] = {}
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return slots
    for name, info in cls.model_fields.items():
        kind = _slot_kind(info.annotation)
        if kind:
            slots[name] = kind
    return slots


@cache
def plugin_slots(cls: type) -> dict[str, type[PluginType]]:
    """Fields of ``cls`` typed ``list[X]`` where ``X`` is a plugin type other than a task (log exporters):
    name → ``X``. Their items are resolved by ``type`` through the registry, as tasks are."""
    slots: dict[str, type[PluginType]] = {}
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return slots
    for name, info in cls.model_fields.items():
        tp = _unwrap_optional(info.annotation)
        args = typing.get_args(tp)
        if (
            typing.get_origin(tp) is list
            and args
            and isinstance(args[0], type)
            and issubclass(args[0], PluginType)
            and not issubclass(args[0], Task | Trigger)
        ):
            slots[name] = args[0]
    return slots


def _unwrap_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType) and args else tp


def _is_task(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Task)


def _slot_kind(tp: Any) -> str | None:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for a in args:
            kind = _slot_kind(a)
            if kind:
                return kind
        return None
    if origin is list and args and _is_task(args[0]):
        return "list"
    if (
        origin is list
        and args
        and isinstance(args[0], type)
        and issubclass(args[0], BaseModel)
        and task_slots(args[0])
    ):
        return "models"
    if origin is dict and len(args) == 2 and _slot_kind(args[1]) == "list":
        return "dict"
    if _is_task(tp):
        return "single"
    return None


def _alias(cls: type[BaseModel], name: str) -> str:
    field = cls.model_fields[name]
    return field.alias or name


def known_properties(cls: type[BaseModel]) -> list[str]:
    return sorted((f.alias or n) for n, f in cls.model_fields.items())


def merge(base: Any, over: Any) -> Any:
    """Deep merge: maps merge key by key, anything else is replaced by ``over``."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def matches(default_type: str, type_id: str) -> bool:
    return type_id == default_type or type_id.startswith(default_type + ".")


@cache
def registry_index() -> dict[str, str]:
    """Type id → plugin package, from the suite's registry catalogue."""
    candidates = [FsPath(__file__).resolve().parents[3] / "registry" / "index.json"]
    try:
        candidates.insert(0, FsPath(str(resources.files("roost") / "registry_index.json")))
    except (ModuleNotFoundError, TypeError):
        pass
    for path in candidates:
        if path.is_file():
            data = json.loads(path.read_text())
            return {t: pkg["package"] for pkg in data.get("plugins", []) for t in pkg.get("types", [])}
    return {}


class FlowBuilder:
    """Builds one flow from a YAML document, collecting violations instead of stopping at the first."""

    def __init__(self, plugins: Any, doc: Document, defaults: list[PluginDefault] | None = None) -> None:
        self.plugins = plugins
        self.doc = doc
        self.outer_defaults = list(defaults or [])
        self.violations: list[Violation] = []
        self.notices: list[Notice] = []
        self.task_ids: dict[str, Path] = {}
        self.task_paths: dict[int, Path] = {}

    # -- reporting -------------------------------------------------------------------------------
    def add(self, path: Path, message: str) -> None:
        self.violations.append(Violation(format_path(path), message, self.doc.line_of(path)))

    def notice(self, path: Path, message: str, kind: str = "deprecated",
               replaced: tuple[str, str] | None = None) -> None:  # fmt: skip
        self.notices.append(Notice(format_path(path), message, self.doc.line_of(path), kind, replaced))

    def deprecations(self, cls: type[BaseModel], data: Any, path: Path) -> None:
        """Notices for deprecated properties (and deprecated spellings) used in ``data``, nested models included."""
        if not isinstance(data, dict):
            return
        renamed, fields = _deprecation_plan(cls)
        for old, new in renamed.items():
            if old in data:
                self.notice((*path, old), f"property '{old}' is deprecated; use '{new}'")
        for key, message, inner in fields:
            if key not in data:
                continue
            if message is not None:
                self.notice((*path, key), message)
            if inner is not None:
                value = data[key]
                for i, item in enumerate(value) if isinstance(value, list) else [(None, value)]:
                    self.deprecations(inner, item, (*path, key) if i is None else (*path, key, i))

    # -- flow ------------------------------------------------------------------------------------
    def build(self) -> Flow | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.add(
                (), f"expected a flow (a mapping with id, namespace and tasks), got {type(data).__name__}"
            )
            return None
        flow_defaults = self._flow_defaults(data)
        # Non-forced values: instance < namespace < flow < task. Forced: flow < namespace < instance, over the task.
        self.defaults = [*self.outer_defaults, *flow_defaults]
        built: dict[str, list[Any]] = {}
        for key in TASK_LISTS:
            raw = data.get(key)
            if raw is None:
                continue
            if not isinstance(raw, list):
                self.add((key,), f"expected a list of tasks, got {_kind(raw)}")
                continue
            built[key] = [
                t for i, item in enumerate(raw) if (t := self.build_task(item, (key, i))) is not None
            ]
        triggers: list[Trigger] = []
        if isinstance(data.get("triggers"), list):
            trigger_ids: dict[str, Path] = {}
            for i, item in enumerate(data["triggers"]):
                trig = self.build_plugin(item, ("triggers", i), Trigger)
                if trig is not None:
                    if trig.id in trigger_ids:
                        self.add(("triggers", i, "id"), f"duplicate trigger id '{trig.id}'")
                    trigger_ids[trig.id] = ("triggers", i)
                    triggers.append(trig)  # type: ignore[arg-type]
        elif "triggers" in data:
            self.add(("triggers",), f"expected a list of triggers, got {_kind(data['triggers'])}")

        # a property set to null is a property not set, as Jackson reads it (``defaults: null``)
        flow_data = {k: v for k, v in data.items() if k not in (*TASK_LISTS, "triggers") and v is not None}
        if isinstance(flow_data.get("inputs"), list):
            flow_data["inputs"] = [_without_nulls(x) for x in flow_data["inputs"]]
        self.deprecations(Flow, flow_data, ())
        flow_data.update(built)
        flow_data["triggers"] = triggers
        empty_because_broken = {k for k in built if not built[k] and data.get(k)}
        reported = {k for k in TASK_LISTS if k in data and k not in built}
        flow: Flow | None = None
        try:
            flow = Flow.model_validate(flow_data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                if loc and loc[0] in empty_because_broken and err["type"] == "too_short":
                    continue
                if loc and loc[0] in reported:
                    continue
                if loc == () and err["type"] == "missing":
                    continue
                self.pydantic_error((), Flow, err)
        self._flow_checks(data, flow)
        if self.violations:
            return None
        return flow

    def _flow_defaults(self, data: dict[str, Any]) -> list[PluginDefault]:
        out: list[PluginDefault] = []
        for key in ("pluginDefaults", "taskDefaults"):
            raw = data.get(key)
            if raw is None:
                continue
            if not isinstance(raw, list):
                self.add((key,), f"expected a list of plugin defaults, got {_kind(raw)}")
                continue
            for i, item in enumerate(raw):
                try:
                    pd = PluginDefault.model_validate(item)
                except ValidationError as exc:
                    for err in exc.errors():
                        self.pydantic_error((key, i), PluginDefault, err)
                    continue
                for bad in self._check_default_properties(pd, (key, i)):
                    pd.values.pop(bad, None)
                out.append(pd)
        return out

    def _check_default_properties(self, pd: PluginDefault, path: Path) -> list[str]:
        """A default naming a property that no matching type has is an error; returns those properties."""
        types = [cls for tid, cls in self.plugins.types.items() if matches(pd.type, tid)]
        bad: list[str] = []
        if not types:
            return bad  # defaults for plugins not installed here are kept, as Kestra does
        for prop in pd.values:
            if not any(prop in _accepted_keys(cls) for cls in types):
                known = sorted(set().union(*(set(known_properties(c)) for c in types)) - {"id", "type"})
                self.add(
                    (*path, "values", prop),
                    f"unknown property '{prop}' for type '{pd.type}'; known properties: {', '.join(known)}",
                )
                bad.append(prop)
        return bad

    def _flow_checks(self, data: dict[str, Any], flow: Flow | None) -> None:
        inputs = data.get("inputs")
        if isinstance(inputs, list):
            seen: set[str] = set()
            for i, item in enumerate(inputs):
                key = (
                    "id" if isinstance(item, dict) and "id" in item else "name"
                )  # ``name``: Kestra's old spelling
                if isinstance(item, dict) and isinstance(item.get(key), str):
                    if item[key] in seen:
                        self.add(("inputs", i, key), f"duplicate input id '{item[key]}'")
                    seen.add(item[key])
                    dep = item.get("dependsOn")
                    if isinstance(dep, dict):
                        for name in dep.get("inputs") or []:
                            if not any(
                                isinstance(x, dict) and name in (x.get("id"), x.get("name")) for x in inputs
                            ):
                                self.add(
                                    ("inputs", i, "dependsOn", "inputs"), f"depends on unknown input '{name}'"
                                )
        labels = data.get("labels")
        keys: list[tuple[Path, Any]] = []
        if isinstance(labels, dict):
            keys = [(("labels", k), k) for k in labels]
        elif isinstance(labels, list):
            keys = [(("labels", i, "key"), x.get("key")) for i, x in enumerate(labels) if isinstance(x, dict)]
        for path, key in keys:
            if isinstance(key, str) and key.startswith("system.") and key not in USER_SYSTEM_LABELS:
                self.add(
                    path,
                    f"label '{key}' is reserved: labels starting with 'system.' are set by the system "
                    f"(users may set only {', '.join(sorted(USER_SYSTEM_LABELS))})",
                )
        if flow is None:
            return
        for i, trig in enumerate(flow.triggers):
            if trig.type_id == "io.kestra.plugin.core.trigger.Flow" and not trig.conditions \
                    and getattr(trig, "preconditions", None) is None:  # fmt: skip
                self.notice(("triggers", i), "This flow will be triggered for EVERY execution of EVERY flow on your "
                            f"instance. We recommend adding the preconditions property to the Flow trigger '{trig.id}'.",
                            "warning")  # fmt: skip
        for task in flow.all_tasks():
            check = getattr(task, "check_in_flow", None)
            if check is not None:
                for rel, message in check(flow):
                    path = self.task_paths.get(id(task), ())
                    self.add((*path, *rel), message)

    # -- tasks and triggers -----------------------------------------------------------------------
    def build_task(self, data: Any, path: Path) -> Task | None:
        task = self.build_plugin(data, path, Task)
        if task is not None:
            if task.id in self.task_ids:
                self.add(
                    (*path, "id"),
                    f"duplicate task id '{task.id}' (also at {format_path(self.task_ids[task.id])})",
                )
            else:
                self.task_ids[task.id] = path
            self.task_paths[id(task)] = path
        return task  # type: ignore[return-value]

    def build_plugin(self, data: Any, path: Path, base: type[PluginType]) -> PluginType | None:
        what = base.plugin_kind
        if not isinstance(data, dict):
            self.add(path, f"expected a {what} (a mapping with id and type), got {_kind(data)}")
            return None
        type_id = data.get("type")
        if not isinstance(type_id, str):
            self.add(
                path,
                "missing required property 'type'"
                if type_id is None
                else f"'type' must be a string, got {_kind(type_id)}",
            )
            return None
        cls = self.plugins.resolve(type_id)
        if cls is None or not issubclass(cls, base):
            self.add((*path, "type"), self._unknown_type(type_id, base))
            return None
        if type_id != cls.type_id and is_old_type_id(type_id):
            self.notice((*path, "type"), f"type '{type_id}' is deprecated; it is replaced by '{cls.type_id}'",
                        "relocated", (type_id, cls.type_id))  # fmt: skip
        deprecated = getattr(cls, "deprecated", None)
        if deprecated:
            self.notice(path, f"type '{cls.type_id}' is deprecated; {deprecated}")
        values = _without_nulls(self._with_defaults(type_id, data))
        self.deprecations(cls, values, path)
        n_before = len(self.violations)
        for name, kind in task_slots(cls).items():
            key = _alias(cls, name)
            if key not in values:
                continue
            raw = values[key]
            if kind == "list":
                if not isinstance(raw, list):
                    self.add((*path, key), f"expected a list of tasks, got {_kind(raw)}")
                    values[key] = []
                    continue
                values[key] = [
                    t for i, item in enumerate(raw) if (t := self.build_task(item, (*path, key, i)))
                ]
            elif kind == "dict":
                if not isinstance(raw, dict):
                    self.add((*path, key), f"expected a map of task lists, got {_kind(raw)}")
                    values[key] = {}
                    continue
                out = {}
                for case, items in raw.items():
                    if not isinstance(items, list):
                        self.add((*path, key, case), f"expected a list of tasks, got {_kind(items)}")
                        continue
                    out[case] = [
                        t for i, it in enumerate(items) if (t := self.build_task(it, (*path, key, case, i)))
                    ]
                values[key] = out
            elif kind == "models":
                if not isinstance(raw, list):
                    self.add((*path, key), f"expected a list, got {_kind(raw)}")
                    values[key] = []
                    continue
                inner_cls = typing.get_args(_unwrap_optional(cls.model_fields[name].annotation))[0]
                out_models = []
                for i, item in enumerate(raw):
                    if not isinstance(item, dict):
                        self.add((*path, key, i), f"expected a mapping, got {_kind(item)}")
                        continue
                    item = dict(item)
                    for inner_name in task_slots(inner_cls):
                        inner_key = _alias(inner_cls, inner_name)
                        if inner_key in item:
                            item[inner_key] = self.build_task(item[inner_key], (*path, key, i, inner_key))
                    out_models.append(item)
                values[key] = out_models
            else:
                values[key] = self.build_task(raw, (*path, key))
        for name, item_base in plugin_slots(cls).items():
            key = _alias(cls, name)
            raw = values.get(key)
            if raw is None:
                continue
            if not isinstance(raw, list):
                self.add((*path, key), f"expected a list of {item_base.plugin_kind}s, got {_kind(raw)}")
                values[key] = []
                continue
            values[key] = [
                p for i, item in enumerate(raw) if (p := self.build_plugin(item, (*path, key, i), item_base))
            ]
        if len(self.violations) > n_before:
            return None
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            grouped = _group_dynamic(cls, exc.errors())
            for err in grouped:
                self.pydantic_error(path, cls, err)
            return None

    def _with_defaults(self, type_id: str, data: dict[str, Any]) -> dict[str, Any]:
        matching = [d for d in self.defaults if matches(d.type, type_id)]
        if not matching:
            return dict(data)
        values: dict[str, Any] = {}
        for d in matching:
            if not d.forced:
                values = merge(values, d.values)
        values = merge(values, data)
        for d in reversed(matching):  # forced: the instance's (an administrator's) have the last word
            if d.forced:
                values = merge(values, d.values)
        values["type"] = data["type"]
        if "id" in data:
            values["id"] = data["id"]
        return values

    def _unknown_type(self, type_id: str, base: type[PluginType]) -> str:
        what = base.plugin_kind
        msg = f"unknown {what} type '{type_id}'"
        package = registry_index().get(type_id)
        if package:
            return msg + (
                f"; it is provided by the plugin package '{package}' (pip install {package}, or"
                " from a Roost checkout pip install '.[all]' for the whole suite)"
            )
        close = [t for t in self.plugins.close_matches(type_id) if issubclass(self.plugins.types[t], base)]
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
        return msg

    def pydantic_error(self, path: Path, cls: type[BaseModel], err: Any) -> None:
        # a union told apart by `type` puts the chosen type id in the location: not part of the YAML path
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _TYPE_ID.fullmatch(p)))
        kind = err["type"]
        if kind == "missing":
            self.add((*path, *loc), f"missing required property '{loc[-1]}'")
            return
        if kind == "extra_forbidden":
            owner = _model_at(cls, loc[:-1]) or cls
            known = ", ".join(p for p in known_properties(owner) if p not in ("type",))
            self.add((*path, *loc), f"unknown property '{loc[-1]}'; known properties: {known}")
            return
        self.add((*path, *loc), reword(err))


_TYPE_ID = re.compile(r"[a-z][a-z0-9]*(\.[A-Za-z0-9_]+){2,}")


def reword(err: dict[str, Any]) -> str:
    """pydantic's error as a sentence saying what was expected and what was found."""
    kind, ctx = err["type"], err.get("ctx") or {}
    got = err.get("input")
    shown = json.dumps(got, default=str)[:80] if not isinstance(got, dict) else "a mapping"
    if kind == "union_tag_invalid":
        return f"type {ctx.get('tag')!r} is not supported here; supported types: {ctx.get('expected_tags')}"
    if kind.startswith("value_error") or kind == "assertion_error":
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return msg[0].lower() + msg[1:] if msg else msg
    expected = {
        "literal_error": lambda: f"one of {ctx.get('expected')}",
        "int_parsing": lambda: "an integer",
        "int_type": lambda: "an integer",
        "int_from_float": lambda: "an integer",
        "float_parsing": lambda: "a number",
        "float_type": lambda: "a number",
        "bool_parsing": lambda: "true or false",
        "bool_type": lambda: "true or false",
        "string_type": lambda: "a string",
        "list_type": lambda: "a list",
        "dict_type": lambda: "a mapping",
        "model_type": lambda: "a mapping",
        "model_attributes_type": lambda: "a mapping",
        "string_pattern_mismatch": lambda: f"a value matching {ctx.get('pattern')}",
        "string_too_long": lambda: f"at most {ctx.get('max_length')} characters",
        "greater_than_equal": lambda: f"a value of at least {ctx.get('ge')}",
        "greater_than": lambda: f"a value above {ctx.get('gt')}",
        "less_than_equal": lambda: f"a value of at most {ctx.get('le')}",
        "too_short": lambda: f"at least {ctx.get('min_length')} item(s)",
        "time_delta_parsing": lambda: "an ISO-8601 duration (e.g. PT5M)",
        "time_delta_type": lambda: "an ISO-8601 duration (e.g. PT5M)",
        "datetime_parsing": lambda: "an ISO-8601 date-time",
        "datetime_from_date_parsing": lambda: "an ISO-8601 date-time",
    }.get(kind)
    if expected is not None:
        return f"expected {expected()}, got {shown}"
    msg = str(err["msg"])
    return f"{msg[0].lower() + msg[1:]}, got {shown}"


@cache
def _deprecation_plan(cls: type[BaseModel]) -> tuple[dict[str, str], tuple[tuple[str, str | None, Any], ...]]:
    """What :meth:`FlowBuilder.deprecations` looks at in a model: renamed properties, deprecated ones, and
    nested models (not tasks) to walk into; computed once per class (validation stays fast)."""
    fields = []
    for name, info in cls.model_fields.items():
        key = info.alias or name
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        message = None
        if extra.get("deprecated"):
            instead = extra.get("replacedBy")
            message = f"property '{key}' is deprecated" + (f"; use '{instead}'" if instead else "")
        inner = _inner_model(info.annotation)
        if inner is not None and (
            issubclass(inner, PluginType) or task_slots(cls).get(name) or not _has_deprecations(inner)
        ):
            inner = None
        if message is not None or inner is not None:
            fields.append((key, message, inner))
    return dict(getattr(cls, "deprecated_aliases", {})), tuple(fields)


def _has_deprecations(cls: type[BaseModel]) -> bool:
    renamed, fields = _deprecation_plan(cls)
    return bool(renamed or fields)


def _without_nulls(data: Any) -> Any:
    """A mapping without its null values: Kestra treats a property set to null as not set."""
    if not isinstance(data, dict):
        return data
    return {k: v for k, v in data.items() if v is not None}


def _accepted_keys(cls: type[BaseModel]) -> set[str]:
    return {f.alias or n for n, f in cls.model_fields.items()} | set(cls.model_fields)


def _model_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: Any = cls
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next(
            (f for n, f in current.model_fields.items() if (f.alias or n) == part or n == part), None
        )
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _group_dynamic(cls: type[PluginType], errors: list[Any]) -> list[dict[str, Any]]:
    """Collapse pydantic's per-branch union errors on ``Dynamic`` fields into one clear error."""
    dynamic = {(cls.model_fields[n].alias or n): m for n, m in cls.dynamic_fields()}
    out: list[dict[str, Any]] = []
    done: set[str] = set()
    for err in errors:
        loc = tuple(err["loc"])
        field = loc[0] if loc else None
        if isinstance(field, str) and field in dynamic and err["type"] not in ("missing", "extra_forbidden"):
            if field in done:
                continue
            done.add(field)
            inner = dynamic[field].inner
            name = _type_name(inner)
            got = err.get("input")
            if isinstance(got, str) and not is_expression(got):
                msg = f"expected {name} or a {{{{ expression }}}}, got {json.dumps(got)[:80]}"
            else:
                msg = f"expected {name} or a {{{{ expression }}}}, got {_kind(got)}"
            out.append({"loc": (field,), "type": "value_error", "msg": msg, "input": got})
            continue
        out.append(err)
    return out


def _type_name(tp: Any) -> str:
    names = {
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        str: "a string",
        dict: "a mapping",
        list: "a list",
    }
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin in names:
        return names[origin]
    if getattr(tp, "__name__", "") == "timedelta" or typing.get_args(tp)[:1] == (timedelta,):
        return "an ISO-8601 duration (e.g. PT5M)"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


# -- entry points ------------------------------------------------------------------------------------
def parse_flow(
    source: str,
    plugins: Any = None,
    defaults: list[PluginDefault] | None = None,
    ref: str = "",
) -> Flow:
    """Parse and validate one flow; raises :class:`FlowInvalid` listing every violation."""
    if plugins is None:
        from roost.plugins import get_plugins

        plugins = get_plugins()
    try:
        doc = load_document(source)
    except YamlError as exc:
        raise FlowInvalid([exc.violation], ref) from None
    builder = FlowBuilder(plugins, doc, defaults)
    flow = builder.build()
    if flow is None:
        data = doc.data if isinstance(doc.data, dict) else {}
        name = ref or f"{data.get('namespace', '?')}.{data.get('id', '?')}"
        raise FlowInvalid(builder.violations, name)
    flow._source = source
    flow._notices = builder.notices
    return flow


def flow_notices(flow: Flow) -> list[Notice]:
    """Deprecations and warnings found when ``flow`` was parsed (empty for a flow built in code)."""
    return list(flow._notices or [])


def flow_source(flow: Flow) -> str:
    src = flow._source
    if src:
        return src
    from roost.flow.yaml import dump

    return dump(flow.model_dump(by_alias=True, exclude_defaults=True, mode="json", serialize_as_any=True))


def validate_source(
    source: str, plugins: Any = None, defaults: list[PluginDefault] | None = None
) -> list[Violation]:
    try:
        parse_flow(source, plugins, defaults)
    except FlowInvalid as exc:
        return exc.violations
    return []


__all__ = [
    "FlowBuilder",
    "FlowInvalid",
    "Notice",
    "child_tasks",
    "flow_notices",
    "flow_source",
    "merge",
    "parse_flow",
    "plugin_slots",
    "task_slots",
    "validate_source",
]
