"""Flowable core tasks: they arrange children; the executor asks them what runs next."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from roost import Duration, Dynamic, FlowableTask, Model, Task
from roost.engine.executor import FlowView, value_key, worst
from roost.engine.model import FAILED, FAILURES, RUNNING, SUCCESS, WARNING
from roost.flow.model import Input
from roost.flow.properties import is_expression, is_truthy
from roost.store.storage import download

P = "io.kestra.plugin.core.flow."
OLD = "io.kestra.core.tasks.flows."


class Sequential(FlowableTask, type=P + "Sequential", aliases=(OLD + "Sequential",)):
    """Run tasks one after the other."""

    tasks: list[Task] = Field(min_length=1)
    """Tasks to run in order."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run when one of ``tasks`` fails."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end, whatever the outcome."""


class Parallel(FlowableTask, type=P + "Parallel", aliases=(OLD + "Parallel",)):
    """Run tasks at the same time, at most ``concurrent`` at once (0: all)."""

    tasks: list[Task] = Field(min_length=1)
    """Tasks to run in parallel."""
    concurrent: int = Field(default=0, ge=0)
    """Most tasks running at once; 0 for no limit."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run when one of ``tasks`` fails."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end, whatever the outcome."""

    def step(self, view: FlowView) -> tuple[str, list[Any]]:
        return view.sequence(self.tasks, self.errors, self.finally_, concurrency=self.concurrent)


class AllowFailure(FlowableTask, type=P + "AllowFailure", aliases=(OLD + "AllowFailure",)):
    """Run tasks; a failure among them makes this task (and the execution) WARNING instead of FAILED."""

    tasks: list[Task] = Field(min_length=1)
    """Tasks whose failure is allowed."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run when one of ``tasks`` fails."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end."""

    def step(self, view: FlowView) -> tuple[str, list[Any]]:
        state, children = view.sequence(self.tasks, self.errors, self.finally_)
        if state == FAILED:
            return WARNING, children
        return state, children


class If(FlowableTask, type=P + "If"):
    """Run ``then`` when ``condition`` is true, otherwise ``else``."""

    condition: Dynamic[str]
    """Expression; true when it renders to a true value (true, 1, yes, a non-empty string)."""
    then: list[Task] = Field(min_length=1)
    """Tasks run when the condition holds."""
    else_: list[Task] = Field(default_factory=list, alias="else")
    """Tasks run otherwise."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run on failure."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end."""

    def on_start(self, view: FlowView) -> None:
        result = is_truthy(view.render(self.condition))
        view.run.extra["branch"] = "then" if result else "else"  # type: ignore[union-attr]

    def step(self, view: FlowView) -> tuple[str, list[Any]]:
        branch = view.run.extra.get("branch", "then")  # type: ignore[union-attr]
        tasks = self.then if branch == "then" else self.else_
        return view.sequence(tasks, self.errors, self.finally_, slot=branch)


class Switch(FlowableTask, type=P + "Switch", aliases=(OLD + "Switch",)):
    """Run the tasks of the case matching ``value``, or ``defaults`` when none matches."""

    value: Dynamic[str]
    """Expression whose rendered value picks the case."""
    cases: dict[str, list[Task]] = Field(default_factory=dict)
    """Task lists by value."""
    defaults: list[Task] = Field(default_factory=list)
    """Tasks run when no case matches."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run on failure."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end."""

    @model_validator(mode="after")
    def _has_tasks(self) -> Switch:
        if not self.defaults and not any(self.cases.values()):
            raise ValueError("a Switch needs tasks in at least one case or in defaults")
        return self

    def on_start(self, view: FlowView) -> None:
        value = view.render(self.value)
        key = (
            value
            if isinstance(value, str)
            else json.dumps(value)
            if isinstance(value, dict | list)
            else str(value)
        )
        if isinstance(value, bool):
            key = "true" if value else "false"
        matched = key in self.cases
        view.run.extra["case"] = key if matched else None  # type: ignore[union-attr]
        view.run.outputs = {"value": key, "defaults": not matched}  # type: ignore[union-attr]

    def step(self, view: FlowView) -> tuple[str, list[Any]]:
        case = view.run.extra.get("case")  # type: ignore[union-attr]
        tasks = self.cases[case] if case is not None else self.defaults
        return view.sequence(tasks, self.errors, self.finally_, slot=f"case:{case}" if case else "defaults")


class _EachValue(FlowableTask):
    """What ForEach, EachSequential and EachParallel share: ``tasks`` run once per value, outputs nested by
    value (``outputs.task[value]``); ``group_limit`` values at once, ``task_limit`` tasks of a value at once."""

    values: Dynamic[list[Any]] | Dynamic[str]
    """The values: a list, or a JSON array (often an expression)."""
    tasks: list[Task] = Field(min_length=1)
    """Tasks run for each value."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run on failure."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end."""

    def group_limit(self) -> int:
        return 1

    def task_limit(self) -> int:
        return 1

    def on_start(self, view: FlowView) -> None:
        view.run.extra["values"] = iteration_values(view, self.values)  # type: ignore[union-attr]

    def _progress(self, view: FlowView) -> dict[str, Any]:
        """Which values started and how they ended; kept in memory, rebuilt from the children after a restart."""
        memo = view.memo
        if "next" not in memo:
            values: list[str] = view.run.extra["values"]  # type: ignore[union-attr]
            started = {r.group for r in view.runs() if r.slot == "tasks"}
            memo["index"] = {v: i for i, v in enumerate(values)}
            memo["next"] = sum(1 for v in values if v in started)
            memo["active"] = set(range(memo["next"]))
            memo["agg"] = {}
            memo["recheck"] = True  # first look after a (re)load: every started value
        return memo

    def step(self, view: FlowView) -> tuple[str, list[Any]]:
        """Advance the values whose runs changed since the last step (O(changes), not O(values))."""
        memo = self._progress(view)
        values: list[str] = view.run.extra["values"]  # type: ignore[union-attr]
        agg: dict[str, int] = memo["agg"]
        active: set[int] = memo["active"]
        changed = view.changed_groups()
        if memo.pop("recheck", False):
            todo = sorted(active)
        else:
            todo = sorted(
                memo["index"][g] for g in changed if g in memo["index"] and memo["index"][g] in active
            )
        inner = self.task_limit()
        create: list[Any] = []
        for i in todo:
            state, children = view.sequence(
                self.tasks, concurrency=inner, value=values[i], group=values[i], iteration=i
            )
            create += children
            if state != RUNNING:
                active.discard(i)
                agg[state] = agg.get(state, 0) + 1
        limit = self.group_limit() or len(values) or 1
        nxt = memo["next"]
        while not any(s in FAILURES for s in agg) and nxt < len(values) and len(active) < limit:
            state, children = view.sequence(
                self.tasks, concurrency=inner, value=values[nxt], group=values[nxt], iteration=nxt
            )
            create += children
            if state == RUNNING:
                active.add(nxt)
            else:
                agg[state] = agg.get(state, 0) + 1
            nxt += 1
        memo["next"] = nxt
        if create or active:
            return RUNNING, create
        return view.conclude(worst(list(agg)) if agg else SUCCESS, self.errors, self.finally_)


class ForEach(_EachValue, type=P + "ForEach"):
    """Run ``tasks`` once per value; outputs are nested by value (``outputs.task[value]``)."""

    concurrency_limit: int = Field(default=1, ge=0)
    """Values processed at once; 0 for no limit."""

    def group_limit(self) -> int:
        return self.concurrency_limit


class EachSequential(_EachValue, type=P + "EachSequential", aliases=(OLD + "EachSequential",)):
    """Deprecated: run ``tasks`` for each value, one value after the other (use ForEach)."""

    deprecated: ClassVar[str] = "use io.kestra.plugin.core.flow.ForEach"


class EachParallel(_EachValue, type=P + "EachParallel", aliases=(OLD + "EachParallel",)):
    """Deprecated: run ``tasks`` for each value, values and the tasks of each value in parallel (use ForEach)."""

    deprecated: ClassVar[str] = "use io.kestra.plugin.core.flow.ForEach with a Parallel task"
    concurrent: int = Field(default=0, ge=0)
    """Values processed at once; 0 for no limit."""

    def group_limit(self) -> int:
        return self.concurrent

    def task_limit(self) -> int:
        return 0


class CheckFrequency(Model):
    """How often a LoopUntil checks, and when it gives up (no limit when unset; each may be an expression)."""

    max_iterations: Dynamic[Annotated[int, Field(ge=1)]] | None = None
    """Most iterations."""
    max_duration: Dynamic[timedelta] | None = None
    """Longest time the loop runs, from its start."""
    interval: Dynamic[timedelta] = timedelta(minutes=1)
    """Wait between two iterations."""


class LoopUntil(FlowableTask, type=P + "LoopUntil", aliases=(P + "WaitFor", OLD + "WaitFor")):
    """Run ``tasks`` again and again, ``checkFrequency.interval`` apart, until ``condition`` is true.

    ``outputs.<id>.iterationCount`` counts the iterations from 1. The condition is evaluated once all the
    tasks of an iteration succeeded; a failure ends the loop (``errors``, then ``finally``). When
    ``maxIterations`` or ``maxDuration`` is reached the loop ends: FAILED with ``failOnMaxReached``.
    """

    tasks: list[Task] = Field(min_length=1)
    """Tasks run at each iteration."""
    condition: Dynamic[str]
    """Expression; the loop ends once it is true (false: null, false, 0, -0 or blank)."""
    fail_on_max_reached: Dynamic[bool] = False
    """End FAILED when maxIterations or maxDuration is reached."""
    check_frequency: CheckFrequency = Field(default_factory=CheckFrequency)
    """Interval between iterations, and the limits."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run on failure."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end."""

    def on_start(self, view: FlowView) -> None:
        """Render the limits once: they hold for the whole loop."""
        from pydantic import TypeAdapter

        freq = self.check_frequency
        run = view.run
        assert run is not None
        as_seconds = TypeAdapter(Duration)
        run.extra["loop"] = {
            "interval": as_seconds.validate_python(view.render(freq.interval)).total_seconds(),
            "maxIterations": int(view.render(freq.max_iterations)) if freq.max_iterations is not None else None,
            "maxDuration": as_seconds.validate_python(view.render(freq.max_duration)).total_seconds()
            if freq.max_duration is not None else None,
            "failOnMaxReached": is_truthy(view.render(self.fail_on_max_reached)),
            "iteration": 1,
        }  # fmt: skip
        self._set_count(view, 1)

    @staticmethod
    def _set_count(view: FlowView, n: int) -> None:
        run = view.run
        assert run is not None
        run.outputs = {**(run.outputs or {}), "iterationCount": n}  # a new dict: the record sees the change
        view.ex.record_outputs(run)  # the tasks of the iteration read outputs.<id>.iterationCount

    def step(self, view: FlowView) -> tuple[str, list[Any]]:
        from roost.engine.model import now

        run = view.run
        assert run is not None
        loop = run.extra["loop"]
        n = loop["iteration"]
        if "done" not in loop:
            state, children = view.list_step(self.tasks, f"loop:{n}", iteration=n)
            if state == RUNNING:
                return RUNNING, children
            if state in FAILURES or is_truthy(view.render(self.condition)):
                loop["done"] = state
            elif self._reached_max(view, loop, n):
                loop["done"] = FAILED if loop["failOnMaxReached"] else state
                if loop["failOnMaxReached"]:
                    return FAILED, []  # as Kestra: the loop fails at once, errors and finally do not run
            else:
                wake = run.extra.get("wakeAt")
                if wake is None:
                    view.wake_at(now().timestamp() + loop["interval"])
                    return RUNNING, []
                if now().timestamp() < wake:
                    return RUNNING, []
                run.extra.pop("wakeAt", None)
                loop["iteration"] = n + 1
                self._set_count(view, n + 1)
                _, children = view.list_step(self.tasks, f"loop:{n + 1}", iteration=n + 1)
                return RUNNING, children
        return view.conclude(loop["done"], self.errors, self.finally_)

    @staticmethod
    def _reached_max(view: FlowView, loop: dict[str, Any], n: int) -> bool:
        from roost.engine.model import now

        if loop["maxIterations"] is not None and n >= loop["maxIterations"]:
            view.executor._log(view.ex, view.run, "WARN", "Max iterations reached")
            return True
        started = view.run.state.start.timestamp()  # type: ignore[union-attr]
        if loop["maxDuration"] is not None and now().timestamp() - started > loop["maxDuration"]:
            view.executor._log(view.ex, view.run, "WARN", "Max duration reached")
            return True
        return False


def iteration_values(view: FlowView, values: Any) -> list[str]:
    """The values a ForEach iterates over, as Kestra's FlowableUtils.resolveValues makes them: a rendered
    string is parsed as a JSON array (non-string items become JSON), each item of a list is rendered on its
    own (numbers as text, maps as JSON); a null fails the task; duplicates are dropped, first one kept."""
    rendered = view.render(values)
    if isinstance(values, str):
        if isinstance(rendered, str):
            try:
                rendered = json.loads(rendered)
            except ValueError:
                raise ValueError(f"values must be a list or a JSON array, got {rendered[:80]!r}") from None
        if not isinstance(rendered, list):
            raise ValueError(f"values must render to a JSON array, got {json.dumps(rendered)[:80]}")
        items = rendered
    elif isinstance(values, list):
        items = rendered
        for raw in values:
            if raw is not None and not isinstance(raw, str | int | float | dict) or isinstance(raw, bool):
                raise ValueError(f"Unknown value element type: {type(raw).__name__} in the iteration values")
    else:
        raise ValueError(f"values must be a list, got {type(values).__name__}")
    if any(item is None for item in items):
        raise ValueError(f"Found a null value inside the iteration values={json.dumps(items)[:200]}")
    return list(dict.fromkeys(value_key(v) for v in items))


class DagTask(Model):
    """One node of a Dag: a task and the ids it depends on."""

    task: Task
    """The task."""
    depends_on: list[str] = Field(default_factory=list)
    """Ids of the Dag tasks that must succeed first."""


class Dag(FlowableTask, type=P + "Dag"):
    """Run tasks as a directed acyclic graph of dependencies."""

    tasks: list[DagTask] = Field(min_length=1)
    """Nodes of the graph."""
    concurrent: int = Field(default=0, ge=0)
    """Most tasks running at once; 0 for no limit."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run on failure."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end."""

    @model_validator(mode="after")
    def _acyclic(self) -> Dag:
        ids = [n.task.id for n in self.tasks]
        known = set(ids)
        for n in self.tasks:
            for dep in n.depends_on:
                if dep not in known:
                    raise ValueError(
                        f"task '{n.task.id}' depends on unknown task '{dep}' (known: {', '.join(ids)})"
                    )
        graph = {n.task.id: list(n.depends_on) for n in self.tasks}
        state: dict[str, int] = {}

        def visit(node: str, trail: list[str]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                cycle = trail[trail.index(node) :] + [node]
                raise ValueError(f"the Dag has a cycle: {' -> '.join(cycle)}")
            state[node] = 1
            for dep in graph[node]:
                visit(dep, [*trail, node])
            state[node] = 2

        for node in graph:
            visit(node, [])
        return self

    def step(self, view: FlowView) -> tuple[str, list[Any]]:
        from roost.engine.executor import Child, effective

        runs = view.runs(None)
        main = {r.task_id: r for r in runs if r.slot == "tasks"}
        states = {tid: effective(r, view.task(r)) for tid, r in main.items() if r.state.terminal()}
        running = sum(1 for r in main.values() if not r.state.terminal())
        failed = any(s in FAILURES for s in states.values())
        create: list[Any] = []
        if not failed:
            room = (self.concurrent or len(self.tasks)) - running
            for i, node in enumerate(self.tasks):
                if room <= 0:
                    break
                if node.task.id in main or node.task.disabled:
                    continue
                if all(states.get(d) in (SUCCESS, WARNING) for d in node.depends_on):
                    create.append(Child(node.task, "tasks", i))
                    room -= 1
        if create:
            return RUNNING, create
        if running:
            return RUNNING, []
        pending = [n for n in self.tasks if n.task.id not in main and not n.task.disabled]
        main_state = worst(list(states.values())) if not pending or failed else FAILED
        return view.conclude(main_state, self.errors, self.finally_)


class WorkingDirectory(FlowableTask, type=P + "WorkingDirectory", aliases=(OLD + "WorkingDirectory",)):
    """Run tasks one after the other in one shared working folder."""

    tasks: list[Task] = Field(min_length=1)
    """Runnable tasks sharing the folder."""
    input_files: Dynamic[dict[str, str]] | None = None
    """Files written into the folder first: name to content or ``kestra://`` URI."""
    output_files: Dynamic[list[str]] = Field(default_factory=list)
    """Glob patterns of files kept (as outputs) when the tasks end."""
    namespace_files: dict[str, Any] | None = None
    """Copy the namespace's files into the folder (``enabled``, ``include``, ``exclude``)."""
    cache: dict[str, Any] | None = None
    """Accepted for compatibility."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run on failure."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end."""

    @model_validator(mode="after")
    def _runnable_children(self) -> WorkingDirectory:
        for t in self.tasks:
            if isinstance(t, FlowableTask):
                raise ValueError(
                    f"task '{t.id}' ({t.type}) is not runnable: a WorkingDirectory holds only runnable tasks"
                )
        return self

    def on_start(self, view: FlowView) -> None:
        runtime = view.executor.runtime
        root = Path(runtime.work_root or "/tmp/roost-work")
        folder = root / f"wd-{view.run.id}"  # type: ignore[union-attr]
        folder.mkdir(parents=True, exist_ok=True)
        view.run.extra["workdir"] = str(folder)  # type: ignore[union-attr]
        files = view.render(self.input_files) if self.input_files else {}
        for name, content in (files or {}).items():
            target = (folder / name).resolve()
            if folder.resolve() not in target.parents:
                raise ValueError(f"input file {name!r} would be written outside the working folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str) and content.startswith("kestra://"):
                download(runtime.storage, content, target)
            else:
                target.write_text(content if isinstance(content, str) else json.dumps(content))
        if self.namespace_files and self.namespace_files.get("enabled", True):
            for path in runtime.namespace_files.list(view.ex.namespace):
                data = runtime.namespace_files.read(view.ex.namespace, path)
                if data is not None:
                    target = folder / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)

    def on_done(self, view: FlowView) -> None:
        folder = Path(view.run.extra.get("workdir", ""))  # type: ignore[union-attr]
        if not folder.is_dir():
            return
        found: dict[str, str] = {}
        storage = view.executor.runtime.storage
        patterns = view.render(self.output_files)
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            for path in sorted(folder.glob(pattern)):
                if path.is_file():
                    rel = str(path.relative_to(folder))
                    key = f"{view.ex.namespace.replace('.', '/')}/{view.ex.flow_id}/executions/{view.ex.id}/tasks/{self.id}/{view.run.id}/{rel}"  # type: ignore[union-attr]
                    found[rel] = storage.put(key, path)
        if found:
            view.outputs["outputFiles"] = found
        shutil.rmtree(folder, ignore_errors=True)


class SubflowCall(Model):
    """What Subflow and ForEachItem share: which flow they start, and how."""

    namespace: Dynamic[str]
    """Namespace of the flow to start."""
    flow_id: Dynamic[str]
    """Id of the flow to start."""
    inputs: dict[str, Any] | None = None
    """Inputs of the new execution (expressions allowed)."""
    labels: dict[str, str] | list[dict[str, str]] | None = None
    """Labels of the new execution."""
    wait: bool = True
    """Wait for the subflow to end; its outputs become this task's."""
    transmit_failed: bool = True
    """A failed subflow fails this task (with ``wait``)."""
    inherit_labels: Dynamic[bool] = False
    """Copy this execution's labels to the new one."""
    revision: Dynamic[int] | None = Field(default=None)
    """Revision of the flow to start; the latest by default."""

    def check_in_flow(self, flow: Any) -> list[tuple[tuple[str, ...], str]]:
        if (
            self.namespace == flow.namespace and self.flow_id == flow.id
        ):  # expressions are checked when they run
            what = type(self).__name__
            return [(("flowId",), f"a {what} cannot start its own flow ({flow.namespace}.{flow.id})")]
        return []


class Subflow(Task, SubflowCall, type=P + "Subflow", aliases=(OLD + "Subflow", P + "Flow", OLD + "Flow")):
    """Start an execution of another flow, and by default wait for it."""

    executor_kind: ClassVar[str] = "subflow"
    schedule_date: Dynamic[str] | None = None
    """Start the subflow later."""
    outputs: dict[str, Any] | None = Field(default=None, json_schema_extra={"deprecated": True})
    """Deprecated since Kestra 0.15: declare ``outputs`` on the subflow instead."""
    restart_behavior: Literal["RETRY_FAILED", "NEW_EXECUTION"] = "RETRY_FAILED"
    """What a restart of this execution does to a failed subflow execution."""

    def label_list(self) -> list[dict[str, str]]:
        if self.labels is None:
            return []
        if isinstance(self.labels, dict):
            return [{"key": k, "value": str(v)} for k, v in self.labels.items()]
        return list(self.labels)


PauseBehavior = Literal["RESUME", "WARN", "FAIL", "CANCEL"]


class Pause(FlowableTask, type=P + "Pause", aliases=(OLD + "Pause",)):
    """Pause the execution until it is resumed, or until ``pauseDuration`` has passed.

    Without ``pauseDuration``, a ``timeout`` fails the task when it passes. The deprecated ``tasks`` run once
    the pause ends (resumed, or after ``pauseDuration`` with RESUME or WARN), then ``errors`` and ``finally``.
    """

    executor_kind: ClassVar[str] = "pause"
    pause_duration: Dynamic[timedelta] | None = None
    """Resume (or act per ``behavior``) after this long; wait for a manual resume without it."""
    delay: Dynamic[timedelta] | None = Field(
        default=None, json_schema_extra={"deprecated": True, "replacedBy": "pauseDuration"}
    )
    """Deprecated name of ``pauseDuration``."""
    behavior: Dynamic[PauseBehavior] = "RESUME"
    """What happens when ``pauseDuration`` ends."""
    on_resume: list[Input] = Field(default_factory=list)
    """Inputs asked for when resuming; available as ``outputs.<id>.onResume``."""
    tasks: list[Task] = Field(default_factory=list, json_schema_extra={"deprecated": True})
    """Deprecated: tasks run after the pause."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run when one of ``tasks`` fails."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end."""

    def step(self, view: FlowView) -> tuple[str, list[Any]]:
        state, children = view.sequence(self.tasks, self.errors, self.finally_)
        if state == SUCCESS and view.run.extra.get("pauseBehavior") == "WARN":  # type: ignore[union-attr]
            state = WARNING
        return state, children


PositiveInt = Annotated[int, Field(ge=1)]


class Batch(Model):
    """How ForEachItem cuts its file (each property may be an expression, as Kestra's ``Property``)."""

    rows: Dynamic[PositiveInt] | None = None
    """Lines per batch (1 when nothing is set)."""
    partitions: Dynamic[PositiveInt] | None = None
    """Cut into this many batches instead."""
    bytes: Dynamic[str] | None = None
    """Cut into batches of about this size (``10MB``, ``512KB``, ``1024``), at line ends."""
    separator: Dynamic[str] = "\n"
    """Line separator."""

    def rendered(self, view: FlowView) -> Batch:
        """This batch spec with its expressions rendered and typed (a bad value fails the task with its name)."""
        from pydantic import ValidationError

        raw = {
            name: view.render(getattr(self, name)) for name in ("rows", "partitions", "bytes", "separator")
        }
        try:
            return Batch.model_validate(
                {k: v for k, v in raw.items() if v is not None and not is_expression(v)}
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"batch.{err['loc'][0]}: {err['msg']}, got {err.get('input')!r}") from None


_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?B?)?\s*$", re.IGNORECASE)


def byte_size(text: str) -> int:
    """``10MB``, ``512KB``, ``1024``: a size in bytes (powers of 1024, as Kestra's ReadableBytesTypeConverter)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"batch.bytes: expected a size such as 10MB, got {text!r}")
    unit = (match.group(2) or "").upper().rstrip("B")
    return int(match.group(1)) * (1024 ** ("KMGT".index(unit) + 1) if unit else 1)


class ForEachItem(FlowableTask, SubflowCall, type=P + "ForEachItem"):
    """Split a file into batches and start a subflow execution for each (``{{ taskrun.items }}`` is its batch)."""

    items: Dynamic[str]
    """Internal-storage URI of the file (one item per line)."""
    batch: Batch = Field(default_factory=Batch)
    """Batch size: rows per batch, or a number of partitions."""
    restart_behavior: str = "ALL"
    """Accepted for compatibility."""
    subflow_task: Subflow | None = Field(default=None, exclude=True)
    """The subflow call made for each batch (built from the properties above)."""

    @model_validator(mode="after")
    def _subflow(self) -> ForEachItem:
        if self.subflow_task is None:
            self.subflow_task = Subflow.model_construct(
                id=f"{self.id}_items", type=Subflow.type_id, namespace=self.namespace, flow_id=self.flow_id,
                inputs=self.inputs, labels=self.labels, wait=self.wait, transmit_failed=self.transmit_failed,
                inherit_labels=self.inherit_labels, revision=self.revision, disabled=False, run_if=None, retry=None,
                allow_failure=False, allow_warning=False, timeout=None, description=None, schedule_date=None,
                outputs=None, log_level=None, log_to_file=False, assets=None, task_cache=None, worker_group=None,
            )  # fmt: skip
        return self

    def on_start(self, view: FlowView) -> None:
        runtime = view.executor.runtime
        uri = view.render(self.items)
        if not isinstance(uri, str) or not uri.startswith("kestra://"):
            raise ValueError(f"Unable to split the items from {uri}, this is not an internal storage URI!")
        batch = self.batch.rendered(view)
        separator = batch.separator.encode()
        size = batch.rows or 1
        limit = byte_size(batch.bytes) if batch.bytes and not batch.partitions else None
        if batch.partitions:  # a first pass counts the items: batches of equal size, as Kestra cuts them
            with runtime.storage.open_read(uri) as stream:
                count = sum(1 for item in _items(stream, separator) if item)
            size = max(1, -(-count // batch.partitions))
        prefix = f"{view.ex.namespace.replace('.', '/')}/{view.ex.flow_id}/executions/{view.ex.id}/tasks/{self.id}/{view.run.id}"  # type: ignore[union-attr]
        batches: list[str] = []
        chunk: Any = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - a batch spills to disk past 8 MiB; closed below
        held = used = 0

        def flush() -> None:
            nonlocal chunk, held, used
            chunk.seek(0)
            batches.append(runtime.storage.put(f"{prefix}/batch-{len(batches) + 1}.txt", chunk))
            chunk.close()
            chunk, held, used = tempfile.SpooledTemporaryFile(max_size=8 << 20), 0, 0  # noqa: SIM115

        try:
            with runtime.storage.open_read(uri) as stream:  # streamed: the file is never whole in memory
                for item in _items(stream, separator):
                    if not item:
                        continue
                    chunk.write(item + separator)
                    held += 1
                    used += len(item) + len(separator)
                    # whole items only: a `bytes` batch closes once it reaches the size
                    if (used >= limit) if limit is not None else held == size:
                        flush()
            if held:
                flush()
        finally:
            chunk.close()
        view.run.extra["batches"] = batches  # type: ignore[union-attr]

    def step(self, view: FlowView) -> tuple[str, list[Any]]:
        from roost.engine.executor import Child, effective

        batches: list[str] = view.run.extra.get("batches", [])  # type: ignore[union-attr]
        runs = [r for r in view.runs() if r.slot == "items"]
        if len(runs) < len(batches):
            assert self.subflow_task is not None
            return RUNNING, [Child(self.subflow_task, "items", i, str(i), str(i), i, uri)
                             for i, uri in enumerate(batches) if i >= len(runs)]  # fmt: skip
        if any(not r.state.terminal() for r in runs):
            return RUNNING, []
        states = [effective(r, view.task(r)) for r in runs]
        counts: dict[str, int] = {}
        for s in states:
            counts[s] = counts.get(s, 0) + 1
        view.outputs.update({"numberOfBatches": len(batches), "iterations": counts})
        return (worst(states) if states else SUCCESS), []


TASKS = (
    Sequential,
    Parallel,
    AllowFailure,
    If,
    Switch,
    ForEach,
    ForEachItem,
    Dag,
    WorkingDirectory,
    Subflow,
    Pause,
    EachSequential,
    EachParallel,
    LoopUntil,
)


def _items(stream: Any, separator: bytes, block: int = 1 << 20) -> Iterator[bytes]:
    """The items of a binary stream cut at ``separator``, read a block at a time."""
    rest = b""
    while True:
        data = stream.read(block)
        if not data:
            break
        parts = (rest + data).split(separator)
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest
