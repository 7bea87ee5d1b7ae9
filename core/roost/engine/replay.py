"""Replay: a new execution of an old one's flow, from the start or from one of its task runs.

As Kestra's ``ExecutionService.replay``: the new execution gets a new id, the original's flow revision
(or the one asked for), its inputs (or new ones, typed again), labels, trigger and variables, plus the
label ``system.replay: true``; ``parentId`` is the original and ``originalId`` the first execution of
the chain; ``metadata.attemptNumber`` counts up. Replayed from the start it is CREATED (and the flow's
concurrency limit applies). Replayed from a task run it is RESTARTED: the task runs that ended before
that point are copied (new ids), the chosen run and everything the flow graph reaches from it are left
out and run again, and the flowable tasks around it run on (RUNNING).

What "reached from it" means is Kestra's ``GraphUtils.successors`` on the original's flow graph: the
tasks after it, and, when it is the first of its group (a Parallel branch, a ForEach, the first of a
sequence), the whole group with its ``errors`` branch. Two details are Roost's: the ``errors`` and
``finally`` runs around the chosen one are left out too (they run again if needed), and a task list
continues from its first missing run, so later runs of a list that lost one are re-run as well. A run
inside a WorkingDirectory replays the whole WorkingDirectory (its folder is gone), as Kestra does.
"""

from __future__ import annotations

from typing import Any

from roost.engine.graph import GraphBuilder, successors
from roost.engine.model import RESTARTED, RUNNING, TERMINAL, Execution, State, TaskRun, iso, new_id, now

REPLAY_LABEL, REPLAYED_LABEL = "system.replay", "system.replayed"
BRANCH_SLOTS = ("errors", "finally", "afterExecution")


class ReplayError(ValueError):
    """The replay cannot be built (an unknown task run): the message says why."""


def replay(engine: Any, original: Execution, flow: Any, original_flow: Any, *, taskrun_id: str | None = None,
           inputs: dict[str, Any] | None = None) -> Execution:  # fmt: skip
    """Build, store and start the replay of ``original`` on ``flow`` (``original_flow`` is its own revision)."""
    new = Execution(flow.namespace, flow.id, flow.revision or 1, original.tenant)
    masks = engine.masks(original.tenant, new.id, new=True)
    for value in engine.masks(original.tenant, original.id):  # copied outputs may hold the original's secrets
        masks.add(value)
    new.inputs = dict(original.inputs) if inputs is None else engine.typed_inputs(flow, new, inputs)
    labels = {lbl["key"]: lbl["value"] for lbl in original.labels if lbl["key"] != REPLAYED_LABEL}
    labels[REPLAY_LABEL] = "true"
    new.labels = [{"key": k, "value": v} for k, v in labels.items()]
    new.trigger = original.trigger
    new.variables = dict(original.variables or {})
    new.kind = original.kind
    new.schedule_date = original.schedule_date
    new.parent_id = original.id
    new.original_id = original.original_id or original.id
    new.metadata = {"attemptNumber": int(original.metadata.get("attemptNumber") or 1) + 1,
                    "originalCreatedDate": original.metadata.get("originalCreatedDate")
                    or iso(original.state.start)}  # fmt: skip
    if taskrun_id is not None:
        target = original.by_id.get(taskrun_id)
        if target is None:
            raise ReplayError(f"task run {taskrun_id} not found in execution {original.id}")
        for run in _replayed_runs(original, original_flow, target):
            new.add(run)
        for run in new.task_runs:
            run.execution_id = new.id
        new.state = State(RESTARTED, [*original.state.histories, (RESTARTED, now())])
    return engine.admit(
        new, flow, share=False
    )  # the caller shows it as created, not as the executor moves it


def _replayed_runs(original: Execution, flow: Any, target: TaskRun) -> list[TaskRun]:
    """Copies (new ids) of the runs that stay: those ended before ``target``, and its parents, running again."""
    for parent in original.parents(target):  # nearest first: the outermost WorkingDirectory wins
        if parent.task_id in _working_directories(flow):
            target = parent
    parents = {p.id for p in original.parents(target)}
    graph = GraphBuilder(flow, original).build()
    drop = (successors(graph, {target.id}) - parents) | {target.id}
    drop |= {
        tr.id
        for tr in original.task_runs
        if tr.slot in BRANCH_SLOTS and (tr.parent_id in parents or tr.parent_id is None)
    }
    drop |= {tr.id for tr in original.task_runs if tr.id not in parents and tr.state.current not in TERMINAL}
    drop = _with_descendants(original, drop)
    drop = _with_descendants(original, drop | _after_gaps(original, flow, drop))
    ids = {tr.id: new_id() for tr in original.task_runs if tr.id not in drop}
    out = []
    for tr in original.task_runs:
        if tr.id in drop:
            continue
        run = TaskRun.from_dict(tr.to_dict())
        run.id = ids[tr.id]
        run.parent_id = ids.get(tr.parent_id) if tr.parent_id is not None else None
        if tr.id in parents:  # the flowables around the replayed point run on
            run.state.set(RESTARTED)
            run.state.set(RUNNING)
            run.extra.pop("error", None)
        out.append(run)
    return out


def _working_directories(flow: Any) -> set[str]:
    return {t.id for t in flow.all_tasks() if str(getattr(t, "type", "")).endswith(".WorkingDirectory")}


def _with_descendants(ex: Execution, ids: set[str]) -> set[str]:
    out = set(ids)
    frontier = list(ids)
    while frontier:
        for child in ex.children_of(frontier.pop()):
            if child.id not in out:
                out.add(child.id)
                frontier.append(child.id)
    return out


def _after_gaps(ex: Execution, flow: Any, drop: set[str]) -> set[str]:
    """Runs placed after a dropped one in the same task list: a list resumes from its first missing run.

    A Dag picks its next tasks by dependency, not position, so its lists are left alone."""
    dags = {t.id for t in flow.all_tasks() if str(getattr(t, "type", "")).endswith(".Dag")}
    out: set[str] = set()
    for (parent_id, _group, _slot), runs in ex.by_slot.items():
        parent = ex.by_id.get(parent_id) if parent_id is not None else None
        if parent is not None and parent.task_id in dags:
            continue
        gap = min((r.index for r in runs if r.id in drop), default=None)
        if gap is not None:
            out |= {r.id for r in runs if r.index > gap}
    return out


__all__ = ["REPLAYED_LABEL", "REPLAY_LABEL", "ReplayError", "replay"]
