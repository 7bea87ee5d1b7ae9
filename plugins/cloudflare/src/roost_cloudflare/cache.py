"""Cache purge."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from roost import Dynamic, RunContext, TaskError

from roost_cloudflare.base import Output, ZoneTask

PURGE_CHUNK = 30
"""Items per purge request: the limit every Cloudflare plan accepts."""


class Purge(ZoneTask, type="io.kestra.plugin.cloudflare.cache.Purge"):
    """Purge Cloudflare's cache for a zone: everything, or by URL, cache tag, host or prefix.

    ``POST /zones/{zone_id}/purge_cache``. Each kind of target is sent in its own requests of
    at most 30 items (the limit of every plan); ``purgeAll`` sends ``purge_everything``.
    """

    purge_all: Dynamic[bool] = False
    """Purge every cached file of the zone (``purge_everything``); the lists below are then ignored."""
    files: Dynamic[list[str]] | None = None
    """URLs to purge, such as ``https://example.com/app.js``."""
    tags: Dynamic[list[str]] | None = None
    """Cache tags to purge (``Cache-Tag`` response header values)."""
    hosts: Dynamic[list[str]] | None = None
    """Host names whose cached files are purged."""
    prefixes: Dynamic[list[str]] | None = None
    """URL prefixes to purge, such as ``www.example.com/assets``."""

    class Out(Output):
        request_id: str | None = None
        """Identifier of the (first) purge request Cloudflare returned."""
        request_ids: list[str] = Field(default_factory=list)
        """Identifiers of every purge request sent."""
        purged: dict[str, int] = Field(default_factory=dict)
        """How many items of each kind were purged (``everything`` is 1 for a full purge)."""

    def run(self, ctx: RunContext) -> Purge.Out:
        kinds = {
            "files": self.files or [],
            "tags": self.tags or [],
            "hosts": self.hosts or [],
            "prefixes": self.prefixes or [],
        }
        if not self.purge_all and not any(kinds.values()):
            raise TaskError(
                "nothing to purge: set purgeAll: true, or non-empty files, tags, hosts or prefixes"
            )
        bodies: list[tuple[str, int, dict[str, Any]]] = []
        if self.purge_all:
            if any(kinds.values()):
                ctx.logger.warning("purgeAll is true: files, tags, hosts and prefixes are ignored")
            bodies.append(("everything", 1, {"purge_everything": True}))
        else:
            for kind, items in kinds.items():
                for start in range(0, len(items), PURGE_CHUNK):
                    chunk = items[start : start + PURGE_CHUNK]
                    bodies.append((kind, len(chunk), {kind: chunk}))
        ids: list[str] = []
        purged: dict[str, int] = {}
        with self.client(ctx) as cf:
            zone_id, _ = self.resolve_zone(cf)
            for kind, count, body in bodies:
                ctx.logger.info("purging %s (%d) from the cache of zone %s", kind, count, zone_id)
                result = cf.result("POST", f"/zones/{zone_id}/purge_cache", json_body=body)
                if isinstance(result.get("id"), str):
                    ids.append(result["id"])
                purged[kind] = purged.get(kind, 0) + count
        return self.Out(request_id=ids[0] if ids else None, request_ids=ids, purged=purged)
