"""Inventory sources named by the commands, parsed with Ansible's own DataLoader and inventory plugins.

Only Ansible's static inventory plugins run here (``host_list``, ``yaml``,
``ini``, ``toml``): dynamic inventory scripts and plugin configurations
(``plugin: aws_ec2``...) would execute code or reach the network on the
worker, so they are reported as not listed rather than run.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Host variables copied into asset metadata. A whitelist: passwords and keys never leave the inventory.
METADATA_VARS = ("ansible_host", "ansible_port", "ansible_connection", "ansible_user", "ansible_network_os")
_OPERATORS = set(";&|()<>")
_ANSIBLE_COMMANDS = re.compile(r"^ansible(-playbook|-inventory|-console|-pull)?$")
_FILE_PLUGINS = ("yaml", "ini", "toml")
#: ``-i localhost`` (a Kestra example) is no inventory for Ansible, which then uses its implicit localhost.
_IMPLICIT_LOCALHOST = {"localhost", "127.0.0.1", "::1"}


@dataclass
class InventoryHost:
    name: str
    groups: set[str] = field(default_factory=set)
    vars: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"system": "ansible", "groups": sorted(self.groups)}
        for key in METADATA_VARS:
            value = self.vars.get(key)
            if value not in (None, ""):
                meta[key] = value if isinstance(value, int | bool) else str(value)
        meta["inventory"] = self.sources[0] if len(self.sources) == 1 else list(self.sources)
        return meta


@dataclass
class InventoryReport:
    hosts: dict[str, InventoryHost] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Sources that exist but that no inventory plugin could parse (the cause included)."""
    notes: list[str] = field(default_factory=list)
    """Sources skipped on purpose (dynamic inventories, missing files)."""


def command_inventory_sources(commands: list[str]) -> list[str]:
    """The ``-i``/``--inventory`` values of the ansible commands in shell command lines."""
    found: list[str] = []
    for command in commands:
        text = command.replace("\\\n", " ")
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError:  # unbalanced quotes: the shell will complain itself
            continue
        in_ansible = False
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok and set(tok) <= _OPERATORS:
                in_ansible = False
            elif not in_ansible:
                in_ansible = bool(_ANSIBLE_COMMANDS.match(os.path.basename(tok)))
            elif tok in ("-i", "--inventory", "--inventory-file") and i + 1 < len(tokens):
                found.append(tokens[i + 1])
                i += 1
            elif tok.startswith(("--inventory=", "--inventory-file=")):
                found.append(tok.split("=", 1)[1])
            elif tok.startswith("-i") and not tok.startswith("--") and len(tok) > 2:
                found.append(tok[2:])
            i += 1
    return found


def _ignored() -> re.Pattern[bytes]:
    try:
        from ansible.inventory.manager import IGNORED

        return IGNORED
    except Exception:  # pragma: no cover - ansible moved it
        return re.compile(rb"^\.|^host_vars$|^group_vars$|~$|\.(orig|cfg|retry|pyc|pyo|swp|bak|md|txt|rst)$")


def _plain(value: Any) -> Any:
    """Ansible's tagged strings and containers as plain Python values."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return str(value)


class InventoryLoader:
    """Parses inventory sources relative to a working folder."""

    def __init__(self, workdir: Path, container_root: str | None = None) -> None:
        self.workdir = workdir
        self.container_root = container_root
        self.report = InventoryReport()

    def label(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.workdir))
        except ValueError:
            return str(path)

    def local_path(self, source: str) -> Path:
        source = os.path.expanduser(source)
        root = self.container_root
        if root and (source == root or source.startswith(root.rstrip("/") + "/")):
            source = source[len(root.rstrip("/")) :].lstrip("/") or "."
        path = Path(source)
        return path if path.is_absolute() else self.workdir / path

    def load(self, sources: list[str]) -> InventoryReport:
        for source in sources:
            if not source:
                continue
            path = self.local_path(source)
            if path.exists():
                self._path(path)
            elif "," in source:
                self._host_list(source)
            elif source in _IMPLICIT_LOCALHOST:
                self.report.notes.append(
                    f"inventory source '{source}' is neither a file nor a comma-separated host list "
                    "(write 'localhost,'); Ansible falls back to its implicit localhost"
                )
            else:
                self.report.problems.append(f"inventory '{source}' was not found in the working directory")
        return self.report

    def _path(self, path: Path) -> None:
        if path.is_dir():
            ignored = _ignored()
            for child in sorted(path.iterdir()):
                if not ignored.search(os.fsencode(child.name)):
                    self._path(child)
            return
        if os.access(path, os.X_OK):
            self.report.notes.append(
                f"inventory '{self.label(path)}' is an executable (dynamic inventory script); its hosts are not listed"
            )
            return
        self._parse(path, str(path), _FILE_PLUGINS, self.label(path))

    def _host_list(self, source: str) -> None:
        self._parse(None, source, ("host_list",), "host list")

    def _parse(self, path: Path | None, source: str, plugin_names: tuple[str, ...], label: str) -> None:
        from ansible.inventory.data import InventoryData
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import inventory_loader

        loader = DataLoader()
        loader.set_basedir(str(path.parent if path else self.workdir))
        failures: list[str] = []
        for name in plugin_names:
            plugin = inventory_loader.get(name)
            if plugin is None:
                continue
            try:
                if not plugin.verify_file(source):
                    continue
            except Exception:
                continue
            data = InventoryData()
            try:
                with _CapturedWarnings() as warnings:
                    plugin.parse(data, loader, source, cache=False)
                    data.reconcile_inventory()
            except Exception as exc:  # AnsibleParserError and friends
                message = _error_text(exc)
                if "Plugin configuration YAML file" in message:
                    self.report.notes.append(
                        f"inventory '{label}' configures a dynamic inventory plugin; its hosts are not listed"
                    )
                    return
                failures.append(f"{name} plugin: {message}")
                continue
            if warnings.messages and not data.hosts:
                self.report.problems.append(
                    f"inventory '{label}' defines no hosts ({name} plugin: {'; '.join(warnings.messages)})"
                )
            else:
                self.report.notes.extend(f"inventory '{label}': {m}" for m in warnings.messages)
            self._merge(data, label)
            return
        if failures:
            self.report.problems.append(f"inventory '{label}' could not be parsed ({'; '.join(failures)})")
        else:
            self.report.problems.append(
                f"inventory '{label}' is not in a format Ansible's inventory plugins accept"
            )

    def _merge(self, data: Any, label: str) -> None:
        from ansible.inventory.helpers import get_group_vars
        from ansible.utils.vars import combine_vars

        for name, host in data.hosts.items():
            entry = self.report.hosts.setdefault(str(name), InventoryHost(str(name)))
            entry.groups.update(str(g.name) for g in host.get_groups() if g.name != "all")
            entry.vars.update(_plain(combine_vars(get_group_vars(host.get_groups()), host.get_vars())))
            if label not in entry.sources:
                entry.sources.append(label)


class _CapturedWarnings:
    """Collects the warnings Ansible's display would print to the worker's stderr while a plugin parses.

    Uses ansible-core's deferred-warning context (2.19+, per thread); elsewhere the warnings are printed.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._ctx: Any = None

    def __enter__(self) -> _CapturedWarnings:
        try:
            from ansible._internal._display_utils import DeferredWarningContext

            self._ctx = DeferredWarningContext(variables={})
            self._ctx.__enter__()
        except Exception:
            self._ctx = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._ctx is None:
            return
        self._ctx.__exit__(*exc)
        for warning in self._ctx.get_warnings():
            event = getattr(warning, "event", None)
            message = " ".join(str(getattr(event, "msg", warning)).split())
            if message and message not in self.messages:
                self.messages.append(message)


def _error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())


def default_sources(env: dict[str, str], config: dict[str, dict[str, str]], workdir: Path) -> list[str]:
    """Where Ansible looks when no ``-i`` is given: ``ANSIBLE_INVENTORY``, then ansible.cfg's ``inventory``.

    Like Kestra's AnsibleCLI, an ``inventory.ini`` in the working directory is used when neither is set.
    """
    if env.get("ANSIBLE_INVENTORY"):
        return [s.strip() for s in env["ANSIBLE_INVENTORY"].split(",") if s.strip()]
    defaults = config.get("defaults", {})
    value = defaults.get("inventory") or defaults.get("hostfile")
    if value:
        return [s.strip() for s in value.split(",") if s.strip()]
    if (workdir / "inventory.ini").is_file():
        return ["inventory.ini"]
    return []
