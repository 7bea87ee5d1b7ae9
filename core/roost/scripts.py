"""Script tasks and their task runners (Kestra's ``scripts`` family).

:class:`ScriptTask` is the base of every task that runs commands (Shell,
Python, dbt, Ansible...): it lays out ``inputFiles`` and namespace files in a
private working folder, runs the commands through a :class:`TaskRunner`,
reads Kestra's ``::{"outputs": ...}::`` protocol from stdout, and collects
``outputFiles`` into internal storage.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from roost.flow.properties import Dynamic, Model
from roost.flow.task import Output, RunContext, Task, TaskRunner

PROCESS_RUNNER = "io.kestra.plugin.core.runner.Process"
DOCKER_RUNNER = "io.kestra.plugin.scripts.runner.docker.Docker"


class ScriptError(Exception):
    """The commands ran and failed (non-zero exit); the message carries the exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ScriptSpec:
    """What a runner is asked to run."""

    argv: list[str]
    env: dict[str, str]
    working_dir: Path
    container_image: str | None = None


@dataclass
class ScriptResult:
    exit_code: int
    vars: dict[str, Any] = field(default_factory=dict)
    stdout_lines: int = 0
    stderr_lines: int = 0


class LineHandler:
    """Turns a process's output lines into logs, outputs and metrics (Kestra's ``::{}::`` protocol)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.vars: dict[str, Any] = {}
        self.lock = threading.Lock()

    def __call__(self, line: str, stderr: bool) -> None:
        stripped = line.strip()
        if stripped.startswith("::{") and stripped.endswith("}::"):
            try:
                payload = json.loads(stripped[2:-2])
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                with self.lock:
                    self._protocol(payload)
                return
        (self.ctx.logger.error if stderr else self.ctx.logger.info)(line.rstrip("\n"))

    def _protocol(self, payload: dict[str, Any]) -> None:
        outputs = payload.get("outputs")
        if isinstance(outputs, dict):
            self.vars.update(outputs)
        for m in payload.get("metrics") or []:
            if isinstance(m, dict) and "name" in m:
                self.ctx.metric(
                    str(m["name"]),
                    float(m.get("value", 0)),
                    str(m.get("type", "counter")).lower(),
                    **{str(k): str(v) for k, v in (m.get("tags") or {}).items()},
                )
        for log in payload.get("logs") or []:
            if isinstance(log, dict):
                level = str(log.get("level", "INFO")).upper()
                getattr(self.ctx.logger, {"WARN": "warning"}.get(level, level.lower()), self.ctx.logger.info)(
                    str(log.get("message", ""))
                )


def _pump(stream: Any, handler: LineHandler, stderr: bool, counter: list[int]) -> None:
    for raw in iter(stream.readline, b""):
        counter[0] += 1
        handler(raw.decode(errors="replace"), stderr)
    stream.close()


class Process(TaskRunner, type=PROCESS_RUNNER):
    """Run the commands as a local process (the default)."""

    def run(self, ctx: RunContext, spec: ScriptSpec) -> ScriptResult:
        handler = LineHandler(ctx)
        proc = subprocess.Popen(
            spec.argv,
            cwd=spec.working_dir,
            env=spec.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so kill reaches the children too
        )

        def kill() -> None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        ctx.on_kill(kill)
        out_count, err_count = [0], [0]
        threads = [
            threading.Thread(target=_pump, args=(proc.stdout, handler, False, out_count), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, handler, True, err_count), daemon=True),
        ]
        for t in threads:
            t.start()
        code = proc.wait()
        for t in threads:
            t.join()
        if ctx.killed():
            try:  # make sure nothing of the group survives
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return ScriptResult(code, handler.vars, out_count[0], err_count[0])


class Docker(TaskRunner, type=DOCKER_RUNNER):
    """Run the commands in a container of ``containerImage`` through the Docker engine."""

    host: str | None = None
    """Docker engine address; defaults to ``DOCKER_HOST`` or the local socket."""
    pull_policy: str = "IF_NOT_PRESENT"
    """When to pull the image."""
    volumes: list[str] = Field(default_factory=list)
    """Extra volumes, ``host:container``."""
    memory: dict[str, Any] | None = None
    cpu: dict[str, Any] | None = None
    config: Any = None
    credentials: dict[str, Any] | None = None
    delete: bool = True
    """Remove the container when it ends."""

    def engine_address(self) -> str:
        return self.host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def check_engine(self) -> None:
        import socket

        address = self.engine_address()
        hint = (
            "Run the task with the Process task runner instead "
            f"(taskRunner: {{type: {PROCESS_RUNNER}}}, e.g. as a forced pluginDefault), or start a Docker engine."
        )
        try:
            if address.startswith("unix://"):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(2)
                    sock.connect(address[len("unix://") :])
            elif address.startswith("tcp://"):
                host, _, port = address[len("tcp://") :].partition(":")
                socket.create_connection((host, int(port or 2375)), timeout=2).close()
        except OSError as exc:
            raise RuntimeError(
                f"No Docker engine is reachable at {address} ({exc.strerror or exc}). {hint}"
            ) from None
        if shutil.which("docker") is None:
            raise RuntimeError(
                f"A Docker engine answers at {address} but the docker client is not installed. {hint}"
            )

    def run(self, ctx: RunContext, spec: ScriptSpec) -> ScriptResult:
        self.check_engine()
        if not spec.container_image:
            raise RuntimeError("the Docker task runner needs a containerImage")
        argv = [
            "docker",
            "run",
            "--rm" if self.delete else "--init",
            "-v",
            f"{spec.working_dir}:/app",
            "-w",
            "/app",
        ]
        for k, v in spec.env.items():
            if k in os.environ and os.environ[k] == v:
                continue  # only the task's own variables go into the container
            argv += ["-e", f"{k}={v}"]
        for vol in self.volumes:
            argv += ["-v", vol]
        argv += [spec.container_image, *spec.argv]
        env = {**os.environ, "DOCKER_HOST": self.engine_address()}
        return Process(type=PROCESS_RUNNER).run(ctx, ScriptSpec(argv, env, spec.working_dir))


class NamespaceFilesSpec(Model):
    """Which namespace files are copied into the working folder."""

    enabled: bool = True
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    if_exists: str = "OVERWRITE"
    folder_per_namespace: bool = False


def write_files(ctx: RunContext, workdir: Path, files: dict[str, Any]) -> None:
    """Write ``name: content`` into ``workdir`` (a ``kestra://`` content is read from storage); no name may leave it."""
    for name, content in files.items():
        target = (workdir / name).resolve()
        if workdir.resolve() not in target.parents:
            raise ValueError(f"input file {name!r} would be written outside the working folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("kestra://"):
            with ctx.open_read(content) as src, target.open("wb") as dst:  # streamed, never whole in memory
                shutil.copyfileobj(src, dst, 1 << 20)
        else:
            target.write_text(content if isinstance(content, str) else json.dumps(content))


def collect_files(ctx: RunContext, workdir: Path, patterns: list[str]) -> dict[str, str]:
    """The files of ``workdir`` matching the glob ``patterns``, sent to storage: path to URI."""
    found: dict[str, str] = {}
    for pattern in patterns:
        for path in sorted(workdir.glob(pattern)):
            if path.is_file():
                rel = str(path.relative_to(workdir))
                found[rel] = ctx.put_file(path, name=path.name)
    return found


class ScriptOutput(Output):
    exit_code: int = 0
    """Exit code of the commands."""
    vars: dict[str, Any] = Field(default_factory=dict)
    """Values sent by the script with ``::{"outputs": {...}}::``."""
    output_files: dict[str, str] = Field(default_factory=dict)
    """Files matched by ``outputFiles``, as internal-storage URIs."""


class ScriptTask(Task):
    """Base of tasks that run commands in a working folder through a task runner."""

    task_runner: dict[str, Any] | None = None
    """Where the commands run: ``{type: io.kestra.plugin.core.runner.Process}`` (default) or Docker."""
    container_image: Dynamic[str] | None = None
    """Image used by container task runners."""
    env: Dynamic[dict[str, str]] | None = None
    """Extra environment variables."""
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    """Interpreter the joined commands are passed to."""
    before_commands: Dynamic[list[str]] | None = None
    """Commands run before the main ones."""
    input_files: Dynamic[dict[str, str]] | str | None = None
    """Files written into the working folder before the run: name to content or ``kestra://`` URI."""
    output_files: Dynamic[list[str]] | None = None
    """Glob patterns of files to keep after the run."""
    namespace_files: NamespaceFilesSpec | None = None
    """Copy the namespace's files into the working folder."""
    fail_fast: bool = True
    """Stop at the first failing command (``set -e``)."""
    warning_on_std_err: bool = False
    """End in WARNING when the commands wrote to stderr."""
    target_os: str = "AUTO"
    """Operating system the commands are written for (AUTO, LINUX, WINDOWS)."""
    docker: dict[str, Any] | None = None
    """Deprecated Docker options, accepted for compatibility."""

    @field_validator("task_runner")
    @classmethod
    def _runner_has_type(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and "type" not in v:
            raise ValueError("a taskRunner needs a type")
        return v

    # -- hooks for subclasses --------------------------------------------------------------------
    def script_commands(self, ctx: RunContext) -> list[str]:
        """The commands to run, before ``beforeCommands`` are added."""
        return list(getattr(self, "commands", None) or [])

    def prepare(self, ctx: RunContext, workdir: Path) -> None:
        """Write extra files into ``workdir`` before the run (profiles, config...)."""

    def extra_env(self, ctx: RunContext, workdir: Path) -> dict[str, str]:
        return {}

    def default_image(self) -> str | None:
        return None

    # -- run -------------------------------------------------------------------------------------
    def runner(self, ctx: RunContext) -> TaskRunner:
        from roost.plugins import get_plugins

        spec = dict(self.task_runner or {"type": PROCESS_RUNNER})
        plugins = get_plugins()
        cls = plugins.resolve_runner(spec["type"])
        if cls is None:
            known = ", ".join(sorted(plugins.task_runners))
            raise RuntimeError(f"unknown task runner type {spec['type']!r}; known: {known}")
        return cls.model_validate(spec)

    def run_script(self, ctx: RunContext) -> tuple[ScriptResult, Path]:
        workdir = ctx.working_dir
        self.write_input_files(ctx, workdir)
        self.prepare(ctx, workdir)
        commands = [*(self.before_commands or []), *self.script_commands(ctx)]
        body = "\n".join(commands)
        if self.fail_fast and self.interpreter[:1] in (["/bin/sh"], ["/bin/bash"], ["sh"], ["bash"]):
            body = "set -e\n" + body
        env = {**os.environ, **(self.env or {}), **self.extra_env(ctx, workdir), "WORKING_DIR": str(workdir)}
        runner = self.runner(ctx)
        spec = ScriptSpec(
            [*self.interpreter, body], env, workdir, self.container_image or self.default_image()
        )
        try:
            result = runner.run(ctx, spec)
        except RuntimeError as exc:
            from roost import TaskError

            raise TaskError(str(exc)) from None
        return result, workdir

    def write_input_files(self, ctx: RunContext, workdir: Path) -> None:
        files = self.input_files
        if isinstance(files, str):
            files = json.loads(ctx.read_file(files)) if files.startswith("kestra://") else json.loads(files)
        write_files(ctx, workdir, files or {})
        if self.namespace_files is not None and self.namespace_files.enabled:
            for path, data in ctx.namespace_files():
                if self.namespace_files.include and not any(
                    fnmatch.fnmatch(path, pat) for pat in self.namespace_files.include
                ):
                    continue
                if any(fnmatch.fnmatch(path, pat) for pat in self.namespace_files.exclude):
                    continue
                target = workdir / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)

    def collect_output_files(self, ctx: RunContext, workdir: Path) -> dict[str, str]:
        return collect_files(ctx, workdir, self.output_files or [])

    def run(self, ctx: RunContext) -> ScriptOutput:
        from roost import TaskError, TaskWarning

        result, workdir = self.run_script(ctx)
        out = ScriptOutput(
            exit_code=result.exit_code, vars=result.vars, output_files=self.collect_output_files(ctx, workdir)
        )
        if result.exit_code != 0:
            if ctx.killed():
                raise TaskError("killed", outputs=out)
            raise TaskError(f"Command failed with exit code {result.exit_code}", outputs=out)
        if self.warning_on_std_err and result.stderr_lines:
            raise TaskWarning("the commands wrote to stderr", outputs=out)
        return out
