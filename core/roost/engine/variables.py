"""The variables a task's expressions see: flow, execution, inputs, outputs, taskrun, parents..."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from roost.engine.model import Execution, TaskRun, iso


@cache
def envs() -> dict[str, str]:
    """Kestra's ``envs``: environment variables prefixed ``ENV_``, keyed by the lower-cased rest."""
    return {k[4:].lower(): v for k, v in os.environ.items() if k.startswith("ENV_")}


_nested: dict[int, tuple[list[dict[str, str]], dict[str, Any]]] = {}


def nested_labels(labels: list[dict[str, str]]) -> dict[str, Any]:
    """Labels as Kestra exposes them: dotted keys nest (``labels.system.correlationId``); on a clash
    between a value and a nested key the first one wins, as in Kestra. Memoised per labels list (an
    execution's list is replaced, never edited in place, when its labels change)."""
    hit = _nested.get(id(labels))
    if hit is not None and hit[0] is labels:
        return hit[1]
    if len(_nested) > 4096:
        _nested.clear()
    out = _nest(labels)
    _nested[id(labels)] = (labels, out)
    return out


def _nest(labels: list[dict[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in labels:
        *parents, last = label["key"].split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node.setdefault(last, label["value"])
    return out


class TaskStates(Mapping[str, Any]):
    """Kestra's ``tasks`` variable: ``tasks.<id>.state`` (``tasks.<id>.<value>.state`` in a ForEach),
    computed when first read so that executions that never read it pay nothing."""

    __slots__ = ("_ex", "_data")

    def __init__(self, ex: Execution) -> None:
        self._ex = ex
        self._data: dict[str, Any] | None = None

    def _states(self) -> dict[str, Any]:
        if self._data is None:
            data: dict[str, Any] = {}
            for tr in list(self._ex.task_runs):
                if tr.value is None:
                    data[tr.task_id] = {"state": tr.state.current}
                else:
                    entry = data.setdefault(tr.task_id, {})
                    if isinstance(entry, dict):
                        entry[tr.value] = {"state": tr.state.current}
            self._data = data
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._states()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._states())

    def __len__(self) -> int:
        return len(self._states())


def _taskrun(tr: TaskRun) -> dict[str, Any]:
    return {
        "id": tr.id,
        "startDate": iso(tr.state.start),
        "attemptsCount": len(tr.attempts),
        "parentId": tr.parent_id,
        "value": tr.value,
        "iteration": tr.iteration,
        "items": tr.items,
    }


def task_variables(
    runtime: Any, ex: Execution, flow: Any, tr: TaskRun | None, task: Any = None
) -> dict[str, Any]:
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
        "labels": nested_labels(ex.labels),
        "tasks": TaskStates(ex),
        "vars": flow.variables if flow is not None else {},
        "envs": envs(),
        "globals": {},
    }
    if ex.trigger is not None:
        variables["trigger"] = ex.trigger.get("variables") or {}
    if tr is not None:
        variables["taskrun"] = _taskrun(tr)
        variables["task"] = {"id": tr.task_id, "type": task.type} if task is not None else {"id": tr.task_id}
        if tr.parent_id is not None:
            chain = ex.parents(tr)
            parents = [{"task": {"id": p.task_id}, "taskrun": {"value": p.value, "iteration": p.iteration, "id": p.id},
                        "outputs": p.outputs or {}} for p in chain]  # fmt: skip
            variables["parent"] = parents[0]
            variables["parents"] = parents
        if tr.extra.get("workdir"):
            variables["workingDir"] = tr.extra["workdir"]
            if tr.parent_id is not None:  # Kestra's workerTaskrun: the WorkingDirectory's own task run
                variables["workerTaskrun"] = _taskrun(ex.by_id[tr.parent_id])
    if ex.state.current in ("FAILED", "KILLED") or any(t.extra.get("error") for t in ex.task_runs[-50:]):
        errs = [
            {"taskId": t.task_id, "message": t.extra["error"]} for t in ex.task_runs if t.extra.get("error")
        ]
        if errs:
            variables["error"] = errs[-1]
            variables["errors"] = errs
    return variables
