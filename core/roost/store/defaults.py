"""Versioned plugin defaults: every change of a scope's document is a new revision in the store.

A scope is the instance (tenant ``""``, namespace ``""``) or one namespace of one tenant. The
engine asks :class:`StoredDefaults` for the defaults of a flow's namespace (instance, then each
parent namespace, then the namespace, as the folder did); it answers from a cache that any save
through this object clears at once, and that other processes' saves clear within ``ttl`` seconds
(a cheap look at the table's latest change). Listeners hear every change, so the engine forgets
flows it parsed with the old defaults.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from roost.flow.model import PluginDefault
from roost.plugin_defaults import INSTANCE, DefaultsInvalid, parse_defaults, scope_label, scope_of_file
from roost.store.db import plugin_defaults as table

log = logging.getLogger("roost.plugin_defaults")
INSTANCE_TENANT = ""  # instance-wide defaults belong to no tenant


@dataclass(frozen=True)
class Revision:
    revision: int
    source: str
    origin: str
    author: str | None
    created: float

    def json(self, *, with_source: bool = False) -> dict[str, Any]:
        from datetime import UTC, datetime

        out: dict[str, Any] = {"revision": self.revision, "origin": self.origin, "author": self.author,
                               "created": datetime.fromtimestamp(self.created, UTC).isoformat().replace("+00:00", "Z")}  # fmt: skip
        if with_source:
            out["source"] = self.source
        return out


def _key(tenant: str, namespace: str) -> tuple[str, str]:
    return (INSTANCE_TENANT if namespace == INSTANCE else tenant, namespace)


class StoredDefaults:
    """The plugin defaults of a store: revisions per scope, and the merged list the engine validates with.

    Callable as ``defaults(tenant, namespace)``, the shape :class:`roost.engine.engine.Engine` takes."""

    def __init__(self, store: Any, plugins: Any = None, *, ttl: float = 1.0) -> None:
        self.store = store
        self.plugins = plugins
        self.ttl = ttl
        self.listeners: list[Callable[[], None]] = []
        self._parsed: dict[tuple[str, str], list[PluginDefault]] = {}
        self._stamp: tuple[Any, ...] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------------------
    def __call__(self, tenant: str, namespace: str | None) -> list[PluginDefault]:
        self._refresh()
        out = list(self._scope(tenant, INSTANCE))
        if namespace:
            parts = namespace.split(".")
            for i in range(1, len(parts) + 1):
                out += self._scope(tenant, ".".join(parts[:i]))
        return out

    def inherited(self, tenant: str, namespace: str) -> list[tuple[str, PluginDefault]]:
        """(scope, default) of what a namespace inherits: the instance's and its parents', not its own."""
        self._refresh()
        out = [(INSTANCE, d) for d in self._scope(tenant, INSTANCE)]
        parts = namespace.split(".")
        for i in range(1, len(parts)):
            scope = ".".join(parts[:i])
            out += [(scope, d) for d in self._scope(tenant, scope)]
        return out

    def _scope(self, tenant: str, namespace: str) -> list[PluginDefault]:
        key = _key(tenant, namespace)
        found = self._parsed.get(key)
        if found is None:
            latest = self.latest(tenant, namespace)
            found = []
            if latest is not None:
                try:  # stored documents were validated when saved; a type since uninstalled is not an error
                    found = parse_defaults(latest.source, None, scope_label(namespace))
                except DefaultsInvalid as exc:
                    log.error("%s", exc)
            with self._lock:
                self._parsed[key] = found
        return found

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.ttl:
            return
        self._checked = now
        with self.store.engine.connect() as conn:
            stamp = tuple(conn.execute(sa.select(sa.func.count(), sa.func.max(table.c.created))).one())
        if stamp != self._stamp:
            first = self._stamp is None
            self._stamp = stamp
            if not first:
                self._changed()

    def _changed(self) -> None:
        with self._lock:
            self._parsed.clear()
        for listener in self.listeners:
            listener()

    def latest(self, tenant: str, namespace: str) -> Revision | None:
        t, ns = _key(tenant, namespace)
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.tenant == t, table.c.namespace == ns)
                               .order_by(table.c.revision.desc()).limit(1)).first()  # fmt: skip
        return _revision(row) if row is not None else None

    def get(self, tenant: str, namespace: str, revision: int) -> Revision | None:
        t, ns = _key(tenant, namespace)
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.tenant == t, table.c.namespace == ns,
                                                      table.c.revision == revision)).first()  # fmt: skip
        return _revision(row) if row is not None else None

    def revisions(self, tenant: str, namespace: str) -> list[Revision]:
        """Every revision of a scope, oldest first."""
        t, ns = _key(tenant, namespace)
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(table).where(table.c.tenant == t, table.c.namespace == ns)
                                .order_by(table.c.revision)).all()  # fmt: skip
        return [_revision(r) for r in rows]

    def scopes(self, tenant: str) -> list[str]:
        """Namespaces of a tenant that have defaults (the instance's scope first when it has some)."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.tenant, table.c.namespace).where(
                table.c.tenant.in_([tenant, INSTANCE_TENANT])).distinct()).all()  # fmt: skip
        names = {r.namespace for r in rows if (r.tenant == INSTANCE_TENANT) == (r.namespace == INSTANCE)}
        return sorted(names)

    def attach(self, engine: Any, *, folder: Path | None, tenants: list[str]) -> None:
        """Serve ``engine``: validate with its plugins, make it forget flows parsed with old defaults on
        every change, and import ``folder`` (the ``ROOST_PLUGIN_DEFAULTS`` files) once."""
        self.plugins = engine.plugins
        self.listeners.append(engine.forget_parsed_flows)
        if folder is not None:
            for tenant, scope, rev in self.import_folder(folder, tenants):
                log.info("plugin defaults of the %s%s imported from %s as revision %d", scope_label(scope),
                         f" (tenant {tenant})" if tenant else "", folder, rev)  # fmt: skip

    # -- writing ---------------------------------------------------------------------------------------
    def validate(self, source: str, namespace: str) -> list[PluginDefault]:
        return parse_defaults(source, self.plugins, scope_label(namespace))

    def save(self, tenant: str, namespace: str, source: str, *, origin: str, author: str | None = None,
             validate: bool = True) -> tuple[Revision, bool]:  # fmt: skip
        """Store ``source`` as the scope's next revision, unless it equals the latest; returns the
        latest revision and whether it is new. Raises :class:`DefaultsInvalid` (nothing stored)."""
        if validate:
            self.validate(source, namespace)
        t, ns = _key(tenant, namespace)
        for attempt in range(3):
            try:
                with self.store.write_lock, self.store.engine.begin() as conn:
                    row = conn.execute(sa.select(table).where(table.c.tenant == t, table.c.namespace == ns)
                                       .order_by(table.c.revision.desc()).limit(1)).first()  # fmt: skip
                    if row is not None and row.source == source:
                        return _revision(row), False
                    rev = Revision((row.revision if row is not None else 0) + 1, source, origin[:255],
                                   (author or None) and author[:255], time.time())  # fmt: skip
                    conn.execute(table.insert().values(tenant=t, namespace=ns, revision=rev.revision, source=source,
                                                       origin=rev.origin, author=rev.author, created=rev.created))  # fmt: skip
                break
            except sa.exc.IntegrityError:  # another process took that revision number: take the next
                if attempt == 2:
                    raise
        self._checked = 0.0
        self._changed()
        return rev, True

    def import_folder(self, folder: Path, tenants: list[str]) -> list[tuple[str, str, int]]:
        """Import the folder's files as revisions where they differ from the latest: ``instance.yaml``
        into the instance, ``<namespace>.yaml`` into that namespace of each of ``tenants``. An invalid
        file is reported and skipped. Returns (tenant, scope, revision) of every new revision."""
        added: list[tuple[str, str, int]] = []
        if not folder.is_dir():
            return added
        for path in sorted(folder.iterdir()):
            scope = scope_of_file(path)
            if scope is None or not path.is_file():
                continue
            try:
                source = path.read_text()
                self.validate(source, scope)
            except (OSError, UnicodeDecodeError, DefaultsInvalid) as exc:
                log.error("plugin defaults file %s not imported: %s", path, exc)
                continue
            for tenant in [INSTANCE_TENANT] if scope == INSTANCE else tenants:
                rev, new = self.save(tenant, scope, source, origin=f"file:{path.name}", validate=False)
                if new:
                    added.append((tenant, scope, rev.revision))
        return added


def _revision(row: Any) -> Revision:
    return Revision(int(row.revision), row.source, row.origin, row.author, float(row.created))
