"""The executor: a deterministic function from (flow, execution, event) to (new execution, effects).

It never runs a task itself. It reads the execution record, decides which task
runs to create and which states follow, and returns *effects* (jobs for the
worker, subflows to start, timers, kills) for the engine to carry out. After a
crash the engine reloads executions and calls :meth:`Executor.process` again:
the pending work is re-derived from the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from roost.engine.model import (
    CANCELLED,
    CREATED,
    FAILED,
    FAILURES,
    KILLED,
    KILLING,
    PAUSED,
    QUEUED,
    RESTARTED,
    RESUBMITTED,
    RETRYING,
    RUNNING,
    SKIPPED,
    SUCCESS,
    TERMINAL,
    WARNING,
    Execution,
    TaskRun,
    iso,
    now,
)
from roost.engine.variables import task_variables
from roost.flow.build import task_slots
from roost.flow.model import Flow
from roost.flow.properties import stringify
from roost.flow.task import FlowableTask, Task

ROOT_SLOTS = ("tasks", "errors", "finally", "afterExecution")


# -- effects -------------------------------------------------------------------------------------------
@dataclass
class Job:
    """Run one attempt of a runnable task run on a worker."""

    execution_id: str
    taskrun_id: str
    task: Task
    variables: dict[str, Any]
    attempt: int
    namespace: str
    flow_id: str
    tenant: str = "main"
    workdir: str | None = None


@dataclass
class StartSubflow:
    parent_execution_id: str
    taskrun_id: str
    task: Any
    inputs: dict[str, Any]
    labels: list[dict[str, str]]
    wait: bool


@dataclass
class Timer:
    at: float  # epoch seconds
    execution_id: str
    taskrun_id: str
    kind: str  # "retry" | "pause"


@dataclass
class KillJob:
    taskrun_id: str


@dataclass
class KillExecution:
    execution_id: str


@dataclass
class Effects:
    jobs: list[Job] = field(default_factory=list)
    subflows: list[StartSubflow] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    kills: list[KillJob] = field(default_factory=list)
    kill_executions: list[KillExecution] = field(default_factory=list)
    ended: bool = False

    def extend(self, other: Effects) -> None:
        self.jobs += other.jobs
        self.subflows += other.subflows
        self.timers += other.timers
        self.kills += other.kills
        self.kill_executions += other.kill_executions
        self.ended = self.ended or other.ended


@dataclass
class Child:
    """A task run a flowable asks the executor to create."""

    task: Task
    slot: str
    index: int
    value: str | None = None
    group: str | None = None
    iteration: int | None = None
    items: str | None = None  # ForEachItem: the batch file this run works on


# -- flow index --------------------------------------------------------------------------------------
class FlowIndex:
    """Tasks of a flow by id, computed once per flow object."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.tasks: dict[str, Task] = {}
        for t in flow.all_tasks():
            self.tasks[t.id] = t

    def task(self, task_id: str) -> Task:
        return self.tasks[task_id]


_indexes: dict[int, FlowIndex] = {}


def index_of(flow: Flow) -> FlowIndex:
    idx = _indexes.get(id(flow))
    if idx is None or idx.flow is not flow:
        if len(_indexes) > 1024:
            _indexes.clear()
        idx = _indexes[id(flow)] = FlowIndex(flow)
    return idx


_enabled: dict[int, tuple[list[Task], list[Task]]] = {}


def enabled(tasks: list[Task] | None) -> list[Task]:
    """The tasks of a list that are not disabled (memoised: task lists never change once loaded)."""
    if not tasks:
        return []
    hit = _enabled.get(id(tasks))
    if hit is not None and hit[0] is tasks:
        return hit[1]
    if len(_enabled) > 4096:
        _enabled.clear()
    result = [t for t in tasks if not t.disabled]
    _enabled[id(tasks)] = (tasks, result)
    return result


def worst(states: list[str]) -> str:
    """The state of a group from its members' states."""
    if KILLED in states:
        return KILLED
    if FAILED in states:
        return FAILED
    if CANCELLED in states:
        return CANCELLED
    if WARNING in states:
        return WARNING
    return SUCCESS


def effective(tr: TaskRun, task: Task | None) -> str:
    """A finished run's state as its parent sees it (allowFailure, allowWarning)."""
    state = tr.state.current
    if task is not None:
        if state == FAILED and task.allow_failure:
            return WARNING
        if state == WARNING and task.allow_warning:
            return SUCCESS
    if state == SKIPPED:
        return SUCCESS
    return state


# -- the view flowables see ------------------------------------------------------------------------
class FlowView:
    """What a flowable task sees of the execution when asked for its next step."""

    def __init__(self, executor: Executor, ex: Execution, flow: Flow, run: TaskRun | None) -> None:
        self.executor = executor
        self.ex = ex
        self.flow = flow
        self.run = run
        self._vars: dict[str, Any] | None = None

    @property
    def memo(self) -> dict[str, Any]:
        """Scratch state of this flowable run, kept in memory only (rebuildable from the record)."""
        assert self.run is not None
        return self.executor.memo.setdefault(self.run.id, {})

    @property
    def outputs(self) -> dict[str, Any]:
        if self.run is None:
            return {}
        if self.run.outputs is None:
            self.run.outputs = {}
        return self.run.outputs

    def changed_groups(self) -> set[Any]:
        """Groups (ForEach values) of this run's children whose state changed since the last call."""
        assert self.run is not None
        return self.ex.dirty.pop(self.run.id, set())

    def runs(self, group: Any = ...) -> list[TaskRun]:
        parent = self.run.id if self.run else None
        if group is ...:
            return self.ex.children_of(parent)
        return self.ex.by_group.get((parent, group), [])

    def variables(self) -> dict[str, Any]:
        if self._vars is None:
            self._vars = task_variables(self.executor.runtime, self.ex, self.flow, self.run)
        return self._vars

    def render(self, value: Any) -> Any:
        from roost.engine.context import TaskRunContext

        ctx = TaskRunContext(self.executor.runtime, self.variables(), namespace=self.ex.namespace,
                             flow_id=self.ex.flow_id, execution_id=self.ex.id)  # fmt: skip
        return ctx.render(value)

    def task(self, tr: TaskRun) -> Task | None:
        return index_of(self.flow).tasks.get(tr.task_id)

    def list_step(self, tasks: list[Task], slot: str, concurrency: int = 1, value: str | None = None,
                  group: str | None = None, iteration: int | None = None) -> tuple[str, list[Child]]:  # fmt: skip
        """Progress of one list of tasks: (RUNNING | final state, children to create).

        The runs of the list are scanned incrementally: the leading finished ones are folded
        into a remembered set of states, so a long sequence costs O(1) per step, not O(n).
        """
        tasks = enabled(tasks)
        key = (self.run.id if self.run else None, group, slot)
        mine = self.ex.by_slot.get(key, ())
        scan = self.ex.scans.get(key)
        if scan is None:
            scan = self.ex.scans[key] = [0, set()]
        k, seen = scan
        while k < len(mine) and mine[k].state.current in TERMINAL:
            seen.add(effective(mine[k], self.task(mine[k])))
            k += 1
        scan[0] = k
        running = 0
        done_states = set(seen)
        for r in mine[k:]:
            if r.state.current in TERMINAL:
                done_states.add(effective(r, self.task(r)))
            else:
                running += 1
        failed = any(s in FAILURES for s in done_states)
        if failed:
            return (RUNNING if running else worst(list(done_states))), []
        created = len(mine)
        if created < len(tasks):
            room = (concurrency or len(tasks)) - running
            if room > 0:
                todo = tasks[created : created + room]
                return RUNNING, [
                    Child(t, slot, created + i, value, group, iteration) for i, t in enumerate(todo)
                ]
            return RUNNING, []
        if running:
            return RUNNING, []
        return worst(list(done_states)), []

    def sequence(self, tasks: list[Task], errors: list[Task] | None = None, finally_: list[Task] | None = None,
                 concurrency: int = 1, value: str | None = None, group: Any = None, iteration: int | None = None,
                 slot: str = "tasks") -> tuple[str, list[Child]]:  # fmt: skip
        """Kestra's sequence: ``tasks``; on failure ``errors``; then ``finally``. Returns (state, children)."""
        main, create = self.list_step(tasks, slot, concurrency, value, group, iteration)
        if main == RUNNING:
            return RUNNING, create
        return self.conclude(main, errors, finally_, value, group, iteration)

    def conclude(self, main: str, errors: list[Task] | None, finally_: list[Task] | None, value: str | None = None,
                 group: Any = None, iteration: int | None = None) -> tuple[str, list[Child]]:  # fmt: skip
        """Once the main tasks ended in ``main``: ``errors`` if it failed, then ``finally``; the final state."""
        states = [main]
        if main in FAILURES and errors:
            err, create = self.list_step(errors, "errors", 1, value, group, iteration)
            if err == RUNNING:
                return RUNNING, create
        if finally_:
            fin, create = self.list_step(finally_, "finally", 1, value, group, iteration)
            if fin == RUNNING:
                return RUNNING, create
            states.append(fin)
        return worst(states), []


# -- the executor ------------------------------------------------------------------------------------
class Executor:
    """Turns events into new execution states and effects."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.memo: dict[str, dict[str, Any]] = {}

    # events -----------------------------------------------------------------------------------------
    def start(self, ex: Execution, flow: Flow) -> Effects:
        if ex.state.current in (CREATED, QUEUED, RESTARTED):
            ex.state.set(RUNNING)
        return self.process(ex, flow)

    def resubmitted(self, ex: Execution, flow: Flow, taskrun_id: str, submission: int | None,
                    worker: str | None) -> Effects:  # fmt: skip
        """A worker process holding the task run stopped heartbeating: the run went back to the queue
        for another worker (at least once). Recorded in its state history as Kestra's RESUBMITTED."""
        tr = ex.by_id.get(taskrun_id)
        if tr is None or tr.state.current in TERMINAL:
            return Effects()
        tr.state.set(RESUBMITTED)
        tr.state.set(RUNNING)
        tr.extra["submissions"] = submission
        ex.touch(tr)
        self._log(ex, tr, "WARN", f"worker {worker} stopped heartbeating: task run resubmitted to another "
                                  f"worker (submission {submission})")  # fmt: skip
        return Effects()

    def on_result(self, ex: Execution, flow: Flow, taskrun_id: str, state: str, outputs: dict[str, Any] | None,
                  attempt: dict[str, Any], error: str | None = None) -> Effects:  # fmt: skip
        tr = ex.by_id.get(taskrun_id)
        if tr is None or tr.state.current in TERMINAL:
            return Effects()
        tr.attempts.append(attempt)
        if ex.state.current == KILLING:
            tr.state.set(KILLED)
            ex.touch(tr)
            return self.process(ex, flow)
        task = index_of(flow).tasks.get(tr.task_id)
        if state == FAILED and task is not None:
            retry = task.retry or flow.retry
            if retry is not None and self._may_retry(retry, tr):
                tr.state.set(RETRYING)
                delay = retry.delay(len(tr.attempts))
                tr.extra["retryAt"] = now().timestamp() + delay
                tr.extra["retried"] = True
                if error:
                    tr.extra["lastError"] = error
                return Effects(timers=[Timer(tr.extra["retryAt"], ex.id, tr.id, "retry")])
        if state == SUCCESS and tr.extra.get("retried") and task is not None:
            retry = task.retry or flow.retry
            if retry is not None and retry.warning_on_retry:
                state = WARNING
        if outputs is not None:
            tr.outputs = outputs
        tr.state.set(state)
        ex.touch(tr)
        if error and state in FAILURES:
            tr.extra["error"] = error
        ex.record_outputs(tr)
        return self.process(ex, flow)

    def _may_retry(self, retry: Any, tr: TaskRun) -> bool:
        if retry.behavior != "RETRY_FAILED_TASK":
            return False
        if retry.max_attempts is not None and len(tr.attempts) >= retry.max_attempts:
            return False
        if retry.max_duration is not None:
            first = tr.state.start
            if now() - first >= retry.max_duration:
                return False
        return True

    def on_timer(self, ex: Execution, flow: Flow, taskrun_id: str, kind: str) -> Effects:
        tr = ex.by_id.get(taskrun_id)
        if tr is None or ex.state.terminal():
            return Effects()
        if kind == "retry" and tr.state.current == RETRYING:
            tr.state.set(RUNNING)
            tr.extra.pop("retryAt", None)
            return Effects(jobs=[self._job(ex, flow, tr, index_of(flow).task(tr.task_id))])
        if kind == "pause" and tr.state.current == PAUSED:
            task = index_of(flow).task(tr.task_id)
            behavior = getattr(task, "behavior", "RESUME")
            final = {"RESUME": SUCCESS, "WARN": WARNING, "FAIL": FAILED, "CANCEL": CANCELLED}.get(
                behavior, SUCCESS
            )
            tr.extra.pop("pauseUntil", None)
            tr.state.set(RUNNING)
            tr.state.set(final)
            ex.touch(tr)
            ex.record_outputs(tr)
            if ex.state.current == PAUSED:
                ex.state.set(RUNNING)
            return self.process(ex, flow)
        return Effects()

    def pause(self, ex: Execution, flow: Flow) -> Effects:
        """Pause a running execution: runs in flight end, nothing new starts until it is resumed."""
        if ex.state.current != RUNNING:
            return Effects()
        ex.state.set(PAUSED)
        ex.metadata["manualPause"] = True
        return Effects()

    def resume(self, ex: Execution, flow: Flow, inputs: dict[str, Any] | None = None) -> Effects:
        manual = ex.metadata.pop("manualPause", None)
        paused = [tr for tr in ex.task_runs if tr.state.current == PAUSED]
        if not paused and not manual:
            raise ValueError(f"execution {ex.id} is not paused")
        for tr in paused:
            tr.extra.pop("pauseUntil", None)
            tr.outputs = {"onResume": inputs or {}} if inputs else (tr.outputs or {})
            tr.state.set(RUNNING)
            tr.state.set(SUCCESS)
            ex.touch(tr)
            ex.record_outputs(tr)
        ex.state.set(RUNNING)
        return self.process(ex, flow)

    def kill(self, ex: Execution, flow: Flow | None) -> Effects:
        if ex.state.terminal():
            return Effects()
        eff = Effects()
        ex.state.set(KILLING)
        for tr in ex.task_runs:
            if tr.state.current in TERMINAL:
                continue
            if tr.extra.get("job") and tr.state.current == RUNNING:
                eff.kills.append(KillJob(tr.id))  # the worker reports back, then the run is KILLED
                continue
            if tr.extra.get("subflow"):
                eff.kill_executions.append(KillExecution(tr.extra["subflow"]))
            tr.state.set(KILLED)
            ex.touch(tr)
        self._finish_killing(ex, eff)
        return eff

    def _finish_killing(self, ex: Execution, eff: Effects) -> None:
        if ex.state.current == KILLING and all(tr.state.current in TERMINAL for tr in ex.task_runs):
            ex.state.set(KILLED)
            eff.ended = True

    def subflow_ended(self, ex: Execution, flow: Flow, taskrun_id: str, state: str,
                      outputs: dict[str, Any] | None, child_id: str) -> Effects:  # fmt: skip
        tr = ex.by_id.get(taskrun_id)
        if tr is None or tr.state.current in TERMINAL:
            return Effects()
        task = index_of(flow).task(tr.task_id)
        out: dict[str, Any] = {"executionId": child_id, "state": state}
        if outputs:
            out["outputs"] = outputs
        if state in FAILURES or state == CANCELLED:
            final = FAILED if getattr(task, "transmit_failed", True) else WARNING
            if state == KILLED and getattr(task, "transmit_failed", True):
                final = KILLED
        else:
            final = WARNING if state == WARNING else SUCCESS
        return self.on_result(ex, flow, taskrun_id, final, out, {"state": final})

    def restart(self, ex: Execution, flow: Flow) -> Effects:
        if ex.state.current not in (FAILED, KILLED, WARNING, CANCELLED):
            raise ValueError(
                f"execution {ex.id} is {ex.state.current}: only a failed or killed execution restarts"
            )
        failed = [tr for tr in ex.task_runs if tr.state.current in (FAILED, KILLED, CANCELLED)]
        reset: set[str] = set()
        for tr in failed:
            reset.add(tr.id)
            reset.update(p.id for p in ex.parents(tr))
        # errors and finally branches of the reset runs (and of the root) run again after the retry
        drop = {
            tr.id
            for tr in ex.task_runs
            if tr.slot in ("errors", "finally") and (tr.parent_id in reset or tr.parent_id is None)
        }
        drop |= _descendants(ex, drop)
        ex.reindex([tr for tr in ex.task_runs if tr.id not in drop])
        for tr_id in reset:
            self.memo.pop(tr_id, None)
        for tr in ex.task_runs:
            if tr.id in reset:
                tr.state.set(RESTARTED)
                tr.extra.pop("error", None)
                if index_of(flow).tasks.get(tr.task_id) and isinstance(
                    index_of(flow).task(tr.task_id), FlowableTask
                ):
                    tr.state.set(RUNNING)
        ex.rebuild_outputs()
        ex.metadata["attemptNumber"] = int(ex.metadata.get("attemptNumber", 1)) + 1
        ex.metadata.pop("finalState", None)
        ex.state.set(RESTARTED)
        ex.state.set(RUNNING)
        eff = Effects()
        for tr in ex.task_runs:
            if tr.state.current == RESTARTED:
                task = index_of(flow).task(tr.task_id)
                tr.state.set(RUNNING)
                eff.jobs.append(self._job(ex, flow, tr, task))
        eff.extend(self.process(ex, flow))
        return eff

    # derivation ---------------------------------------------------------------------------------------
    def process(self, ex: Execution, flow: Flow) -> Effects:
        """Derive everything that follows from the current record."""
        eff = Effects()
        if ex.state.terminal():
            return eff
        if ex.state.current == KILLING:
            self._finish_killing(ex, eff)
            return eff
        if ex.state.current in (QUEUED, CREATED) or ex.metadata.get("manualPause"):
            return eff
        for _ in range(100000):
            changed = False
            for tr in running_flowables(ex):
                task = index_of(flow).task(tr.task_id)
                assert isinstance(task, FlowableTask)
                view = FlowView(self, ex, flow, tr)
                try:
                    state, children = task.step(view)
                except Exception as exc:  # a flowable that cannot decide fails, with the reason
                    state, children = FAILED, []
                    tr.extra["error"] = f"{type(exc).__name__}: {exc}"
                    self._log(ex, tr, "ERROR", tr.extra["error"])
                if children:
                    self._create(ex, flow, tr, children, eff)
                    changed = True
                elif state != RUNNING:
                    self.memo.pop(tr.id, None)
                    tr.state.set(state)
                    ex.touch(tr)
                    done = getattr(task, "on_done", None)
                    if done is not None:
                        done(view)
                    ex.record_outputs(tr)
                    changed = True
            if self._root(ex, flow, eff):
                changed = True
            if not changed:
                break
        return eff

    def _root(self, ex: Execution, flow: Flow, eff: Effects) -> bool:
        view = FlowView(self, ex, flow, None)
        final = ex.metadata.get("finalState")
        if final is None:
            state, children = view.sequence(flow.tasks, flow.errors, flow.finally_)
            if children:
                self._create(ex, flow, None, children, eff)
                return True
            if state == RUNNING:
                return False
            ex.metadata["finalState"] = state
            final = state
        if flow.after_execution:
            after, children = view.list_step(flow.after_execution, "afterExecution")
            if children:
                self._create(ex, flow, None, children, eff)
                return True
            if after == RUNNING:
                return False
        self._end(ex, flow, final)
        eff.ended = True
        return False

    def _end(self, ex: Execution, flow: Flow, state: str) -> None:
        if flow.outputs and state in (SUCCESS, WARNING):
            variables = task_variables(self.runtime, ex, flow, None)
            from roost.engine.context import TaskRunContext

            ctx = TaskRunContext(
                self.runtime, variables, namespace=ex.namespace, flow_id=ex.flow_id, execution_id=ex.id
            )
            outs: dict[str, Any] = {}
            try:
                for o in flow.outputs:
                    outs[o.id] = ctx.render(o.value)
                ex.outputs = outs
            except Exception as exc:
                ex.error = f"flow outputs: {exc}"
                state = FAILED
        ex.metadata.pop("finalState", None)
        ex.state.set(state)

    def _create(
        self, ex: Execution, flow: Flow, parent: TaskRun | None, children: list[Child], eff: Effects
    ) -> None:
        for child in children:
            task = child.task
            value = child.value if child.value is not None else (parent.value if parent else None)
            tr = TaskRun(ex.id, ex.namespace, ex.flow_id, task.id, parent.id if parent else None, value,
                         child.iteration, child.slot, child.index, child.group)  # fmt: skip
            if parent is not None and parent.extra.get("workdir"):
                tr.extra["workdir"] = parent.extra["workdir"]
            if child.items is not None:
                tr.items = child.items
            ex.add(tr)
            if task.run_if is not None:
                try:
                    view = FlowView(self, ex, flow, tr)
                    ok = view.render(task.run_if)
                except Exception as exc:
                    tr.state.set(FAILED)
                    tr.extra["error"] = f"runIf: {exc}"
                    self._log(ex, tr, "ERROR", tr.extra["error"])
                    continue
                if not _truthy(ok):
                    tr.state.set(SKIPPED)
                    continue
            if isinstance(task, FlowableTask):
                tr.extra["flowable"] = True
                tr.state.set(RUNNING)
                start = getattr(task, "on_start", None)
                if start is not None:
                    start(FlowView(self, ex, flow, tr))
                continue
            kind = getattr(task, "executor_kind", None)
            if kind == "pause":
                self._pause(ex, flow, tr, task, eff)
                continue
            if kind == "subflow":
                self._subflow(ex, flow, tr, task, eff)
                continue
            tr.state.set(RUNNING)
            eff.jobs.append(self._job(ex, flow, tr, task))

    def _job(self, ex: Execution, flow: Flow, tr: TaskRun, task: Task) -> Job:
        tr.extra["job"] = True
        variables = task_variables(self.runtime, ex, flow, tr)
        return Job(ex.id, tr.id, task, variables, len(tr.attempts) + 1, ex.namespace, ex.flow_id, ex.tenant,
                   tr.extra.get("workdir"))  # fmt: skip

    def _pause(self, ex: Execution, flow: Flow, tr: TaskRun, task: Any, eff: Effects) -> None:
        tr.state.set(RUNNING)
        tr.state.set(PAUSED)
        if ex.state.current == RUNNING:
            ex.state.set(PAUSED)
        duration = getattr(task, "pause_duration", None) or getattr(task, "timeout", None)
        if isinstance(duration, str):
            duration = FlowView(self, ex, flow, tr).render(duration)
            from pydantic import TypeAdapter

            duration = TypeAdapter(timedelta).validate_python(duration)
        if duration is not None:
            tr.extra["pauseUntil"] = now().timestamp() + duration.total_seconds()
            eff.timers.append(Timer(tr.extra["pauseUntil"], ex.id, tr.id, "pause"))

    def _subflow(self, ex: Execution, flow: Flow, tr: TaskRun, task: Any, eff: Effects) -> None:
        try:
            call = self.subflow_call(ex, flow, tr, task)
        except Exception as exc:
            tr.state.set(FAILED)
            tr.extra["error"] = str(exc)
            self._log(ex, tr, "ERROR", f"subflow inputs: {exc}")
            return
        tr.state.set(RUNNING)
        tr.extra["subflowPending"] = True
        eff.subflows.append(call)

    def subflow_call(self, ex: Execution, flow: Flow, tr: TaskRun, task: Any) -> StartSubflow:
        """The subflow execution a Subflow task run asks for: rendered inputs and labels."""
        view = FlowView(self, ex, flow, tr)
        inputs = view.render(task.inputs or {})
        labels = view.render(task.label_list() if hasattr(task, "label_list") else [])
        if task.inherit_labels:
            own = {lbl["key"] for lbl in labels}
            labels = [
                *labels,
                *(lbl for lbl in ex.labels if lbl["key"] not in own and not lbl["key"].startswith("system.")),
            ]
        labels.append(
            {"key": "system.correlationId", "value": ex.label_map().get("system.correlationId", ex.id)}
        )
        return StartSubflow(ex.id, tr.id, task, inputs, labels, task.wait)

    def _log(self, ex: Execution, tr: TaskRun | None, level: str, message: str) -> None:
        sink = self.runtime.log_sink
        if sink is None:
            return
        sink([{
            "namespace": ex.namespace, "flowId": ex.flow_id, "executionId": ex.id,
            "taskId": tr.task_id if tr else None, "taskRunId": tr.id if tr else None,
            "timestamp": iso(now()), "level": level, "message": message,
        }])  # fmt: skip


def running_flowables(ex: Execution) -> list[TaskRun]:
    """Flowable runs still RUNNING, deepest first; the list is kept on the execution between calls."""
    cached = ex.scans.get(("__flowables__", None, ""))
    if cached is None:
        cached = ex.scans[("__flowables__", None, "")] = [0, []]
    k, active = cached
    for tr in ex.task_runs[k:]:
        if tr.extra.get("flowable"):
            active.append(tr)
    cached[0] = len(ex.task_runs)
    active[:] = [t for t in active if t.state.current == RUNNING]
    return list(reversed(active))


def _descendants(ex: Execution, ids: set[str]) -> set[str]:
    out: set[str] = set()
    frontier = list(ids)
    while frontier:
        pid = frontier.pop()
        for c in ex.children_of(pid):
            if c.id not in out:
                out.add(c.id)
                frontier.append(c.id)
    return out


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "null", "none")
    return bool(value)


def value_key(value: Any) -> str:
    """A ForEach value as Kestra keys it: strings as is, anything else as compact JSON."""
    return stringify(value)


__all__ = ["Child", "Effects", "Executor", "FlowView", "Job", "index_of", "task_slots", "value_key"]
