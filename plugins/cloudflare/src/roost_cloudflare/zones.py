"""Zones: fetch one, list all."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator
from roost import Dynamic, RunContext, TaskError

from roost_cloudflare.base import CloudflareTask, Output
from roost_cloudflare.client import looks_like_zone_id


class Zone(Output):
    """A Cloudflare zone."""

    id: str
    """Zone identifier."""
    name: str | None = None
    """Domain name of the zone."""
    status: str | None = None
    """Zone status: active, pending, initializing, moved, deleted or deactivated."""
    paused: bool | None = None
    """Whether Cloudflare is paused for the zone (DNS only)."""
    type: str | None = None
    """Zone type: full, partial or secondary."""
    name_servers: list[str] | None = None
    """Cloudflare name servers assigned to the zone."""
    account_id: str | None = None
    """Identifier of the account owning the zone."""
    account_name: str | None = None
    """Name of the account owning the zone."""
    plan: str | None = None
    """Name of the zone's plan."""


def zone(raw: Any) -> Zone:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise TaskError("Cloudflare API returned a malformed zone: expected an object with an 'id'")
    account = raw.get("account") if isinstance(raw.get("account"), dict) else {}
    plan = raw.get("plan") if isinstance(raw.get("plan"), dict) else {}
    ns = raw.get("name_servers")
    return Zone(
        id=raw["id"],
        name=raw.get("name"),
        status=raw.get("status"),
        paused=raw.get("paused") if isinstance(raw.get("paused"), bool) else None,
        type=raw.get("type"),
        name_servers=[str(n) for n in ns] if isinstance(ns, list) else None,
        account_id=account.get("id"),
        account_name=account.get("name"),
        plan=plan.get("name"),
    )


class Get(CloudflareTask, type="io.kestra.plugin.cloudflare.zones.Get"):
    """Fetch a zone by id, or by host name; ``zoneId`` wins when both are set.

    ``GET /zones/{zone_id}``, or ``GET /zones?name=...`` for a host name (fails when no zone matches).
    """

    zone_id: Dynamic[str] | None = None
    """Zone identifier."""
    hostname: Dynamic[str] | None = None
    """Domain name of the zone, used when ``zoneId`` is not set."""

    @model_validator(mode="after")
    def _id_or_name(self) -> Get:
        if not self.zone_id and not self.hostname:
            raise ValueError("set zoneId or hostname")
        return self

    Out: ClassVar[type[Zone]] = Zone

    def run(self, ctx: RunContext) -> Zone:
        with self.client(ctx) as cf:
            if self.zone_id and looks_like_zone_id(self.zone_id):
                ctx.logger.info("fetching zone %s", self.zone_id)
                return zone(cf.zone(self.zone_id))
            zone_id, _ = cf.resolve_zone(None, self.hostname or self.zone_id)
            return zone(cf.zone(zone_id))


class List(CloudflareTask, type="io.kestra.plugin.cloudflare.zones.List"):
    """List the zones the credentials can see, following every page of results (``GET /zones``)."""

    name: Dynamic[str] | None = None
    """Only the zone with this domain name."""
    status: Dynamic[str] | None = None
    """Only zones with this status (active, pending...)."""
    account_id: Dynamic[str] | None = None
    """Only zones of this account."""
    per_page: Dynamic[int] = Field(default=50, ge=5, le=50)
    """Zones fetched per request (5 to 50)."""

    class Out(Output):
        zones: list[Zone]
        """The zones (id, name, status...)."""
        count: int
        """Number of zones."""

    def run(self, ctx: RunContext) -> List.Out:
        params = {"name": self.name, "status": self.status, "account.id": self.account_id}
        with self.client(ctx) as cf:
            raw = cf.list_all("/zones", params, per_page=self.per_page)
        zones = [zone(z) for z in raw]
        ctx.logger.info("%d zone(s)", len(zones))
        return self.Out(zones=zones, count=len(zones))
