"""What a polling or realtime trigger evaluates in (:class:`TriggerContext`), and the thread that drives a
realtime trigger's ``listen(ctx)`` (:class:`Listener`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from roost.engine.model import Execution

log = logging.getLogger("roost.scheduler")


# -- the context polling triggers evaluate in ---------------------------------------------------------------
class TriggerContext:
    """What ``PollingTrigger.evaluate(ctx)`` sees: the engine, the tenant, the flow, a logger and its state."""

    def __init__(
        self, engine: Any, tenant: str, flow: Any, trigger: Any, state: dict[str, Any] | None = None
    ) -> None:
        self.engine = engine
        self.state: dict[str, Any] = dict(state or {})
        """The trigger's own JSON state (a cursor...): what it holds after ``evaluate`` is saved with the
        executions it decided, atomically, and handed back at the next evaluation."""
        self.tenant = tenant
        self.flow = flow
        self.namespace = flow.namespace
        self.flow_id = flow.id
        self.trigger = trigger
        self.runtime = engine.runtime(tenant)
        self.logger = logging.getLogger(f"roost.trigger.{flow.namespace}.{flow.id}.{trigger.id}")
        self.variables: dict[str, Any] = {
            "flow": {
                "id": flow.id,
                "namespace": flow.namespace,
                "revision": flow.revision,
                "tenantId": tenant,
            },
            "vars": flow.variables or {},
        }

        self.stop_event = threading.Event()
        self._execution_id: str | None = None

    def render(self, value: Any, **extra: Any) -> Any:
        return render_value(self.engine, self.tenant, self.flow, value, {**self.variables, **extra})

    def stopped(self) -> bool:
        """True once the scheduler wants a realtime trigger to stop listening."""
        return self.stop_event.is_set()

    def _prefix(self) -> str:
        """The storage folder of the next execution this trigger starts (its id is reserved now)."""
        from roost.engine.model import new_id

        if self._execution_id is None:
            self._execution_id = new_id()
        ns = self.namespace.replace(".", "/")
        return f"{ns}/{self.flow_id}/executions/{self._execution_id}/trigger/{self.trigger.id}"

    def put_file(self, path: Any, name: str | None = None) -> str:
        """Store a file for the next execution this trigger starts (its ``trigger.*`` may name the URI)."""
        from pathlib import Path

        path = Path(path)
        return self.runtime.storage.put(f"{self._prefix()}/{name or path.name}", path)

    def take_execution_id(self) -> str | None:
        """The id reserved by :meth:`put_file` (the scheduler starts the execution with it), then forget it."""
        reserved, self._execution_id = self._execution_id, None
        return reserved

    def discard_files(self, execution_id: str | None) -> None:
        """Remove what :meth:`put_file` stored for an execution that was never started."""
        if execution_id is not None:
            ns = self.namespace.replace(".", "/")
            self.runtime.storage.delete_prefix(f"{ns}/{self.flow_id}/executions/{execution_id}/")


def render_value(engine: Any, tenant: str, flow: Any, value: Any, variables: dict[str, Any]) -> Any:
    """Render ``value`` (a string, or a structure of strings) with the flow's services."""
    from roost.engine.context import TaskRunContext

    if value is None:
        return None
    if isinstance(value, str) and "{{" not in value and "{%" not in value:
        return value
    rt = engine.runtime(tenant)
    scope = {"flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision, "tenantId": tenant},
             "vars": flow.variables or {}, **variables}  # fmt: skip
    ctx = TaskRunContext(rt, scope, namespace=flow.namespace, flow_id=flow.id)
    return ctx.render(value)


# -- realtime listeners -------------------------------------------------------------------------------------
class Listener:
    """One realtime trigger's listening thread: drives ``listen(ctx)``, restarts it after a failure."""

    def __init__(self, engine: Any, entry: Any, trig: Any, fire: Callable[..., Execution | None]) -> None:
        """``entry``: the scheduler's view of the flow (tenant, namespace, flow_id, flow); ``fire(entry, trig,
        ctx, variables, now)`` starts one execution of the yielded variables."""
        self.engine = engine
        self.fire = fire
        self.entry = entry
        self.trig = trig
        self.stop_event = threading.Event()
        name = f"roost-realtime-{entry.namespace}.{entry.flow_id}.{trig.id}"
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Listener:
        self.thread.start()
        return self

    def stop(self, timeout: float = 15) -> None:
        self.stop_event.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)
            if self.thread.is_alive():
                log.warning("realtime trigger %s of %s.%s did not stop within %ss", self.trig.id,
                            self.entry.namespace, self.entry.flow_id, timeout)  # fmt: skip

    def _run(self) -> None:
        backoff = 1.0
        entry, trig = self.entry, self.trig
        while not self.stop_event.is_set():
            ctx = TriggerContext(self.engine, entry.tenant, entry.flow, trig)
            ctx.stop_event = self.stop_event
            try:
                gen = trig.listen(ctx)
                try:
                    sent: Execution | None = None
                    while not self.stop_event.is_set():
                        variables = gen.send(sent)
                        sent = None
                        if variables is not None:
                            sent = self.fire(entry, trig, ctx, variables, time.time())
                            backoff = 1.0
                finally:
                    gen.close()
                return  # stopped, or listen() returned
            except StopIteration:
                return
            except Exception as exc:
                log.error("realtime trigger %s of %s.%s failed: %s; listening again in %.0fs", trig.id,
                          entry.namespace, entry.flow_id, exc, backoff)  # fmt: skip
                if self.stop_event.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)
