"""The variables a task's expressions see: flow, execution, inputs, outputs, taskrun, parents..."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from roost.engine.model import Execution, TaskRun, iso


@cache
def envs() -> dict[str, str]:
    """Kestra's ``envs``: environment variables prefixed ``ENV_``, keyed by the lower-cased rest."""
    return {k[4:].lower(): v for k, v in os.environ.items() if k.startswith("ENV_")}


def task_variables(runtime: Any, ex: Execution, flow: Any, tr: TaskRun | None) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "flow": {
            "id": ex.flow_id,
            "namespace": ex.namespace,
            "revision": ex.flow_revision,
            "tenantId": ex.tenant,
        },
        "execution": {
            "id": ex.id,
            "startDate": iso(ex.state.start),
            "originalId": ex.original_id or ex.id,
            "state": ex.state.current,
        },
        "inputs": ex.inputs,
        "outputs": dict(ex.outputs_tree),
        "labels": ex.label_map(),
        "vars": flow.variables if flow is not None else {},
        "envs": envs(),
        "globals": {},
    }
    if ex.trigger is not None:
        variables["trigger"] = ex.trigger.get("variables") or {}
    if tr is not None:
        variables["taskrun"] = {
            "id": tr.id,
            "startDate": iso(tr.state.start),
            "attemptsCount": len(tr.attempts),
            "parentId": tr.parent_id,
            "value": tr.value,
            "iteration": tr.iteration,
            "items": tr.items,
        }
        variables["task"] = {"id": tr.task_id}
        if tr.parent_id is not None:
            chain = ex.parents(tr)
            parents = [{"taskrun": {"value": p.value, "iteration": p.iteration, "id": p.id},
                        "outputs": p.outputs or {}} for p in chain]  # fmt: skip
            variables["parent"] = parents[0]
            variables["parents"] = parents
        if tr.extra.get("workdir"):
            variables["workingDir"] = tr.extra["workdir"]
    if ex.state.current in ("FAILED", "KILLED") or any(t.extra.get("error") for t in ex.task_runs[-50:]):
        errs = [
            {"taskId": t.task_id, "message": t.extra["error"]} for t in ex.task_runs if t.extra.get("error")
        ]
        if errs:
            variables["error"] = errs[-1]
            variables["errors"] = errs
    return variables
