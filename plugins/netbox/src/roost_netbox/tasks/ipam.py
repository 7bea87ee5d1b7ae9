"""IPAM tasks: assign IP addresses to interfaces."""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field
from roost import Asset, AssetBundle, Dynamic, Output, RunContext, TaskError

from roost_netbox.client import NetBox
from roost_netbox.tasks.base import EXTERNAL, NetBoxTask
from roost_netbox.tasks.records import changed_fields, choice_of, id_of, status_value


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

    def target(
        self, nb: NetBox, ctx: RunContext
    ) -> tuple[str | None, int | None, dict[str, Any] | None, bool]:
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
        with nb.doing(what):
            found = nb.all("dcim/interfaces", {"name": self.interface, **scope})
        if found:
            return "dcim.interface", found[0]["id"], device, False
        if not self.create_interface:
            raise TaskError(
                f"interface {self.interface!r} not found on device {device.get('name')!r} "
                "(set createInterface: true to create it)"
            )
        what = f"creating interface {self.interface!r} on device {device.get('name')!r}"
        with nb.doing(what):
            iface = nb.create(
                "dcim/interfaces",
                {"device": device["id"], "name": self.interface, "type": self.interface_type},
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
        with self.connect(ctx) as nb:
            vrf = self.resolve(nb, "vrf", self.vrf) if self.vrf is not None else None
            otype, oid, device, iface_created = self.target(nb, ctx)

            payload: dict[str, Any] = {"address": address, "status": status_value(self.status) or "active"}
            payload["vrf"] = vrf["id"] if vrf else None
            if otype:
                payload["assigned_object_type"] = otype
                payload["assigned_object_id"] = oid
            if self.role is not None:
                payload["role"] = status_value(self.role)
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
            with nb.doing(what):
                existing = nb.all(
                    "ipam/ip-addresses", {"address": str(ip.ip), "vrf_id": vrf["id"] if vrf else None}
                )
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
                    with nb.doing(what):
                        record = nb.patch("ipam/ip-addresses", current["id"], body)
                    updated = True
                    ctx.logger.info(
                        "updated IP address %s (id %s): %s", address, record.get("id"), ", ".join(changed)
                    )
                else:
                    record = current
                    ctx.logger.info(
                        "IP address %s (id %s) already assigned as asked", address, current.get("id")
                    )
            else:
                what = f"creating IP address {address}"
                with nb.doing(what):
                    record = nb.create("ipam/ip-addresses", payload)
                created = True
                ctx.logger.info("created IP address %s (id %s)", address, record.get("id"))

            primary = False
            if device is not None:
                family_key = "primary_ip4" if ip.version == 4 else "primary_ip6"
                primary = id_of(device.get(family_key)) == record.get("id")
                if self.set_primary and not primary:
                    what = f"setting {address} as primary address of device {device.get('name')!r}"
                    with nb.doing(what):
                        device = nb.patch("dcim/devices", device["id"], {family_key: record["id"]})
                    primary = True
                    ctx.logger.info(
                        "%s is now the primary IPv%d address of %r", address, ip.version, device.get("name")
                    )

            assigned = (
                record.get("assigned_object") if isinstance(record.get("assigned_object"), dict) else {}
            )
            dev_ref = assigned.get("device") if isinstance(assigned.get("device"), dict) else None
            out = self.Out(
                id=record["id"],
                address=record.get("address") or address,
                url=record.get("url"),
                display_url=record.get("display_url"),
                status=choice_of(record.get("status")),
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
