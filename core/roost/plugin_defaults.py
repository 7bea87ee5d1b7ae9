"""Plugin defaults from versioned YAML files: instance-wide and per namespace.

``plugin-defaults/instance.yaml`` applies everywhere; ``plugin-defaults/<namespace>.yaml``
to flows of that namespace and of its children. Each file holds
``pluginDefaults: [{type, values, forced}]`` as in a flow.
"""

from __future__ import annotations

import os
from pathlib import Path

from roost.flow.model import PluginDefault
from roost.flow.yaml import YamlError, decode_source, load_data


def defaults_dir() -> Path | None:
    raw = os.environ.get("ROOST_PLUGIN_DEFAULTS")
    if raw:
        return Path(raw)
    return None


def _read(path: Path) -> list[PluginDefault]:
    if not path.is_file():
        return []
    try:
        data = load_data(decode_source(path.read_bytes())) or {}
    except YamlError as exc:
        raise ValueError(f"plugin defaults {path}: {exc}") from None
    items = data.get("pluginDefaults", []) if isinstance(data, dict) else data
    return [PluginDefault.model_validate(i) for i in items or []]


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
