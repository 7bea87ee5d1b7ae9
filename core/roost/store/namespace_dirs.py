"""Empty namespace folders: files imply their folders; a folder created empty is remembered here."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from roost.store.tables import namespace_dirs as t


class SqlNamespaceDirs:
    """The ``namespace_directories`` table: folders of namespace files created empty (paths without ``/``
    at either end)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def namespaces(self, tenant: str) -> set[str]:
        """The namespaces holding a remembered folder."""
        with self.store.engine.connect() as conn:
            return {
                r[0] for r in conn.execute(sa.select(t.c.namespace).where(t.c.tenant == tenant).distinct())
            }

    def paths(self, tenant: str, namespace: str) -> list[str]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.path).where(t.c.tenant == tenant, t.c.namespace == namespace)
            ).all()
        return [r.path for r in rows]

    def add(self, tenant: str, namespace: str, path: str) -> None:
        with self.store.write_lock, self.store.engine.begin() as conn:
            self._put(conn, tenant, namespace, path)

    def rename(self, tenant: str, namespace: str, moves: list[tuple[str, str]]) -> None:
        """Move folders: each ``(old, new)`` path, in one transaction."""
        with self.store.write_lock, self.store.engine.begin() as conn:
            for old, new in moves:
                conn.execute(
                    t.delete().where(t.c.tenant == tenant, t.c.namespace == namespace, t.c.path == old)
                )
                self._put(conn, tenant, namespace, new)

    def delete_tree(self, tenant: str, namespace: str, path: str) -> int:
        """Forget ``path`` and the folders under it; returns how many were remembered."""
        under = sa.or_(t.c.path == path, t.c.path.startswith(path + "/", autoescape=True))
        with self.store.write_lock, self.store.engine.begin() as conn:
            return int(
                conn.execute(
                    t.delete().where(t.c.tenant == tenant, t.c.namespace == namespace, under)
                ).rowcount
            )

    @staticmethod
    def _put(conn: sa.Connection, tenant: str, namespace: str, path: str) -> None:
        conn.execute(t.delete().where(t.c.tenant == tenant, t.c.namespace == namespace, t.c.path == path))
        conn.execute(t.insert().values(tenant=tenant, namespace=namespace, path=path, created=time.time()))
