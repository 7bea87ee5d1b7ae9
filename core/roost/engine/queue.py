"""The queue between components, behind an interface a PostgreSQL implementation can fill.

Messages are small tuples naming an execution; the execution record in the
store stays the source of truth, so a lost wake-up is recovered by re-deriving
work from stored executions.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Message:
    kind: str  # start | result | kill | resume | restart | timer | subflow_ended | recover | wake
    execution_id: str
    payload: dict[str, Any] = field(default_factory=dict)


class Queue(Protocol):
    """Messages for the executor. What :meth:`take` returns stays owed until acknowledged: with the
    batch that applied it (:meth:`acknowledge_in`, then :meth:`acknowledged`), or alone
    (:meth:`acknowledge`) when the batch wrote nothing. A queue that loses its memory at a crash
    (in-process) has nothing to acknowledge: it inherits the methods below, which do nothing."""

    def put(self, message: Message) -> None: ...

    def take(self, timeout: float, limit: int = 512) -> list[Message]: ...

    def owed(self) -> bool:
        """Whether messages taken since the last acknowledgement are still stored."""
        return False

    def look(self) -> None:
        """Read the stored messages at the next take, before what is in memory (executions were just
        leased to this process: their stored results come before their recovery)."""
        return None

    def acknowledge_in(self, conn: Any) -> None:
        """Delete the stored messages taken in the open transaction ``conn``."""
        return None

    def release(self, execution_ids: set[str]) -> None:
        """Leave the messages taken of ``execution_ids`` stored: they are another executor's now."""
        return None

    def acknowledged(self) -> None:
        """The transaction given to :meth:`acknowledge_in` committed."""
        return None

    def acknowledge(self) -> None:
        """Delete the stored messages taken, in a statement of their own."""
        return None


class InProcessQueue(Queue):
    """Messages between threads of one process."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Message] = queue.SimpleQueue()

    def put(self, message: Message) -> None:
        self._q.put(message)

    def take(self, timeout: float, limit: int = 512) -> list[Message]:
        """Block up to ``timeout`` for a first message, then take what is already there."""
        try:
            first = self._q.get(timeout=timeout) if timeout > 0 else self._q.get_nowait()
        except queue.Empty:
            return []
        out = [first]
        while len(out) < limit:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
        return out

    def depth(self) -> int:
        """Messages waiting (for metrics)."""
        return self._q.qsize()


class TaskQueue(Protocol):
    """Where the executor sends the task runs it dispatches: the in-process thread pool
    (:class:`roost.engine.worker.Worker`) or worker processes over the store
    (:class:`roost.engine.remote.RemoteTaskQueue`).

    A queue that is not ``transactional`` is given each job once the executor's batch is written (a
    job never starts before the state that dispatched it is stored). A ``transactional`` one is given
    the batch's jobs before, and writes them in the batch's own transaction (:meth:`write`, then
    :meth:`written` once it committed): the jobs exist if and only if the state that dispatched them does.
    """

    transactional: bool

    def submit(self, job: Any) -> None: ...

    def write(self, conn: Any, execution_ids: set[str]) -> None:
        """(transactional) Write the submitted jobs of ``execution_ids`` in the open transaction ``conn``."""

    def written(self) -> None:
        """(transactional) The batch committed: forget its jobs."""

    def kill(self, taskrun_id: str, execution_id: str = "") -> None:
        """Stop a task run; one that never started is confirmed KILLED at once."""

    def unqueue(self, taskrun_id: str, execution_id: str, state: str) -> None:
        """A task run that has not started never will, and is answered ``state``; a running one goes on."""

    def shutdown(self) -> None: ...


class StoreQueue(Queue):
    """Messages between processes over the shared store (``roost.store.cluster.MessageTable``).

    Producers (a webserver-only, scheduler-only or worker process) insert rows. Consumers (executors)
    read rows in batches and delete them in the transaction that writes the batch's outcome (an
    executor that dies before it commits leaves them to the executor that takes its executions over:
    a worker's result is never lost between the two); the messages an executor sends itself stay in
    memory, so the hot path never touches the table. With ``leases`` several executors share the
    table: each takes only messages of executions it holds (or can lease now), and keeps in memory
    only the messages of executions it holds. A message lost to a crash is recovered like any other:
    the executor re-derives pending work from the stored executions.

    On PostgreSQL a LISTEN connection wakes the consumer when a row is written; the table is also
    read every ``fallback_interval`` seconds, in case a notification was missed. On SQLite the table
    is read every ``poll_interval`` seconds.
    """

    def __init__(self, store: Any, *, consume: bool, poll_interval: float = 0.05, leases: Any = None,
                 fallback_interval: float = 1.0) -> None:  # fmt: skip
        from roost.store.cluster import MESSAGES_CHANNEL, Listener, MessageTable

        self.store = store
        self.consume = consume
        self.local = InProcessQueue()
        self.messages = MessageTable(store)
        self.leases = leases
        self.listener = Listener(store, [MESSAGES_CHANNEL], self._notified)
        self.poll_interval = fallback_interval if self.listener.enabled else poll_interval
        self._dirty = True  # rows may be waiting
        self._unheld = True  # ... and some may be of executions this executor does not lease yet
        self._last_poll = 0.0
        self._taken: list[tuple[int, str]] = []  # (seq, execution id) of rows taken, not yet deleted
        if consume:
            self.listener.start()

    def _notified(self, _channel: str, payload: str) -> None:
        leases = self.leases
        if leases is not None and (not payload or not all(leases.holds(i) for i in payload.split(","))):
            self._unheld = True
        self._dirty = True
        self.local.put(Message("wake", ""))

    def put(self, message: Message) -> None:
        if self.consume and self._mine(message):
            self.local.put(message)
            return
        self.messages.put([(message.kind, message.execution_id, message.payload)])

    def writes_to_store(self, message: Message) -> bool:
        """Whether ``put`` would write ``message`` to the table (then :meth:`put_in` may write it in the
        caller's transaction instead)."""
        return not self.consume

    def put_in(self, conn: Any, message: Message) -> None:
        """Write ``message`` to the table in the open transaction ``conn``."""
        self.messages.put_in(conn, [(message.kind, message.execution_id, message.payload)])

    def _mine(self, message: Message) -> bool:
        leases = self.leases
        if leases is None or leases.holds(message.execution_id):
            return True
        # a new execution this process created: lease it at once rather than go through the table
        return message.kind == "start" and bool(leases.acquire([message.execution_id]))

    def take(self, timeout: float, limit: int = 512) -> list[Message]:
        import time

        deadline = time.monotonic() + max(timeout, 0.0)
        self._taken = []  # rows of a batch that failed are read again: their batch is retried
        while True:
            out: list[Message] = []
            now = time.monotonic()
            polling = now - self._last_poll >= self.poll_interval
            if self._dirty or polling:
                acquire = self._unheld or polling
                self._dirty = self._unheld = False
                if acquire:
                    self._last_poll = now
                rows, takeovers = self.messages.take(limit, self.leases, acquire=acquire)
                self._taken += [(r.seq, r.execution_id) for r in rows]
                self._dirty = self._dirty or len(rows) == limit  # more are waiting
                out = [Message(r.kind, r.execution_id, r.payload) for r in rows]
                # executions taken over from a dead executor: re-derive their pending work (after their
                # messages, so results already written are applied before jobs are dispatched again)
                out += [Message("recover", ex_id) for ex_id in takeovers]
            remaining = deadline - time.monotonic()
            wait = 0.0 if out else max(0.0, min(self.poll_interval, remaining))
            out += self.local.take(wait, limit - len(out)) if len(out) < limit else []
            if any(m.kind != "wake" for m in out) or remaining <= 0:
                return out

    def depth(self) -> int:
        return self.messages.depth() + self.local.depth()

    def owed(self) -> bool:
        return bool(self._taken)

    def look(self) -> None:
        self._dirty = True

    def acknowledge_in(self, conn: Any) -> None:
        self.messages.delete_in(conn, [seq for seq, _ in self._taken])

    def release(self, execution_ids: set[str]) -> None:
        self._taken = [(seq, ex_id) for seq, ex_id in self._taken if ex_id not in execution_ids]

    def acknowledged(self) -> None:
        self._taken = []

    def acknowledge(self) -> None:
        self.messages.delete([seq for seq, _ in self._taken])
        self._taken = []

    def close(self) -> None:
        self.listener.stop()
