"""Every Cloudflare task type, in the order the registry lists them."""

from __future__ import annotations

from roost_cloudflare import cache, dns, kv, waf, zones

TASKS = (
    dns.Create,
    dns.Update,
    dns.Delete,
    dns.Get,
    dns.List,
    dns.Upsert,
    dns.Batch,
    cache.Purge,
    waf.Create,
    waf.Delete,
    waf.List,
    kv.Get,
    kv.Write,
    kv.CreateNamespace,
    zones.Get,
    zones.List,
)

__all__ = ["TASKS"]
