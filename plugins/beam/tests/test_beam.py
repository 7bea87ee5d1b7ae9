"""RunPipeline on Beam's real DirectRunner (each pipeline in its own subprocess; ~10 s each here)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from roost import TaskError
from roost.engine.context import Killed, Runtime, TaskRunContext
from roost.testing import run_task
from roost.testing.suite import TypeSuite
from roost_beam import tasks
from roost_beam.tasks import RunPipeline, io_assets

WORDS_PY = """
import argparse
import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

parser = argparse.ArgumentParser()
parser.add_argument("--output", required=True)
known, rest = parser.parse_known_args()
seen = Metrics.counter("words", "seen")
sizes = Metrics.distribution("words", "length")


def count(word):
    seen.inc()
    sizes.update(len(word))
    return word


with beam.Pipeline(options=PipelineOptions(rest)) as p:
    (p | beam.Create(["apple", "fig", "apple", "kiwi"]) | beam.Map(count)
       | beam.combiners.Count.PerElement() | beam.MapTuple(lambda w, n: f"{w},{n}")
       | beam.io.WriteToText(known.output, shard_name_template=""))
"""


def test_a_beam_yaml_pipeline_reads_csv_filters_and_writes_json_with_assets(tmp_path: Path) -> None:
    source = tmp_path / "fruits.csv"
    source.write_text("name,qty\napple,3\npear,5\nfig,1\n")
    sink = tmp_path / "out" / "kept"
    definition = f"""
pipeline:
  type: chain
  transforms:
    - type: ReadFromCsv
      config:
        path: {source}
    - type: Filter
      config:
        language: python
        keep: "qty > 1"
    - type: WriteToJson
      config:
        path: {sink}
"""
    result = run_task(RunPipeline, definition=definition, sdk="PYTHON", assets={"enableAuto": True})
    assert result.outputs["state"] == "DONE" and result.outputs["runner"] == "DIRECT"
    written = [
        json.loads(line) for f in sorted(sink.parent.glob("kept*")) for line in f.read_text().splitlines()
    ]
    assert sorted(written, key=lambda r: r["name"]) == [
        {"name": "apple", "qty": 3},
        {"name": "pear", "qty": 5},
    ]
    (bundle,) = result.assets
    assert [(a.id, a.type) for a in bundle.inputs] == [(str(source), "io.kestra.plugin.ee.assets.File")]
    assert [(a.id, a.metadata["transform"]) for a in bundle.outputs] == [(str(sink), "WriteToJson")]


def test_a_python_pipeline_from_a_namespace_file_reports_its_metrics(tmp_path: Path) -> None:
    runtime = Runtime.in_memory(tmp_path / "rt")
    runtime.namespace_files.write("company.team", "pipelines/words.py", WORDS_PY.encode())
    out = tmp_path / "counts.txt"
    result = run_task(RunPipeline, runtime=runtime, file="pipelines/words.py", options={"output": str(out)})
    assert sorted(out.read_text().splitlines()) == ["apple,2", "fig,1", "kiwi,1"]
    counters = result.outputs["counters"]
    assert [v for k, v in counters.items() if k.startswith("words.seen")] == [4]
    (dist,) = [v for k, v in result.outputs["distributions"].items() if k.startswith("words.length")]
    assert dist["count"] == 4 and dist["min"] == 3 and dist["max"] == 5 and dist["sum"] == 17
    names = {m["name"] for m in result.context.metrics}
    assert any(n.startswith("beam.counter.words.seen") for n in names)


def test_a_failing_pipeline_fails_the_task_with_beams_error(tmp_path: Path) -> None:
    definition = """
pipeline:
  type: chain
  transforms:
    - type: Create
      config:
        elements: [1, 2, 0]
    - type: MapToFields
      config:
        language: python
        fields:
          inverse: "1 / element"
"""
    with pytest.raises(TaskError) as err:
        run_task(RunPipeline, definition=definition)
    assert "ZeroDivisionError" in str(err.value)
    with pytest.raises(TaskError, match="no 'pipeline'"):
        run_task(RunPipeline, definition="transforms: []")
    with pytest.raises(TaskError, match="kestra:// URI"):
        run_task(RunPipeline, file="/etc/passwd")


def test_kill_stops_the_pipeline_process_group(tmp_path: Path) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text("import time, apache_beam as beam\n"
                    "with beam.Pipeline() as p:\n"
                    "    p | beam.Create([1]) | beam.Map(lambda x: time.sleep(120))\n")  # fmt: skip
    runtime = Runtime.in_memory(tmp_path / "rt")
    runtime.namespace_files.write("company.team", "slow.py", slow.read_bytes())
    task = RunPipeline(id="beam", type=RunPipeline.type_id, file="nsfile:///slow.py")
    ctx = TaskRunContext(runtime, {}, namespace="company.team", task_id="beam")
    threading.Timer(12.0, ctx.fire_kill).start()
    started = time.monotonic()
    with pytest.raises(Killed):
        task.run(ctx)
    assert time.monotonic() - started < 40


def test_runner_options_are_passed_through_untouched(tmp_path: Path) -> None:
    task = RunPipeline(id="b", type=RunPipeline.type_id, definition="pipeline: {}", runner="FLINK",
                       options={"environment_type": "LOOPBACK", "parallelism": 4, "flag": True},
                       runnerConfig={"flinkRestUrl": "http://flink:8081", "parallelism": 2})  # fmt: skip
    ctx = TaskRunContext(Runtime.in_memory(tmp_path / "rt"), {}, namespace="company.team")
    args, _ = task._arguments(ctx, tmp_path)
    assert args == ["--runner=FlinkRunner", "--environment_type=LOOPBACK", "--parallelism=4", "--flag=true",
                    "--flink_master=http://flink:8081"]  # fmt: skip


def test_assets_of_nested_sources_and_sinks() -> None:
    spec: dict[str, Any] = {"pipeline": {"transforms": [
        {"type": "ReadFromText", "config": {"path": "gs://in/*.txt"}},
        {"type": "ReadFromBigQuery", "config": {"table": "proj.ds.orders"}},
        {"type": "composite", "transforms": [{"type": "WriteToParquet", "config": {"path": "/out/p"}}]},
        {"type": "LogForTesting"}]}}  # fmt: skip
    (bundle,) = io_assets(spec)
    assert [a.id for a in bundle.inputs] == ["gs://in/*.txt", "proj.ds.orders"]
    assert [a.type for a in bundle.inputs][1] == "io.kestra.plugin.ee.assets.Table"
    assert [a.id for a in bundle.outputs] == ["/out/p"]


def test_a_flow_runs_kestras_example(run_flow: Any) -> None:
    ex = run_flow(
        """id: beam_direct_python
namespace: company.team
tasks:
  - id: run_pipeline
    type: io.kestra.plugin.beam.RunPipeline
    sdk: PYTHON
    runner: DIRECT
    definition: |
      pipeline:
        type: chain
        transforms:
          - type: Create
            config:
              elements: [1, 2, 3]
          - type: LogForTesting
  - id: check
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.run_pipeline.state }}"
""",
        timeout=120,
    )
    assert ex.state.current == "SUCCESS", ex.to_dict()
    run = next(tr for tr in ex.task_runs if tr.task_id == "run_pipeline")
    assert run.outputs["state"] == "DONE"


class TestBeamTypes(TypeSuite):
    types = tasks.TASKS
    examples = [
        """
id: beam_flink_python
namespace: company.team
tasks:
  - id: run_pipeline
    type: io.kestra.plugin.beam.RunPipeline
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
      privileged: true
    sdk: PYTHON
    runner: FLINK
    file: "pipelines/pipeline.yaml"
    options:
      flink_master: "http://localhost:56478"
      parallelism: "4"
      environment_type: DOCKER
    runnerConfig:
      flinkRestUrl: "http://localhost:56478"
    requirements:
      - apache-beam==2.69.0
"""
    ]
