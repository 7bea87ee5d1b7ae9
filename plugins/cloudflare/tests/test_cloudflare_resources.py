"""Cache purge, WAF access rules, Workers KV and zones against the fake Cloudflare API."""

from __future__ import annotations

import json

import pytest
from cloudflare_support import assert_no_secret
from pydantic import ValidationError
from roost import TaskError
from roost.testing import run_task
from roost_cloudflare import cache, kv, waf, zones

# -- cache ------------------------------------------------------------------------------------------


def test_purge_everything(fake, creds):
    zone = fake.add_zone("example.com")
    out = run_task(cache.Purge, zoneId=zone, purgeAll=True, **creds).outputs
    assert fake.purges == [{"id": out["requestId"], "zone_id": zone, "purge_everything": True}]
    assert out["purged"] == {"everything": 1}


def test_purge_targets_are_sent_by_kind_in_chunks_of_30(fake, creds):
    zone = fake.add_zone("example.com")
    files = [f"https://example.com/a{i}.js" for i in range(65)]
    out = run_task(
        cache.Purge,
        zoneId=zone,
        files=files,
        tags=["product-1"],
        hosts=["img.example.com"],
        prefixes=["example.com/x"],
        **creds,
    ).outputs
    assert out["purged"] == {"files": 65, "tags": 1, "hosts": 1, "prefixes": 1}
    assert len(out["requestIds"]) == 6
    assert [len(p["files"]) for p in fake.purges if "files" in p] == [30, 30, 5]
    assert [p for p in fake.purges if "tags" in p][0]["tags"] == ["product-1"]
    assert out["requestId"] == out["requestIds"][0]


def test_purge_all_wins_over_lists(fake, creds):
    zone = fake.add_zone("example.com")
    result = run_task(cache.Purge, zoneId=zone, purgeAll=True, files=["https://example.com/x"], **creds)
    assert [list(p)[2] for p in fake.purges] == ["purge_everything"]
    assert any("ignored" in m for m in result.messages)


def test_purge_needs_a_target(fake, creds):
    zone = fake.add_zone("example.com")
    with pytest.raises(TaskError, match="nothing to purge"):
        run_task(cache.Purge, zoneId=zone, files=[], **creds)


# -- WAF IP access rules --------------------------------------------------------------------------


def test_zone_level_access_rule_lifecycle(fake, creds):
    zone = fake.add_zone("example.com")
    created = run_task(
        waf.Create, zoneId=zone, mode="BLOCK", target="IP", value="198.51.100.7", notes="abuse", **creds
    )
    out = created.outputs
    assert out["mode"] == "block" and out["target"] == "ip" and out["value"] == "198.51.100.7"
    assert out["scope"] == "zone" and out["scopeId"] == zone
    assert out["ruleId"] in fake.zone_rules[zone]
    body = json.loads([r for r in fake.requests if r.method == "POST"][0].body)
    assert body == {
        "mode": "block",
        "configuration": {"target": "ip", "value": "198.51.100.7"},
        "notes": "abuse",
    }
    listed = run_task(waf.List, zoneId=zone, **creds).outputs
    assert listed["count"] == 1
    assert listed["rules"][0]["notes"] == "abuse"
    assert listed["rules"][0]["configuration"] == {"target": "ip", "value": "198.51.100.7"}
    deleted = run_task(waf.Delete, zoneId=zone, ruleId=out["ruleId"], **creds).outputs
    assert deleted == {"ruleId": out["ruleId"], "deleted": True}
    assert fake.zone_rules[zone] == {}


def test_account_level_rules_and_pagination(fake, creds):
    account = fake.account_id
    for i in range(11):
        run_task(
            waf.Create, accountId=account, mode="challenge", target="ip", value=f"203.0.113.{i}", **creds
        )
    run_task(waf.Create, accountId=account, mode="block", target="country", value="XX", **creds)
    fake.requests.clear()
    listed = run_task(waf.List, accountId=account, perPage=5, **creds).outputs
    assert listed["count"] == 12
    assert all(r["scope"] == "account" for r in listed["rules"])
    assert [r.query["page"][0] for r in fake.requests] == ["1", "2", "3"]
    blocked = run_task(waf.List, accountId=account, mode="block", **creds).outputs
    assert [r["value"] for r in blocked["rules"]] == ["XX"]


def test_access_rule_validation():
    with pytest.raises(ValidationError, match="mode must be one of"):
        waf.Create.model_validate(
            {
                "id": "t",
                "type": waf.Create.type_id,
                "apiToken": "x",
                "zoneId": "z",
                "mode": "nuke",
                "target": "ip",
                "value": "1.2.3.4",
            }
        )
    with pytest.raises(ValidationError, match="exactly one scope"):
        waf.List.model_validate(
            {"id": "t", "type": waf.List.type_id, "apiToken": "x", "zoneId": "z", "accountId": "a"}
        )
    with pytest.raises(ValidationError, match="exactly one scope"):
        waf.Delete.model_validate({"id": "t", "type": waf.Delete.type_id, "apiToken": "x", "ruleId": "r"})


def test_access_rule_errors_come_from_cloudflare(fake, creds):
    zone = fake.add_zone("example.com")
    bad = run_task(
        waf.Create, zoneId=zone, mode="block", target="ip", value="not-an-ip", raise_on_failure=False, **creds
    )
    assert "[10010]" in bad.error and "invalid ip value" in bad.error
    missing = run_task(waf.Delete, zoneId=zone, ruleId="f" * 32, raise_on_failure=False, **creds)
    assert "HTTP 404" in missing.error and "firewallaccessrules.api.not_found" in missing.error


def test_older_waf_type_ids_are_aliases():
    assert "io.kestra.plugin.cloudflare.waf.Create" in waf.Create.type_aliases
    assert waf.List.type_id == "io.kestra.plugin.cloudflare.waf.accessrules.List"


# -- Workers KV ----------------------------------------------------------------------------------


def test_create_namespace(fake, creds):
    out = run_task(kv.CreateNamespace, accountId=fake.account_id, title="sessions", **creds).outputs
    assert fake.namespaces[out["namespaceId"]]["title"] == "sessions"
    assert out["title"] == "sessions"
    dup = run_task(
        kv.CreateNamespace, accountId=fake.account_id, title="sessions", raise_on_failure=False, **creds
    )
    assert "[10014]" in dup.error and "already exists" in dup.error


def test_write_and_read_one_key(fake, creds):
    ns = fake.add_namespace("config")
    common = dict(accountId=fake.account_id, namespaceId=ns, **creds)
    out = run_task(kv.Write, key="feature/flag one", value="enabled", expirationTtl=3600, **common).outputs
    assert out == {"successfulKeyCount": 1, "unsuccessfulKeys": [], "keys": ["feature/flag one"]}
    stored = fake.kv[ns]["feature/flag one"]
    assert stored["value"] == b"enabled" and stored["expiration_ttl"] == 3600
    put = [r for r in fake.requests if r.method == "PUT"][0]
    assert put.path.endswith("/values/feature%2Fflag%20one")
    got = run_task(kv.Get, key="feature/flag one", **common).outputs
    assert got["value"] == "enabled"
    assert got["values"] == {"feature/flag one": "enabled"}


def test_write_one_key_with_metadata_uses_multipart(fake, creds):
    ns = fake.add_namespace("config")
    common = dict(accountId=fake.account_id, namespaceId=ns, **creds)
    run_task(kv.Write, key="release", value={"version": "1.2.3"}, metadata={"by": "roost"}, **common)
    stored = fake.kv[ns]["release"]
    assert json.loads(stored["value"]) == {"version": "1.2.3"}
    assert stored["metadata"] == {"by": "roost"}
    got = run_task(kv.Get, key="release", valueType="json", **common).outputs
    assert got["value"] == {"version": "1.2.3"}


def test_bulk_write_and_bulk_get(fake, creds):
    ns = fake.add_namespace("bulk")
    common = dict(accountId=fake.account_id, namespaceId=ns, **creds)
    pairs = [{"key": f"k{i}", "value": f"v{i}"} for i in range(150)]
    pairs.append({"key": "obj", "value": {"a": 1}, "expirationTtl": 120, "metadata": {"m": True}})
    out = run_task(kv.Write, keyValues=pairs, **common).outputs
    assert out["successfulKeyCount"] == 151
    assert fake.kv[ns]["obj"]["expiration_ttl"] == 120 and fake.kv[ns]["obj"]["value"] == b'{"a":1}'
    keys = [f"k{i}" for i in range(150)] + ["absent"]
    got = run_task(kv.Get, keys=keys, **common).outputs
    assert got["values"]["k149"] == "v149"
    assert got["values"]["absent"] is None
    assert got["missing"] == ["absent"]
    assert len([r for r in fake.requests if r.path.endswith("/bulk/get")]) == 2


def test_missing_single_key(fake, creds):
    ns = fake.add_namespace("config")
    common = dict(accountId=fake.account_id, namespaceId=ns, **creds)
    result = run_task(kv.Get, key="nope", **common)
    assert result.outputs["missing"] == ["nope"]
    assert "value" not in result.outputs  # null outputs are left out
    strict = run_task(kv.Get, key="nope", errorOnMissing=True, raise_on_failure=False, **common)
    assert "HTTP 404" in strict.error and "[10009] get: 'key not found'" in strict.error


def test_unsuccessful_keys_fail_the_task(fake, creds):
    ns = fake.add_namespace("bulk")
    result = run_task(
        kv.Write,
        accountId=fake.account_id,
        namespaceId=ns,
        keyValues=[{"key": "ok", "value": "1"}, {"key": "x" * 600, "value": "2"}],
        raise_on_failure=False,
        **creds,
    )
    assert result.state == "FAILED"
    assert "did not write 1 of 2 key(s)" in result.error


def test_kv_ttl_below_cloudflare_minimum(fake, creds):
    ns = fake.add_namespace("config")
    with pytest.raises(TaskError, match=r"\[10033\].*at least 60"):
        run_task(
            kv.Write, accountId=fake.account_id, namespaceId=ns, key="a", value="b", expirationTtl=10, **creds
        )


def test_kv_needs_exactly_one_of_key_or_keys():
    base = {"id": "t", "apiToken": "x", "accountId": "a", "namespaceId": "n"}
    with pytest.raises(ValidationError, match="exactly one of keys"):
        kv.Get.model_validate({**base, "type": kv.Get.type_id})
    with pytest.raises(ValidationError, match="exactly one of keyValues"):
        kv.Write.model_validate({**base, "type": kv.Write.type_id, "key": "a", "keyValues": []})


def test_unknown_namespace_is_reported(fake, creds):
    result = run_task(
        kv.Get, accountId=fake.account_id, namespaceId="f" * 32, keys=["a"], raise_on_failure=False, **creds
    )
    assert "HTTP 404" in result.error and "namespace not found" in result.error
    assert_no_secret(result)


# -- zones --------------------------------------------------------------------------------------


def test_get_zone_by_id_and_by_hostname(fake, creds):
    zone = fake.add_zone("example.com")
    by_id = run_task(zones.Get, zoneId=zone, **creds).outputs
    assert by_id["id"] == zone and by_id["name"] == "example.com" and by_id["status"] == "active"
    assert by_id["nameServers"] == ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]
    assert by_id["accountId"] == fake.account_id and by_id["plan"] == "Free Website"
    by_name = run_task(zones.Get, hostname="example.com", **creds).outputs
    assert by_name == by_id
    missing = run_task(zones.Get, hostname="nope.example", raise_on_failure=False, **creds)
    assert "no Cloudflare zone named 'nope.example'" in missing.error
    unknown = run_task(zones.Get, zoneId="a" * 32, raise_on_failure=False, **creds)
    assert "HTTP 404" in unknown.error and "Invalid zone identifier" in unknown.error


def test_list_zones_follows_pages_and_filters(fake, creds):
    other = fake.add_account("Other")
    for i in range(57):
        fake.add_zone(f"site{i}.example", status="active" if i % 3 else "pending")
    fake.add_zone("theirs.example", account_id=other)
    out = run_task(zones.List, **creds).outputs
    assert out["count"] == 58
    assert [r.query["page"][0] for r in fake.requests] == ["1", "2"]
    pending = run_task(zones.List, status="pending", **creds).outputs
    assert pending["count"] == 19
    theirs = run_task(zones.List, accountId=other, **creds).outputs
    assert [z["name"] for z in theirs["zones"]] == ["theirs.example"]
