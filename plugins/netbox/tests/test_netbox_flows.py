"""The standard type checks, Kestra's documented examples, and a flow on the real engine."""

from __future__ import annotations

import base64

from roost.testing.suite import TypeSuite
from roost_netbox import tasks

# Kestra's documented examples for its NetBox tasks, as written.
KESTRA_CREATE = """
id: register_new_switch
namespace: company.team

tasks:
  - id: create_device
    type: io.kestra.plugin.ee.netbox.device.Create
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_API_TOKEN') }}"
    name: "switch-01"
    deviceType: "cisco-catalyst-9300"
    deviceRole: "access-switch"
    site: "nyc-dc1"
    rack: "rack-a01"
    position: 42
    face: "front"
    status: "active"
    addressDescription: "Access switch for production network"
    tags:
      - "production"
      - "network"
    customFields:
      purchase_date: "2024-01-15"
      warranty_expiration: "2027-01-15"
"""

KESTRA_LIST = """
id: list_production_switches
namespace: company.team

tasks:
  - id: list_devices
    type: io.kestra.plugin.ee.netbox.device.List
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_API_TOKEN') }}"
    filters:
      site: "nyc-dc1"
      role: "access-switch"
      status: "active"
      manufacturer: "cisco"
      tag: "production"
    limit: 100
    fields:
      - "id"
      - "name"
      - "status"
      - "site"
      - "primary_ip4"
      - "device_type"
      - "custom_fields"
    fetchType: STORE
"""

KESTRA_ASSIGN = """
id: assign_management_ip
namespace: company.team

tasks:
  - id: assign_ip
    type: io.kestra.plugin.ee.netbox.ipam.AssignIpAddress
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_API_TOKEN') }}"
    address: "10.100.1.45/24"
    status: "active"
    assignedObjectType: "dcim.interface"
    assignedObjectId: "{{ outputs.register_new_switch.primary_interface_id }}"
    dnsName: "switch-01.mgmt.example.com"
    addressDescription: "Management interface IP"
    role: "loopback"
    tags:
      - "management"
      - "monitored"
"""

# A provisioning flow: register a device, give it a management address, list what is there.
PROVISION = """
id: provision_switch
namespace: company.team
inputs:
  - id: hostname
    type: STRING
    defaults: flow-sw-01
tasks:
  - id: create
    type: io.kestra.plugin.ee.netbox.device.Create
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_API_TOKEN') }}"
    name: "{{ inputs.hostname }}"
    deviceType: acme-switch-48
    deviceRole: Access Switch
    site: Sandbox
    serial: FLOW-001
    assets:
      enableAuto: true
  - id: mgmt_ip
    type: io.kestra.plugin.ee.netbox.ipam.AssignIpAddress
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_API_TOKEN') }}"
    address: 10.99.0.10/24
    device: "{{ outputs.create.id }}"
    interface: mgmt0
    createInterface: true
    dnsName: "{{ inputs.hostname }}.mgmt.example.com"
    setPrimary: true
    assets:
      enableAuto: true
  - id: activate
    type: io.kestra.plugin.ee.netbox.device.Update
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_API_TOKEN') }}"
    deviceId: "{{ outputs.create.id }}"
    status: offline
  - id: sandbox_devices
    type: io.kestra.plugin.ee.netbox.device.List
    url: "{{ secret('NETBOX_URL') }}"
    token: "{{ secret('NETBOX_API_TOKEN') }}"
    site: sandbox
    filters:
      name: "{{ inputs.hostname }}"
    fetchType: FETCH_ONE
  - id: summary
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.sandbox_devices.row.name }} is {{ outputs.sandbox_devices.row.status }} at {{ outputs.sandbox_devices.row.primaryIp4 }}"
"""


class TestNetBoxTypes(TypeSuite):
    types = tasks.TASKS
    examples = [KESTRA_CREATE, KESTRA_LIST, KESTRA_ASSIGN, PROVISION]


def test_provisioning_flow_on_the_engine(run_flow, roost_engine, netbox, seed, tokens, monkeypatch):
    monkeypatch.setenv("SECRET_NETBOX_URL", base64.b64encode(netbox.url.encode()).decode())
    monkeypatch.setenv("SECRET_NETBOX_API_TOKEN", base64.b64encode(tokens.v2.encode()).decode())
    emitted = []
    roost_engine.asset_sink = lambda job, ctx, bundles: emitted.extend(bundles)
    ex = run_flow(PROVISION)
    assert ex.state.current == "SUCCESS", [(tr.task_id, tr.state.current) for tr in ex.task_runs]
    runs = {tr.task_id: tr for tr in ex.task_runs}
    device_id = runs["create"].outputs["id"]
    assert runs["mgmt_ip"].outputs["deviceId"] == device_id and runs["mgmt_ip"].outputs["primary"] is True
    assert runs["activate"].outputs["changed"] == ["status"]
    row = runs["sandbox_devices"].outputs["row"]
    assert (row["name"], row["status"], row["primaryIp4"]) == ("flow-sw-01", "offline", "10.99.0.10/24")
    outputs = {a.id.split("/", 1)[1]: a for b in emitted for a in b.outputs}
    assert outputs[f"dcim/devices/{device_id}"].metadata["serial"] == "FLOW-001"
    assert outputs[f"ipam/ip-addresses/{runs['mgmt_ip'].outputs['id']}"].metadata["interface"] == "mgmt0"
