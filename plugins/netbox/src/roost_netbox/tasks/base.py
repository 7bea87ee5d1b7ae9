"""What every NetBox task shares: connection properties, references by id, slug or name, assets,
and the list tasks' fetch types."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr
from roost import Asset, AssetBundle, Dynamic, RunContext, Task, TaskError

from roost_netbox.client import MAX_PAGE, NetBox
from roost_netbox.tasks.records import choice_of, device_info

EXTERNAL = "io.kestra.core.models.assets.External"
FetchType = Literal["FETCH", "FETCH_ONE", "STORE", "NONE"]


class NetBoxTask(Task):
    """Common connection properties of the NetBox tasks."""

    url: Dynamic[str]
    """Base URL of the NetBox instance, such as https://netbox.example.com (a trailing /api is accepted)."""
    token: Dynamic[str]
    """NetBox API token, usually `{{ secret('NETBOX_TOKEN') }}`. A v2 token (`nbt_<key>.<secret>`, NetBox 4.5+) is sent as `Bearer`, a legacy 40-character v1 token as `Token`."""
    verify_ssl: Dynamic[bool] = True
    """Verify the TLS certificate of an https URL; turn off only for a self-signed test instance."""
    request_timeout: Dynamic[float] = 30.0
    """Seconds to wait for each HTTP answer from NetBox."""

    _touched: list[AssetBundle] = PrivateAttr(default_factory=list)
    _host: str = PrivateAttr(default="")

    def connect(self, ctx: RunContext) -> NetBox:
        nb = NetBox(ctx, self.url, self.token, verify_ssl=self.verify_ssl, timeout=self.request_timeout)
        self._host = nb.host
        return nb

    # -- references: ids, slugs or names ----------------------------------------------------
    def resolve(self, nb: NetBox, kind: str, value: Any, **scope: Any) -> dict[str, Any]:
        """The NetBox object of ``kind`` that ``value`` (an id, a slug or a name) designates."""
        endpoint, fields = REFERENCES[kind]
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            raise TaskError(f"{kind}: an empty reference")
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            with nb.doing(f"looking up {kind} {value}"):
                rec = nb.get(endpoint, int(value))
            if rec is not None:
                return rec
            if isinstance(value, int):
                raise TaskError(f"{kind} with id {value} not found in NetBox (HTTP 404)")
        for field in fields:
            with nb.doing(f"looking up {kind} {value!r}"):
                found = nb.all(endpoint, {field: value, **scope})
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                ids = ", ".join(str(f.get("id")) for f in found[:10])
                raise TaskError(
                    f"{kind} {value!r} is ambiguous: {len(found)} objects match by {field} (ids {ids}); use an id"
                )
        how = "/".join(fields)
        where = "".join(f" with {k}={v}" for k, v in scope.items())
        raise TaskError(f"{kind} {value!r} not found in NetBox (looked up by id/{how}{where})")

    def resolve_id(self, nb: NetBox, kind: str, value: Any, **scope: Any) -> int:
        return self.resolve(nb, kind, value, **scope)["id"]

    def resolve_tags(self, nb: NetBox, tags: list[Any]) -> list[int]:
        return [self.resolve_id(nb, "tag", t) for t in tags]

    # -- assets ------------------------------------------------------------------------------
    def site_asset(self, site: dict[str, Any]) -> Asset:
        return Asset(
            id=f"{self._host}/dcim/sites/{site.get('id')}",
            type=EXTERNAL,
            display_name=site.get("name") or site.get("display"),
            metadata={
                "system": "netbox",
                "objectType": "dcim.site",
                "netbox": self._host,
                "netboxId": site.get("id"),
                "slug": site.get("slug"),
                "status": choice_of(site.get("status")),
                "url": site.get("display_url") or site.get("url"),
            },
        )

    def device_asset(self, dev: dict[str, Any]) -> Asset:
        info = device_info(dev)
        return Asset(
            id=f"{self._host}/dcim/devices/{info.id}",
            type=EXTERNAL,
            display_name=info.name,
            metadata={
                "system": "netbox",
                "objectType": "dcim.device",
                "netbox": self._host,
                "netboxId": info.id,
                "name": info.name,
                "site": info.site,
                "role": info.role,
                "deviceType": info.device_type,
                "status": info.status,
                "serial": info.serial,
                "primaryIp": info.primary_ip,
                "url": info.display_url or info.url,
            },
        )

    def auto_assets(self, ctx: RunContext, output: Any) -> list[AssetBundle]:
        return list(self._touched)


REFERENCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "site": ("dcim/sites", ("slug", "name")),
    "role": ("dcim/device-roles", ("slug", "name")),
    "device type": ("dcim/device-types", ("slug", "model")),
    "platform": ("dcim/platforms", ("slug", "name")),
    "tenant": ("tenancy/tenants", ("slug", "name")),
    "region": ("dcim/regions", ("slug", "name")),
    "rack": ("dcim/racks", ("name",)),
    "tag": ("extras/tags", ("slug", "name")),
    "vrf": ("ipam/vrfs", ("name", "rd")),
    "device": ("dcim/devices", ("name",)),
    "interface": ("dcim/interfaces", ("name",)),
}
"""What a reference of each kind names: its endpoint, and the fields an id-less value is looked up by."""


class ListTask(NetBoxTask):
    filters: Dynamic[dict[str, Any]] = Field(default_factory=dict)
    """Any other NetBox query filters, passed as they are (for example `q`, `name`, `serial`, `manufacturer`, `cf_<field>`); an invalid value fails with NetBox's own message."""
    limit: Dynamic[int] | None = None
    """Return at most this many records (all matching records when unset)."""
    fields: Dynamic[list[str]] = Field(default_factory=list)
    """Only ask NetBox for these fields (NetBox's `fields` query parameter); `id` is always included."""
    fetch_type: FetchType = "FETCH"
    """FETCH outputs all rows, FETCH_ONE the first row, STORE writes them to internal storage (one JSON object a line) and outputs its URI, NONE outputs only the count."""

    endpoint: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    def query(self, nb: NetBox) -> dict[str, Any]:
        raise NotImplementedError

    def fetch(self, ctx: RunContext) -> tuple[list[dict[str, Any]], int | None]:
        """The rows ``fetchType`` needs, and the count NetBox reports of every match."""
        limit = self.limit
        if limit is not None and limit < 1:
            raise TaskError(f"limit must be at least 1, not {limit}")
        # FETCH_ONE needs one row; NONE only the count NetBox reports with the first page.
        single = self.fetch_type in ("FETCH_ONE", "NONE")
        page = 1 if single else min(limit or MAX_PAGE, MAX_PAGE)
        rows: list[dict[str, Any]] = []
        total: int | None = None
        with self.connect(ctx) as nb:
            params = {**(self.filters or {}), **self.query(nb)}
            if self.fields:
                params["fields"] = ",".join(dict.fromkeys(["id", *self.fields]))
            what = f"listing {self.kind}s" + (f" with {params}" if params else "")
            ctx.logger.info("NetBox %s: listing %ss %s", nb.url, self.kind, params or "(no filter)")
            with nb.doing(what):
                for results, count in nb.pages(self.endpoint, params, page):
                    total = count
                    rows.extend(results)
                    if single or (limit is not None and len(rows) >= limit):
                        break
        rows = [] if self.fetch_type == "NONE" else rows[:1] if single else rows[:limit]
        ctx.metric("records", len(rows))
        return rows, total

    def size(self, rows: list[dict[str, Any]], total: int | None) -> int:
        if self.fetch_type != "NONE":
            return len(rows)
        count = total or 0
        return min(count, self.limit) if self.limit is not None else count

    def store(self, ctx: RunContext, rows: list[dict[str, Any]]) -> str:
        path = ctx.working_dir / f"{self.kind}s.ion"
        with open(path, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, default=str))
                fh.write("\n")
        return ctx.put_file(path)
