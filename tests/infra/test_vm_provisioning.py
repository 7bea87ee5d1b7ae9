"""End to end: create a VM on KVM, register it in NetBox, check an OPA policy, start it.

The flow below runs on the real engine (roost.testing's ``roost_engine``) against libvirt
(``test:///default``, and a real ``qemu:///system`` where libvirtd is installed), a real
NetBox 4.7 and an OPA REST API evaluating Rego for real; then the test looks at each system
through its own client (libvirt, pynetbox, the fake OPA's decision log) and at the asset store.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import libvirt

HERE = Path(__file__).resolve().parent

# The flow, as tests/infra/README.md shows it (a test keeps the two identical).
FLOW = """\
id: provision_vm
namespace: company.infra

inputs:
  - id: vm
    type: STRING
  - id: address
    type: STRING
    description: The VM's address in CIDR notation, registered in NetBox.
  - id: memory
    type: INT
    defaults: 64
  - id: maxMemory
    type: INT
    defaults: 1024
  - id: uri
    type: STRING
    defaults: test:///default
  - id: domainType
    type: STRING
    defaults: kvm

tasks:
  - id: upload_policy
    type: io.kestra.plugin.ee.opa.policy.Upload
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
    policyId: infra-vm
    policy: |
      package infra.vm

      import rego.v1

      max_memory_mib := {{ inputs.maxMemory }}

      allowed_sites := {"infra-lab"}

      default allow := false

      allow if {
        input.vm.memory <= max_memory_mib
        input.device.site in allowed_sites
      }

      violations contains msg if {
        input.vm.memory > max_memory_mib
        msg := sprintf("%s asks for %d MiB, more than the %d MiB allowed", [input.vm.name, input.vm.memory, max_memory_mib])
      }

      violations contains msg if {
        not input.device.site in allowed_sites
        msg := sprintf("site %s is not allowed", [input.device.site])
      }
    assets:
      enableAuto: true

  - id: create_vm
    type: io.kestra.plugin.kvm.CreateVm
    uri: "{{ inputs.uri }}"
    name: "{{ inputs.vm }}"
    memory: "{{ inputs.memory }}"
    vcpus: 1
    domainType: "{{ inputs.domainType }}"
    ifExists: FAIL
    assets:
      enableAuto: true

  - id: device
    type: io.kestra.plugin.ee.netbox.device.Create
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_TOKEN') }}"
    name: "{{ outputs.create_vm.name }}"
    deviceType: kvm-guest
    role: vm
    site: infra-lab
    status: planned
    serial: "{{ outputs.create_vm.uuid }}"
    deviceDescription: "KVM guest on {{ inputs.uri }}"
    assets:
      enableAuto: true
      # the NetBox plugin cannot know the VM behind the device: say so, for the lineage
      inputs:
        - id: "{{ outputs.create_vm.uuid }}"
          type: io.kestra.plugin.ee.assets.VM
      outputs:
        - id: "{{ outputs.device.url | substringAfter('://') | replace({'/api/': '/'}) | substringBeforeLast('/') }}"
          type: io.kestra.core.models.assets.External

  - id: ip
    type: io.kestra.plugin.ee.netbox.ipam.AssignIpAddress
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_TOKEN') }}"
    address: "{{ inputs.address }}"
    device: "{{ outputs.device.id }}"
    interface: eth0
    createInterface: true
    setPrimary: true
    dnsName: "{{ outputs.create_vm.name }}.infra.example.com"
    assets:
      enableAuto: true

  - id: check_policy
    type: io.kestra.plugin.ee.opa.policy.Evaluate
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
    policyPath: infra/vm/allow
    input:
      vm:
        name: "{{ outputs.create_vm.name }}"
        uuid: "{{ outputs.create_vm.uuid }}"
        memory: "{{ outputs.create_vm.memory }}"
        vcpus: "{{ outputs.create_vm.vcpus }}"
      device:
        id: "{{ outputs.device.id }}"
        site: "{{ outputs.device.site }}"
        role: "{{ outputs.device.role }}"
      ip:
        address: "{{ outputs.ip.address }}"
        primary: "{{ outputs.ip.primary }}"
    failOnDeny: true
    assets:
      enableAuto: true

  - id: start_vm
    type: io.kestra.plugin.kvm.StartVm
    uri: "{{ inputs.uri }}"
    name: "{{ outputs.create_vm.name }}"
    waitForRunning: true
    timeToWait: PT60S
    assets:
      enableAuto: true

  - id: mark_active
    type: io.kestra.plugin.ee.netbox.device.Update
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_TOKEN') }}"
    deviceId: "{{ outputs.device.id }}"
    status: active
    assets:
      enableAuto: true

errors:
  - id: why_denied
    type: io.kestra.plugin.ee.opa.policy.Evaluate
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
    policyPath: infra/vm/violations
    input:
      vm:
        name: "{{ inputs.vm }}"
        memory: "{{ inputs.memory }}"
      device:
        site: "{{ outputs.device.site ?? 'unknown' }}"
"""

VM = "io.kestra.plugin.ee.assets.VM"
EXTERNAL = "io.kestra.core.models.assets.External"
RUNNING, SHUTOFF = libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_SHUTOFF

# Six plugins of the infrastructure issue, and the Kestra task types each must offer.
INFRA_PLUGINS = {
    "kvm": {
        "io.kestra.plugin.kvm.ListVms",
        "io.kestra.plugin.kvm.CreateVm",
        "io.kestra.plugin.kvm.UpdateVm",
        "io.kestra.plugin.kvm.StartVm",
        "io.kestra.plugin.kvm.StopVm",
        "io.kestra.plugin.kvm.DeleteVm",
    },
    "maas": {
        "io.kestra.plugin.ee.canonical.maas.EnlistMachine",
        "io.kestra.plugin.ee.canonical.maas.CommissionMachine",
        "io.kestra.plugin.ee.canonical.maas.DeployMachine",
    },
    "netbox": {
        "io.kestra.plugin.ee.netbox.site.List",
        "io.kestra.plugin.ee.netbox.device.List",
        "io.kestra.plugin.ee.netbox.device.Create",
        "io.kestra.plugin.ee.netbox.device.Update",
        "io.kestra.plugin.ee.netbox.ipam.AssignIpAddress",
    },
    "nutanix": {
        "io.kestra.plugin.ee.nutanix.ahv.CloneVm",
        "io.kestra.plugin.ee.nutanix.ahv.CloneTemplate",
        "io.kestra.plugin.ee.nutanix.ahv.ConvertTemplateToVm",
    },
    "cloudflare": {
        "io.kestra.plugin.cloudflare.dns.records.Create",
        "io.kestra.plugin.cloudflare.dns.records.Upsert",
        "io.kestra.plugin.cloudflare.dns.records.Delete",
        "io.kestra.plugin.cloudflare.cache.Purge",
    },
    "opa": {
        "io.kestra.plugin.ee.opa.policy.Upload",
        "io.kestra.plugin.ee.opa.policy.List",
        "io.kestra.plugin.ee.opa.policy.Delete",
        "io.kestra.plugin.ee.opa.policy.Evaluate",
        "io.kestra.plugin.ee.opa.policy.Compile",
    },
}


def task_states(ex: Any) -> dict[str, str]:
    return {tr.task_id: tr.state.current for tr in ex.task_runs}


def run_provisioning(engine: Any, inputs: dict[str, Any]) -> Any:
    return engine.run(engine.deploy(FLOW), inputs, timeout=120)


def assert_no_credential(engine: Any, ex: Any, secrets: dict[str, str]) -> list[str]:
    """No token in any log line, output, error or asset of the execution; returns the log lines."""
    logs = [log["message"] for log in engine.store.get_logs("main", ex.id)]
    outputs = [json.dumps(tr.outputs) for tr in ex.task_runs]
    assets = [json.dumps(a) for a in engine.assets.search("main")]
    for key in ("NETBOX_TOKEN", "OPA_TOKEN"):
        token = secrets[key]
        for text in [*logs, *outputs, *assets, str(ex.error or "")]:
            assert token not in text, f"{key} leaked in: {text!r}"
    return logs


def test_vm_is_created_registered_checked_and_started(roost_engine, secrets, host, nb_admin, nb_setup, opa):
    name = host.vm_name()
    address = "10.20.0.11/24" if host.uri.startswith("test:") else "10.20.0.12/24"
    ex = run_provisioning(
        roost_engine, {"vm": name, "address": address, "uri": host.uri, "domainType": host.domain_type}
    )

    states = task_states(ex)
    assert ex.state.current == "SUCCESS", (ex.error, states)
    assert states == dict.fromkeys(
        ["upload_policy", "create_vm", "device", "ip", "check_policy", "start_vm", "mark_active"], "SUCCESS"
    )
    out = {tr.task_id: tr.outputs for tr in ex.task_runs}
    uuid = out["create_vm"]["uuid"]

    # libvirt: the VM exists, is running, and is the one the flow created
    dom = host.conn.lookupByName(name)
    assert dom.UUIDString() == uuid and dom.state()[0] == RUNNING
    assert out["create_vm"]["created"] is True and out["create_vm"]["state"] == "VIR_DOMAIN_SHUTOFF"
    assert out["start_vm"]["started"] is True and out["start_vm"]["state"] == "VIR_DOMAIN_RUNNING"

    # NetBox: the device (serial = the VM's UUID, active once started) and its primary address
    device = nb_admin.dcim.devices.get(name=name)
    assert device is not None and device.id == out["device"]["id"]
    assert (device.site.slug, device.role.slug, device.device_type.slug) == ("infra-lab", "vm", "kvm-guest")
    assert device.serial == uuid and device.status.value == "active"
    assert device.primary_ip4 is not None and device.primary_ip4.address == address
    ip = nb_admin.ipam.ip_addresses.get(out["ip"]["id"])
    assert ip.address == address and ip.dns_name == f"{name}.infra.example.com"
    assert ip.assigned_object_type == "dcim.interface" and ip.assigned_object.name == "eth0"
    assert ip.assigned_object.device.id == device.id

    # OPA: the decision was taken on what the previous tasks produced, with native types
    assert out["check_policy"]["allowed"] is True
    decision = next(d for d in opa.decisions if d["decision_id"] == out["check_policy"]["decisionId"])
    assert decision["input"] == {
        "vm": {"name": name, "uuid": uuid, "memory": 64, "vcpus": 1},
        "device": {"id": device.id, "site": "infra-lab", "role": "vm"},
        "ip": {"address": address, "primary": True},
    }

    # assets: the VM, the device and the address, with their lineage
    nb_host = secrets["NETBOX_URL"].removeprefix("http://")
    device_id = f"{nb_host}/dcim/devices/{device.id}"
    ip_id = f"{nb_host}/ipam/ip-addresses/{ip.id}"
    site_id = f"{nb_host}/dcim/sites/{nb_setup.site.id}"
    policy_id = f"opa:{opa.url.removeprefix('http://')}:policy:infra-vm"
    svc = roost_engine.assets

    (vm_asset,) = svc.search("main", types=[VM], asset_id=uuid)
    assert vm_asset["namespace"] == "company.infra" and vm_asset["displayName"] == name
    assert vm_asset["metadata"]["provider"] == "kvm" and vm_asset["metadata"]["uri"] == host.uri
    assert vm_asset["metadata"]["state"] == "VIR_DOMAIN_RUNNING" and vm_asset["metadata"]["memory"] == 64
    assert [e["event"] for e in svc.events("main", asset_id=uuid)] == ["CREATED", "USED", "UPDATED"]

    (dev_asset,) = svc.search("main", types=[EXTERNAL], asset_id=device_id)
    assert dev_asset["displayName"] == name
    expected = {"objectType": "dcim.device", "site": "infra-lab", "role": "vm", "status": "active",
                "serial": uuid, "primaryIp": address}  # fmt: skip
    assert expected.items() <= dev_asset["metadata"].items(), dev_asset["metadata"]

    (ip_asset,) = svc.search("main", types=[EXTERNAL], asset_id=ip_id)
    assert ip_asset["displayName"] == address
    assert ip_asset["metadata"]["objectType"] == "ipam.ipaddress"
    assert (ip_asset["metadata"]["device"], ip_asset["metadata"]["interface"]) == (name, "eth0")

    (policy_asset,) = svc.search("main", asset_id=policy_id)
    assert policy_asset["metadata"]["package"] == "infra.vm"

    def uid(asset_id: str, type_: str = EXTERNAL) -> str:
        return f"company.infra/{asset_id}/{type_}"

    graph = svc.lineage("main", device_id)
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert edges == {
        (uid(uuid, VM), uid(device_id)),  # device <- VM (declared in the flow)
        (uid(site_id), uid(device_id)),  # device <- site (NetBox plugin)
        (uid(device_id), uid(ip_id)),  # address <- device (NetBox plugin)
    }
    by_task = {
        r["taskId"]: ([a["id"] for a in r["inputs"]], [a["id"] for a in r["outputs"]])
        for r in svc.lineage_events("main", execution_id=ex.id)
        if r["taskId"] != "device"
    }
    assert by_task == {
        "upload_policy": ([], [policy_id]),
        "create_vm": ([], [uuid]),
        "ip": ([device_id], [ip_id]),
        "check_policy": ([policy_id], []),
        "start_vm": ([], [uuid]),
        "mark_active": ([site_id], [device_id]),
    }
    device_records = [
        ([a["id"] for a in r["inputs"]], [a["id"] for a in r["outputs"]])
        for r in svc.lineage_events("main", execution_id=ex.id)
        if r["taskId"] == "device"
    ]
    assert device_records == [([uuid], [device_id]), ([site_id], [device_id])]

    # no credential anywhere the execution left text
    logs = assert_no_credential(roost_engine, ex, secrets)
    assert f"created device '{name}' (id {device.id}) at site infra-lab" in logs
    assert "decision data.infra.vm.allow = true" in " ".join(logs)


def test_a_denying_policy_stops_the_flow_before_the_vm_starts(
    roost_engine, secrets, test_host, nb_admin, opa
):
    name = test_host.vm_name()
    ex = run_provisioning(
        roost_engine, {"vm": name, "address": "10.20.0.21/24", "uri": test_host.uri, "memory": 2048}
    )

    assert ex.state.current == "FAILED"
    states = task_states(ex)
    assert states == {
        "upload_policy": "SUCCESS",
        "create_vm": "SUCCESS",
        "device": "SUCCESS",
        "ip": "SUCCESS",
        "check_policy": "FAILED",
        "why_denied": "SUCCESS",
    }
    (decision,) = [d for d in opa.decisions if d["path"] == "infra/vm/allow"]
    assert decision["result"] is False
    # the task's error, as the execution shows it: its ERROR line, with OPA's decision
    errors = [
        (log["taskId"], log["message"])
        for log in roost_engine.store.get_logs("main", ex.id)
        if log["level"] == "ERROR"
    ]
    assert errors == [
        (
            "check_policy",
            f"OPA denied data.infra.vm.allow: the decision is false (decision id {decision['decision_id']})",
        )
    ]

    # the VM was defined, never started; NetBox holds the device, still planned
    assert test_host.state(name) == SHUTOFF
    assert nb_admin.dcim.devices.get(name=name).status.value == "planned"
    assert not any(
        a["metadata"].get("state") == "VIR_DOMAIN_RUNNING"
        for a in roost_engine.assets.search("main", types=[VM])
    )

    # the errors branch asked OPA why
    why = next(tr for tr in ex.task_runs if tr.task_id == "why_denied").outputs
    assert why["result"] == [f"{name} asks for 2048 MiB, more than the 1024 MiB allowed"]
    assert_no_credential(roost_engine, ex, secrets)


def test_readme_shows_the_flow_under_test():
    assert FLOW in (HERE / "README.md").read_text()


def roost_cli(*args: str, columns: int = 80) -> subprocess.Popen:
    """The ``roost`` command beside this interpreter, started as a user runs it: default plugin loading."""
    env = {k: v for k, v in os.environ.items() if k not in ("ROOST_LOAD_PLUGINS", "ROOST_DISABLE_PLUGINS")}
    env["COLUMNS"] = str(columns)
    script = Path(sys.executable).with_name("roost")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "roost.cli.main"]
    return subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def test_plugins_list_shows_the_six_infrastructure_plugins_and_their_types():
    as_json = roost_cli("plugins", "list", "--json")
    # the listing a person reads, wide enough for full type ids (in parallel: ~2 s each)
    as_table = roost_cli("plugins", "list", columns=250)
    try:
        listed = json.loads(finish(as_json))
        table = finish(as_table)
    finally:
        for proc in (as_json, as_table):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert listed["broken"] == []
    by_name = {p["name"]: p for p in listed["plugins"]}
    assert set(INFRA_PLUGINS) <= set(by_name), sorted(by_name)
    for name, expected in INFRA_PLUGINS.items():
        plugin = by_name[name]
        assert plugin["distribution"] == f"roost-plugin-{name}" and plugin["version"]
        assert plugin["module"] == f"roost_{name}.plugin"
        assert "register_task_types" in plugin["hooks"]
        assert expected <= set(plugin["types"]), (name, sorted(expected - set(plugin["types"])))
        # exactly the types the plugin registers (no other plugin's, none lost)
        registered: list[Any] = []
        module = importlib.import_module(f"roost_{name}.plugin")
        for hook in ("register_task_types", "register_trigger_types"):
            if hasattr(module, hook):
                getattr(module, hook)(register=lambda *classes, into=registered: into.extend(classes))
        assert plugin["types"] == sorted(c.type_id for c in registered)

    words = set(table.split())  # a table on a terminal, indented lines through a pipe: the same words
    for name, expected in INFRA_PLUGINS.items():
        assert name in words, name
        for type_id in expected:
            assert type_id in words, type_id
