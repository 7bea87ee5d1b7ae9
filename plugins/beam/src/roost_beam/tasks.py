"""RunPipeline (Kestra's ``io.kestra.plugin.beam.RunPipeline``): a Beam pipeline in a subprocess of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PrivateAttr, model_validator
from roost import Asset, AssetBundle, Dynamic, Output, RunContext, Task, TaskError

RUNNERS = {
    "DIRECT": "DirectRunner",
    "FLINK": "FlinkRunner",
    "SPARK": "SparkRunner",
    "DATAFLOW": "DataflowRunner",
}
# Kestra's runnerConfig keys, as the Python SDK's pipeline options
RUNNER_CONFIG = {
    "FLINK": {"flinkRestUrl": "flink_master", "parallelism": "parallelism", "savepointDir": "savepoint_path",
              "stateBackend": "state_backend", "stateBackendStoragePath": "state_backend_storage_path",
              "jarPath": "flink_job_server_jar"},
    "SPARK": {"master": "spark_master_url", "checkpointDir": "checkpoint_dir", "jarPath": "spark_job_server_jar"},
    "DATAFLOW": {"projectId": "project", "region": "region", "tempLocation": "temp_location",
                 "stagingLocation": "staging_location", "update": "update", "maxWorkers": "max_num_workers",
                 "workerMachineType": "machine_type", "network": "network", "subnetwork": "subnetwork"},
}  # fmt: skip
FILE = "io.kestra.plugin.ee.assets.File"
TABLE = "io.kestra.plugin.ee.assets.Table"
# where Beam YAML's I/O transforms name what they read or write
_LOCATION_KEYS = (("path", FILE), ("file_pattern", FILE), ("table", TABLE), ("topic", "KAFKA_TOPIC"))


class RunPipeline(Task, type="io.kestra.plugin.beam.RunPipeline"):
    """Run an Apache Beam pipeline: Beam YAML (``definition`` or ``file``) or a Python pipeline file.

    The pipeline runs with the Python SDK in a subprocess of its own (killed with its process group),
    on the DirectRunner or, with its options passed through, on Flink, Spark or Dataflow. Outputs
    the final state and the pipeline's metrics; with ``assets.enableAuto``, the files and tables its
    Beam YAML sources and sinks name become assets, sources feeding sinks.
    """

    definition: Dynamic[str] | None = None
    """Inline Beam YAML."""
    file: Dynamic[str] | None = None
    """The pipeline's file: a ``kestra://`` URI, ``nsfile:///path``, or a path of the working directory
    (then of the namespace files). A ``.py`` file is a Python pipeline, run as a script; anything else is Beam YAML."""
    runner: Dynamic[Literal["DIRECT", "FLINK", "SPARK", "DATAFLOW"]] = "DIRECT"
    """Beam runner."""
    sdk: Dynamic[Literal["JAVA", "PYTHON"]] = "JAVA"
    """Kestra's SDK choice; Beam YAML and Python pipelines always run on the Python SDK here."""
    options: Dynamic[dict[str, Any]] = Field(default_factory=dict)
    """Pipeline options, passed as ``--name=value`` (``temp_location``, ``project``, ``flink_master``...)."""
    runner_config: Dynamic[dict[str, Any]] = Field(default_factory=dict)
    """Kestra's runner settings (Flink ``flinkRestUrl``, ``parallelism``...; Spark ``master``...; Dataflow
    ``projectId``, ``region``, ``tempLocation``, ``serviceAccountKey``...), mapped to pipeline options."""
    requirements: Dynamic[list[str]] = Field(default_factory=list)
    """Python requirements of the pipeline's workers, passed to Beam as ``--requirements_file`` (staged for
    remote runners; a DirectRunner uses what is installed next to this plugin)."""
    task_runner: dict[str, Any] | None = None
    """Accepted for compatibility: the pipeline runs as a local process."""
    container_image: Dynamic[str] | None = None
    """Accepted for compatibility: the pipeline runs as a local process."""

    class Out(Output):
        state: str
        """Final state reported by the runner (``DONE`` when it succeeded)."""
        runner: str
        """Runner used."""
        sdk: str
        """SDK the flow asked for."""
        job_id: str | None = None
        """The runner's job id, when it has one."""
        counters: dict[str, int] = Field(default_factory=dict)
        """Beam counters, by ``namespace.name.step``."""
        distributions: dict[str, Any] = Field(default_factory=dict)
        """Beam distributions: ``count``, ``sum``, ``min``, ``max``, ``mean``."""
        gauges: dict[str, Any] = Field(default_factory=dict)
        """Beam gauges."""
        _bundles: list[AssetBundle] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> RunPipeline:
        if (self.definition is None) == (self.file is None):
            raise ValueError("give exactly one of 'definition' or 'file'")
        return self

    # -- the pipeline -------------------------------------------------------------------------------
    def _pipeline(self, ctx: RunContext) -> tuple[str, str]:
        """(kind, text) of the pipeline: ``yaml`` or ``python``."""
        if self.definition is not None:
            return "yaml", self.definition
        name = str(self.file)
        kind = "python" if name.lower().endswith(".py") else "yaml"
        if name.startswith("kestra://"):
            return kind, ctx.read_file(name).decode()
        if name.startswith("nsfile://"):
            return kind, ctx.namespace_file(name[len("nsfile://") :].lstrip("/")).decode()
        if name.startswith("/") or ".." in Path(name).parts:
            raise TaskError(f"file: {name!r} must be a kestra:// URI, an nsfile:// URI or a relative path")
        local = Path(ctx.working_dir) / name
        if local.is_file():
            return kind, local.read_text()
        return kind, ctx.namespace_file(name).decode()

    def _arguments(self, ctx: RunContext, workdir: Path) -> tuple[list[str], dict[str, str]]:
        args = [f"--runner={RUNNERS[self.runner]}"]
        env: dict[str, str] = {}
        merged = dict(self.options or {})
        mapping = RUNNER_CONFIG.get(self.runner, {})
        for key, value in (self.runner_config or {}).items():
            if key == "serviceAccountKey" and self.runner == "DATAFLOW":
                key_file = workdir / "service-account.json"
                key_file.write_text(
                    str(value)
                    if not str(value).startswith("kestra://")
                    else ctx.read_file(str(value)).decode()
                )
                key_file.chmod(0o600)
                env["GOOGLE_APPLICATION_CREDENTIALS"] = str(key_file)
            elif key in mapping:
                merged.setdefault(mapping[key], value)
            else:
                ctx.logger.warning(
                    "runnerConfig.%s has no meaning for the %s runner; ignored", key, self.runner
                )
        if self.requirements:
            req = workdir / "requirements.txt"
            req.write_text("\n".join(self.requirements) + "\n")
            merged.setdefault("requirements_file", str(req))
        for key, value in merged.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, list):
                text = ",".join(str(v) for v in value)
            elif isinstance(value, dict):
                text = json.dumps(value)
            else:
                text = str(value)
            args.append(f"--{key}={text}")
        return args, env

    def run(self, ctx: RunContext) -> RunPipeline.Out:
        kind, text = self._pipeline(ctx)
        workdir = Path(ctx.working_dir)
        spec = None
        if kind == "yaml":
            try:
                spec = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise TaskError(f"the Beam YAML pipeline is not valid YAML: {exc}") from None
            if not isinstance(spec, dict) or "pipeline" not in spec:
                raise TaskError(
                    "the Beam YAML has no 'pipeline' (expected pipeline: {type: chain, transforms: [...]})"
                )
        if self.sdk == "JAVA":
            ctx.logger.info(
                "sdk JAVA: the pipeline runs on the Python SDK's Beam YAML (Java-backed transforms need Java)"
            )
        pipeline = workdir / ("pipeline.py" if kind == "python" else "pipeline.yaml")
        pipeline.write_text(text)
        result_file = workdir / "beam-result.json"
        args, env = self._arguments(ctx, workdir)
        ctx.logger.info("running the %s pipeline on %s", kind, RUNNERS[self.runner])
        code = self._spawn(ctx, [sys.executable, "-m", "roost_beam.harness", kind, str(pipeline), str(result_file),
                                 "--", *args], env, workdir)  # fmt: skip
        ctx.raise_if_killed()
        try:
            outcome = json.loads(result_file.read_text())
        except (OSError, ValueError):
            raise TaskError(
                f"the Beam pipeline process ended (exit {code}) without a result; see the logs"
            ) from None
        state = str(outcome.get("state", "UNKNOWN")).rsplit(".", 1)[-1]
        out = self.Out(state=state, runner=self.runner, sdk=self.sdk, job_id=outcome.get("jobId"),
                       counters=outcome.get("counters") or {}, distributions=outcome.get("distributions") or {},
                       gauges=outcome.get("gauges") or {})  # fmt: skip
        if outcome.get("error") or code != 0 or state not in ("DONE", "RUNNING"):
            raise TaskError(f"the Beam pipeline failed ({state}): {outcome.get('error') or 'see the logs'}",
                            outputs=out)  # fmt: skip
        for name, value in out.counters.items():
            ctx.metric(f"beam.counter.{name}", float(value))
        for name, dist in out.distributions.items():
            ctx.metric(f"beam.distribution.{name}", float(dist.get("mean") or 0), "timer")
            ctx.metric(f"beam.distribution.{name}.count", float(dist.get("count") or 0))
        for name, value in out.gauges.items():
            ctx.metric(f"beam.gauge.{name}", float(value or 0))
        out._bundles = io_assets(spec) if spec is not None else []
        return out

    def _spawn(self, ctx: RunContext, argv: list[str], env: dict[str, str], workdir: Path) -> int:
        full_env = {**os.environ, **env}
        proc = subprocess.Popen(argv, cwd=workdir, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

        def kill() -> None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    return
                try:
                    proc.wait(timeout=3)
                    return
                except subprocess.TimeoutExpired:
                    continue

        ctx.on_kill(kill)

        def pump() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                if line and "Could not load ML transform module" not in line:
                    (
                        ctx.logger.warning
                        if line.startswith(("WARNING", "ERROR", "Traceback"))
                        else ctx.logger.info
                    )(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        code = proc.wait()
        reader.join()
        return code

    def auto_assets(self, ctx: RunContext, output: Any) -> list[Any]:
        return list(getattr(output, "_bundles", None) or [])


def io_assets(spec: dict[str, Any]) -> list[AssetBundle]:
    """One bundle: what the pipeline's Read* transforms name as inputs, its Write* transforms as outputs."""
    inputs: list[Asset] = []
    outputs: list[Asset] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        kind = str(node.get("type", ""))
        config = node.get("config") if isinstance(node.get("config"), dict) else {}
        target = inputs if kind.startswith("Read") else outputs if kind.startswith("Write") else None
        if target is not None:
            for key, asset_type in _LOCATION_KEYS:
                if config.get(key):
                    target.append(Asset(id=str(config[key]), type=asset_type,
                                        metadata={"system": "beam", "transform": kind}))  # fmt: skip
                    break
        for child in ("transforms", "source", "sink"):
            if child in node:
                walk(node[child])

    walk(spec.get("pipeline"))
    return [AssetBundle(inputs=inputs, outputs=outputs)] if inputs or outputs else []


TASKS = (RunPipeline,)
