"""Executions and task runs, JSON-shaped as the ``Execution`` schema of Kestra's API.

Plain slotted classes rather than pydantic: the executor creates and updates
thousands of task runs a second, and these stay cheap to build and to copy.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from typing import Any

CREATED, QUEUED, RUNNING, PAUSED, RESTARTED, KILLING = (
    "CREATED",
    "QUEUED",
    "RUNNING",
    "PAUSED",
    "RESTARTED",
    "KILLING",
)
SUCCESS, WARNING, FAILED, KILLED, CANCELLED = "SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"
RETRYING, RETRIED, SKIPPED, RESUBMITTED = "RETRYING", "RETRIED", "SKIPPED", "RESUBMITTED"

STATES = (CREATED, QUEUED, RUNNING, PAUSED, RESTARTED, KILLING, SUCCESS, WARNING, FAILED, KILLED, CANCELLED,
          RETRYING, RETRIED, SKIPPED, RESUBMITTED)  # fmt: skip
TERMINAL = frozenset({SUCCESS, WARNING, FAILED, KILLED, CANCELLED, SKIPPED, RETRIED})
FAILURES = frozenset({FAILED, KILLED})

_ALPHABET = string.ascii_letters + string.digits


def new_id() -> str:
    """A 22-character base62 id (128 random bits), like Kestra's."""
    n = int.from_bytes(secrets.token_bytes(16), "big")
    out = []
    for _ in range(22):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(out)


def now() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class State:
    """A state with its history (``current``, ``histories``, ``startDate``, ``endDate``, ``duration``)."""

    __slots__ = ("current", "histories")

    def __init__(self, current: str = CREATED, histories: list[tuple[str, datetime]] | None = None) -> None:
        self.current = current
        self.histories = histories if histories is not None else [(current, now())]

    def set(self, state: str, at: datetime | None = None) -> None:
        if state != self.current:
            self.current = state
            self.histories.append((state, at or now()))

    @property
    def start(self) -> datetime:
        return self.histories[0][1]

    @property
    def end(self) -> datetime | None:
        return self.histories[-1][1] if self.current in TERMINAL else None

    def terminal(self) -> bool:
        return self.current in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        end = self.end
        out: dict[str, Any] = {
            "current": self.current,
            "histories": [{"state": s, "date": iso(d)} for s, d in self.histories],
            "startDate": iso(self.start),
        }
        if end is not None:
            out["endDate"] = iso(end)
            out["duration"] = _iso_duration((end - self.start).total_seconds())
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        hist = [(h["state"], parse_iso(h["date"]) or now()) for h in data.get("histories", [])]
        return cls(data.get("current", CREATED), hist or None)


def _iso_duration(seconds: float) -> str:
    return f"PT{seconds:.6f}".rstrip("0").rstrip(".") + "S"


class TaskRun:
    """One run of one task (per ForEach value), with its attempts and outputs."""

    __slots__ = ("id", "execution_id", "namespace", "flow_id", "task_id", "parent_id", "value", "iteration",
                 "state", "attempts", "outputs", "slot", "index", "group", "extra", "items", "assets")  # fmt: skip

    def __init__(
        self,
        execution_id: str,
        namespace: str,
        flow_id: str,
        task_id: str,
        parent_id: str | None = None,
        value: str | None = None,
        iteration: int | None = None,
        slot: str = "tasks",
        index: int = 0,
        group: str | None = None,
        id: str | None = None,
    ) -> None:
        self.id = id or new_id()
        self.execution_id = execution_id
        self.namespace = namespace
        self.flow_id = flow_id
        self.task_id = task_id
        self.parent_id = parent_id
        self.value = value
        self.iteration = iteration
        self.state = State()
        self.attempts: list[dict[str, Any]] = []
        self.outputs: dict[str, Any] | None = None
        self.slot = slot  # which list of the parent (tasks, errors, finally, then, else, a case...)
        self.index = index
        self.group = group  # the parent's iteration this run belongs to (ForEach value)
        self.extra: dict[str, Any] = {}  # engine bookkeeping: next attempt time, pause deadline...
        self.items: str | None = None
        self.assets: dict[str, list[dict[str, Any]]] | None = (
            None  # Kestra's TaskRun.assets: {inputs, outputs}
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "executionId": self.execution_id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "parentTaskRunId": self.parent_id,
            "value": self.value,
            "attempts": self.attempts,
            "outputs": self.outputs,
            "state": self.state.to_dict(),
            "iteration": self.iteration,
            "dynamic": False,
        }
        if self.items is not None:
            out["items"] = self.items
        if self.assets is not None:
            out["assets"] = self.assets
        if self.slot != "tasks" or self.index or self.group is not None or self.extra:
            out["_engine"] = {"slot": self.slot, "index": self.index, "group": self.group, **self.extra}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskRun:
        eng = dict(data.get("_engine") or {})
        tr = cls(
            data["executionId"], data["namespace"], data["flowId"], data["taskId"], data.get("parentTaskRunId"),
            data.get("value"), data.get("iteration"), eng.pop("slot", "tasks"), eng.pop("index", 0),
            eng.pop("group", None), id=data["id"],
        )  # fmt: skip
        tr.state = State.from_dict(data["state"])
        tr.attempts = data.get("attempts") or []
        tr.outputs = data.get("outputs")
        tr.items = data.get("items")
        tr.assets = data.get("assets")
        tr.extra = eng
        return tr


class Execution:
    """An execution of a flow: the source of truth the executor derives all work from."""

    __slots__ = ("id", "tenant", "namespace", "flow_id", "flow_revision", "state", "inputs", "outputs", "labels",
                 "variables", "trigger", "parent_id", "original_id", "task_runs", "by_id", "children", "metadata",
                 "schedule_date", "deleted", "kind", "outputs_tree", "error", "by_group", "by_slot", "scans", "dirty")  # fmt: skip

    def __init__(self, namespace: str, flow_id: str, flow_revision: int = 1, tenant: str = "main",
                 id: str | None = None) -> None:  # fmt: skip
        self.id = id or new_id()
        self.tenant = tenant
        self.namespace = namespace
        self.flow_id = flow_id
        self.flow_revision = flow_revision
        self.state = State()
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] | None = None
        self.labels: list[dict[str, str]] = []
        self.variables: dict[str, Any] = {}
        self.trigger: dict[str, Any] | None = None
        self.parent_id: str | None = None
        self.original_id: str | None = None
        self.task_runs: list[TaskRun] = []
        self.by_id: dict[str, TaskRun] = {}
        self.children: dict[str | None, list[TaskRun]] = {}
        self.by_group: dict[tuple[str | None, str | None], list[TaskRun]] = {}
        self.by_slot: dict[tuple[str | None, str | None, str], list[TaskRun]] = {}
        self.scans: dict[tuple[str | None, str | None, str], list[Any]] = {}  # executor's incremental scans
        self.dirty: dict[str | None, set[str | None]] = {}  # parent run → groups whose children changed
        self.metadata: dict[str, Any] = {"attemptNumber": 1, "originalCreatedDate": iso(now())}
        self.schedule_date: datetime | None = None
        self.deleted = False
        self.kind: str | None = None
        self.outputs_tree: dict[str, Any] = {}
        self.error: str | None = None

    # -- task runs -----------------------------------------------------------------------------------
    def add(self, tr: TaskRun) -> TaskRun:
        self.task_runs.append(tr)
        self.by_id[tr.id] = tr
        self.children.setdefault(tr.parent_id, []).append(tr)
        self.by_group.setdefault((tr.parent_id, tr.group), []).append(tr)
        self.by_slot.setdefault((tr.parent_id, tr.group, tr.slot), []).append(tr)
        self.touch(tr)
        return tr

    def touch(self, tr: TaskRun) -> None:
        """Note that ``tr`` changed, so its parent looks at its group again."""
        self.dirty.setdefault(tr.parent_id, set()).add(tr.group)

    def reindex(self, keep: list[TaskRun]) -> None:
        self.task_runs, self.by_id, self.children, self.by_group, self.by_slot, self.scans = (
            [],
            {},
            {},
            {},
            {},
            {},
        )
        self.dirty = {}
        for tr in keep:
            self.add(tr)

    def children_of(self, parent_id: str | None) -> list[TaskRun]:
        return self.children.get(parent_id, [])

    def find(self, task_id: str, value: str | None = None) -> TaskRun | None:
        for tr in reversed(self.task_runs):
            if tr.task_id == task_id and (value is None or tr.value == value):
                return tr
        return None

    def parents(self, tr: TaskRun) -> list[TaskRun]:
        """Ancestors of ``tr``, nearest first."""
        out = []
        pid = tr.parent_id
        while pid is not None:
            p = self.by_id[pid]
            out.append(p)
            pid = p.parent_id
        return out

    def record_outputs(self, tr: TaskRun) -> None:
        """Place a finished run's outputs in the ``outputs`` tree, nested by the ForEach values above it."""
        if tr.outputs is None:
            return
        keys = [p.group for p in reversed(self.parents(tr)) if p.group is not None]
        if tr.group is not None:
            keys.append(tr.group)
        if not keys:
            self.outputs_tree[tr.task_id] = tr.outputs
            return
        node = self.outputs_tree.setdefault(tr.task_id, {})
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = tr.outputs

    def rebuild_outputs(self) -> None:
        self.outputs_tree = {}
        for tr in self.task_runs:
            if tr.state.current in TERMINAL:
                self.record_outputs(tr)

    def label_map(self) -> dict[str, str]:
        return {lbl["key"]: lbl["value"] for lbl in self.labels}

    # -- JSON ------------------------------------------------------------------------------------
    def header_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenantId": self.tenant,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "flowRevision": self.flow_revision,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "labels": self.labels,
            "variables": self.variables or None,
            "state": self.state.to_dict(),
            "parentId": self.parent_id,
            "originalId": self.original_id or self.id,
            "trigger": self.trigger,
            "deleted": self.deleted,
            "metadata": self.metadata,
            "scheduleDate": iso(self.schedule_date),
            "kind": self.kind,
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        out = self.header_dict()
        out["taskRunList"] = [tr.to_dict() for tr in self.task_runs] or None
        for tr in out["taskRunList"] or ():
            tr.pop("_engine", None)
        return out

    @classmethod
    def from_dicts(cls, header: dict[str, Any], task_runs: list[dict[str, Any]]) -> Execution:
        ex = cls(header["namespace"], header["flowId"], header.get("flowRevision") or 1, header.get("tenantId") or "main",
                 id=header["id"])  # fmt: skip
        ex.state = State.from_dict(header["state"])
        ex.inputs = header.get("inputs") or {}
        ex.outputs = header.get("outputs")
        ex.labels = header.get("labels") or []
        ex.variables = header.get("variables") or {}
        ex.trigger = header.get("trigger")
        ex.parent_id = header.get("parentId")
        ex.original_id = header.get("originalId")
        ex.metadata = header.get("metadata") or ex.metadata
        ex.schedule_date = parse_iso(header.get("scheduleDate"))
        ex.deleted = bool(header.get("deleted"))
        ex.kind = header.get("kind")
        ex.error = header.get("error")
        for data in task_runs:
            ex.add(TaskRun.from_dict(data))
        ex.rebuild_outputs()
        return ex
