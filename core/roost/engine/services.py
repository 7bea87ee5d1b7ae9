"""What built-in tasks and expression functions may ask of the engine beyond their own task run.

Kestra's core tasks reach repositories (logs, executions, triggers) through its application
context; here they reach this small, tenant-bound facade, set on the :class:`Runtime` by the
engine (``runtime.engine_services``). It is ``None`` for one-off runs (``run_task``).
"""

from __future__ import annotations

from typing import Any

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


class EngineServices:
    """The engine as seen from one tenant's task runs."""

    def __init__(self, engine: Any, tenant: str) -> None:
        self._engine = engine
        self.tenant = tenant

    # -- logs ------------------------------------------------------------------------------------------
    def logs(self, execution_id: str, *, min_level: str = "TRACE", task_id: str | None = None,
             namespace: str | None = None, flow_id: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Log lines of an execution at ``min_level`` or above, those not yet written included, in order."""
        stored = self._engine.store.get_logs(self.tenant, execution_id, min_level=min_level, task_id=task_id)
        with self._engine._log_lock:  # lines buffered in this batch are not in the store yet
            pending = [r for t, r in self._engine._log_buffer if t == self.tenant]
        wanted = set(LEVELS[LEVELS.index(min_level) :]) if min_level in LEVELS else set(LEVELS)
        pending = [r for r in pending if r.get("executionId") == execution_id and r.get("level") in wanted
                   and (task_id is None or r.get("taskId") == task_id)]  # fmt: skip
        out = []
        for record in [*stored, *pending]:
            if (namespace and record.get("namespace") != namespace) or (
                flow_id and record.get("flowId") != flow_id
            ):
                continue
            entry = {k: v for k, v in record.items() if k not in ("seq", "tenantId")}
            entry["tenantId"] = self.tenant
            out.append(entry)
        return out

    # -- executions -----------------------------------------------------------------------------------
    def execution(self, execution_id: str) -> Any:
        ex = self._engine.get_execution(execution_id)
        return ex if ex is not None and ex.tenant == self.tenant else None

    def resume(self, execution_id: str, inputs: dict[str, Any] | None = None) -> None:
        self._engine.resume(execution_id, inputs)

    # -- flows and triggers ---------------------------------------------------------------------------
    def flow(self, namespace: str, flow_id: str) -> Any:
        from roost.engine.engine import FlowNotFound
        from roost.flow.build import FlowInvalid

        try:
            return self._engine.flow(self.tenant, namespace, flow_id)
        except (FlowNotFound, FlowInvalid):
            return None

    def set_trigger_disabled(self, namespace: str, flow_id: str, trigger_id: str, disabled: bool) -> None:
        """Disable or enable a trigger the way the API's trigger routes do (its state row keeps its dates)."""
        store = self._engine.store
        state = store.get_trigger(self.tenant, namespace, flow_id, trigger_id) or {}
        data = {k: v for k, v in state.items() if k not in ("disabled", "nextDate")}
        store.put_trigger(
            self.tenant, namespace, flow_id, trigger_id, data, state.get("nextDate"), disabled=disabled
        )
