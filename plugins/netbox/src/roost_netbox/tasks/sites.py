"""Site tasks: list NetBox sites."""

from __future__ import annotations

from typing import Any, ClassVar

from roost import AssetBundle, Dynamic, Output, RunContext

from roost_netbox.client import NetBox
from roost_netbox.tasks.base import ListTask
from roost_netbox.tasks.records import SiteInfo, site_info, status_value


class ListSites(
    ListTask,
    type="io.kestra.plugin.ee.netbox.site.List",
    aliases=("io.kestra.plugin.ee.netbox.ListSites", "io.kestra.plugin.netbox.ListSites"),
):
    """List NetBox sites, with optional filters.

    Filters by status, tag, region and tenant (slugs, names or ids), plus any other
    NetBox query parameter under `filters`. `fetchType` chooses between all rows,
    the first row, a file in internal storage, or only the count. With
    `assets.enableAuto`, every site read is emitted as an input asset.
    """

    status: Dynamic[str] | None = None
    """Only sites with this status (active, planned, staging, decommissioning, retired)."""
    tag: Dynamic[str | int] | None = None
    """Only sites with this tag (slug, name or id)."""
    region: Dynamic[str | int] | None = None
    """Only sites in this region or its children (slug, name or id)."""
    tenant: Dynamic[str | int] | None = None
    """Only sites of this tenant (slug, name or id)."""

    endpoint: ClassVar[str] = "dcim/sites"
    kind: ClassVar[str] = "site"

    class Out(Output):
        rows: list[SiteInfo] | None = None
        """The sites (fetchType FETCH)."""
        row: SiteInfo | None = None
        """The first site (fetchType FETCH_ONE)."""
        uri: str | None = None
        """Internal-storage URI of the sites file, one JSON object a line (fetchType STORE)."""
        size: int
        """Number of sites returned."""
        total: int | None = None
        """Number of sites matching the filters in NetBox (may exceed `size` with a limit)."""

    def query(self, nb: NetBox) -> dict[str, Any]:
        q: dict[str, Any] = {}
        if status_value(self.status):
            q["status"] = status_value(self.status)
        if self.tag is not None:
            q["tag_id"] = self.resolve_id(nb, "tag", self.tag)
        if self.region is not None:
            q["region_id"] = self.resolve_id(nb, "region", self.region)
        if self.tenant is not None:
            q["tenant_id"] = self.resolve_id(nb, "tenant", self.tenant)
        return q

    def run(self, ctx: RunContext) -> ListSites.Out:
        rows, total = self.fetch(ctx)
        self._touched = [AssetBundle(inputs=[self.site_asset(r) for r in rows])] if rows else []
        ctx.logger.info("found %d site(s)", self.size(rows, total))
        out = self.Out(size=self.size(rows, total), total=total)
        if self.fetch_type == "FETCH":
            out.rows = [site_info(r) for r in rows]
        elif self.fetch_type == "FETCH_ONE":
            out.row = site_info(rows[0]) if rows else None
        elif self.fetch_type == "STORE":
            out.uri = self.store(ctx, rows)
        return out
