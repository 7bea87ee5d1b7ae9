"""Flows on the real engine: Kestra's documented examples validate, a lifecycle runs, a kill lands."""

from __future__ import annotations

import time

from roost.testing.suite import TypeSuite
from roost_kvm import tasks

# Kestra's documented examples for io.kestra.plugin.kvm, as written.
KESTRA_CREATE = """
id: crea_kvm_vm_ssh
namespace: kvmtest.ssh

tasks:
  - id: create_vm
    type: io.kestra.plugin.kvm.CreateVm
    uri: qemu+ssh://root@167.99.104.163/system
    xmlDefinition: |
      <domain type='kvm'>
        <name>kestra-worker-nodes</name>
        <memory unit='MiB'>512</memory>
        <vcpu placement='static'>1</vcpu>
        <os>
          <type arch='x86_64' machine='pc-q35-6.2'>hvm</type>
          <boot dev='hd'/>
        </os>
      </domain>
    startAfterCreate: true

  - id: log_result
    type: io.kestra.plugin.core.log.Log
    message: |
      VM Created!
      Name: {{outputs.create_vm.name}}
      UUID: {{ outputs.create_vm.uuid }}
      State: {{ outputs.create_vm.state }}
"""

KESTRA_LIFECYCLE = """
id: kvm_lifecycle_ssh
namespace: kvmtest.ssh

tasks:
  - id: list_initial_vms
    type: io.kestra.plugin.kvm.ListVms
    uri: qemu+ssh://root@167.99.104.163/system
  - id: start_vm
    type: io.kestra.plugin.kvm.StartVm
    uri: qemu+ssh://root@167.99.104.163/system
    name: "kestra-worker-nodes"
    waitForRunning: true
  - id: stop_vm
    type: io.kestra.plugin.kvm.StopVm
    uri: qemu+ssh://root@167.99.104.163/system
    name: "kestra-worker-nodes"
    force: true
  - id: delete_vm
    type: io.kestra.plugin.kvm.DeleteVm
    uri: "qemu+ssh://root@167.99.104.163/system"
    name: "kestra-worker-nodes"
    deleteStorage: true
    failIfNotFound: true
"""

KESTRA_UPDATE = """
id: update_kvm_vm_ssh
namespace: kvmtest.ssh

tasks:
  - id: update_vm
    type: io.kestra.plugin.kvm.UpdateVm
    uri: qemu+ssh://root@167.99.104.163/system
    xmlDefinition: |
      <domain type='kvm'>
          <name>kestra-worker-nodes</name>
          <memory unit='MiB'>700</memory>
          <vcpu placement='static'>1</vcpu>
          <os>
            <type arch='x86_64' machine='pc-q35-6.2'>hvm</type>
            <boot dev='hd'/>
          </os>
      </domain>
    restart: true

  - id: log_result
    type: io.kestra.plugin.core.log.Log
    message: |
      VM Updated!
      Name: {{outputs.update_vm.name}}
      wasRestarted: {{ outputs.update_vm.wasRestarted }}
      State: {{ outputs.update_vm.state }}
"""

# The README's example, run below against libvirt's test driver.
LIFECYCLE = """
id: kvm_vm_lifecycle
namespace: company.infra
inputs:
  - id: uri
    type: STRING
    defaults: qemu:///system
  - id: vm
    type: STRING
    defaults: build-runner-01
tasks:
  - id: create
    type: io.kestra.plugin.kvm.CreateVm
    uri: "{{ inputs.uri }}"
    name: "{{ inputs.vm }}"
    memory: 2048
    vcpus: 2
    disks:
      - pool: default-pool
        volume: "{{ inputs.vm }}-os.qcow2"
        sizeMib: 20480
    networks:
      - network: default
    startAfterCreate: true
    assets:
      enableAuto: true
  - id: resize
    type: io.kestra.plugin.kvm.UpdateVm
    uri: "{{ inputs.uri }}"
    name: "{{ outputs.create.name }}"
    memory: 4096
    restart: true
    timeToWait: PT2M
  - id: stop
    type: io.kestra.plugin.kvm.StopVm
    uri: "{{ inputs.uri }}"
    name: "{{ outputs.create.name }}"
    waitForStopped: true
    timeToWait: PT2M
    forceAfterTimeout: true
    assets:
      enableAuto: true
  - id: delete
    type: io.kestra.plugin.kvm.DeleteVm
    uri: "{{ inputs.uri }}"
    name: "{{ outputs.create.name }}"
    deleteStorage: true
    assets:
      enableAuto: true
  - id: report
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.create.name }} ({{ outputs.create.uuid }}) deleted with {{ outputs.delete.deletedVolumes }}"
"""


class TestKvmTypes(TypeSuite):
    types = tasks.TASKS
    examples = [KESTRA_CREATE, KESTRA_LIFECYCLE, KESTRA_UPDATE, LIFECYCLE]


def test_lifecycle_flow(run_flow, roost_engine, shared_host):
    uri, name, conn = shared_host
    ex = run_flow(LIFECYCLE, {"uri": uri, "vm": name})
    assert ex.state.current == "SUCCESS", ex.error
    out = {tr.task_id: tr.outputs for tr in ex.task_runs}
    assert out["create"]["state"] == "VIR_DOMAIN_RUNNING" and out["create"]["memory"] == 2048
    assert out["resize"]["wasRestarted"] is True and out["resize"]["memory"] == 4096
    assert out["stop"]["state"] == "VIR_DOMAIN_SHUTOFF" and out["stop"]["forced"] is False
    assert out["delete"]["deletedVolumes"] == [f"/default-pool/{name}-os.qcow2"]
    assert name not in [d.name() for d in conn.listAllDomains()]
    logs = [log["message"] for log in roost_engine.store.get_logs("main", ex.id)]
    assert f'{name} ({out["create"]["uuid"]}) deleted with ["/default-pool/{name}-os.qcow2"]' in logs

    (asset,) = roost_engine.assets.search("main", types=[tasks.VM_ASSET], asset_id=out["create"]["uuid"])
    assert asset["namespace"] == "company.infra" and asset["displayName"] == name
    assert asset["metadata"]["deleted"] is True and asset["metadata"]["uri"] == uri
    events = [e["event"] for e in roost_engine.assets.events("main", asset_id=out["create"]["uuid"])]
    assert events == ["CREATED", "UPDATED", "UPDATED"]


KILLABLE = """
id: kvm_unreachable
namespace: company.infra
inputs:
  - id: uri
    type: STRING
tasks:
  - id: list
    type: io.kestra.plugin.kvm.ListVms
    uri: "{{ inputs.uri }}"
    connectionTimeout: PT60S
"""


def test_killing_the_execution_stops_a_task_waiting_on_libvirt(roost_engine, silent_peer):
    flow = roost_engine.deploy(KILLABLE)
    execution = roost_engine.create_execution(flow, {"uri": silent_peer.uri})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not silent_peer.clients:
        time.sleep(0.02)
    assert silent_peer.clients, "the task never reached the peer"
    started = time.monotonic()
    roost_engine.kill(execution.id)
    final = roost_engine.wait(execution.id, timeout=10)
    assert final.state.current == "KILLED"
    assert time.monotonic() - started < 5
