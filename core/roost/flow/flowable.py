"""The flowable contract: what a :class:`~roost.flow.task.FlowableTask` sees when the executor asks for its next
step, and the helpers to answer. Published on ``roost`` so a plugin can write flowable tasks; the executor's
view (``roost.engine.executor.FlowView``) implements :class:`FlowView`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from roost.engine.model import (
    CANCELLED,
    FAILED,
    FAILURES,
    KILLED,
    RUNNING,
    SKIPPED,
    SUCCESS,
    TERMINAL,
    WARNING,
    TaskRun,
)
from roost.flow.properties import stringify
from roost.flow.task import Task


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


def allowed(state: str, task: Task | None) -> str:
    """A run's final state once ``allowFailure`` (FAILED → WARNING) then ``allowWarning`` (WARNING → SUCCESS)
    apply, as Kestra sets it on the task run itself: a failed task with both ends SUCCESS."""
    if task is not None:
        if state == FAILED and task.allow_failure:
            state = WARNING
        if state == WARNING and task.allow_warning:
            state = SUCCESS
    return state


def effective(tr: TaskRun, task: Task | None) -> str:
    """A finished run's state as its parent sees it (allowFailure, allowWarning; SKIPPED counts as SUCCESS)."""
    state = allowed(tr.state.current, task)
    return SUCCESS if state == SKIPPED else state


def value_key(value: Any) -> str:
    """A ForEach value as Kestra keys it: strings as is, anything else as compact JSON."""
    return stringify(value)


class FlowView(Protocol):
    """What a flowable task sees of the execution when asked for its next step (``step(view)``).

    ``run`` is the flowable's own task run (``id``, ``state``, ``outputs``, and ``extra``: a JSON dict kept
    with the run, where a flowable remembers its choices across steps); ``ex`` the execution (``id``,
    ``namespace``, ``flow_id``). ``runtime`` gives the services (``storage``, ``namespace_files``,
    ``work_root``).
    """

    run: TaskRun | None
    ex: Any

    @property
    def runtime(self) -> Any: ...

    @property
    def memo(self) -> dict[str, Any]:
        """Scratch state of this flowable run, kept in memory only (rebuildable from the record)."""
        ...

    @property
    def outputs(self) -> dict[str, Any]:
        """This run's outputs (a dict the flowable may update)."""
        ...

    def render(self, value: Any) -> Any:
        """Render an expression (or a structure of them) with the execution's variables."""
        ...

    def task(self, tr: TaskRun) -> Task | None:
        """The task a child run runs."""
        ...

    def runs(self, group: Any = ...) -> list[TaskRun]:
        """The child runs of this flowable (of one group: a ForEach value)."""
        ...

    def changed_groups(self) -> set[Any]:
        """Groups of this run's children whose state changed since the last call."""
        ...

    def wake_at(self, at: float) -> None:
        """Ask for another step at ``at`` (epoch seconds), e.g. a loop's next iteration."""
        ...

    def log(self, level: str, message: str) -> None:
        """Write one line to the execution's logs, on this flowable's task run."""
        ...

    def record_outputs(self, run: TaskRun) -> None:
        """Make ``run``'s outputs visible to the tasks that read ``outputs.<id>`` from now on."""
        ...

    def list_step(self, tasks: list[Task], slot: str, concurrency: int = 1, value: str | None = None,
                  group: str | None = None, iteration: int | None = None) -> tuple[str, list[Child]]:  # fmt: skip
        """Progress of one list of tasks: (RUNNING or the final state, children to create)."""
        ...

    def sequence(self, tasks: list[Task], errors: list[Task] | None = None, finally_: list[Task] | None = None,
                 concurrency: int = 1, value: str | None = None, group: Any = None, iteration: int | None = None,
                 slot: str = "tasks") -> tuple[str, list[Child]]:  # fmt: skip
        """Kestra's sequence: ``tasks``; on failure ``errors``; then ``finally``. Returns (state, children)."""
        ...

    def conclude(self, main: str, errors: list[Task] | None, finally_: list[Task] | None, value: str | None = None,
                 group: Any = None, iteration: int | None = None) -> tuple[str, list[Child]]:  # fmt: skip
        """Once the main tasks ended in ``main``: ``errors`` if it failed, then ``finally``; the final state."""
        ...


__all__ = [
    "CANCELLED",
    "FAILED",
    "FAILURES",
    "KILLED",
    "RUNNING",
    "SKIPPED",
    "SUCCESS",
    "TERMINAL",
    "WARNING",
    "Child",
    "FlowView",
    "allowed",
    "effective",
    "value_key",
    "worst",
]
