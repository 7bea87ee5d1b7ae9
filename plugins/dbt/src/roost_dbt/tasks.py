"""The ``io.kestra.plugin.dbt.cli.DbtCLI`` task."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, PrivateAttr
from roost import (
    AssetBundle,
    Dynamic,
    Model,
    RunContext,
    ScriptOutput,
    ScriptTask,
    TaskError,
    TaskWarning,
)

from roost_dbt.artifacts import (
    ArtifactError,
    NodeResult,
    RunResults,
    RunSummary,
    TestSummary,
    asset_bundles,
    result_line,
)
from roost_dbt.artifacts import (
    parse_run_results as read_run_results,
)
from roost_dbt.logs import DbtContext

PROCESS_RUNNER = "io.kestra.plugin.core.runner.Process"
CORE_IMAGE = "ghcr.io/kestra-io/dbt"
FUSION_IMAGE = "ghcr.io/kestra-io/dbt-fusion"
MANIFEST = "manifest.json"
RUN_RESULTS = "run_results.json"


class KvStoreManifest(Model):
    """Where a ``manifest.json`` is kept in the KV store."""

    key: str
    """KV key holding the manifest (may be an expression)."""
    namespace: str
    """Namespace of the KV store (may be an expression, such as ``{{ flow.namespace }}``)."""


class DbtCLI(ScriptTask, type="io.kestra.plugin.dbt.cli.DbtCLI"):
    """Run dbt CLI commands on a dbt project in the working directory.

    The ``profiles`` are written to ``profiles.yml`` in the working directory
    (``DBT_PROFILES_DIR`` points there). Each command starting with ``dbt``
    gets ``--project-dir`` when ``projectDir`` is set and ``--log-format`` (JSON
    by default, so dbt's own levels are kept: a dbt warning ends the task in
    WARNING). After the run, ``target/run_results.json`` is parsed into outputs
    (one line logged per node) and ``target/manifest.json`` is uploaded as an
    output file; with ``assets: {enableAuto: true}`` every table dbt builds is
    emitted as an ``io.kestra.plugin.ee.assets.Table`` asset with its lineage.
    A failing node fails the task with dbt's exit code and message.
    """

    commands: Dynamic[list[str]]
    """dbt commands to run, in order, such as ``dbt deps`` and ``dbt build``."""
    profiles: Dynamic[str] | None = None
    """Content of ``profiles.yml``, written to the working directory (replacing any existing file)."""
    project_dir: Dynamic[str] | None = None
    """Folder holding ``dbt_project.yml``, relative to the working directory; added to dbt commands as ``--project-dir``."""
    parse_run_results: Dynamic[bool] = True
    """Read ``target/run_results.json`` into the outputs and log each node's result."""
    log_format: Dynamic[Literal["JSON", "TEXT", "DEBUG", "NONE"]] = "JSON"
    """dbt log format added as ``--log-format`` to dbt commands; ``NONE`` adds nothing."""
    engine: Dynamic[Literal["CORE", "FUSION"]] = "CORE"
    """dbt engine; only selects the default container image (``ghcr.io/kestra-io/dbt`` or ``ghcr.io/kestra-io/dbt-fusion``)."""
    store_manifest: KvStoreManifest | None = None
    """Store ``target/manifest.json`` in the KV store under this key after the run."""
    load_manifest: KvStoreManifest | None = None
    """Write the manifest kept in the KV store under this key to ``target/manifest.json`` before the run (for ``--defer --state``)."""
    target_os: str = "AUTO"
    """Operating system the commands are written for (``AUTO``, ``LINUX``, ``WINDOWS``); accepted for compatibility."""

    class Out(ScriptOutput):
        model_config = ConfigDict(use_attribute_docstrings=True)

        run_results: list[NodeResult] | None = None
        """One entry per node of the last dbt invocation: uniqueId, status, executionTime, message, failures, adapterResponse."""
        run_summary: RunSummary | None = None
        """Counts of the non-test nodes by status, the elapsed time and the slowest nodes."""
        test_summary: TestSummary | None = None
        """Counts of the data and unit tests by status."""
        _bundles: list[AssetBundle] = PrivateAttr(default_factory=list)

    # -- hooks of ScriptTask -------------------------------------------------------------------------
    def default_image(self) -> str | None:
        return FUSION_IMAGE if self.engine == "FUSION" else CORE_IMAGE

    def script_commands(self, ctx: RunContext) -> list[str]:
        return [self._with_flags(c) for c in self.commands]

    def _with_flags(self, command: str) -> str:
        """Add ``--project-dir``, ``--log-format`` and ``--log-path`` to a dbt command, as Kestra does."""
        if not (command.strip() == "dbt" or command.lstrip().startswith(("dbt ", "dbt\t"))):
            return command
        command = command.rstrip()
        if self.project_dir and "--project-dir" not in command:
            command += f" --project-dir {shlex.quote(self.project_dir)}"
        if self.log_format != "NONE" and "--log-format" not in command:
            command += f" --log-format {self.log_format.lower()}"
        if "--log-path" not in command:
            command += " --log-path logs"
        return command

    def _in_process(self) -> bool:
        return (self.task_runner or {}).get("type", PROCESS_RUNNER) == PROCESS_RUNNER

    def extra_env(self, ctx: RunContext, workdir: Path) -> dict[str, str]:
        user = self.env or {}
        env = {
            "PYTHONUNBUFFERED": "true",
            "PIP_ROOT_USER_ACTION": "ignore",
            # dbt would otherwise send usage statistics over the network at the end of each command.
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        project = getattr(ctx, "project_dir", None)
        if self.profiles:
            # In a container the working directory is mounted elsewhere: point at it relatively.
            env["DBT_PROFILES_DIR"] = str(workdir) if self._in_process() else "."
        elif (
            isinstance(project, Path)
            and project != workdir
            and not (workdir / "profiles.yml").exists()
            and (project / "profiles.yml").is_file()
        ):
            # dbt looks for profiles.yml in the current directory only: use the project's own.
            env["DBT_PROFILES_DIR"] = str(project) if self._in_process() else str(self.project_dir)
        if self._in_process():
            # The dbt installed with this plugin (next to the interpreter) comes first.
            scripts = str(Path(sys.executable).parent)
            path = user.get("PATH") or os.environ.get("PATH", "")
            env["PATH"] = scripts + (os.pathsep + path if path else "")
        return {k: v for k, v in env.items() if k not in user or k == "PATH"}

    def prepare(self, ctx: RunContext, workdir: Path) -> None:
        project = Path(self.project_dir) if self.project_dir else Path()
        project = project if project.is_absolute() else workdir / project
        ctx.logger.info("dbt project directory: %s", project)
        if self.profiles:
            profiles = workdir / "profiles.yml"
            if profiles.exists():
                ctx.logger.info("a profiles.yml already exists in the working directory; it is replaced")
            profiles.write_text(self.profiles)
        if self.load_manifest is not None:
            self._load_manifest(ctx, project)
        if isinstance(ctx, DbtContext):
            ctx.project_dir = project
            ctx.artifacts_before = {
                name: _stat(self._target(project) / name) for name in (MANIFEST, RUN_RESULTS)
            }

    def _target(self, project: Path) -> Path:
        target = (self.env or {}).get("DBT_TARGET_PATH") or "target"
        return project / target

    # -- KV store ------------------------------------------------------------------------------------
    def _load_manifest(self, ctx: RunContext, project: Path) -> None:
        spec = self.load_manifest
        assert spec is not None
        key, namespace = str(ctx.render(spec.key)), str(ctx.render(spec.namespace))
        reader = getattr(ctx, "kv", None)
        if not callable(reader):
            raise TaskError("loadManifest needs a KV store, which this run context does not offer")
        value = reader(key, namespace, error_on_missing=False)
        if value is None or (isinstance(value, str) and not value.strip()):
            ctx.logger.warning(
                "loadManifest: no manifest under key '%s' in the KV store of namespace '%s'", key, namespace
            )
            return
        target = self._target(project) / MANIFEST
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(value if isinstance(value, str) else json.dumps(value))
        ctx.logger.info("loaded manifest from KV key '%s' of namespace '%s' into %s", key, namespace, target)

    # -- run -----------------------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> DbtCLI.Out:
        if self.engine == "FUSION" and any("partial-parse" in c for c in self.commands):
            ctx.logger.warning(
                "the --partial-parse and --no-partial-parse flags are ignored by the FUSION engine"
            )
        writer = ctx.kv_put if self.store_manifest is not None else None
        dctx = DbtContext(ctx)
        result, workdir = self.run_script(dctx)  # type: ignore[arg-type]
        if ctx.killed():
            raise TaskError("killed")

        out = self.Out(exit_code=result.exit_code, vars=result.vars)
        out.output_files = self.collect_output_files(ctx, workdir)
        project = dctx.project_dir or workdir
        target = self._target(project)
        run_results = self._run_results(ctx, dctx, target, out)
        manifest = self._manifest(ctx, dctx, target, out, writer)
        if manifest is not None:
            try:
                out._bundles = asset_bundles(manifest)
            except (ArtifactError, ValueError) as exc:
                ctx.logger.warning("cannot read %s, no assets are emitted: %s", target / MANIFEST, exc)

        if result.exit_code != 0:
            raise TaskError(self._failure(result.exit_code, run_results, dctx))
        if run_results is not None and run_results.failed:
            ctx.logger.warning(
                "dbt exited with 0 although %d node(s) failed (a command ignored the failure)",
                len(run_results.failed),
            )
        if self.warning_on_std_err and result.stderr_lines:
            raise TaskWarning("the commands wrote to stderr", outputs=out)
        warnings = dctx.logger.warnings
        if warnings:
            first = warnings[0].strip().splitlines()[0] if warnings[0].strip() else warnings[0]
            raise TaskWarning(f"dbt logged {len(warnings)} warning(s), the first: {first}", outputs=out)
        return out

    def _fresh(self, dctx: DbtContext, path: Path) -> bool:
        """True when ``path`` was written by this run (not left over from an earlier one)."""
        now = _stat(path)
        return now is not None and now != dctx.artifacts_before.get(path.name)

    def _run_results(
        self, ctx: RunContext, dctx: DbtContext, target: Path, out: DbtCLI.Out
    ) -> RunResults | None:
        if not self.parse_run_results:
            return None
        path = target / RUN_RESULTS
        if not self._fresh(dctx, path):
            ctx.logger.info(
                "no %s written by these commands: no run results"
                if not path.exists()
                else "%s was not written by these commands (left from an earlier run): ignored",
                path,
            )
            return None
        try:
            results = read_run_results(json.loads(path.read_text()))
        except (ValueError, ArtifactError) as exc:
            ctx.logger.warning("cannot read %s: %s", path, exc)
            return None
        out.output_files[RUN_RESULTS] = ctx.put_file(path, name=RUN_RESULTS)
        for node in results.nodes:
            line = result_line(node)
            if node.failed:
                ctx.logger.error(line)
            elif node.warned:
                ctx.logger.warning(line)
            else:
                ctx.logger.info(line)
            for key, metric in (("rows_affected", "rows.affected"), ("bytes_processed", "bytes.processed")):
                value = node.adapter_response.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    ctx.metric(metric, float(value), node=node.unique_id)
        out.run_results = results.nodes
        out.run_summary = results.summary()
        out.test_summary = results.test_summary()
        s, t = out.run_summary, out.test_summary
        ctx.logger.info(
            "dbt %s: %d node(s): %d success, %d error, %d warn, %d skipped; %d test(s): %d pass, %d fail, %d warn, %d error",
            results.command or "run",
            s.total, s.success, s.error, s.warn, s.skipped,
            t.total, t.passed, t.fail, t.warn, t.error,
        )  # fmt: skip
        return results

    def _manifest(
        self, ctx: RunContext, dctx: DbtContext, target: Path, out: DbtCLI.Out, writer: Any
    ) -> dict[str, Any] | None:
        path = target / MANIFEST
        auto = self.assets is not None and self.assets.enable_auto
        log = ctx.logger.warning if auto else ctx.logger.info
        if not path.exists():
            log(
                "dbt manifest not found at %s: the commands wrote no target/manifest.json "
                "(dbt build, run, compile or parse write one), so no assets are emitted",
                path,
            )
            return None
        if not self._fresh(dctx, path):
            log(
                "%s was not written by these commands (left from an earlier run): no assets are emitted", path
            )
            return None
        ctx.logger.info("dbt manifest found at %s", path)
        out.output_files[MANIFEST] = ctx.put_file(path, name=MANIFEST)
        try:
            manifest = json.loads(path.read_text())
        except ValueError as exc:
            ctx.logger.warning("cannot parse %s, no assets are emitted: %s", path, exc)
            return None
        if writer is not None and self.store_manifest is not None:
            key = str(ctx.render(self.store_manifest.key))
            namespace = str(ctx.render(self.store_manifest.namespace))
            writer(key, manifest, namespace=namespace)
            ctx.logger.info("stored the manifest in KV key '%s' of namespace '%s'", key, namespace)
        return manifest

    def _failure(self, code: int, results: RunResults | None, dctx: DbtContext) -> str:
        if code == 127:
            return (
                "dbt failed with exit code 127: a command was not found (is dbt installed"
                + (
                    " in the container image?)"
                    if not self._in_process()
                    else " next to the Python running Roost?)"
                )
                + _tail(dctx.logger.errors or dctx.logger.tail)
            )
        failed = results.failed if results is not None else []
        if failed:
            details = "; ".join(f"{n.unique_id}: {(n.message or n.status).strip()}" for n in failed[:5])
            more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
            return f"dbt failed with exit code {code}: {len(failed)} node(s) failed: {details}{more}"
        return f"dbt failed with exit code {code}" + _tail(dctx.logger.errors or dctx.logger.tail)

    def auto_assets(self, ctx: RunContext, output: Any) -> list[AssetBundle]:
        if isinstance(output, DbtCLI.Out):
            bundles = list(output._bundles)
        else:  # outputs read back as a mapping: use the manifest uploaded to internal storage
            files = (output or {}).get("outputFiles") or {} if isinstance(output, dict) else {}
            uri = files.get(MANIFEST)
            if not uri:
                return []
            try:
                bundles = asset_bundles(json.loads(ctx.read_file(uri)))
            except (ArtifactError, ValueError) as exc:
                ctx.logger.warning("cannot read the manifest %s, no assets are emitted: %s", uri, exc)
                return []
        if bundles:
            ctx.logger.info("dbt assets from the manifest: %d table(s)", len(bundles))
        return bundles


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _tail(lines: Any, keep: int = 4) -> str:
    """The last lines dbt printed, joined on one line for a failure message."""
    kept = [" ".join(line.split()) for line in list(lines)[-keep:] if line.strip()]
    return (": " + " | ".join(kept)) if kept else ""


TASKS = (DbtCLI,)

__all__ = ["TASKS", "DbtCLI", "KvStoreManifest"]
