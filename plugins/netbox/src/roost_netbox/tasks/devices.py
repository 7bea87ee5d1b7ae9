"""Device tasks: list, create and update NetBox devices."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, Field
from roost import AssetBundle, Dynamic, Output, RunContext, TaskError

from roost_netbox.client import NetBox
from roost_netbox.tasks.base import ListTask, NetBoxTask
from roost_netbox.tasks.records import DeviceInfo, changed_fields, device_info, id_of, status_value


class ListDevices(
    ListTask,
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

    endpoint: ClassVar[str] = "dcim/devices"
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

    def query(self, nb: NetBox) -> dict[str, Any]:
        q: dict[str, Any] = {}
        if self.site is not None:
            q["site_id"] = self.resolve_id(nb, "site", self.site)
        if self.role is not None:
            q["role_id"] = self.resolve_id(nb, "role", self.role)
        if status_value(self.status):
            q["status"] = status_value(self.status)
        if self.tag is not None:
            q["tag_id"] = self.resolve_id(nb, "tag", self.tag)
        if self.platform is not None:
            q["platform_id"] = self.resolve_id(nb, "platform", self.platform)
        if self.tenant is not None:
            q["tenant_id"] = self.resolve_id(nb, "tenant", self.tenant)
        return q

    def run(self, ctx: RunContext) -> ListDevices.Out:
        rows, total = self.fetch(ctx)
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


class DeviceFields(NetBoxTask):
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

    def common_payload(self, nb: NetBox, site_id: int | None) -> dict[str, Any]:
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
    DeviceFields,
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
        with self.connect(ctx) as nb:
            site = self.resolve(nb, "site", self.site)
            payload: dict[str, Any] = {
                "name": self.name,
                "device_type": self.resolve_id(nb, "device type", self.device_type),
                "role": self.resolve_id(nb, "role", self.role),
                "site": site["id"],
                "status": status_value(self.status) or "active",
            }
            payload.update(self.common_payload(nb, site["id"]))
            what = f"creating device {self.name!r}"
            with nb.doing(what):
                created = nb.create("dcim/devices", payload)
            ctx.logger.info(
                "created device %r (id %s) at site %s",
                created.get("name"),
                created.get("id"),
                site.get("slug"),
            )
            self.emit(created)
            return self.Out(**device_info(created).model_dump(), changed=sorted(payload))


class UpdateDevice(
    DeviceFields,
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

    def find(self, nb: NetBox) -> dict[str, Any]:
        if self.device_id is not None:
            what = f"reading device {self.device_id}"
            with nb.doing(what):
                rec = nb.get("dcim/devices", self.device_id)
            if rec is None:
                raise TaskError(f"device with id {self.device_id} not found in NetBox (HTTP 404)")
            return rec
        if not self.name:
            raise TaskError("set deviceId or name to say which device to update")
        scope = {"site_id": self.resolve_id(nb, "site", self.site)} if self.site is not None else {}
        return self.resolve(nb, "device", self.name, **scope)

    def run(self, ctx: RunContext) -> UpdateDevice.Out:
        with self.connect(ctx) as nb:
            current = self.find(nb)
            payload: dict[str, Any] = {}
            site_id = id_of(current.get("site"))
            if self.new_name is not None:
                payload["name"] = self.new_name
            if self.site is not None and self.device_id is not None:
                site_id = self.resolve_id(nb, "site", self.site)
                payload["site"] = site_id
            if self.device_type is not None:
                payload["device_type"] = self.resolve_id(nb, "device type", self.device_type)
            if self.role is not None:
                payload["role"] = self.resolve_id(nb, "role", self.role)
            if status_value(self.status):
                payload["status"] = status_value(self.status)
            payload.update(self.common_payload(nb, site_id))
            changed = changed_fields(current, payload)
            dev_id = current["id"]
            if changed:
                what = f"updating device {current.get('name')!r} (id {dev_id})"
                body = {k: payload[k] for k in changed}
                with nb.doing(what):
                    result = nb.patch("dcim/devices", dev_id, body)
                ctx.logger.info(
                    "updated device %r (id %s): %s", result.get("name"), dev_id, ", ".join(changed)
                )
            else:
                result = current
                ctx.logger.info("device %r (id %s) already up to date", current.get("name"), dev_id)
            self.emit(result)
            return self.Out(**device_info(result).model_dump(), changed=changed)
