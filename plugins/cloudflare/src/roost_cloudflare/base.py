"""Shared properties of every Cloudflare task: credentials, base URL, HTTP options, zone."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, model_validator
from roost import Asset, Dynamic, RunContext, Task, TaskError
from roost import Output as _Output

from roost_cloudflare.client import DEFAULT_BASE_URL, CloudflareClient, HttpOptions

EXTERNAL = "io.kestra.core.models.assets.External"


class Output(_Output):
    """Base of this plugin's outputs: attribute docstrings become field descriptions in the schema."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class CloudflareTask(Task):
    """Base of the Cloudflare tasks (not a task type itself)."""

    api_token: Dynamic[str] | None = None
    """Cloudflare API token, sent as ``Authorization: Bearer``; use ``{{ secret('CLOUDFLARE_API_TOKEN') }}``.

    Give the token only the permissions the task needs (DNS Write, Cache Purge, Workers KV
    Storage Write...). Set either this, or ``email`` and ``apiKey``."""
    email: Dynamic[str] | None = None
    """Account e-mail for the legacy Global API key authentication (``X-Auth-Email``)."""
    api_key: Dynamic[str] | None = None
    """Global API key for the legacy authentication (``X-Auth-Key``); use a secret."""
    base_url: Dynamic[str] = DEFAULT_BASE_URL
    """Base URL of the Cloudflare API; change it only for a proxy or a test server."""
    options: HttpOptions | None = None
    """Advanced HTTP settings: timeouts, redirects, TLS, proxy."""

    @model_validator(mode="after")
    def _credentials_given(self) -> CloudflareTask:
        if self.api_token:
            return self
        if self.email and self.api_key:
            return self
        if self.email or self.api_key:
            raise ValueError("email and apiKey go together: set both, or set apiToken instead")
        raise ValueError("Cloudflare credentials are missing: set apiToken, or email and apiKey")

    def client(self, ctx: RunContext) -> CloudflareClient:
        return CloudflareClient(
            self.base_url,
            api_token=self.api_token or None,
            email=self.email or None,
            api_key=self.api_key or None,
            options=self.options,
            ctx=ctx,
        )


class ZoneTask(CloudflareTask):
    """A Cloudflare task that works on one zone, given by id or by name."""

    zone_id: Dynamic[str] | None = None
    """Zone identifier (32 hexadecimal characters). A domain name given here is looked up as ``zoneName``."""
    zone_name: Dynamic[str] | None = None
    """Zone (domain) name such as ``example.com``, resolved to its id; ``zoneId`` wins when both are set."""

    @model_validator(mode="after")
    def _zone_given(self) -> ZoneTask:
        if not self.zone_id and not self.zone_name:
            raise ValueError("set zoneId or zoneName")
        return self

    def resolve_zone(self, client: CloudflareClient) -> tuple[str, str | None]:
        return client.resolve_zone(self.zone_id or None, self.zone_name or None)


class ScopeTask(CloudflareTask):
    """A task on a zone-level or an account-level resource (IP access rules)."""

    zone_id: Dynamic[str] | None = None
    """Zone identifier for a zone-level rule; mutually exclusive with ``accountId``."""
    zone_name: Dynamic[str] | None = None
    """Zone name for a zone-level rule, resolved to its id."""
    account_id: Dynamic[str] | None = None
    """Account identifier for an account-level rule; mutually exclusive with ``zoneId``/``zoneName``."""

    @model_validator(mode="after")
    def _one_scope(self) -> ScopeTask:
        zone = bool(self.zone_id or self.zone_name)
        if zone == bool(self.account_id):
            raise ValueError(
                "set exactly one scope: zoneId (or zoneName) for a zone, or accountId for an account"
            )
        return self

    def scope(self, client: CloudflareClient) -> tuple[str, str, str]:
        """(URL prefix, scope kind, scope id)."""
        if self.account_id:
            return f"/accounts/{self.account_id}", "account", self.account_id
        zone_id, _ = client.resolve_zone(self.zone_id or None, self.zone_name or None)
        return f"/zones/{zone_id}", "zone", zone_id


def require_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"{what} must not be empty")
    return value


class DnsRecord(Output):
    """A DNS record as Cloudflare returns it."""

    id: str
    """Record identifier."""
    name: str | None = None
    """Fully qualified record name."""
    type: str | None = None
    """Record type (A, AAAA, CNAME, TXT, MX...)."""
    content: str | None = None
    """Record value."""
    ttl: int | None = None
    """Time to live in seconds; 1 means automatic."""
    proxied: bool | None = None
    """Whether Cloudflare proxies the traffic (orange cloud)."""
    priority: int | None = None
    """Priority (MX, SRV, URI records)."""
    comment: str | None = None
    """Comment attached to the record."""
    tags: list[str] | None = None
    """Tags attached to the record."""
    zone_id: str | None = None
    """Identifier of the zone holding the record."""
    zone_name: str | None = None
    """Name of the zone holding the record."""
    created_on: str | None = None
    """Creation time (ISO 8601)."""
    modified_on: str | None = None
    """Last modification time (ISO 8601)."""


def dns_record(raw: Any, zone_id: str | None = None, label: str = "DNS record") -> DnsRecord:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise TaskError(f"Cloudflare API returned a malformed {label}: expected an object with an 'id'")
    data = {
        key: raw.get(key)
        for key in ("id", "name", "type", "content", "ttl", "proxied", "priority", "comment", "tags")
    }
    data["zone_id"] = raw.get("zone_id") or zone_id
    data["zone_name"] = raw.get("zone_name")
    data["created_on"] = raw.get("created_on")
    data["modified_on"] = raw.get("modified_on")
    if not isinstance(data["ttl"], int) or isinstance(data["ttl"], bool):
        data["ttl"] = None
    if not isinstance(data["tags"], list):
        data["tags"] = None
    try:
        return DnsRecord(**data)
    except Exception as exc:
        raise TaskError(f"Cloudflare API returned a malformed {label}: {exc}") from None


def record_asset(record: DnsRecord | dict[str, Any], state: str = "present") -> Asset:
    """The asset of one DNS record: id ``cloudflare:dns:<record id>``, metadata with name, type, content..."""
    rec = record if isinstance(record, dict) else record.model_dump()
    zone = rec.get("zone_name") or rec.get("zone_id")
    metadata = {
        "system": "cloudflare",
        "kind": "dns_record",
        "recordId": rec.get("id"),
        "name": rec.get("name"),
        "type": rec.get("type"),
        "content": rec.get("content"),
        "zone": zone,
        "zoneId": rec.get("zone_id"),
        "proxied": rec.get("proxied"),
        "ttl": rec.get("ttl"),
        "state": state,
    }
    display = " ".join(str(p) for p in (rec.get("name"), rec.get("type")) if p) or None
    return Asset(
        id=f"cloudflare:dns:{rec.get('id')}",
        type=EXTERNAL,
        display_name=display,
        metadata={k: v for k, v in metadata.items() if v is not None},
    )
