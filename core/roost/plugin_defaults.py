"""Plugin defaults outside the flows: instance-wide and per namespace.

A defaults document is YAML holding ``pluginDefaults: [{type, values, forced}]`` as in a flow
(a bare list is accepted too). The folder named by ``ROOST_PLUGIN_DEFAULTS`` holds
``instance.yaml`` (every flow) and ``<namespace>.yaml`` (flows of that namespace and of its
children); local runs read it directly. The server keeps every document as revisions in its
store (:mod:`roost.store.defaults`) and imports the folder's files at start-up, so a Git
repository can stay the source.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from roost.flow.model import NAMESPACE, PluginDefault
from roost.flow.yaml import Violation

INSTANCE = ""  # the scope of instance-wide defaults (the namespace key of instance.yaml)


class DefaultsInvalid(Exception):
    """A plugin-defaults document failed validation; ``violations`` lists every problem (path and line)."""

    def __init__(self, violations: list[Violation], ref: str = "") -> None:
        self.violations = violations
        self.ref = ref
        head = f"plugin defaults {ref} are invalid" if ref else "plugin defaults are invalid"
        super().__init__(head + ":\n" + "\n".join(f"  - {v}" for v in violations))


def defaults_dir() -> Path | None:
    raw = os.environ.get("ROOST_PLUGIN_DEFAULTS")
    if raw:
        return Path(raw)
    return None


def scope_label(namespace: str) -> str:
    return "instance" if namespace == INSTANCE else f"namespace {namespace}"


def parse_defaults(source: str, plugins: Any = None, ref: str = "") -> list[PluginDefault]:
    """The defaults of a document, checked as a flow's ``pluginDefaults`` are: each item's shape, and
    (with ``plugins``) that every value names a property some matching installed type has.
    Raises :class:`DefaultsInvalid` with every violation, each with its YAML path and line."""
    from pydantic import ValidationError

    from roost.flow.build import FlowBuilder
    from roost.flow.yaml import Document, YamlError, load_document

    if not source.strip():
        return []
    try:
        doc = load_document(source)
    except YamlError as exc:
        raise DefaultsInvalid([exc.violation], ref) from None
    data = doc.data
    prefix: tuple[Any, ...] = ()
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"pluginDefaults"})
        if unknown:
            raise DefaultsInvalid([Violation(unknown[0], "unexpected key: a defaults document holds only "
                                             "pluginDefaults (a list of {type, values, forced})",
                                             doc.line_of((unknown[0],)))], ref)  # fmt: skip
        data, prefix = data.get("pluginDefaults"), ("pluginDefaults",)
    if data is None:
        return []
    if not isinstance(data, list):
        raise DefaultsInvalid([Violation("pluginDefaults", "expected a list of plugin defaults ({type, values, forced})",
                                         doc.line_of(prefix))], ref)  # fmt: skip
    builder = FlowBuilder(plugins, doc if isinstance(doc, Document) else Document(data))
    out: list[PluginDefault] = []
    for i, item in enumerate(data):
        path = (*prefix, i)
        try:
            pd = PluginDefault.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                builder.pydantic_error(path, PluginDefault, err)
            continue
        if plugins is not None:
            builder._check_default_properties(pd, path)
        out.append(pd)
    if builder.violations:
        raise DefaultsInvalid(builder.violations, ref)
    return out


def dump_defaults(defaults: list[PluginDefault]) -> str:
    """A defaults document (``pluginDefaults:``) from parsed defaults, in the YAML a flow uses."""
    import io

    from ruamel.yaml import YAML

    items = [d.model_dump(mode="json", exclude_defaults=False) for d in defaults]
    for item in items:
        if not item.get("forced"):
            item.pop("forced", None)
    y = YAML()
    y.default_flow_style = False
    buf = io.StringIO()
    y.dump({"pluginDefaults": items}, buf)
    return buf.getvalue()


def scope_of_file(path: Path) -> str | None:
    """The scope a file of the defaults folder is for: ``instance.yaml`` → instance, ``a.b.yaml`` → a.b."""
    import re

    if path.suffix not in (".yaml", ".yml"):
        return None
    if path.stem == "instance":
        return INSTANCE
    return path.stem if re.match(NAMESPACE, path.stem) else None


def _read(path: Path) -> list[PluginDefault]:
    if not path.is_file():
        return []
    return parse_defaults(path.read_text(), ref=str(path))


def defaults_for(namespace: str | None, folder: Path | None = None) -> list[PluginDefault]:
    """Instance defaults first, then each parent namespace's, then the namespace's own (later wins)."""
    folder = folder or defaults_dir()
    if folder is None or not folder.is_dir():
        return []
    out = _read(folder / "instance.yaml")
    if namespace:
        parts = namespace.split(".")
        for i in range(1, len(parts) + 1):
            out += _read(folder / f"{'.'.join(parts[:i])}.yaml")
    return out
