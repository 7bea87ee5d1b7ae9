"""AssignIpAddress against a real NetBox."""

from __future__ import annotations

import pytest
from roost import TaskError
from roost.testing import run_task
from roost_netbox.tasks import AssignIpAddress, CreateDevice

AUTO = {"enableAuto": True}


@pytest.fixture
def device(conn, seed, request):
    name = f"ip-{request.node.name[5:30]}".replace("_", "-")
    return run_task(
        CreateDevice, name=name, deviceType="acme-switch-48", role="access-switch", site="sandbox", **conn
    ).outputs


def test_assign_creates_interface_and_address_then_is_idempotent(conn, seed, admin, device):
    props = dict(
        address="10.20.0.5/24",
        device=device["name"],
        interface="mgmt0",
        createInterface=True,
        status="active",
        dnsName="sw.mgmt.example.com",
        addressDescription="management",
        tags=["management"],
        customFields={"purchase_date": "2024-02-01"},
        **conn,
    )
    res = run_task(AssignIpAddress, assets=AUTO, **props)
    out = res.outputs
    assert out["created"] is True and out["updated"] is False and out["interfaceCreated"] is True
    assert out["address"] == "10.20.0.5/24" and out["status"] == "active"
    assert out["dnsName"] == "sw.mgmt.example.com"
    assert out["device"] == device["name"] and out["deviceId"] == device["id"]
    assert out["interface"] == "mgmt0" and out["assignedObjectType"] == "dcim.interface"
    assert out["interfaceId"] == out["assignedObjectId"]
    assert out["url"].endswith(f"/api/ipam/ip-addresses/{out['id']}/")

    ip = admin.ipam.ip_addresses.get(out["id"])
    assert ip.assigned_object.device.id == device["id"] and ip.assigned_object.name == "mgmt0"
    assert ip.custom_fields["purchase_date"] == "2024-02-01"
    iface = admin.dcim.interfaces.get(out["interfaceId"])
    assert iface.type.value == "virtual"

    (bundle,) = res.assets
    (ip_asset,) = bundle.outputs
    assert ip_asset.id.endswith(f"/ipam/ip-addresses/{out['id']}")
    assert ip_asset.display_name == "10.20.0.5/24"
    assert ip_asset.metadata["device"] == device["name"] and ip_asset.metadata["interface"] == "mgmt0"
    assert ip_asset.metadata["objectType"] == "ipam.ipaddress"
    (dev_asset,) = bundle.inputs
    assert dev_asset.id.endswith(f"/dcim/devices/{device['id']}")

    # second run: nothing created, nothing changed, same id
    again = run_task(AssignIpAddress, **props).outputs
    assert again["id"] == out["id"]
    assert (again["created"], again["updated"], again["interfaceCreated"]) == (False, False, False)
    assert len(admin.ipam.ip_addresses.filter(address="10.20.0.5")) == 1
    assert len(admin.dcim.interfaces.filter(device_id=device["id"], name="mgmt0")) == 1

    # a changed property updates the existing address in place
    changed = run_task(
        AssignIpAddress, **{**props, "dnsName": "sw2.mgmt.example.com", "status": "reserved"}
    ).outputs
    assert changed["id"] == out["id"] and changed["updated"] is True
    assert sorted(changed["changed"]) == ["dns_name", "status"]
    assert admin.ipam.ip_addresses.get(out["id"]).dns_name == "sw2.mgmt.example.com"


def test_existing_unassigned_address_is_adopted_and_set_primary(conn, seed, admin, device):
    existing = admin.ipam.ip_addresses.create(address="10.30.0.9/24", status="reserved")
    admin.dcim.interfaces.create(device=device["id"], name="eth0", type="1000base-t")
    out = run_task(
        AssignIpAddress,
        address="10.30.0.9/24",
        device=device["id"],
        interface="eth0",
        setPrimary=True,
        **conn,
    ).outputs
    assert out["id"] == existing.id and out["created"] is False and out["updated"] is True
    assert set(out["changed"]) >= {"assigned_object_id", "assigned_object_type", "status"}
    assert out["primary"] is True
    assert admin.dcim.devices.get(device["id"]).primary_ip4.id == existing.id
    # already primary: a re-run reports it without changes
    again = run_task(AssignIpAddress, address="10.30.0.9/24", device=device["name"], interface="eth0", **conn)
    assert again.outputs["primary"] is True and again.outputs["updated"] is False


def test_reassigning_an_address_logs_a_warning(conn, seed, admin, device):
    admin.dcim.interfaces.create(device=device["id"], name="eth1", type="virtual")
    admin.dcim.interfaces.create(device=device["id"], name="eth2", type="virtual")
    first = run_task(AssignIpAddress, address="10.31.0.1/24", device=device["name"], interface="eth1", **conn)
    second = run_task(
        AssignIpAddress, address="10.31.0.1/24", device=device["name"], interface="eth2", **conn
    )
    assert second.outputs["id"] == first.outputs["id"] and second.outputs["interface"] == "eth2"
    assert any(log["level"] in ("WARN", "WARNING") and "reassigning" in log["message"] for log in second.logs)


def test_assign_in_vrf_and_ipv6(conn, seed, admin, device):
    out = run_task(
        AssignIpAddress, address="2001:db8::10/64", device=device["name"], interface="lo0", createInterface=True,
        interfaceType="virtual", vrf="mgmt", role="loopback", **conn,
    ).outputs  # fmt: skip
    assert out["vrf"] == "mgmt" and out["address"] == "2001:db8::10/64"
    assert admin.ipam.ip_addresses.get(out["id"]).role.value == "loopback"


def test_kestra_style_assigned_object(conn, seed, admin, device):
    iface = admin.dcim.interfaces.create(device=device["id"], name="xe-0/0/0", type="10gbase-x-sfpp")
    out = run_task(
        AssignIpAddress,
        address="10.40.0.1/31",
        assignedObjectType="dcim.interface",
        assignedObjectId=iface.id,
        **conn,
    ).outputs
    assert out["interfaceId"] == iface.id and out["device"] == device["name"]


def test_missing_interface_without_create_fails_clearly(conn, seed, device):
    with pytest.raises(TaskError, match=r"interface 'nope0' not found on device .*createInterface: true"):
        run_task(AssignIpAddress, address="10.50.0.1/24", device=device["name"], interface="nope0", **conn)


@pytest.mark.parametrize(
    ("address", "message"),
    [("10.0.0.300/24", "not an IP address in CIDR"), ("10.0.0.1", "needs a prefix length")],
)
def test_bad_address_is_refused_before_calling_netbox(conn, address, message):
    with pytest.raises(TaskError, match=message):
        run_task(AssignIpAddress, address=address, **{**conn, "url": "http://127.0.0.1:9"})


def test_unassigned_address_and_netbox_validation(conn, seed, admin):
    out = run_task(AssignIpAddress, address="10.60.0.1/24", status="dhcp", **conn).outputs
    assert out["created"] is True and "device" not in out
    bad = run_task(AssignIpAddress, address="10.60.0.2/24", status="sleeping", raise_on_failure=False, **conn)
    assert bad.state == "FAILED" and "HTTP 400" in bad.error and "sleeping" in bad.error
