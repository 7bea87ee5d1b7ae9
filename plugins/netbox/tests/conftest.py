"""Session fixtures: a real NetBox (restored from the migrated dump) and its seed data."""

from __future__ import annotations

import types

import pynetbox
import pytest
from netbox_server import READONLY_TOKEN, V1_TOKEN, V2_TOKEN, NetBoxServer


@pytest.fixture(scope="session")
def netbox():
    """A running NetBox 4.x on a free loopback port; everything it started is stopped at the end."""
    server = NetBoxServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin(netbox):
    """pynetbox with the admin's v2 token, for arranging and checking state."""
    return pynetbox.api(netbox.url, token=V2_TOKEN)


@pytest.fixture(scope="session")
def seed(admin):
    """Reference data the tasks resolve by name, slug or id."""
    s = types.SimpleNamespace()
    s.region = admin.dcim.regions.create(name="North America", slug="north-america")
    s.tags = {
        t: admin.extras.tags.create(name=t.capitalize(), slug=t) for t in ("production", "lab", "management")
    }
    s.tenant = admin.tenancy.tenants.create(name="Ops Team", slug="ops")
    s.nyc = admin.dcim.sites.create(
        name="NYC DC1", slug="nyc-dc1", status="active", region=s.region.id, tags=[s.tags["production"].id]
    )
    s.lon = admin.dcim.sites.create(name="LON DC2", slug="lon-dc2", status="planned")
    s.par = admin.dcim.sites.create(name="PAR Lab", slug="par-lab", status="active", tags=[s.tags["lab"].id])
    # where the create/update tests put their devices, away from the list tests' sites
    s.sandbox = admin.dcim.sites.create(name="Sandbox", slug="sandbox", status="active")
    s.sandbox2 = admin.dcim.sites.create(name="Sandbox Two", slug="sandbox-2", status="active")
    s.maker = admin.dcim.manufacturers.create(name="Acme", slug="acme")
    s.dtype = admin.dcim.device_types.create(
        manufacturer=s.maker.id, model="Acme Switch 48", slug="acme-switch-48"
    )
    s.access = admin.dcim.device_roles.create(name="Access Switch", slug="access-switch", color="00ff00")
    s.core = admin.dcim.device_roles.create(name="Core Router", slug="core-router", color="ff0000")
    s.platform = admin.dcim.platforms.create(name="Arista EOS", slug="eos")
    s.rack = admin.dcim.racks.create(name="R01", site=s.nyc.id, u_height=42)
    s.sandbox_rack = admin.dcim.racks.create(name="R01", site=s.sandbox.id, u_height=42)
    s.vrf = admin.ipam.vrfs.create(name="mgmt", rd="65000:1")
    admin.extras.custom_fields.create(
        name="purchase_date",
        label="Purchase date",
        type="text",
        object_types=["dcim.device", "ipam.ipaddress"],
    )

    def device(name, site, role, status="active", tags=()):
        return admin.dcim.devices.create(
            name=name,
            site=site.id,
            role=role.id,
            device_type=s.dtype.id,
            status=status,
            tags=[s.tags[t].id for t in tags],
        )

    s.sw1 = device("seed-sw1", s.nyc, s.access, tags=("production",))
    s.sw2 = device("seed-sw2", s.nyc, s.access, status="planned")
    s.r1 = device("seed-r1", s.lon, s.core, tags=("production",))
    return s


@pytest.fixture(scope="session")
def conn(netbox, seed):
    """Connection properties of the tasks (v2 token)."""
    return {"url": netbox.url, "token": V2_TOKEN}


@pytest.fixture(scope="session")
def tokens():
    return types.SimpleNamespace(v2=V2_TOKEN, v1=V1_TOKEN, readonly=READONLY_TOKEN)
