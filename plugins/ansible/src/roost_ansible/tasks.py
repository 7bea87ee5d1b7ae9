"""Kestra's ``io.kestra.plugin.ansible.cli.AnsibleCLI``: Ansible commands through a task runner.

How a run goes:

1. ``inputFiles`` and namespace files are written into the private working
   folder (the core's :class:`ScriptTask`), then ``ansibleConfig`` as
   ``ansible.cfg`` (``ANSIBLE_CONFIG`` points at it).
2. ansible-runner's ``awx_display`` callback plugin is copied into the folder
   and enabled through the environment as ansible-runner enables it for its
   own runs (``ANSIBLE_STDOUT_CALLBACK``, ``ANSIBLE_CALLBACK_PLUGINS``,
   ``AWX_ISOLATED_DATA_DIR``), behind a thin wrapper (``roost_display``) that
   ends the line after each event marker so line-reading runners stream live;
   the user's own stdout callback stays its base (``ORIGINAL_STDOUT_CALLBACK``).
3. The commands run through the configured task runner (Process by default,
   or Docker with ``containerImage``) with ``set -e``; the runner's output
   lines go through ansible-runner's event filter, which turns them into logs
   and Ansible job events (see :mod:`roost_ansible.events`).
4. The events become outputs (per-host stats, per-host task results, Kestra's
   ``playbooks`` shape); the inventories named by ``-i`` are parsed with
   Ansible's own inventory plugins for warnings and ``enableAuto`` assets.
"""

from __future__ import annotations

import configparser
import os
import posixpath
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, PrivateAttr
from roost import (
    Asset,
    AssetBundle,
    Dynamic,
    Output,
    RunContext,
    ScriptOutput,
    ScriptTask,
    TaskError,
    TaskWarning,
)

from roost_ansible.events import EventCapture, failure_lines, summarize
from roost_ansible.inventory import (
    InventoryLoader,
    InventoryReport,
    command_inventory_sources,
    default_sources,
)

DEFAULT_IMAGE = "cytopia/ansible:latest-tools"
PROCESS_RUNNER = "io.kestra.plugin.core.runner.Process"
EXTERNAL_ASSET = "io.kestra.core.models.assets.External"
#: Where container task runners (the core's Docker runner) mount the working folder.
CONTAINER_WORKDIR = "/app"
#: Private folder inside the working folder: callback and vars plugins, ansible-runner artifacts.
STATE_DIR = ".roost-ansible"
_VARS_PLUGIN = Path(__file__).parent / "ansible_plugins" / "vars" / "roost_local_python.py"
_DISPLAY_PLUGIN = Path(__file__).parent / "ansible_plugins" / "callback" / "roost_display.py"
#: The stdout callback: ansible-runner's awx_display behind a thin wrapper (see roost_display.py).
STDOUT_CALLBACK = "roost_display"


class AnsibleTaskError(TaskError):
    """The commands failed; ``outputs`` holds what the run produced up to the failure (stats included)."""

    def __init__(self, message: str, outputs: Any = None) -> None:
        super().__init__(message)
        self.outputs = outputs


class _Out(Output):
    model_config = ConfigDict(use_attribute_docstrings=True)  # field docstrings become schema descriptions


class HostStats(_Out):
    """Ansible's PLAY RECAP counters for one host, summed over the playbooks of the run."""

    ok: int = 0
    """Tasks that succeeded (changed ones included)."""
    changed: int = 0
    """Tasks that reported a change."""
    failures: int = 0
    """Tasks that failed."""
    unreachable: int = 0
    """Times the host could not be reached."""
    skipped: int = 0
    """Tasks skipped on the host."""
    rescued: int = 0
    """Failures handled by a ``rescue`` section."""
    ignored: int = 0
    """Failures ignored with ``ignore_errors``."""


class TaskResult(_Out):
    """The result of one Ansible task on one host."""

    playbook: str | None = None
    """Playbook file."""
    play: str | None = None
    """Play name (its host pattern when unnamed)."""
    task: str
    """Task name (its action when unnamed)."""
    action: str | None = None
    """Module or action plugin, fully qualified (``ansible.builtin.debug``)."""
    host: str
    """Inventory host name."""
    status: str
    """``ok``, ``failed``, ``skipped`` or ``unreachable``."""
    changed: bool = False
    """Whether the task changed the host."""
    ignored: bool = False
    """A failure the playbook ignores (``ignore_errors``)."""
    msg: str | None = None
    """The module's message (with the stderr tail of a failed command), at most about 1 KiB."""
    started_at: str | None = None
    """Start time on this host (UTC ISO-8601)."""
    ended_at: str | None = None
    """End time on this host (UTC ISO-8601)."""


class HostResult(_Out):
    """One host's result in Kestra's ``playbooks`` shape."""

    host: str
    """Inventory host name."""
    status: str
    """``ok``, ``failed``, ``skipped`` or ``unreachable``."""
    result: dict[str, Any] = Field(default_factory=dict)
    """Light result: ``changed``, ``failed``, ``skipped``, ``rc``, bounded ``msg`` (and ``stderr`` tail on failure)."""


class TaskOutput(_Out):
    """One Ansible task of a play."""

    uid: str
    """Stable id: ``play:<play>|task:<task>``."""
    name: str
    """Task name (its action when unnamed)."""
    started_at: str | None = None
    """First start over the hosts (UTC ISO-8601)."""
    ended_at: str | None = None
    """Last end over the hosts (UTC ISO-8601)."""
    hosts: list[HostResult] = Field(default_factory=list)
    """Per-host results."""


class PlayOutput(_Out):
    """One play of a playbook."""

    name: str
    """Play name (its host pattern when unnamed)."""
    tasks: list[TaskOutput] = Field(default_factory=list)
    """Tasks in execution order."""


class PlaybookOutput(_Out):
    """One ``ansible-playbook`` run."""

    name: str | None = None
    """Playbook file."""
    plays: list[PlayOutput] = Field(default_factory=list)
    """Plays in execution order."""


class AnsibleOutput(ScriptOutput):
    """Outputs of :class:`AnsibleCLI`."""

    model_config = ConfigDict(use_attribute_docstrings=True)
    _inventory: InventoryReport | None = PrivateAttr(default=None)

    stats: dict[str, HostStats] = Field(default_factory=dict)
    """Per-host PLAY RECAP counters, keyed by host name."""
    tasks: list[TaskResult] = Field(default_factory=list)
    """Every per-host task result, in execution order."""
    playbooks: list[PlaybookOutput] = Field(default_factory=list)
    """The same results nested as playbooks, plays, tasks and hosts (Kestra's ``playbooks`` output)."""


@dataclass
class _Setup:
    ctx: RunContext
    local: bool
    root: str
    capture: EventCapture

    def in_root(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)


class AnsibleCLI(ScriptTask, type="io.kestra.plugin.ansible.cli.AnsibleCLI"):
    """Run Ansible CLI commands (``ansible-playbook``, ``ansible``, ``ansible-galaxy``...) with real ansible-core.

    The commands run in a private working folder through the task runner (the local Process runner
    by default here; Docker with ``containerImage``), after ``beforeCommands``, with ``set -e``.
    Playbook events are captured with ansible-runner's event callback: outputs give the per-host
    PLAY RECAP (``stats``), every per-host task result (``tasks``) and Kestra's nested ``playbooks``.
    A failed or unreachable host fails the task with a message naming the host and the task.
    With ``assets.enableAuto`` the hosts of the inventories given with ``-i`` are emitted as
    ``io.kestra.core.models.assets.External`` input assets; an inventory file that Ansible cannot
    parse ends the task in WARNING with the parser's reason.
    """

    commands: Dynamic[list[str]]
    """Commands to run, such as ``ansible-playbook -i inventory.ini myplaybook.yml``."""
    ansible_config: Dynamic[str] | None = None
    """Content of ``ansible.cfg``, written into the working directory (``ANSIBLE_CONFIG`` points at it).
    Ignored, with a warning, when ``inputFiles`` already provide an ``ansible.cfg``."""
    output_log_file: Dynamic[bool] = False
    """Keep Ansible's log file (``ANSIBLE_LOG_PATH``) as the output file ``log``."""
    container_image: Dynamic[str] | None = DEFAULT_IMAGE
    """Image used by container task runners (Docker); the Process runner uses this machine's ansible-core."""
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/bash", "-c"])
    """Interpreter the joined commands are passed to (Bash, as in Kestra's Ansible task)."""
    target_os: str = "AUTO"
    """Operating system the commands are written for; accepted for compatibility (only Linux here)."""

    _setup: _Setup | None = PrivateAttr(default=None)

    # -- ScriptTask hooks ------------------------------------------------------------------------
    def default_image(self) -> str | None:
        return DEFAULT_IMAGE

    def prepare(self, ctx: RunContext, workdir: Path) -> None:
        from ansible_runner.utils import get_callback_dir

        setup = self._require_setup()
        cfg = workdir / "ansible.cfg"
        if self.ansible_config is not None:
            if cfg.exists():
                setup.ctx.logger.warning(
                    "Found an existing ansible.cfg in the input files; ignoring the ansibleConfig property."
                )
            else:
                cfg.write_text(self.ansible_config)
        state = workdir / STATE_DIR
        # ansible-runner's callback, outside the callback path (loaded once, by the wrapper next to it)
        (state / "ansible_runner").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(
            Path(get_callback_dir()) / "awx_display.py", state / "ansible_runner" / "awx_display.py"
        )
        (state / "callback").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_DISPLAY_PLUGIN, state / "callback" / _DISPLAY_PLUGIN.name)
        if setup.local:
            (state / "vars").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_VARS_PLUGIN, state / "vars" / _VARS_PLUGIN.name)

    def extra_env(self, ctx: RunContext, workdir: Path) -> dict[str, str]:
        setup = self._require_setup()
        user = dict(self.env or {})
        cfg_local, cfg_env = self._config_file(workdir, setup, user)
        cfg = _read_config(cfg_local)
        defaults = cfg.get("defaults", {})
        env: dict[str, str] = {}
        if cfg_env and "ANSIBLE_CONFIG" not in user:
            env["ANSIBLE_CONFIG"] = cfg_env
        # What ansible-runner sets for its own runs (config/_base.py prepare_env).
        env["ANSIBLE_CALLBACK_PLUGINS"] = _join_paths(
            user.get("ANSIBLE_CALLBACK_PLUGINS"),
            _config_paths(defaults.get("callback_plugins"), setup.root),
            setup.in_root(STATE_DIR, "callback"),
        )
        original = user.get("ANSIBLE_STDOUT_CALLBACK") or defaults.get("stdout_callback")
        if original and original not in ("awx_display", STDOUT_CALLBACK):
            env["ORIGINAL_STDOUT_CALLBACK"] = original
        env["ANSIBLE_STDOUT_CALLBACK"] = STDOUT_CALLBACK
        env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"  # ad-hoc `ansible` commands use the callback too
        artifacts = Path(setup.capture.artifact_dir).relative_to(workdir.resolve()).as_posix()
        env["AWX_ISOLATED_DATA_DIR"] = setup.in_root(artifacts)
        if setup.local:
            # ansible-runner looks ansible-playbook up on PATH: this interpreter's bin folder comes first.
            env["PATH"] = os.pathsep.join(
                p
                for p in (str(Path(sys.executable).parent), user.get("PATH") or os.environ.get("PATH", ""))
                if p
            )
            env["ANSIBLE_VARS_PLUGINS"] = _join_paths(
                user.get("ANSIBLE_VARS_PLUGINS"),
                _config_paths(defaults.get("vars_plugins"), setup.root),
                setup.in_root(STATE_DIR, "vars"),
            )
            env["ROOST_ANSIBLE_PYTHON"] = sys.executable
        if self.output_log_file and "ANSIBLE_LOG_PATH" not in user:
            env["ANSIBLE_LOG_PATH"] = setup.in_root("log")
        return env

    # -- run -------------------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> AnsibleOutput:
        # The same task object may run for several executions at once: per-run state lives on a copy.
        return self.model_copy()._run(ctx)

    def _run(self, ctx: RunContext) -> AnsibleOutput:
        try:
            runner = self.runner(ctx)
        except RuntimeError as exc:
            raise TaskError(str(exc)) from None
        local = getattr(runner, "type", None) == PROCESS_RUNNER
        workdir = Path(ctx.working_dir).resolve()  # paths handed to Ansible must not depend on its cwd
        capture = EventCapture(ctx.logger, workdir / STATE_DIR)
        self._setup = _Setup(ctx, local, str(workdir) if local else CONTAINER_WORKDIR, capture)
        try:
            result, _ = self.run_script(_StreamContext(ctx, capture))
        finally:
            capture.close()

        secrets = _secret_values(ctx)
        summary = _mask(summarize(capture.events), secrets)
        report = self._load_inventory(workdir)
        output_files = self.collect_output_files(ctx, workdir)
        log_file = workdir / "log"
        if self.output_log_file and log_file.is_file():
            output_files["log"] = ctx.put_file(log_file, name="log")
        out = AnsibleOutput(
            exit_code=result.exit_code,
            vars=_mask(result.vars, secrets),
            output_files=output_files,
            **summary,
        )
        out._inventory = report
        for note in report.notes:
            ctx.logger.info(note)
        for problem in report.problems:
            ctx.logger.warning(problem)

        if result.exit_code != 0:
            if ctx.killed():
                raise AnsibleTaskError("killed", outputs=out)
            raise AnsibleTaskError(
                _mask(self._failure_message(result.exit_code, summary, capture, report), secrets), out
            )
        if report.problems:
            raise TaskWarning(
                _mask("; ".join(report.problems) + "; Ansible ran without its hosts", secrets),
                outputs=out,
            )
        if self.warning_on_std_err and result.stderr_lines:
            raise TaskWarning("the commands wrote to stderr", outputs=out)
        return out

    def auto_assets(self, ctx: RunContext, output: Any) -> list[AssetBundle]:
        report = getattr(output, "_inventory", None)
        if report is None:
            report = self._load_inventory(Path(ctx.working_dir).resolve())
        if not report.hosts:
            return []
        secrets = _secret_values(ctx)
        inputs = [
            Asset(id=host.name, type=EXTERNAL_ASSET, metadata=_mask(host.metadata(), secrets))
            for host in report.hosts.values()
        ]
        return [AssetBundle(inputs=inputs)]

    # -- helpers ---------------------------------------------------------------------------------
    def _require_setup(self) -> _Setup:
        if self._setup is None:  # pragma: no cover - run() sets it first
            raise RuntimeError("AnsibleCLI.run() prepares the run")
        return self._setup

    def _config_file(
        self, workdir: Path, setup: _Setup, user: dict[str, str]
    ) -> tuple[Path | None, str | None]:
        """The ansible.cfg in use, as a local path (to read) and as the path the commands see."""
        if user.get("ANSIBLE_CONFIG"):
            loader = InventoryLoader(workdir, None if setup.local else setup.root)
            return loader.local_path(user["ANSIBLE_CONFIG"]), None
        cfg = workdir / "ansible.cfg"
        if cfg.is_file():
            return cfg, setup.in_root("ansible.cfg")
        return None, None

    def _load_inventory(self, workdir: Path) -> InventoryReport:
        setup = self._setup
        local = setup.local if setup else True
        root = None if local or setup is None else setup.root
        loader = InventoryLoader(workdir, root)
        sources = command_inventory_sources(list(self.commands or []))
        if not sources:
            user = dict(self.env or {})
            cfg_local = None
            if setup is not None:
                cfg_local, _ = self._config_file(workdir, setup, user)
            sources = default_sources(user, _read_config(cfg_local), workdir)
        try:
            return loader.load(sources)
        except Exception as exc:  # never let the asset/warning pass break a finished run
            report = InventoryReport()
            report.problems.append(f"the inventories could not be read: {exc}")
            return report

    def _failure_message(
        self, code: int, summary: dict[str, Any], capture: EventCapture, report: InventoryReport
    ) -> str:
        lines = failure_lines(summary)
        if lines:
            hosts = {
                r["host"]
                for r in summary["tasks"]
                if r["status"] in ("failed", "unreachable") and not r["ignored"]
            }
            message = f"Ansible failed on {len(hosts)} host{'s' if len(hosts) != 1 else ''}: " + "; ".join(
                lines
            )
        else:
            errors: list[str] = []
            for text in capture.errors:
                first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
                if first and first not in errors:
                    errors.append(first)
            detail = errors[-3:] or list(capture.stderr_tail)
            message = "Command failed" + (": " + " | ".join(detail) if detail else "")
        message += f" (exit code {code})"
        if report.problems:
            message += "; " + "; ".join(report.problems)
        return message


class _StreamLogger:
    """The logger the task runner writes output lines to: lines go through the event capture."""

    def __init__(self, logger: Any, capture: EventCapture) -> None:
        self._logger = logger
        self._capture = capture

    @staticmethod
    def _text(msg: Any, args: tuple[Any, ...]) -> str:
        return str(msg) % args if args else str(msg)

    def info(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._capture.stdout(self._text(msg, args))

    def error(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._capture.stderr(self._text(msg, args))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


class _StreamContext:
    """The run context handed to the task runner: the task's own, with output lines captured."""

    def __init__(self, ctx: RunContext, capture: EventCapture) -> None:
        self._ctx = ctx
        self.logger = _StreamLogger(ctx.logger, capture)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def _read_config(path: Path | None) -> dict[str, dict[str, str]]:
    if path is None or not path.is_file():
        return {}
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None, strict=False)
    try:
        parser.read_string(path.read_text(errors="replace"))
    except configparser.Error:
        return {}  # ansible-playbook reports a broken ansible.cfg itself
    return {section: dict(parser.items(section)) for section in parser.sections()}


def _config_paths(value: str | None, root: str) -> str | None:
    """Relative paths of ansible.cfg are relative to the file, which sits at the working directory root."""
    if not value:
        return None
    parts = []
    for part in value.replace(",", ":").split(":"):
        part = part.strip()
        if part:
            parts.append(part if part.startswith(("/", "~", "$")) else posixpath.join(root, part))
    return ":".join(parts) or None


def _join_paths(*values: str | None) -> str:
    return ":".join(v for v in values if v)


def _secret_values(ctx: Any) -> list[str]:
    values = getattr(ctx, "secret_values", None) or ()
    return sorted((v for v in values if isinstance(v, str) and v), key=len, reverse=True)


def _mask(value: Any, secrets: list[str]) -> Any:
    """Secret values replaced by ``******`` in strings, recursively (outputs are stored, never masked later)."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, "******")
        return value
    if isinstance(value, dict):
        return {_mask(k, secrets): _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, secrets) for v in value]
    return value


TASKS = (AnsibleCLI,)
