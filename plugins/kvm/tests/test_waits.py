"""Waiting on libvirt: deadlines, kill, and the helpers behind them."""

from __future__ import annotations

import threading
import time

import libvirt
import pytest
from roost import TaskError
from roost.testing import Runtime, TaskRunContext
from roost_kvm import client, domxml
from roost_kvm.tasks import ListVms


def _ctx() -> TaskRunContext:
    return TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="t")


def _in_thread(fn):
    """Run ``fn`` in a thread; return a dict that gets ``error``/``result`` and ``elapsed``."""
    box: dict = {}

    def work():
        start = time.monotonic()
        try:
            box["result"] = fn()
        except BaseException as exc:  # the engine's kill exception is not a TaskError
            box["error"] = exc
        box["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, box


def test_wait_for_a_state_that_never_comes_times_out(node_uri):
    conn = libvirt.open(node_uri)
    dom = conn.lookupByName("web1")  # running; nothing will shut it down
    start = time.monotonic()
    with pytest.raises(client.WaitTimeout) as info:
        client.wait_for_state(_ctx(), dom, {client.SHUTOFF}, 0.4)
    assert 0.35 < time.monotonic() - start < 2
    assert (
        str(info.value)
        == "VM 'web1' did not reach VIR_DOMAIN_SHUTOFF within 0.4s (state is VIR_DOMAIN_RUNNING)"
    )
    assert info.value.last_state == client.RUNNING
    conn.close()


def test_wait_fails_fast_on_a_failure_state(node_uri):
    conn = libvirt.open(node_uri)
    dom = conn.lookupByName("paused1")
    with pytest.raises(
        TaskError, match="entered state VIR_DOMAIN_PAUSED while waiting for VIR_DOMAIN_RUNNING"
    ):
        client.wait_for_state(_ctx(), dom, {client.RUNNING}, 30, fail_states={client.PAUSED})
    conn.close()


def test_kill_stops_a_wait(node_uri):
    conn = libvirt.open(node_uri)
    dom = conn.lookupByName("web1")
    ctx = _ctx()
    thread, box = _in_thread(lambda: client.wait_for_state(ctx, dom, {client.SHUTOFF}, 60))
    time.sleep(0.3)
    assert thread.is_alive()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and box["elapsed"] < 2
    assert type(box["error"]).__name__ == "Killed"
    conn.close()


def test_kill_stops_a_task_waiting_for_a_connection(silent_peer):
    ctx = _ctx()
    task = ListVms(id="t", type=ListVms.type_id, uri=silent_peer.uri, connection_timeout=60)
    thread, box = _in_thread(lambda: task.run(ctx))
    time.sleep(0.3)
    assert thread.is_alive()
    ctx.fire_kill()
    thread.join(5)
    assert not thread.is_alive() and box["elapsed"] < 2
    assert type(box["error"]).__name__ == "Killed"


def test_a_connect_given_up_on_does_not_leak_its_thread(silent_peer):
    with pytest.raises(TaskError, match="no answer within 0.2s"):
        client.open_connection(_ctx(), silent_peer.uri, timeout=0.2)
    # the helper thread is still blocked in libvirt's connect; closing the peer releases it
    silent_peer.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.name.startswith("libvirt-connect") and silent_peer.uri in t.name for t in threading.enumerate()
    ):
        time.sleep(0.05)
    assert not any(silent_peer.uri in t.name for t in threading.enumerate())


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("qemu+ssh://root:pw@host/system", "qemu+ssh://root@host/system"),
        ("qemu+tcp://u:p@10.0.0.1:16509/system?x=1", "qemu+tcp://u@10.0.0.1:16509/system?x=1"),
        ("qemu:///system", "qemu:///system"),
        ("qemu+ssh://root@host/system", "qemu+ssh://root@host/system"),
    ],
)
def test_safe_uri(uri, shown):
    assert client.safe_uri(uri) == shown


def test_uri_host():
    assert client.uri_host("qemu+ssh://root@kvm1.example.com/system") == "kvm1.example.com"
    assert client.uri_host("qemu:///system") == "localhost"


def test_state_names_follow_kestra():
    assert client.state_name(libvirt.VIR_DOMAIN_RUNNING) == "VIR_DOMAIN_RUNNING"
    assert (
        client.parse_state("shutoff")
        == client.parse_state("VIR_DOMAIN_SHUTOFF")
        == libvirt.VIR_DOMAIN_SHUTOFF
    )


def test_built_domain_assigns_disk_targets_per_bus():
    xml = domxml.build_domain(
        name="n",
        memory_mib=64,
        vcpus=1,
        domain_type="kvm",
        arch="aarch64",
        machine="virt",
        boot=["cdrom", "hd"],
        disks=[
            domxml.DiskSpec(path="/a.img"),
            domxml.DiskSpec(path="/b.img", target="vdc"),
            domxml.DiskSpec(path="/c.img"),
            domxml.DiskSpec(path="/d.iso", device="cdrom"),
            domxml.DiskSpec(path="/e.img", bus="scsi"),
        ],
        nics=[],
    )
    root = domxml.parse(xml)
    targets = [(d.path, d.target) for d in domxml.disks(root)]
    assert targets == [
        ("/a.img", "vda"),
        ("/b.img", "vdc"),
        ("/c.img", "vdb"),
        ("/d.iso", "sda"),
        ("/e.img", "sdb"),
    ]
    assert root.find("os/type").attrib == {"arch": "aarch64", "machine": "virt"}
    assert [b.get("dev") for b in root.findall("os/boot")] == ["cdrom", "hd"]
    assert root.find("features/acpi") is not None and root.find("features/apic") is None
    assert domxml.disks(root)[3].readonly is True
