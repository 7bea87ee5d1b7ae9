"""One tiny VM through its whole life on a real libvirtd with QEMU (``qemu:///system``).

The guest is a 64 MiB machine with an empty disk and no operating system: it runs
(SeaBIOS finds nothing to boot) but never answers an ACPI shutdown, which is what
the graceful-stop timeout, the forced stop and the kill need.
"""

from __future__ import annotations

import threading
import time
import uuid

import libvirt
import pytest
from roost.testing import Runtime, TaskRunContext, run_task
from roost_kvm.tasks import CreateVm, DeleteVm, ListVms, StartVm, StopVm


@pytest.fixture
def vm_name(libvirtd):
    name = f"roost-test-{uuid.uuid4().hex[:8]}"
    yield name
    conn = libvirt.open(libvirtd)
    try:
        dom = conn.lookupByName(name)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


def test_vm_lifecycle_on_qemu(libvirtd, qemu_pool, vm_name):
    uri = libvirtd
    pool, pool_dir = qemu_pool
    volume = f"{vm_name}-os.qcow2"

    created = run_task(
        CreateVm,
        uri=uri,
        name=vm_name,
        memory=64,
        vcpus=1,
        domainType="qemu",  # TCG: /dev/kvm may not be usable by the qemu user here
        disks=[{"pool": pool, "volume": volume, "sizeMib": 1}],
        assets={"enableAuto": True},
    )
    out = created.outputs
    assert out["created"] is True and out["state"] == "VIR_DOMAIN_SHUTOFF"
    assert (out["memory"], out["vcpus"]) == (64, 1)
    assert out["createdVolumes"] == [str(pool_dir / volume)] and (pool_dir / volume).exists()
    assert created.assets[0].outputs[0].metadata["host"] == "localhost"

    started = run_task(StartVm, uri=uri, name=vm_name, waitForRunning=True, timeToWait="PT60S").outputs
    assert started["state"] == "VIR_DOMAIN_RUNNING" and started["id"] >= 1

    listed = run_task(ListVms, uri=uri, statusFilter="running").outputs["vms"]
    assert vm_name in [v["name"] for v in listed]

    # a kill ends the wait for a graceful shutdown at once and leaves the VM alone
    rt = Runtime.in_memory()
    ctx = TaskRunContext(rt, {}, namespace="company.team", task_id="stop")
    stop = StopVm(
        id="stop", type=StopVm.type_id, uri=uri, name=vm_name, wait_for_stopped=True, time_to_wait=60
    )
    box: dict = {}

    def work():
        try:
            stop.run(ctx)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    time.sleep(0.5)
    killed_at = time.monotonic()
    ctx.fire_kill()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - killed_at < 3
    assert type(box["error"]).__name__ == "Killed"

    # the guest has no OS: a graceful shutdown never completes
    timed_out = run_task(
        StopVm, uri=uri, name=vm_name, waitForStopped=True, timeToWait="PT1S", raise_on_failure=False
    )
    assert timed_out.state == "FAILED"
    assert timed_out.error == (
        f"VM '{vm_name}' did not reach VIR_DOMAIN_SHUTOFF within 1s (state is VIR_DOMAIN_RUNNING)"
    )

    forced = run_task(StopVm, uri=uri, name=vm_name, timeToWait="PT1S", forceAfterTimeout=True)
    assert forced.outputs["forced"] is True and forced.outputs["state"] == "VIR_DOMAIN_SHUTOFF"
    assert any("forcing it off (destroy)" in m for m in forced.messages)

    deleted = run_task(DeleteVm, uri=uri, name=vm_name, deleteStorage=True).outputs
    assert deleted["deleted"] is True and deleted["deletedVolumes"] == [str(pool_dir / volume)]
    assert not (pool_dir / volume).exists()

    missing = run_task(StartVm, uri=uri, name=vm_name, raise_on_failure=False)
    assert missing.error == (
        f"VM '{vm_name}' not found on {uri}: Domain not found: no domain with matching name '{vm_name}'"
    )
