"""Worker processes: task runs dispatched through the store instead of the executor's thread pool.

The executor's side is :class:`RemoteTaskQueue` (a :class:`roost.engine.queue.TaskQueue`): the jobs of
a batch are written to ``worker_jobs`` once the batch is persisted; a kill reaches the worker holding
the job; workers that stop heartbeating have their jobs resubmitted. The worker's side is
:class:`WorkerProcess`: it claims jobs (``FOR UPDATE SKIP LOCKED``), woken by NOTIFY, runs them with
the same :class:`roost.engine.worker.Worker` code as the in-process pool, and reports each result in
the transaction that deletes its job — only while the job still carries the worker's claim, so a
late result of a job taken back from this worker is dropped (fencing).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from roost.engine.executor import Job, index_of
from roost.engine.model import FAILED, KILLED, TERMINAL
from roost.engine.queue import Message, Queue
from roost.engine.worker import _never_started
from roost.store.cluster import process_id

log = logging.getLogger("roost.worker")

HEARTBEAT_INTERVAL = 2.0  # seconds between a worker's heartbeats
HEARTBEAT_TIMEOUT = 15.0  # a worker silent this long is dead: its jobs go to other workers


def encode_job(job: Job, masks: dict[str, Any] | None) -> dict[str, Any]:
    """A job as a ``worker_jobs`` row: the task is named (flow revision and task id), not serialised."""
    revision = (job.variables.get("flow") or {}).get("revision")
    payload = {"tenant": job.tenant, "namespace": job.namespace, "flowId": job.flow_id, "revision": revision,
               "taskId": job.task.id, "attempt": job.attempt, "variables": job.variables, "workdir": job.workdir,
               "masks": masks}  # fmt: skip
    return {
        "taskrun_id": job.taskrun_id,
        "execution_id": job.execution_id,
        "worker_group": _worker_group(job.task),
        "pin": job.workdir,
        "payload": json.dumps(payload, default=str, separators=(",", ":")),
    }


def _worker_group(task: Any) -> str | None:
    """The task's ``workerGroup.key``: only workers of that group take it (None: workers of no group)."""
    group = getattr(task, "worker_group", None)
    key = group.get("key") if isinstance(group, dict) else None
    return key if isinstance(key, str) and key else None


class RemoteTaskQueue:
    """The executor's end of the worker-job queue: jobs are written in the transaction of the executor
    batch that dispatched them (``transactional``), so they exist if and only if that state does."""

    transactional = True

    def __init__(self, engine: Any, heartbeat_timeout: float = HEARTBEAT_TIMEOUT) -> None:
        from roost.store.cluster import WorkQueue

        self.engine = engine
        self.jobs = WorkQueue(engine.store)
        self.heartbeat_timeout = heartbeat_timeout
        self._pending: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch_workers, name="roost-worker-watch", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        masks = self.engine.masks(job.tenant, job.execution_id)
        self._pending.append(encode_job(job, masks.state()))

    def write(self, conn: Any, execution_ids: set[str]) -> None:
        self.jobs.enqueue_in(conn, [j for j in self._pending if j["execution_id"] in execution_ids])

    def written(self) -> None:
        self._pending = []

    def kill(self, taskrun_id: str, execution_id: str = "") -> None:
        """A job no worker took is deleted and confirmed KILLED here; a claimed one is killed by its worker,
        which reports KILLED (a job that no longer exists — its result is on its way — is left alone)."""
        if self.jobs.kill(taskrun_id) and execution_id:
            self.engine.report(execution_id, taskrun_id, KILLED, None, _never_started(KILLED))

    def unqueue(self, taskrun_id: str, execution_id: str, state: str) -> None:
        """A job no worker took never starts and is answered ``state``; a claimed one goes on."""
        if self.jobs.unqueue(taskrun_id):
            self.engine.report(execution_id, taskrun_id, state, None, _never_started(state))

    def shutdown(self) -> None:
        self._stop.set()

    def _watch_workers(self) -> None:
        """Resubmit the jobs of dead workers (every executor watches; the SQL makes it idempotent)."""
        while not self._stop.wait(max(0.5, self.heartbeat_timeout / 5)):
            try:
                for r in self.jobs.resubmit_dead(self.heartbeat_timeout):
                    log.warning("worker %s stopped heartbeating: task run %s of execution %s resubmitted "
                                "(submission %d)", r.worker_id, r.taskrun_id, r.execution_id, r.submissions)  # fmt: skip
                self.jobs.forget_pins(sorted(TERMINAL))
            except Exception as exc:
                log.warning("cannot check the workers' heartbeats: %s", exc)


class _Results(Queue):
    """The worker process's engine queue: results go back through :meth:`WorkQueue.complete` (fenced by
    the job's claim); anything else (an EventTrigger's start) to the executors' message table."""

    def __init__(self, process: WorkerProcess) -> None:
        from roost.store.cluster import MessageTable

        self.process = process
        self.messages = MessageTable(process.engine.store)

    def put(self, message: Message) -> None:
        if message.kind != "result":
            self.messages.put([(message.kind, message.execution_id, message.payload)])
            return
        self.process.report(message)

    def take(self, timeout: float, limit: int = 512) -> list[Message]:
        time.sleep(timeout)
        return []


class WorkerProcess:
    """``roost server worker``: runs task runs claimed from the store until :meth:`stop`."""

    def __init__(self, engine: Any, *, threads: int = 8, group: str | None = None,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL, poll_interval: float = 1.0) -> None:  # fmt: skip
        from roost.store.cluster import JOBS_CHANNEL, KILL_CHANNEL, Listener, WorkQueue

        self.engine = engine
        self.jobs = WorkQueue(engine.store)
        self.threads = max(1, threads)
        self.group = group
        self.heartbeat_interval = heartbeat_interval
        self.poll_interval = poll_interval if engine.store.engine.dialect.name == "postgresql" else 0.05
        self.worker_id = process_id()
        self.claims: dict[str, tuple[str, str]] = {}  # task run id → (claim, execution id)
        self._free = threading.Semaphore(self.threads)
        self._wake = threading.Event()
        self._backlog = True
        self._stop = threading.Event()
        self._lock = threading.Lock()
        engine.queue = _Results(self)
        self.listener = Listener(engine.store, [JOBS_CHANNEL, KILL_CHANNEL], self._notified)
        self.started = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Register, then claim and run jobs until :meth:`stop`; a clean stop gives unfinished jobs back."""
        self.jobs.register(self.worker_id, self.group, socket.gethostname(), os.getpid(), self.threads)
        self.listener.start()
        threads = [threading.Thread(target=self._heartbeats, name="roost-heartbeat", daemon=True),
                   threading.Thread(target=self._flush_logs, name="roost-worker-logs", daemon=True)]  # fmt: skip
        for t in threads:
            t.start()
        log.info("worker %s: %d threads, group %s", self.worker_id, self.threads, self.group or "(none)")
        self.started.set()
        try:
            self._claim_loop()
        finally:
            self.listener.stop()
            self._shutdown()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _shutdown(self, grace: float = 10.0) -> None:
        deadline = time.monotonic() + grace
        while self.claims and time.monotonic() < deadline:  # let running task runs finish
            time.sleep(0.05)
        try:
            for r in self.jobs.unregister(self.worker_id):
                log.warning("task run %s given back to the queue at stop", r.taskrun_id)
        except Exception as exc:
            log.warning("cannot unregister worker %s: %s (its jobs go back when its heartbeat expires)",
                        self.worker_id, exc)  # fmt: skip
        self.engine.worker.shutdown()
        self.engine._flush_logs()

    def _notified(self, channel: str, payload: str) -> None:
        from roost.store.cluster import KILL_CHANNEL

        if channel == KILL_CHANNEL:
            if payload in self.claims:
                self.engine.worker.kill(payload)
            return
        self._wake.set()

    # -- claiming ----------------------------------------------------------------------------------
    def _claim_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            free = 0
            while self._free.acquire(blocking=False):
                free += 1
            try:
                claimed = self.jobs.claim(self.worker_id, self.group, free) if free else []
            except Exception as exc:
                log.warning("cannot claim worker jobs: %s", exc)
                claimed = []
            for _ in range(free - len(claimed)):
                self._free.release()
            self._backlog = not free or len(claimed) == free  # there may be more waiting
            for job in claimed:
                self._start(job)
            if free and self._backlog:
                continue
            self._wake.wait(self.poll_interval)

    def _start(self, claimed: Any) -> None:
        with self._lock:
            self.claims[claimed.taskrun_id] = (claimed.claim, claimed.execution_id)
        try:
            job = self._decode(claimed)
        except Exception as exc:  # the flow revision or the task is gone: the run fails, named
            log.warning("cannot run task run %s: %s", claimed.taskrun_id, exc)
            self.report(Message("result", claimed.execution_id, {
                "taskrun_id": claimed.taskrun_id, "state": FAILED, "outputs": None,
                "attempt": {"state": FAILED}, "error": f"worker: {exc}"}))  # fmt: skip
            self._free.release()
            return
        self.engine.worker.pool.submit(self._run, job)

    def _run(self, job: Job) -> None:
        try:
            self.engine.worker._run_guarded(job)
        finally:
            self._free.release()
            if self._backlog:  # jobs were left waiting for a free thread: no NOTIFY will come for them
                self._wake.set()

    def _decode(self, claimed: Any) -> Job:
        p = claimed.payload
        engine = self.engine
        flow = engine.flow(p["tenant"], p["namespace"], p["flowId"], p.get("revision"))
        task = index_of(flow).task(p["taskId"])
        if p.get("masks"):  # the executor's mask set of the execution, same salt: digests stay comparable
            from roost.expr.masking import MaskSet

            secrets = engine.runtime(p["tenant"]).secrets
            engine._masks[claimed.execution_id] = MaskSet.restore(p["masks"], secrets.get)
        return Job(claimed.execution_id, claimed.taskrun_id, task, p["variables"], p["attempt"], p["namespace"],
                   p["flowId"], p["tenant"], p.get("workdir"))  # fmt: skip

    # -- results -----------------------------------------------------------------------------------
    def report(self, message: Message) -> None:
        """Write a result, unless the job was taken back from this worker (then it is dropped)."""
        taskrun_id = message.payload["taskrun_id"]
        with self._lock:
            claim, execution_id = self.claims.pop(taskrun_id, (None, message.execution_id))
        if claim is None:
            log.warning("result of task run %s dropped: this worker does not hold it", taskrun_id)
            return
        masks = self.engine._masks.get(execution_id)
        if masks is not None and masks.dirty:
            message.payload["masks"] = masks.state()
        if not any(c[1] == execution_id for c in self.claims.values()):
            self.engine._masks.pop(execution_id, None)
        self.engine._flush_logs()  # the run's lines are stored before its result
        done = self.engine._retrying(
            lambda: self.jobs.complete(
                taskrun_id, claim, (message.kind, message.execution_id, message.payload)
            ),
            f"the result of task run {taskrun_id}",
        )
        if not done:
            log.warning(
                "late result of task run %s ignored: the job was resubmitted to another worker", taskrun_id
            )

    # -- background --------------------------------------------------------------------------------
    def _heartbeats(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            try:
                alive, kills = self.jobs.heartbeat(self.worker_id)
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            for taskrun_id in kills & set(self.claims):
                self.engine.worker.kill(taskrun_id)
            if not alive:  # declared dead (silent too long): its jobs run elsewhere now; stop them here
                log.error("worker %s was declared dead; its task runs were resubmitted; registering again",
                          self.worker_id)  # fmt: skip
                with self._lock:
                    dropped = list(self.claims)
                    self.claims.clear()
                for taskrun_id in dropped:
                    self.engine.worker.kill(taskrun_id)
                self.worker_id = process_id()
                self.jobs.register(
                    self.worker_id, self.group, socket.gethostname(), os.getpid(), self.threads
                )

    def _flush_logs(self) -> None:
        while not self._stop.wait(0.2):
            self.engine._flush_logs()


__all__ = ["RemoteTaskQueue", "WorkerProcess", "encode_job"]
