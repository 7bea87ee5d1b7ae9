"""The SQL that lets several processes share one store: messages, execution leases, worker jobs.

Everything here is plain SQLAlchemy Core over the store's tables. On PostgreSQL rows are taken with
``FOR UPDATE SKIP LOCKED`` (consumers never wait on each other), writes that others wait for send a
``NOTIFY`` in their transaction (delivered at commit), and time is the database's clock, so machines
with drifting clocks still agree on heartbeats and lease expiry. SQLite runs the same statements
(without ``SKIP LOCKED``; one writer at a time anyway) so a split topology on one machine works too.

- :class:`MessageTable` — ``queue_messages``: what a webserver, scheduler or worker asks of executors.
- :class:`Leases` — ``execution_leases``: which executor works on an execution, until when.
- :class:`WorkQueue` — ``worker_jobs``, ``worker_instances``, ``worker_pins``: task runs for workers.
- :class:`Listener` — a LISTEN connection that wakes a process when a NOTIFY arrives.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from roost.store.db import libpq_url
from roost.store.tables import (
    cluster_settings,
    dumps,
    execution_leases,
    executions,
    worker_instances,
    worker_jobs,
    worker_pins,
)

log = logging.getLogger("roost.cluster")

MESSAGES_CHANNEL = "roost_messages"  # a message for executors was written
JOBS_CHANNEL = "roost_jobs"  # a worker job is waiting
KILL_CHANNEL = "roost_kill"  # a running worker job must be killed (payload: task run id)

_QUEUE_TABLE: Any = None


def queue_table() -> sa.Table:
    """``queue_messages`` (kept in its own metadata: it predates the migrations and is created on use)."""
    global _QUEUE_TABLE
    if _QUEUE_TABLE is None:
        _QUEUE_TABLE = sa.Table(
            "queue_messages", sa.MetaData(),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("execution_id", sa.String(64), nullable=False),
            sa.Column("payload", sa.Text),
            sa.Column("created", sa.Float, nullable=False),
        )  # fmt: skip
    return _QUEUE_TABLE


class _Sql:
    """What every repository here shares: the store, its dialect, the database clock."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.postgres = store.engine.dialect.name == "postgresql"

    def now(self) -> Any:
        """The database's clock in epoch seconds (SQLite: this process's, the only machine it runs on)."""
        if self.postgres:
            return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)
        return sa.literal(time.time(), sa.Float)

    def notify(self, conn: Any, channel: str, payload: str = "") -> None:
        """NOTIFY in the open transaction: ``conn`` is an SQLAlchemy connection, or a psycopg cursor of
        :meth:`Store.pg_transaction` (what the methods ``*_in`` below are given on PostgreSQL; SQLite gives
        them an SQLAlchemy connection)."""
        if not self.postgres:
            return
        if isinstance(conn, sa.Connection):
            conn.execute(sa.text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})
        else:
            conn.execute(_NOTIFY, (channel, payload))

    def begin(self) -> Any:
        return self.store.transaction()


# The worker path's statements on PostgreSQL, run on Store.autocommit_cursor (SQLite runs the
# SQLAlchemy statements of the methods that use them).
# WorkQueue.complete: delete the job if it still carries the claim, write the result message only
# then, and wake the executors (NOTIFY names the execution).
_COMPLETE = (
    "WITH done AS (DELETE FROM worker_jobs WHERE taskrun_id = %(taskrun_id)s AND claim = %(claim)s RETURNING seq),"
    " sent AS (INSERT INTO queue_messages (kind, execution_id, payload, created)"
    " SELECT %(kind)s, %(execution_id)s, %(payload)s, %(created)s FROM done RETURNING execution_id)"
    " SELECT pg_notify(%(channel)s, execution_id) FROM sent"
)
# WorkQueue.claim: the oldest waiting jobs of a group, skipping those another worker is claiming and
# those pinned to another live worker.
_CLAIM = (
    "UPDATE worker_jobs SET worker_id = %(worker_id)s, claim = %(claim)s,"
    " claimed = extract(epoch FROM clock_timestamp())::float8"
    " WHERE seq IN (SELECT seq FROM worker_jobs j WHERE worker_id IS NULL AND kill IS false AND {group}"
    " AND (pin IS NULL OR NOT EXISTS (SELECT 1 FROM worker_pins p WHERE p.pin = j.pin AND p.worker_id <> %(worker_id)s))"
    " ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING taskrun_id, execution_id, submissions, payload, pin"
)
_CLAIM_NO_GROUP = _CLAIM.format(group="worker_group IS NULL")
_CLAIM_GROUP = _CLAIM.format(group="worker_group = %(group)s")
# MessageTable.take without leases to acquire: the messages of the executions this executor holds.
_TAKE_HELD = (
    "SELECT q.seq, q.kind, q.execution_id, q.payload FROM queue_messages q"
    " LEFT JOIN execution_leases l ON l.execution_id = q.execution_id"
    " WHERE l.owner = %(owner)s OR q.execution_id = '' ORDER BY q.seq LIMIT %(limit)s"
)
_TAKE_ALL = "SELECT seq, kind, execution_id, payload FROM queue_messages ORDER BY seq LIMIT %(limit)s"
_PUT = "INSERT INTO queue_messages (kind, execution_id, payload, created) VALUES (%(kind)s, %(execution_id)s, %(payload)s, %(created)s)"
_DELETE = "DELETE FROM queue_messages WHERE seq = ANY(%s)"
_NOTIFY = "SELECT pg_notify(%s, %s)"
# WorkQueue.enqueue_in: a task run that already has a job keeps it
_ENQUEUE = (
    "INSERT INTO worker_jobs (taskrun_id, execution_id, worker_group, pin, payload, created, submissions, kill)"
    " VALUES (%(taskrun_id)s, %(execution_id)s, %(worker_group)s, %(pin)s, %(payload)s, %(created)s, 1, false)"
    " ON CONFLICT (taskrun_id) DO NOTHING"
)
# Leases.fence: renew the batch's leases; if one is no longer ours, roost_fence fails the transaction
_FENCE = (
    "WITH renewed AS (UPDATE execution_leases SET expires = extract(epoch FROM clock_timestamp())::float8 + %(ttl)s"
    " WHERE owner = %(owner)s AND execution_id = ANY(%(ids)s) RETURNING 1)"
    " SELECT roost_fence((SELECT count(*) FROM renewed), %(expected)s)"
)
_RELEASE = "DELETE FROM execution_leases WHERE owner = %(owner)s AND execution_id = ANY(%(ids)s)"


@dataclass(slots=True)
class StoredMessage:
    kind: str
    execution_id: str
    payload: dict[str, Any]
    seq: int = 0


def _about(execution_ids: set[str]) -> str:
    """A NOTIFY payload naming the executions with new messages ("" for unknown: NOTIFY payloads are
    limited to 8,000 bytes), so an executor holding them all need not look for executions to lease."""
    text = ",".join(sorted(execution_ids))
    return text if len(text) < 4000 else ""


def _message_row(kind: str, execution_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "execution_id": execution_id, "created": time.time(),
            "payload": dumps(payload)}  # fmt: skip


class MessageTable(_Sql):
    """``queue_messages``: producers insert rows (and NOTIFY); executors take them in batches."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.table = queue_table()
        self.table.create(store.engine, checkfirst=True)

    def put(self, messages: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        if not messages:
            return
        with self.store.pg_transaction() if self.postgres else self.begin() as conn:
            self.put_in(conn, messages)

    def put_in(self, conn: Any, messages: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Insert messages (kind, execution id, payload) in the open transaction ``conn``."""
        rows = [_message_row(*m) for m in messages]
        if isinstance(conn, sa.Connection):  # SQLite
            conn.execute(self.table.insert(), rows)
        else:
            conn.executemany(_PUT, rows)
        self.notify(conn, MESSAGES_CHANNEL, _about({m[1] for m in messages}))

    def take(
        self, limit: int, leases: Leases | None = None, acquire: bool = True
    ) -> tuple[list[StoredMessage], list[str]]:
        """Read up to ``limit`` messages, oldest first, without deleting them: the caller deletes them
        (:meth:`delete_in`) in the transaction that writes what they led to, so a consumer that dies in
        between leaves them to the next. With ``leases``, only messages of executions this executor holds
        or (with ``acquire``) can lease now, and those naming no execution; the second list holds the
        executions whose lease it just took over from an executor that stopped renewing it (to recover)."""
        t = self.table
        takeovers: list[str] = []
        if self.postgres and (leases is None or not acquire):  # one statement: no transaction round trips
            with self.store.autocommit_cursor() as cur:
                if leases is None:
                    cur.execute(_TAKE_ALL, {"limit": limit})
                else:
                    cur.execute(_TAKE_HELD, {"owner": leases.owner, "limit": limit})
                rows = cur.fetchall()
            return self._messages(rows), []
        with self.begin() as conn:
            pick = sa.select(t.c.seq, t.c.kind, t.c.execution_id, t.c.payload).order_by(t.c.seq).limit(limit)
            if leases is not None:
                takeovers = leases.acquire_for_messages(conn, limit) if acquire else []
                lease = execution_leases
                pick = pick.outerjoin(lease, lease.c.execution_id == t.c.execution_id).where(
                    sa.or_(lease.c.owner == leases.owner, t.c.execution_id == "")
                )
            rows = conn.execute(pick).all()
        return self._messages(rows), takeovers

    @staticmethod
    def _messages(rows: Sequence[Any]) -> list[StoredMessage]:
        return [
            StoredMessage(r.kind, r.execution_id, json.loads(r.payload) if r.payload else {}, r.seq)
            for r in rows
        ]

    def delete_in(self, conn: Any, seqs: Sequence[int]) -> None:
        """Delete the messages ``seqs`` (applied) in the open transaction ``conn``."""
        if not seqs:
            return
        if isinstance(conn, sa.Connection):
            conn.execute(self.table.delete().where(self.table.c.seq.in_(seqs)))
        else:
            conn.execute(_DELETE, (list(seqs),))

    def delete(self, seqs: Sequence[int]) -> None:
        if seqs:
            with self.store.autocommit_cursor() if self.postgres else self.begin() as conn:
                self.delete_in(conn, seqs)

    def depth(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar() or 0)


class Leases(_Sql):
    """``execution_leases``: an executor works on an execution only while it holds its lease.

    A lease lasts ``ttl`` seconds and is renewed by every write of the execution and by
    :meth:`renew`; an executor that stops renewing loses its executions to the others, which
    recover them from the stored record. Writes are fenced: :meth:`fence` fails a transaction
    that writes an execution whose lease is no longer this executor's.
    """

    def __init__(self, store: Any, owner: str, ttl: float = 30.0) -> None:
        super().__init__(store)
        self.owner = owner
        self.ttl = ttl
        self.held: set[str] = set()
        self._lock = threading.Lock()

    def holds(self, execution_id: str) -> bool:
        return execution_id in self.held

    def _claim(self, conn: sa.Connection, ids: Iterable[str]) -> set[str]:
        """Lease ``ids`` that are free, expired or already ours; returns those now ours. Ids are
        claimed in sorted order so that two executors claiming overlapping sets cannot deadlock."""
        ids = sorted(set(ids))
        if not ids:
            return set()
        table = execution_leases
        expires = self.now() + self.ttl
        if self.postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(table).values(
            [{"execution_id": i, "owner": self.owner, "expires": expires} for i in ids]
        )
        claim = stmt.on_conflict_do_update(
            index_elements=["execution_id"],
            set_={"owner": stmt.excluded.owner, "expires": stmt.excluded.expires},
            where=sa.or_(table.c.owner == self.owner, table.c.expires < self.now()),
        ).returning(table.c.execution_id)
        got = {r.execution_id for r in conn.execute(claim)}
        with self._lock:
            self.held |= got
        return got

    def acquire(self, ids: Iterable[str]) -> set[str]:
        with self.begin() as conn:
            return self._claim(conn, ids)

    def acquire_for_messages(self, conn: sa.Connection, limit: int) -> list[str]:
        """Lease the executions that have messages waiting and no live lease of another executor;
        returns those taken over from an executor whose lease expired (to recover)."""
        q, table = queue_table(), execution_leases
        free = (
            sa.select(q.c.execution_id).distinct()
            .select_from(q.outerjoin(table, table.c.execution_id == q.c.execution_id))
            .where(q.c.execution_id != "", sa.or_(table.c.owner.is_(None), table.c.expires < self.now()))
            .order_by(q.c.execution_id).limit(limit)
        )  # fmt: skip
        if self.postgres:  # one statement; xmax tells a row updated (taken over) from one inserted
            from sqlalchemy.dialects.postgresql import insert

            stmt = insert(table).from_select(
                ["execution_id", "owner", "expires"],
                sa.select(free.subquery().c.execution_id, sa.literal(self.owner), self.now() + self.ttl),
            )
            claim = stmt.on_conflict_do_update(
                index_elements=["execution_id"],
                set_={"owner": stmt.excluded.owner, "expires": stmt.excluded.expires},
                where=sa.or_(table.c.owner == self.owner, table.c.expires < self.now()),
            ).returning(table.c.execution_id, sa.literal_column("xmax <> 0").label("taken"))
            rows = conn.execute(claim).all()
            with self._lock:
                self.held |= {r.execution_id for r in rows}
            return [r.execution_id for r in rows if r.taken]
        sub = free.subquery()
        found = conn.execute(
            sa.select(sub.c.execution_id, table.c.owner)
            .select_from(sub.outerjoin(table, table.c.execution_id == sub.c.execution_id))
        ).all()  # fmt: skip
        if not found:
            return []
        got = self._claim(conn, [r.execution_id for r in found])
        return [r.execution_id for r in found if r.owner is not None and r.execution_id in got]

    def orphans(self, states: Sequence[str], grace: float) -> list[str]:
        """Lease active executions that no live executor holds (their executor died, or none ever took
        them for ``grace`` seconds); returns them, to recover."""
        table = executions
        lease = execution_leases
        with self.begin() as conn:
            rows = conn.execute(
                sa.select(table.c.id).select_from(table.outerjoin(lease, lease.c.execution_id == table.c.id))
                .where(table.c.state.in_(states),
                       sa.or_(lease.c.expires < self.now(),
                              sa.and_(lease.c.owner.is_(None), table.c.start_date < time.time() - grace)))
                .order_by(table.c.start_date).limit(1000)
            ).all()  # fmt: skip
            return sorted(self._claim(conn, [r.id for r in rows]))

    def renew(self) -> set[str]:
        """Extend every lease this executor holds; returns the executions it lost meanwhile."""
        table = execution_leases
        with self._lock:
            before = set(self.held)
        with self.begin() as conn:
            kept = {r.execution_id for r in conn.execute(
                table.update().where(table.c.owner == self.owner)
                .values(expires=self.now() + self.ttl).returning(table.c.execution_id))}  # fmt: skip
        lost = before - kept
        with self._lock:
            self.held -= lost
        return lost

    def fence(self, ids: Sequence[str], release: Sequence[str]) -> Fence:
        """The lease check of a batch writing ``ids`` (releasing the leases of ``release``, ended)."""
        return Fence(self, list(ids), list(release))

    def not_ours(self, ids: Sequence[str]) -> set[str]:
        """Of ``ids``, those whose lease another executor holds now."""
        table = execution_leases
        with self.store.engine.connect() as conn:
            ours = set(conn.execute(sa.select(table.c.execution_id).where(
                table.c.owner == self.owner, table.c.execution_id.in_(list(ids)))).scalars())  # fmt: skip
        return set(ids) - ours

    def forget(self, ids: Iterable[str]) -> None:
        with self._lock:
            self.held.difference_update(ids)

    def expire_all(self) -> None:
        """A clean stop: every lease this executor holds expires now, so the other executors take the
        executions over (and recover them) at once instead of after the lease timeout."""
        with self.begin() as conn:
            conn.execute(
                execution_leases.update().where(execution_leases.c.owner == self.owner).values(expires=0.0)
            )
            self.notify(conn, MESSAGES_CHANNEL)
        with self._lock:
            self.held.clear()


class Fence:
    """Called in the transaction writing ``ids``: renews their leases and releases those of ``release``.
    On SQLite it returns the ids whose lease is no longer ours (the caller must not write them); on
    PostgreSQL (a :meth:`Store.pg_transaction` cursor) the check fails the transaction in SQL, and
    :meth:`lost` then names them."""

    def __init__(self, leases: Leases, ids: list[str], release: list[str]) -> None:
        self.leases, self.ids, self.release = leases, ids, release

    def __call__(self, conn: Any) -> set[str]:
        leases, table = self.leases, execution_leases
        if not self.ids:
            return set()
        if isinstance(conn, sa.Connection):
            ours = {r.execution_id for r in conn.execute(
                table.update().where(table.c.owner == leases.owner, table.c.execution_id.in_(self.ids))
                .values(expires=leases.now() + leases.ttl).returning(table.c.execution_id))}  # fmt: skip
            if self.release:
                conn.execute(table.delete().where(table.c.owner == leases.owner,
                                                  table.c.execution_id.in_(self.release)))  # fmt: skip
            lost = set(self.ids) - ours
        else:
            conn.execute(_FENCE, {"ttl": leases.ttl, "owner": leases.owner, "ids": self.ids,
                                  "expected": len(set(self.ids))})  # fmt: skip
            if self.release:
                conn.execute(_RELEASE, {"owner": leases.owner, "ids": self.release})
            lost = set()
        leases.forget(self.release)
        return lost

    def lost(self) -> set[str]:
        return self.leases.not_ours(self.ids)


@dataclass(slots=True)
class ClaimedJob:
    taskrun_id: str
    execution_id: str
    claim: str
    submissions: int
    payload: dict[str, Any]


@dataclass(slots=True)
class Resubmitted:
    execution_id: str
    taskrun_id: str
    submissions: int
    worker_id: str


class WorkQueue(_Sql):
    """``worker_jobs``: task runs for worker processes, one row per task run in flight.

    A job is *claimed* by a worker (``worker_id`` and a fresh ``claim`` token set under ``SKIP
    LOCKED``) and *completed* by deleting the row that still carries that claim, in the transaction
    that writes the result message: a job taken back from a dead worker has a new claim, so the dead
    worker's late result deletes nothing and is dropped.
    """

    def enqueue(self, jobs: Sequence[dict[str, Any]]) -> None:
        with self.store.pg_transaction() if self.postgres else self.begin() as conn:
            self.enqueue_in(conn, jobs)

    def enqueue_in(self, conn: Any, jobs: Sequence[dict[str, Any]]) -> None:
        """Insert jobs (``taskrun_id``, ``execution_id``, ``worker_group``, ``pin``, ``payload``) in the open
        transaction ``conn``; a task run that already has a job keeps it (a recovering executor dispatches
        the runs in flight again)."""
        if not jobs:
            return
        now = time.time()
        if isinstance(conn, sa.Connection):  # SQLite
            from sqlalchemy.dialects.sqlite import insert

            rows = [{**j, "created": now, "submissions": 1, "kill": False} for j in jobs]
            conn.execute(insert(worker_jobs).on_conflict_do_nothing(index_elements=["taskrun_id"]), rows)
        else:
            conn.executemany(_ENQUEUE, [{**j, "created": now} for j in jobs])
        self.notify(conn, JOBS_CHANNEL)

    def claim(self, worker_id: str, group: str | None, limit: int) -> list[ClaimedJob]:
        """Take up to ``limit`` waiting jobs of ``group`` (None: jobs of no group), oldest first. A job
        pinned to another live worker (a WorkingDirectory's folder is there) is left to that worker."""
        if limit <= 0:
            return []
        token = uuid.uuid4().hex
        rows: Sequence[Any]
        if self.postgres:
            with self.store.autocommit_cursor() as cur:
                cur.execute(_CLAIM_NO_GROUP if group is None else _CLAIM_GROUP,
                            {"worker_id": worker_id, "claim": token, "limit": limit, "group": group})  # fmt: skip
                rows = cur.fetchall()
        else:
            rows = self._claim_sqlite(worker_id, group, limit, token)
        pins = {(r.pin, r.execution_id) for r in rows if r.pin}
        if pins:  # after the claim: a worker dying in between has its jobs resubmitted, pins or not
            if self.postgres:
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            with self.store.one_statement() as conn:
                conn.execute(insert(worker_pins).on_conflict_do_nothing(index_elements=["pin"]),
                             [{"pin": pin, "worker_id": worker_id, "execution_id": ex} for pin, ex in pins])  # fmt: skip
        return [
            ClaimedJob(r.taskrun_id, r.execution_id, token, r.submissions, json.loads(r.payload))
            for r in rows
        ]

    def _claim_sqlite(self, worker_id: str, group: str | None, limit: int, token: str) -> Sequence[Any]:
        j, p = worker_jobs, worker_pins
        pinned_elsewhere = sa.exists().where(p.c.pin == j.c.pin, p.c.worker_id != worker_id)
        pick = (
            sa.select(j.c.seq)
            .where(j.c.worker_id.is_(None), j.c.kill.is_(False),
                   j.c.worker_group.is_(None) if group is None else j.c.worker_group == group,
                   sa.or_(j.c.pin.is_(None), ~pinned_elsewhere))
            .order_by(j.c.seq).limit(limit)
        )  # fmt: skip
        with self.store.one_statement() as conn:
            return conn.execute(
                j.update().where(j.c.seq.in_(pick.scalar_subquery()))
                .values(worker_id=worker_id, claim=token, claimed=self.now())
                .returning(j.c.taskrun_id, j.c.execution_id, j.c.submissions, j.c.payload, j.c.pin)
            ).all()  # fmt: skip

    def complete(self, taskrun_id: str, claim: str, message: tuple[str, str, dict[str, Any]]) -> bool:
        """Delete the job if it still carries ``claim`` and write the result message, in one
        transaction; False (nothing written) when the job was taken back meanwhile."""
        j = worker_jobs
        if self.postgres:  # one statement (no transaction round trips): the result only if the claim held
            with self.store.autocommit_cursor() as cur:
                cur.execute(_COMPLETE, {"taskrun_id": taskrun_id, "claim": claim, "channel": MESSAGES_CHANNEL,
                                        **_message_row(*message)})  # fmt: skip
                return cur.fetchone() is not None
        with self.begin() as conn:
            done = conn.execute(
                j.delete().where(j.c.taskrun_id == taskrun_id, j.c.claim == claim).returning(j.c.seq)
            ).first()
            if done is None:
                return False
            conn.execute(queue_table().insert().values(**_message_row(*message)))
            self.notify(conn, MESSAGES_CHANNEL, message[1])
        return True

    def register(self, worker_id: str, group: str | None, host: str, pid: int, threads: int) -> None:
        with self.begin() as conn:
            conn.execute(worker_instances.insert().values(id=worker_id, worker_group=group, host=host, pid=pid,
                                                          threads=threads, started=time.time(), heartbeat=self.now()))  # fmt: skip

    def heartbeat(self, worker_id: str) -> tuple[bool, set[str]]:
        """Refresh the worker's heartbeat; returns whether it is still registered (False: it was
        declared dead and its jobs resubmitted) and the task runs it holds that must be killed."""
        w, j = worker_instances, worker_jobs
        with self.begin() as conn:
            alive = (
                conn.execute(w.update().where(w.c.id == worker_id).values(heartbeat=self.now())).rowcount > 0
            )
            kills = {r.taskrun_id for r in conn.execute(
                sa.select(j.c.taskrun_id).where(j.c.worker_id == worker_id, j.c.kill.is_(True)))}  # fmt: skip
        return alive, kills

    def unregister(self, worker_id: str) -> list[Resubmitted]:
        """A clean stop: the jobs the worker still holds go back to the queue at once."""
        return self._resubmit(sa.literal(True), worker_ids=[worker_id])

    def resubmit_dead(self, timeout: float) -> list[Resubmitted]:
        """Take back the jobs of workers whose heartbeat is older than ``timeout`` seconds (and of
        workers no longer registered at all), forget those workers; returns the jobs resubmitted."""
        return self._resubmit(worker_instances.c.heartbeat < self.now() - timeout)

    def _resubmit(self, dead_if: Any, worker_ids: Sequence[str] | None = None) -> list[Resubmitted]:
        w, j, p = worker_instances, worker_jobs, worker_pins
        with self.begin() as conn:
            if worker_ids is None:
                dead = [r.id for r in conn.execute(sa.select(w.c.id).where(dead_if))]
                gone = sa.or_(j.c.worker_id.in_(dead), j.c.worker_id.not_in(sa.select(w.c.id)))
            else:
                dead = list(worker_ids)
                gone = j.c.worker_id.in_(dead)
            old = {r.taskrun_id: r.worker_id for r in conn.execute(
                sa.select(j.c.taskrun_id, j.c.worker_id).where(j.c.worker_id.is_not(None), gone)
                .with_for_update())}  # fmt: skip
            rows = []
            if old:
                rows = conn.execute(
                    j.update().where(j.c.taskrun_id.in_(list(old)))
                    .values(worker_id=None, claim=None, claimed=None, submissions=j.c.submissions + 1)
                    .returning(j.c.execution_id, j.c.taskrun_id, j.c.submissions)
                ).all()  # fmt: skip
            if dead:
                conn.execute(w.delete().where(w.c.id.in_(dead)))
                conn.execute(p.delete().where(p.c.worker_id.in_(dead)))
            out = [Resubmitted(r.execution_id, r.taskrun_id, r.submissions, old[r.taskrun_id]) for r in rows]
            if out:
                conn.execute(queue_table().insert(), [_message_row("resubmitted", r.execution_id,
                             {"taskrun_id": r.taskrun_id, "submission": r.submissions, "worker": r.worker_id})
                             for r in out])  # fmt: skip
                self.notify(conn, JOBS_CHANNEL)
                self.notify(conn, MESSAGES_CHANNEL)
        return out

    def kill(self, taskrun_id: str) -> bool:
        """Kill a job: True when no worker had taken it (it is deleted; the caller reports it KILLED),
        else the worker holding it is told (flag and NOTIFY) and reports KILLED itself."""
        j = worker_jobs
        with self.begin() as conn:
            removed = conn.execute(
                j.delete().where(j.c.taskrun_id == taskrun_id, j.c.worker_id.is_(None)).returning(j.c.seq)
            ).first()
            if removed is not None:
                return True
            conn.execute(j.update().where(j.c.taskrun_id == taskrun_id).values(kill=True))
            self.notify(conn, KILL_CHANNEL, taskrun_id)
        return False

    def unqueue(self, taskrun_id: str) -> bool:
        """Delete a job no worker has taken; False when a worker holds it (or it is gone)."""
        j = worker_jobs
        with self.begin() as conn:
            return (
                conn.execute(
                    j.delete().where(j.c.taskrun_id == taskrun_id, j.c.worker_id.is_(None)).returning(j.c.seq)
                ).first()
                is not None
            )

    def forget_pins(self, terminal: Sequence[str]) -> None:
        """Drop the pins of WorkingDirectory folders whose execution has ended."""
        p = worker_pins
        with self.begin() as conn:
            conn.execute(p.delete().where(p.c.execution_id.in_(
                sa.select(executions.c.id).where(executions.c.id == p.c.execution_id,
                                                 executions.c.state.in_(list(terminal))))))  # fmt: skip

    def workers(self) -> list[dict[str, Any]]:
        """The registered workers (for operators and tests)."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(worker_instances).order_by(worker_instances.c.started)).all()
        return [dict(r._mapping) for r in rows]

    def depth(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(worker_jobs)).scalar() or 0)


def process_id() -> str:
    """A name for this process in the cluster tables: host, pid and a random part (pids are reused)."""
    import os
    import socket

    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Listener:
    """A thread LISTENing on PostgreSQL channels, calling ``on_notify(channel, payload)`` per NOTIFY.

    After a lost connection it reconnects (with backoff) and calls ``on_notify("", "")``: what was
    notified meanwhile is lost, so the owner looks at the tables once. On SQLite it does nothing (the
    owner's polling is the only way to learn of new rows).
    """

    def __init__(self, store: Any, channels: Sequence[str], on_notify: Callable[[str, str], None]) -> None:
        self.store = store
        self.channels = list(channels)
        self.on_notify = on_notify
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    @property
    def enabled(self) -> bool:
        return bool(self.store.engine.dialect.name == "postgresql")

    def start(self) -> Listener:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="roost-listen", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3)

    def _run(self) -> None:
        import psycopg

        delay = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(libpq_url(self.store), autocommit=True) as conn:
                    for channel in self.channels:
                        conn.execute(f"LISTEN {channel}")  # channel names are our constants
                    self.on_notify("", "")
                    delay = 0.1
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            self.on_notify(n.channel, n.payload)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("LISTEN connection lost (%s); reconnecting in %.1f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)


class StorageMismatch(Exception):
    """This process's internal storage is not the one the other processes of the store use."""


def check_shared_storage(store: Any, read_marker: Callable[[], str | None], write_marker: Callable[[str], None],
                         where: str) -> str:  # fmt: skip
    """Every process of one installation must see one internal storage (files written by a worker are
    read by the API and other workers). The first process writes a random id to the storage and to the
    store; every later one finds the same id in its storage or refuses to start."""
    with store.transaction() as conn:
        row = conn.execute(
            sa.select(cluster_settings.c.value).where(cluster_settings.c.name == "storage_id")
        ).first()
        if row is None:
            ident = read_marker() or uuid.uuid4().hex
            write_marker(ident)
            conn.execute(cluster_settings.insert().values(name="storage_id", value=ident))
            return ident
    found = read_marker()
    if found != row.value:
        raise StorageMismatch(
            f"the internal storage {where} is not the one the other processes of this store use "
            f"(storage id {found or 'missing'}, expected {row.value}): workers, executors and webservers on "
            "several machines need a shared storage backend (S3, or one folder mounted on every machine)"
        )
    return str(row.value)


class LeaderLock:
    """One holder at a time among processes (the active scheduler), through a PostgreSQL session advisory
    lock on a dedicated connection: the server releases it the moment the holder's connection ends (a
    killed process), and a standby takes it at its next look. SQLite: always held (one machine; the
    deterministic execution ids of schedules still stop a second process firing them twice)."""

    def __init__(self, store: Any, name: str) -> None:
        import zlib

        self.store = store
        self.key = zlib.crc32(f"roost:{name}".encode())
        self._conn: Any = None

    def held(self) -> bool:
        if self.store.engine.dialect.name != "postgresql":
            return True
        import psycopg

        try:
            if self._conn is not None:
                self._conn.execute("SELECT 1")  # still connected: the lock is still ours
                return True
            conn = psycopg.connect(libpq_url(self.store), autocommit=True)
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            if row and row[0]:
                self._conn = conn
                return True
            conn.close()
        except Exception as exc:
            log.warning("leader lock: %s", exc)
            self.release()
        return False

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
