"""The audit log in the store: append and read, nothing else.

Rows are never updated or deleted: this class has no method for it, and the database refuses both
(triggers created by the migration), so even code holding the engine cannot rewrite history. Each
row is Kestra's ``AuditLog`` (``id``, ``tenantId``, ``type``, ``detail``, ``date``, ``userId``,
``ipAddress``) plus the resource's state before and after the change (``before``/``after``), which the
diff route returns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from roost.store.db import audit_logs, dumps

SYSTEM = "system"  # the user id of changes the server makes itself (a kill switch archived at its end)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SqlAuditLog:
    def __init__(self, store: Any) -> None:
        self.store = store

    def append(self, *, type: str, resource_type: str, detail: dict[str, Any], user_id: str, tenant: str | None,
               ip: str | None = None, before: Any = None, after: Any = None, date: float | None = None) -> dict[str, Any]:  # fmt: skip
        """Write one entry; returns it as the API shows it. ``before``/``after`` are already masked."""
        from roost.engine.model import new_id

        entry_id = new_id()
        date = time.time() if date is None else date
        detail = {"type": resource_type.title().replace("_", ""), "resourceType": resource_type, **detail}
        row = {
            "id": entry_id, "tenant": tenant, "date": date, "type": type, "resource_type": resource_type,
            "resource_id": _text(detail.get("id")), "namespace": _text(detail.get("namespace")),
            "flow_id": _text(detail.get("flowId")), "execution_id": _text(detail.get("executionId")),
            "user_id": user_id[:256], "ip": (ip or None) and ip[:64], "detail": dumps(detail),
            "before": None if before is None else dumps(before), "after": None if after is None else dumps(after),
        }  # fmt: skip
        with self.store.write_lock, self.store.engine.begin() as conn:
            conn.execute(audit_logs.insert().values(**row))
        return _entry(row)

    def get(self, entry_id: str) -> dict[str, Any] | None:
        """One entry with its ``before``/``after`` states (decoded)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(audit_logs).where(audit_logs.c.id == entry_id)).first()
        if row is None:
            return None
        out = _entry(row._mapping)
        out["before"] = None if row.before is None else json.loads(row.before)
        out["after"] = None if row.after is None else json.loads(row.after)
        return out

    def search(self, *, tenant: str | None = None, all_tenants: bool = False, q: str | None = None,
               namespace: str | None = None, flow_id: str | None = None, execution_id: str | None = None,
               user_id: str | None = None, resource_id: str | None = None, resources: Sequence[str] | None = None,
               types: Sequence[str] | None = None, start: float | None = None, end: float | None = None,
               details: dict[str, str] | None = None, within: Sequence[str] | None = None, page: int = 1,
               size: int = 10, ascending: bool = False) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
        """Entries of ``tenant`` (instance-level ones too with ``all_tenants``), newest first, and the total.

        ``namespace`` matches the namespace and its children; ``within``, when given, keeps only entries
        in one of those namespaces (and children): what a principal bound to some namespaces may read.
        """
        c = audit_logs.c
        conds: list[Any] = []
        if not all_tenants:
            conds.append(c.tenant == tenant)
        if namespace:
            conds.append(_under(c.namespace, namespace))
        if within is not None:
            conds.append(sa.or_(*(_under(c.namespace, ns) for ns in within)) if within else sa.false())
        for column, value in ((c.flow_id, flow_id), (c.execution_id, execution_id), (c.user_id, user_id),
                              (c.resource_id, resource_id)):  # fmt: skip
            if value:
                conds.append(column == value)
        if resources:
            conds.append(c.resource_type.in_(list(resources)))
        if types:
            conds.append(c.type.in_(list(types)))
        if start is not None:
            conds.append(c.date >= start)
        if end is not None:
            conds.append(c.date <= end)
        if q:
            conds.append(
                sa.or_(c.detail.contains(q, autoescape=True), c.user_id.contains(q, autoescape=True))
            )
        for key, value in (details or {}).items():  # detail JSON is written compactly: "key":value
            conds.append(c.detail.contains(f"{json.dumps(key)}:{json.dumps(value)}", autoescape=True))
        where = sa.and_(sa.true(), *conds)
        order = c.seq.asc() if ascending else c.seq.desc()
        page, size = max(page, 1), max(size, 1)
        with self.store.engine.connect() as conn:
            total = int(
                conn.execute(sa.select(sa.func.count()).select_from(audit_logs).where(where)).scalar() or 0
            )
            rows = conn.execute(sa.select(audit_logs).where(where).order_by(order)
                                .limit(size).offset((page - 1) * size)).all()  # fmt: skip
        return [_entry(r._mapping) for r in rows], total

    def history(self, tenant: str | None, resource_type: str | None, resource_id: str, limit: int = 1000) -> list[dict[str, Any]]:  # fmt: skip
        """Entries about one resource (its ``detail.id``), newest first."""
        c = audit_logs.c
        q = sa.select(audit_logs).where(c.tenant == tenant, c.resource_id == resource_id)
        if resource_type:
            q = q.where(c.resource_type == resource_type)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.order_by(c.seq.desc()).limit(limit)).all()
        return [_entry(r._mapping) for r in rows]


def _under(column: Any, namespace: str) -> Any:
    return sa.or_(column == namespace, column.startswith(namespace + ".", autoescape=True))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:1024]


def _entry(row: Any) -> dict[str, Any]:
    """A row as Kestra's ``AuditLog``."""
    out: dict[str, Any] = {
        "id": row["id"], "tenantId": row["tenant"], "type": row["type"], "detail": json.loads(row["detail"]),
        "date": _iso(row["date"]), "userId": row["user_id"],
    }  # fmt: skip
    if row["ip"]:
        out["ipAddress"] = row["ip"]
    return out


__all__ = ["SYSTEM", "SqlAuditLog"]
