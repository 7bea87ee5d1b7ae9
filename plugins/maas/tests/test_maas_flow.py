"""A whole flow through the real engine: enlist -> commission -> deploy -> query power,
with the API key from a secret, outputs chained by expressions and the engine's kill."""

from __future__ import annotations

import base64
import time

FLOW = """
id: provision
namespace: company.team
tasks:
  - id: enlist
    type: io.kestra.plugin.ee.canonical.maas.EnlistMachine
    url: "{{ inputs.maas }}"
    apiKey: "{{ secret('MAAS_API_KEY') }}"
    macAddress: "52:54:00:12:34:56"
    hostname: prod-web-01
    powerType: ipmi
    powerParameters:
      power_address: 192.168.1.100
      power_pass: "{{ secret('MAAS_API_KEY') }}"
    commission: false
  - id: commission
    type: io.kestra.plugin.ee.canonical.maas.CommissionMachine
    url: "{{ inputs.maas }}"
    apiKey: "{{ secret('MAAS_API_KEY') }}"
    systemId: "{{ outputs.enlist.systemId }}"
    waitForCompletion: true
    pollInterval: PT0.02S
  - id: deploy
    type: io.kestra.plugin.ee.canonical.maas.DeployMachine
    url: "{{ inputs.maas }}"
    apiKey: "{{ secret('MAAS_API_KEY') }}"
    systemId: "{{ outputs.commission.systemId }}"
    distroSeries: noble
    waitForDeployment: true
    pollInterval: PT0.02S
    assets:
      enableAuto: true
  - id: power
    type: io.kestra.plugin.ee.canonical.maas.PowerControlMachine
    url: "{{ inputs.maas }}"
    apiKey: "{{ secret('MAAS_API_KEY') }}"
    systemId: "{{ outputs.deploy.systemId }}"
    action: QUERY
inputs:
  - id: maas
    type: STRING
"""

HANGING = """
id: hanging
namespace: company.team
inputs:
  - id: maas
    type: STRING
  - id: machine
    type: STRING
tasks:
  - id: commission
    type: io.kestra.plugin.ee.canonical.maas.CommissionMachine
    url: "{{ inputs.maas }}"
    apiKey: "{{ secret('MAAS_API_KEY') }}"
    systemId: "{{ inputs.machine }}"
    waitForCompletion: true
    pollInterval: PT0.05S
"""


def _secret(monkeypatch, maas) -> None:
    monkeypatch.setenv("SECRET_MAAS_API_KEY", base64.b64encode(maas.admin_key.encode()).decode())


def test_provisioning_flow(maas, run_flow, roost_engine, monkeypatch):
    _secret(monkeypatch, maas)
    execution = run_flow(FLOW, {"maas": maas.url})
    assert execution.state.current == "SUCCESS", execution.error
    outputs = {tr.task_id: tr.outputs for tr in execution.task_runs}
    sid = outputs["enlist"]["systemId"]
    assert outputs["commission"]["status"] == "Ready"
    assert outputs["deploy"]["status"] == "Deployed" and outputs["deploy"]["distroSeries"] == "noble"
    assert outputs["power"]["powerState"] == "on" and outputs["power"]["systemId"] == sid
    assert maas.machines[sid].power_parameters["power_pass"] == maas.admin_key
    logs = roost_engine.store.get_logs("main", execution.id)
    assert any("Deployed" in log["message"] for log in logs)
    for part in maas.admin_key.split(":"):
        assert not any(part in log["message"] for log in logs)


def test_killing_the_execution_aborts_commissioning(maas, roost_engine, monkeypatch):
    _secret(monkeypatch, maas)
    sid = maas.by_hostname("hang01").system_id
    flow = roost_engine.deploy(HANGING)
    execution = roost_engine.create_execution(flow, {"maas": maas.url, "machine": sid})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        maas.machines[sid].status == 1 and len([r for r in maas.requests if r["op"] == ""]) > 2
    ):
        time.sleep(0.02)
    roost_engine.kill(execution.id)
    final = roost_engine.wait(execution.id, timeout=10)
    assert final.state.current == "KILLED"
    # the engine runs kill callbacks on its own thread: the abort may land just after the state
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "abort" not in maas.ops(sid):
        time.sleep(0.02)
    assert maas.ops(sid)[-1] == "abort" and maas.machines[sid].status == 0
    assert maas.ops(sid).count("abort") == 1


def test_engine_timeout_aborts_once(maas, roost_engine, monkeypatch):
    """The task's timeout is both the engine's limit and the wait's: MAAS is told to abort once."""
    _secret(monkeypatch, maas)
    sid = maas.by_hostname("hang01").system_id
    flow = roost_engine.deploy(
        HANGING.replace("pollInterval: PT0.05S", "pollInterval: PT0.05S\n    timeout: PT0.5S")
    )
    final = roost_engine.run(flow, {"maas": maas.url, "machine": sid}, timeout=10)
    assert final.state.current == "FAILED"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "abort" not in maas.ops(sid):
        time.sleep(0.02)
    time.sleep(0.2)
    assert maas.ops(sid).count("abort") == 1 and maas.machines[sid].status == 0
