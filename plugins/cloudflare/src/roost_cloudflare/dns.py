"""DNS record tasks: Create, Update, Delete, Get, List, Upsert, Batch."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from roost import AssetBundle, Dynamic, Model, RunContext, TaskError

from roost_cloudflare.base import DnsRecord, Output, ZoneTask, dns_record, record_asset


def _record_body(
    *,
    type_: str | None,
    name: str | None,
    content: str | None,
    ttl: int | None,
    proxied: bool | None,
    priority: int | None = None,
    comment: str | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if type_ is not None:
        body["type"] = type_.strip().upper()
    if name is not None:
        body["name"] = name.strip()
    if content is not None:
        body["content"] = content
    if ttl is not None:
        body["ttl"] = ttl
    if proxied is not None:
        body["proxied"] = proxied
    if priority is not None:
        body["priority"] = priority
    if comment is not None:
        body["comment"] = comment
    if tags is not None:
        body["tags"] = tags
    return body


class RecordOutput(Output):
    """One DNS record after the call."""

    record_id: str
    """Identifier of the record."""
    name: str | None = None
    """Fully qualified record name."""
    type: str | None = None
    """Record type."""
    content: str | None = None
    """Record value."""
    ttl: int | None = None
    """Time to live in seconds (1 = automatic)."""
    proxied: bool | None = None
    """Whether Cloudflare proxies the record."""
    priority: int | None = None
    """Priority (MX, SRV, URI)."""
    comment: str | None = None
    """Comment attached to the record."""
    zone_id: str | None = None
    """Identifier of the zone."""
    zone_name: str | None = None
    """Name of the zone."""

    @classmethod
    def of(cls, rec: DnsRecord, **extra: Any) -> Any:
        return cls(
            record_id=rec.id,
            name=rec.name,
            type=rec.type,
            content=rec.content,
            ttl=rec.ttl,
            proxied=rec.proxied,
            priority=rec.priority,
            comment=rec.comment,
            zone_id=rec.zone_id,
            zone_name=rec.zone_name,
            **extra,
        )

    def record(self) -> dict[str, Any]:
        return {
            "id": self.record_id,
            "name": self.name,
            "type": self.type,
            "content": self.content,
            "ttl": self.ttl,
            "proxied": self.proxied,
            "zone_id": self.zone_id,
            "zone_name": self.zone_name,
        }


class _RecordFields(ZoneTask):
    record_type: Dynamic[str]
    """Record type: A, AAAA, CNAME, TXT, MX, NS, SRV, PTR, CAA..."""
    name: Dynamic[str]
    """Record name: a fully qualified name (``app.example.com``), a name relative to the zone (``app``) or ``@``."""
    content: Dynamic[str]
    """Record value: an IPv4 address for A, IPv6 for AAAA, a host name for CNAME, text for TXT..."""
    ttl: Dynamic[int] = 1
    """Time to live in seconds; 1 means automatic."""
    proxied: Dynamic[bool] = False
    """Proxy the traffic through Cloudflare (A, AAAA and CNAME only)."""
    priority: Dynamic[int] | None = None
    """Priority, required for MX records."""
    comment: Dynamic[str] | None = None
    """Comment attached to the record."""

    def body(self) -> dict[str, Any]:
        return _record_body(
            type_=self.record_type,
            name=self.name,
            content=self.content,
            ttl=self.ttl,
            proxied=self.proxied,
            priority=self.priority,
            comment=self.comment,
        )


class Create(_RecordFields, type="io.kestra.plugin.cloudflare.dns.records.Create"):
    """Create a DNS record in a Cloudflare zone.

    ``POST /zones/{zone_id}/dns_records``. Cloudflare refuses a record identical to an
    existing one (code 81057); use ``Upsert`` to create-or-update by name and type.
    """

    Out: ClassVar[type[RecordOutput]] = RecordOutput

    def run(self, ctx: RunContext) -> RecordOutput:
        with self.client(ctx) as cf:
            zone_id, _ = self.resolve_zone(cf)
            body = self.body()
            ctx.logger.info("creating %s record %s in zone %s", body.get("type"), body.get("name"), zone_id)
            raw = cf.result("POST", f"/zones/{zone_id}/dns_records", json_body=body)
            rec = dns_record(raw, zone_id)
            ctx.logger.info("created DNS record %s (%s %s -> %s)", rec.id, rec.name, rec.type, rec.content)
            return RecordOutput.of(rec)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(outputs=[record_asset(out.record())])] if out else []


class Update(ZoneTask, type="io.kestra.plugin.cloudflare.dns.records.Update"):
    """Update fields of an existing DNS record (``PATCH /zones/{zone_id}/dns_records/{id}``).

    Only the properties you set are sent; the others keep their current value.
    """

    record_id: Dynamic[str]
    """Identifier of the record to update."""
    record_type: Dynamic[str] | None = None
    """New record type."""
    name: Dynamic[str] | None = None
    """New record name."""
    content: Dynamic[str] | None = None
    """New record value."""
    ttl: Dynamic[int] | None = None
    """New time to live in seconds (1 = automatic)."""
    proxied: Dynamic[bool] | None = None
    """New proxy status."""
    priority: Dynamic[int] | None = None
    """New priority (MX, SRV)."""
    comment: Dynamic[str] | None = None
    """New comment."""

    class Out(RecordOutput):
        id: str
        """Identifier of the updated record (Kestra's output name; same as ``recordId``)."""

    def run(self, ctx: RunContext) -> Update.Out:
        body = _record_body(
            type_=self.record_type,
            name=self.name,
            content=self.content,
            ttl=self.ttl,
            proxied=self.proxied,
            priority=self.priority,
            comment=self.comment,
        )
        if not body:
            raise TaskError("nothing to update: set at least one of recordType, name, content, ttl, proxied")
        with self.client(ctx) as cf:
            zone_id, _ = self.resolve_zone(cf)
            ctx.logger.info(
                "updating DNS record %s in zone %s (%s)", self.record_id, zone_id, ", ".join(body)
            )
            raw = cf.result("PATCH", f"/zones/{zone_id}/dns_records/{self.record_id}", json_body=body)
            rec = dns_record(raw, zone_id)
            return self.Out.of(rec, id=rec.id)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(outputs=[record_asset(out.record())])] if out else []


class Delete(ZoneTask, type="io.kestra.plugin.cloudflare.dns.records.Delete"):
    """Delete a DNS record by id (``DELETE /zones/{zone_id}/dns_records/{id}``)."""

    record_id: Dynamic[str]
    """Identifier of the record to delete."""

    class Out(Output):
        deleted_id: str
        """Identifier Cloudflare confirmed deleted."""
        zone_id: str
        """Identifier of the zone."""

    def run(self, ctx: RunContext) -> Delete.Out:
        with self.client(ctx) as cf:
            zone_id, _ = self.resolve_zone(cf)
            ctx.logger.info("deleting DNS record %s from zone %s", self.record_id, zone_id)
            raw = cf.result("DELETE", f"/zones/{zone_id}/dns_records/{self.record_id}")
            deleted = raw.get("id") if isinstance(raw.get("id"), str) else self.record_id
            return self.Out(deleted_id=deleted, zone_id=zone_id)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not out:
            return []
        return [
            AssetBundle(outputs=[record_asset({"id": out.deleted_id, "zone_id": out.zone_id}, "deleted")])
        ]


class Get(ZoneTask, type="io.kestra.plugin.cloudflare.dns.records.Get"):
    """Fetch one DNS record by id (``GET /zones/{zone_id}/dns_records/{id}``); fails when it does not exist."""

    record_id: Dynamic[str]
    """Identifier of the record."""

    Out: ClassVar[type[RecordOutput]] = RecordOutput

    def run(self, ctx: RunContext) -> RecordOutput:
        with self.client(ctx) as cf:
            zone_id, _ = self.resolve_zone(cf)
            ctx.logger.info("fetching DNS record %s from zone %s", self.record_id, zone_id)
            raw = cf.result("GET", f"/zones/{zone_id}/dns_records/{self.record_id}")
            return RecordOutput.of(dns_record(raw, zone_id))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(inputs=[record_asset(out.record())])] if out else []


class List(ZoneTask, type="io.kestra.plugin.cloudflare.dns.records.List"):
    """List the DNS records of a zone, following every page of results.

    ``GET /zones/{zone_id}/dns_records?page=N&per_page=100``; filters are passed to Cloudflare.
    """

    name: Dynamic[str] | None = None
    """Only records with this exact (fully qualified) name."""
    record_type: Dynamic[str] | None = None
    """Only records of this type."""
    content: Dynamic[str] | None = None
    """Only records with this exact content."""
    per_page: Dynamic[int] = Field(default=100, ge=1)
    """Records fetched per request (Cloudflare allows up to 5,000,000; 100 is its default)."""

    class Out(Output):
        records: list[DnsRecord]
        """The records (id, name, type, content, ttl, proxied...)."""
        count: int
        """Number of records."""

    def run(self, ctx: RunContext) -> List.Out:
        params = {
            "name": self.name,
            "type": self.record_type.upper() if self.record_type else None,
            "content": self.content,
        }
        with self.client(ctx) as cf:
            zone_id, _ = self.resolve_zone(cf)
            raw = cf.list_all(f"/zones/{zone_id}/dns_records", params, per_page=self.per_page)
            records = [dns_record(r, zone_id) for r in raw]
        ctx.logger.info("zone %s: %d DNS record(s)", zone_id, len(records))
        return self.Out(records=records, count=len(records))


class Upsert(_RecordFields, type="io.kestra.plugin.cloudflare.dns.records.Upsert"):
    """Create a DNS record, or update the existing one with the same name and type.

    Looks the record up with ``GET /zones/{zone_id}/dns_records?name=...&type=...``; when one
    exists it is patched (or left alone when already as wanted), otherwise it is created.
    A relative name (``app`` or ``@``) is expanded with the zone's name first.
    """

    class Out(RecordOutput):
        action: Literal["created", "updated", "unchanged"]
        """What happened: ``created``, ``updated`` or ``unchanged``."""

    def run(self, ctx: RunContext) -> Upsert.Out:
        with self.client(ctx) as cf:
            zone_id, zone_name = self.resolve_zone(cf)
            if zone_name is None:
                zone = cf.zone(zone_id)
                zone_name = zone.get("name") if isinstance(zone.get("name"), str) else None
            body = self.body()
            body["name"] = fqdn(body["name"], zone_name)
            found = cf.list_all(
                f"/zones/{zone_id}/dns_records", {"name": body["name"], "type": body["type"]}, per_page=100
            )
            existing = [dns_record(r, zone_id) for r in found]
            if not existing:
                ctx.logger.info("no %s record %s yet: creating it", body["type"], body["name"])
                raw = cf.result("POST", f"/zones/{zone_id}/dns_records", json_body=body)
                return self.Out.of(dns_record(raw, zone_id), action="created")
            current = existing[0]
            if len(existing) > 1:
                ctx.logger.warning(
                    "%d %s records are named %s; updating the first one (%s)",
                    len(existing),
                    body["type"],
                    body["name"],
                    current.id,
                )
            if _same(current, body):
                ctx.logger.info(
                    "%s record %s (%s) is already up to date", body["type"], body["name"], current.id
                )
                return self.Out.of(current, action="unchanged")
            ctx.logger.info("%s record %s exists (%s): updating it", body["type"], body["name"], current.id)
            raw = cf.result("PATCH", f"/zones/{zone_id}/dns_records/{current.id}", json_body=body)
            return self.Out.of(dns_record(raw, zone_id), action="updated")

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return [AssetBundle(outputs=[record_asset(out.record())])] if out else []


def fqdn(name: str, zone_name: str | None) -> str:
    """Expand a relative record name (``app``, ``@``) with the zone name, as Cloudflare does."""
    name = name.strip().rstrip(".")
    if not zone_name:
        return name
    zone_name = zone_name.lower()
    if name in ("@", ""):
        return zone_name
    if name.lower() == zone_name or name.lower().endswith("." + zone_name):
        return name
    return f"{name}.{zone_name}"


def _same(current: DnsRecord, body: dict[str, Any]) -> bool:
    for key in ("content", "ttl", "proxied", "priority", "comment"):
        if key in body and getattr(current, key) != body[key]:
            return False
    return True


class BatchRecord(Model):
    """A record to create in a batch."""

    type: str
    """Record type."""
    name: str
    """Record name (fully qualified or relative to the zone)."""
    content: str
    """Record value."""
    ttl: int | None = 1
    """Time to live in seconds (1 = automatic)."""
    proxied: bool | None = None
    """Proxy through Cloudflare."""
    priority: int | None = None
    """Priority (MX, SRV)."""
    comment: str | None = None
    """Comment."""


class BatchPatch(Model):
    """Fields to change on an existing record in a batch."""

    id: str
    """Identifier of the record."""
    type: str | None = None
    """New record type."""
    name: str | None = None
    """New record name."""
    content: str | None = None
    """New record value."""
    ttl: int | None = None
    """New time to live."""
    proxied: bool | None = None
    """New proxy status."""
    priority: int | None = None
    """New priority."""
    comment: str | None = None
    """New comment."""


class BatchPut(BatchRecord):
    """A record to overwrite completely in a batch."""

    id: str
    """Identifier of the record."""


class BatchDelete(Model):
    """A record to delete in a batch."""

    id: str
    """Identifier of the record."""


class Batch(ZoneTask, type="io.kestra.plugin.cloudflare.dns.records.Batch"):
    """Create, update, overwrite and delete DNS records in one request.

    ``POST /zones/{zone_id}/dns_records/batch``: Cloudflare runs the whole batch in one
    transaction, in this order: deletes, patches, puts, posts. Lists left empty are omitted.
    """

    posts: Dynamic[list[BatchRecord]] = Field(default_factory=list)
    """Records to create."""
    patches: Dynamic[list[BatchPatch]] = Field(default_factory=list)
    """Records to update (by id; only the fields given change)."""
    puts: Dynamic[list[BatchPut]] = Field(default_factory=list)
    """Records to overwrite (by id; every field is replaced)."""
    deletes: Dynamic[list[BatchDelete]] = Field(default_factory=list)
    """Records to delete (by id)."""

    @model_validator(mode="after")
    def _something_to_do(self) -> Batch:
        if all(isinstance(v, list) and not v for v in (self.posts, self.patches, self.puts, self.deletes)):
            raise ValueError("at least one of posts, patches, puts or deletes must be given")
        return self

    class Out(Output):
        success: bool
        """True when Cloudflare accepted the batch."""
        deletes: list[DnsRecord] = Field(default_factory=list)
        """Records deleted."""
        patches: list[DnsRecord] = Field(default_factory=list)
        """Records updated."""
        puts: list[DnsRecord] = Field(default_factory=list)
        """Records overwritten."""
        posts: list[DnsRecord] = Field(default_factory=list)
        """Records created."""

    def run(self, ctx: RunContext) -> Batch.Out:
        def dump(items: list[Model]) -> list[dict[str, Any]]:
            out = []
            for item in items:
                data = item.model_dump(exclude_none=True)
                if "type" in data:
                    data["type"] = data["type"].upper()
                out.append(data)
            return out

        body = {
            key: dump(getattr(self, key))
            for key in ("deletes", "patches", "puts", "posts")
            if getattr(self, key)
        }
        if not body:
            raise TaskError("nothing to do: posts, patches, puts and deletes are all empty")
        with self.client(ctx) as cf:
            zone_id, _ = self.resolve_zone(cf)
            ctx.logger.info(
                "DNS batch on zone %s: %s",
                zone_id,
                ", ".join(f"{len(v)} {k}" for k, v in body.items()),
            )
            result = cf.result("POST", f"/zones/{zone_id}/dns_records/batch", json_body=body)
            out: dict[str, Any] = {"success": True}
            for key in ("deletes", "patches", "puts", "posts"):
                items = result.get(key) or []
                if not isinstance(items, list):
                    raise cf.malformed(f"POST /zones/{zone_id}/dns_records/batch", f"'{key}' is not a list")
                out[key] = [dns_record(r, zone_id, f"batch {key} record") for r in items]
        ctx.logger.info("DNS batch done: %s", ", ".join(f"{len(out[k])} {k}" for k in body))
        return self.Out(**out)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not out:
            return []
        assets = [record_asset(r, "deleted") for r in out.deletes]
        assets += [record_asset(r) for r in (*out.patches, *out.puts, *out.posts)]
        return [AssetBundle(outputs=assets)] if assets else []
