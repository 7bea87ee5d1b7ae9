"""NetBox task types: list sites and devices, create and update devices, assign IP addresses.

Type ids follow Kestra's NetBox plugin (``io.kestra.plugin.ee.netbox.*``); the earlier flat
ids (``io.kestra.plugin.ee.netbox.CreateDevice``...) and ``io.kestra.plugin.netbox.*`` are
accepted as aliases.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, PrivateAttr
from roost import Asset, AssetBundle, Dynamic, Output, RunContext, Task, TaskError

EXTERNAL = "io.kestra.core.models.assets.External"
FetchType = Literal["FETCH", "FETCH_ONE", "STORE", "NONE"]
MAX_PAGE = 1000


# ---------------------------------------------------------------------------------------------
# Typed outputs
# ---------------------------------------------------------------------------------------------
class SiteInfo(Output):
    """A NetBox site."""

    id: int | None = None
    """Numeric id of the site."""
    name: str | None = None
    """Site name."""
    slug: str | None = None
    """URL-friendly unique short name."""
    url: str | None = None
    """API URL of the site."""
    display_url: str | None = None
    """Web UI URL of the site."""
    status: str | None = None
    """Status value (active, planned, staging, decommissioning, retired)."""
    region: str | None = None
    """Slug of the site's region."""
    group: str | None = None
    """Slug of the site's group."""
    tenant: str | None = None
    """Slug of the site's tenant."""
    facility: str | None = None
    """Data center provider or facility."""
    time_zone: str | None = None
    """Time zone of the site."""
    description: str | None = None
    """Description of the site."""
    device_count: int | None = None
    """Number of devices at the site."""
    tags: list[str] = Field(default_factory=list)
    """Tag slugs."""
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    """Custom field values."""


class DeviceInfo(Output):
    """A NetBox device."""

    id: int | None = None
    """Numeric id of the device."""
    name: str | None = None
    """Device name."""
    url: str | None = None
    """API URL of the device."""
    display_url: str | None = None
    """Web UI URL of the device."""
    status: str | None = None
    """Status value (active, offline, planned, staged, failed, inventory, decommissioning)."""
    site: str | None = None
    """Slug of the device's site."""
    site_id: int | None = None
    """Id of the device's site."""
    role: str | None = None
    """Slug of the device role."""
    role_id: int | None = None
    """Id of the device role."""
    device_type: str | None = None
    """Slug of the device type."""
    device_type_id: int | None = None
    """Id of the device type."""
    manufacturer: str | None = None
    """Slug of the device type's manufacturer."""
    platform: str | None = None
    """Slug of the platform."""
    tenant: str | None = None
    """Slug of the tenant."""
    rack: str | None = None
    """Name of the rack."""
    serial: str | None = None
    """Serial number."""
    asset_tag: str | None = None
    """Asset tag."""
    primary_ip: str | None = None
    """Primary IP address (CIDR)."""
    primary_ip4: str | None = None
    """Primary IPv4 address (CIDR)."""
    primary_ip6: str | None = None
    """Primary IPv6 address (CIDR)."""
    description: str | None = None
    """Description of the device."""
    tags: list[str] = Field(default_factory=list)
    """Tag slugs."""
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    """Custom field values."""


def _slug(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("slug") or value.get("name") or value.get("display")
    return None


def _id(value: Any) -> int | None:
    return value.get("id") if isinstance(value, dict) else None


def _choice(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("value")
    return value if isinstance(value, str) else None


def _address(value: Any) -> str | None:
    return value.get("address") if isinstance(value, dict) else None


def _tags(value: Any) -> list[str]:
    return [t.get("slug") or t.get("name") for t in value or [] if isinstance(t, dict)]


def site_info(obj: dict[str, Any]) -> SiteInfo:
    return SiteInfo(
        id=obj.get("id"),
        name=obj.get("name"),
        slug=obj.get("slug"),
        url=obj.get("url"),
        display_url=obj.get("display_url"),
        status=_choice(obj.get("status")),
        region=_slug(obj.get("region")),
        group=_slug(obj.get("group")),
        tenant=_slug(obj.get("tenant")),
        facility=obj.get("facility") or None,
        time_zone=obj.get("time_zone") or None,
        description=obj.get("description") or None,
        device_count=obj.get("device_count"),
        tags=_tags(obj.get("tags")),
        custom_fields=obj.get("custom_fields") or {},
    )


def device_info(obj: dict[str, Any]) -> DeviceInfo:
    dtype = obj.get("device_type")
    rack = obj.get("rack")
    return DeviceInfo(
        id=obj.get("id"),
        name=obj.get("name"),
        url=obj.get("url"),
        display_url=obj.get("display_url"),
        status=_choice(obj.get("status")),
        site=_slug(obj.get("site")),
        site_id=_id(obj.get("site")),
        role=_slug(obj.get("role")),
        role_id=_id(obj.get("role")),
        device_type=_slug(dtype),
        device_type_id=_id(dtype),
        manufacturer=_slug(dtype.get("manufacturer")) if isinstance(dtype, dict) else None,
        platform=_slug(obj.get("platform")),
        tenant=_slug(obj.get("tenant")),
        rack=rack.get("name") if isinstance(rack, dict) else None,
        serial=obj.get("serial") or None,
        asset_tag=obj.get("asset_tag") or None,
        primary_ip=_address(obj.get("primary_ip")),
        primary_ip4=_address(obj.get("primary_ip4")),
        primary_ip6=_address(obj.get("primary_ip6")),
        description=obj.get("description") or None,
        tags=_tags(obj.get("tags")),
        custom_fields=obj.get("custom_fields") or {},
    )


def _record(rec: Any) -> dict[str, Any]:
    """A pynetbox Record (or dict) as the plain JSON object NetBox sent."""
    if rec is None:
        return {}
    if isinstance(rec, dict):
        return rec
    return dict(rec)


# ---------------------------------------------------------------------------------------------
# Base: connection properties, references, assets
# ---------------------------------------------------------------------------------------------
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

    def connect(self, ctx: RunContext):  # -> NetBox
        from roost_netbox.client import NetBox

        nb = NetBox(ctx, self.url, self.token, verify_ssl=self.verify_ssl, timeout=self.request_timeout)
        self._host = nb.host
        return nb

    # -- references: ids, slugs or names ----------------------------------------------------
    def resolve(self, nb, kind: str, value: Any, **scope: Any) -> dict[str, Any]:
        """The NetBox object of ``kind`` that ``value`` (an id, a slug or a name) designates."""
        endpoint, fields = _REFERENCES[kind](nb.api)
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            raise TaskError(f"{kind}: an empty reference")
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            with nb.call(f"looking up {kind} {value}"):
                rec = endpoint.get(int(value))
            if rec is not None:
                return _record(rec)
            if isinstance(value, int):
                raise TaskError(f"{kind} with id {value} not found in NetBox (HTTP 404)")
        for field in fields:
            with nb.call(f"looking up {kind} {value!r}"):
                found = [_record(r) for r in endpoint.filter(**{field: value}, **scope)]
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

    def resolve_id(self, nb, kind: str, value: Any, **scope: Any) -> int:
        return self.resolve(nb, kind, value, **scope)["id"]

    def resolve_tags(self, nb, tags: list[Any]) -> list[int]:
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
                "status": _choice(site.get("status")),
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


def _refs() -> dict[str, Any]:
    return {
        "site": lambda api: (api.dcim.sites, ("slug", "name")),
        "role": lambda api: (api.dcim.device_roles, ("slug", "name")),
        "device type": lambda api: (api.dcim.device_types, ("slug", "model")),
        "platform": lambda api: (api.dcim.platforms, ("slug", "name")),
        "tenant": lambda api: (api.tenancy.tenants, ("slug", "name")),
        "region": lambda api: (api.dcim.regions, ("slug", "name")),
        "rack": lambda api: (api.dcim.racks, ("name",)),
        "tag": lambda api: (api.extras.tags, ("slug", "name")),
        "vrf": lambda api: (api.ipam.vrfs, ("name", "rd")),
        "device": lambda api: (api.dcim.devices, ("name",)),
        "interface": lambda api: (api.dcim.interfaces, ("name",)),
    }


_REFERENCES = _refs()


def _status(value: str | None) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


# ---------------------------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------------------------
class _ListTask(NetBoxTask):
    filters: Dynamic[dict[str, Any]] = Field(default_factory=dict)
    """Any other NetBox query filters, passed as they are (for example `q`, `name`, `serial`, `manufacturer`, `cf_<field>`); an invalid value fails with NetBox's own message."""
    limit: Dynamic[int] | None = None
    """Return at most this many records (all matching records when unset)."""
    fields: Dynamic[list[str]] = Field(default_factory=list)
    """Only ask NetBox for these fields (NetBox's `fields` query parameter); `id` is always included."""
    fetch_type: FetchType = "FETCH"
    """FETCH outputs all rows, FETCH_ONE the first row, STORE writes them to internal storage (one JSON object a line) and outputs its URI, NONE outputs only the count."""

    endpoint_name: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    def query(self, nb) -> dict[str, Any]:
        raise NotImplementedError

    def fetch(self, ctx: RunContext) -> tuple[Any, list[dict[str, Any]], int | None]:
        nb = self.connect(ctx)
        params = {**(self.filters or {}), **self.query(nb)}
        if self.fields:
            params["fields"] = ",".join(dict.fromkeys(["id", *self.fields]))
        limit = self.limit
        if limit is not None and limit < 1:
            raise TaskError(f"limit must be at least 1, not {limit}")
        app, name = self.endpoint_name.split(".")
        endpoint = getattr(getattr(nb.api, app), name)
        # FETCH_ONE needs one row; NONE only the count NetBox reports with the first page.
        single = self.fetch_type in ("FETCH_ONE", "NONE")
        page = 1 if single else min(limit or MAX_PAGE, MAX_PAGE)
        what = f"listing {self.kind}s" + (f" with {params}" if params else "")
        ctx.logger.info("NetBox %s: listing %ss %s", nb.url, self.kind, params or "(no filter)")
        rows: list[dict[str, Any]] = []
        with nb.call(what):
            recordset = endpoint.filter(limit=page, **params) if params else endpoint.filter(limit=page)
            for rec in recordset:
                rows.append(nb.ensure_json_object(_record(rec), what))
                if single or (limit is not None and len(rows) >= limit):
                    break
            total = getattr(recordset.request, "count", None)
        if self.fetch_type == "NONE":
            rows = []
        ctx.metric("records", len(rows))
        return nb, rows, total

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


class ListSites(
    _ListTask,
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

    endpoint_name: ClassVar[str] = "dcim.sites"
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

    def query(self, nb) -> dict[str, Any]:
        q: dict[str, Any] = {}
        if _status(self.status):
            q["status"] = _status(self.status)
        if self.tag is not None:
            q["tag_id"] = self.resolve_id(nb, "tag", self.tag)
        if self.region is not None:
            q["region_id"] = self.resolve_id(nb, "region", self.region)
        if self.tenant is not None:
            q["tenant_id"] = self.resolve_id(nb, "tenant", self.tenant)
        return q

    def run(self, ctx: RunContext) -> ListSites.Out:
        nb, rows, total = self.fetch(ctx)
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


class ListDevices(
    _ListTask,
    type="io.kestra.plugin.ee.netbox.device.List",
    aliases=("io.kestra.plugin.ee.netbox.ListDevices", "io.kestra.plugin.netbox.ListDevices"),
):
    """List NetBox devices, with optional filters.

    Filters by site, role, status, tag, platform and tenant (slugs, names or ids are
    resolved), plus any other NetBox query parameter under `filters`. `fetchType`
    chooses between all rows, the first row, a file in internal storage, or only the
    count. With `assets.enableAuto`, every device read is emitted as an input asset.
    """

    site: Dynamic[str | int] | None = None
    """Only devices at this site (slug, name or id)."""
    role: Dynamic[str | int] | None = None
    """Only devices with this role (slug, name or id)."""
    status: Dynamic[str] | None = None
    """Only devices with this status (active, offline, planned, staged, failed, inventory, decommissioning)."""
    tag: Dynamic[str | int] | None = None
    """Only devices with this tag (slug, name or id)."""
    platform: Dynamic[str | int] | None = None
    """Only devices on this platform (slug, name or id)."""
    tenant: Dynamic[str | int] | None = None
    """Only devices of this tenant (slug, name or id)."""

    endpoint_name: ClassVar[str] = "dcim.devices"
    kind: ClassVar[str] = "device"

    class Out(Output):
        rows: list[DeviceInfo] | None = None
        """The devices (fetchType FETCH)."""
        row: DeviceInfo | None = None
        """The first device (fetchType FETCH_ONE)."""
        uri: str | None = None
        """Internal-storage URI of the devices file, one JSON object a line (fetchType STORE)."""
        size: int
        """Number of devices returned."""
        total: int | None = None
        """Number of devices matching the filters in NetBox (may exceed `size` with a limit)."""

    def query(self, nb) -> dict[str, Any]:
        q: dict[str, Any] = {}
        if self.site is not None:
            q["site_id"] = self.resolve_id(nb, "site", self.site)
        if self.role is not None:
            q["role_id"] = self.resolve_id(nb, "role", self.role)
        if _status(self.status):
            q["status"] = _status(self.status)
        if self.tag is not None:
            q["tag_id"] = self.resolve_id(nb, "tag", self.tag)
        if self.platform is not None:
            q["platform_id"] = self.resolve_id(nb, "platform", self.platform)
        if self.tenant is not None:
            q["tenant_id"] = self.resolve_id(nb, "tenant", self.tenant)
        return q

    def run(self, ctx: RunContext) -> ListDevices.Out:
        nb, rows, total = self.fetch(ctx)
        self._touched = [AssetBundle(inputs=[self.device_asset(r) for r in rows])] if rows else []
        ctx.logger.info("found %d device(s)", self.size(rows, total))
        out = self.Out(size=self.size(rows, total), total=total)
        if self.fetch_type == "FETCH":
            out.rows = [device_info(r) for r in rows]
        elif self.fetch_type == "FETCH_ONE":
            out.row = device_info(rows[0]) if rows else None
        elif self.fetch_type == "STORE":
            out.uri = self.store(ctx, rows)
        return out


# ---------------------------------------------------------------------------------------------
# Devices: create and update
# ---------------------------------------------------------------------------------------------
class _DeviceFields(NetBoxTask):
    serial: Dynamic[str] | None = None
    """Serial number."""
    asset_tag: Dynamic[str] | None = None
    """Unique asset tag."""
    platform: Dynamic[str | int] | None = None
    """Platform (slug, name or id); an empty string clears it on update."""
    tenant: Dynamic[str | int] | None = None
    """Tenant (slug, name or id); an empty string clears it on update."""
    rack: Dynamic[str | int] | None = None
    """Rack at the device's site (name or id); an empty string clears it on update."""
    position: Dynamic[float] | None = None
    """Lowest rack unit the device occupies (needs `rack` and `face`)."""
    face: Dynamic[str] | None = None
    """Rack face: front or rear."""
    device_description: Dynamic[str] | None = Field(
        default=None,
        validation_alias=AliasChoices("deviceDescription", "addressDescription", "device_description"),
    )
    """Description of the device (Kestra's `addressDescription` is accepted too)."""
    comments: Dynamic[str] | None = None
    """Comments (Markdown)."""
    tags: Dynamic[list[str | int]] | None = None
    """Tags (slugs, names or ids) that must exist in NetBox; on update the list replaces the device's tags."""
    custom_fields: Dynamic[dict[str, Any]] | None = None
    """Custom field values, by custom field name; the fields must exist in NetBox."""

    class Out(DeviceInfo):
        changed: list[str] = Field(default_factory=list)
        """NetBox fields the task changed (all the fields it set, for a creation)."""

    def common_payload(self, nb, site_id: int | None) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.serial is not None:
            data["serial"] = self.serial
        if self.asset_tag is not None:
            data["asset_tag"] = self.asset_tag or None
        for key, kind in (("platform", "platform"), ("tenant", "tenant")):
            value = getattr(self, key)
            if value is not None:
                data[key] = self.resolve_id(nb, kind, value) if value != "" else None
        if self.rack is not None:
            scope = {"site_id": site_id} if site_id is not None else {}
            data["rack"] = self.resolve_id(nb, "rack", self.rack, **scope) if self.rack != "" else None
        if self.position is not None:
            data["position"] = self.position
        if self.face is not None:
            data["face"] = self.face.strip().lower() or None
        if self.device_description is not None:
            data["description"] = self.device_description
        if self.comments is not None:
            data["comments"] = self.comments
        if self.tags is not None:
            data["tags"] = self.resolve_tags(nb, self.tags)
        if self.custom_fields:
            data["custom_fields"] = dict(self.custom_fields)
        return data

    def emit(self, dev: dict[str, Any]) -> None:
        site = dev.get("site")
        self._touched = [
            AssetBundle(
                inputs=[self.site_asset(site)] if isinstance(site, dict) else [],
                outputs=[self.device_asset(dev)],
            )
        ]


class CreateDevice(
    _DeviceFields,
    type="io.kestra.plugin.ee.netbox.device.Create",
    aliases=("io.kestra.plugin.ee.netbox.CreateDevice", "io.kestra.plugin.netbox.CreateDevice"),
):
    """Create a device in NetBox.

    The device type, role, site, platform, tenant, rack and tags may be given by id, slug
    or name: they are resolved to ids first, and one that does not exist fails the task
    with its name. NetBox's validation errors (such as a duplicate name at the site) are
    shown as NetBox wrote them. With `assets.enableAuto`, the device is emitted as an
    output asset (site, role, status, serial in its metadata) and its site as an input.
    """

    name: Dynamic[str]
    """Device name (unique per site and tenant)."""
    device_type: Dynamic[str | int]
    """Device type: slug, model name or id."""
    role: Dynamic[str | int] = Field(validation_alias=AliasChoices("role", "deviceRole"))
    """Device role: slug, name or id (Kestra's `deviceRole` is accepted too)."""
    site: Dynamic[str | int]
    """Site: slug, name or id."""
    status: Dynamic[str] = "active"
    """Status: active, offline, planned, staged, failed, inventory or decommissioning."""

    def run(self, ctx: RunContext) -> CreateDevice.Out:
        nb = self.connect(ctx)
        site = self.resolve(nb, "site", self.site)
        payload: dict[str, Any] = {
            "name": self.name,
            "device_type": self.resolve_id(nb, "device type", self.device_type),
            "role": self.resolve_id(nb, "role", self.role),
            "site": site["id"],
            "status": _status(self.status) or "active",
        }
        payload.update(self.common_payload(nb, site["id"]))
        what = f"creating device {self.name!r}"
        with nb.call(what):
            created = nb.ensure_json_object(_record(nb.api.dcim.devices.create(payload)), what)
        ctx.logger.info(
            "created device %r (id %s) at site %s", created.get("name"), created.get("id"), site.get("slug")
        )
        self.emit(created)
        return self.Out(**device_info(created).model_dump(), changed=sorted(payload))


def _flat(value: Any) -> Any:
    """A serialized NetBox value reduced to what a write payload holds (ids, choice values)."""
    if isinstance(value, dict):
        if "value" in value and "label" in value:
            return value["value"]
        if "id" in value:
            return value["id"]
        return {k: _flat(v) for k, v in value.items()}
    if isinstance(value, list):
        flat = [_flat(v) for v in value]
        try:
            return sorted(flat)
        except TypeError:
            return flat
    return value


def changed_fields(current: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    """The payload keys whose value differs from the object's current one."""
    changed = []
    for key, want in payload.items():
        have = current.get(key)
        if key == "custom_fields":
            have = have or {}
            if any(_flat(have.get(k)) != _flat(v) for k, v in want.items()):
                changed.append(key)
        elif key == "position" and have is not None and want is not None:
            if float(have) != float(want):
                changed.append(key)
        elif _flat(have) != _flat(want) and not (have in (None, "") and want in (None, "")):
            changed.append(key)
    return changed


class UpdateDevice(
    _DeviceFields,
    type="io.kestra.plugin.ee.netbox.device.Update",
    aliases=("io.kestra.plugin.ee.netbox.UpdateDevice", "io.kestra.plugin.netbox.UpdateDevice"),
):
    """Update a NetBox device found by id or by name.

    Only the properties that are set are sent (HTTP PATCH), and only when they differ
    from the device's current values: running it twice changes nothing the second time
    (`changed` is then empty). References (site, role, device type, platform, tenant,
    rack, tags) may be given by id, slug or name. With `assets.enableAuto`, the device is
    emitted as an output asset and its site as an input.
    """

    device_id: Dynamic[int] | None = None
    """Id of the device to update."""
    name: Dynamic[str] | None = None
    """Name of the device to update, when `deviceId` is not set (must match one device; narrow it with `site`)."""
    new_name: Dynamic[str] | None = None
    """Rename the device."""
    site: Dynamic[str | int] | None = None
    """Site (slug, name or id): narrows the lookup by `name`, and moves the device when found by `deviceId`."""
    device_type: Dynamic[str | int] | None = None
    """New device type: slug, model name or id."""
    role: Dynamic[str | int] | None = Field(default=None, validation_alias=AliasChoices("role", "deviceRole"))
    """New device role: slug, name or id (Kestra's `deviceRole` is accepted too)."""
    status: Dynamic[str] | None = None
    """New status: active, offline, planned, staged, failed, inventory or decommissioning."""

    def find(self, nb) -> dict[str, Any]:
        if self.device_id is not None:
            what = f"reading device {self.device_id}"
            with nb.call(what):
                rec = nb.api.dcim.devices.get(self.device_id)
            if rec is None:
                raise TaskError(f"device with id {self.device_id} not found in NetBox (HTTP 404)")
            return nb.ensure_json_object(_record(rec), what)
        if not self.name:
            raise TaskError("set deviceId or name to say which device to update")
        scope = {"site_id": self.resolve_id(nb, "site", self.site)} if self.site is not None else {}
        return self.resolve(nb, "device", self.name, **scope)

    def run(self, ctx: RunContext) -> UpdateDevice.Out:
        nb = self.connect(ctx)
        current = self.find(nb)
        payload: dict[str, Any] = {}
        site_id = _id(current.get("site"))
        if self.new_name is not None:
            payload["name"] = self.new_name
        if self.site is not None and self.device_id is not None:
            site_id = self.resolve_id(nb, "site", self.site)
            payload["site"] = site_id
        if self.device_type is not None:
            payload["device_type"] = self.resolve_id(nb, "device type", self.device_type)
        if self.role is not None:
            payload["role"] = self.resolve_id(nb, "role", self.role)
        if _status(self.status):
            payload["status"] = _status(self.status)
        payload.update(self.common_payload(nb, site_id))
        changed = changed_fields(current, payload)
        dev_id = current["id"]
        if changed:
            what = f"updating device {current.get('name')!r} (id {dev_id})"
            body = {k: payload[k] for k in changed}
            result = nb.patch(nb.api.dcim.devices, dev_id, body, what)
            ctx.logger.info("updated device %r (id %s): %s", result.get("name"), dev_id, ", ".join(changed))
        else:
            result = current
            ctx.logger.info("device %r (id %s) already up to date", current.get("name"), dev_id)
        self.emit(result)
        return self.Out(**device_info(result).model_dump(), changed=changed)


# ---------------------------------------------------------------------------------------------
# IP addresses
# ---------------------------------------------------------------------------------------------
class AssignIpAddress(
    NetBoxTask,
    type="io.kestra.plugin.ee.netbox.ipam.AssignIpAddress",
    aliases=("io.kestra.plugin.ee.netbox.AssignIpAddress", "io.kestra.plugin.netbox.AssignIpAddress"),
):
    """Create an IP address in NetBox and assign it to an interface, idempotently.

    The interface is a device's interface by name (`device` + `interface`, created when
    `createInterface` is true) or any assignable object by type and id
    (`assignedObjectType` + `assignedObjectId`, as in Kestra). When the address already
    exists in the VRF, it is updated to match (assignment, status, DNS name, role,
    description, tags, custom fields) instead of duplicated; run twice, the second run
    changes nothing. With `assets.enableAuto`, the address is emitted as an output asset
    (device and interface in its metadata) and the device as an input.
    """

    address: Dynamic[str]
    """IP address with its prefix length (CIDR), such as 10.0.0.10/24 or 2001:db8::10/64."""
    device: Dynamic[str | int] | None = None
    """Device owning the interface: name or id."""
    interface: Dynamic[str | int] | None = None
    """Interface of `device` to assign the address to: name or id."""
    create_interface: Dynamic[bool] = False
    """Create the interface on the device when it does not exist."""
    interface_type: Dynamic[str] = "virtual"
    """NetBox interface type used when the interface is created (virtual, 1000base-t, 10gbase-x-sfpp, ...)."""
    assigned_object_type: Dynamic[str] | None = None
    """Type of the object to assign to, as NetBox names it (dcim.interface, virtualization.vminterface); with `assignedObjectId`, instead of `device` + `interface`."""
    assigned_object_id: Dynamic[int] | None = None
    """Id of the object to assign to (with `assignedObjectType`)."""
    vrf: Dynamic[str | int] | None = None
    """VRF of the address (name, route distinguisher or id); the global table when unset."""
    status: Dynamic[str] = "active"
    """Status: active, reserved, deprecated, dhcp or slaac."""
    role: Dynamic[str] | None = None
    """Role: loopback, secondary, anycast, vip, vrrp, hsrp, glbp or carp."""
    dns_name: Dynamic[str] | None = None
    """DNS name (hostname or FQDN) of the address."""
    address_description: Dynamic[str] | None = None
    """Description of the IP address."""
    tags: Dynamic[list[str | int]] | None = None
    """Tags (slugs, names or ids) that must exist in NetBox; replaces the address's tags."""
    custom_fields: Dynamic[dict[str, Any]] | None = None
    """Custom field values, by custom field name."""
    set_primary: Dynamic[bool] = False
    """Also make it the device's primary IPv4 or IPv6 address."""

    class Out(Output):
        id: int
        """Numeric id of the IP address."""
        address: str
        """The address in CIDR notation."""
        url: str | None = None
        """API URL of the IP address."""
        display_url: str | None = None
        """Web UI URL of the IP address."""
        status: str | None = None
        """Status value."""
        dns_name: str | None = None
        """DNS name."""
        vrf: str | None = None
        """Name of the VRF (none for the global table)."""
        assigned_object_type: str | None = None
        """Type of the object the address is assigned to."""
        assigned_object_id: int | None = None
        """Id of the object the address is assigned to."""
        device: str | None = None
        """Name of the device owning the interface."""
        device_id: int | None = None
        """Id of the device owning the interface."""
        interface: str | None = None
        """Name of the interface."""
        interface_id: int | None = None
        """Id of the interface."""
        created: bool
        """True when the address was created, false when it existed."""
        updated: bool
        """True when an existing address was changed."""
        changed: list[str] = Field(default_factory=list)
        """Fields changed on an existing address."""
        interface_created: bool = False
        """True when the interface was created."""
        primary: bool = False
        """True when the address is the device's primary address of its family."""

    def target(self, nb, ctx: RunContext) -> tuple[str | None, int | None, dict[str, Any] | None, bool]:
        """(object type, object id, device, interface created?) of the assignment."""
        if self.assigned_object_type or self.assigned_object_id is not None:
            if not (self.assigned_object_type and self.assigned_object_id is not None):
                raise TaskError("assignedObjectType and assignedObjectId go together")
            if self.device is not None or self.interface is not None:
                raise TaskError(
                    "use either device + interface or assignedObjectType + assignedObjectId, not both"
                )
            otype = self.assigned_object_type.strip().lower()
            device = None
            if otype == "dcim.interface":
                iface = self.resolve(nb, "interface", self.assigned_object_id)
                device = self.resolve(nb, "device", iface["device"]["id"])
            return otype, self.assigned_object_id, device, False
        if self.interface is not None and self.device is None:
            raise TaskError("interface needs device (the device owning the interface)")
        if self.device is None:
            return None, None, None, False
        device = self.resolve(nb, "device", self.device)
        if self.interface is None:
            raise TaskError("device needs interface (the interface to assign the address to)")
        scope = {"device_id": device["id"]}
        if isinstance(self.interface, int) or str(self.interface).isdigit():
            return "dcim.interface", self.resolve_id(nb, "interface", self.interface, **scope), device, False
        what = f"looking up interface {self.interface!r} of device {device.get('name')!r}"
        with nb.call(what):
            found = [_record(r) for r in nb.api.dcim.interfaces.filter(name=self.interface, **scope)]
        if found:
            return "dcim.interface", found[0]["id"], device, False
        if not self.create_interface:
            raise TaskError(
                f"interface {self.interface!r} not found on device {device.get('name')!r} "
                "(set createInterface: true to create it)"
            )
        what = f"creating interface {self.interface!r} on device {device.get('name')!r}"
        with nb.call(what):
            iface = _record(
                nb.api.dcim.interfaces.create(
                    {"device": device["id"], "name": self.interface, "type": self.interface_type}
                )
            )
        ctx.logger.info(
            "created interface %r (id %s) on device %r", self.interface, iface.get("id"), device.get("name")
        )
        return "dcim.interface", iface["id"], device, True

    def run(self, ctx: RunContext) -> AssignIpAddress.Out:
        try:
            ip = ipaddress.ip_interface(self.address.strip())
        except ValueError:
            raise TaskError(
                f"address {self.address!r} is not an IP address in CIDR notation (such as 10.0.0.10/24)"
            )
        if "/" not in self.address:
            raise TaskError(f"address {self.address!r} needs a prefix length, such as {self.address}/24")
        address = ip.with_prefixlen
        nb = self.connect(ctx)
        vrf = self.resolve(nb, "vrf", self.vrf) if self.vrf is not None else None
        otype, oid, device, iface_created = self.target(nb, ctx)

        payload: dict[str, Any] = {"address": address, "status": _status(self.status) or "active"}
        payload["vrf"] = vrf["id"] if vrf else None
        if otype:
            payload["assigned_object_type"] = otype
            payload["assigned_object_id"] = oid
        if self.role is not None:
            payload["role"] = _status(self.role)
        if self.dns_name is not None:
            payload["dns_name"] = self.dns_name
        if self.address_description is not None:
            payload["description"] = self.address_description
        if self.tags is not None:
            payload["tags"] = self.resolve_tags(nb, self.tags)
        if self.custom_fields:
            payload["custom_fields"] = dict(self.custom_fields)

        # Existing address with the same host in the same VRF: update it rather than duplicate it.
        what = f"looking up IP address {address}"
        with nb.call(what):
            query = {"address": str(ip.ip), "vrf_id": vrf["id"] if vrf else "null"}
            existing = [_record(r) for r in nb.api.ipam.ip_addresses.filter(**query)]
        existing = [e for e in existing if _host(e.get("address")) == str(ip.ip)]
        if len(existing) > 1:
            ids = ", ".join(str(e["id"]) for e in existing)
            raise TaskError(
                f"IP address {ip.ip} exists {len(existing)} times in NetBox (ids {ids}); cannot pick one"
            )
        created = updated = False
        changed: list[str] = []
        if existing:
            current = existing[0]
            changed = changed_fields(current, payload)
            prev = current.get("assigned_object") or {}
            if "assigned_object_id" in changed and current.get("assigned_object_id"):
                owner = (prev.get("device") or {}).get("name") or prev.get("display")
                ctx.logger.warning(
                    "IP address %s was assigned to %s %s; reassigning it",
                    address,
                    owner or "",
                    prev.get("name") or "",
                )
            if changed:
                body = {k: payload[k] for k in changed}
                if "assigned_object_id" in body or "assigned_object_type" in body:
                    body["assigned_object_type"] = payload.get("assigned_object_type")
                    body["assigned_object_id"] = payload.get("assigned_object_id")
                what = f"updating IP address {address} (id {current['id']})"
                record = nb.patch(nb.api.ipam.ip_addresses, current["id"], body, what)
                updated = True
                ctx.logger.info(
                    "updated IP address %s (id %s): %s", address, record.get("id"), ", ".join(changed)
                )
            else:
                record = current
                ctx.logger.info("IP address %s (id %s) already assigned as asked", address, current.get("id"))
        else:
            what = f"creating IP address {address}"
            with nb.call(what):
                record = nb.ensure_json_object(_record(nb.api.ipam.ip_addresses.create(payload)), what)
            created = True
            ctx.logger.info("created IP address %s (id %s)", address, record.get("id"))

        primary = False
        if device is not None:
            family_key = "primary_ip4" if ip.version == 4 else "primary_ip6"
            primary = _id(device.get(family_key)) == record.get("id")
            if self.set_primary and not primary:
                what = f"setting {address} as primary address of device {device.get('name')!r}"
                device = nb.patch(nb.api.dcim.devices, device["id"], {family_key: record["id"]}, what)
                primary = True
                ctx.logger.info(
                    "%s is now the primary IPv%d address of %r", address, ip.version, device.get("name")
                )

        assigned = record.get("assigned_object") if isinstance(record.get("assigned_object"), dict) else {}
        dev_ref = assigned.get("device") if isinstance(assigned.get("device"), dict) else None
        out = self.Out(
            id=record["id"],
            address=record.get("address") or address,
            url=record.get("url"),
            display_url=record.get("display_url"),
            status=_choice(record.get("status")),
            dns_name=record.get("dns_name") or None,
            vrf=(record.get("vrf") or {}).get("name") if isinstance(record.get("vrf"), dict) else None,
            assigned_object_type=record.get("assigned_object_type"),
            assigned_object_id=record.get("assigned_object_id"),
            device=(dev_ref or {}).get("name") or (device or {}).get("name"),
            device_id=(dev_ref or {}).get("id") or (device or {}).get("id"),
            interface=assigned.get("name"),
            interface_id=assigned.get("id")
            if record.get("assigned_object_type") == "dcim.interface"
            else None,
            created=created,
            updated=updated,
            changed=changed,
            interface_created=iface_created,
            primary=primary,
        )
        self.emit(record, out, device)
        return out

    def emit(self, record: dict[str, Any], out: AssignIpAddress.Out, device: dict[str, Any] | None) -> None:
        asset = Asset(
            id=f"{self._host}/ipam/ip-addresses/{out.id}",
            type=EXTERNAL,
            display_name=out.address,
            metadata={
                "system": "netbox",
                "objectType": "ipam.ipaddress",
                "netbox": self._host,
                "netboxId": out.id,
                "address": out.address,
                "vrf": out.vrf,
                "status": out.status,
                "dnsName": out.dns_name,
                "device": out.device,
                "interface": out.interface,
                "url": out.display_url or out.url,
            },
        )
        inputs = [self.device_asset(device)] if device else []
        self._touched = [AssetBundle(inputs=inputs, outputs=[asset])]


def _host(address: Any) -> str | None:
    try:
        return str(ipaddress.ip_interface(address).ip)
    except (TypeError, ValueError):
        return None


TASKS = (ListSites, ListDevices, CreateDevice, UpdateDevice, AssignIpAddress)
