"""The KVM tasks against libvirt's test driver (in-process, real libvirt API and errors)."""

from __future__ import annotations

import base64
from importlib.metadata import entry_points

import pytest
from roost import TaskError
from roost.testing import run_task
from roost_kvm import plugin, tasks
from roost_kvm.tasks import CreateVm, DeleteVm, ListVms, StartVm, StopVm, UpdateVm

WEB1_UUID = "6c3b1c5e-2f0a-4f59-9e43-0a1b2c3d4e01"
DB1_UUID = "6c3b1c5e-2f0a-4f59-9e43-0a1b2c3d4e02"
VM = "io.kestra.plugin.ee.assets.VM"


# -- packaging and schema -------------------------------------------------------------------------


def test_plugin_registers_every_task_type_under_kestra_ids():
    registered = []
    plugin.register_task_types(lambda *types: registered.extend(types))
    assert {t.type_id for t in registered} == {
        "io.kestra.plugin.kvm.ListVms",
        "io.kestra.plugin.kvm.CreateVm",
        "io.kestra.plugin.kvm.UpdateVm",
        "io.kestra.plugin.kvm.StartVm",
        "io.kestra.plugin.kvm.StopVm",
        "io.kestra.plugin.kvm.DeleteVm",
    }
    (ep,) = [e for e in entry_points(group="roost") if e.name == "kvm"]
    assert ep.value == "roost_kvm.plugin"


@pytest.mark.parametrize("model", [*tasks.TASKS, tasks.Disk, tasks.NetworkInterface])
def test_every_property_is_documented(model):
    assert model.__doc__
    undocumented = [name for name, f in model.model_fields.items() if not f.description]
    assert undocumented == []


@pytest.mark.parametrize(
    "output",
    [tasks.VmFacts, ListVms.Out, CreateVm.Out, UpdateVm.Out, StartVm.Out, StopVm.Out, DeleteVm.Out],
)
def test_every_output_is_documented(output):
    schema = output.model_json_schema(by_alias=True)
    undocumented = [name for name, prop in schema["properties"].items() if not prop.get("description")]
    assert undocumented == []


def test_kestra_property_names_are_accepted():
    task = CreateVm.model_validate(
        {
            "id": "create_vm",
            "type": "io.kestra.plugin.kvm.CreateVm",
            "uri": "qemu+ssh://root@10.0.0.1/system",
            "xmlDefinition": "<domain/>",
            "startAfterCreate": True,
        }
    )
    assert task.xml_definition == "<domain/>" and task.start_after_create is True
    assert CreateVm.model_validate({"id": "c", "type": CreateVm.type_id, "domainXml": "<d/>"}).xml_definition
    stop = StopVm.model_validate(
        {
            "id": "s",
            "type": StopVm.type_id,
            "name": "vm",
            "force": True,
            "waitForStopped": True,
            "timeToWait": "PT2M",
        }
    )
    assert stop.time_to_wait.total_seconds() == 120


# -- ListVms --------------------------------------------------------------------------------------


def test_list_vms_reports_every_domain_sorted_with_typed_facts(node_uri):
    result = run_task(ListVms, uri=node_uri)
    assert result.state == "SUCCESS"
    assert result.outputs["count"] == 3
    assert [v["name"] for v in result.outputs["vms"]] == ["db1", "paused1", "web1"]
    db1, paused1, web1 = result.outputs["vms"]
    assert db1 == {
        "name": "db1",
        "uuid": DB1_UUID,
        "state": "VIR_DOMAIN_SHUTOFF",
        "active": False,
        "persistent": True,
        "autostart": False,
        "vcpus": 1,
        "memory": 1024,
    }
    assert web1["state"] == "VIR_DOMAIN_RUNNING" and web1["active"] is True and web1["id"] >= 1
    assert web1["vcpus"] == 2 and web1["memory"] == 512
    assert paused1["state"] == "VIR_DOMAIN_PAUSED"


@pytest.mark.parametrize(
    ("status", "names"),
    [("running", ["web1"]), ("VIR_DOMAIN_SHUTOFF", ["db1"]), ("Paused", ["paused1"]), ("crashed", [])],
)
def test_list_vms_status_filter(node_uri, status, names):
    result = run_task(ListVms, uri=node_uri, statusFilter=status)
    assert [v["name"] for v in result.outputs["vms"]] == names
    assert result.outputs["count"] == len(names)


def test_list_vms_unknown_status_filter_is_a_clear_error(node_uri):
    result = run_task(ListVms, uri=node_uri, statusFilter="sleeping", raise_on_failure=False)
    assert result.state == "FAILED"
    assert "unknown VM state 'sleeping'" in result.error and "SHUTOFF" in result.error


def test_list_vms_auto_assets_are_inputs(node_uri):
    result = run_task(ListVms, uri=node_uri, assets={"enableAuto": True})
    (bundle,) = result.assets
    assert bundle.outputs == []
    assets = {a.display_name: a for a in bundle.inputs}
    assert set(assets) == {"db1", "paused1", "web1"}
    web1 = assets["web1"]
    assert web1.id == WEB1_UUID and web1.type == VM
    assert web1.metadata == {
        "provider": "kvm",
        "host": "localhost",
        "uri": node_uri,
        "name": "web1",
        "uuid": WEB1_UUID,
        "state": "VIR_DOMAIN_RUNNING",
        "memory": 512,
        "vcpus": 2,
    }


def test_no_assets_without_enable_auto(node_uri):
    assert run_task(ListVms, uri=node_uri).assets == []


# -- CreateVm -------------------------------------------------------------------------------------

KESTRA_XML = """
<domain type='kvm'>
  <name>kestra-worker-nodes</name>
  <memory unit='MiB'>512</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <boot dev='hd'/>
  </os>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='default-pool' volume='base.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""


def test_create_vm_from_kestra_xml_definition(node_uri):
    result = run_task(CreateVm, uri=node_uri, xmlDefinition=KESTRA_XML, startAfterCreate=True)
    out = result.outputs
    assert out["name"] == "kestra-worker-nodes" and out["created"] is True
    assert out["state"] == "VIR_DOMAIN_RUNNING" and out["memory"] == 512 and out["vcpus"] == 1
    assert len(out["uuid"]) == 36 and out["createdVolumes"] == []
    assert "VM kestra-worker-nodes defined" in result.messages


def test_create_vm_xml_with_memory_and_vcpus_overrides(node_uri):
    out = run_task(CreateVm, uri=node_uri, xml=KESTRA_XML, memory=1024, vcpus=4).outputs
    assert (out["memory"], out["vcpus"], out["state"]) == (1024, 4, "VIR_DOMAIN_SHUTOFF")


def test_create_vm_from_properties_creates_volumes_and_starts(node_uri):
    result = run_task(
        CreateVm,
        uri=node_uri,
        name="app1",
        memory=2048,
        vcpus=2,
        domainType="test",
        disks=[
            {"pool": "default-pool", "volume": "app1-os.qcow2", "sizeMib": 4096},
            {"pool": "default-pool", "volume": "base.qcow2", "sizeMib": 10},
            {"path": "/default-pool/install.iso", "device": "cdrom"},
        ],
        networks=[{"network": "default"}, {"bridge": "br0", "mac": "52:54:00:aa:bb:cc"}],
        autostart=True,
        startAfterCreate=True,
        assets={"enableAuto": True},
    )
    out = result.outputs
    assert out["created"] is True and out["state"] == "VIR_DOMAIN_RUNNING" and out["autostart"] is True
    assert (out["memory"], out["vcpus"]) == (2048, 2)
    # base.qcow2 exists already: reused, not created
    assert out["createdVolumes"] == ["/default-pool/app1-os.qcow2"]
    assert "volume default-pool/base.qcow2 exists; reusing it" in result.messages
    (bundle,) = result.assets
    (asset,) = bundle.outputs
    assert asset.id == out["uuid"] and asset.type == VM and asset.display_name == "app1"
    assert asset.metadata["created"] is True and asset.metadata["state"] == "VIR_DOMAIN_RUNNING"


def test_create_vm_renders_nested_expressions(node_uri):
    result = run_task(
        CreateVm,
        uri=node_uri,
        name="{{ vm }}",
        memory="{{ mem }}",
        domainType="test",
        disks=[{"pool": "default-pool", "volume": "{{ vm }}.qcow2", "sizeMib": "{{ size }}"}],
        variables={"vm": "templated", "mem": 768, "size": 64},
    )
    assert result.outputs["name"] == "templated" and result.outputs["memory"] == 768
    assert result.outputs["createdVolumes"] == ["/default-pool/templated.qcow2"]


def test_create_vm_existing_name_update_keeps_uuid(node_uri):
    out = run_task(CreateVm, uri=node_uri, name="web1", memory=2048, vcpus=4, domainType="test").outputs
    assert out["created"] is False and out["uuid"] == WEB1_UUID
    # web1 runs: the new definition is the persistent one, the live domain keeps its size until restarted
    assert out["state"] == "VIR_DOMAIN_RUNNING"


def test_create_vm_existing_name_skip_and_fail(node_uri):
    skipped = run_task(CreateVm, uri=node_uri, name="db1", memory=4096, domainType="test", ifExists="SKIP")
    assert skipped.outputs["created"] is False and skipped.outputs["memory"] == 1024
    failed = run_task(CreateVm, uri=node_uri, name="db1", ifExists="FAIL", raise_on_failure=False)
    assert failed.state == "FAILED" and "VM 'db1' already exists" in failed.error


def test_create_vm_xml_uuid_conflicting_with_existing_vm(node_uri):
    xml = KESTRA_XML.replace("kestra-worker-nodes", "web1").replace(
        "<memory", "<uuid>00000000-0000-0000-0000-000000000001</uuid><memory"
    )
    result = run_task(CreateVm, uri=node_uri, xmlDefinition=xml, raise_on_failure=False)
    assert result.state == "FAILED"
    assert f"VM 'web1' has UUID {WEB1_UUID}" in result.error


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({}, "set `name`"),
        ({"xmlDefinition": "<domain><name>a</name>"}, "invalid domain XML"),
        ({"xmlDefinition": "<pool/>"}, "must have a <domain> root element"),
        ({"xmlDefinition": "<domain type='test'><memory>1</memory></domain>"}, "has no <name>"),
        ({"xmlDefinition": KESTRA_XML, "name": "other"}, "names the VM 'kestra-worker-nodes'"),
        ({"xmlDefinition": KESTRA_XML, "disks": [{"path": "/x"}]}, "put them in the XML"),
        ({"name": "x", "memory": 0}, "memory must be a positive number"),
        ({"name": "x", "disks": [{"pool": "default-pool"}]}, "`pool` and `volume` go together"),
        ({"name": "x", "disks": [{"path": "/a", "sizeMib": 5}]}, "`sizeMib` creates a pool volume"),
        (
            {"name": "x", "disks": [{"pool": "p", "volume": "v", "path": "/a"}]},
            "either `pool` and `volume`, or",
        ),
        ({"name": "x", "disks": [{"path": "/a", "target": "vda"}, {"path": "/b", "target": "vda"}]}, "'vda'"),
        ({"name": "x", "disks": [{"path": "/a", "sizeMib": "{{ 'big' }}"}]}, "disks[0].sizeMib"),
    ],
)
def test_create_vm_rejects_bad_definitions(node_uri, props, message):
    result = run_task(CreateVm, uri=node_uri, raise_on_failure=False, **props)
    assert result.state == "FAILED"
    assert message in result.error


def test_create_vm_reports_libvirt_rejection(node_uri):
    xml = "<domain type='test'><name>broken</name><memory unit='MiB'>64</memory></domain>"
    result = run_task(CreateVm, uri=node_uri, xmlDefinition=xml, raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error == "defining VM 'broken' failed: XML error: an os <type> must be specified"


def test_create_vm_missing_pool(node_uri):
    result = run_task(
        CreateVm,
        uri=node_uri,
        name="x",
        disks=[{"pool": "nope", "volume": "x.qcow2", "sizeMib": 10}],
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert result.error.startswith("storage pool 'nope' not found: Storage pool not found")


def test_create_vm_removes_new_volumes_when_libvirt_rejects_the_domain(shared_host):
    uri, name, conn = shared_host
    result = run_task(
        CreateVm,
        uri=uri,
        name=name,
        domainType="no-such-hypervisor",
        disks=[{"pool": "default-pool", "volume": f"{name}.qcow2", "sizeMib": 16}],
        raise_on_failure=False,
    )
    assert result.state == "FAILED" and "invalid domain type no-such-hypervisor" in result.error
    assert f"created volume /default-pool/{name}.qcow2 (16 MiB)" in result.messages
    assert f"removed volume /default-pool/{name}.qcow2" in result.messages
    assert f"{name}.qcow2" not in conn.storagePoolLookupByName("default-pool").listVolumes()


# -- UpdateVm -------------------------------------------------------------------------------------


def test_update_vm_memory_and_vcpus_of_a_stopped_vm(node_uri):
    result = run_task(UpdateVm, uri=node_uri, name="db1", memory=2048, vcpus=2, assets={"enableAuto": True})
    out = result.outputs
    assert (out["memory"], out["vcpus"], out["changed"], out["wasRestarted"]) == (2048, 2, True, False)
    assert out["uuid"] == DB1_UUID and out["state"] == "VIR_DOMAIN_SHUTOFF"
    (bundle,) = result.assets
    assert bundle.outputs[0].metadata["memory"] == 2048


def test_update_vm_running_without_restart_applies_at_next_boot(node_uri):
    result = run_task(UpdateVm, uri=node_uri, name="web1", vcpus=4)
    assert result.outputs["changed"] is True and result.outputs["wasRestarted"] is False
    assert result.outputs["vcpus"] == 2  # the live domain
    assert "VM web1 is running: the change applies at its next boot" in result.messages


def test_update_vm_running_with_restart(node_uri):
    result = run_task(UpdateVm, uri=node_uri, name="web1", memory=1024, vcpus=4, restart=True)
    out = result.outputs
    assert out["wasRestarted"] is True and out["state"] == "VIR_DOMAIN_RUNNING"
    assert (out["memory"], out["vcpus"]) == (1024, 4)


def test_update_vm_restart_of_a_paused_vm_powers_it_off_first(node_uri):
    result = run_task(UpdateVm, uri=node_uri, name="paused1", vcpus=2, restart=True)
    assert result.outputs["wasRestarted"] is True and result.outputs["state"] == "VIR_DOMAIN_RUNNING"
    assert result.outputs["vcpus"] == 2
    assert "VM paused1 is paused; powering it off (destroy)" in result.messages


def test_update_vm_with_unchanged_values_changes_nothing(node_uri):
    out = run_task(UpdateVm, uri=node_uri, name="web1", memory=512, vcpus=2, restart=True).outputs
    assert out["changed"] is False and out["wasRestarted"] is False


def test_update_vm_from_kestra_xml_definition_takes_the_name_from_it(node_uri):
    xml = KESTRA_XML.replace("kestra-worker-nodes", "db1").replace(">512<", ">700<")
    out = run_task(UpdateVm, uri=node_uri, xmlDefinition=xml).outputs
    assert out["name"] == "db1" and out["uuid"] == DB1_UUID and out["memory"] == 700


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"name": "db1"}, "nothing to update"),
        ({}, "set `name` or give an `xmlDefinition`"),
        ({"name": "web1", "xmlDefinition": KESTRA_XML}, "names the VM 'kestra-worker-nodes'"),
        ({"name": "db1", "vcpus": -1}, "vcpus must be a positive number"),
    ],
)
def test_update_vm_rejects_bad_requests(node_uri, props, message):
    result = run_task(UpdateVm, uri=node_uri, raise_on_failure=False, **props)
    assert result.state == "FAILED" and message in result.error


def test_update_vm_never_creates_a_vm(node_uri):
    result = run_task(UpdateVm, uri=node_uri, xmlDefinition=KESTRA_XML, raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error == (f"VM 'kestra-worker-nodes' not found on {node_uri}: Domain not found")


# -- StartVm / StopVm -----------------------------------------------------------------------------


def test_start_vm_waits_for_running(node_uri):
    result = run_task(StartVm, uri=node_uri, name="db1", waitForRunning=True, timeToWait="PT5S")
    out = result.outputs
    assert out["started"] is True and out["state"] == "VIR_DOMAIN_RUNNING" and out["active"] is True
    assert out["uuid"] == DB1_UUID and "VM db1 started" in result.messages


def test_start_vm_already_running_and_paused(node_uri):
    running = run_task(StartVm, uri=node_uri, name="web1")
    assert running.outputs["started"] is False and "VM web1 is already running" in running.messages
    paused = run_task(StartVm, uri=node_uri, name="paused1", waitForRunning=True)
    assert paused.outputs["started"] is True and paused.outputs["state"] == "VIR_DOMAIN_RUNNING"
    assert "VM paused1 resumed" in paused.messages


def test_start_vm_missing_domain_has_libvirts_message(node_uri):
    result = run_task(StartVm, uri=node_uri, name="ghost", raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error == f"VM 'ghost' not found on {node_uri}: Domain not found"


def test_start_vm_auto_assets(node_uri):
    result = run_task(StartVm, uri=node_uri, name="db1", assets={"enableAuto": True})
    (bundle,) = result.assets
    (asset,) = bundle.outputs
    assert (asset.id, asset.display_name, asset.metadata["state"]) == (DB1_UUID, "db1", "VIR_DOMAIN_RUNNING")


def test_stop_vm_graceful_and_wait(node_uri):
    result = run_task(StopVm, uri=node_uri, name="web1", waitForStopped=True, timeToWait="PT5S")
    out = result.outputs
    assert out["state"] == "VIR_DOMAIN_SHUTOFF" and out["stopped"] is True and out["forced"] is False
    assert "id" not in out and out["active"] is False


def test_stop_vm_force_destroys(node_uri):
    out = run_task(StopVm, uri=node_uri, name="web1", force=True, assets={"enableAuto": True})
    assert out.outputs["forced"] is True and out.outputs["state"] == "VIR_DOMAIN_SHUTOFF"
    assert out.assets[0].outputs[0].metadata["state"] == "VIR_DOMAIN_SHUTOFF"


def test_stop_vm_without_wait_only_requests_shutdown(node_uri):
    result = run_task(StopVm, uri=node_uri, name="web1")
    assert "shutdown requested for VM web1" in result.messages
    assert result.outputs["forced"] is False


def test_stop_vm_already_stopped(node_uri):
    result = run_task(StopVm, uri=node_uri, name="db1", force=True)
    assert result.outputs["forced"] is False and result.outputs["stopped"] is True
    assert "VM db1 is already stopped (VIR_DOMAIN_SHUTOFF)" in result.messages


def test_stop_vm_paused_needs_force(node_uri):
    refused = run_task(StopVm, uri=node_uri, name="paused1", waitForStopped=True, raise_on_failure=False)
    assert refused.state == "FAILED" and "paused guest cannot shut down" in refused.error
    forced = run_task(StopVm, uri=node_uri, name="paused1", forceAfterTimeout=True)
    assert forced.outputs["forced"] is True and forced.outputs["stopped"] is True


def test_stop_vm_missing_domain(node_uri):
    result = run_task(StopVm, uri=node_uri, name="ghost", raise_on_failure=False)
    assert result.state == "FAILED" and result.error.endswith(": Domain not found")


# -- DeleteVm -------------------------------------------------------------------------------------


def test_delete_vm_with_storage_deletes_only_its_own_managed_volumes(node_uri):
    result = run_task(DeleteVm, uri=node_uri, name="web1", deleteStorage=True, assets={"enableAuto": True})
    out = result.outputs
    assert out["success"] is True and out["deleted"] is True and out["uuid"] == WEB1_UUID
    assert out["deletedVolumes"] == ["/default-pool/web1-os.qcow2", "/default-pool/web1-data.img"]
    logs = "\n".join(result.messages)
    assert "keeping /default-pool/shared.img: another VM uses it" in logs
    assert "keeping /srv/unmanaged/scratch.img: not a storage volume libvirt manages" in logs
    assert "keeping /default-pool/install.iso (cdrom, read-only)" in logs
    assert "powering off VM web1 (destroy)" in logs
    (asset,) = result.assets[0].outputs
    assert asset.id == WEB1_UUID and asset.metadata["deleted"] is True
    assert asset.metadata["deletedVolumes"] == out["deletedVolumes"]


def test_delete_vm_keeps_storage_by_default(node_uri):
    out = run_task(DeleteVm, uri=node_uri, name="db1").outputs
    assert out["deleted"] is True and out["deletedVolumes"] == [] and out["state"] == "VIR_DOMAIN_SHUTOFF"


def test_delete_vm_not_found(node_uri):
    failed = run_task(DeleteVm, uri=node_uri, name="ghost", raise_on_failure=False)
    assert failed.state == "FAILED"
    assert failed.error == f"VM 'ghost' not found on {node_uri}: Domain not found"
    tolerated = run_task(
        DeleteVm, uri=node_uri, name="ghost", failIfNotFound=False, assets={"enableAuto": True}
    )
    assert tolerated.outputs == {"name": "ghost", "success": True, "deleted": False, "deletedVolumes": []}
    assert tolerated.assets == []


# -- a lifecycle across tasks (test:///default keeps state between connections) ------------------


def test_lifecycle_across_tasks(shared_host):
    uri, name, conn = shared_host
    created = run_task(
        CreateVm,
        uri=uri,
        name=name,
        memory=256,
        domainType="test",
        disks=[{"pool": "default-pool", "volume": f"{name}-os.qcow2", "sizeMib": 128}],
        networks=[{"network": "default"}],
    ).outputs
    assert created["state"] == "VIR_DOMAIN_SHUTOFF"

    xml = conn.lookupByName(name).XMLDesc(0)
    assert f"<source pool='default-pool' volume='{name}-os.qcow2'/>" in xml
    assert "<target dev='vda' bus='virtio'/>" in xml and "<source network='default'" in xml
    assert "<acpi/>" in xml and "<console type='pty'>" in xml

    listed = run_task(ListVms, uri=uri, statusFilter="shutoff").outputs["vms"]
    assert name in [v["name"] for v in listed]

    updated = run_task(UpdateVm, uri=uri, name=name, memory=512).outputs
    assert updated["memory"] == 512 and updated["uuid"] == created["uuid"]

    started = run_task(StartVm, uri=uri, name=name, waitForRunning=True).outputs
    assert started["state"] == "VIR_DOMAIN_RUNNING" and started["memory"] == 512

    stopped = run_task(StopVm, uri=uri, name=name, waitForStopped=True).outputs
    assert stopped["state"] == "VIR_DOMAIN_SHUTOFF"

    deleted = run_task(DeleteVm, uri=uri, name=name, deleteStorage=True).outputs
    assert deleted["deletedVolumes"] == [f"/default-pool/{name}-os.qcow2"]
    assert name not in [d.name() for d in conn.listAllDomains()]
    assert f"{name}-os.qcow2" not in conn.storagePoolLookupByName("default-pool").listVolumes()


# -- connections, credentials and failures --------------------------------------------------------


def test_credentials_from_a_secret_never_reach_the_logs(auth_uri, monkeypatch):
    monkeypatch.setenv("SECRET_KVM_PASSWORD", base64.b64encode(b"kvm-test-s3cret").decode())
    result = run_task(ListVms, uri=auth_uri, username="roost", password="{{ secret('KVM_PASSWORD') }}")
    assert [v["name"] for v in result.outputs["vms"]] == ["guarded1"]
    assert result.messages and not any("kvm-test-s3cret" in m for m in result.messages)
    assert "kvm-test-s3cret" not in str(result.outputs)


def test_bad_credentials(auth_uri):
    result = run_task(ListVms, uri=auth_uri, username="roost", password="wrong-pw", raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error.startswith(f"authentication to libvirt at {auth_uri} failed: authentication failed")
    assert "wrong-pw" not in result.error and not any("wrong-pw" in m for m in result.messages)


def test_missing_credentials(auth_uri):
    result = run_task(StartVm, uri=auth_uri, name="guarded1", raise_on_failure=False)
    assert result.state == "FAILED"
    assert (
        result.error
        == f"cannot connect to libvirt at {auth_uri}: invalid argument: Missing authentication credentials"
    )


def test_unreachable_host(free_port_uri):
    result = run_task(ListVms, uri=free_port_uri, raise_on_failure=False)
    assert result.state == "FAILED"
    port = free_port_uri.split(":")[2].split("/")[0]
    assert result.error == (
        f"cannot connect to libvirt at {free_port_uri}: unable to connect to server at '127.0.0.1:{port}': "
        "Connection refused"
    )


def test_peer_that_never_answers_times_out(silent_peer):
    result = run_task(ListVms, uri=silent_peer.uri, connectionTimeout=0.5, raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error == f"cannot connect to libvirt at {silent_peer.uri}: no answer within 0.5s"


def test_malformed_answer(garbage_peer):
    result = run_task(StartVm, uri=garbage_peer.uri, name="x", raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error.startswith(f"cannot connect to libvirt at {garbage_peer.uri}: ")
    assert "RPC" in result.error or "packet" in result.error


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("test:///no/such/node.xml", "XML error: failed to parse xml document '/no/such/node.xml'"),
        (  # what a qemu:///system client sees when libvirtd is not running
            "qemu+unix:///system?socket=/nonexistent/libvirt-sock",
            "Failed to connect socket to '/nonexistent/libvirt-sock': No such file or directory",
        ),
    ],
)
def test_bad_uri(uri, message):
    result = run_task(ListVms, uri=uri, raise_on_failure=False)
    assert result.state == "FAILED" and result.error == f"cannot connect to libvirt at {uri}: {message}"


def test_uri_password_is_kept_out_of_errors(free_port_uri):
    uri = free_port_uri.replace("127.0.0.1", "admin:hunter2@127.0.0.1")
    result = run_task(ListVms, uri=uri, raise_on_failure=False)
    assert result.state == "FAILED" and "hunter2" not in result.error
    assert "admin@127.0.0.1" in result.error


def test_task_error_is_the_failure_type(node_uri):
    with pytest.raises(TaskError, match="VM 'ghost' not found"):
        run_task(DeleteVm, uri=node_uri, name="ghost")
