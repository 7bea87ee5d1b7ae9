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
    def put(self, message: Message) -> None: ...

    def take(self, timeout: float, limit: int = 512) -> list[Message]: ...


class InProcessQueue:
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


class StoreQueue:
    """Messages between processes over the shared store (a ``queue_messages`` table).

    Producers (a webserver-only or scheduler-only process) insert rows. The one
    consuming process (the executor) takes rows in batches, deleting what it
    takes; the messages it sends itself (worker results, timers, subflow
    events) stay in memory, so the hot path never touches the table. A message
    lost to a crash is recovered like any other: the executor re-derives pending
    work from the stored executions when it starts.
    """

    def __init__(self, store: Any, *, consume: bool, poll_interval: float = 0.05) -> None:
        import sqlalchemy as sa

        self.store = store
        self.consume = consume
        self.poll_interval = poll_interval
        self.local = InProcessQueue()
        self._sa = sa
        self.table = _queue_table()
        self.table.create(store.engine, checkfirst=True)
        self._postgres = not str(store.url).startswith("sqlite")

    def put(self, message: Message) -> None:
        if self.consume:
            self.local.put(message)
            return
        import json
        import time

        with self.store.write_lock, self.store.engine.begin() as conn:
            conn.execute(self.table.insert().values(kind=message.kind, execution_id=message.execution_id,
                                                    payload=json.dumps(message.payload, default=str), created=time.time()))  # fmt: skip

    def take(self, timeout: float, limit: int = 512) -> list[Message]:
        import time

        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            out = self._take_rows(limit)
            remaining = deadline - time.monotonic()
            wait = 0.0 if out else max(0.0, min(self.poll_interval, remaining))
            out += self.local.take(wait, limit - len(out)) if len(out) < limit else []
            if out or remaining <= 0:
                return out

    def _take_rows(self, limit: int) -> list[Message]:
        import json

        sa, t = self._sa, self.table
        query = sa.select(t.c.seq, t.c.kind, t.c.execution_id, t.c.payload).order_by(t.c.seq).limit(limit)
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        with self.store.write_lock, self.store.engine.begin() as conn:
            rows = conn.execute(query).all()
            if rows:
                conn.execute(t.delete().where(t.c.seq.in_([r.seq for r in rows])))
        return [Message(r.kind, r.execution_id, json.loads(r.payload) if r.payload else {}) for r in rows]

    def depth(self) -> int:
        sa, t = self._sa, self.table
        with self.store.engine.connect() as conn:
            stored = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
        return stored + self.local.depth()


_QUEUE_TABLE: Any = None


def _queue_table() -> Any:
    global _QUEUE_TABLE
    if _QUEUE_TABLE is None:
        import sqlalchemy as sa

        _QUEUE_TABLE = sa.Table(
            "queue_messages", sa.MetaData(),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("execution_id", sa.String(64), nullable=False),
            sa.Column("payload", sa.Text),
            sa.Column("created", sa.Float, nullable=False),
        )  # fmt: skip
    return _QUEUE_TABLE
