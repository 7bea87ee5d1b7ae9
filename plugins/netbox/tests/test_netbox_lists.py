"""ListSites and ListDevices against a real NetBox."""

from __future__ import annotations

import json

from roost.testing import run_task
from roost_netbox.tasks import ListDevices, ListSites

AUTO = {"enableAuto": True}


def test_list_sites_all_with_typed_rows_and_input_assets(conn, seed):
    res = run_task(ListSites, assets=AUTO, **conn)
    out = res.outputs
    by_slug = {r["slug"]: r for r in out["rows"]}
    assert {"nyc-dc1", "lon-dc2", "par-lab", "sandbox"} <= set(by_slug)
    nyc = by_slug["nyc-dc1"]
    assert nyc["id"] == seed.nyc.id
    assert nyc["name"] == "NYC DC1"
    assert nyc["status"] == "active"
    assert nyc["region"] == "north-america"
    assert nyc["tags"] == ["production"]
    assert nyc["url"].endswith(f"/api/dcim/sites/{seed.nyc.id}/")
    assert nyc["displayUrl"].endswith(f"/dcim/sites/{seed.nyc.id}/")
    assert out["size"] == out["total"] == len(out["rows"])
    # reads of sites are inputs, with no outputs
    assert len(res.assets) == 1
    bundle = res.assets[0]
    assert bundle.outputs == []
    ids = {a.id: a for a in bundle.inputs}
    asset = ids[f"{conn['url'].split('//')[1]}/dcim/sites/{seed.nyc.id}"]
    assert asset.type == "io.kestra.core.models.assets.External"
    assert asset.display_name == "NYC DC1"
    assert asset.metadata["objectType"] == "dcim.site"
    assert asset.metadata["slug"] == "nyc-dc1"
    assert asset.metadata["status"] == "active"


def test_list_sites_filters_by_status_tag_and_region(conn, seed):
    planned = run_task(ListSites, status="planned", **conn).outputs
    assert [r["slug"] for r in planned["rows"]] == ["lon-dc2"]
    # tag by name (resolved), region by slug
    lab = run_task(ListSites, tag="Lab", **conn).outputs
    assert [r["slug"] for r in lab["rows"]] == ["par-lab"]
    na = run_task(ListSites, region="north-america", **conn).outputs
    assert [r["slug"] for r in na["rows"]] == ["nyc-dc1"]
    # raw NetBox filters pass through
    q = run_task(ListSites, filters={"q": "PAR"}, **conn).outputs
    assert [r["slug"] for r in q["rows"]] == ["par-lab"]


def test_list_sites_limit_fetch_one_store_none(conn, seed):
    limited = run_task(ListSites, limit=2, **conn).outputs
    assert limited["size"] == 2 and len(limited["rows"]) == 2
    assert limited["total"] >= 3

    one = run_task(ListSites, fetchType="FETCH_ONE", status="planned", **conn).outputs
    assert one["row"]["slug"] == "lon-dc2"
    assert "rows" not in one

    res = run_task(ListSites, fetchType="STORE", fields=["name", "slug"], **conn)
    uri = res.outputs["uri"]
    assert uri.startswith("kestra://") and "rows" not in res.outputs
    lines = [json.loads(line) for line in res.context.read_file(uri).decode().splitlines()]
    assert len(lines) == res.outputs["size"] >= 3
    assert set(lines[0]) == {"id", "name", "slug"}  # NetBox honoured `fields`

    none = run_task(ListSites, fetchType="NONE", **conn).outputs
    assert none["size"] == none["total"] >= 3 and "rows" not in none and "uri" not in none
    assert run_task(ListSites, fetchType="NONE", limit=2, **conn).outputs["size"] == 2
    assert run_task(ListSites, fetchType="NONE", status="planned", **conn).outputs["size"] == 1


def test_list_devices_filters_resolve_names_and_emit_inputs(conn, seed):
    # site by name, role by slug, status
    res = run_task(ListDevices, site="NYC DC1", role="access-switch", status="active", assets=AUTO, **conn)
    rows = res.outputs["rows"]
    assert [r["name"] for r in rows] == ["seed-sw1"]
    sw1 = rows[0]
    assert sw1["id"] == seed.sw1.id
    assert sw1["site"] == "nyc-dc1" and sw1["siteId"] == seed.nyc.id
    assert sw1["role"] == "access-switch" and sw1["roleId"] == seed.access.id
    assert sw1["deviceType"] == "acme-switch-48" and sw1["manufacturer"] == "acme"
    assert sw1["status"] == "active"
    assert sw1["tags"] == ["production"]
    (bundle,) = res.assets
    assert bundle.outputs == []
    (asset,) = bundle.inputs
    assert asset.id.endswith(f"/dcim/devices/{seed.sw1.id}")
    assert asset.metadata["site"] == "nyc-dc1"
    assert asset.metadata["role"] == "access-switch"
    assert asset.metadata["status"] == "active"

    # tag by slug across sites, site by id
    tagged = run_task(ListDevices, tag="production", **conn).outputs["rows"]
    assert {"seed-sw1", "seed-r1"} <= {r["name"] for r in tagged}
    by_id = run_task(ListDevices, site=seed.lon.id, **conn).outputs["rows"]
    assert {r["name"] for r in by_id} == {"seed-r1"}
    # limit and raw filters (`name`)
    assert run_task(ListDevices, limit=1, **conn).outputs["size"] == 1
    named = run_task(ListDevices, filters={"name": "seed-sw2"}, **conn).outputs["rows"]
    assert [(r["name"], r["status"]) for r in named] == [("seed-sw2", "planned")]


def test_list_devices_unknown_site_names_the_site(conn, seed):
    res = run_task(ListDevices, site="Atlantis", raise_on_failure=False, **conn)
    assert res.state == "FAILED"
    assert "site 'Atlantis' not found in NetBox" in res.error


def test_list_invalid_filter_value_shows_netbox_400_verbatim(conn, seed):
    res = run_task(ListDevices, filters={"status": "exploded"}, raise_on_failure=False, **conn)
    assert res.state == "FAILED"
    assert "HTTP 400" in res.error
    # NetBox's own body, as it wrote it
    assert (
        '"status":' in res.error
        and "exploded" in res.error
        and "not one of the available choices" in res.error
    )
