"""Deprecated state-store tasks (``io.kestra.plugin.core.state.*``), kept in the KV store as Kestra keeps them.

A state is a map stored under ``[<flow slug>_]states_tasks-states_<name>[_<hash of taskrun.value>]`` in
the flow's namespace; ``namespace: true`` shares it across the namespace, ``taskrunValue: false``
across the iterations of a ForEach.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from roost import Dynamic, Output, RunContext, Task, TaskError
from roost.engine.context import MISSING
from roost.expr.filters import slugify

S = "io.kestra.plugin.core.state."
OLD = "io.kestra.core.tasks.states."


class _State(Task):
    deprecated: ClassVar[str] = "use the KV store tasks (io.kestra.plugin.core.kv.*)"

    name: Dynamic[str] = "default"
    """Name of the state."""
    namespace: Dynamic[bool] = False
    """Share the state across the namespace instead of keeping it to this flow."""
    taskrun_value: Dynamic[bool] = True
    """Keep one state per ``taskrun.value`` (per ForEach iteration)."""

    def key(self, ctx: RunContext) -> str:
        prefix = "" if self.namespace else f"{slugify(ctx.flow_id)}_"
        value = (ctx.variables.get("taskrun") or {}).get("value") if self.taskrun_value else None
        suffix = f"_{hashlib.sha256(str(value).encode()).hexdigest()[:16]}" if value is not None else ""
        return f"{prefix}states_tasks-states_{self.name}{suffix}"

    def current(self, ctx: RunContext) -> Any:
        return ctx.runtime.kv.get(ctx.namespace, self.key(ctx))  # type: ignore[attr-defined]


class StateOutput(Output):
    count: int = 0
    """How many keys the state holds."""
    data: dict[str, Any] | None = None
    """The state (Get)."""
    key: str | None = None
    """The key the state is stored under (Set)."""


class Get(_State, type=S + "Get", aliases=(OLD + "Get",)):
    """Deprecated: read a state."""

    error_on_missing: Dynamic[bool] = False
    """Fail when the state does not exist."""

    def run(self, ctx: RunContext) -> StateOutput:
        data = self.current(ctx)
        if data is MISSING:
            if self.error_on_missing:
                raise TaskError(f"State {self.key(ctx)} not found")
            return StateOutput(count=0, data={})
        return StateOutput(count=len(data), data=data)


class Set(_State, type=S + "Set", aliases=(OLD + "Set",)):
    """Deprecated: merge ``data`` into a state."""

    data: Dynamic[dict[str, Any]] | None = None
    """Values merged into the state."""

    def run(self, ctx: RunContext) -> StateOutput:
        current = self.current(ctx)
        merged = {**({} if current is MISSING else current), **(self.data or {})}
        key = self.key(ctx)
        ctx.runtime.kv.put(ctx.namespace, key, merged)  # type: ignore[attr-defined]
        return StateOutput(count=len(merged), key=key)


class DeleteOutput(Output):
    deleted: bool
    """Whether a state was removed."""


class Delete(_State, type=S + "Delete", aliases=(OLD + "Delete",)):
    """Deprecated: delete a state."""

    error_on_missing: Dynamic[bool] = False
    """Fail when the state does not exist."""

    def run(self, ctx: RunContext) -> DeleteOutput:
        deleted = bool(ctx.runtime.kv.delete(ctx.namespace, self.key(ctx)))  # type: ignore[attr-defined]
        if not deleted and self.error_on_missing:
            raise TaskError(f"State {self.key(ctx)} not found")
        return DeleteOutput(deleted=deleted)


TASKS = (Get, Set, Delete)
