"""The engine: executor loop, worker pool, timers and persistence, in one process.

The executor loop takes messages in batches, applies them to executions held in
memory, persists every changed execution in one transaction, and only then
dispatches the resulting jobs: a task run whose result was persisted never runs
again, and a job in flight when the process dies is dispatched again on the
next start (at-least-once for that one).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import heapq
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from roost.assets.service import AssetService
from roost.engine.context import Runtime
from roost.engine.executor import Effects, Executor, StartSubflow, index_of
from roost.engine.inputs import resolve_inputs
from roost.engine.killswitch import CANCEL, IGNORE, KILL, LABEL, KillSwitchGuard, Switch, store_guard
from roost.engine.model import (
    CANCELLED,
    CREATED,
    FAILED,
    KILLED,
    KILLING,
    PAUSED,
    QUEUED,
    RETRYING,
    RUNNING,
    SUCCESS,
    TERMINAL,
    Execution,
    FlowNotFound,
    iso,
    now,
)
from roost.engine.queue import InProcessQueue, Message, Queue, TaskQueue
from roost.engine.services import EngineServices
from roost.engine.worker import Worker
from roost.expr.masking import MaskSet
from roost.flow.build import FlowInvalid, parse_flow
from roost.flow.model import Flow, PluginDefault
from roost.plugin_defaults import defaults_for
from roost.store.db import LeaseLost, SqlKV, SqlLogs, SqlNamespaceFiles, Store, store_unavailable

log = logging.getLogger("roost.engine")

ACTIVE = (CREATED, QUEUED, RUNNING, PAUSED, RETRYING, "KILLING", "RESTARTED")
MAX_BUFFERED_LOGS = 200_000  # log lines kept while the store cannot take them; the oldest go beyond
MAX_RETRY_DELAY = 5.0  # seconds between attempts to write to a store that refuses writes


class _Stopping(Exception):
    """The engine stopped while waiting for the store: the batch is left to recovery at the next start."""


class Engine:
    """Executor, worker and timers over one store."""

    def __init__(
        self,
        store: Store,
        data_dir: Path | str,
        *,
        plugins: Any = None,
        workers: int = 8,
        queue: Queue | None = None,
        defaults: Callable[[str, str], list[PluginDefault]] | None = None,
        ignore_executions: set[str] | None = None,
        ignore_flows: set[str] | None = None,
        credentials: Any = None,
        on_execution_end: Callable[[Execution], None] | None = None,
        leases: Any = None,
        storage: Any = None,
        secrets: Any = None,
        kill_switches: KillSwitchGuard | None = None,
        keep_ended: int = 2048,
    ) -> None:
        """``keep_ended``: how many just-ended executions ``wait()`` answers from memory rather than from
        the store (a server keeps none: its API waits read the store, and thousands of kept executions
        only lengthen every full garbage collection).
        ``leases`` (:class:`roost.store.cluster.Leases`): several executors share the store, each
        working only on the executions it leases. Task runs go to ``self.tasks``: the in-process
        pool ``self.worker`` unless a worker-process queue is set (``roost.engine.remote``)."""
        from roost.plugins import get_plugins

        self.store = store
        self.data_dir = Path(data_dir).resolve()
        self.plugins = plugins or get_plugins()
        self.queue = queue or InProcessQueue()
        # plugin defaults of a namespace: instance and namespace files (ROOST_PLUGIN_DEFAULTS) by default
        self.defaults = defaults or (lambda tenant, namespace: defaults_for(namespace))
        self.ignore_executions = set(ignore_executions or ())
        self.ignore_flows = set(ignore_flows or ())
        # secret backends: the `secret:` configuration, a backend, or None for ROOST_SECRETS (else `env`)
        from roost.secret_backends import SecretBackends

        self.secrets = SecretBackends.build(secrets, plugins=self.plugins)
        # the kill switches of the store, consulted on every message (roost.engine.killswitch)
        self.kill_switches = kill_switches if kill_switches is not None else store_guard(store)
        self._enforced: dict[str, Switch] = {}  # switch id → the version of it this executor acted on
        self._switch_generation = -1
        self._archiving: dict[str, float] = {}  # ended switch id → when to try archiving it again
        self._ignored_noted: OrderedDict[str, None] = OrderedDict()
        # credentials: configuration (mapping), a CredentialStore, or None for ROOST_CREDENTIALS
        self.credentials = _credentials(credentials, self.plugins, self.secrets)
        # internal storage per tenant: the `storage:` configuration, a tenant → Storage function, or None
        # for ROOST_STORAGE (else local files under data_dir/storage)
        self.storage_for = storage if callable(storage) else _storage(storage, self.data_dir, self.plugins)
        self.on_execution_end = [on_execution_end] if on_execution_end else []
        self._runtimes: dict[str, tuple[Runtime, Executor]] = {}
        self._cache: dict[str, Execution] = {}
        self._prefetched: dict[str, Execution] = {}  # read for the batch being handled (_prefetch)
        self._persisted: dict[str, _Persisted] = {}  # what the store already holds of each cached execution
        self._written: dict[str, str] = {}  # each cached execution's header as last written (save_executions)
        self._flows: dict[tuple[str, str, str, int], Flow] = {}
        self._waiters: dict[str, threading.Event] = {}
        self._recent: OrderedDict[str, Execution] = OrderedDict()  # executions that just ended, for wait()
        self._keep_ended = keep_ended
        self._timers: list[tuple[float, int, Message]] = []
        self._timer_seq = 0
        self._log_buffer: list[tuple[str, dict[str, Any]]] = []
        self._log_lock = threading.Lock()
        self._masks: dict[str, MaskSet] = {}  # execution id → its mask set (roost.expr.masking)
        self._masks_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self.worker = Worker(self, workers)
        self.tasks: TaskQueue = self.worker
        self.leases = leases
        self._next_lease_check = 0.0
        self.log_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.assets = AssetService(store)
        self.assets.listeners.append(self._on_asset_event)

    # -- runtimes (one per tenant) -------------------------------------------------------------------
    def runtime(self, tenant: str = "main") -> Runtime:
        return self._tenant(tenant)[0]

    def masks(self, tenant: str, execution_id: str, *, new: bool = False) -> MaskSet:
        """The mask set of an execution, shared by every task run and engine message of it; read back
        from the store for an execution this process has not seen (``new``: it has nothing stored)."""
        masks = self._masks.get(execution_id)
        if masks is not None:
            return masks
        state = None
        if not new:
            try:
                state = self.store.load_masks(execution_id)
            except Exception as exc:  # masking goes on with what this process learns from now on
                log.error("cannot read the masks of execution %s: %s", execution_id, exc)
        with self._masks_lock:
            masks = self._masks.get(execution_id)
            if masks is None:
                secrets = self.runtime(tenant).secrets
                masks = MaskSet.restore(state, secrets.get) if state else MaskSet()
                if len(self._masks) >= 10_000:
                    self._forget_masks()
                self._masks[execution_id] = masks
        return masks

    def _forget_masks(self) -> None:
        """Drop the older half of the mask sets that are saved and not of an execution in flight here
        (they are read back from the store if a late line needs one)."""
        for ex_id in list(self._masks)[: len(self._masks) // 2]:
            if ex_id not in self._cache and not self._masks[ex_id].dirty:
                del self._masks[ex_id]

    def _tenant(self, tenant: str) -> tuple[Runtime, Executor]:
        pair = self._runtimes.get(tenant)
        if pair is None:
            rt = Runtime(
                storage=self.storage_for(tenant),
                secrets=self.secrets.for_tenant(tenant),
                kv=SqlKV(self.store, tenant),
                namespace_files=SqlNamespaceFiles(self.store, tenant),
                credentials=self.credentials.for_tenant(tenant) if self.credentials is not None else {},
                log_sink=functools.partial(self._buffer_logs, tenant),
                masks=functools.partial(self.masks, tenant),
                plugins=self.plugins,
                tenant=tenant,
                work_root=self.data_dir / "work",
                assets=self.assets,
                engine_services=EngineServices(self, tenant),
                logs=SqlLogs(self.store, tenant),
                flows=FlowStarter(self, tenant),
            )
            pair = self._runtimes[tenant] = (rt, Executor(rt))
        return pair

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, recover: bool = True) -> Engine:
        if self._thread is not None:
            return self
        if recover:
            # with leases, only the executions no live executor holds; every active one otherwise
            ids = self.leases.orphans(ACTIVE, grace=0) if self.leases else self.store.execution_ids(ACTIVE)
            for ex_id in ids:
                self.queue.put(Message("recover", ex_id))
        self._thread = threading.Thread(target=self._loop, name="roost-executor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self.queue.put(Message("wake", ""))
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.tasks is not self.worker:
            self.tasks.shutdown()
        close = getattr(self.queue, "close", None)
        if close is not None:
            close()
        self.worker.shutdown()
        self._flush_logs()
        self.secrets.close()
        if self.leases is not None:
            try:  # hand the executions over at once rather than after the lease timeout
                self.leases.expire_all()
            except Exception as exc:
                log.warning("cannot give the executions' leases back: %s", exc)

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- flows -------------------------------------------------------------------------------------------
    def deploy(self, source: str, tenant: str = "main") -> Flow:
        """Validate and store a flow; returns it with its revision."""
        flow = self.parse(source, tenant)
        revision = self.store.save_flow(
            tenant, flow.namespace, flow.id, source, flow.label_list(), flow.disabled
        )
        flow.revision = revision
        self._flows[(tenant, flow.namespace, flow.id, revision)] = flow
        return flow

    def parse(self, source: str, tenant: str = "main", namespace_hint: str | None = None) -> Flow:
        from roost.flow.yaml import load_documents

        ns = namespace_hint
        if ns is None:
            docs = load_documents(source)
            if (
                docs
                and not isinstance(docs[0], Exception)
                and isinstance(getattr(docs[0], "data", None), dict)
            ):
                ns = docs[0].data.get("namespace")  # type: ignore[union-attr]
        return parse_flow(
            source, self.plugins, self.defaults(tenant, ns or "") if isinstance(ns, str) else []
        )

    def flow(self, tenant: str, namespace: str, flow_id: str, revision: int | None = None) -> Flow:
        if revision is not None:
            cached = self._flows.get((tenant, namespace, flow_id, revision))
            if cached is not None:
                return cached
        found = self.store.get_flow(tenant, namespace, flow_id, revision, allow_deleted=revision is not None)
        if found is None:
            raise FlowNotFound(
                f"flow {namespace}.{flow_id} not found" + (f" (revision {revision})" if revision else "")
            )
        rev, source = found
        key = (tenant, namespace, flow_id, rev)
        flow = self._flows.get(key)
        if flow is None:
            flow = self.parse(source, tenant, namespace)
            flow.revision = rev
            self._flows[key] = flow
        return flow

    def forget_parsed_flows(self) -> None:
        """Parse stored flows again when next used: the plugin defaults they were merged with changed."""
        self._flows.clear()

    # -- executions --------------------------------------------------------------------------------------
    def create_execution(
        self,
        flow: Flow,
        inputs: dict[str, Any] | None = None,
        labels: list[dict[str, str]] | dict[str, str] | None = None,
        *,
        tenant: str = "main",
        trigger: dict[str, Any] | None = None,
        parent_id: str | None = None,
        schedule_date: Any = None,
        execution_id: str | None = None,
    ) -> Execution:
        """Type the inputs (raising :class:`InputsInvalid` before anything starts), store and queue an execution."""
        if flow.disabled:
            raise ValueError(f"flow {flow.namespace}.{flow.id} is disabled")
        ex = Execution(flow.namespace, flow.id, flow.revision or 1, tenant, id=execution_id)
        self.masks(tenant, ex.id, new=execution_id is None)  # before typing: a default may read a secret
        ex.inputs = self.typed_inputs(flow, ex, inputs)
        given = labels or []
        if isinstance(given, dict):
            given = [{"key": k, "value": str(v)} for k, v in given.items()]
        merged = {lbl["key"]: lbl["value"] for lbl in [*flow.label_list(), *given]}
        # every execution has one; subflows pass their parent's
        merged.setdefault("system.correlationId", ex.id)
        ex.labels = [{"key": k, "value": v} for k, v in merged.items()]
        ex.trigger = trigger
        ex.parent_id = parent_id
        ex.variables = {}
        if schedule_date is not None:
            ex.schedule_date = schedule_date
        return self.admit(ex, flow, only_new=execution_id is not None)

    def typed_inputs(self, flow: Flow, ex: Execution, inputs: dict[str, Any] | None) -> dict[str, Any]:
        """The execution's inputs typed by the flow (FILE inputs stored under the execution)."""
        rt = self.runtime(ex.tenant)
        from roost.engine.context import TaskRunContext
        from roost.engine.variables import task_variables

        ctx = TaskRunContext(rt, task_variables(rt, ex, flow, None), namespace=flow.namespace, flow_id=flow.id,
                             execution_id=ex.id)  # fmt: skip

        def store_file(input_id: str, value: Any) -> str:
            key = f"{flow.namespace.replace('.', '/')}/{flow.id}/executions/{ex.id}/inputs/{input_id}/"
            name = getattr(value, "name", input_id)
            return rt.storage.put(key + name, value)

        return resolve_inputs(flow, dict(inputs or {}), ctx, store_file)

    def admit(self, ex: Execution, flow: Flow, *, share: bool = True, only_new: bool = False) -> Execution:
        """Store a new execution and queue its start: a CREATED one under the flow's concurrency limit
        (QUEUED, CANCELLED or FAILED above it), a RESTARTED one (a replay from a task run) at once.

        ``share``: hand ``ex`` itself to the executor (it then changes under the caller's feet), rather
        than have the executor read it back from the store. ``only_new``: the id was given by the caller (a
        scheduled date, a deduplicated webhook): :class:`roost.store.db.ExecutionExists` if it is taken."""
        tenant = ex.tenant
        switch = (
            self.kill_switches.match(tenant, flow.namespace, flow.id, ex.id)
            if ex.state.current in (CREATED, "RESTARTED")
            else None
        )
        if switch is not None and switch.type in (
            KILL,
            CANCEL,
        ):  # stopped at birth: no job is ever dispatched
            self._mark_switched(ex, switch)
            ex.state.set(KILLED if switch.type == KILL else CANCELLED)
        elif ex.state.current == CREATED and flow.concurrency is not None:
            active = (CREATED, RUNNING, PAUSED, "KILLING", "RESTARTED")
            ids = self.store.execution_ids_of(tenant, flow.namespace, flow.id, active)
            for other in list(self._cache.values()):  # the executor's view is newer than the store's
                if other.tenant == tenant and other.namespace == flow.namespace and other.flow_id == flow.id:
                    (ids.add if other.state.current in active else ids.discard)(other.id)
            if len(ids) >= flow.concurrency.limit:
                behavior = flow.concurrency.behavior
                ex.state.set({"QUEUE": QUEUED, "CANCEL": CANCELLED, "FAIL": FAILED}[behavior])
        self._waiters[ex.id] = threading.Event()
        masks = self.masks(tenant, ex.id)
        version = masks.version
        start = Message("start", ex.id, {"tenant": tenant})
        # a queue in the store takes the start message in the execution's own transaction (one write,
        # and never an execution without its start message)
        to_store = getattr(self.queue, "writes_to_store", None)
        in_tx = ex.state.current in (CREATED, "RESTARTED") and to_store is not None and to_store(start)
        self.store.save_executions(
            [(ex.header_dict(), [(seq, tr.to_dict()) for seq, tr in enumerate(ex.task_runs)])],
            masks={ex.id: masks.state()} if masks.dirty else None,
            only_new=only_new,
            also=functools.partial(self.queue.put_in, message=start) if in_tx else None,  # type: ignore[attr-defined]
        )
        masks.saved = version
        if in_tx:
            pass  # already in the store's queue
        elif ex.state.current == CREATED and not ex.task_runs and share:
            self._persisted[ex.id] = _Persisted()
            self._cache[ex.id] = ex  # the executor takes it from here without reading it back
            self.queue.put(Message("start", ex.id, {"tenant": tenant}))
        elif ex.state.current in (CREATED, "RESTARTED"):
            self.queue.put(Message("start", ex.id, {"tenant": tenant}))  # read back from the store
        elif ex.state.terminal():
            self._waiters[ex.id].set()
            self._notify_end(ex)
        return ex

    def run(
        self, flow: Flow, inputs: dict[str, Any] | None = None, timeout: float | None = None, **kw: Any
    ) -> Execution:
        ex = self.create_execution(flow, inputs, **kw)
        return self.wait(ex.id, timeout)

    def wait(self, execution_id: str, timeout: float | None = None) -> Execution:
        event = self._waiters.get(execution_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ex = self._recent.get(execution_id) if event is None or event.is_set() else None
            ex = ex or self.get_execution(execution_id)
            if ex is not None and ex.state.terminal() and (event is None or event.is_set()):
                return ex
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"execution {execution_id} did not end within {timeout} s")
            if event is not None:
                event.wait(0.5 if remaining is None else min(0.5, remaining))
            else:
                time.sleep(0.05)

    def get_execution(self, execution_id: str) -> Execution | None:
        ex = self._cache.get(execution_id)
        if ex is not None:
            return ex
        loaded = self.store.load_execution(execution_id)
        if loaded is None:
            return None
        return Execution.from_dicts(*loaded)

    def kill(self, execution_id: str, cascade: bool = True) -> None:
        """Kill an execution; ``cascade=False`` leaves the subflow executions it started running."""
        self.queue.put(Message("kill", execution_id, {} if cascade else {"cascade": False}))

    def force_run(self, execution_id: str) -> None:
        """Run a CREATED or QUEUED execution now (ignoring the concurrency limit), resume a PAUSED one."""
        self.queue.put(Message("force_run", execution_id))

    def unqueue(self, execution_id: str, state: str = RUNNING) -> None:
        """Take a QUEUED execution out of the queue: start it (RUNNING), or end it CANCELLED or FAILED."""
        self.queue.put(Message("unqueue", execution_id, {"state": state}))

    def pause(self, execution_id: str) -> None:
        self.queue.put(Message("pause", execution_id))

    def resume(self, execution_id: str, inputs: dict[str, Any] | None = None) -> None:
        self.queue.put(Message("resume", execution_id, {"inputs": inputs or {}}))

    def restart(self, execution_id: str) -> None:
        self._waiters[execution_id] = threading.Event()
        self.queue.put(Message("restart", execution_id))

    def _buffer_logs(self, tenant: str, records: list[dict[str, Any]]) -> None:
        # whoever wrote the line (a task, the executor, the engine), its execution's secrets are masked
        for r in records:
            ex_id = r.get("executionId")
            if ex_id and isinstance(r.get("message"), str):
                r["message"] = self.masks(tenant, ex_id).mask(r["message"])
        with self._log_lock:
            self._log_buffer.extend((tenant, r) for r in records)
        for listener in self.log_listeners:
            for r in records:
                listener(r)

    def _flush_logs(self) -> None:
        """Write buffered log lines; lines the store refuses (busy, full) stay buffered for the next try."""
        with self._log_lock:
            buffered, self._log_buffer = self._log_buffer, []
        if not buffered:
            return
        by_tenant: dict[str, list[dict[str, Any]]] = {}
        for tenant, record in buffered:
            by_tenant.setdefault(tenant, []).append(record)
        for tenant, records in list(by_tenant.items()):
            try:
                self.store.add_logs(tenant, records)
            except Exception as exc:
                if not store_unavailable(exc):
                    log.exception("cannot write %d log lines; they are dropped", len(records))
                    del by_tenant[tenant]
                    continue
                unwritten = [(t, r) for t, recs in by_tenant.items() for r in recs]
                with self._log_lock:
                    self._log_buffer[:0] = unwritten
                    extra = len(self._log_buffer) - MAX_BUFFERED_LOGS
                    if extra > 0:
                        del self._log_buffer[:extra]
                log.warning("cannot write %d log lines now, kept for the next try%s: %s", len(unwritten),
                            f" ({extra} oldest dropped)" if extra > 0 else "", exc)  # fmt: skip
                return
            del by_tenant[tenant]

    def _retrying(self, write: Callable[[], Any], what: str) -> Any:
        """``write()`` until the store takes it: a store that is busy (locked by another process), full or
        read-only for a while delays the work, never drops it. Other errors are raised at once."""
        delay, failures = 0.05, 0
        while True:
            try:
                result = write()
            except Exception as exc:
                if not store_unavailable(exc):
                    raise
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.error(
                        "cannot write %s (attempt %d), retrying in %.2f s: %s", what, failures, delay, exc
                    )
                if self._stop.wait(delay):
                    raise _Stopping(what) from exc
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            if failures:
                log.warning("wrote %s after %d failed attempts", what, failures)
            return result

    # -- the executor loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._step()
                failures = 0
            except _Stopping:
                return
            except Exception:  # the loop must survive a bug in one message, or a store that fails to read
                failures += 1
                log.exception("executor loop failed")
                if failures >= 3 and self.queue.owed():  # the same batch failed thrice: drop its messages
                    log.error("dropping the stored messages of a batch that failed %d times", failures)
                    with contextlib.suppress(Exception):
                        self.queue.acknowledge()
                self._stop.wait(min(0.05 * 2**failures, MAX_RETRY_DELAY))

    def _step(self) -> None:
        if self.leases is not None and time.monotonic() >= self._next_lease_check:
            self._keep_leases()
        timeout = min(0.2, self.kill_switches.due())
        if self._timers:
            timeout = max(0.0, min(timeout, self._timers[0][0] - time.time()))
        messages = self.queue.take(timeout)
        while self._timers and self._timers[0][0] <= time.time():
            messages.append(heapq.heappop(self._timers)[2])
        messages += self._switch_step(force=any(m.kind == "switches" for m in messages))
        if not messages:
            self._flush_logs()
            return
        # A batch allocates many small, acyclic objects: the cyclic collector, run in the middle of
        # it, rescans every live task run again and again (superlinear on big ForEach). Defer it.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            self._prefetch(messages)
            self._handle(messages)
        finally:
            self._prefetched = {}
            if gc_was_on:
                gc.enable()
        if self.queue.owed():  # the batch wrote nothing: its stored messages are done with all the same
            self._retrying(self.queue.acknowledge, "the acknowledgement of applied messages")

    def _keep_leases(self) -> None:
        """Renew this executor's leases (forgetting executions it lost) and recover the executions whose
        executor died (their lease expired) or that no executor took."""
        leases = self.leases
        self._next_lease_check = time.monotonic() + leases.ttl / 3
        self._forget(leases.renew())
        orphans = leases.orphans(ACTIVE, grace=leases.ttl)
        for ex_id in orphans:
            log.info("execution %s had no live executor: recovering it", ex_id)
            self._forget([ex_id], quiet=True)  # what this process remembers of it may be stale
            self.queue.put(Message("recover", ex_id))
        if orphans:  # their stored messages (a result the dead executor took but never applied) go first
            self.queue.look()

    def _forget(self, execution_ids: Any, quiet: bool = False) -> None:
        """Drop executions from memory: another executor holds them now (or this one must re-read them)."""
        for ex_id in execution_ids:
            self._cache.pop(ex_id, None)
            self._persisted.pop(ex_id, None)
            self._written.pop(ex_id, None)
            if not quiet:
                log.warning("execution %s is now another executor's", ex_id)

    def _handle(self, messages: list[Message]) -> None:
        """Apply a batch of messages, run the inline tasks they lead to, persist once, then dispatch."""
        touched: dict[str, Execution] = {}
        effects: dict[str, Effects] = {}
        restarted: set[str] = set()
        pending = messages
        inline_budget = 10000  # inline tasks run per batch before the rest goes back to the queue
        while pending:
            results: list[Message] = []
            for msg in pending:
                accepted = self._accept(msg)
                if accepted is None:
                    continue
                ex, switch = accepted
                if msg.kind == "restart":
                    restarted.add(ex.id)
                try:
                    if switch is None:
                        eff = self._apply(ex, msg)
                    else:  # before the message (nothing new starts) and after it (a restart revived it)
                        eff = self._switch_effects(ex, switch)
                        eff.extend(self._apply(ex, msg))
                        eff.extend(self._switch_effects(ex, switch))
                except Exception as exc:
                    log.exception("message %s on execution %s failed", msg.kind, ex.id)
                    ex.error = f"{type(exc).__name__}: {exc}"
                    if not ex.state.terminal():
                        ex.state.set(FAILED)
                    eff = Effects(ended=True)
                touched[ex.id] = ex
                if eff.rewrite:  # task runs were dropped (a flowable retried): write them all again
                    restarted.add(ex.id)
                effects.setdefault(ex.id, Effects()).extend(eff)
                # pure, quick tasks (Return, Log...) run here rather than on a worker thread
                for job in [j for j in eff.jobs if getattr(j.task, "inline", False)]:
                    if inline_budget <= 0:
                        break
                    inline_budget -= 1
                    effects[ex.id].jobs.remove(job)
                    self.worker.run(job, report=lambda *a, _r=results: _r.append(_result_message(*a)))
            pending = results
        if not touched:
            return
        staged = self.tasks.transactional  # the jobs go in the batch's transaction (worker processes)
        if staged:
            for eff in effects.values():
                for job in eff.jobs:
                    self.tasks.submit(job)
        lost = self._persist(touched.values(), restarted, jobs=staged)
        self._flush_logs()
        for ex_id, eff in effects.items():
            if ex_id not in lost:
                self._carry_out(touched[ex_id], eff, submit=not staged)

    def _accept(self, msg: Message) -> tuple[Execution, Switch | None] | None:
        """The execution a message is for and the kill switch acting on it, unless the message is dropped:
        ignored executions and flows (``--ignore-*``) and an IGNORE switch's scope."""
        if msg.kind in ("wake", "switches") or msg.execution_id in self.ignore_executions:
            return None
        if self.leases is not None and not self.leases.holds(msg.execution_id):
            return None  # another executor's now: it re-derives the work from the record
        ex = self._load(msg.execution_id)
        if ex is None or self._flow_ignored(ex):
            return None
        switch = self.kill_switches.match(ex.tenant, ex.namespace, ex.flow_id, ex.id)
        if switch is not None and switch.type == IGNORE:
            if ex.id not in self._ignored_noted:  # said once per execution, not once per message
                self._ignored_noted[ex.id] = None
                if len(self._ignored_noted) > 10_000:
                    self._ignored_noted.popitem(last=False)
                log.warning("messages of execution %s are ignored (kill switch %s)", ex.id, switch.name)
            return None
        return ex, switch

    # -- kill switches -------------------------------------------------------------------------------------
    def refusal(self, job: Any) -> str | None:
        """Why the worker must not start a job now: KILLED or CANCELLED (a KILL or CANCEL switch), IGNORED
        (an IGNORE switch: nothing is reported, as the report would be dropped), or None."""
        switch = self.kill_switches.match(job.tenant, job.namespace, job.flow_id, job.execution_id)
        if switch is None:
            return None
        return {KILL: KILLED, CANCEL: CANCELLED}.get(switch.type, "IGNORED")

    def _switch_effects(self, ex: Execution, switch: Switch) -> Effects:
        """What a KILL or CANCEL switch does to an execution it covers (once; later calls change nothing)."""
        if ex.state.terminal() or ex.state.current == KILLING:
            return Effects()
        executor = self._tenant(ex.tenant)[1]
        if switch.type == KILL:
            self._mark_switched(ex, switch)
            return executor.kill(ex, None)
        if switch.type == CANCEL and not ex.metadata.get("cancelling"):
            self._mark_switched(ex, switch)
            return executor.cancel(ex)
        return Effects()

    def _mark_switched(self, ex: Execution, switch: Switch) -> None:
        """The system label naming the switch, and a line in the execution's logs saying why it stops."""
        if not any(lbl.get("key") == LABEL for lbl in ex.labels):
            ex.labels = [*ex.labels, {"key": LABEL, "value": switch.id}]
        verb = "killed" if switch.type == KILL else "cancelled"
        reason = f": {switch.description}" if switch.description else ""
        self._buffer_logs(ex.tenant, [{"namespace": ex.namespace, "flowId": ex.flow_id, "executionId": ex.id,
                                       "timestamp": iso(now()), "level": "WARN",
                                       "message": f"Execution {verb} by kill switch '{switch.name}' ({switch.scope}){reason}"}])  # fmt: skip

    def _switch_step(self, force: bool = False) -> list[Message]:
        """Act on switches that became active (or changed) since the last step: every active execution in
        their scope gets a message, which applies the switch (IGNORE needs none: messages are dropped);
        switches whose end passed are archived. ``force``: a process changed the switches (re-read now)."""
        guard = self.kill_switches
        guard.refresh(force=force)
        out: list[Message] = []
        if guard.generation != self._switch_generation:
            active = {sw.id: sw for sw in guard.index.switches}
            for sw_id in [i for i in self._enforced if i not in active]:
                del self._enforced[sw_id]  # inactive now: it acts again if it comes back
            for sw in active.values():
                if self._enforced.get(sw.id) == sw:
                    continue
                if sw.type != IGNORE:
                    out += [Message("switch", ex_id) for ex_id in sorted(self._in_scope(sw))]
                self._enforced[sw.id] = sw
            self._switch_generation = guard.generation
        if guard.current:
            self._archive_ended(guard)
        return out

    def _in_scope(self, switch: Switch) -> set[str]:
        ids = self.store.active_execution_ids(switch.tenant, ACTIVE, namespace=switch.namespace, flow_id=switch.flow_id,
                                              ids=switch.execution_ids or None)  # fmt: skip
        for ex in list(self._cache.values()):  # the executor's view is newer than the store's
            if not ex.state.terminal() and switch.covers(ex.tenant, ex.namespace, ex.flow_id, ex.id):
                ids.add(ex.id)
        return ids

    def _archive_ended(self, guard: KillSwitchGuard) -> None:
        from roost.store.audit import SYSTEM

        for sw in guard.ended():
            if sw.end is None or self._archiving.get(sw.id, 0.0) > time.monotonic():
                continue
            self._archiving[sw.id] = time.monotonic() + 30  # once archived, the reload forgets it
            try:
                if self.store.kill_switches.archive(sw.id, sw.end):
                    self.store.audit.append(type="UPDATE", resource_type="KILL_SWITCH", tenant=sw.tenant, user_id=SYSTEM,
                                            detail={"id": sw.id, "name": sw.name, "permission": "KILL_SWITCH", "archived": True},
                                            before={"status": "ACTIVE"}, after={"status": "ARCHIVED"})  # fmt: skip
                    log.warning("kill switch %s (%s) ended and is archived", sw.name, sw.id)
            except Exception as exc:  # tried again in 30 s
                log.warning("cannot archive kill switch %s: %s", sw.id, exc)

    def _flow_ignored(self, ex: Execution) -> bool:
        if not self.ignore_flows:
            return False
        return (f"{ex.tenant}|{ex.namespace}|{ex.flow_id}" in self.ignore_flows
                or f"{ex.namespace}|{ex.flow_id}" in self.ignore_flows)  # fmt: skip

    def _load(self, execution_id: str) -> Execution | None:
        ex = self._cache.get(execution_id) or self._prefetched.get(execution_id)
        if ex is None:
            ex = self._load_many([execution_id]).get(execution_id)
        return ex

    def _prefetch(self, messages: list[Message]) -> None:
        """Read the executions a batch's messages name and this process does not hold in memory, in one
        trip to the store (an API process's new executions, read back a batch at a time)."""
        leases = self.leases
        missing = {m.execution_id for m in messages if m.execution_id and m.execution_id not in self._cache
                   and (leases is None or leases.holds(m.execution_id))}  # fmt: skip
        if len(missing) > 1:
            self._prefetched = self._load_many(sorted(missing))

    def _load_many(self, execution_ids: list[str]) -> dict[str, Execution]:
        """Read executions from the store; those not ended (or awaited) are kept in memory from then on."""
        loaded = self.store.load_executions(
            execution_ids, masks=any(i not in self._masks for i in execution_ids)
        )
        out: dict[str, Execution] = {}
        for execution_id, (header, runs, mask_state) in loaded.items():
            ex = out[execution_id] = Execution.from_dicts(header, runs)
            if ex.state.terminal() and execution_id not in self._waiters:
                continue
            if execution_id not in self._masks:  # read with the execution: one trip to the store, not two
                with self._masks_lock:
                    secrets = self.runtime(ex.tenant).secrets
                    restored = MaskSet.restore(mask_state, secrets.get) if mask_state else MaskSet()
                    self._masks.setdefault(execution_id, restored)
            self._cache[ex.id] = ex
            state = self._persisted[ex.id] = _Persisted()
            state.count = len(ex.task_runs)
            for seq, tr in enumerate(ex.task_runs):
                if tr.state.current not in TERMINAL:
                    state.open[tr.id] = (seq, _signature(tr))
        return out

    def _apply(self, ex: Execution, msg: Message) -> Effects:
        executor = self._tenant(ex.tenant)[1]
        try:
            flow = self.flow(ex.tenant, ex.namespace, ex.flow_id, ex.flow_revision)
        except (FlowNotFound, FlowInvalid) as exc:
            if not ex.state.terminal():
                ex.error = str(exc)
                ex.state.set(FAILED)
            return Effects(ended=True)
        kind, p = msg.kind, msg.payload
        if kind == "start":
            return executor.start(ex, flow)
        if kind == "result":
            if p.get("masks"):  # secrets a worker process learnt: mask them in the executor's lines too
                self.masks(ex.tenant, ex.id).absorb(p["masks"], self.runtime(ex.tenant).secrets.get)
            return executor.on_result(
                ex, flow, p["taskrun_id"], p["state"], p.get("outputs"), p["attempt"], p.get("error")
            )
        if kind == "timer":
            return executor.on_timer(ex, flow, p["taskrun_id"], p["timer"])
        if kind == "kill":
            eff = executor.kill(ex, flow)
            if p.get("cascade") is False:
                eff.kill_executions = []
            return eff
        if kind == "force_run":
            return self._force_run(ex, flow, executor)
        if kind == "unqueue":
            return self._unqueue(ex, flow, executor, str(p.get("state") or RUNNING))
        if kind == "pause":
            return executor.pause(ex, flow)
        if kind == "resume":
            return executor.resume(ex, flow, p.get("inputs"))
        if kind == "restart":
            self._waiters.setdefault(ex.id, threading.Event())
            return executor.restart(ex, flow)
        if kind == "subflow_ended":
            return executor.subflow_ended(
                ex, flow, p["taskrun_id"], p["state"], p.get("outputs"), p["child_id"]
            )
        if kind == "recover":
            return self._recover(ex, flow, executor)
        if kind == "resubmitted":
            return executor.resubmitted(ex, flow, p["taskrun_id"], p.get("submission"), p.get("worker"))
        return Effects()

    @staticmethod
    def _force_run(ex: Execution, flow: Flow, executor: Executor) -> Effects:
        if ex.state.current in (CREATED, QUEUED):
            return executor.start(ex, flow)
        if ex.state.current == PAUSED:
            try:
                return executor.resume(ex, flow)
            except ValueError:  # nothing to resume after all
                return Effects()
        return executor.process(ex, flow)  # anything else: derive again what follows from the record

    @staticmethod
    def _unqueue(ex: Execution, flow: Flow, executor: Executor, state: str) -> Effects:
        if ex.state.current != QUEUED:
            return Effects()
        if state == RUNNING:
            return executor.start(ex, flow)
        ex.state.set(state)
        return Effects(ended=True)

    def _recover(self, ex: Execution, flow: Flow, executor: Executor) -> Effects:
        """Re-derive pending work after a restart of the process (the record is the truth)."""
        from roost.engine.executor import Timer

        self._waiters.setdefault(ex.id, threading.Event())
        if ex.state.current in (CREATED, "RESTARTED"):
            return executor.start(ex, flow)
        if ex.state.current == QUEUED:
            return Effects()
        eff = Effects()
        for tr in ex.task_runs:
            state = tr.state.current
            if state == RUNNING and tr.extra.get("job"):
                if ex.state.current == "KILLING":
                    tr.state.set(KILLED)
                    continue
                eff.jobs.append(
                    executor._job(ex, flow, tr, index_of(flow).task(tr.task_id))
                )  # in flight: run again
            elif state == RETRYING and "retryAt" in tr.extra:
                eff.timers.append(Timer(tr.extra["retryAt"], ex.id, tr.id, "retry"))
            elif state == PAUSED and "pauseUntil" in tr.extra:
                eff.timers.append(Timer(tr.extra["pauseUntil"], ex.id, tr.id, "pause"))
            elif state == RUNNING and "wakeAt" in tr.extra:  # a loop waiting for its next iteration
                eff.timers.append(Timer(tr.extra["wakeAt"], ex.id, tr.id, "wake"))
            elif state == RUNNING and tr.extra.get("subflowPending"):
                task = index_of(flow).task(tr.task_id)
                eff.subflows.append(executor.subflow_call(ex, flow, tr, task))
            elif state == RUNNING and tr.extra.get("subflow"):
                child = self.get_execution(tr.extra["subflow"])
                if child is not None and child.state.terminal():
                    self.queue.put(Message("subflow_ended", ex.id, {"taskrun_id": tr.id, "state": child.state.current,
                                                                     "outputs": child.outputs, "child_id": child.id}))  # fmt: skip
        eff.extend(executor.process(ex, flow))
        eff.timers += executor.sla_timers(
            ex, flow
        )  # MAX_DURATION SLAs keep counting from the execution's start
        return eff

    def _persist(self, touched: Any, full: set[str] | None = None, jobs: bool = False) -> set[str]:
        """Write each touched execution's header, the task runs that changed and its masks, in one
        transaction, retried until the store takes it (``_retrying``).

        Only new runs and runs that were unfinished at the last write are compared, so a long
        execution costs O(active runs) per write; ``full`` forces a complete rewrite (restart).
        """
        items = []
        keep_only: dict[str, set[str]] = {}
        masks: dict[str, tuple[MaskSet, int, dict[str, Any]]] = {}
        for ex in touched:
            state = self._persisted.get(ex.id)
            ex_masks = self._masks.get(ex.id)
            if ex_masks is not None and ex_masks.dirty:
                masks[ex.id] = (ex_masks, ex_masks.version, ex_masks.state())
            if state is None or (full and ex.id in full):
                if state is not None:
                    keep_only[ex.id] = {tr.id for tr in ex.task_runs}
                state = self._persisted[ex.id] = _Persisted()
                self._written.pop(ex.id, None)
            changed = []
            candidates = [*state.open.items()]
            candidates += [
                (tr.id, (seq, None)) for seq, tr in enumerate(ex.task_runs[state.count :], state.count)
            ]
            for tr_id, (seq, old_sig) in candidates:
                tr = ex.by_id.get(tr_id)
                if tr is None:
                    state.open.pop(tr_id, None)
                    continue
                sig = _signature(tr)
                if sig != old_sig:
                    changed.append((seq, tr.to_dict()))
                if tr.state.current in TERMINAL:
                    state.open.pop(tr_id, None)
                else:
                    state.open[tr_id] = (seq, sig)
            state.count = len(ex.task_runs)
            items.append((ex.header_dict(), changed))
        mask_states = {ex_id: m[2] for ex_id, m in masks.items()}
        lost: set[str] = set()
        while True:
            fence = None
            if self.leases is not None:
                ids = [header["id"] for header, _ in items]
                ended = [header["id"] for header, _ in items if header["state"]["current"] in TERMINAL]
                fence = self.leases.fence(ids, ended)
            try:
                also = self._also_written(items, jobs)
                write = functools.partial(self.store.save_executions, items, masks=mask_states,
                                          keep_only=keep_only, written=self._written,
                                          fence=fence, also=also)  # fmt: skip
                self._retrying(write, f"the state of {len(items)} executions")
                break
            except LeaseLost as exc:  # another executor took these over: it works from the record
                lost |= exc.execution_ids
                self.queue.release(exc.execution_ids)
                self.leases.forget(exc.execution_ids)
                self._forget(exc.execution_ids)
                items = [item for item in items if item[0]["id"] not in exc.execution_ids]
                for ex_id in exc.execution_ids:
                    mask_states.pop(ex_id, None)
                    masks.pop(ex_id, None)
                if not items:  # nothing written: _step deletes the other messages on their own
                    break
        if jobs:
            self.tasks.written()
        if items:
            self.queue.acknowledged()
        for ex_masks, version, _state in masks.values():
            ex_masks.saved = version
        return lost

    def _also_written(self, items: list[Any], jobs: bool) -> Callable[[Any], None] | None:
        """What goes in the batch's transaction beside the executions: the jobs they dispatched (worker
        processes) and the deletion of the stored messages the batch applied."""
        owed = self.queue.owed()
        if not (jobs or owed):
            return None
        execution_ids = {header["id"] for header, _ in items}

        def write(conn: Any) -> None:
            if jobs:
                self.tasks.write(conn, execution_ids=execution_ids)
            if owed:
                self.queue.acknowledge_in(conn)

        return write

    def _carry_out(self, ex: Execution, eff: Effects, submit: bool = True) -> None:
        for job in eff.jobs if submit else ():
            self.tasks.submit(job)
        for kill in eff.kills:
            self.tasks.kill(kill.taskrun_id, kill.execution_id)
        for waiting in eff.unqueue:
            self.tasks.unqueue(waiting.taskrun_id, waiting.execution_id, CANCELLED)
        for k in eff.kill_executions:
            self.kill(k.execution_id)
        for timer in eff.timers:
            self._timer_seq += 1
            heapq.heappush(self._timers, (timer.at, self._timer_seq,
                                          Message("timer", timer.execution_id, {"taskrun_id": timer.taskrun_id, "timer": timer.kind})))  # fmt: skip
        for sub in eff.subflows:
            self._start_subflow(ex, sub)
        if ex.state.terminal():
            self._ended(ex)

    def _start_subflow(self, ex: Execution, sub: StartSubflow) -> None:
        tr = ex.by_id[sub.taskrun_id]
        task = sub.task
        try:
            child_flow = self.flow(ex.tenant, sub.namespace, sub.flow_id, sub.revision)
            child = self._retrying(lambda: self.create_execution(
                child_flow, sub.inputs, sub.labels, tenant=ex.tenant, parent_id=ex.id,
                trigger={"id": tr.task_id, "type": task.type, "variables": {
                    "executionId": ex.id, "namespace": ex.namespace, "flowId": ex.flow_id,
                    "flowRevision": ex.flow_revision, "taskRunId": tr.id, "taskId": tr.task_id}},
            ), f"subflow execution of {ex.id}")  # fmt: skip
        except _Stopping:
            raise
        except Exception as exc:
            self.queue.put(Message("result", ex.id, {"taskrun_id": tr.id, "state": FAILED, "outputs": None,
                                                      "attempt": {"state": FAILED}, "error": f"subflow: {exc}"}))  # fmt: skip
            self._buffer_logs(
                ex.tenant,
                [
                    _log_record(
                        ex, tr, "ERROR", f"Unable to start subflow {sub.namespace}.{sub.flow_id}: {exc}"
                    )
                ],
            )
            return
        tr.extra["subflow"] = child.id
        tr.extra.pop("subflowPending", None)
        tr.outputs = {"executionId": child.id}
        self._persist([ex])
        if not sub.wait:
            self.queue.put(Message("result", ex.id, {"taskrun_id": tr.id, "state": SUCCESS,
                                                      "outputs": {"executionId": child.id}, "attempt": {"state": SUCCESS}}))  # fmt: skip
        elif child.state.terminal():
            self.queue.put(Message("subflow_ended", ex.id, {"taskrun_id": tr.id, "state": child.state.current,
                                                             "outputs": child.outputs, "child_id": child.id}))  # fmt: skip

    def _ended(self, ex: Execution) -> None:
        self._cache.pop(ex.id, None)
        self._persisted.pop(ex.id, None)
        self._written.pop(ex.id, None)
        masks = self._masks.get(ex.id)
        if masks is not None and not masks.dirty:  # late lines (a killed task still writing) read it back
            self._masks.pop(ex.id, None)
        if self._keep_ended > 0:
            self._recent[ex.id] = ex
            if len(self._recent) > self._keep_ended:
                self._recent.popitem(last=False)
        self._notify_end(ex)

    def _notify_end(self, ex: Execution) -> None:
        waiter = self._waiters.pop(ex.id, None)
        if waiter is not None:
            waiter.set()
        trig = ex.trigger or {}
        variables = trig.get("variables") or {}
        if ex.parent_id and variables.get("taskRunId"):
            self.queue.put(Message("subflow_ended", ex.parent_id, {"taskrun_id": variables["taskRunId"], "state": ex.state.current,
                                                                    "outputs": ex.outputs, "child_id": ex.id}))  # fmt: skip
        self._release_queued(ex)
        for callback in self.on_execution_end:
            try:
                callback(ex)
            except Exception:
                log.exception("execution-end listener failed")

    def _release_queued(self, ex: Execution) -> None:
        """Start the oldest QUEUED execution of the flow when one ends (concurrency QUEUE)."""
        if not any(state == RUNNING for state, _at in ex.state.histories):
            return  # it never held a slot (refused by the limit, or unqueued to an end state)
        try:
            if self.flow(ex.tenant, ex.namespace, ex.flow_id, ex.flow_revision).concurrency is None:
                return
        except (FlowNotFound, FlowInvalid):
            return
        queued, _ = self.store.search_executions(ex.tenant, namespace=ex.namespace, flow_id=ex.flow_id,
                                                 states=[QUEUED], prefix=False, size=1000)  # fmt: skip
        if not queued:
            return
        oldest = min(queued, key=lambda d: d["state"]["startDate"])
        self.queue.put(Message("start", oldest["id"]))

    # -- assets ------------------------------------------------------------------------------------------------
    def asset_sink(self, job: Any, ctx: Any, bundles: list[Any]) -> None:
        """Record what a task run emitted (declared or automatic assets)."""
        ex = self._cache.get(job.execution_id)
        self.assets.record(job.tenant, bundles, {
            "namespace": job.namespace, "flowId": job.flow_id, "flowRevision": ex.flow_revision if ex else None,
            "executionId": job.execution_id, "taskId": job.task.id, "taskRunId": job.taskrun_id,
        } | ({} if ex else {"flowRevision": (job.variables.get("flow") or {}).get("revision")}))  # fmt: skip

    def _on_asset_event(self, tenant: str, event: dict[str, Any]) -> None:
        """Start the executions of every EventTrigger that matches an asset lifecycle event."""
        for namespace, flow_id, revision, _source in self.store.list_flows(tenant):
            try:
                flow = self.flow(tenant, namespace, flow_id, revision)
            except (FlowNotFound, FlowInvalid):
                continue
            if flow.disabled:
                continue
            for trig in flow.triggers:
                matches = getattr(trig, "matches", None)
                if trig.disabled or matches is None or not matches(event):
                    continue
                state = self.store.get_trigger(tenant, namespace, flow_id, trig.id)
                if state is not None and state.get("disabled"):
                    continue
                try:
                    self.create_execution(
                        flow,
                        trig.inputs,
                        trig.labels,
                        tenant=tenant,
                        trigger={"id": trig.id, "type": trig.type, "variables": trig.variables(event)},  # type: ignore[attr-defined]
                    )  # type: ignore[attr-defined]
                except Exception:
                    log.exception(
                        "EventTrigger %s of %s.%s failed to start an execution", trig.id, namespace, flow_id
                    )

    # -- worker callbacks ------------------------------------------------------------------------------------
    def report(self, execution_id: str, taskrun_id: str, state: str, outputs: dict[str, Any] | None,
               attempt: dict[str, Any], error: str | None = None) -> None:  # fmt: skip
        self.queue.put(_result_message(execution_id, taskrun_id, state, outputs, attempt, error))


def _credentials(config: Any, plugins: Any, secrets: Any) -> Any:
    """The credential store, or None when nothing is configured (its module then stays unimported)."""
    import os

    if config is None and not os.environ.get("ROOST_CREDENTIALS"):
        return None
    from roost.credentials import CredentialStore

    return CredentialStore.build(config, plugins=plugins, secrets=secrets)


def _storage(config: Any, data_dir: Path, plugins: Any) -> Callable[[str], Any]:
    from roost.store.storage import storage_factory

    return storage_factory(config, data_dir, plugins=plugins)


def _result_message(execution_id: str, taskrun_id: str, state: str, outputs: dict[str, Any] | None,
                    attempt: dict[str, Any], error: str | None = None) -> Message:  # fmt: skip
    return Message("result", execution_id, {"taskrun_id": taskrun_id, "state": state, "outputs": outputs,
                                            "attempt": attempt, "error": error})  # fmt: skip


class _Persisted:
    """What the store holds of one execution: how many runs, and the unfinished ones' fingerprints."""

    __slots__ = ("count", "open")

    def __init__(self) -> None:
        self.count = 0
        self.open: dict[str, tuple[int, int | None]] = {}


def _signature(tr: Any) -> int:
    """Cheap fingerprint of what a task run persists; flowables keep scratch state in memory instead."""
    outputs = tr.outputs
    return hash(
        (
            len(tr.state.histories),
            len(tr.attempts),
            id(outputs),
            len(outputs) if outputs else 0,
            frozenset(tr.extra),
        )
    )


def _log_record(ex: Execution, tr: Any, level: str, message: str) -> dict[str, Any]:
    return {"namespace": ex.namespace, "flowId": ex.flow_id, "executionId": ex.id, "taskId": tr.task_id,
            "taskRunId": tr.id, "timestamp": iso(now()), "level": level, "message": message}  # fmt: skip


__all__ = ["ACTIVE", "Engine", "FlowNotFound", "TERMINAL"]


class FlowStarter:
    """Executions of other flows that a task starts itself (``RunContext.start_flow``: an AI agent's
    flow tool), as opposed to Subflow, which the executor starts. The child carries the parent's
    ``system.correlationId``; waiting blocks the task's worker thread (checking for a kill twice a
    second, which kills the child too), so the worker pool must leave room for the child's tasks."""

    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine = engine
        self.tenant = tenant

    def describe(self, namespace: str, flow_id: str, revision: int | None = None) -> dict[str, Any]:
        """What a caller needs to know to start a flow: its description and inputs."""
        from roost.flow.task import TaskError

        try:
            flow = self.engine.flow(self.tenant, namespace, flow_id, revision)
        except FlowNotFound:
            raise TaskError(f"flow {namespace}.{flow_id} not found") from None
        except FlowInvalid as exc:
            raise TaskError(f"flow {namespace}.{flow_id} does not validate: {exc}") from None
        inputs = [{"id": i.id, "type": i.type, "description": i.description, "required": i.required,
                   "hasDefault": i.defaults is not None} for i in flow.inputs]  # fmt: skip
        return {"namespace": flow.namespace, "id": flow.id, "revision": flow.revision,
                "description": flow.description, "inputs": inputs}  # fmt: skip

    def start(self, ctx: Any, namespace: str, flow_id: str, *, inputs: dict[str, Any], labels: list[dict[str, str]],
              revision: int | None, wait: bool, timeout: float | None, schedule_date: Any = None) -> dict[str, Any]:  # fmt: skip
        from roost.engine.inputs import InputsInvalid
        from roost.flow.task import TaskError

        name = f"{namespace}.{flow_id}" + (f" (revision {revision})" if revision else "")
        try:
            flow = self.engine.flow(self.tenant, namespace, flow_id, revision)
        except FlowNotFound:
            raise TaskError(f"flow {name} not found") from None
        except FlowInvalid as exc:
            raise TaskError(f"flow {name} does not validate: {exc}") from None
        correlation = (ctx.variables.get("labels") or {}).get("system.correlationId") or ctx.execution_id
        own = [lbl for lbl in labels if not str(lbl.get("key", "")).startswith("system.")]
        trigger = {"id": ctx.task_id, "type": "task", "variables": {
            "executionId": ctx.execution_id, "namespace": ctx.namespace, "flowId": ctx.flow_id, "taskId": ctx.task_id}}  # fmt: skip
        try:
            child = self.engine.create_execution(
                flow, inputs, [*own, {"key": "system.correlationId", "value": correlation}], tenant=self.tenant,
                trigger=trigger, parent_id=ctx.execution_id or None, schedule_date=schedule_date)  # fmt: skip
        except (InputsInvalid, ValueError) as exc:
            raise TaskError(f"flow {name} cannot start: {exc}") from None
        if not wait:
            return {"executionId": child.id, "state": child.state.current}
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                ended = self.engine.wait(child.id, 0.5)
                break
            except TimeoutError:
                pass
            if ctx.killed():
                self.engine.kill(child.id)
                ctx.raise_if_killed()
            if deadline is not None and time.monotonic() > deadline:
                raise TaskError(
                    f"flow {name} (execution {child.id}) did not end within {timeout:g} s; it goes on"
                )
        return {"executionId": ended.id, "state": ended.state.current, "outputs": ended.outputs or {}}
