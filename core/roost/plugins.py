"""Plugin discovery and the type registry.

Plugins are found through the ``roost`` entry-point group; the built-in plugin
is registered the same way a third-party one is. ``ROOST_LOAD_PLUGINS`` (a
comma list) loads only those; ``ROOST_DISABLE_PLUGINS`` skips some. A plugin
that fails to import is reported in :attr:`Plugins.broken` and skipped.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from roost import hookspecs
from roost.flow.log_export import LogExporter
from roost.flow.task import PluginType, Task, TaskRunner, Trigger

BUILTIN_PLUGINS = ("roost.builtin.plugin",)
TYPE_HOOKS = (
    "register_task_types",
    "register_trigger_types",
    "register_task_runners",
    "register_log_exporters",
)
"""The hooks that register classes by type id (tasks, triggers, task runners, log exporters)."""

# Kestra maps the type ids of its older packages onto today's through plugin aliases: a flow naming
# ``io.kestra.core.tasks.log.Log`` still runs (and validates with a deprecation notice).
LEGACY_PACKAGES = {
    "io.kestra.core.tasks.log.": "io.kestra.plugin.core.log.",
    "io.kestra.core.tasks.debugs.": "io.kestra.plugin.core.debug.",
    "io.kestra.core.tasks.executions.": "io.kestra.plugin.core.execution.",
    "io.kestra.core.tasks.flows.": "io.kestra.plugin.core.flow.",
    "io.kestra.core.tasks.states.": "io.kestra.plugin.core.state.",
    "io.kestra.core.tasks.storages.": "io.kestra.plugin.core.storage.",
    "io.kestra.core.tasks.outputs.": "io.kestra.plugin.core.output.",
    "io.kestra.core.tasks.trigger.": "io.kestra.plugin.core.trigger.",
    "io.kestra.core.tasks.namespace.": "io.kestra.plugin.core.namespace.",
    "io.kestra.core.tasks.templating.": "io.kestra.plugin.core.templating.",
    "io.kestra.core.tasks.kv.": "io.kestra.plugin.core.kv.",
    "io.kestra.core.tasks.http.": "io.kestra.plugin.core.http.",
    "io.kestra.plugin.fs.http.": "io.kestra.plugin.core.http.",
    "io.kestra.core.models.triggers.types.": "io.kestra.plugin.core.trigger.",
}
LEGACY_NAMES = {"io.kestra.core.tasks.executions.Counts": "io.kestra.plugin.core.execution.Count"}


# Type ids Kestra renamed and keeps as aliases (its "X is replaced by Y" infos); other aliases are
# spellings of equal standing (the two ids of the asset tasks, used side by side in Kestra 1.3).
RENAMED = frozenset({"io.kestra.plugin.core.flow.Flow", "io.kestra.plugin.core.flow.WaitFor"})


def is_old_type_id(type_id: str) -> bool:
    """True for a type id Kestra keeps only for older flows (validation notes the replacement)."""
    return type_id in RENAMED or type_id.startswith("io.kestra.core.") or relocated_type(type_id) is not None


def relocated_type(type_id: str) -> str | None:
    """Today's id of a type id from one of Kestra's older packages, or None."""
    if type_id in LEGACY_NAMES:
        return LEGACY_NAMES[type_id]
    for old, new in LEGACY_PACKAGES.items():
        if type_id.startswith(old):
            return new + type_id[len(old) :]
    return None


class PluginError(Exception):
    """A plugin is malformed (e.g. two plugins claim one type id)."""


@dataclass(frozen=True)
class LazyType:
    """A type registered by name: its module is imported only when the type is first used.

    ``register(LazyType("io.example.Task", "pkg.tasks:Task"))`` keeps flow loading from importing
    every task module (and SDK) of a plugin; the class must declare the same id and aliases.
    """

    type_id: str
    target: str  # "package.module:ClassName"
    aliases: tuple[str, ...] = ()

    def load(self) -> type[PluginType]:
        module, _, attr = self.target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if cls.type_id != self.type_id or tuple(getattr(cls, "type_aliases", ())) != tuple(self.aliases):
            raise PluginError(
                f"{self.target} declares type {cls.type_id!r} (aliases {cls.type_aliases}) but was registered "
                f"as {self.type_id!r} (aliases {self.aliases})"
            )
        return cls


@dataclass
class PluginInfo:
    name: str
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    distribution: str | None = None


@dataclass
class BrokenPlugin:
    name: str
    error: str


class Plugins:
    """A typed wrapper around pluggy's manager: one method per hook, a registry of types."""

    def __init__(self, load_entry_points: bool = True, builtins: Iterable[str] = BUILTIN_PLUGINS) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.broken: list[BrokenPlugin] = []
        self.info: dict[str, PluginInfo] = {}
        self._type_map: dict[str, type[PluginType]] = {}
        self._runner_map: dict[str, type[TaskRunner]] = {}
        self._owner: dict[str, str] = {}
        self._loaded: set[str] = set()
        self._lazy: dict[str, LazyType] = {}
        self._all_loaded = False
        self._named: dict[str, dict[str, Callable[..., Any]]] = {}
        self._lock = threading.RLock()
        for mod in builtins:
            self.register_module(importlib.import_module(mod), name="core", version=_core_version())
        if load_entry_points:
            self._load_entry_points()
        self.pm.check_pending()

    # -- discovery -------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        only = _env_list("ROOST_LOAD_PLUGINS")
        skip = _env_list("ROOST_DISABLE_PLUGINS")
        seen: set[str] = set()
        for ep in metadata.entry_points(group=hookspecs.PROJECT):
            if ep.name in seen or (only is not None and ep.name not in only) or ep.name in (skip or ()):
                continue
            seen.add(ep.name)
            dist = ep.dist
            try:
                module = ep.load()
            except Exception as exc:  # one broken plugin never stops the others
                self.broken.append(BrokenPlugin(ep.name, f"{type(exc).__name__}: {exc}"))
                print(f"roost: plugin {ep.name!r} skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            self.register_module(
                module,
                name=ep.name,
                version=dist.version if dist else "unknown",
                distribution=dist.metadata["Name"] if dist else None,
            )

    def register_module(
        self, module: ModuleType | object, name: str, version: str = "0", distribution: str | None = None
    ) -> None:
        """Register a module (or object) of hookimpls as plugin ``name``."""
        if self.pm.get_plugin(name) is not None:
            return
        self.pm.register(module, name=name)
        hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        mod_name = getattr(module, "__name__", type(module).__name__)
        self.info[name] = PluginInfo(name, version, mod_name, hooks, distribution=distribution)
        self._all_loaded = False
        self._named.clear()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.info.pop(name, None)
        self._loaded.discard(name)
        for tid in [t for t, owner in self._owner.items() if owner == name]:
            del self._owner[tid]
            self._type_map.pop(tid, None)
            self._runner_map.pop(tid, None)
        self._named.clear()

    # -- types -----------------------------------------------------------------------------------
    # Types load plugin by plugin, on demand: a flow that uses only core types never imports the
    # task modules (and SDKs) of the other plugins. ``types`` asks every plugin.
    def _load_plugin(self, plugin_name: str) -> None:
        """Ask one plugin for its types (once); a plugin whose types fail to import is skipped."""
        if plugin_name in self._loaded:
            return
        self._loaded.add(plugin_name)
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is None:
            return
        found: list[Any] = []
        try:
            for hook in TYPE_HOOKS:
                self._call_one(plugin, hook, register=lambda *classes, _f=found: _f.extend(classes))
        except Exception as exc:
            self.broken.append(BrokenPlugin(plugin_name, f"{type(exc).__name__}: {exc}"))
            print(f"roost: plugin {plugin_name!r} skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
            self.pm.unregister(name=plugin_name)
            self.info.pop(plugin_name, None)
            return
        info = self.info.get(plugin_name)
        for cls in found:
            if isinstance(cls, LazyType):
                for tid in (cls.type_id, *cls.aliases):
                    self._claim(tid, plugin_name)
                    self._lazy[tid] = cls
                if info is not None and cls.type_id not in info.types:
                    info.types.append(cls.type_id)
                continue
            if not cls.type_id:
                raise PluginError(f"plugin {plugin_name!r}: {cls.__name__} has no type id")
            for tid in (cls.type_id, *getattr(cls, "type_aliases", ())):
                self._claim(tid, plugin_name)
                (self._runner_map if issubclass(cls, TaskRunner) else self._type_map)[tid] = cls
            if info is not None and cls.type_id not in info.types:
                info.types.append(cls.type_id)

    def _call_one(self, plugin: object, hook: str, **kwargs: Any) -> list[Any]:
        """Call ``hook`` on ``plugin`` alone, through pluggy (hook-call monitoring and tracing included): the
        others are asked only when one of their types is used."""
        others = [p for _name, p in self.pm.list_name_plugin() if p is not plugin]
        result: list[Any] = self.pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)
        return result

    def _claim(self, tid: str, plugin_name: str) -> None:
        if tid in self._owner and self._owner[tid] != plugin_name:
            raise PluginError(
                f"type {tid!r} is claimed by two plugins: {self._owner[tid]!r} and {plugin_name!r}"
            )
        self._owner[tid] = plugin_name

    def _materialize(self, type_id: str) -> None:
        """Import the class of a lazily registered type, under every id it answers to."""
        lazy = self._lazy.get(type_id)
        if lazy is None:
            return
        cls: Any = lazy.load()  # a task, trigger... or a task runner
        for tid in (lazy.type_id, *lazy.aliases):
            self._lazy.pop(tid, None)
            (self._runner_map if issubclass(cls, TaskRunner) else self._type_map)[tid] = cls

    def _load_all(self) -> None:
        with self._lock:
            for plugin_name, _ in list(self.pm.list_name_plugin()):
                self._load_plugin(plugin_name)
            for tid in list(self._lazy):
                self._materialize(tid)
            self._all_loaded = True

    def resolve(self, type_id: str) -> type[PluginType] | None:
        """The class of a task or trigger type, loading only the plugin that provides it when known."""
        cls = self._type_map.get(type_id)
        if cls is None:
            new_id = relocated_type(type_id)
            relocated = self.resolve(new_id) if new_id is not None else None
            if relocated is not None:
                return relocated
        if cls is not None or self._all_loaded:
            return self._type_map.get(type_id)
        with self._lock:
            self._load_plugin("core")
            self._materialize(type_id)
            if type_id not in self._type_map:
                package = registry_index().get(type_id)
                for name, info in list(self.info.items()):
                    if package is not None and info.distribution == package:
                        self._load_plugin(name)
                self._materialize(type_id)
        if type_id not in self._type_map:
            self._load_all()  # a type the catalogue does not know: ask every plugin
        return self._type_map.get(type_id)

    def resolve_runner(self, type_id: str) -> type[TaskRunner] | None:
        if type_id not in self._runner_map:
            with self._lock:
                self._load_plugin("core")
                self._materialize(type_id)
        return self._runner_map.get(type_id) or self.task_runners.get(type_id)

    @property
    def types(self) -> dict[str, type[PluginType]]:
        if not self._all_loaded:
            self._load_all()
        return self._type_map

    @property
    def task_runners(self) -> dict[str, type[TaskRunner]]:
        if not self._all_loaded:
            self._load_all()
        return self._runner_map

    def load_types(self) -> dict[str, type[PluginType]]:
        """Ask every plugin for its types (once); fills each plugin's ``types`` list."""
        return self.types

    def type_owner(self, type_id: str) -> str | None:
        self.load_types()
        return self._owner.get(type_id)

    def task_types(self) -> dict[str, type[Task]]:
        return {k: v for k, v in self.types.items() if issubclass(v, Task)}

    def trigger_types(self) -> dict[str, type[Trigger]]:
        return {k: v for k, v in self.types.items() if issubclass(v, Trigger)}

    def log_exporter_types(self) -> dict[str, type[LogExporter]]:
        return {k: v for k, v in self.types.items() if issubclass(v, LogExporter)}

    def close_matches(self, type_id: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(type_id, list(self.types), n=n, cutoff=0.6)

    # -- named registrations (functions, filters, backends...) ------------------------------------
    def named(self, hook: str) -> dict[str, Callable[..., Any]]:
        """Everything plugins registered through a ``register(name, obj)`` hook."""
        cached = self._named.get(hook)
        if cached is not None:
            return cached
        out: dict[str, Callable[..., Any]] = {}
        getattr(self.pm.hook, hook)(register=lambda name, obj: out.__setitem__(name, obj))
        self._named[hook] = out
        return out

    def task_assets(self, task: Any, ctx: Any, output: Any) -> list[Any]:
        bundles: list[Any] = []
        for result in self.pm.hook.task_assets(task=task, ctx=ctx, output=output):
            if result:
                bundles.extend(result)
        return bundles

    def add_commands(self, cli: Any) -> None:
        self.pm.hook.register_commands(cli=cli)

    def ui_extensions(self) -> list[Any]:
        """Pages and panels plugins add to the web UI (``register_ui``), in registration order."""
        out: list[Any] = []
        self.pm.hook.register_ui(register=out.append)
        return out


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _core_version() -> str:
    try:
        return metadata.version("roost")
    except metadata.PackageNotFoundError:
        return "0.0.0"


_default: Plugins | None = None
_default_lock = threading.Lock()


def get_plugins() -> Plugins:
    """The process-wide plugin set, loaded on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Plugins()
    return _default


def set_plugins(plugins: Plugins | None) -> None:
    """Replace the process-wide plugin set (tests use a fresh one)."""
    global _default
    _default = plugins


@cache
def registry_index() -> dict[str, str]:
    """Type id → plugin package, from the suite's registry catalogue."""
    candidates = [Path(__file__).resolve().parents[2] / "registry" / "index.json"]
    try:
        candidates.insert(0, Path(str(resources.files("roost") / "registry_index.json")))
    except (ModuleNotFoundError, TypeError):
        pass
    for path in candidates:
        if path.is_file():
            data = json.loads(path.read_text())
            return {t: pkg["package"] for pkg in data.get("plugins", []) for t in pkg.get("types", [])}
    return {}
