"""A whole flow through the real engine: create -> snapshot -> stop, credentials from secrets,
outputs chained by expressions, and the engine's kill cancelling the Prism task."""

from __future__ import annotations

import base64
import time

from fake_prism import CLUSTER

FLOW = """
id: lifecycle
namespace: company.team
inputs:
  - id: port
    type: INT
pluginDefaults:
  - type: io.kestra.plugin.ee.nutanix
    values:
      host: 127.0.0.1
      port: "{{ inputs.port }}"
      scheme: http
      username: admin
      password: "{{ secret('NUTANIX_PASSWORD') }}"
      pollInterval: PT0.02S
tasks:
  - id: create_vm
    type: io.kestra.plugin.ee.nutanix.ahv.CreateVm
    vm:
      name: flow-vm
      cluster:
        extId: CLUSTER_ID
      resources:
        numSockets: 1
        numCoresPerSocket: 2
        memorySizeBytes: 2147483648
    powerOn: true
  - id: snapshot
    type: io.kestra.plugin.ee.nutanix.snapshot.CreateVmSnapshot
    vmExtId: "{{ outputs.create_vm.vmExtId }}"
    snapshotName: "first-boot-{{ execution.id }}"
  - id: stop
    type: io.kestra.plugin.ee.nutanix.ahv.StopVm
    vmExtId: "{{ outputs.create_vm.vmExtId }}"
""".replace("CLUSTER_ID", CLUSTER)

HANGING = """
id: hanging
namespace: company.team
inputs:
  - id: port
    type: INT
  - id: vm
    type: STRING
tasks:
  - id: start
    type: io.kestra.plugin.ee.nutanix.ahv.StartVm
    host: 127.0.0.1
    port: "{{ inputs.port }}"
    scheme: http
    username: admin
    password: "{{ secret('NUTANIX_PASSWORD') }}"
    vmExtId: "{{ inputs.vm }}"
    pollInterval: PT0.02S
"""


def _secret(monkeypatch, prism) -> None:
    monkeypatch.setenv(
        "SECRET_NUTANIX_PASSWORD", base64.b64encode(prism.accounts[0].password.encode()).decode()
    )


def test_vm_lifecycle_flow(prism, run_flow, roost_engine, monkeypatch):
    _secret(monkeypatch, prism)
    execution = run_flow(FLOW, {"port": prism.port})
    assert execution.state.current == "SUCCESS", execution.error
    outputs = {tr.task_id: tr.outputs for tr in execution.task_runs}
    vm_id = outputs["create_vm"]["vmExtId"]
    assert outputs["create_vm"]["powerState"] == "ON"
    assert outputs["snapshot"]["snapshotName"] == f"first-boot-{execution.id}"
    assert prism.rps[outputs["snapshot"]["snapshotExtId"]]["vmRecoveryPoints"][0]["vmExtId"] == vm_id
    assert outputs["stop"]["powerState"] == "OFF" and prism.vms[vm_id].vm["powerState"] == "OFF"
    logs = roost_engine.store.get_logs("main", execution.id)
    assert any("SUCCEEDED" in log["message"] for log in logs)
    assert not any(prism.accounts[0].password in log["message"] for log in logs)


def test_killing_the_execution_cancels_the_prism_task(prism, roost_engine, monkeypatch):
    _secret(monkeypatch, prism)
    vm_id = prism.vm_by_name("db-01")["extId"]
    prism.plan("HANG")
    flow = roost_engine.deploy(HANGING)
    execution = roost_engine.create_execution(flow, {"port": prism.port, "vm": vm_id})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        t.status() == "RUNNING" for t in list(prism.tasks.values())
    ):
        time.sleep(0.02)
    roost_engine.kill(execution.id)
    assert roost_engine.wait(execution.id, timeout=10).state.current == "KILLED"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not prism.cancel_calls:
        time.sleep(0.02)
    assert len(prism.cancel_calls) == 1
    assert prism.vm_by_name("db-01")["powerState"] == "OFF"
