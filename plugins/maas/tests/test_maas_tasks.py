"""Happy paths of every MAAS task against the fake MAAS region API over real HTTP."""

from __future__ import annotations

import importlib.metadata

import pytest
from roost import Task, TaskError
from roost.testing import run_task
from roost_maas import plugin, tasks
from roost_maas.tasks import (
    CommissionMachine,
    DeployMachine,
    EnlistMachine,
    ListMachines,
    PowerControlMachine,
)

FAST = {"pollInterval": "PT0.02S"}


# -- packaging and schema --------------------------------------------------------------------------
def test_entry_point_registers_every_task():
    eps = [ep for ep in importlib.metadata.entry_points(group="roost") if ep.name == "maas"]
    assert [ep.value for ep in eps] == ["roost_maas.plugin"]
    registered = []
    plugin.register_task_types(lambda *types: registered.extend(types))
    assert {t.type_id for t in registered} == {
        "io.kestra.plugin.ee.canonical.maas.ListMachines",
        "io.kestra.plugin.ee.canonical.maas.EnlistMachine",
        "io.kestra.plugin.ee.canonical.maas.CommissionMachine",
        "io.kestra.plugin.ee.canonical.maas.DeployMachine",
        "io.kestra.plugin.ee.canonical.maas.PowerControlMachine",
    }


@pytest.mark.parametrize("task", tasks.TASKS, ids=lambda t: t.__name__)
def test_every_property_and_output_is_documented(task):
    assert task.__doc__ and task.__doc__.strip()
    base = set(Task.model_fields)
    for name, info in task.model_fields.items():
        if name not in base or name == "timeout":
            assert info.description, f"{task.__name__}.{name} has no description"
    for name, info in task.Out.model_fields.items():
        assert info.description, f"{task.__name__}.Out.{name} has no description"
    schema = task.model_json_schema(by_alias=True)
    assert "apiKey" in schema["properties"] and "verifySsl" in schema["properties"]


# -- ListMachines ----------------------------------------------------------------------------------
def test_list_all_machines(maas, conn):
    result = run_task(ListMachines, **conn)
    assert result.state == "SUCCESS"
    out = result.outputs
    assert out["count"] == out["total"] == len(maas.machines) == 7
    hostnames = {m["hostname"] for m in out["machines"]}
    assert {"ready01", "deployed01", "hang01"} <= hostnames
    deployed = next(m for m in out["machines"] if m["hostname"] == "deployed01")
    assert deployed["status_name"] == "Deployed" and deployed["ip_addresses"] == ["10.0.0.5"]
    assert "interface_set" in deployed  # includeDetails defaults to the full MAAS record


def test_list_filters_fields_and_paging(maas, conn):
    ready = run_task(ListMachines, **conn, filters={"status": ["ready"]})
    assert sorted(m["hostname"] for m in ready.outputs["machines"]) == ["ready01", "ready02", "ready03"]

    prod = run_task(
        ListMachines,
        **conn,
        filters={
            "status": ["Ready", "Deployed"],
            "zone": "zone-b",
            "resourcePool": "production",
            "tags": ["ssd"],
        },
        fields=["system_id", "hostname", "status_name", "ip_addresses"],
    )
    assert [sorted(m) for m in prod.outputs["machines"]] == [
        ["hostname", "ip_addresses", "status_name", "system_id"]
    ] * 2
    assert sorted(m["hostname"] for m in prod.outputs["machines"]) == ["deployed01", "ready03"]
    listing = [r for r in maas.requests if r["path"].endswith("/machines/") and r["method"] == "GET"][-1]
    assert listing["query"]["zone"] == ["zone-b"] and listing["query"]["pool"] == ["production"]

    summary = run_task(ListMachines, **conn, includeDetails=False, filters={"hostname": "deployed01"})
    assert summary.outputs["machines"] == [
        {
            "system_id": maas.by_hostname("deployed01").system_id,
            "hostname": "deployed01",
            "fqdn": "deployed01.maas",
            "status_name": "Deployed",
            "power_state": "on",
            "ip_addresses": ["10.0.0.5"],
            "zone": "zone-b",
            "pool": "production",
        }
    ]

    page2 = run_task(ListMachines, **conn, page=2, pageSize=3)
    assert page2.outputs["count"] == 3 and page2.outputs["total"] == 7
    page3 = run_task(ListMachines, **conn, page=3, pageSize=3)
    assert page3.outputs["count"] == 1


def test_list_rejects_unknown_filter(conn):
    result = run_task(ListMachines, **conn, filters={"colour": "red"}, raise_on_failure=False)
    assert result.state == "FAILED"
    assert "unknown filter(s) colour" in result.error


# -- EnlistMachine ---------------------------------------------------------------------------------
def test_enlist_machine(maas, conn):
    result = run_task(
        EnlistMachine,
        **conn,
        macAddress="52:54:00:12:34:56",
        additionalMacAddresses=["52:54:00:12:34:57"],
        hostname="prod-web-01",
        domain="datacenter.local",
        resourcePool="production",
        zone="zone-a",
        powerType="ipmi",
        powerParameters={"power_address": "192.168.1.100", "power_user": "ipmi", "power_pass": "IpmiPa55"},
        commission=False,
    )
    out = result.outputs
    machine = maas.machines[out["systemId"]]
    assert out["hostname"] == "prod-web-01" and out["status"] == "New" and out["statusCode"] == 0
    assert (
        out["fqdn"] == "prod-web-01.datacenter.local"
        and out["zone"] == "zone-a"
        and out["pool"] == "production"
    )
    assert machine.macs == ["52:54:00:12:34:56", "52:54:00:12:34:57"]
    assert machine.power_type == "ipmi"
    assert machine.power_parameters == {
        "power_address": "192.168.1.100",
        "power_user": "ipmi",
        "power_pass": "IpmiPa55",
    }
    assert not any("IpmiPa55" in m for m in result.messages)


def test_enlist_commissions_and_waits_until_ready(maas, conn):
    result = run_task(
        EnlistMachine, **conn, **FAST, macAddress="52:54:00:aa:bb:cc", waitForCommissioning=True
    )
    out = result.outputs
    assert out["status"] == "Ready" and out["hostname"].startswith("enlisted-")
    assert maas.machines[out["systemId"]].status == 4


def test_enlist_rejects_a_mac_in_use(conn):
    result = run_task(EnlistMachine, **conn, macAddress="52:54:00:00:00:01", raise_on_failure=False)
    assert result.state == "FAILED"
    assert "HTTP 400" in result.error and "is already in use" in result.error


# -- CommissionMachine -----------------------------------------------------------------------------
def test_commission_waits_until_ready(maas, conn):
    maas.tick = 0.15  # each status lasts several polls, so the wait sees every step
    sid = maas.by_hostname("new01").system_id
    result = run_task(
        CommissionMachine,
        **conn,
        **FAST,
        systemId=sid,
        enableSsh=True,
        skipStorage=False,
        commissioningScripts=["update_firmware", "configure_hba"],
        testingScripts=["smartctl-validate"],
        waitForCompletion=True,
    )
    assert result.outputs["status"] == "Ready" and result.outputs["powerState"] == "off"
    call = next(r for r in maas.requests if r["op"] == "commission")
    assert call["method"] == "POST"
    assert call["form"]["enable_ssh"] == ["1"] and call["form"]["skip_storage"] == ["0"]
    assert call["form"]["commissioning_scripts"] == ["update_firmware,configure_hba"]
    assert "skip_networking" not in call["form"]
    seen = " | ".join(result.messages)
    assert "is Commissioning" in seen and "is Testing" in seen and "is Ready" in seen


def test_commission_without_waiting_returns_at_once(maas, conn):
    sid = maas.by_hostname("ready01").system_id
    result = run_task(CommissionMachine, **conn, systemId=sid)
    assert result.outputs["status"] == "Commissioning"


def test_commission_failure_is_a_clear_error(maas, conn):
    sid = maas.by_hostname("fail01").system_id
    result = run_task(
        CommissionMachine, **conn, **FAST, systemId=sid, waitForCompletion=True, raise_on_failure=False
    )
    assert result.state == "FAILED"
    assert "commissioning of machine" in result.error and "'Failed commissioning'" in result.error
    assert "00-maas-01-cpuinfo failed" in result.error


# -- DeployMachine ---------------------------------------------------------------------------------
def test_deploy_waits_until_deployed(maas, conn):
    sid = maas.by_hostname("ready01").system_id
    user_data = "#cloud-config\npackages:\n  - docker.io\n"
    result = run_task(
        DeployMachine,
        **conn,
        **FAST,
        systemId=sid,
        osystem="ubuntu",
        distroSeries="noble",
        kernel="ga-24.04",
        storageLayout="lvm",
        userData=user_data,
        userTags=["kubernetes-node", "ssd"],
        waitForDeployment=True,
    )
    out = result.outputs
    assert out["status"] == "Deployed" and out["powerState"] == "on"
    assert out["osystem"] == "ubuntu" and out["distroSeries"] == "noble"
    assert out["ipAddresses"] and out["ipAddresses"][0].startswith("10.0.0.")
    assert sorted(out["tagNames"]) == ["kubernetes-node", "ssd"]
    machine = maas.machines[sid]
    assert machine.user_data == user_data.encode() and machine.storage_layout == "lvm"
    assert machine.hwe_kernel == "ga-24.04" and machine.owner == "admin"
    assert maas.ops(sid) == ["set_storage_layout", "deploy"]


def test_deploy_failure_is_a_clear_error(maas, conn):
    sid = maas.by_hostname("ready02").system_id
    result = run_task(
        DeployMachine, **conn, **FAST, systemId=sid, waitForDeployment=True, raise_on_failure=False
    )
    assert result.state == "FAILED"
    assert "deployment of machine" in result.error and "'Failed deployment'" in result.error
    assert "Installation failed (curtin)" in result.error


def test_deploy_conflict_names_the_state(maas, conn):
    sid = maas.by_hostname("new01").system_id
    result = run_task(DeployMachine, **conn, systemId=sid, raise_on_failure=False)
    assert result.state == "FAILED"
    assert "HTTP 409" in result.error and "Can't deploy a machine that is in the 'New' state" in result.error


# -- PowerControlMachine ---------------------------------------------------------------------------
def test_power_off_on_cycle_and_query(maas, conn):
    sid = maas.by_hostname("deployed01").system_id
    off = run_task(
        PowerControlMachine,
        **conn,
        **FAST,
        systemId=sid,
        action="OFF",
        stopMode="soft",
        waitForPowerState=True,
    )
    assert off.outputs["powerState"] == "off" and off.outputs["action"] == "OFF"
    assert next(r for r in maas.requests if r["op"] == "power_off")["form"]["stop_mode"] == ["soft"]

    query = run_task(PowerControlMachine, **conn, systemId=sid, action="query")
    assert query.outputs["powerState"] == "off" and query.outputs["action"] == "QUERY"
    q = [r for r in maas.requests if r["op"] == "query_power_state"]
    assert q and q[-1]["method"] == "GET"

    on = run_task(PowerControlMachine, **conn, **FAST, systemId=sid, action="on", waitForPowerState=True)
    assert on.outputs["powerState"] == "on"

    before = len(maas.requests)
    cycle = run_task(
        PowerControlMachine, **conn, **FAST, systemId=sid, action="cycle", waitForPowerState=True
    )
    assert cycle.outputs["powerState"] == "on" and cycle.outputs["action"] == "CYCLE"
    assert [r["op"] for r in maas.requests[before:] if r["op"]] == ["power_off", "power_on"]


def test_power_on_an_unallocated_machine_is_a_conflict(maas, conn):
    sid = maas.by_hostname("ready01").system_id
    result = run_task(PowerControlMachine, **conn, systemId=sid, action="ON", raise_on_failure=False)
    assert result.state == "FAILED"
    assert "HTTP 409" in result.error and "hasn't been allocated" in result.error


def test_power_action_is_validated():
    with pytest.raises(Exception, match="action"):
        PowerControlMachine.model_validate(
            {
                "id": "t",
                "type": PowerControlMachine.type_id,
                "url": "http://x/MAAS",
                "apiKey": "a:b:c",
                "systemId": "x",
                "action": "explode",
            }
        )


# -- assets ----------------------------------------------------------------------------------------
def test_auto_assets_describe_the_machine(maas, conn):
    sid = maas.by_hostname("ready01").system_id
    result = run_task(
        DeployMachine, **conn, **FAST, systemId=sid, waitForDeployment=True, assets={"enableAuto": True}
    )
    [bundle] = result.assets
    [asset] = bundle.outputs
    assert asset.id == sid and asset.type == "io.kestra.plugin.ee.assets.VM"
    assert asset.display_name == "ready01"
    meta = asset.metadata
    assert meta["system"] == "maas" and meta["maasUrl"] == maas.url
    assert meta["status"] == "Deployed" and meta["powerState"] == "on" and meta["ipAddresses"]
    assert meta["hostname"] == "ready01" and meta["distroSeries"] == "jammy"

    listed = run_task(ListMachines, **conn, filters={"status": "Deployed"}, assets={"enableAuto": True})
    ids = {a.id for a in listed.assets[0].outputs}
    assert ids == {sid, maas.by_hostname("deployed01").system_id}


def test_no_assets_without_enable_auto(maas, conn):
    assert run_task(ListMachines, **conn).assets == []


def test_connection_errors_are_task_errors():
    with pytest.raises(TaskError, match="apiKey must be a MAAS API key"):
        run_task(ListMachines, url="http://127.0.0.1:1/MAAS", apiKey="just-a-token")
