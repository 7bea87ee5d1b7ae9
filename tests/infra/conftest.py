"""Fixtures of the infrastructure end-to-end tests: real NetBox, Rego-evaluating OPA, libvirt.

Everything is borrowed from the plugins' own test machinery, never copied and never edited:

- NetBox: ``plugins/netbox/tests/netbox_server.py`` (PostgreSQL + Redis + NetBox 4.7 restored
  from the migrated dump), started once per session;
- OPA: ``plugins/opa/tests/fake_opa.py`` (OPA's REST API over real HTTP, Rego evaluated by regopy);
- libvirt: ``test:///default`` held open by the test (state shared with the engine's worker
  threads), and the ``libvirtd`` session fixture of ``plugins/kvm/tests/conftest.py`` for the
  ``qemu:///system`` variant (it starts virtlogd/libvirtd when they are not running, skips where
  libvirtd is not installed, fails under ``CI``).
"""

from __future__ import annotations

import base64
import importlib.util
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
for _helpers in (PLUGINS / "netbox" / "tests", PLUGINS / "opa" / "tests"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

import pynetbox  # noqa: E402
from fake_opa import FakeOpa  # noqa: E402
from netbox_server import V2_TOKEN, NetBoxServer  # noqa: E402


def _kvm_fixtures() -> types.ModuleType:
    """plugins/kvm/tests/conftest.py under a name of its own (it cannot be imported as ``conftest``)."""
    name = "roost_kvm_test_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PLUGINS / "kvm" / "tests" / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ``qemu:///system`` on a real libvirtd, exactly as the KVM plugin's tests get it.
libvirtd = _kvm_fixtures().libvirtd

OPA_TOKEN = "infra-opa-token-3c1f8b27d9"
NAMESPACE = "company.infra"
TEST_URI = "test:///default"


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


# -- the engine, with the three plugins the flow uses --------------------------------------------


@pytest.fixture
def plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load the KVM, NetBox and OPA plugins.

    tests/conftest.py narrows plugin loading to the built-in one (``ROOST_LOAD_PLUGINS=""``) for
    the core tests; these tests name the plugins they need instead.
    """
    monkeypatch.setenv("ROOST_LOAD_PLUGINS", "kvm,netbox,opa")
    monkeypatch.delenv("ROOST_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def infra_plugins(plugin_env: None, roost_plugins: Any) -> Any:
    """roost.testing's fresh process-wide plugin set, loaded with the variables above."""
    assert {"kvm", "netbox", "opa"} <= set(roost_plugins.info), sorted(roost_plugins.info)
    assert not roost_plugins.broken, roost_plugins.broken
    return roost_plugins


@pytest.fixture
def roost_engine(infra_plugins: Any, roost_engine: Any) -> Any:
    """The roost.testing engine, built once the plugin set above is the process-wide one."""
    assert roost_engine.plugins is infra_plugins
    return roost_engine


# -- NetBox ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def netbox() -> Iterator[NetBoxServer]:
    """A real NetBox on a free loopback port, started once (dump restore: seconds, not migrations)."""
    server = NetBoxServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nb_admin(netbox: NetBoxServer) -> Any:
    """pynetbox with the admin token, to arrange NetBox and to check what the flow did."""
    return pynetbox.api(netbox.url, token=V2_TOKEN)


@pytest.fixture(scope="session")
def nb_setup(nb_admin: Any) -> types.SimpleNamespace:
    """What the flow refers to by slug: a site, a device role and a device type for KVM guests."""
    s = types.SimpleNamespace()
    s.site = nb_admin.dcim.sites.create(name="Infra Lab", slug="infra-lab", status="active")
    s.maker = nb_admin.dcim.manufacturers.create(name="QEMU", slug="qemu")
    s.device_type = nb_admin.dcim.device_types.create(
        manufacturer=s.maker.id, model="KVM guest", slug="kvm-guest", u_height=0
    )
    s.role = nb_admin.dcim.device_roles.create(name="Virtual Machine", slug="vm", color="2196f3")
    return s


# -- OPA -------------------------------------------------------------------------------------------


@pytest.fixture
def opa() -> Iterator[FakeOpa]:
    """OPA's REST API on a free loopback port, requiring a bearer token, evaluating Rego for real."""
    server = FakeOpa(token=OPA_TOKEN)
    server.start()
    yield server
    server.stop()


# -- secrets ---------------------------------------------------------------------------------------


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, netbox: NetBoxServer, nb_setup: Any, opa: FakeOpa) -> dict:
    """The credentials the flow reads with ``secret()``, as Kestra's env backend holds them."""
    values = {
        "NETBOX_URL": netbox.url,
        "NETBOX_TOKEN": V2_TOKEN,
        "OPA_URL": opa.url,
        "OPA_TOKEN": OPA_TOKEN,
    }
    for key, value in values.items():
        monkeypatch.setenv(f"SECRET_{key}", b64(value))
    return values


# -- libvirt ---------------------------------------------------------------------------------------


class Host:
    """A libvirt host seen from the test: its URI, the domain type to build, and an open connection."""

    def __init__(self, uri: str, domain_type: str, conn: libvirt.virConnect) -> None:
        self.uri = uri
        self.domain_type = domain_type
        self.conn = conn
        self.names: list[str] = []

    def vm_name(self) -> str:
        name = f"infra-vm-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        return name

    def state(self, name: str) -> int:
        return self.conn.lookupByName(name).state()[0]

    def cleanup(self) -> None:
        for name in self.names:
            try:
                dom = self.conn.lookupByName(name)
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            except libvirt.libvirtError:
                pass
        self.conn.close()


@pytest.fixture(params=["test-driver", "qemu-system"])
def host(request: pytest.FixtureRequest) -> Iterator[Host]:
    """``test:///default`` (in-process, held open so state lasts from task to task) or a real
    ``qemu:///system`` (a diskless 64 MiB guest under TCG: /dev/kvm may not suit the qemu user)."""
    if request.param == "test-driver":
        h = Host(TEST_URI, "kvm", libvirt.open(TEST_URI))
    else:
        uri = request.getfixturevalue("libvirtd")
        h = Host(uri, "qemu", libvirt.open(uri))
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture
def test_host() -> Iterator[Host]:
    """Only the test driver (for the deny case, which never starts the VM)."""
    h = Host(TEST_URI, "kvm", libvirt.open(TEST_URI))
    try:
        yield h
    finally:
        h.cleanup()
