"""Runs one Beam pipeline in this (child) process and writes its final state and metrics as JSON.

``python -m roost_beam.harness yaml|python PIPELINE RESULT -- <pipeline options...>``. apache-beam is
imported here only, never in the worker: it is heavy, and a kill of this process group ends the run.
"""

from __future__ import annotations

import json
import runpy
import sys
import traceback
from typing import Any


def _metrics(result: Any) -> dict[str, Any]:
    def key(metric: Any) -> str:
        name = metric.key.metric
        base = f"{name.namespace}.{name.name}" if name.namespace else name.name
        return f"{base}.{metric.key.step}" if metric.key.step else base

    def value(metric: Any) -> Any:
        return metric.committed if metric.committed is not None else metric.attempted

    found = result.metrics().query()
    counters = {key(m): value(m) for m in found.get("counters", [])}
    distributions = {}
    for m in found.get("distributions", []):
        d = value(m)
        distributions[key(m)] = {"count": d.count, "sum": d.sum, "min": d.min, "max": d.max,
                                 "mean": d.mean if d.count else 0}  # fmt: skip
    gauges = {key(m): value(m).value for m in found.get("gauges", [])}
    return {"counters": counters, "distributions": distributions, "gauges": gauges}


def main(argv: list[str]) -> int:
    kind, pipeline, result_path = argv[:3]
    options = argv[4:] if len(argv) > 3 and argv[3] == "--" else argv[3:]
    results: list[Any] = []
    outcome: dict[str, Any] = {}
    try:
        import apache_beam as beam

        original_run = beam.Pipeline.run

        def recording_run(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original_run(self, *args, **kwargs)
            results.append(result)
            return result

        beam.Pipeline.run = recording_run  # the Python pipeline's own run() is recorded
        if kind == "yaml":
            from apache_beam.yaml.main import build_pipeline_components_from_argv

            opts, constructor, display_data = build_pipeline_components_from_argv(
                [f"--yaml_pipeline_file={pipeline}", *options]
            )
            with beam.Pipeline(options=opts, display_data=display_data) as p:
                constructor(p)
        else:
            sys.argv = [pipeline, *options]
            runpy.run_path(pipeline, run_name="__main__")
        if not results:
            raise RuntimeError("the Python pipeline file ran no pipeline (no Pipeline.run() call)")
        last = results[-1]
        last.wait_until_finish()
        outcome = {"state": str(last.state), "jobId": getattr(last, "job_id", lambda: None)()
                   if callable(getattr(last, "job_id", None)) else None, **_metrics(last)}  # fmt: skip
        code = 0
    except BaseException as exc:  # the parent reports it; SystemExit from a script too
        if isinstance(exc, SystemExit) and exc.code in (0, None) and results:
            return main_done(results, result_path)
        lines = traceback.format_exception_only(type(exc), exc)
        outcome = {"state": "FAILED", "error": "".join(lines).strip()}
        traceback.print_exc()
        code = 1
    with open(result_path, "w", encoding="utf-8") as out:
        json.dump(outcome, out, default=str)
    return code


def main_done(results: list[Any], result_path: str) -> int:
    last = results[-1]
    last.wait_until_finish()
    with open(result_path, "w", encoding="utf-8") as out:
        json.dump({"state": str(last.state), **_metrics(last)}, out, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
