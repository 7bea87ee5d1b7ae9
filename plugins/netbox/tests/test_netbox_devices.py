"""CreateDevice and UpdateDevice against a real NetBox."""

from __future__ import annotations

import pytest
from roost import TaskError
from roost.testing import run_task
from roost_netbox.tasks import CreateDevice, UpdateDevice

AUTO = {"enableAuto": True}


def test_create_device_resolves_names_and_slugs(conn, seed, admin):
    res = run_task(
        CreateDevice,
        name="edge-01",
        deviceType="Acme Switch 48",  # model name
        role="Access Switch",  # name
        site="sandbox",  # slug
        status="Planned",
        serial="SN-0001",
        assetTag="AT-0001",
        platform="eos",
        tenant="Ops Team",
        rack="R01",
        position=10,
        face="front",
        deviceDescription="edge switch",
        tags=["production", "Management"],
        customFields={"purchase_date": "2024-01-15"},
        assets=AUTO,
        **conn,
    )
    out = res.outputs
    assert out["name"] == "edge-01"
    assert out["status"] == "planned"
    assert out["site"] == "sandbox" and out["role"] == "access-switch"
    assert out["deviceType"] == "acme-switch-48"
    assert out["platform"] == "eos" and out["tenant"] == "ops" and out["rack"] == "R01"
    assert out["serial"] == "SN-0001" and out["assetTag"] == "AT-0001"
    assert sorted(out["tags"]) == ["management", "production"]
    assert out["customFields"]["purchase_date"] == "2024-01-15"
    assert out["description"] == "edge switch"
    assert out["url"].endswith(f"/api/dcim/devices/{out['id']}/")
    assert "status" in out["changed"] and "name" in out["changed"]

    dev = admin.dcim.devices.get(out["id"])  # really stored
    assert dev.serial == "SN-0001" and dev.position == 10 and dev.face.value == "front"

    (bundle,) = res.assets
    (device_asset,) = bundle.outputs
    assert device_asset.id.endswith(f"/dcim/devices/{out['id']}")
    assert device_asset.display_name == "edge-01"
    meta = device_asset.metadata
    assert (meta["site"], meta["role"], meta["status"], meta["serial"]) == (
        "sandbox",
        "access-switch",
        "planned",
        "SN-0001",
    )
    (site_asset,) = bundle.inputs
    assert site_asset.id.endswith(f"/dcim/sites/{seed.sandbox.id}")


def test_create_device_by_ids_and_kestra_property_names(conn, seed):
    res = run_task(
        CreateDevice,
        name="edge-02",
        deviceType=seed.dtype.id,
        deviceRole=str(seed.core.id),  # Kestra's name for the role, id as a string
        site=seed.sandbox2.id,
        addressDescription="from a Kestra flow",
        **conn,
    )
    out = res.outputs
    assert (out["siteId"], out["roleId"], out["deviceTypeId"]) == (
        seed.sandbox2.id,
        seed.core.id,
        seed.dtype.id,
    )
    assert out["status"] == "active"
    assert out["description"] == "from a Kestra flow"


def test_create_device_duplicate_name_shows_netbox_400_verbatim(conn, seed):
    props = dict(name="dup-01", deviceType="acme-switch-48", role="access-switch", site="sandbox", **conn)
    run_task(CreateDevice, **props)
    res = run_task(CreateDevice, raise_on_failure=False, **props)
    assert res.state == "FAILED"
    assert "HTTP 400" in res.error and "creating device 'dup-01'" in res.error
    # NetBox's own JSON body, verbatim
    assert res.error.endswith('{"__all__":["Device name must be unique per site and tenant."]}')


def test_create_device_unknown_custom_field_shows_netbox_400(conn, seed):
    res = run_task(
        CreateDevice,
        name="cf-01",
        deviceType="acme-switch-48",
        role="access-switch",
        site="sandbox",
        customFields={"no_such_field": "x"},
        raise_on_failure=False,
        **conn,
    )
    assert res.state == "FAILED"
    assert "HTTP 400" in res.error and "custom_fields" in res.error and "no_such_field" in res.error


@pytest.mark.parametrize(
    ("prop", "value", "message"),
    [
        ("role", "Nope Role", "role 'Nope Role' not found"),
        ("deviceType", 999999, "device type with id 999999 not found"),
        ("site", "Atlantis", "site 'Atlantis' not found"),
    ],
)
def test_create_device_unknown_reference_is_named(conn, seed, prop, value, message):
    props = dict(name="ref-01", deviceType="acme-switch-48", role="access-switch", site="sandbox")
    props[prop] = value
    with pytest.raises(TaskError, match=message):
        run_task(CreateDevice, **props, **conn)


def test_create_device_unknown_tag_is_named(conn, seed):
    with pytest.raises(TaskError, match="tag 'ghost' not found"):
        run_task(
            CreateDevice, name="t-01", deviceType="acme-switch-48", role="access-switch", site="sandbox",
            tags=["ghost"], **conn,
        )  # fmt: skip


def test_update_device_by_name_then_idempotent(conn, seed, admin):
    created = run_task(
        CreateDevice, name="upd-01", deviceType="acme-switch-48", role="access-switch", site="sandbox", **conn
    ).outputs
    res = run_task(
        UpdateDevice,
        name="upd-01",
        status="offline",
        serial="SN-UPD",
        role="core-router",
        tags=["lab"],
        customFields={"purchase_date": "2023-05-01"},
        assets=AUTO,
        **conn,
    )
    out = res.outputs
    assert out["id"] == created["id"]
    assert out["status"] == "offline" and out["serial"] == "SN-UPD" and out["role"] == "core-router"
    assert out["tags"] == ["lab"]
    assert sorted(out["changed"]) == ["custom_fields", "role", "serial", "status", "tags"]
    dev = admin.dcim.devices.get(created["id"])
    assert dev.status.value == "offline" and dev.custom_fields["purchase_date"] == "2023-05-01"
    (bundle,) = res.assets
    assert bundle.outputs[0].metadata["status"] == "offline"
    assert bundle.outputs[0].metadata["serial"] == "SN-UPD"

    again = run_task(UpdateDevice, name="upd-01", status="offline", serial="SN-UPD", tags=["lab"], **conn)
    assert again.outputs["changed"] == []
    assert any("already up to date" in m for m in again.messages)


def test_update_device_by_id_rename_move_and_clear(conn, seed):
    created = run_task(
        CreateDevice, name="upd-02", deviceType="acme-switch-48", role="access-switch", site="sandbox",
        platform="eos", **conn,
    ).outputs  # fmt: skip
    out = run_task(
        UpdateDevice, deviceId=created["id"], newName="upd-02b", site="Sandbox Two", platform="", **conn
    ).outputs
    assert out["name"] == "upd-02b" and out["site"] == "sandbox-2" and "platform" not in out
    assert sorted(out["changed"]) == ["name", "platform", "site"]


def test_update_device_by_name_narrowed_by_site(conn, seed):
    for site in ("sandbox", "sandbox-2"):
        run_task(
            CreateDevice, name="twin", deviceType="acme-switch-48", role="access-switch", site=site, **conn
        )
    res = run_task(UpdateDevice, name="twin", status="failed", raise_on_failure=False, **conn)
    assert res.state == "FAILED" and "ambiguous" in res.error and "use an id" in res.error
    out = run_task(UpdateDevice, name="twin", site="Sandbox Two", status="failed", **conn).outputs
    assert out["site"] == "sandbox-2" and out["status"] == "failed"


def test_update_missing_device_is_a_404(conn, seed):
    res = run_task(UpdateDevice, deviceId=987654, status="offline", raise_on_failure=False, **conn)
    assert res.state == "FAILED"
    assert res.error == "device with id 987654 not found in NetBox (HTTP 404)"
    res = run_task(UpdateDevice, name="no-such-device", status="offline", raise_on_failure=False, **conn)
    assert "device 'no-such-device' not found" in res.error


def test_update_device_validation_error_verbatim(conn, seed):
    run_task(
        CreateDevice, name="val-01", deviceType="acme-switch-48", role="access-switch", site="sandbox", **conn
    )
    # a position without a rack is refused by NetBox's model validation
    res = run_task(UpdateDevice, name="val-01", position=5, raise_on_failure=False, **conn)
    assert res.state == "FAILED"
    assert "HTTP 400" in res.error and "updating device 'val-01'" in res.error
    assert res.error.endswith('{"position":["Cannot select a rack position without assigning a rack."]}')
