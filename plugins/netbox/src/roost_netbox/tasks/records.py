"""NetBox's JSON objects as typed outputs, and the comparison of write payloads with them."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from roost import Output


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


def slug_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("slug") or value.get("name") or value.get("display")
    return None


def id_of(value: Any) -> int | None:
    return value.get("id") if isinstance(value, dict) else None


def choice_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("value")
    return value if isinstance(value, str) else None


def address_of(value: Any) -> str | None:
    return value.get("address") if isinstance(value, dict) else None


def tag_slugs(value: Any) -> list[str]:
    return [t.get("slug") or t.get("name") for t in value or [] if isinstance(t, dict)]


def site_info(obj: dict[str, Any]) -> SiteInfo:
    return SiteInfo(
        id=obj.get("id"),
        name=obj.get("name"),
        slug=obj.get("slug"),
        url=obj.get("url"),
        display_url=obj.get("display_url"),
        status=choice_of(obj.get("status")),
        region=slug_of(obj.get("region")),
        group=slug_of(obj.get("group")),
        tenant=slug_of(obj.get("tenant")),
        facility=obj.get("facility") or None,
        time_zone=obj.get("time_zone") or None,
        description=obj.get("description") or None,
        device_count=obj.get("device_count"),
        tags=tag_slugs(obj.get("tags")),
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
        status=choice_of(obj.get("status")),
        site=slug_of(obj.get("site")),
        site_id=id_of(obj.get("site")),
        role=slug_of(obj.get("role")),
        role_id=id_of(obj.get("role")),
        device_type=slug_of(dtype),
        device_type_id=id_of(dtype),
        manufacturer=slug_of(dtype.get("manufacturer")) if isinstance(dtype, dict) else None,
        platform=slug_of(obj.get("platform")),
        tenant=slug_of(obj.get("tenant")),
        rack=rack.get("name") if isinstance(rack, dict) else None,
        serial=obj.get("serial") or None,
        asset_tag=obj.get("asset_tag") or None,
        primary_ip=address_of(obj.get("primary_ip")),
        primary_ip4=address_of(obj.get("primary_ip4")),
        primary_ip6=address_of(obj.get("primary_ip6")),
        description=obj.get("description") or None,
        tags=tag_slugs(obj.get("tags")),
        custom_fields=obj.get("custom_fields") or {},
    )


def status_value(value: str | None) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


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
