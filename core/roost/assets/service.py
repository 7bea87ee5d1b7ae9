"""The asset store: assets, lineage (one record per emitted bundle), lifecycle events, queries.

Identity is (namespace, id, type). Recording a bundle upserts its outputs
(CREATED or UPDATED), marks its inputs USED (registering unknown ones), and
keeps the bundle as one lineage record, so edges only run from a bundle's
inputs to that same bundle's outputs. Listeners (the EventTrigger) hear every
lifecycle event.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from roost.assets.model import Asset, AssetBundle, asset_type_spellings, canonical_asset_type
from roost.store.db import Store, asset_events, asset_lineage, assets, dumps

Listener = Callable[[str, dict[str, Any]], None]  # (tenant, event)

OPERATORS = ("EQUAL_TO", "NOT_EQUAL_TO", "IN", "NOT_IN", "CONTAINS", "STARTS_WITH", "ENDS_WITH", "REGEX",
             "GREATER_THAN", "LESS_THAN", "IS_NULL", "IS_NOT_NULL")  # fmt: skip


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def matches_query(metadata: dict[str, Any], query: Iterable[Any]) -> bool:
    """Kestra's metadataQuery: every condition ``{field, type, value}`` must hold."""
    for cond in query or ():
        c = cond if isinstance(cond, dict) else cond.model_dump()
        field, op, expected = c["field"], str(c.get("type", "EQUAL_TO")).upper(), c.get("value")
        present = field in metadata
        actual = metadata.get(field)
        text = "" if actual is None else str(actual)
        if op == "EQUAL_TO":
            ok = present and text == str(expected)
        elif op == "NOT_EQUAL_TO":
            ok = not present or text != str(expected)
        elif op in ("IN", "NOT_IN"):
            values = expected if isinstance(expected, list) else [v.strip() for v in str(expected).split(",")]
            inside = present and text in {str(v) for v in values}
            ok = inside if op == "IN" else not inside
        elif op == "CONTAINS":
            ok = present and (
                str(expected) in actual if isinstance(actual, list | dict) else str(expected) in text
            )
        elif op == "STARTS_WITH":
            ok = present and text.startswith(str(expected))
        elif op == "ENDS_WITH":
            ok = present and text.endswith(str(expected))
        elif op == "REGEX":
            ok = present and re.search(str(expected), text) is not None
        elif op in ("GREATER_THAN", "LESS_THAN"):
            try:
                a, b = float(text), float(expected)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                a, b = text, str(expected)  # type: ignore[assignment]
            ok = present and (a > b if op == "GREATER_THAN" else a < b)
        elif op == "IS_NULL":
            ok = actual is None
        elif op == "IS_NOT_NULL":
            ok = actual is not None
        else:
            raise ValueError(f"unknown metadataQuery type {op!r}; known: {', '.join(OPERATORS)}")
        if not ok:
            return False
    return True


class AssetService:
    """Assets of every tenant in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------------------
    @staticmethod
    def _row(r: Any) -> dict[str, Any]:
        return {
            "namespace": r.namespace, "id": r.id, "type": canonical_asset_type(r.type), "displayName": r.display_name,
            "description": r.description, "metadata": json.loads(r.metadata), "created": iso(r.created),
            "updated": iso(r.updated), "deleted": bool(r.deleted), "_updated": r.updated,
        }  # fmt: skip

    def search(self, tenant: str, *, namespace: str | None = None, types: Iterable[str] | None = None,
               metadata_query: Iterable[Any] | None = None, asset_id: str | None = None, prefix: bool = True,
               include_deleted: bool = False, q: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        query = sa.select(assets).where(assets.c.tenant == tenant)
        if not include_deleted:
            query = query.where(assets.c.deleted.is_(False))
        if namespace:
            query = query.where(sa.or_(assets.c.namespace == namespace, assets.c.namespace.startswith(namespace + "."))
                                if prefix else assets.c.namespace == namespace)  # fmt: skip
        if types:
            query = query.where(assets.c.type.in_([t for ty in types for t in asset_type_spellings(ty)]))
        if asset_id:
            query = query.where(assets.c.id == asset_id)
        with self.store.engine.connect() as conn:
            rows = conn.execute(query.order_by(assets.c.namespace, assets.c.id)).all()
        out = [self._row(r) for r in rows]
        if metadata_query:
            out = [a for a in out if matches_query(a["metadata"], metadata_query)]
        if q:
            out = [
                a
                for a in out
                if q.lower() in a["id"].lower() or q.lower() in (a["displayName"] or "").lower()
            ]
        return out

    def get(self, tenant: str, asset_id: str, namespace: str | None = None, type_: str | None = None,
            include_deleted: bool = False) -> dict[str, Any] | None:  # fmt: skip
        found = self.search(tenant, namespace=namespace, asset_id=asset_id, prefix=False,
                            types=[type_] if type_ else None, include_deleted=include_deleted)  # fmt: skip
        if not found:
            return None
        return max(found, key=lambda a: a["_updated"])

    # -- writing ---------------------------------------------------------------------------------------
    def upsert(
        self, tenant: str, asset: Asset, default_namespace: str, source: dict[str, Any] | None = None
    ) -> str:
        """Create or update an asset; returns the event (CREATED or UPDATED)."""
        ns = asset.namespace or default_namespace
        now = time.time()
        with self._lock, self.store.write_lock, self.store.engine.begin() as conn:
            key = (
                assets.c.tenant == tenant,
                assets.c.namespace == ns,
                assets.c.id == asset.id,
                assets.c.type == asset.type,
            )
            row = conn.execute(sa.select(assets).where(*key)).first()
            values = {"display_name": asset.display_name, "description": asset.description,
                      "metadata": dumps(asset.metadata), "updated": now, "deleted": False}  # fmt: skip
            if row is None:
                conn.execute(assets.insert().values(tenant=tenant, namespace=ns, id=asset.id, type=asset.type,
                                                    created=now, **values))  # fmt: skip
                event = "CREATED"
            else:
                if row.deleted:
                    values["created"] = now
                else:
                    merged = {**json.loads(row.metadata), **asset.metadata}
                    values["metadata"] = dumps(merged)
                    values["display_name"] = asset.display_name or row.display_name
                    values["description"] = asset.description or row.description
                conn.execute(assets.update().where(*key).values(**values))
                event = "CREATED" if row.deleted else "UPDATED"
            self._event(conn, tenant, ns, asset.id, asset.type, event, now, source)
        self._notify(tenant, ns, asset.id, asset.type, event, now, source)
        return event

    def delete(self, tenant: str, asset_id: str, namespace: str | None = None, type_: str | None = None,
               source: dict[str, Any] | None = None) -> int:  # fmt: skip
        """Soft-delete matching assets (their history stays); returns how many."""
        found = self.search(
            tenant, namespace=namespace, asset_id=asset_id, prefix=False, types=[type_] if type_ else None
        )
        now = time.time()
        with self._lock, self.store.write_lock, self.store.engine.begin() as conn:
            for a in found:
                conn.execute(assets.update().where(
                    assets.c.tenant == tenant, assets.c.namespace == a["namespace"], assets.c.id == a["id"],
                    assets.c.type == a["type"]).values(deleted=True, updated=now))  # fmt: skip
                self._event(conn, tenant, a["namespace"], a["id"], a["type"], "DELETED", now, source)
        for a in found:
            self._notify(tenant, a["namespace"], a["id"], a["type"], "DELETED", now, source, a["metadata"])
        return len(found)

    def used(
        self, tenant: str, asset: Asset, default_namespace: str, source: dict[str, Any] | None = None
    ) -> None:
        ns = asset.namespace or default_namespace
        if self.get(tenant, asset.id, ns, asset.type) is None:
            self.upsert(tenant, asset, default_namespace, source)
        now = time.time()
        with self.store.write_lock, self.store.engine.begin() as conn:
            self._event(conn, tenant, ns, asset.id, asset.type, "USED", now, source)
        self._notify(tenant, ns, asset.id, asset.type, "USED", now, source)

    def record(self, tenant: str, bundles: Iterable[AssetBundle], source: dict[str, Any]) -> None:
        """Record what one task run emitted: each bundle its own lineage record."""
        default_ns = source.get("namespace") or "default"
        for bundle in bundles:
            for a in bundle.inputs:
                self.used(tenant, a, default_ns, source)
            for a in bundle.outputs:
                self.upsert(tenant, a, default_ns, source)
            for a in bundle.deleted:
                self.delete(tenant, a.id, a.namespace or default_ns, a.type, source)
            ident = lambda a: {"id": a.id, "type": a.type, "namespace": a.namespace or default_ns}  # noqa: E731
            with self.store.write_lock, self.store.engine.begin() as conn:
                conn.execute(asset_lineage.insert().values(
                    tenant=tenant, namespace=source.get("namespace"), flow_id=source.get("flowId"),
                    flow_revision=source.get("flowRevision"), execution_id=source.get("executionId"),
                    task_id=source.get("taskId"), taskrun_id=source.get("taskRunId"),
                    inputs=dumps([ident(a) for a in bundle.inputs]), outputs=dumps([ident(a) for a in bundle.outputs]),
                    created=time.time()))  # fmt: skip

    def _event(self, conn: sa.Connection, tenant: str, ns: str, asset_id: str, type_: str, event: str, when: float,
               source: dict[str, Any] | None) -> None:  # fmt: skip
        src = source or {}
        conn.execute(asset_events.insert().values(tenant=tenant, namespace=ns, asset_id=asset_id, type=type_, event=event,
                                                  time=when, execution_id=src.get("executionId"),
                                                  flow_id=src.get("flowId"), task_id=src.get("taskId")))  # fmt: skip

    def _notify(self, tenant: str, ns: str, asset_id: str, type_: str, event: str, when: float,
                source: dict[str, Any] | None, metadata: dict[str, Any] | None = None) -> None:  # fmt: skip
        if not self.listeners:
            return
        if metadata is None:
            current = self.get(tenant, asset_id, ns, type_, include_deleted=True)
            metadata = current["metadata"] if current else {}
        payload = {"id": asset_id, "type": type_, "namespace": ns, "event": event, "eventTime": iso(when),
                   "metadata": metadata, "source": source or {}}  # fmt: skip
        for listener in list(self.listeners):
            listener(tenant, payload)

    # -- history ---------------------------------------------------------------------------------------
    def events(
        self, tenant: str, asset_id: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        q = sa.select(asset_events).where(asset_events.c.tenant == tenant)
        if asset_id:
            q = q.where(asset_events.c.asset_id == asset_id)
        if namespace:
            q = q.where(asset_events.c.namespace == namespace)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.order_by(asset_events.c.seq)).all()
        return [{"id": r.asset_id, "namespace": r.namespace, "type": r.type, "event": r.event, "eventTime": iso(r.time),
                 "executionId": r.execution_id, "flowId": r.flow_id, "taskId": r.task_id} for r in rows]  # fmt: skip

    def lineage_events(
        self, tenant: str, asset_id: str | None = None, execution_id: str | None = None
    ) -> list[dict[str, Any]]:
        q = sa.select(asset_lineage).where(asset_lineage.c.tenant == tenant)
        if execution_id:
            q = q.where(asset_lineage.c.execution_id == execution_id)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.order_by(asset_lineage.c.seq)).all()
        out = []
        for r in rows:
            ins, outs = json.loads(r.inputs), json.loads(r.outputs)
            if asset_id and not any(a["id"] == asset_id for a in [*ins, *outs]):
                continue
            out.append({"uid": str(r.seq), "namespace": r.namespace, "flowId": r.flow_id, "flowRevision": r.flow_revision,
                        "executionId": r.execution_id, "taskId": r.task_id, "taskRunId": r.taskrun_id,
                        "inputs": ins, "outputs": outs, "created": iso(r.created)})  # fmt: skip
        return out

    def lineage(self, tenant: str, asset_id: str) -> dict[str, Any]:
        """The dependency graph around an asset: upstream and downstream, from the recorded bundles."""
        records = self.lineage_events(tenant)
        edges: set[tuple[str, str]] = set()
        nodes: dict[str, dict[str, Any]] = {}

        def uid(a: dict[str, Any]) -> str:
            return f"{a['namespace']}/{a['id']}/{a['type']}"

        for rec in records:
            for i in rec["inputs"]:
                for o in rec["outputs"]:
                    edges.add((uid(i), uid(o)))
                    nodes[uid(i)], nodes[uid(o)] = i, o
        wanted = {u for u, a in nodes.items() if a["id"] == asset_id}
        keep = set(wanted)
        frontier = list(wanted)
        while frontier:  # walk both directions
            cur = frontier.pop()
            for s, t in edges:
                for nxt in ((t,) if s == cur else ()) + ((s,) if t == cur else ()):
                    if nxt not in keep:
                        keep.add(nxt)
                        frontier.append(nxt)
        if not keep:
            current = self.get(tenant, asset_id)
            if current:
                nodes[uid(current)] = current
                keep.add(uid(current))
        return {
            "nodes": [
                {"uid": u, "namespace": nodes[u]["namespace"], "id": nodes[u]["id"], "type": nodes[u]["type"]}
                for u in sorted(keep)
            ],
            "edges": [
                {"source": s, "target": t, "relation": "DERIVED_FROM"}
                for s, t in sorted(edges)
                if s in keep and t in keep
            ],
        }


def public(asset: dict[str, Any]) -> dict[str, Any]:
    """An asset as the API returns it."""
    return {k: v for k, v in asset.items() if not k.startswith("_")}
