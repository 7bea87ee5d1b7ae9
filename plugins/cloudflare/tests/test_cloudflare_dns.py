"""DNS record tasks against the fake Cloudflare API."""

from __future__ import annotations

import json

import pytest
from cloudflare_support import assert_no_secret
from pydantic import ValidationError
from roost import TaskError
from roost.testing import run_task
from roost_cloudflare import dns

AUTO = {"enableAuto": True}


def test_create_record_returns_the_record(fake, creds):
    zone = fake.add_zone("example.com")
    result = run_task(
        dns.Create, zoneId=zone, recordType="A", name="app", content="192.0.2.10", proxied=True, **creds
    )
    out = result.outputs
    assert out["name"] == "app.example.com"
    assert out["type"] == "A"
    assert out["content"] == "192.0.2.10"
    assert out["proxied"] is True
    assert out["ttl"] == 1
    assert out["zoneId"] == zone
    assert out["recordId"] in fake.records[zone]
    req = [r for r in fake.requests if r.method == "POST"][0]
    assert req.headers["authorization"] == "Bearer good-token-0123456789"
    assert json.loads(req.body) == {
        "type": "A",
        "name": "app",
        "content": "192.0.2.10",
        "ttl": 1,
        "proxied": True,
    }
    assert_no_secret(result)


def test_zone_by_name_is_resolved(fake, creds):
    zone = fake.add_zone("example.org")
    fake.add_zone("example.com")
    result = run_task(
        dns.Create, zoneName="example.org", recordType="TXT", name="@", content="v=spf1 -all", **creds
    )
    assert result.outputs["name"] == "example.org"
    assert result.outputs["zoneId"] == zone
    lookups = [r for r in fake.requests if r.path.endswith("/zones")]
    assert lookups and lookups[0].query["name"] == ["example.org"]


def test_zone_id_holding_a_domain_name_is_looked_up(fake, creds):
    zone = fake.add_zone("example.net")
    result = run_task(
        dns.Create, zoneId="example.net", recordType="A", name="www", content="192.0.2.1", **creds
    )
    assert result.outputs["zoneId"] == zone
    assert any("resolved to id" in m for m in result.messages)


def test_unknown_zone_name_fails_clearly(fake, creds):
    result = run_task(
        dns.Create,
        zoneName="nope.example",
        recordType="A",
        name="x",
        content="192.0.2.1",
        raise_on_failure=False,
        **creds,
    )
    assert result.state == "FAILED"
    assert "no Cloudflare zone named 'nope.example'" in result.error


def test_identical_record_is_refused_with_cloudflare_error(fake, creds):
    zone = fake.add_zone("example.com")
    fake.add_record(zone, "A", "app", "192.0.2.10")
    result = run_task(
        dns.Create,
        zoneId=zone,
        recordType="A",
        name="app",
        content="192.0.2.10",
        raise_on_failure=False,
        **creds,
    )
    assert result.state == "FAILED"
    assert "HTTP 400" in result.error
    assert "[81057] An identical record already exists." in result.error


def test_invalid_content_reports_vendor_message(fake, creds):
    zone = fake.add_zone("example.com")
    with pytest.raises(TaskError, match=r"\[9005\] Content for A record must be a valid IPv4 address"):
        run_task(dns.Create, zoneId=zone, recordType="A", name="app", content="not-an-ip", **creds)


def test_update_sends_only_given_fields(fake, creds):
    zone = fake.add_zone("example.com")
    rec = fake.add_record(zone, "A", "app", "192.0.2.10", ttl=300)
    result = run_task(dns.Update, zoneId=zone, recordId=rec["id"], content="192.0.2.99", **creds)
    assert result.outputs["id"] == rec["id"]
    assert result.outputs["recordId"] == rec["id"]
    assert result.outputs["content"] == "192.0.2.99"
    assert result.outputs["ttl"] == 300
    patch = [r for r in fake.requests if r.method == "PATCH"][0]
    assert json.loads(patch.body) == {"content": "192.0.2.99"}
    assert fake.records[zone][rec["id"]]["content"] == "192.0.2.99"


def test_update_without_changes_is_an_error(fake, creds):
    zone = fake.add_zone("example.com")
    rec = fake.add_record(zone, "A", "app", "192.0.2.10")
    with pytest.raises(TaskError, match="nothing to update"):
        run_task(dns.Update, zoneId=zone, recordId=rec["id"], **creds)


def test_delete_record(fake, creds):
    zone = fake.add_zone("example.com")
    rec = fake.add_record(zone, "A", "app", "192.0.2.10")
    result = run_task(dns.Delete, zoneId=zone, recordId=rec["id"], **creds)
    assert result.outputs == {"deletedId": rec["id"], "zoneId": zone}
    assert fake.records[zone] == {}


def test_missing_record_is_a_404_error(fake, creds):
    zone = fake.add_zone("example.com")
    for task in (dns.Get, dns.Delete):
        result = run_task(task, zoneId=zone, recordId="0" * 32, raise_on_failure=False, **creds)
        assert result.state == "FAILED"
        assert "HTTP 404" in result.error
        assert "[81044] Record does not exist." in result.error


def test_get_record(fake, creds):
    zone = fake.add_zone("example.com")
    rec = fake.add_record(zone, "MX", "@", "mail.example.com", priority=10)
    out = run_task(dns.Get, zoneId=zone, recordId=rec["id"], **creds).outputs
    assert out["recordId"] == rec["id"]
    assert out["type"] == "MX"
    assert out["priority"] == 10
    assert out["name"] == "example.com"


def test_list_follows_every_page(fake, creds):
    zone = fake.add_zone("example.com")
    for i in range(23):
        fake.add_record(zone, "A", f"host{i}", f"192.0.2.{i + 1}")
    fake.add_record(zone, "TXT", "@", "hello")
    result = run_task(dns.List, zoneId=zone, perPage=5, **creds)
    assert result.outputs["count"] == 24
    assert len({r["id"] for r in result.outputs["records"]}) == 24
    pages = [r.query["page"][0] for r in fake.requests if r.path.endswith("/dns_records")]
    assert pages == ["1", "2", "3", "4", "5"]
    txt = run_task(dns.List, zoneId=zone, recordType="txt", **creds).outputs
    assert txt["count"] == 1 and txt["records"][0]["content"] == "hello"


def test_list_default_page_size_handles_many_records(fake, creds):
    zone = fake.add_zone("example.com")
    for i in range(130):
        fake.add_record(zone, "TXT", f"t{i}", f"value {i}")
    result = run_task(dns.List, zoneId=zone, **creds)
    assert result.outputs["count"] == 130
    assert [r.query["per_page"][0] for r in fake.requests if r.path.endswith("/dns_records")] == [
        "100",
        "100",
    ]


def test_upsert_creates_then_leaves_alone_then_updates(fake, creds):
    zone = fake.add_zone("example.com")
    props = dict(zoneId=zone, recordType="A", name="app", **creds)
    first = run_task(dns.Upsert, content="192.0.2.10", **props).outputs
    assert first["action"] == "created"
    assert first["name"] == "app.example.com"
    second = run_task(dns.Upsert, content="192.0.2.10", **props).outputs
    assert second["action"] == "unchanged"
    assert second["recordId"] == first["recordId"]
    third = run_task(dns.Upsert, content="192.0.2.20", **props).outputs
    assert third["action"] == "updated"
    assert third["recordId"] == first["recordId"]
    assert [r["content"] for r in fake.records[zone].values()] == ["192.0.2.20"]
    lookups = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/dns_records")]
    assert all(r.query["name"] == ["app.example.com"] and r.query["type"] == ["A"] for r in lookups)


def test_batch_applies_everything_in_one_request(fake, creds):
    zone = fake.add_zone("example.com")
    gone = fake.add_record(zone, "A", "old", "192.0.2.1")
    patched = fake.add_record(zone, "A", "app", "192.0.2.2")
    replaced = fake.add_record(zone, "TXT", "note", "before")
    result = run_task(
        dns.Batch,
        zoneId=zone,
        deletes=[{"id": gone["id"]}],
        patches=[{"id": patched["id"], "content": "192.0.2.22"}],
        puts=[{"id": replaced["id"], "type": "TXT", "name": "note", "content": "after", "ttl": 300}],
        posts=[{"type": "a", "name": "new", "content": "192.0.2.3"}],
        assets=AUTO,
        **creds,
    )
    out = result.outputs
    assert out["success"] is True
    assert [r["id"] for r in out["deletes"]] == [gone["id"]]
    assert out["patches"][0]["content"] == "192.0.2.22"
    assert out["puts"][0]["content"] == "after" and out["puts"][0]["ttl"] == 300
    assert out["posts"][0]["name"] == "new.example.com"
    batch = [r for r in fake.requests if r.path.endswith("/batch")]
    assert len(batch) == 1
    assert list(json.loads(batch[0].body)) == ["deletes", "patches", "puts", "posts"]
    names = sorted(r["name"] for r in fake.records[zone].values())
    assert names == ["app.example.com", "new.example.com", "note.example.com"]
    states = {a.id: a.metadata["state"] for a in result.assets[0].outputs}
    assert states[f"cloudflare:dns:{gone['id']}"] == "deleted"
    assert states[f"cloudflare:dns:{out['posts'][0]['id']}"] == "present"
    assert len(states) == 4


def test_batch_is_one_transaction(fake, creds):
    zone = fake.add_zone("example.com")
    keep = fake.add_record(zone, "A", "keep", "192.0.2.1")
    result = run_task(
        dns.Batch,
        zoneId=zone,
        deletes=[{"id": keep["id"]}],
        posts=[{"type": "A", "name": "bad", "content": "999.1.1.1"}],
        raise_on_failure=False,
        **creds,
    )
    assert result.state == "FAILED"
    assert "[9005]" in result.error
    assert list(fake.records[zone]) == [keep["id"]]


def test_batch_needs_something_to_do(fake, creds):
    with pytest.raises(ValidationError, match="at least one of posts, patches, puts or deletes"):
        run_task(dns.Batch, zoneId="0" * 32, **creds)


def test_batch_lists_may_come_from_expressions(fake, creds):
    zone = fake.add_zone("example.com")
    result = run_task(
        dns.Batch,
        zoneId=zone,
        posts="{{ records }}",
        variables={"records": [{"type": "A", "name": "e1", "content": "192.0.2.5"}]},
        **creds,
    )
    assert [r["name"] for r in result.outputs["posts"]] == ["e1.example.com"]


def test_auto_assets_describe_records(fake, creds):
    zone = fake.add_zone("example.com")
    created = run_task(
        dns.Create,
        zoneId=zone,
        recordType="CNAME",
        name="docs",
        content="example.github.io",
        assets=AUTO,
        **creds,
    )
    [bundle] = created.assets
    [asset] = bundle.outputs
    rec_id = created.outputs["recordId"]
    assert asset.id == f"cloudflare:dns:{rec_id}"
    assert asset.type == "io.kestra.core.models.assets.External"
    assert asset.display_name == "docs.example.com CNAME"
    assert asset.metadata == {
        "system": "cloudflare",
        "kind": "dns_record",
        "recordId": rec_id,
        "name": "docs.example.com",
        "type": "CNAME",
        "content": "example.github.io",
        "zone": "example.com",
        "zoneId": zone,
        "proxied": False,
        "ttl": 1,
        "state": "present",
    }
    read = run_task(dns.Get, zoneId=zone, recordId=rec_id, assets=AUTO, **creds)
    assert [a.id for a in read.assets[0].inputs] == [asset.id]
    assert read.assets[0].outputs == []
    upserted = run_task(
        dns.Upsert,
        zoneId=zone,
        recordType="CNAME",
        name="docs",
        content="other.example",
        assets=AUTO,
        **creds,
    )
    assert upserted.assets[0].outputs[0].metadata["content"] == "other.example"
    deleted = run_task(dns.Delete, zoneId=zone, recordId=rec_id, assets=AUTO, **creds)
    assert deleted.assets[0].outputs[0].id == asset.id
    assert deleted.assets[0].outputs[0].metadata["state"] == "deleted"


def test_no_assets_without_enable_auto(fake, creds):
    zone = fake.add_zone("example.com")
    result = run_task(dns.Create, zoneId=zone, recordType="A", name="a", content="192.0.2.1", **creds)
    assert result.assets == []
