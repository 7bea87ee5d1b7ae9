"""What the routes share: the engine and store, the configuration, end-of-execution waiters, metrics."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from roost.engine.model import TERMINAL
from roost.server.config import TENANT_ID, ServerConfig
from roost.server.errors import bad_request, not_found

TENANT = re.compile(TENANT_ID)
SECRET_MASK = "******"


class EndWatcher:
    """Resolves asyncio futures when executions end (the engine's ``on_execution_end`` callback)."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        self._lock = threading.Lock()

    def on_end(self, ex: Any) -> None:
        with self._lock:
            waiting = self._waiting.pop(ex.id, None)
        for loop, fut in waiting or ():
            loop.call_soon_threadsafe(_resolve, fut)

    def register(self, execution_id: str) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiting.setdefault(execution_id, []).append((loop, fut))
        return fut

    def discard(self, execution_id: str, fut: asyncio.Future[None]) -> None:
        with self._lock:
            items = self._waiting.get(execution_id)
            if items:
                items[:] = [(lp, f) for lp, f in items if f is not fut]
                if not items:
                    del self._waiting[execution_id]


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass
class Metrics:
    """Counters the executor process feeds (from execution ends); the store answers the rest at scrape time."""

    ended: dict[str, int] = field(default_factory=dict)
    task_buckets: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
    task_counts: dict[str, list[int]] = field(default_factory=dict)  # state → bucket counts (+inf last)
    task_sums: dict[str, float] = field(default_factory=dict)
    exec_sums: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_end(self, ex: Any) -> None:
        state = ex.state.current
        with self.lock:
            self.ended[state] = self.ended.get(state, 0) + 1
            end = ex.state.end
            if end is not None:
                self.exec_sums[state] = (
                    self.exec_sums.get(state, 0.0) + (end - ex.state.start).total_seconds()
                )
            for tr in ex.task_runs:
                tend = tr.state.end
                if tend is None:
                    continue
                seconds = (tend - tr.state.start).total_seconds()
                st = tr.state.current
                counts = self.task_counts.setdefault(st, [0] * (len(self.task_buckets) + 1))
                for i, bound in enumerate(self.task_buckets):
                    if seconds <= bound:
                        counts[i] += 1
                counts[-1] += 1
                self.task_sums[st] = self.task_sums.get(st, 0.0) + seconds


class ServerState:
    """Shared by every route through ``request.app.state.roost``."""

    def __init__(self, engine: Any, config: ServerConfig | None = None, *, executor_running: bool = True,
                 component: str = "local") -> None:  # fmt: skip
        self.engine = engine
        self.store = engine.store
        self.config = config or ServerConfig()
        self.executor_running = executor_running
        self.component = component
        from roost.server.audit import AuditRecorder

        self.audit = AuditRecorder(self.store)  # every change by a user or token (roost.server.audit)
        self.watcher = EndWatcher()
        self.metrics = Metrics()
        self.started = time.time()
        self._secret_inputs: dict[tuple[str, str, str, int], frozenset[str]] = {}
        self._latest: dict[tuple[str, str, str], tuple[int, float]] = {}
        if executor_running:
            engine.on_execution_end.append(self.watcher.on_end)
            engine.on_execution_end.append(self.metrics.on_end)

    # -- tenants -----------------------------------------------------------------------------------
    def tenant(self, tenant: str) -> str:
        if not TENANT.match(tenant):
            raise bad_request(f"invalid tenant id {tenant!r}: lower-case letters, digits, '-' and '_'")
        if tenant not in self.config.tenants:
            raise not_found(f"no tenant {tenant!r} on this server")
        return tenant

    # -- flows ---------------------------------------------------------------------------------------
    def latest_flow(self, tenant: str, namespace: str, flow_id: str) -> Any:
        """The flow's latest revision, parsed (engine cache). The latest revision number is remembered for
        half a second: deploys through this server forget it at once, other processes' within that delay."""
        from roost.engine.engine import FlowNotFound

        key = (tenant, namespace, flow_id)
        hit = self._latest.get(key)
        now_ = time.monotonic()
        if hit is None or hit[1] < now_:
            found = self.store.get_flow(tenant, namespace, flow_id)
            if found is None:
                raise FlowNotFound(f"flow {namespace}.{flow_id} not found")
            if len(self._latest) > 10000:
                self._latest.clear()
            hit = self._latest[key] = (found[0], now_ + 0.5)
        return self.engine.flow(tenant, namespace, flow_id, hit[0])

    def forget_flow(self, tenant: str, namespace: str, flow_id: str) -> None:
        self._latest.pop((tenant, namespace, flow_id), None)

    # -- executions ----------------------------------------------------------------------------------
    def execution_dict(self, tenant: str, execution_id: str) -> dict[str, Any]:
        """The stored execution, shaped as Kestra's ``Execution`` (SECRET inputs masked); 404 if absent."""
        loaded = self.store.load_execution(execution_id) if len(execution_id) <= 64 else None
        if loaded is None or (loaded[0].get("tenantId") or "main") != tenant:
            raise not_found(f"execution {execution_id} not found")
        header, runs = loaded
        return self.shape_execution(header, runs)

    def shape_execution(self, header: dict[str, Any], runs: list[dict[str, Any]] | None) -> dict[str, Any]:
        out = {k: v for k, v in header.items() if v is not None}
        out.pop("error", None)
        out.setdefault("deleted", False)
        if runs is not None:
            trs = []
            for tr in runs:
                clean = {k: v for k, v in tr.items() if v is not None and k != "_engine"}
                trs.append(clean)
            out["taskRunList"] = trs
        secret = self.secret_inputs(header)
        if secret and isinstance(out.get("inputs"), dict):
            out["inputs"] = {
                k: (SECRET_MASK if k in secret and v is not None else v) for k, v in out["inputs"].items()
            }
        return out

    def secret_inputs(self, header: dict[str, Any]) -> frozenset[str]:
        key = (
            header.get("tenantId") or "main",
            header["namespace"],
            header["flowId"],
            int(header.get("flowRevision") or 1),
        )
        cached = self._secret_inputs.get(key)
        if cached is None:
            try:
                flow = self.engine.flow(*key)
                cached = frozenset(i.id for i in flow.inputs if i.type == "SECRET")
            except Exception:
                cached = frozenset()
            self._secret_inputs[key] = cached
        return cached

    def execution_url(self, base: str, tenant: str, ex: dict[str, Any]) -> str:
        root = (self.config.url or base).rstrip("/")
        return f"{root}/ui/{tenant}/executions/{ex['namespace']}/{ex['flowId']}/{ex['id']}"

    async def wait_end(self, tenant: str, execution_id: str, timeout: float | None = None,
                       registered: asyncio.Future[None] | None = None) -> dict[str, Any]:  # fmt: skip
        """Wait for an execution to end; returns it (its current state when ``timeout`` runs out).

        ``registered``: a future from :meth:`EndWatcher.register` taken before the execution was created,
        which spares the first look at the store."""
        from starlette.concurrency import run_in_threadpool

        deadline = None if timeout is None else time.monotonic() + timeout
        fut = registered or (self.watcher.register(execution_id) if self.executor_running else None)
        if registered is not None:
            try:
                await asyncio.wait_for(
                    asyncio.shield(registered), 1.0 if timeout is None else min(1.0, timeout)
                )
            except TimeoutError:
                pass
        try:
            while True:
                ex = await run_in_threadpool(self.execution_dict, tenant, execution_id)
                if ex["state"]["current"] in TERMINAL:
                    return ex
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return ex
                step = 1.0 if fut is not None else 0.1
                if remaining is not None:
                    step = min(step, remaining)
                if fut is not None:
                    try:
                        await asyncio.wait_for(asyncio.shield(fut), step)
                    except TimeoutError:
                        pass
                    if fut.done():
                        fut = self.watcher.register(execution_id)
                else:
                    await asyncio.sleep(step)
        finally:
            if fut is not None:
                self.watcher.discard(execution_id, fut)
