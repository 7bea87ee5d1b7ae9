"""Repositories over SQLAlchemy Core (SQLite embedded; PostgreSQL for several processes).

One :class:`Store` per database: flows with revisions, executions and their
task runs, logs, KV, namespace files with revisions, trigger state, and a
schema-version table that :func:`migrate` advances.
"""

from __future__ import annotations

import builtins
import functools
import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from roost.store.keys import MISSING, kv_key
from roost.store.tables import (
    asset_events,
    asset_lineage,
    assets,
    audit_logs,
    cluster_settings,
    dumps,
    execution_leases,
    execution_masks,
    executions,
    flows,
    kill_switches,
    kv,
    logs,
    metadata,
    namespace_dirs,
    namespace_files,
    plugin_defaults,
    schema_version,
    store_versions,
    taskruns,
    triggers,
    worker_instances,
    worker_jobs,
    worker_pins,
)

# KV statements built once: a task that writes a key (kv.Set on the worker path) would otherwise pay
# for building and hashing the statement at every call, more than for executing it.
_KV_MATCH = sa.and_(
    kv.c.tenant == sa.bindparam("w_tenant"),
    kv.c.namespace == sa.bindparam("w_namespace"),
    kv.c.key == sa.bindparam("w_key"),
)
_KV_GET = sa.select(kv.c.value, kv.c.expires).where(_KV_MATCH)
_KV_DELETE = kv.delete().where(_KV_MATCH)
_SQLITE_UPSERT_KV = (
    "INSERT INTO kv (tenant, namespace, key, value, expires, updated, description) VALUES (?,?,?,?,?,?,?)"
    " ON CONFLICT (tenant, namespace, key) DO UPDATE SET value=excluded.value, expires=excluded.expires,"
    " updated=excluded.updated, description=excluded.description"
)


def _v1(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[flows, executions, taskruns, logs, kv, namespace_files, triggers])


def _v2_assets(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[assets, asset_lineage, asset_events])


def _v3_masks(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[execution_masks])


def _v4_plugin_defaults(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[plugin_defaults])


def _v5_governance(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[kill_switches, store_versions, audit_logs])
    conn.execute(store_versions.insert().values(name="kill_switches", version=0))
    # append-only in the database itself: an UPDATE or DELETE of an audit row fails, whoever sends it
    if conn.dialect.name == "sqlite":
        for op in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(f"CREATE TRIGGER audit_logs_no_{op.lower()} BEFORE {op} ON audit_logs "
                                 "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")  # fmt: skip
    else:
        conn.exec_driver_sql(
            "CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$"
        )
        conn.exec_driver_sql("CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs "
                             "FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()")  # fmt: skip
        conn.exec_driver_sql("CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs "
                             "FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only()")  # fmt: skip


def _v6_namespace_directories(conn: sa.Connection) -> None:
    # checkfirst: servers before this migration created the table on start-up, outside the migrations
    metadata.create_all(conn, tables=[namespace_dirs], checkfirst=True)


def _v7_scale_out(conn: sa.Connection) -> None:
    metadata.create_all(
        conn, tables=[worker_jobs, worker_instances, worker_pins, execution_leases, cluster_settings]
    )


def _v8_lease_fence(conn: sa.Connection) -> None:
    # An executor batch's lease check fails in SQL, so the whole batch (BEGIN to COMMIT) is sent at once
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE FUNCTION roost_fence(renewed bigint, expected bigint) RETURNS void LANGUAGE plpgsql AS "
            "$$ BEGIN IF renewed <> expected THEN RAISE EXCEPTION 'an execution of this batch is leased to "
            f"another executor' USING ERRCODE = '{LEASE_LOST_SQLSTATE}'; END IF; END $$"
        )


# Ordered migrations: version number → function. New tables or columns go at the end, never edit old ones.
MIGRATIONS: list[tuple[int, Any]] = [
    (1, _v1),
    (2, _v2_assets),
    (3, _v3_masks),
    (4, _v4_plugin_defaults),
    (5, _v5_governance),
    (6, _v6_namespace_directories),
    (7, _v7_scale_out),
    (8, _v8_lease_fence),
]


def migrate(engine: sa.Engine) -> int:
    """Bring the schema to the latest version; returns the version reached."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # processes starting together migrate one after the other
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7305142968051)")
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
        for version, fn in MIGRATIONS:
            if version > current:
                fn(conn)
                conn.execute(schema_version.insert().values(version=version, applied=time.time()))
                current = version
    return current


def _sqlite_pragmas(busy_timeout: float) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint; commits stay cheap
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.execute(
            "PRAGMA mmap_size=0"
        )  # read the database file, never map it: a truncated file is an error, not SIGBUS
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return on_connect


class StoreError(Exception):
    """The store cannot be opened or written; the message says which store and why."""


class ExecutionExists(Exception):
    """An execution with this id exists already (a scheduled date fired by another scheduler)."""


LEASE_LOST_SQLSTATE = "RLOST"  # raised by roost_fence (migration 8)


class LeaseLost(Exception):
    """Executions this executor may no longer write: another executor holds their lease now."""

    def __init__(self, execution_ids: set[str]) -> None:
        super().__init__(f"{len(execution_ids)} executions are leased to another executor")
        self.execution_ids = execution_ids


def store_unavailable(exc: BaseException) -> bool:
    """A store error that may pass: locked or busy, full, read-only, I/O, connection lost."""
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError) or bool(
        getattr(exc, "connection_invalidated", False)
    )


def _exclusive_sqlite(url: str) -> str:
    """The same SQLite file through the ``unix-excl`` VFS: this process alone opens it, and WAL keeps its
    index in this process's heap instead of a memory-mapped ``-shm`` file that another process could
    truncate under us (a SIGBUS that kills the server)."""
    from urllib.parse import quote

    path = url.split(":///", 1)[1]
    return f"sqlite:///file:{quote(path)}?vfs=unix-excl&uri=true"


_SQLITE_UPSERT_EXECUTION = (
    "INSERT INTO executions (id, tenant, namespace, flow_id, state, start_date, end_date, parent_id, deleted, data)"
    " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET tenant=excluded.tenant,"
    " namespace=excluded.namespace, flow_id=excluded.flow_id, state=excluded.state, start_date=excluded.start_date,"
    " end_date=excluded.end_date, parent_id=excluded.parent_id, deleted=excluded.deleted, data=excluded.data"
)
_SQLITE_UPSERT_TASKRUN = (
    "INSERT INTO taskruns (id, execution_id, seq, data) VALUES (?,?,?,?) ON CONFLICT (id) DO UPDATE SET"
    " execution_id=excluded.execution_id, seq=excluded.seq, data=excluded.data"
)
_SQLITE_INSERT_NEW_EXECUTION = (
    _SQLITE_UPSERT_EXECUTION.split(" ON CONFLICT")[0] + " ON CONFLICT (id) DO NOTHING RETURNING id"
)
_PG_UPSERT_EXECUTION = _SQLITE_UPSERT_EXECUTION.replace("?", "%s")
_PG_INSERT_NEW_EXECUTION = _SQLITE_INSERT_NEW_EXECUTION.replace("?", "%s")
_PG_UPSERT_KV = _SQLITE_UPSERT_KV.replace("?", "%s")
_PG_LOAD_EXECUTIONS = (
    "SELECT e.id, e.data, ARRAY(SELECT t.data FROM taskruns t WHERE t.execution_id = e.id ORDER BY t.seq) AS runs,"
    " (SELECT m.data FROM execution_masks m WHERE m.execution_id = e.id) AS masks"
    " FROM executions e WHERE e.id = ANY(%s)"
)
_PG_LOAD_EXECUTIONS_NO_MASKS = _PG_LOAD_EXECUTIONS.replace(
    "(SELECT m.data FROM execution_masks m WHERE m.execution_id = e.id)", "NULL"
)
_PG_UPSERT_TASKRUN = _SQLITE_UPSERT_TASKRUN.replace("?", "%s")


class Store:
    """All repositories of one database."""

    def __init__(self, url: str, *, exclusive: bool = False, busy_timeout: float = 10.0) -> None:
        """``exclusive`` (SQLite files): only this process may open the database (see ``_exclusive_sqlite``);
        ``busy_timeout``: how long a SQLite statement waits for another writer before failing."""
        self.url = url
        if url.startswith("sqlite"):
            memory = ":memory:" in url
            connect_url = _exclusive_sqlite(url) if exclusive and not memory else url
            self.engine = sa.create_engine(connect_url, connect_args={"check_same_thread": False, "timeout": busy_timeout},
                                           poolclass=sa.pool.SingletonThreadPool if memory else sa.pool.QueuePool,
                                           pool_size=8, max_overflow=16)  # fmt: skip
            event.listen(self.engine, "connect", _sqlite_pragmas(busy_timeout))
        else:
            self.engine = sa.create_engine(url, pool_size=8, max_overflow=16)
            _ping_when_idle(self.engine)
        self.write_lock = threading.RLock() if url.startswith("sqlite") else _NullLock()
        self._writer: Any = None  # SQLite: the connection _sqlite_transaction keeps
        self._writer_busy = False
        self._idle: list[tuple[Any, float]] = []  # PostgreSQL: autocommit_cursor's connections, last use
        self._own_slots = threading.BoundedSemaphore(24)
        # One-statement writes on PostgreSQL (a worker's claim, a result, a KV write) run in autocommit:
        # BEGIN and COMMIT would be two more round trips of the three each costs otherwise.
        self._autocommit = (
            None if url.startswith("sqlite") else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        migrate(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction, under the in-process write lock (SQLite has one writer)."""
        with self.write_lock, self.engine.begin() as conn:
            yield conn

    def one_statement(self) -> Any:
        """A connection for a write of one statement: autocommit on PostgreSQL (no BEGIN and COMMIT round
        trips), a transaction on SQLite. Only for writes that are whole in one statement."""
        return self.transaction() if self._autocommit is None else self._autocommit.connect()

    @contextmanager
    def autocommit_cursor(self) -> Iterator[Any]:
        """PostgreSQL: a psycopg cursor (rows as named tuples) in autocommit, on a connection of the
        store's own outside SQLAlchemy's pool, for the one-statement writes of the worker path (a claim, a
        result, a KV write, a take): there SQLAlchemy's checkout, execution context and result cost three
        times the round trip. A connection unused for a second is pinged first (the server may have closed
        it); one that failed is closed, not reused; errors come out as SQLAlchemy's (``store_unavailable``)."""
        import psycopg
        from psycopg.rows import namedtuple_row

        if not self._own_slots.acquire(timeout=30):  # as many as SQLAlchemy's pool would open
            raise sa.exc.TimeoutError("no connection of the store came free within 30 s")
        try:
            conn = self._idle_connection()
            try:
                with conn.cursor(row_factory=namedtuple_row) as cur:
                    yield cur
            except psycopg.Error as exc:
                broken = conn.broken
                conn.close()
                raise sa.exc.DBAPIError.instance(
                    None, None, exc, psycopg.Error, connection_invalidated=broken
                ) from exc
            except BaseException:
                conn.close()
                raise
            self._idle.append((conn, time.monotonic()))
        finally:
            self._own_slots.release()

    @contextmanager
    def pg_transaction(self) -> Iterator[Any]:
        """PostgreSQL: a transaction sent in one round trip — BEGIN, the statements executed on the yielded
        cursor (none may need its answer before the end), COMMIT — in psycopg's pipeline mode on an
        :meth:`autocommit_cursor` connection. A statement that fails fails the transaction (a connection
        that failed is closed: the server rolls it back)."""
        with self.autocommit_cursor() as cur, cur.connection.pipeline():
            cur.execute("BEGIN")
            yield cur
            cur.execute("COMMIT")

    def _idle_connection(self) -> Any:
        import psycopg

        while self._idle:
            try:
                conn, used = self._idle.pop()
            except IndexError:  # another thread took the last one
                break
            if time.monotonic() - used < _PING_AFTER:
                return conn
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()
        try:
            return psycopg.connect(libpq_url(self), autocommit=True)
        except psycopg.Error as exc:
            raise sa.exc.DBAPIError.instance(None, None, exc, psycopg.Error) from exc

    @classmethod
    def sqlite(cls, folder: Path | str, **kw: Any) -> Store:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{folder / 'roost.db'}", **kw)

    def check_writable(self) -> None:
        """Write and roll back a row, so that a store that cannot be written (a read-only file or folder,
        a database another process holds) is reported at start-up rather than at the first request."""
        with self.write_lock, self.engine.connect() as conn:
            tx = conn.begin()
            try:
                conn.execute(schema_version.insert().values(version=-1, applied=time.time()))
            finally:
                tx.rollback()

    def close(self) -> None:
        with self.write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        while self._idle:
            self._idle.pop()[0].close()
        self.engine.dispose()

    @functools.cached_property
    def kill_switches(self) -> Any:
        """The kill switches (:class:`roost.store.killswitches.SqlKillSwitches`)."""
        from roost.store.killswitches import SqlKillSwitches

        return SqlKillSwitches(self)

    @functools.cached_property
    def namespace_dirs(self) -> Any:
        """Folders of namespace files created empty (:class:`roost.store.namespace_dirs.SqlNamespaceDirs`)."""
        from roost.store.namespace_dirs import SqlNamespaceDirs

        return SqlNamespaceDirs(self)

    @functools.cached_property
    def audit(self) -> Any:
        """The append-only audit log (:class:`roost.store.audit.SqlAuditLog`)."""
        from roost.store.audit import SqlAuditLog

        return SqlAuditLog(self)

    # -- flows -------------------------------------------------------------------------------------
    def save_flow(self, tenant: str, namespace: str, flow_id: str, source: str, labels: Any = None,
                  disabled: bool = False) -> int:  # fmt: skip
        """Store a new revision when the source changed; returns the revision now current."""
        with self.write_lock, self.engine.begin() as conn:
            row = conn.execute(
                sa.select(flows.c.revision, flows.c.source, flows.c.deleted)
                .where(flows.c.tenant == tenant, flows.c.namespace == namespace, flows.c.id == flow_id)
                .order_by(flows.c.revision.desc()).limit(1)
            ).first()  # fmt: skip
            if row is not None and row.source == source and not row.deleted:
                return int(row.revision)
            revision = (row.revision + 1) if row is not None else 1
            conn.execute(flows.insert().values(tenant=tenant, namespace=namespace, id=flow_id, revision=revision,
                                               source=source, deleted=False, disabled=disabled,
                                               labels=dumps(labels) if labels else None, updated=time.time()))  # fmt: skip
            return revision

    def get_flow(self, tenant: str, namespace: str, flow_id: str, revision: int | None = None,
                 allow_deleted: bool = False) -> tuple[int, str] | None:  # fmt: skip
        q = sa.select(flows.c.revision, flows.c.source, flows.c.deleted).where(
            flows.c.tenant == tenant, flows.c.namespace == namespace, flows.c.id == flow_id
        )
        if revision is not None:
            q = q.where(flows.c.revision == revision)
        with self.engine.connect() as conn:
            row = conn.execute(q.order_by(flows.c.revision.desc()).limit(1)).first()
        if row is None or (row.deleted and not allow_deleted and revision is None):
            return None
        return int(row.revision), row.source

    def flow_revisions(self, tenant: str, namespace: str, flow_id: str) -> list[tuple[int, str, float]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(flows.c.revision, flows.c.source, flows.c.updated)
                .where(flows.c.tenant == tenant, flows.c.namespace == namespace, flows.c.id == flow_id,
                       flows.c.deleted.is_(False))
                .order_by(flows.c.revision)
            ).all()  # fmt: skip
        return [(r.revision, r.source, r.updated) for r in rows]

    def delete_flow(self, tenant: str, namespace: str, flow_id: str) -> bool:
        current = self.get_flow(tenant, namespace, flow_id)
        if current is None:
            return False
        with self.write_lock, self.engine.begin() as conn:
            conn.execute(flows.insert().values(tenant=tenant, namespace=namespace, id=flow_id, revision=current[0] + 1,
                                               source=current[1], deleted=True, disabled=False, updated=time.time()))  # fmt: skip
        return True

    def list_flows(
        self, tenant: str, namespace: str | None = None, prefix: bool = False
    ) -> list[tuple[str, str, int, str]]:
        """Latest non-deleted revision of each flow: (namespace, id, revision, source)."""
        latest = (
            sa.select(flows.c.namespace, flows.c.id, sa.func.max(flows.c.revision).label("rev"))
            .where(flows.c.tenant == tenant)
            .group_by(flows.c.namespace, flows.c.id)
            .subquery()
        )
        q = sa.select(flows.c.namespace, flows.c.id, flows.c.revision, flows.c.source).join(
            latest, sa.and_(flows.c.namespace == latest.c.namespace, flows.c.id == latest.c.id,
                            flows.c.revision == latest.c.rev)
        ).where(flows.c.tenant == tenant, flows.c.deleted.is_(False))  # fmt: skip
        if namespace is not None:
            if prefix:
                q = q.where(
                    sa.or_(flows.c.namespace == namespace, flows.c.namespace.startswith(namespace + "."))
                )
            else:
                q = q.where(flows.c.namespace == namespace)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(flows.c.namespace, flows.c.id)).all()
        return [(r.namespace, r.id, r.revision, r.source) for r in rows]

    def namespaces(self, tenant: str) -> list[str]:
        with self.engine.connect() as conn:
            names = {
                r[0]
                for r in conn.execute(sa.select(flows.c.namespace).where(flows.c.tenant == tenant).distinct())
            }
            names |= {
                r[0]
                for r in conn.execute(
                    sa.select(namespace_files.c.namespace)
                    .where(namespace_files.c.tenant == tenant)
                    .distinct()
                )
            }
            names |= {
                r[0] for r in conn.execute(sa.select(kv.c.namespace).where(kv.c.tenant == tenant).distinct())
            }
        return sorted(names)

    # -- executions ----------------------------------------------------------------------------------
    def save_executions(
        self, items: Iterable[tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]], *,
        masks: dict[str, dict[str, Any]] | None = None, keep_only: dict[str, set[str]] | None = None,
        written: dict[str, str] | None = None, fence: Any = None, only_new: bool = False, also: Any = None,
    ) -> None:  # fmt: skip
        """Write execution headers and their changed task runs in one transaction, with the executions'
        masks (``execution_masks``); ``keep_only`` first drops an execution's other task runs (restart).

        ``written`` (execution id -> the header as last written, kept by the caller and updated here once
        committed) spares rewriting a header that did not change: a chain of tasks changes only runs.
        ``fence(conn)`` runs first in the transaction and returns the ids this process may no longer write
        (their lease went to another executor): then nothing is written and :class:`LeaseLost` is raised.
        ``only_new``: the executions must not exist yet (:class:`ExecutionExists` otherwise, nothing written).
        ``also(conn)`` writes more in the same transaction (the worker jobs the executions dispatched)."""
        ex_rows = []
        tr_rows = []
        texts: dict[str, str] = {}
        for header, changed in items:
            text = dumps(header)
            if written is None or written.get(header["id"]) != text:
                st = header["state"]
                ex_rows.append((
                    header["id"], header.get("tenantId") or "main", header["namespace"], header["flowId"],
                    st["current"], _ts(st.get("startDate")), _ts(st.get("endDate")), header.get("parentId"),
                    bool(header.get("deleted")), text,
                ))  # fmt: skip
                texts[header["id"]] = text
            for seq, tr in changed:
                tr_rows.append((tr["id"], header["id"], seq, dumps(tr)))
        if not (ex_rows or tr_rows or masks or keep_only or also is not None):
            return
        plain = not (keep_only or masks or only_new) and fence is None and also is None
        if plain and self.url.startswith("sqlite"):
            with self._sqlite_transaction() as cur:  # the hot path: one executor batch, no restart, no masks
                if ex_rows:
                    cur.executemany(_SQLITE_UPSERT_EXECUTION, ex_rows)
                if tr_rows:
                    cur.executemany(_SQLITE_UPSERT_TASKRUN, tr_rows)
            if written is not None:
                written.update(texts)
            return
        if self.url.startswith("sqlite"):
            self._save_sqlite(ex_rows, tr_rows, keep_only, masks, fence, also, only_new)
        else:
            self._save_pg(ex_rows, tr_rows, keep_only, masks, fence, also, only_new)
        if written is not None:
            written.update(texts)

    def _save_sqlite(
        self, ex_rows: list[tuple[Any, ...]], tr_rows: list[tuple[Any, ...]], keep_only: dict[str, set[str]] | None,
        masks: dict[str, dict[str, Any]] | None, fence: Any, also: Any, only_new: bool,
    ) -> None:  # fmt: skip
        with self.write_lock, self.engine.begin() as conn:
            if only_new:  # insert-if-absent first: of two concurrent creations, the second finds the row
                for row in ex_rows:
                    if conn.exec_driver_sql(_SQLITE_INSERT_NEW_EXECUTION, row).first() is None:
                        raise ExecutionExists(row[0])
                ex_rows = []  # written as they are
            for execution_id, keep_ids in (keep_only or {}).items():
                conn.execute(taskruns.delete().where(taskruns.c.execution_id == execution_id,
                                                     taskruns.c.id.not_in(keep_ids)))  # fmt: skip
            if masks:
                conn.execute(execution_masks.delete().where(execution_masks.c.execution_id.in_(list(masks))))
                conn.execute(
                    execution_masks.insert(),
                    [{"execution_id": i, "data": dumps(m)} for i, m in masks.items()],
                )
            # An upsert updates the row in place, and an index only when its columns change; INSERT OR
            # REPLACE deleted and re-inserted the row and every index entry: twice the pages per commit.
            if ex_rows:
                conn.exec_driver_sql(_SQLITE_UPSERT_EXECUTION, ex_rows)
            if tr_rows:
                conn.exec_driver_sql(_SQLITE_UPSERT_TASKRUN, tr_rows)
            if also is not None:
                also(conn)
            lost = fence(conn) if fence is not None else None
            if lost:  # another executor holds some of these now: nothing is written
                raise LeaseLost(lost)

    def _save_pg(
        self, ex_rows: list[tuple[Any, ...]], tr_rows: list[tuple[Any, ...]], keep_only: dict[str, set[str]] | None,
        masks: dict[str, dict[str, Any]] | None, fence: Any, also: Any, only_new: bool,
    ) -> None:  # fmt: skip
        """save_executions on PostgreSQL, in one round trip (:meth:`pg_transaction`): the lease fence fails
        in SQL (``roost_fence``) and so rolls everything back; then :class:`LeaseLost` names what was lost."""
        try:
            with self.pg_transaction() as cur:
                if (
                    only_new
                ):  # insert-if-absent first (its answer is awaited): the second of two finds the row
                    for row in ex_rows:
                        cur.execute(_PG_INSERT_NEW_EXECUTION, row)
                        if cur.fetchone() is None:
                            raise ExecutionExists(row[0])
                    ex_rows = []  # written as they are
                for execution_id, keep_ids in (keep_only or {}).items():
                    cur.execute("DELETE FROM taskruns WHERE execution_id = %s AND NOT (id = ANY(%s))",
                                (execution_id, list(keep_ids)))  # fmt: skip
                if masks:
                    cur.execute("DELETE FROM execution_masks WHERE execution_id = ANY(%s)", (list(masks),))
                    cur.executemany("INSERT INTO execution_masks (execution_id, data) VALUES (%s, %s)",
                                    [(i, dumps(m)) for i, m in masks.items()])  # fmt: skip
                if ex_rows:
                    cur.executemany(_PG_UPSERT_EXECUTION, ex_rows)
                if tr_rows:
                    cur.executemany(_PG_UPSERT_TASKRUN, tr_rows)
                if also is not None:
                    also(cur)
                if fence is not None:
                    fence(cur)
        except sa.exc.DBAPIError as exc:
            if fence is not None and getattr(exc.orig, "sqlstate", None) == LEASE_LOST_SQLSTATE:
                raise LeaseLost(fence.lost()) from None
            raise

    @contextmanager
    def _sqlite_transaction(self) -> Iterator[Any]:
        """A transaction on a DBAPI connection, for the writes of every executor batch and KV write:
        SQLAlchemy's Connection and transaction objects cost as much as the write itself there. Writes
        take the write lock anyway, so one connection is kept for them (a pool checkout and its reset
        cost as much again); one that failed is closed, not reused. Errors come out as SQLAlchemy's,
        like everywhere else in the store (``store_unavailable`` tells which may pass)."""
        with self.write_lock:
            # a write within a write gets a connection of its own; a memory database is one per connection
            keep = not self._writer_busy and ":memory:" not in self.url
            raw = self._writer if keep and self._writer is not None else self.engine.raw_connection()
            if keep:
                self._writer, self._writer_busy = raw, True
            try:
                cur = raw.cursor()
                try:
                    yield cur
                    raw.commit()
                except BaseException:
                    raw.rollback()
                    raise
                finally:
                    cur.close()
            except BaseException as exc:
                if keep:
                    self._writer = None
                raw.close()
                dbapi_error = self.engine.dialect.loaded_dbapi.Error
                if isinstance(exc, dbapi_error):
                    raise sa.exc.DBAPIError.instance(None, None, exc, dbapi_error) from exc
                raise
            else:
                if not keep:
                    raw.close()
            finally:
                if keep:
                    self._writer_busy = False

    def load_execution(self, execution_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        loaded = self.load_execution_and_masks(execution_id, masks=False)
        return None if loaded is None else loaded[:2]

    def load_execution_and_masks(
        self, execution_id: str, masks: bool = True
    ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None] | None:
        """The execution, its task runs and (``masks``) its mask-set state, over one connection."""
        return self.load_executions([execution_id], masks=masks).get(execution_id)

    def load_executions(
        self, execution_ids: Sequence[str], masks: bool = True
    ) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]]:
        """Executions by id (those that exist), each with its task runs and (``masks``) its mask-set state:
        on PostgreSQL one statement for them all (an executor reads back every execution an API process
        created, a batch of them at a time)."""
        ids = list(dict.fromkeys(execution_ids))
        rows: list[Any]
        if not self.url.startswith("sqlite"):
            with self.autocommit_cursor() as cur:
                cur.execute(_PG_LOAD_EXECUTIONS if masks else _PG_LOAD_EXECUTIONS_NO_MASKS, (ids,))
                rows = cur.fetchall()
        else:
            rows = []
            with self.engine.connect() as conn:
                for execution_id in ids:
                    row = conn.execute(
                        sa.select(executions.c.data).where(executions.c.id == execution_id)
                    ).first()
                    if row is None:
                        continue
                    runs = conn.execute(sa.select(taskruns.c.data).where(taskruns.c.execution_id == execution_id)
                                        .order_by(taskruns.c.seq)).scalars().all()  # fmt: skip
                    mask = masks and conn.execute(sa.select(execution_masks.c.data).where(
                        execution_masks.c.execution_id == execution_id)).scalar()  # fmt: skip
                    rows.append((execution_id, row.data, runs, mask or None))
        return {execution_id: (json.loads(data), [json.loads(r) for r in runs], json.loads(mask) if mask else None)
                for execution_id, data, runs, mask in rows}  # fmt: skip

    def execution_namespace(self, execution_id: str) -> tuple[str, str] | None:
        """(tenant, namespace) of an execution, from its indexed columns only."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(executions.c.tenant, executions.c.namespace)
                               .where(executions.c.id == execution_id)).first()  # fmt: skip
        return None if row is None else (row.tenant, row.namespace)

    def load_masks(self, execution_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(execution_masks.c.data).where(execution_masks.c.execution_id == execution_id)
            ).first()
        return None if row is None else json.loads(row.data)

    def execution_ids(self, states: Sequence[str]) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(executions.c.id).where(executions.c.state.in_(states))
                                .order_by(executions.c.start_date)).all()  # fmt: skip
        return [r.id for r in rows]

    def execution_ids_of(self, tenant: str, namespace: str, flow_id: str, states: Sequence[str]) -> set[str]:
        """Ids of a flow's executions in one of ``states``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(executions.c.id).where(
                    executions.c.tenant == tenant, executions.c.namespace == namespace,
                    executions.c.flow_id == flow_id, executions.c.state.in_(states))
            ).all()  # fmt: skip
        return {r.id for r in rows}

    def active_execution_ids(self, tenant: str, states: Sequence[str], *, namespace: str | None = None,
                             flow_id: str | None = None, ids: Iterable[str] | None = None) -> set[str]:  # fmt: skip
        """Ids of a tenant's executions in one of ``states``, within a namespace (and its children), of a flow,
        or among ``ids`` (what a kill switch's scope covers)."""
        q = sa.select(executions.c.id).where(
            executions.c.tenant == tenant, executions.c.state.in_(list(states))
        )
        if namespace is not None:
            q = q.where(sa.or_(executions.c.namespace == namespace, executions.c.namespace.startswith(namespace + ".", autoescape=True))
                        if flow_id is None else executions.c.namespace == namespace)  # fmt: skip
        if flow_id is not None:
            q = q.where(executions.c.flow_id == flow_id)
        out: set[str] = set()
        with self.engine.connect() as conn:
            if ids is None:
                return {r.id for r in conn.execute(q)}
            chunk: list[str] = []
            for ex_id in [*ids, None]:
                if ex_id is not None:
                    chunk.append(ex_id)
                if chunk and (ex_id is None or len(chunk) >= 500):
                    out |= {r.id for r in conn.execute(q.where(executions.c.id.in_(chunk)))}
                    chunk = []
        return out

    def search_executions(self, tenant: str, *, namespace: str | None = None, flow_id: str | None = None,
                          states: Sequence[str] | None = None, prefix: bool = True, page: int = 1, size: int = 25,
                          parent_id: str | None = None, start_after: float | None = None,
                          labels: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
        q = sa.select(executions.c.data).where(executions.c.tenant == tenant, executions.c.deleted.is_(False))
        if namespace:
            q = q.where(sa.or_(executions.c.namespace == namespace, executions.c.namespace.startswith(namespace + "."))
                        if prefix else executions.c.namespace == namespace)  # fmt: skip
        if flow_id:
            q = q.where(executions.c.flow_id == flow_id)
        if states:
            q = q.where(executions.c.state.in_(list(states)))
        if parent_id:
            q = q.where(executions.c.parent_id == parent_id)
        if start_after is not None:
            q = q.where(executions.c.start_date >= start_after)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(executions.c.start_date.desc())).all()
        results = [json.loads(r.data) for r in rows]
        if labels:
            results = [
                r
                for r in results
                if all({"key": k, "value": v} in (r.get("labels") or []) for k, v in labels.items())
            ]
        total = len(results)
        start = (max(page, 1) - 1) * size
        return results[start : start + size], total

    def delete_execution(self, execution_id: str) -> None:
        with self.write_lock, self.engine.begin() as conn:
            conn.execute(taskruns.delete().where(taskruns.c.execution_id == execution_id))
            conn.execute(logs.delete().where(logs.c.execution_id == execution_id))
            conn.execute(execution_masks.delete().where(execution_masks.c.execution_id == execution_id))
            conn.execute(executions.delete().where(executions.c.id == execution_id))

    # -- logs ----------------------------------------------------------------------------------------
    def add_logs(self, tenant: str, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        rows = [(tenant, r.get("namespace"), r.get("flowId"), r.get("executionId"), r.get("taskRunId"), r.get("taskId"),
                 r["timestamp"], r["level"], r["message"]) for r in records]  # fmt: skip
        with self.write_lock, self.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO logs (tenant, namespace, flow_id, execution_id, taskrun_id, task_id, timestamp, level, message)"
                + (
                    " VALUES (?,?,?,?,?,?,?,?,?)"
                    if self.url.startswith("sqlite")
                    else " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                ),
                rows,
            )

    def get_logs(self, tenant: str, execution_id: str | None = None, *, min_level: str | None = None,
                 task_id: str | None = None, after_seq: int = 0, namespace: str | None = None,
                 flow_id: str | None = None, query: str | None = None, limit: int | None = None,
                 through_seq: int | None = None, since: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Log lines in write order (``seq``), filtered; ``after_seq``/``through_seq``/``limit`` page through them."""
        q = sa.select(*_LOG_COLUMNS).where(*_log_filters(
            tenant, after_seq=after_seq, through_seq=through_seq, execution_id=execution_id, task_id=task_id,
            namespace=namespace, flow_id=flow_id, min_level=min_level, since=since))  # fmt: skip
        if query:
            q = q.where(logs.c.message.contains(query))
        q = q.order_by(logs.c.seq)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        # rows unpacked as tuples: a Row's attribute access costs ten times more, and LogShipper reads millions
        return [dict(zip(_LOG_KEYS, row, strict=True)) for row in rows]

    def last_log_seq(self, tenant: str) -> int:
        """The ``seq`` of the newest stored log line of a tenant (0 when there is none)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.max(logs.c.seq)).where(logs.c.tenant == tenant)).scalar() or 0
            )

    def delete_logs_between(self, tenant: str, after_seq: int, through_seq: int, **filters: Any) -> int:
        """Delete the log lines ``get_logs`` would return between two ``seq`` (same filters); returns how many."""
        with self.write_lock, self.engine.begin() as conn:
            where = _log_filters(tenant, after_seq=after_seq, through_seq=through_seq, **filters)
            return conn.execute(logs.delete().where(*where)).rowcount

    def delete_logs(self, tenant: str, execution_id: str) -> int:
        with self.write_lock, self.engine.begin() as conn:
            return conn.execute(
                logs.delete().where(logs.c.tenant == tenant, logs.c.execution_id == execution_id)
            ).rowcount

    # -- triggers ------------------------------------------------------------------------------------
    def get_trigger(
        self, tenant: str, namespace: str, flow_id: str, trigger_id: str
    ) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(triggers).where(
                triggers.c.tenant == tenant, triggers.c.namespace == namespace,
                triggers.c.flow_id == flow_id, triggers.c.trigger_id == trigger_id)).first()  # fmt: skip
        if row is None:
            return None
        return {**json.loads(row.data), "disabled": row.disabled, "nextDate": row.next_date}

    def put_trigger(self, tenant: str, namespace: str, flow_id: str, trigger_id: str, data: dict[str, Any],
                    next_date: float | None = None, disabled: bool | None = None) -> None:  # fmt: skip
        with self.write_lock, self.engine.begin() as conn:
            existing = conn.execute(sa.select(triggers.c.disabled).where(
                triggers.c.tenant == tenant, triggers.c.namespace == namespace,
                triggers.c.flow_id == flow_id, triggers.c.trigger_id == trigger_id)).first()  # fmt: skip
            values = {"data": dumps(data), "next_date": next_date}
            if disabled is not None:
                values["disabled"] = disabled
            if existing is None:
                conn.execute(triggers.insert().values(tenant=tenant, namespace=namespace, flow_id=flow_id,
                                                      trigger_id=trigger_id, disabled=bool(disabled), **{k: v for k, v in values.items() if k != "disabled"}))  # fmt: skip
            else:
                conn.execute(triggers.update().where(
                    triggers.c.tenant == tenant, triggers.c.namespace == namespace,
                    triggers.c.flow_id == flow_id, triggers.c.trigger_id == trigger_id).values(**values))  # fmt: skip

    def list_triggers(self, tenant: str, namespace: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(triggers).where(triggers.c.tenant == tenant)
        if namespace:
            q = q.where(
                sa.or_(triggers.c.namespace == namespace, triggers.c.namespace.startswith(namespace + "."))
            )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [{**json.loads(r.data), "namespace": r.namespace, "flowId": r.flow_id, "triggerId": r.trigger_id,
                 "disabled": r.disabled, "nextDate": r.next_date} for r in rows]  # fmt: skip

    def delete_trigger(self, tenant: str, namespace: str, flow_id: str, trigger_id: str) -> bool:
        """Forget a trigger's state (its next date, lock, backfill...); False when none was stored."""
        with self.write_lock, self.engine.begin() as conn:
            deleted = conn.execute(triggers.delete().where(
                triggers.c.tenant == tenant, triggers.c.namespace == namespace, triggers.c.flow_id == flow_id,
                triggers.c.trigger_id == trigger_id)).rowcount  # fmt: skip
        return bool(deleted)

    # -- what the scheduler and the pages read across flows and executions --------------------------------
    def flows_fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever a flow revision is saved or deleted (the count and the latest save date)."""
        with self.engine.connect() as conn:
            return tuple(conn.execute(sa.select(sa.func.count(), sa.func.max(flows.c.updated))).one())

    def latest_flow_revisions(self) -> list[Any]:
        """The latest revision of every flow of every tenant: rows of tenant, namespace, id, revision, deleted."""
        f = flows
        latest = (sa.select(f.c.tenant, f.c.namespace, f.c.id, sa.func.max(f.c.revision).label("rev"))
                  .group_by(f.c.tenant, f.c.namespace, f.c.id).subquery())  # fmt: skip
        with self.engine.connect() as conn:
            return list(conn.execute(
                sa.select(f.c.tenant, f.c.namespace, f.c.id, f.c.revision, f.c.deleted)
                .join(latest, sa.and_(f.c.tenant == latest.c.tenant, f.c.namespace == latest.c.namespace,
                                      f.c.id == latest.c.id, f.c.revision == latest.c.rev))
            ).all())  # fmt: skip

    def flow_dates(self, tenant: str) -> dict[tuple[str, str], float]:
        """When each flow's latest revision was saved, by (namespace, id)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(flows.c.namespace, flows.c.id, sa.func.max(flows.c.updated))
                                .where(flows.c.tenant == tenant).group_by(flows.c.namespace, flows.c.id)).all()  # fmt: skip
        return {(r[0], r[1]): float(r[2]) for r in rows}

    def ended_since(self, since: float) -> list[tuple[dict[str, Any], float]]:
        """Executions (their record, without task runs) that ended after ``since``, oldest end first."""
        t = executions
        q = sa.select(t.c.data, t.c.end_date).where(t.c.end_date > since).order_by(t.c.end_date)
        with self.engine.connect() as conn:
            return [(json.loads(r.data), float(r.end_date)) for r in conn.execute(q).all()]

    def last_executions(
        self, tenant: str, wanted: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The latest execution of each flow of ``wanted`` (namespace, id), in one query: id, state, start."""
        if not wanted:
            return {}
        t = executions
        namespaces = sorted({ns for ns, _ in wanted})
        latest = (sa.select(t.c.namespace, t.c.flow_id, sa.func.max(t.c.start_date).label("start"))
                  .where(t.c.tenant == tenant, t.c.deleted.is_(False), t.c.namespace.in_(namespaces))
                  .group_by(t.c.namespace, t.c.flow_id).subquery())  # fmt: skip
        query = sa.select(t.c.namespace, t.c.flow_id, t.c.id, t.c.state, t.c.start_date).join(
            latest, sa.and_(t.c.namespace == latest.c.namespace, t.c.flow_id == latest.c.flow_id,
                            t.c.start_date == latest.c.start)).where(t.c.tenant == tenant)  # fmt: skip
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {(r.namespace, r.flow_id): {"id": r.id, "state": r.state, "start": r.start_date}
                for r in rows if (r.namespace, r.flow_id) in wanted}  # fmt: skip


LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
# the API's names of the ``logs`` columns get_logs returns
_LOG_KEYS = (
    "seq",
    "tenantId",
    "namespace",
    "flowId",
    "executionId",
    "taskRunId",
    "taskId",
    "timestamp",
    "level",
    "message",
)
_LOG_COLUMNS = (logs.c.seq, logs.c.tenant, logs.c.namespace, logs.c.flow_id, logs.c.execution_id, logs.c.taskrun_id,
                logs.c.task_id, logs.c.timestamp, logs.c.level, logs.c.message)  # fmt: skip


def _log_filters(tenant: str, *, after_seq: int = 0, through_seq: int | None = None, execution_id: str | None = None,
                 task_id: str | None = None, namespace: str | None = None, flow_id: str | None = None,
                 min_level: str | None = None, since: str | None = None) -> list[Any]:  # fmt: skip
    """WHERE clauses over ``logs``; a namespace matches its children too, ``since`` is an ISO-8601 UTC time."""
    where: list[Any] = [logs.c.tenant == tenant, logs.c.seq > after_seq]
    if through_seq is not None:
        where.append(logs.c.seq <= through_seq)
    if execution_id:
        where.append(logs.c.execution_id == execution_id)
    if task_id:
        where.append(logs.c.task_id == task_id)
    if namespace:
        where.append(sa.or_(logs.c.namespace == namespace, logs.c.namespace.startswith(namespace + ".")))
    if flow_id:
        where.append(logs.c.flow_id == flow_id)
    if min_level:
        where.append(
            logs.c.level.in_(
                LOG_LEVELS[LOG_LEVELS.index(min_level) :] if min_level in LOG_LEVELS else LOG_LEVELS
            )
        )
    if since:
        where.append(logs.c.timestamp >= since)
    return where


class SqlLogs:
    """A tenant's stored log lines, as the engine's runtime offers them to tasks (LogShipper)."""

    def __init__(self, store: Store, tenant: str = "main") -> None:
        self.store = store
        self.tenant = tenant

    def page(self, after_seq: int, limit: int, **filters: Any) -> list[dict[str, Any]]:
        return self.store.get_logs(self.tenant, after_seq=after_seq, limit=limit, **filters)

    def last_seq(self) -> int:
        return self.store.last_log_seq(self.tenant)

    def delete(self, after_seq: int, through_seq: int, **filters: Any) -> int:
        return self.store.delete_logs_between(self.tenant, after_seq, through_seq, **filters)


_PING_AFTER = 1.0  # seconds a pooled connection may sit unused before it is checked on checkout


def libpq_url(store: Any) -> str:
    """The store's PostgreSQL URL for a connection of our own (LISTEN, a session lock), outside the pool."""
    return str(store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))


def _ping_when_idle(engine: sa.Engine) -> None:
    """Check a pooled connection on checkout only when it sat unused for a while: SQLAlchemy's
    ``pool_pre_ping`` pays a round trip at every checkout, a third of a worker's one-statement writes.
    A connection the server closed (a restart, an idle timeout) is found here and replaced, as before;
    one in use within the last second is taken as alive (a failure then is a store error, retried)."""

    @event.listens_for(engine, "checkin")
    def _used(dbapi_connection: Any, record: Any) -> None:
        record.info["used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get("used", 0.0) < _PING_AFTER:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()  # the ping opened a transaction: the checkout starts clean
        except Exception as exc:  # the pool discards this connection and checks out another
            raise sa.exc.DisconnectionError(str(exc)) from exc


class _NullLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()


class SqlKV:
    """The KV store over the ``kv`` table, shaped as the engine's KV interface."""

    def __init__(self, store: Store, tenant: str = "main") -> None:
        self.store = store
        self.tenant = tenant

    def get(self, namespace: str, key: str) -> Any:
        with self.store.engine.connect() as conn:
            row = conn.execute(_KV_GET, self._where(namespace, key)).first()
        if row is None or (row.expires is not None and row.expires < time.time()):
            return MISSING
        return json.loads(row.value)

    def entry(self, namespace: str, key: str) -> dict[str, Any] | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(kv).where(
                kv.c.tenant == self.tenant, kv.c.namespace == namespace, kv.c.key == key)).first()  # fmt: skip
        if row is None or (row.expires is not None and row.expires < time.time()):
            return None
        return {"key": row.key, "value": json.loads(row.value), "expires": row.expires, "updated": row.updated,
                "description": row.description}  # fmt: skip

    def put(
        self, namespace: str, key: str, value: Any, ttl: float | None = None, description: str | None = None
    ) -> None:
        kv_key(key)
        expires = time.time() + ttl if ttl else None
        row = (self.tenant, namespace, key, dumps(value), expires, time.time(), description)
        if self.store.url.startswith("sqlite"):  # kv.Set on the worker path: see Store._sqlite_transaction
            with self.store._sqlite_transaction() as cur:
                cur.execute(_SQLITE_UPSERT_KV, row)
            return
        with self.store.autocommit_cursor() as cur:
            cur.execute(_PG_UPSERT_KV, row)

    def delete(self, namespace: str, key: str) -> bool:
        with self.store.write_lock, self.store.engine.begin() as conn:
            return conn.execute(_KV_DELETE, self._where(namespace, key)).rowcount > 0

    def _where(self, namespace: str, key: str) -> dict[str, str]:
        return {"w_tenant": self.tenant, "w_namespace": namespace, "w_key": key}

    def keys(self, namespace: str) -> list[str]:
        now_ = time.time()
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(kv.c.key, kv.c.expires).where(kv.c.tenant == self.tenant, kv.c.namespace == namespace)
                                .order_by(kv.c.key)).all()  # fmt: skip
        return [r.key for r in rows if r.expires is None or r.expires >= now_]


class SqlNamespaceFiles:
    """Namespace files with revisions: every write adds a revision, a delete adds a tombstone."""

    def __init__(self, store: Store, tenant: str = "main") -> None:
        self.store = store
        self.tenant = tenant

    @staticmethod
    def clean(path: str) -> str:
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts):
            raise ValueError(f"path {path!r} leaves its namespace")
        return "/".join(parts)

    def _latest(self, conn: sa.Connection, namespace: str, path: str) -> Any:
        return conn.execute(sa.select(namespace_files).where(
            namespace_files.c.tenant == self.tenant, namespace_files.c.namespace == namespace,
            namespace_files.c.path == path).order_by(namespace_files.c.revision.desc()).limit(1)).first()  # fmt: skip

    def read(self, namespace: str, path: str, revision: int | None = None) -> bytes | None:
        path = self.clean(path)
        with self.store.engine.connect() as conn:
            if revision is None:
                row = self._latest(conn, namespace, path)
            else:
                row = conn.execute(sa.select(namespace_files).where(
                    namespace_files.c.tenant == self.tenant, namespace_files.c.namespace == namespace,
                    namespace_files.c.path == path, namespace_files.c.revision == revision)).first()  # fmt: skip
        if row is None or row.deleted:
            return None
        return bytes(row.content)

    def write(self, namespace: str, path: str, data: bytes) -> int:
        path = self.clean(path)
        with self.store.write_lock, self.store.engine.begin() as conn:
            row = self._latest(conn, namespace, path)
            revision = (row.revision + 1) if row is not None else 1
            conn.execute(namespace_files.insert().values(tenant=self.tenant, namespace=namespace, path=path,
                                                         revision=revision, content=data, deleted=False, created=time.time()))  # fmt: skip
        return revision

    def delete(self, namespace: str, path: str) -> int:
        """Delete a file, or every file under a folder; returns how many."""
        path = self.clean(path)
        targets = [p for p in self.list(namespace) if p == path or p.startswith(path + "/")]
        with self.store.write_lock, self.store.engine.begin() as conn:
            for p in targets:
                row = self._latest(conn, namespace, p)
                conn.execute(namespace_files.insert().values(tenant=self.tenant, namespace=namespace, path=p,
                                                             revision=row.revision + 1, content=None, deleted=True, created=time.time()))  # fmt: skip
        return len(targets)

    def list(self, namespace: str) -> builtins.list[str]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(namespace_files.c.path, namespace_files.c.revision, namespace_files.c.deleted)
                                .where(namespace_files.c.tenant == self.tenant, namespace_files.c.namespace == namespace)
                                .order_by(namespace_files.c.path, namespace_files.c.revision)).all()  # fmt: skip
        latest: dict[str, bool] = {}
        for r in rows:
            latest[r.path] = r.deleted
        return sorted(p for p, deleted in latest.items() if not deleted)

    def stat(self, namespace: str, path: str) -> dict[str, Any] | None:
        path = self.clean(path)
        with self.store.engine.connect() as conn:
            row = self._latest(conn, namespace, path)
        if row is None or row.deleted:
            return None
        return {
            "path": path,
            "revision": row.revision,
            "size": len(row.content or b""),
            "created": row.created,
        }

    def revisions(self, namespace: str, path: str) -> builtins.list[int]:
        path = self.clean(path)
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(namespace_files.c.revision).where(
                namespace_files.c.tenant == self.tenant, namespace_files.c.namespace == namespace,
                namespace_files.c.path == path, namespace_files.c.deleted.is_(False)).order_by(namespace_files.c.revision)).all()  # fmt: skip
        return [r.revision for r in rows]
