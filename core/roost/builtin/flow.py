"""Flowable core tasks: they arrange children; the executor asks them what runs next."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from roost import Dynamic, FlowableTask, Model, Task
from roost.engine.executor import FlowView, value_key, worst
from roost.engine.model import FAILED, FAILURES, RUNNING, SUCCESS, WARNING
from roost.flow.model import Input
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
        value = view.render(self.condition)
        if isinstance(value, str):
            result = value.strip().lower() not in ("", "false", "0", "no", "null")
        else:
            result = bool(value)
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


class ForEach(FlowableTask, type=P + "ForEach"):
    """Run ``tasks`` once per value; outputs are nested by value (``outputs.task[value]``)."""

    values: Dynamic[list[Any]] | Dynamic[str]
    """The values: a list, or a JSON array (often an expression)."""
    tasks: list[Task] = Field(min_length=1)
    """Tasks run for each value."""
    concurrency_limit: int = Field(default=1, ge=0)
    """Values processed at once; 0 for no limit."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run on failure."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end."""

    def on_start(self, view: FlowView) -> None:
        raw = view.render(self.values)
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise ValueError(f"values must be a list or a JSON array, got {raw[:80]!r}") from None
        if not isinstance(raw, list):
            raise ValueError(f"values must be a list, got {type(raw).__name__}")
        view.run.extra["values"] = [value_key(v) for v in raw]  # type: ignore[union-attr]

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
        create: list[Any] = []
        for i in todo:
            state, children = view.sequence(self.tasks, value=values[i], group=values[i], iteration=i)
            create += children
            if state != RUNNING:
                active.discard(i)
                agg[state] = agg.get(state, 0) + 1
        limit = self.concurrency_limit or len(values) or 1
        nxt = memo["next"]
        while not any(s in FAILURES for s in agg) and nxt < len(values) and len(active) < limit:
            state, children = view.sequence(self.tasks, value=values[nxt], group=values[nxt], iteration=nxt)
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
    output_files: list[str] = Field(default_factory=list)
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
        for pattern in self.output_files:
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

    namespace: str
    """Namespace of the flow to start."""
    flow_id: str
    """Id of the flow to start."""
    inputs: dict[str, Any] | None = None
    """Inputs of the new execution (expressions allowed)."""
    labels: dict[str, str] | list[dict[str, str]] | None = None
    """Labels of the new execution."""
    wait: bool = True
    """Wait for the subflow to end; its outputs become this task's."""
    transmit_failed: bool = True
    """A failed subflow fails this task (with ``wait``)."""
    inherit_labels: bool = False
    """Copy this execution's labels to the new one."""
    revision: int | None = None
    """Revision of the flow to start; the latest by default."""

    def check_in_flow(self, flow: Any) -> list[tuple[tuple[str, ...], str]]:
        if self.namespace == flow.namespace and self.flow_id == flow.id:
            what = type(self).__name__
            return [(("flowId",), f"a {what} cannot start its own flow ({flow.namespace}.{flow.id})")]
        return []


class Subflow(Task, SubflowCall, type=P + "Subflow", aliases=(OLD + "Subflow", P + "Flow", OLD + "Flow")):
    """Start an execution of another flow, and by default wait for it."""

    executor_kind: ClassVar[str] = "subflow"
    schedule_date: str | None = None
    """Start the subflow later."""
    outputs: dict[str, Any] | None = None
    """Deprecated: values exposed from the subflow's outputs."""

    def label_list(self) -> list[dict[str, str]]:
        if self.labels is None:
            return []
        if isinstance(self.labels, dict):
            return [{"key": k, "value": str(v)} for k, v in self.labels.items()]
        return list(self.labels)


class Pause(Task, type=P + "Pause", aliases=(OLD + "Pause",)):
    """Pause the execution until it is resumed, or until ``pauseDuration`` has passed."""

    executor_kind: ClassVar[str] = "pause"
    pause_duration: Dynamic[timedelta] | None = None
    """Resume (or act per ``behavior``) after this long; wait for a manual resume without it."""
    delay: timedelta | None = None
    """Deprecated name of ``pauseDuration``."""
    behavior: Literal["RESUME", "WARN", "FAIL", "CANCEL"] = "RESUME"
    """What happens when ``pauseDuration`` ends."""
    on_resume: list[Input] = Field(default_factory=list)
    """Inputs asked for when resuming; available as ``outputs.<id>.onResume``."""

    @model_validator(mode="after")
    def _delay_alias(self) -> Pause:
        if self.pause_duration is None and self.delay is not None:
            self.pause_duration = self.delay
        return self


class Batch(Model):
    """How ForEachItem cuts its file."""

    rows: int | None = Field(default=None, ge=1)
    """Lines per batch (1 when nothing is set)."""
    partitions: int | None = Field(default=None, ge=1)
    """Cut into this many batches instead."""
    bytes: str | None = None
    """Accepted for compatibility; batches are cut by rows or partitions."""
    separator: str = "\n"
    """Line separator."""


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
        separator = self.batch.separator.encode()
        size = self.batch.rows or 1
        if self.batch.partitions:  # a first pass counts the items: batches of equal size, as Kestra cuts them
            with runtime.storage.open_read(uri) as stream:
                count = sum(1 for item in _items(stream, separator) if item)
            size = max(1, -(-count // self.batch.partitions))
        prefix = f"{view.ex.namespace.replace('.', '/')}/{view.ex.flow_id}/executions/{view.ex.id}/tasks/{self.id}/{view.run.id}"  # type: ignore[union-attr]
        batches: list[str] = []
        chunk: Any = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - a batch spills to disk past 8 MiB; closed below
        held = 0

        def flush() -> None:
            nonlocal chunk, held
            chunk.seek(0)
            batches.append(runtime.storage.put(f"{prefix}/batch-{len(batches) + 1}.txt", chunk))
            chunk.close()
            chunk, held = tempfile.SpooledTemporaryFile(max_size=8 << 20), 0  # noqa: SIM115

        try:
            with runtime.storage.open_read(uri) as stream:  # streamed: the file is never whole in memory
                for item in _items(stream, separator):
                    if not item:
                        continue
                    chunk.write(item + separator)
                    held += 1
                    if held == size:
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
