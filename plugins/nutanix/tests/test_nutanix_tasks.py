"""Happy paths of every Nutanix task against the fake Prism Central over real HTTP."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from fake_prism import CLUSTER, OTHER_CLUSTER
from roost import Task
from roost.testing import run_task
from roost_nutanix import plugin, tasks
from roost_nutanix.tasks import (
    CloneTemplate,
    CloneVm,
    ConvertTemplateToVm,
    ConvertVmToTemplate,
    CreateVm,
    CreateVmSnapshot,
    DeleteVm,
    DeleteVmSnapshot,
    ListVms,
    ListVmSnapshots,
    RebootVm,
    ResetVm,
    RestoreVmSnapshot,
    StartVm,
    StopVm,
    UpdateVm,
)

GIB = 1 << 30


def _posts(prism, suffix):
    return [r for r in prism.requests if r["method"] != "GET" and r["path"].endswith(suffix)]


# -- packaging and schema --------------------------------------------------------------------------
def test_entry_point_registers_every_task():
    eps = [ep for ep in importlib.metadata.entry_points(group="roost") if ep.name == "nutanix"]
    assert [ep.value for ep in eps] == ["roost_nutanix.plugin"]
    registered = []
    plugin.register_task_types(lambda *types: registered.extend(types))
    ids = {t.type_id for t in registered}
    assert len(ids) == 16
    assert "io.kestra.plugin.ee.nutanix.ahv.CreateVm" in ids
    assert "io.kestra.plugin.ee.nutanix.snapshot.RestoreVmSnapshot" in ids


@pytest.mark.parametrize("task", tasks.TASKS, ids=lambda t: t.__name__)
def test_every_property_and_output_is_documented(task):
    assert task.__doc__ and task.__doc__.strip()
    base = set(Task.model_fields)
    for name, info in task.model_fields.items():
        if name not in base:
            assert info.description, f"{task.__name__}.{name} has no description"
    for name, info in task.Out.model_fields.items():
        assert info.description, f"{task.__name__}.Out.{name} has no description"
    props = task.model_json_schema(by_alias=True)["properties"]
    assert {"host", "port", "scheme", "username", "password", "token", "verifySsl"} <= set(props)


# -- ListVms ---------------------------------------------------------------------------------------
def test_list_vms_every_page(prism, run):
    result = run(ListVms, limit=2)
    out = result.outputs
    assert out["size"] == out["total"] == 5
    pages = [r["query"]["$page"] for r in prism.requests if r["path"].endswith("/ahv/config/vms")]
    assert pages == ["0", "1", "2"]
    web = next(r for r in out["rows"] if r["name"] == "web-01")
    assert web["powerState"] == "ON" and web["ip"] == "10.1.0.11"
    assert web["cluster"] == {"extId": CLUSTER}
    assert web["resources"]["numSockets"] == 2 and web["resources"]["memorySizeBytes"] == 4 * GIB


def test_list_vms_filter_sort_page_and_fetch_types(prism, run):
    apps = run(ListVms, filter="startswith(name, 'app-')", orderBy="name desc")
    assert [r["name"] for r in apps.outputs["rows"]] == ["app-03", "app-02", "app-01"]
    call = [r for r in prism.requests if r["path"].endswith("/ahv/config/vms")][-1]
    assert call["query"]["$filter"] == "startswith(name, 'app-')" and call["query"]["$orderby"] == "name desc"

    page = run(ListVms, page=1, limit=2, orderBy="name")
    assert [r["name"] for r in page.outputs["rows"]] == ["app-03", "db-01"]
    assert page.outputs["total"] == 5

    one = run(ListVms, filter="name eq 'db-01'", fetchType="FETCH_ONE")
    assert one.outputs["row"]["name"] == "db-01" and "rows" not in one.outputs

    stored = run(ListVms, fetchType="store")
    assert stored.outputs["uri"].startswith("kestra://") and stored.outputs["size"] == 5
    rows = json.loads(stored.context.read_file(stored.outputs["uri"]))
    assert sorted(r["name"] for r in rows) == ["app-01", "app-02", "app-03", "db-01", "web-01"]

    none = run(ListVms, fetchType="NONE", filter="powerState eq Vmm.Ahv.Config.PowerState'ON'")
    assert none.outputs["size"] == 1 and none.outputs["total"] == 1 and "rows" not in none.outputs

    empty = run(ListVms, filter="name eq 'nothing'")
    assert empty.outputs["rows"] == [] and empty.outputs["size"] == 0


def test_list_vms_rejects_a_bad_limit(run):
    result = run(ListVms, limit=500, raise_on_failure=False)
    assert result.state == "FAILED" and "limit must be between 1 and 100" in result.error


# -- CreateVm / UpdateVm / DeleteVm ------------------------------------------------------------------
def test_create_vm_power_on_and_wait_for_ip(prism, run):
    vm = {
        "name": "kestra-demo",
        "description": "VM created by Roost",
        "cluster": {"extId": CLUSTER},
        "resources": {
            "numSockets": 1,
            "numCoresPerSocket": 2,
            "memorySizeBytes": 2 * GIB,
            "disks": [],
            "nics": [{"networkInfo": {"subnet": {"extId": "subnet-1"}}}],
        },
    }
    result = run(CreateVm, vm=vm, powerOn=True, wait=True)
    out = result.outputs
    assert out["taskStatus"] == "SUCCEEDED" and out["taskExtId"].startswith("ZXJnb24=:")
    assert out["powerState"] == "ON" and out["ip"].startswith("10.1.0.")
    assert out["vm"]["name"] == "kestra-demo" and out["vm"]["resources"]["numCoresPerSocket"] == 2
    created = prism.vms[out["vmExtId"]].vm
    assert created["memorySizeBytes"] == 2 * GIB and created["description"] == "VM created by Roost"
    [post] = _posts(prism, "/ahv/config/vms")
    sent = json.loads(post["body"])
    assert "resources" not in sent and sent["numSockets"] == 1  # Kestra's resources flattened for VMM v4
    assert post["headers"].get("NTNX-Request-Id")
    [power] = _posts(prism, "/$actions/power-on")
    assert power["headers"].get("If-Match")


def test_create_vm_without_waiting_returns_the_task(prism, run):
    result = run(CreateVm, waitForCompletion=False, vm={"name": "later", "cluster": {"extId": CLUSTER}})
    assert result.outputs["taskStatus"] == "RUNNING" and result.outputs["taskExtId"] in prism.tasks
    assert "vmExtId" not in result.outputs


def test_update_vm_merges_changes_and_retries_a_stale_etag(prism, run):
    db = prism.vm_by_name("db-01")
    prism.bump_after_get[db["extId"]] = 1  # another writer changes the VM right after our first read
    result = run(
        UpdateVm,
        vmExtId=db["extId"],
        vm={"description": "resized", "resources": {"memorySizeBytes": 16 * GIB}},
    )
    out = result.outputs
    assert out["taskStatus"] == "SUCCEEDED"
    assert out["vm"]["resources"]["memorySizeBytes"] == 16 * GIB and out["vm"]["description"] == "resized"
    vm = prism.vms[db["extId"]].vm
    assert vm["memorySizeBytes"] == 16 * GIB and vm["numSockets"] == 4 and vm["name"] == "db-01"
    puts = [r for r in prism.requests if r["method"] == "PUT"]
    assert len(puts) == 2 and puts[0]["headers"]["If-Match"] != puts[1]["headers"]["If-Match"]
    assert any("HTTP 412" in log["message"] for log in result.logs if log["level"] == "WARN")


def test_delete_vm(prism, run):
    app = prism.vm_by_name("app-03")
    result = run(DeleteVm, vmExtId=app["extId"], assets={"enableAuto": True})
    assert result.outputs["taskStatus"] == "SUCCEEDED" and app["extId"] not in prism.vms
    [asset] = result.assets[0].outputs
    assert asset.id == app["extId"] and asset.metadata["state"] == "DELETED"


# -- power ----------------------------------------------------------------------------------------------
def test_start_stop_reboot_reset(prism, run):
    db = prism.vm_by_name("db-01")["extId"]
    web = prism.vm_by_name("web-01")["extId"]
    assert run(StartVm, vmExtId=db).outputs["powerState"] == "ON"
    assert run(RebootVm, vmExtId=db).outputs["taskStatus"] == "SUCCEEDED"
    assert run(RebootVm, vmExtId=web, gracefully=True, guest=True).outputs["powerState"] == "ON"
    assert run(ResetVm, vmExtId=db).outputs["powerState"] == "ON"
    assert run(StopVm, vmExtId=db, gracefully=True).outputs["powerState"] == "OFF"
    assert run(StopVm, vmExtId=web).outputs["powerState"] == "OFF"
    actions = [
        r["path"].rsplit("/", 1)[1]
        for r in prism.requests
        if "/$actions/" in r["path"] and r["method"] == "POST"
    ]
    assert actions == ["power-on", "power-cycle", "guest-reboot", "reset", "shutdown", "power-off"]


def test_start_an_already_running_vm_does_nothing(prism, run):
    web = prism.vm_by_name("web-01")["extId"]
    out = run(StartVm, vmExtId=web).outputs
    assert out["powerState"] == "ON" and "taskExtId" not in out
    assert not [r for r in prism.requests if "/$actions/" in r["path"]]


# -- clone and templates ---------------------------------------------------------------------------------
def test_clone_vm_with_overrides_and_lineage(prism, run):
    web = prism.vm_by_name("web-01")
    result = run(
        CloneVm,
        vmExtId=web["extId"],
        assets={"enableAuto": True},
        cloneOverrides={"name": "web-01-clone", "memorySizeBytes": 8 * GIB},
    )
    out = result.outputs
    assert out["sourceVmExtId"] == web["extId"] and out["vmExtId"] != web["extId"]
    clone = prism.vms[out["vmExtId"]].vm
    assert (
        clone["name"] == "web-01-clone"
        and clone["memorySizeBytes"] == 8 * GIB
        and clone["powerState"] == "OFF"
    )
    [bundle] = result.assets
    assert [a.id for a in bundle.inputs] == [web["extId"]] and [a.id for a in bundle.outputs] == [
        out["vmExtId"]
    ]


def test_vm_to_template_clone_template_and_deploy(prism, run):
    web = prism.vm_by_name("web-01")
    first = run(
        ConvertVmToTemplate,
        vmExtId=web["extId"],
        templateName="web-template",
        templateDescription="from web-01",
        versionName="v1",
        assets={"enableAuto": True},
    ).outputs
    template = prism.templates[first["templateExtId"]]
    assert template["templateName"] == "web-template"
    assert template["templateVersionSpec"]["versionSource"] == {
        "$objectType": "vmm.v4.content.TemplateVmReference",
        "extId": web["extId"],
    }
    assert first["templateVersionExtId"] == template["templateVersionSpec"]["extId"]
    assert web["extId"] in prism.vms  # the VM stays

    second = run(
        CloneTemplate,
        templateVersionExtId=first["templateVersionExtId"],
        templateName="web-template-big",
        vmConfigOverride={"memorySizeBytes": 32 * GIB},
    ).outputs
    big = prism.templates[second["templateExtId"]]
    assert big["templateVersionSpec"]["vmSpec"]["memorySizeBytes"] == 32 * GIB

    deployed = run(
        ConvertTemplateToVm,
        templateExtId=second["templateExtId"],
        clusterExtId=OTHER_CLUSTER,
        numberOfVms=2,
        vmName="web-prod",
        assets={"enableAuto": True},
    )
    out = deployed.outputs
    assert len(out["vmExtIds"]) == 2 and out["vmExtId"] == out["vmExtIds"][0]
    names = sorted(prism.vms[v].vm["name"] for v in out["vmExtIds"])
    assert names == ["web-prod", "web-prod-2"]
    assert all(prism.vms[v].vm["cluster"]["extId"] == OTHER_CLUSTER for v in out["vmExtIds"])
    assert all(prism.vms[v].vm["memorySizeBytes"] == 32 * GIB for v in out["vmExtIds"])
    [bundle] = deployed.assets
    assert bundle.inputs[0].id == second["templateExtId"] and {a.id for a in bundle.outputs} == set(
        out["vmExtIds"]
    )
    assert bundle.inputs[0].metadata["kind"] == "vm-template"


# -- snapshots ----------------------------------------------------------------------------------------
def test_snapshot_create_list_restore_delete(prism, run):
    db = prism.vm_by_name("db-01")["extId"]
    created = run(
        CreateVmSnapshot,
        vmExtId=db,
        snapshotName="before-upgrade",
        consistency="application_consistent",
        expirationTime="2030-01-01T00:00:00Z",
        assets={"enableAuto": True},
    )
    out = created.outputs
    rp = prism.rps[out["snapshotExtId"]]
    assert rp["name"] == "before-upgrade" and rp["recoveryPointType"] == "APPLICATION_CONSISTENT"
    assert rp["expirationTime"] == "2030-01-01T00:00:00Z"
    [bundle] = created.assets
    assert bundle.inputs[0].id == db and bundle.outputs[0].id == out["snapshotExtId"]
    assert bundle.outputs[0].type == "io.kestra.core.models.assets.External"

    listed = run(ListVmSnapshots, vmExtId=db).outputs
    assert [r["name"] for r in listed["rows"]] == ["before-upgrade"]
    everything = run(ListVmSnapshots, orderBy="name").outputs
    assert [r["name"] for r in everything["rows"]] == ["before-upgrade", "daily-web-01"]

    restored = run(RestoreVmSnapshot, snapshotExtId=out["snapshotExtId"]).outputs
    [vm_id] = restored["vmExtIds"]
    assert (
        prism.vms[vm_id].vm["name"] == "db-01-restored" and prism.vms[vm_id].vm["cluster"]["extId"] == CLUSTER
    )
    [call] = _posts(prism, "/$actions/restore")
    assert json.loads(call["body"]) == {"clusterExtId": CLUSTER}

    other = run(
        RestoreVmSnapshot, snapshotExtId=out["snapshotExtId"], restoreSpec={"clusterExtId": OTHER_CLUSTER}
    ).outputs
    assert prism.vms[other["vmExtIds"][0]].vm["cluster"]["extId"] == OTHER_CLUSTER

    deleted = run(DeleteVmSnapshot, snapshotExtId=out["snapshotExtId"]).outputs
    assert deleted["taskStatus"] == "SUCCEEDED" and out["snapshotExtId"] not in prism.rps


def test_snapshot_api_version_is_in_the_path(prism, run):
    run(ListVmSnapshots, apiVersion="v4.0.a4")
    assert any(r["path"] == "/api/dataprotection/v4.0.a4/config/recovery-points" for r in prism.requests)


# -- authentication variants and assets ------------------------------------------------------------------
def test_token_api_key_and_url_host(prism):
    admin = prism.accounts[0]
    url = f"http://127.0.0.1:{prism.port}"
    assert run_task(ListVms, host=url, token=admin.token).outputs["size"] == 5
    assert run_task(ListVms, host=url, apiKey=admin.api_key, fetchType="NONE").outputs["size"] == 5
    auth = [r["headers"] for r in prism.requests]
    assert auth[0]["Authorization"] == f"Bearer {admin.token}" and auth[-1]["X-ntnx-api-key"] == admin.api_key


def test_list_assets_describe_the_vms(prism, run):
    result = run(ListVms, assets={"enableAuto": True})
    assets = {a.display_name: a for a in result.assets[0].outputs}
    web = assets["web-01"]
    assert web.type == "io.kestra.plugin.ee.assets.VM" and web.id == prism.vm_by_name("web-01")["extId"]
    assert web.metadata["uuid"] == web.id and web.metadata["powerState"] == "ON"
    assert web.metadata["cluster"] == CLUSTER and web.metadata["vcpus"] == 4
    assert web.metadata["memoryBytes"] == 4 * GIB and web.metadata["ipAddresses"] == ["10.1.0.11"]
    assert web.metadata["prismCentral"] == f"http://127.0.0.1:{prism.port}"
    assert run(ListVms).assets == []
