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
    parse_iso,
)
from roost.engine.variables import task_variables
from roost.flow import flowable
from roost.flow.build import task_slots
from roost.flow.flowable import Child, allowed, effective, value_key, worst
from roost.flow.model import Flow
from roost.flow.properties import format_duration, is_truthy
from roost.flow.task import FlowableTask, Task, TaskError

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
    namespace: str = ""  # rendered: Kestra's namespace and flowId may be expressions
    flow_id: str = ""
    revision: int | None = None


@dataclass
class Timer:
    at: float  # epoch seconds
    execution_id: str
    taskrun_id: str  # the task run; for kind "sla", the SLA's id
    kind: str  # "retry" | "pause" | "wake" (a waiting flowable) | "sla" (MAX_DURATION)


@dataclass
class KillJob:
    taskrun_id: str
    execution_id: str = ""


@dataclass
class KillExecution:
    execution_id: str


@dataclass
class Effects:
    jobs: list[Job] = field(default_factory=list)
    subflows: list[StartSubflow] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    kills: list[KillJob] = field(default_factory=list)
    unqueue: list[KillJob] = field(default_factory=list)  # jobs not to start if they have not (CANCEL)
    kill_executions: list[KillExecution] = field(default_factory=list)
    ended: bool = False
    rewrite: bool = False  # task runs were dropped (a flowable retry): write the execution in full

    def extend(self, other: Effects) -> None:
        self.jobs += other.jobs
        self.subflows += other.subflows
        self.timers += other.timers
        self.kills += other.kills
        self.unqueue += other.unqueue
        self.kill_executions += other.kill_executions
        self.ended = self.ended or other.ended
        self.rewrite = self.rewrite or other.rewrite


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


# -- the view flowables see ------------------------------------------------------------------------
class FlowView:
    """What a flowable task sees of the execution when asked for its next step."""

    def __init__(self, executor: Executor, ex: Execution, flow: Flow, run: TaskRun | None,
                 effects: Effects | None = None) -> None:  # fmt: skip
        self.executor = executor
        self.ex = ex
        self.flow = flow
        self.run = run
        self.effects = effects
        self._vars: dict[str, Any] | None = None

    @property
    def runtime(self) -> Any:
        return self.executor.runtime

    def log(self, level: str, message: str) -> None:
        self.executor._log(self.ex, self.run, level, message)

    def record_outputs(self, run: TaskRun) -> None:
        self.ex.record_outputs(run)

    def wake_at(self, at: float) -> None:
        """Ask for another step of this flowable at ``at`` (epoch seconds), e.g. a loop's next iteration."""
        assert self.run is not None and self.effects is not None
        self.run.extra["wakeAt"] = at
        self.effects.timers.append(Timer(at, self.ex.id, self.run.id, "wake"))

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
            task = self.task(self.run) if self.run is not None else None
            self._vars = task_variables(self.executor.runtime, self.ex, self.flow, self.run, task)
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


def _flow_view_contract(view: FlowView) -> flowable.FlowView:
    return view  # mypy checks here that this view implements the public protocol flowables see


# -- the executor ------------------------------------------------------------------------------------
class Executor:
    """Turns events into new execution states and effects."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.memo: dict[str, dict[str, Any]] = {}

    # events -----------------------------------------------------------------------------------------
    def start(self, ex: Execution, flow: Flow) -> Effects:
        fresh = ex.state.current in (CREATED, QUEUED)
        if ex.state.current in (CREATED, QUEUED, RESTARTED):
            ex.state.set(RUNNING)
        eff = self.process(ex, flow)
        if fresh:
            eff.timers += self.sla_timers(ex, flow)
        return eff

    # SLA -----------------------------------------------------------------------------------------------
    def sla_timers(self, ex: Execution, flow: Flow) -> list[Timer]:
        """One timer per MAX_DURATION SLA, at the execution's start plus the duration (re-derived after a crash)."""
        if not flow.sla or ex.state.terminal():
            return []
        start = ex.state.start.timestamp()
        return [Timer(start + sla.duration.total_seconds(), ex.id, sla.id, "sla")
                for sla in flow.sla if sla.type == "MAX_DURATION" and sla.duration is not None]  # fmt: skip

    def _max_duration(self, ex: Execution, flow: Flow, sla_id: str) -> Effects:
        sla = next((x for x in flow.sla if x.id == sla_id and x.type == "MAX_DURATION"), None)
        if sla is None or sla.duration is None or ex.state.current == KILLING or "finalState" in ex.metadata:
            return Effects()
        elapsed = now() - ex.state.start
        if elapsed <= sla.duration:
            return Effects(
                timers=[
                    Timer(ex.state.start.timestamp() + sla.duration.total_seconds(), ex.id, sla.id, "sla")
                ]
            )
        millis = timedelta(milliseconds=int(elapsed.total_seconds() * 1000))
        reason = f"execution duration of {format_duration(millis)} exceed the maximum duration of {format_duration(sla.duration)}."
        eff = Effects()
        self._violate(ex, flow, sla, reason, eff)
        return eff

    def _assert_slas(self, ex: Execution, flow: Flow, eff: Effects) -> None:
        """EXECUTION_ASSERTION SLAs, evaluated on every change of a running execution; the first violated
        one acts (Kestra), an assertion that cannot be evaluated is logged and ignored (Kestra 1.3)."""
        violated: list[tuple[Any, str]] = []
        variables: dict[str, Any] | None = None
        for sla in flow.sla:
            if sla.type != "EXECUTION_ASSERTION" or not sla.assert_:
                continue
            if variables is None:
                variables = task_variables(self.runtime, ex, flow, None)
            try:
                holds = is_truthy(
                    _view_context(FlowView(self, ex, flow, None), None, variables).render(sla.assert_)
                )
            except Exception as exc:
                self._log(ex, None, "ERROR", f"Ignoring SLA '{sla.id}' because of the error: {exc}")
                continue
            if not holds:
                violated.append((sla, f"assertion is false: {sla.assert_}."))
        for sla, reason in violated[1:]:
            self._log(ex, None, "WARN", f"SLA '{sla.id}' violated: {reason}")
        if violated:
            self._violate(ex, flow, violated[0][0], violated[0][1], eff)

    def _violate(self, ex: Execution, flow: Flow, sla: Any, reason: str, eff: Effects) -> None:
        """Act on a violated SLA: FAIL or CANCEL ends the execution (runs in flight are killed), NONE only
        labels it; the SLA's labels are added either way."""
        self._log(ex, None, "WARN", f"SLA '{sla.id}' violated: {reason}")
        labels = sla.label_list()
        have = {(lbl["key"], lbl["value"]) for lbl in ex.labels}
        if labels and not all((lbl["key"], lbl["value"]) in have for lbl in labels):
            merged = {lbl["key"]: lbl["value"] for lbl in [*ex.labels, *labels]}
            ex.labels = [{"key": k, "value": v} for k, v in merged.items()]
        if sla.behavior == "NONE" or ex.state.terminal():
            return
        state = FAILED if sla.behavior == "FAIL" else CANCELLED
        if state == FAILED:
            self._log(ex, None, "ERROR", f"Execution failed due to SLA '{sla.id}' violated: {reason}")
        open_runs = [tr for tr in ex.task_runs if not tr.state.terminal()]
        for tr in open_runs:
            if tr.extra.get("job") and tr.state.current == RUNNING:
                eff.kills.append(KillJob(tr.id))
            if tr.extra.get("subflow"):
                eff.kill_executions.append(KillExecution(tr.extra["subflow"]))
            tr.extra.pop("retryAt", None)
            tr.extra.pop("pauseUntil", None)
            tr.extra.pop("wakeAt", None)
            # as Kestra: the last unfinished run takes the SLA's state, the others are killed
            tr.state.set(state if tr is open_runs[-1] else KILLED)
            ex.touch(tr)
        ended = {tr.id for tr in open_runs}  # work derived in this very step for them never starts
        eff.jobs = [j for j in eff.jobs if j.taskrun_id not in ended]
        eff.subflows = [c for c in eff.subflows if c.taskrun_id not in ended]
        eff.timers = [t for t in eff.timers if t.taskrun_id not in ended]
        ex.error = f"SLA '{sla.id}' violated: {reason}"
        ex.metadata.pop("manualPause", None)
        if ex.state.current == PAUSED:
            ex.state.set(RUNNING)
        ex.metadata["finalState"] = state
        self._root(ex, flow, eff)  # afterExecution tasks still run, then the execution ends

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
        in_out = attempt.pop("assets", None)
        if in_out:
            tr.assets = in_out
        tr.attempts.append(attempt)
        if ex.state.current == KILLING:
            tr.state.set(KILLED)
            ex.touch(tr)
            return self.process(ex, flow)
        task = index_of(flow).tasks.get(tr.task_id)
        if state == FAILED and task is not None and not ex.metadata.get("cancelling"):
            retry = task.retry or flow.retry
            if retry is not None and self._schedule_retry(ex, tr, retry, error):
                return Effects(timers=[Timer(tr.extra["retryAt"], ex.id, tr.id, "retry")])
        if state == SUCCESS and tr.extra.get("retried") and task is not None:
            retry = task.retry or flow.retry
            if retry is not None and retry.warning_on_retry:
                state = WARNING
        if outputs is not None:
            tr.outputs = outputs
        if error and state in FAILURES:
            tr.extra["error"] = error
        tr.state.set(allowed(state, task))
        ex.touch(tr)
        ex.record_outputs(tr)
        return self.process(ex, flow)

    def _schedule_retry(self, ex: Execution, tr: TaskRun, retry: Any, error: str | None) -> bool:
        """Put a failed run in RETRYING when its policy allows another attempt (``retryAt`` says when)."""
        if retry.behavior != "RETRY_FAILED_TASK":
            return False
        if retry.max_attempts is not None and len(tr.attempts) >= retry.max_attempts:
            return False
        at = now().timestamp() + retry.delay(len(tr.attempts))
        # Kestra: no attempt starts after the first attempt's start plus maxDuration
        if (
            retry.max_duration is not None
            and at > _first_attempt_start(tr) + retry.max_duration.total_seconds()
        ):
            return False
        tr.state.set(RETRYING)
        tr.extra["retryAt"] = at
        tr.extra["retried"] = True
        if error:
            tr.extra["lastError"] = error
        ex.touch(tr)
        return True

    def on_timer(self, ex: Execution, flow: Flow, taskrun_id: str, kind: str) -> Effects:
        if kind == "sla":  # taskrun_id holds the SLA's id
            return Effects() if ex.state.terminal() else self._max_duration(ex, flow, taskrun_id)
        tr = ex.by_id.get(taskrun_id)
        if tr is None or ex.state.terminal():
            return Effects()
        if kind == "retry" and tr.state.current == RETRYING:
            tr.extra.pop("retryAt", None)
            task = index_of(flow).task(tr.task_id)
            if tr.extra.get("flowable"):
                return self._retry_flowable(ex, flow, tr, task)
            if getattr(task, "executor_kind", None) == "subflow":  # a new subflow execution
                eff = Effects()
                tr.extra.pop("subflow", None)
                self._subflow(ex, flow, tr, task, eff)
                ex.touch(tr)
                eff.extend(self.process(ex, flow))
                return eff
            tr.state.set(RUNNING)
            return Effects(jobs=[self._job(ex, flow, tr, task)])
        if kind == "wake" and tr.state.current == RUNNING and tr.extra.get("flowable"):
            ex.touch(tr)
            return self.process(ex, flow)
        if kind == "pause" and tr.state.current == PAUSED:
            behavior = tr.extra.get("pauseBehavior", "RESUME")
            final = {"RESUME": SUCCESS, "WARN": WARNING, "FAIL": FAILED, "CANCEL": CANCELLED}.get(
                behavior, FAILED
            )
            if final == FAILED:
                what = "its timeout" if behavior == "TIMEOUT" else "pauseDuration (behavior FAIL)"
                tr.extra["error"] = f"the pause ended after {what} without being resumed"
                self._log(ex, tr, "ERROR", tr.extra["error"])
            self._end_pause(ex, flow, tr, final, None)
            if ex.state.current == PAUSED and not any(t.state.current == PAUSED for t in ex.task_runs):
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
        if not paused and not manual:  # resumed meanwhile (two Resume tasks, the API): nothing to do
            self._log(
                ex, None, "WARN", f"execution {ex.id} is {ex.state.current}, not PAUSED: nothing to resume"
            )
            return Effects()
        for tr in paused:  # resumed before its deadline: always a success, whatever the behavior
            tr.extra["pauseBehavior"] = "RESUME"
            self._end_pause(
                ex, flow, tr, SUCCESS, {"onResume": inputs or {}} if inputs else (tr.outputs or {})
            )
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
                eff.kills.append(KillJob(tr.id, ex.id))  # the worker reports back, then the run is KILLED
                continue
            if tr.extra.get("subflow"):
                eff.kill_executions.append(KillExecution(tr.extra["subflow"]))
            tr.state.set(KILLED)
            ex.touch(tr)
        self._finish_killing(ex, eff)
        return eff

    def cancel(self, ex: Execution) -> Effects:
        """Kill Switch CANCEL: nothing new starts; task runs in flight (worker jobs, subflows) finish; then
        whatever has not run is CANCELLED, and so is the execution."""
        if ex.state.terminal():
            return Effects()
        ex.metadata["cancelling"] = True
        eff = Effects()
        for tr in ex.task_runs:  # a job still waiting for a worker thread is not in flight: it never starts
            if tr.state.current == RUNNING and tr.extra.get("job"):
                eff.unqueue.append(KillJob(tr.id, ex.id))
        self._finish_cancelling(ex, eff)
        return eff

    def _finish_cancelling(self, ex: Execution, eff: Effects) -> None:
        for tr in ex.task_runs:
            if tr.state.current == RUNNING and (
                tr.extra.get("job") or tr.extra.get("subflow") or tr.extra.get("subflowPending")
            ):
                return  # still in flight
        for tr in ex.task_runs:
            if tr.state.current not in TERMINAL:
                tr.state.set(CANCELLED)
                ex.touch(tr)
        ex.state.set(CANCELLED)
        eff.ended = True

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
        # Kestra's ExecutableUtils.guessState: with transmitFailed, a FAILED, KILLED or WARNING child passes its
        # state on (then allowFailure/allowWarning apply); anything else, or without it, is SUCCESS
        transmit = getattr(task, "transmit_failed", True)
        final = state if transmit and state in (FAILED, KILLED, WARNING, PAUSED) else SUCCESS
        error = f"subflow execution {child_id} ended {state}" if final in FAILURES else None
        return self.on_result(ex, flow, taskrun_id, final, out, {"state": final}, error)

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
                task = index_of(flow).tasks.get(tr.task_id)
                # a flowable starts again at once; a Pause whose pause was over (it ran its tasks) too
                if isinstance(task, FlowableTask) and (
                    getattr(task, "executor_kind", None) != "pause" or tr.extra.get("flowable")
                ):
                    tr.state.set(RUNNING)
        ex.rebuild_outputs()
        ex.metadata["attemptNumber"] = int(ex.metadata.get("attemptNumber", 1)) + 1
        ex.metadata.pop("finalState", None)
        ex.metadata.pop("cancelling", None)
        ex.state.set(RESTARTED)
        ex.state.set(RUNNING)
        eff = Effects()
        for tr in ex.task_runs:
            if tr.state.current == RESTARTED:
                task = index_of(flow).task(tr.task_id)
                kind = getattr(task, "executor_kind", None)
                if kind == "pause":
                    self._pause(ex, flow, tr, task, eff)
                elif kind == "subflow":
                    tr.extra.pop("subflow", None)
                    self._subflow(ex, flow, tr, task, eff)
                elif kind == "update":
                    self._update(ex, flow, tr, task)
                else:
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
        if ex.metadata.get("cancelling"):
            self._finish_cancelling(ex, eff)
            return eff
        if ex.state.current in (QUEUED, CREATED) or ex.metadata.get("manualPause"):
            return eff
        for _ in range(100000):
            changed = False
            for tr in running_flowables(ex):
                task = index_of(flow).task(tr.task_id)
                assert isinstance(task, FlowableTask)
                view = FlowView(self, ex, flow, tr, eff)
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
                    if state == FAILED and task.retry is not None:
                        tr.attempts.append({"state": {"current": FAILED, "histories": [
                            {"state": RUNNING, "date": iso(_last_start(tr))}, {"state": FAILED, "date": iso(now())}]}})  # fmt: skip
                        if self._schedule_retry(ex, tr, task.retry, tr.extra.get("error")):
                            eff.timers.append(Timer(tr.extra["retryAt"], ex.id, tr.id, "retry"))
                            changed = True
                            continue
                    tr.state.set(allowed(state, task))
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
        # SLAs watch the execution until its main tasks end (afterExecution tasks are not watched)
        if flow.sla and ex.state.current not in (KILLING, *TERMINAL) and "finalState" not in ex.metadata:
            self._assert_slas(ex, flow, eff)
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
                if not is_truthy(ok):
                    tr.state.set(SKIPPED)
                    continue
            kind = getattr(task, "executor_kind", None)
            if kind == "pause":
                self._pause(ex, flow, tr, task, eff)
                continue
            if isinstance(task, FlowableTask):
                tr.extra["flowable"] = True
                tr.state.set(RUNNING)
                self._start_flowable(ex, flow, tr, task)
                continue
            if kind == "update":  # tasks that change the execution itself (Labels), run by the executor
                self._update(ex, flow, tr, task)
                continue
            if kind == "subflow":
                self._subflow(ex, flow, tr, task, eff)
                continue
            tr.state.set(RUNNING)
            eff.jobs.append(self._job(ex, flow, tr, task))

    def _start_flowable(self, ex: Execution, flow: Flow, tr: TaskRun, task: Task) -> None:
        """Call a flowable's ``on_start``; one that fails (an If condition that cannot render, ForEach values
        with a null) fails its own run with the reason, and the execution goes on (errors, finally)."""
        start = getattr(task, "on_start", None)
        if start is None:
            return
        try:
            start(FlowView(self, ex, flow, tr))
        except Exception as exc:
            tr.extra["error"] = (
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
            )
            tr.extra.pop("flowable", None)
            tr.state.set(allowed(FAILED, task))
            ex.touch(tr)
            self._log(ex, tr, "ERROR", tr.extra["error"])

    def _retry_flowable(self, ex: Execution, flow: Flow, tr: TaskRun, task: Task) -> Effects:
        """Kestra replays the whole flowable: its children are dropped and created again."""
        drop = _descendants(ex, {tr.id})
        for tr_id in (tr.id, *drop):
            self.memo.pop(tr_id, None)
        ex.reindex([t for t in ex.task_runs if t.id not in drop])
        ex.rebuild_outputs()
        tr.outputs = None
        tr.extra.pop("error", None)
        tr.state.set(RUNNING)
        ex.touch(tr)
        self._start_flowable(ex, flow, tr, task)
        eff = self.process(ex, flow)
        eff.rewrite = True
        return eff

    def _update(self, ex: Execution, flow: Flow, tr: TaskRun, task: Any) -> None:
        """Run a task that updates the execution (Kestra's ExecutionUpdatableTask) in the executor."""
        from roost.engine.context import render_task

        view = FlowView(self, ex, flow, tr)
        tr.state.set(RUNNING)
        started = now()
        try:
            ctx = _view_context(view, tr)
            rendered: Any = render_task(task, ctx)
            outputs = rendered.update(ex, ctx)
            state, error = SUCCESS, None
        except Exception as exc:
            outputs, state, error = (
                None,
                FAILED,
                str(exc) if isinstance(exc, TaskError) else f"{type(exc).__name__}: {exc}",
            )
            self._log(ex, tr, "ERROR", error)
        tr.attempts.append({"state": {"current": state, "histories": [
            {"state": RUNNING, "date": iso(started)}, {"state": state, "date": iso(now())}]}})  # fmt: skip
        if outputs:
            tr.outputs = outputs
        if error:
            tr.extra["error"] = error
        tr.state.set(allowed(state, task))
        ex.touch(tr)
        ex.record_outputs(tr)

    def _job(self, ex: Execution, flow: Flow, tr: TaskRun, task: Task) -> Job:
        tr.extra["job"] = True
        variables = task_variables(self.runtime, ex, flow, tr, task)
        return Job(ex.id, tr.id, task, variables, len(tr.attempts) + 1, ex.namespace, ex.flow_id, ex.tenant,
                   tr.extra.get("workdir"))  # fmt: skip

    def _pause(self, ex: Execution, flow: Flow, tr: TaskRun, task: Any, eff: Effects) -> None:
        """Pause a run. ``pauseDuration`` (or ``delay``) ends it per ``behavior``; without one, ``timeout`` fails it."""
        from roost.engine.context import render_task

        tr.state.set(RUNNING)
        try:
            rendered: Any = render_task(task, _view_context(FlowView(self, ex, flow, tr), tr))
        except Exception as exc:
            tr.extra["error"] = str(exc)
            tr.state.set(allowed(FAILED, task))
            ex.touch(tr)
            self._log(ex, tr, "ERROR", tr.extra["error"])
            return
        tr.state.set(PAUSED)
        if ex.state.current == RUNNING:
            ex.state.set(PAUSED)
        duration = getattr(rendered, "pause_duration", None) or getattr(rendered, "delay", None)
        tr.extra["pauseBehavior"] = (
            getattr(rendered, "behavior", "RESUME") if duration is not None else "TIMEOUT"
        )
        duration = duration or rendered.timeout
        if duration is not None:
            tr.extra["pauseUntil"] = now().timestamp() + duration.total_seconds()
            eff.timers.append(Timer(tr.extra["pauseUntil"], ex.id, tr.id, "pause"))

    def _end_pause(
        self, ex: Execution, flow: Flow, tr: TaskRun, state: str, outputs: dict[str, Any] | None
    ) -> None:
        """A pause ends in ``state``; with the deprecated ``tasks`` (RESUME, WARN), they run first."""
        task = index_of(flow).task(tr.task_id)
        tr.extra.pop("pauseUntil", None)
        if outputs is not None:
            tr.outputs = outputs
        tr.state.set(RUNNING)
        if (
            state in (SUCCESS, WARNING)
            and isinstance(task, FlowableTask)
            and enabled(getattr(task, "tasks", None))
        ):
            tr.extra["flowable"] = True
            _track_flowable(ex, tr)
        else:
            tr.extra.pop("pauseBehavior", None)
            tr.state.set(allowed(state, task))
            ex.record_outputs(tr)
        ex.touch(tr)

    def _subflow(self, ex: Execution, flow: Flow, tr: TaskRun, task: Any, eff: Effects) -> None:
        try:
            call = self.subflow_call(ex, flow, tr, task)
        except Exception as exc:
            tr.state.set(FAILED)
            tr.extra["error"] = str(exc)
            self._log(ex, tr, "ERROR", f"Unable to start the subflow: {exc}")
            return
        tr.state.set(RUNNING)
        tr.extra["subflowPending"] = True
        eff.subflows.append(call)

    def subflow_call(self, ex: Execution, flow: Flow, tr: TaskRun, task: Any) -> StartSubflow:
        """The subflow execution a Subflow task run asks for: rendered target, inputs and labels."""
        from roost.engine.context import render_task

        view = FlowView(self, ex, flow, tr)
        target: Any = render_task(task, _view_context(view, tr))
        if (target.namespace, target.flow_id) == (ex.namespace, ex.flow_id):
            raise ValueError(
                f"a {type(task).__name__} cannot start its own flow ({ex.namespace}.{ex.flow_id})"
            )
        inputs = view.render(task.inputs or {})
        labels = view.render(task.label_list() if hasattr(task, "label_list") else [])
        if target.inherit_labels:
            own = {lbl["key"] for lbl in labels}
            labels = [
                *labels,
                *(lbl for lbl in ex.labels if lbl["key"] not in own and not lbl["key"].startswith("system.")),
            ]
        labels.append(
            {"key": "system.correlationId", "value": ex.label_map().get("system.correlationId", ex.id)}
        )
        return StartSubflow(ex.id, tr.id, task, inputs, labels, task.wait, target.namespace, target.flow_id,
                            target.revision)  # fmt: skip

    def _log(self, ex: Execution, tr: TaskRun | None, level: str, message: str) -> None:
        sink = self.runtime.log_sink
        if sink is None:
            return
        sink([{
            "namespace": ex.namespace, "flowId": ex.flow_id, "executionId": ex.id,
            "taskId": tr.task_id if tr else None, "taskRunId": tr.id if tr else None,
            "timestamp": iso(now()), "level": level, "message": message,
        }])  # fmt: skip


def _track_flowable(ex: Execution, tr: TaskRun) -> None:
    """Add an older run that became a running flowable (a Pause with tasks) to the remembered scan."""
    cached = ex.scans.get(("__flowables__", None, ""))
    if cached is not None and tr not in cached[1]:
        cached[1].append(tr)


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


def _first_attempt_start(tr: TaskRun) -> float:
    """When the first attempt of ``tr`` started (epoch seconds), the origin of ``maxDuration``."""
    for attempt in tr.attempts[:1]:
        histories = (attempt.get("state") or {}).get("histories") or []
        started = parse_iso(histories[0].get("date")) if histories else None
        if started is not None:
            return started.timestamp()
    return tr.state.start.timestamp()


def _last_start(tr: TaskRun) -> Any:
    """When ``tr`` last went RUNNING (a flowable's attempt start)."""
    for state, at in reversed(tr.state.histories):
        if state == RUNNING:
            return at
    return tr.state.start


def _view_context(view: FlowView, tr: TaskRun | None, variables: dict[str, Any] | None = None) -> Any:
    from roost.engine.context import TaskRunContext

    return TaskRunContext(view.executor.runtime, variables if variables is not None else view.variables(),
                          namespace=view.ex.namespace, flow_id=view.ex.flow_id, execution_id=view.ex.id,
                          task_id=tr.task_id if tr else "", taskrun_id=tr.id if tr else "")  # fmt: skip


__all__ = [
    "Child",
    "Effects",
    "Executor",
    "FlowView",
    "Job",
    "allowed",
    "effective",
    "index_of",
    "task_slots",
    "value_key",
    "worst",
]
