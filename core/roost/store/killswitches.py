"""Kill switches in the store: rows of ``kill_switches``, and the version counter other processes poll.

Every write bumps the ``store_versions`` row of ``kill_switches`` in the same transaction, so a process
learns that something changed with one primary-key read (:meth:`SqlKillSwitches.version`) and reloads
the (few) current switches only then. Deletion is soft: a deleted switch stays listed, archived.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from roost.store.db import dumps, kill_switches, store_versions

FIELDS = ("name", "tenant", "namespace", "flow_id", "execution_ids", "type", "start_date", "end_date",
          "description", "enabled")  # fmt: skip


class SqlKillSwitches:
    def __init__(self, store: Any) -> None:
        self.store = store

    def version(self) -> int:
        """The counter bumped by every write (create, update, delete, archive)."""
        with self.store.engine.connect() as conn:
            value = conn.execute(
                sa.select(store_versions.c.version).where(store_versions.c.name == "kill_switches")
            ).scalar()
        return int(value or 0)

    def _bump(self, conn: sa.Connection) -> int:
        conn.execute(store_versions.update().where(store_versions.c.name == "kill_switches")
                     .values(version=store_versions.c.version + 1))  # fmt: skip
        return int(conn.execute(sa.select(store_versions.c.version)
                                .where(store_versions.c.name == "kill_switches")).scalar_one())  # fmt: skip

    def create(self, switch_id: str, values: dict[str, Any], by: str | None) -> dict[str, Any]:
        now = time.time()
        row = {k: values.get(k) for k in FIELDS}
        row["execution_ids"] = dumps(sorted(values["execution_ids"])) if values.get("execution_ids") else None
        with self.store.write_lock, self.store.engine.begin() as conn:
            version = self._bump(conn)
            conn.execute(kill_switches.insert().values(id=switch_id, deleted=False, archived=None, created=now,
                                                       created_by=by, updated=now, updated_by=by, version=version, **row))  # fmt: skip
        found = self.get(switch_id)
        assert found is not None
        return found

    def update(self, switch_id: str, values: dict[str, Any], by: str | None) -> dict[str, Any] | None:
        """Replace a switch's fields; None when it does not exist or is archived (nothing is written)."""
        row = {k: values.get(k) for k in FIELDS}
        row["execution_ids"] = dumps(sorted(values["execution_ids"])) if values.get("execution_ids") else None
        with self.store.write_lock, self.store.engine.begin() as conn:
            version = self._bump(conn)
            done = conn.execute(kill_switches.update()
                                .where(kill_switches.c.id == switch_id, kill_switches.c.archived.is_(None))
                                .values(updated=time.time(), updated_by=by, version=version, **row)).rowcount  # fmt: skip
        return self.get(switch_id) if done else None

    def delete(self, switch_id: str, by: str | None) -> bool:
        """Soft delete: the switch stops acting and stays listed, archived. False if absent or already deleted."""
        now = time.time()
        with self.store.write_lock, self.store.engine.begin() as conn:
            version = self._bump(conn)
            done = conn.execute(
                kill_switches.update()
                .where(kill_switches.c.id == switch_id, kill_switches.c.deleted.is_(False))
                .values(deleted=True, archived=sa.func.coalesce(kill_switches.c.archived, now), updated=now,
                        updated_by=by, version=version)
            ).rowcount  # fmt: skip
        return bool(done)

    def archive(self, switch_id: str, at: float) -> bool:
        """Mark a switch whose end passed as archived; True for the one caller that did it."""
        with self.store.write_lock, self.store.engine.begin() as conn:
            version = self._bump(conn)
            done = conn.execute(kill_switches.update()
                                .where(kill_switches.c.id == switch_id, kill_switches.c.archived.is_(None))
                                .values(archived=at, version=version)).rowcount  # fmt: skip
        return bool(done)

    def get(self, switch_id: str) -> dict[str, Any] | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(kill_switches).where(kill_switches.c.id == switch_id)).first()
        return None if row is None else _row(row)

    def list(self, *, current_only: bool = False) -> list[dict[str, Any]]:
        """Every switch, newest first; ``current_only``: those not archived (what the engine evaluates)."""
        q = sa.select(kill_switches)
        if current_only:
            q = q.where(kill_switches.c.archived.is_(None))
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.order_by(kill_switches.c.created.desc())).all()
        return [_row(r) for r in rows]


def _row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["execution_ids"] = json.loads(out["execution_ids"]) if out.get("execution_ids") else []
    return out


__all__ = ["SqlKillSwitches"]
