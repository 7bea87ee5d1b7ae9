"""The standard type checks, Kestra's documented examples, and flows on the real engine."""

from __future__ import annotations

import base64

from cloudflare_support import TOKEN
from roost.testing.suite import TypeSuite
from roost_cloudflare import tasks

# Kestra's documented examples for its Cloudflare tasks, as written on kestra.io.
KESTRA_EXAMPLES = [
    """
id: create_dns
namespace: company.team
tasks:
  - id: create_record
    type: io.kestra.plugin.cloudflare.dns.records.Create
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
    recordType: "A"
    name: "app.example.com"
    content: "1.2.3.4"
    proxied: true
""",
    """
id: update_dns_record
namespace: company.team
tasks:
  - id: update_record
    type: io.kestra.plugin.cloudflare.dns.records.Update
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
    recordId: "abc123"
    content: "5.6.7.8"
""",
    """
id: upsert_dns_record
namespace: company.team
tasks:
  - id: ensure_dns
    type: io.kestra.plugin.cloudflare.dns.records.Upsert
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
    recordType: "A"
    name: "app.example.com"
    content: "1.2.3.4"
""",
    """
id: dns_records
namespace: company.team
tasks:
  - id: get_record
    type: io.kestra.plugin.cloudflare.dns.records.Get
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
    recordId: "abc123"
  - id: delete_record
    type: io.kestra.plugin.cloudflare.dns.records.Delete
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
    recordId: "abc123"
  - id: list_records
    type: io.kestra.plugin.cloudflare.dns.records.List
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
""",
    """
id: batch_dns
namespace: company.team
tasks:
  - id: batch_records
    type: io.kestra.plugin.cloudflare.dns.records.Batch
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
    posts:
      - type: "A"
        name: "app1.example.com"
        content: "1.2.3.4"
        ttl: 1
        proxied: false
      - type: "A"
        name: "app2.example.com"
        content: "5.6.7.8"
        ttl: 1
        proxied: false
""",
    """
id: purge
namespace: company.team
tasks:
  - id: purge_all
    type: io.kestra.plugin.cloudflare.cache.Purge
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
    purgeAll: true
  - id: purge_files
    type: io.kestra.plugin.cloudflare.cache.Purge
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
    files:
      - "https://example.com/app.js"
""",
    """
id: ip_access_rules
namespace: company.team
tasks:
  - id: block_ip
    type: io.kestra.plugin.cloudflare.waf.accessrules.Create
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "zone123"
    mode: block
    target: ip
    value: "1.2.3.4"
  - id: delete_rule
    type: io.kestra.plugin.cloudflare.waf.accessrules.Delete
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "zone123"
    ruleId: "92f17202ed8bd63d69a66b86a49a8f6b"
  - id: list_access_rules
    type: io.kestra.plugin.cloudflare.waf.accessrules.List
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "your_zone_id"
""",
    """
id: workers_kv
namespace: company.team
tasks:
  - id: create_namespace
    type: io.kestra.plugin.cloudflare.compute.namespaces.Create
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    accountId: "your_account_id"
    title: "my-namespace"
  - id: bulk_write_kv
    type: io.kestra.plugin.cloudflare.compute.kv.Write
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    accountId: "your_account_id"
    namespaceId: "your_namespace_id"
    keyValues:
      - key: "feature_flag"
        value: "enabled"
      - key: "release_version"
        value: "v1.2.3"
  - id: bulk_get_kv
    type: io.kestra.plugin.cloudflare.compute.kv.Get
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    accountId: "your_account_id"
    namespaceId: "your_namespace_id"
    keys:
      - "feature_flag"
      - "release_version"
""",
    """
id: zones
namespace: company.team
tasks:
  - id: get_zone
    type: io.kestra.plugin.cloudflare.zones.Get
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    zoneId: "zone123"
  - id: get_zone_by_hostname
    type: io.kestra.plugin.cloudflare.zones.Get
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    hostname: "example.com"
  - id: list_zones
    type: io.kestra.plugin.cloudflare.zones.List
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
""",
]

# A release flow: point the app at a new address, purge its host, record the release in Workers KV.
RELEASE = """
id: release
namespace: company.team
inputs:
  - id: ip
    type: STRING
    defaults: 192.0.2.50
tasks:
  - id: dns
    type: io.kestra.plugin.cloudflare.dns.records.Upsert
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    baseUrl: "{{ secret('CLOUDFLARE_BASE_URL') }}"
    zoneName: example.com
    recordType: A
    name: app
    content: "{{ inputs.ip }}"
    proxied: true
    assets:
      enableAuto: true
  - id: purge
    type: io.kestra.plugin.cloudflare.cache.Purge
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    baseUrl: "{{ secret('CLOUDFLARE_BASE_URL') }}"
    zoneId: "{{ outputs.dns.zoneId }}"
    hosts:
      - "{{ outputs.dns.name }}"
  - id: remember
    type: io.kestra.plugin.cloudflare.compute.kv.Write
    apiToken: "{{ secret('CLOUDFLARE_API_TOKEN') }}"
    baseUrl: "{{ secret('CLOUDFLARE_BASE_URL') }}"
    accountId: "{{ secret('CLOUDFLARE_ACCOUNT_ID') }}"
    namespaceId: "{{ secret('CLOUDFLARE_KV_NAMESPACE') }}"
    key: current_ip
    value: "{{ outputs.dns.content }}"
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.dns.action }} {{ outputs.dns.name }} -> {{ outputs.dns.content }}, purge {{ outputs.purge.requestId }}"
"""


class TestCloudflareTypes(TypeSuite):
    types = tasks.TASKS
    examples = [*KESTRA_EXAMPLES, RELEASE]


def _secret(monkeypatch, key: str, value: str) -> None:
    monkeypatch.setenv(f"SECRET_{key}", base64.b64encode(value.encode()).decode())


def test_release_flow_on_the_engine(run_flow, roost_engine, fake, monkeypatch):
    zone = fake.add_zone("example.com")
    ns = fake.add_namespace("releases")
    _secret(monkeypatch, "CLOUDFLARE_BASE_URL", fake.base_url)
    _secret(monkeypatch, "CLOUDFLARE_ACCOUNT_ID", fake.account_id)
    _secret(monkeypatch, "CLOUDFLARE_KV_NAMESPACE", ns)
    emitted = []
    roost_engine.asset_sink = lambda job, ctx, bundles: emitted.extend(bundles)
    ex = run_flow(RELEASE)
    assert ex.state.current == "SUCCESS", [(tr.task_id, tr.state.current) for tr in ex.task_runs]
    runs = {tr.task_id: tr for tr in ex.task_runs}
    assert runs["dns"].outputs["action"] == "created"
    assert runs["dns"].outputs["name"] == "app.example.com"
    assert fake.purges[0]["hosts"] == ["app.example.com"] and fake.purges[0]["zone_id"] == zone
    assert fake.kv[ns]["current_ip"]["value"] == b"192.0.2.50"
    [asset] = [a for b in emitted for a in b.outputs]
    assert asset.id == f"cloudflare:dns:{runs['dns'].outputs['recordId']}"
    assert asset.metadata["content"] == "192.0.2.50" and asset.metadata["proxied"] is True
    logs = roost_engine.store.get_logs("main", ex.id)
    assert any("created app.example.com -> 192.0.2.50" in log["message"] for log in logs)
    assert not any(TOKEN in log["message"] for log in logs)
    again = run_flow(RELEASE, {"ip": "192.0.2.51"})
    assert {tr.task_id: tr for tr in again.task_runs}["dns"].outputs["action"] == "updated"
