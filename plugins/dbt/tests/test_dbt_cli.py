"""DbtCLI against the real dbt-core and DuckDB, on the project of fixtures/shop."""

from __future__ import annotations

import base64
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from dbt_shop import (
    ACCEPTANCE_PROPS,
    NAMESPACE,
    copy_shop,
    profiles_file,
    shop_runtime,
)
from roost import TaskError
from roost.testing import Runtime, TaskRunContext, run_task
from roost_dbt.tasks import DbtCLI

TABLE = "io.kestra.plugin.ee.assets.Table"


def by_id(result) -> dict:
    return {r["uniqueId"]: r for r in result.outputs["runResults"]}


def context(runtime: Runtime, workdir: Path | None = None, cls=TaskRunContext) -> TaskRunContext:
    ctx = cls(runtime, {"flow": {"id": "f", "namespace": NAMESPACE}}, namespace=NAMESPACE, task_id="dbt")
    if workdir is not None:
        ctx.use_working_dir(workdir)
    return ctx


# -- the acceptance flow's task ------------------------------------------------------------------


def test_acceptance_task_validates_as_written():
    task = DbtCLI.model_validate(
        {**ACCEPTANCE_PROPS, "id": "dbt_build", "type": "io.kestra.plugin.dbt.cli.DbtCLI",
         "taskRunner": {"type": "io.kestra.plugin.scripts.runner.docker.Docker"}}
    )  # fmt: skip
    assert task.assets is not None and task.assets.enable_auto
    assert task.container_image == "ghcr.io/kestra-io/dbt-duckdb:latest"


def test_run_results_outputs(acceptance_run):
    out = acceptance_run.outputs
    assert out["exitCode"] == 0
    # run_results.json holds the last invocation: `dbt run` built the three models
    results = by_id(acceptance_run)
    assert set(results) == {"model.shop.stg_customers", "model.shop.stg_orders", "model.shop.customer_orders"}
    orders = results["model.shop.customer_orders"]
    assert orders["status"] == "success"
    assert orders["resourceType"] == "model"
    assert orders["message"] == "OK"
    assert orders["executionTime"] > 0
    assert orders["adapterResponse"]["_message"] == "OK"
    assert orders["relationName"] == '"memory"."main"."customer_orders"'
    summary = out["runSummary"]
    assert summary == {
        **summary,
        "total": 3, "success": 3, "error": 0, "warn": 0, "skipped": 0, "command": "run",
    }  # fmt: skip
    assert summary["elapsedTime"] > 0
    assert len(summary["slowest"]) == 3
    assert out["testSummary"]["total"] == 0


def test_artifacts_uploaded(acceptance_run):
    files = acceptance_run.outputs["outputFiles"]
    assert set(files) >= {"manifest.json", "run_results.json"}
    ctx = acceptance_run.context
    manifest = json.loads(ctx.read_file(files["manifest.json"]))
    assert manifest["metadata"]["adapter_type"] == "duckdb"
    run_results = json.loads(ctx.read_file(files["run_results.json"]))
    assert run_results["args"]["which"] == "run"


def test_profiles_written_and_dbt_flags_added(acceptance_run, built_project):
    assert (built_project / "profiles.yml").read_text() == ACCEPTANCE_PROPS["profiles"]
    # --log-path logs: dbt's own log file lands in the working directory
    assert (built_project / "logs" / "dbt.log").is_file()
    messages = acceptance_run.messages
    assert any(m.startswith("Running with dbt=1.") for m in messages)
    # JSON log lines are logged as their message, without ANSI colours
    assert any(m == "Completed successfully" for m in messages)
    assert not any(m.lstrip().startswith('{"') for m in messages)
    assert not any("\x1b[" in m for m in messages)


def test_each_node_result_is_logged(acceptance_run):
    messages = acceptance_run.messages
    for uid in ("model.shop.stg_customers", "model.shop.stg_orders", "model.shop.customer_orders"):
        assert any(m.startswith(f"{uid} => success in ") and m.endswith(": OK") for m in messages), uid
    assert (
        "dbt run: 3 node(s): 3 success, 0 error, 0 warn, 0 skipped; 0 test(s): 0 pass, 0 fail, 0 warn, 0 error"
        in (messages)
    )


def test_dbt_stats_become_metrics(acceptance_run):
    metrics = acceptance_run.context.metrics
    # one StatsLine per dbt build / dbt run: PASS=11 then PASS=3
    assert [m["value"] for m in metrics if m["name"] == "pass"] == [11.0, 3.0]
    assert [m["value"] for m in metrics if m["name"] == "error"] == [0.0, 0.0]


def test_secret_in_env_never_logged(monkeypatch):
    token = "tok-3f9c1e77-not-for-logs"
    monkeypatch.setenv("SECRET_SHOP_TOKEN", base64.b64encode(token.encode()).decode())
    result = run_task(
        DbtCLI,
        env={"SHOP_TOKEN": "{{ secret('SHOP_TOKEN') }}"},
        beforeCommands=['echo "token is $SHOP_TOKEN"'],
        commands=['test "$SHOP_TOKEN" = "' + token + '"'],
    )
    assert any(m.startswith("token is ") for m in result.messages)
    assert not any(token in m for m in result.messages)


# -- assets --------------------------------------------------------------------------------------


def test_one_bundle_per_table_with_lineage(acceptance_run):
    bundles = {b.outputs[0].id: b for b in acceptance_run.assets}
    assert all(len(b.outputs) == 1 and b.outputs[0].type == TABLE for b in acceptance_run.assets)
    assert set(bundles) == {
        "memory.main.stg_customers",
        "memory.main.stg_orders",
        "memory.main.customer_orders",
        "memory.main.payment_methods",  # the seed dbt build loaded
    }
    assert sorted(a.id for a in bundles["memory.main.customer_orders"].inputs) == [
        "memory.main.stg_customers",
        "memory.main.stg_orders",
    ]
    assert [a.id for a in bundles["memory.main.stg_orders"].inputs] == ["memory.raw.raw_orders"]
    assert [a.id for a in bundles["memory.main.stg_customers"].inputs] == ["memory.raw.raw_customers"]
    assert bundles["memory.main.payment_methods"].inputs == []
    assert all(a.type == TABLE for b in acceptance_run.assets for a in b.inputs)


def test_asset_metadata(acceptance_run):
    outputs = {b.outputs[0].id: b.outputs[0] for b in acceptance_run.assets}
    stg = outputs["memory.main.stg_orders"]
    assert stg.metadata == {
        "model_layer": "staging",
        "system": "duckdb",
        "database": "memory",
        "schema": "main",
        "name": "stg_orders",
        "resource_type": "model",
        "materialization": "table",
        "unique_id": "model.shop.stg_orders",
        "package_name": "shop",
    }
    assert stg.description == "Orders, amounts in dollars."
    mart = outputs["memory.main.customer_orders"]
    assert mart.metadata["model_layer"] == "mart" and mart.metadata["owner"] == "analytics"
    seed = outputs["memory.main.payment_methods"]
    assert seed.metadata["resource_type"] == "seed" and seed.metadata["materialization"] == "seed"
    source = next(a for b in acceptance_run.assets for a in b.inputs if a.id == "memory.raw.raw_orders")
    assert source.metadata["resource_type"] == "source"
    assert source.metadata["unique_id"] == "source.shop.raw.raw_orders"
    assert source.metadata["system"] == "duckdb"
    assert source.display_name == "raw.raw_orders"


# -- failures ------------------------------------------------------------------------------------


def test_failing_model_fails_the_task_with_dbts_message():
    result = run_task(
        DbtCLI,
        runtime=shop_runtime(),
        namespace=NAMESPACE,
        namespaceFiles={"enabled": True},
        commands=["dbt build --vars '{include_broken: true}'", "echo not reached"],
        profiles=profiles_file(),
        assets={"enableAuto": True},
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert result.error.startswith(
        "dbt failed with exit code 1: 1 node(s) failed: model.shop.broken_revenue: "
    )
    assert 'Referenced column "no_such_column" not found' in result.error
    errors = [log["message"] for log in result.logs if log["level"] == "ERROR"]
    assert any(m.startswith("model.shop.broken_revenue => error in ") for m in errors)
    # the other nodes still ran and are reported; set -e stopped the script
    assert any(m.startswith("model.shop.customer_orders => success") for m in result.messages)
    assert any(m.startswith("test.shop.assert_known_payment_methods => pass") for m in result.messages)
    assert "not reached" not in result.messages
    assert result.assets == []


def test_broken_profile_fails_with_dbts_reason_and_no_manifest():
    result = run_task(
        DbtCLI,
        runtime=shop_runtime(),
        namespace=NAMESPACE,
        namespaceFiles={"enabled": True},
        commands=["dbt debug"],
        profiles="another_profile:\n  outputs: {}\n",
        assets={"enableAuto": True},
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert result.error.startswith("dbt failed with exit code 1: ")
    assert "Could not find profile named 'my_dbt_project'" in result.error
    assert any(
        log["level"] == "WARN" and log["message"].startswith("dbt manifest not found at ")
        for log in result.logs
    )


def test_commands_without_manifest_warn_and_emit_no_assets():
    result = run_task(
        DbtCLI,
        runtime=shop_runtime(),
        namespace=NAMESPACE,
        namespaceFiles={"enabled": True},
        commands=["echo no dbt here"],
        assets={"enableAuto": True},
    )
    assert result.state == "SUCCESS"
    assert result.assets == []
    assert "runResults" not in result.outputs
    warnings = [log["message"] for log in result.logs if log["level"] == "WARN"]
    assert len(warnings) == 1
    assert "target/manifest.json" in warnings[0] and "no assets are emitted" in warnings[0]


def test_artifacts_left_by_an_earlier_run_are_ignored(tmp_path, built_project):
    # A WorkingDirectory shared with an earlier dbt task: target/ exists but these commands don't touch it.
    work = copy_shop(tmp_path / "work")
    shutil.copytree(built_project / "target", work / "target")
    rt = Runtime.in_memory(tmp_path / "rt")
    ctx = context(rt, work)
    task = DbtCLI.model_validate(
        {"id": "dbt", "type": DbtCLI.type_id, "commands": ["echo hello"], "assets": {"enableAuto": True}}
    )
    out = task.run(ctx)
    assert out.run_results is None and out.output_files == {}
    assert task.auto_assets(ctx, out) == []
    messages = [log["message"] for log in ctx.logs]
    assert any("run_results.json was not written by these commands" in m for m in messages)
    assert any("manifest.json was not written by these commands" in m for m in messages)


def test_missing_executable_is_named():
    result = run_task(DbtCLI, commands=["dbt-not-installed build"], raise_on_failure=False)
    assert result.state == "FAILED"
    assert result.error.startswith("dbt failed with exit code 127: a command was not found")
    assert "dbt-not-installed" in result.error


def test_docker_runner_without_engine_fails_clearly(tmp_path):
    result = run_task(
        DbtCLI,
        commands=["dbt build"],
        profiles=ACCEPTANCE_PROPS["profiles"],
        containerImage="ghcr.io/kestra-io/dbt-duckdb:latest",
        taskRunner={
            "type": "io.kestra.plugin.scripts.runner.docker.Docker",
            "host": f"unix://{tmp_path}/docker.sock",
        },
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert result.error.startswith(f"No Docker engine is reachable at unix://{tmp_path}/docker.sock")
    assert "io.kestra.plugin.core.runner.Process" in result.error


def test_kill_stops_the_commands(tmp_path):
    rt = Runtime.in_memory(tmp_path)
    ctx = context(rt)
    task = DbtCLI.model_validate({"id": "dbt", "type": DbtCLI.type_id, "commands": ["sleep 30"]})
    errors: list[BaseException] = []

    def run() -> None:
        try:
            task.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    thread = threading.Thread(target=run)
    start = time.monotonic()
    thread.start()
    time.sleep(0.5)
    ctx.fire_kill()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - start < 8
    assert len(errors) == 1 and isinstance(errors[0], TaskError) and str(errors[0]) == "killed"


# -- warnings, projectDir, KV manifest -----------------------------------------------------------


def test_dbt_warning_ends_in_warning_with_outputs():
    result = run_task(
        DbtCLI,
        runtime=shop_runtime(),
        namespace=NAMESPACE,
        namespaceFiles={"enabled": True},
        commands=["dbt test --select assert_warns_only --vars '{include_warning: true}'"],
        profiles=profiles_file(),
        raise_on_failure=False,
    )
    assert result.state == "WARNING", result.error
    assert result.error.startswith("dbt logged ")
    assert result.outputs["testSummary"] == {
        "total": 1, "pass": 0, "fail": 0, "warn": 1, "error": 0, "skipped": 0,
    }  # fmt: skip
    node = result.outputs["runResults"][0]
    assert node["uniqueId"] == "test.shop.assert_warns_only" and node["status"] == "warn"
    assert node["failures"] == 1
    assert any(
        log["level"] == "WARN" and log["message"].startswith("test.shop.assert_warns_only => warn in ")
        and "(1 failure)" in log["message"]
        for log in result.logs
    )  # fmt: skip


def test_project_dir_and_store_manifest(tmp_path):
    rt = Runtime.in_memory(tmp_path / "rt")
    work = tmp_path / "work"
    copy_shop(work / "dbt")
    ctx = context(rt, work)
    task = DbtCLI.model_validate(
        {
            "id": "dbt",
            "type": DbtCLI.type_id,
            "projectDir": "dbt",
            "commands": ["dbt parse"],
            "profiles": profiles_file(),
            "storeManifest": {"key": "manifest.json", "namespace": "{{ flow.namespace }}"},
            "assets": {"enableAuto": True},
        }
    )
    out = task.run(ctx)
    assert (work / "dbt" / "target" / "manifest.json").is_file()
    assert not (work / "target").exists()
    assert (work / "profiles.yml").is_file()
    stored = rt.kv.get(NAMESPACE, "manifest.json")
    assert stored["metadata"]["project_name"] == "shop"
    assert "manifest.json" in out.output_files
    assert out.run_results is None  # dbt parse writes no run results
    bundles = task.auto_assets(ctx, out)
    assert {b.outputs[0].id for b in bundles} >= {"shop.main.customer_orders", "shop.main.stg_orders"}


def test_load_manifest_from_kv(tmp_path, built_project):
    rt = Runtime.in_memory(tmp_path)
    manifest = json.loads((built_project / "target" / "manifest.json").read_text())
    rt.kv.put(NAMESPACE, "state.manifest.json", manifest)
    ctx = context(rt)
    task = DbtCLI.model_validate(
        {
            "id": "dbt",
            "type": DbtCLI.type_id,
            "commands": ["test -s target/manifest.json"],
            "loadManifest": {"key": "state.manifest.json", "namespace": NAMESPACE},
        }
    )
    task.run(ctx)
    assert json.loads((ctx.working_dir / "target" / "manifest.json").read_text()) == manifest


def test_load_manifest_missing_key_warns(tmp_path):
    ctx = context(Runtime.in_memory(tmp_path))
    task = DbtCLI.model_validate(
        {
            "id": "dbt",
            "type": DbtCLI.type_id,
            "commands": ["true"],
            "loadManifest": {"key": "nope", "namespace": NAMESPACE},
        }
    )
    task.run(ctx)
    assert any(
        log["level"] == "WARN" and "no manifest under key 'nope'" in log["message"] for log in ctx.logs
    )


# -- command building ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "command", "expected"),
    [
        ({}, "dbt build", "dbt build --log-format json --log-path logs"),
        (
            {"projectDir": "my project"},
            "dbt deps",
            "dbt deps --project-dir 'my project' --log-format json --log-path logs",
        ),
        (
            {"projectDir": "p"},
            "dbt build --project-dir q",
            "dbt build --project-dir q --log-format json --log-path logs",
        ),
        ({"logFormat": "NONE"}, "dbt run", "dbt run --log-path logs"),
        ({"logFormat": "TEXT"}, "dbt run --log-path /tmp/l", "dbt run --log-path /tmp/l --log-format text"),
        ({}, "echo dbt build", "echo dbt build"),
        ({}, "dbtx build", "dbtx build"),
    ],
)
def test_dbt_commands_get_kestras_flags(props, command, expected):
    task = DbtCLI.model_validate({"id": "t", "type": DbtCLI.type_id, "commands": [command], **props})
    assert task.script_commands(None) == [expected]


def test_default_container_image():
    base = {"id": "t", "type": DbtCLI.type_id, "commands": ["dbt build"]}
    assert DbtCLI.model_validate(base).default_image() == "ghcr.io/kestra-io/dbt"
    assert (
        DbtCLI.model_validate({**base, "engine": "FUSION"}).default_image() == "ghcr.io/kestra-io/dbt-fusion"
    )


def test_every_property_and_output_is_documented():
    schema = DbtCLI.model_json_schema(by_alias=True)
    missing = [name for name, prop in schema["properties"].items() if not prop.get("description")]
    assert missing == []
    out = DbtCLI.Out.model_json_schema(by_alias=True)
    own = ("runResults", "runSummary", "testSummary")
    assert [n for n in own if not out["properties"][n].get("description")] == []
    for name, definition in out["$defs"].items():
        undocumented = [n for n, p in definition["properties"].items() if not p.get("description")]
        assert undocumented == [], name


def test_environment_of_the_commands(tmp_path):
    rt = Runtime.in_memory(tmp_path / "rt")
    ctx = context(rt)
    task = DbtCLI.model_validate(
        {
            "id": "dbt",
            "type": DbtCLI.type_id,
            "profiles": "p: {}\n",
            "env": {"PATH": "/usr/bin:/bin"},
            "commands": [
                'echo "profiles=$DBT_PROFILES_DIR"',
                'echo "dbt=$(command -v dbt)"',
                'echo "path=$PATH"',
            ],
        }
    )
    task.run(ctx)
    messages = [log["message"] for log in ctx.logs]
    assert f"profiles={ctx.working_dir}" in messages
    assert f"dbt={Path(sys.executable).parent / 'dbt'}" in messages
    assert f"path={Path(sys.executable).parent}:/usr/bin:/bin" in messages


def test_profiles_of_the_project_dir_are_found(tmp_path):
    rt = Runtime.in_memory(tmp_path / "rt")
    work = tmp_path / "work"
    (work / "dbt").mkdir(parents=True)
    (work / "dbt" / "profiles.yml").write_text("p: {}\n")
    ctx = context(rt, work)
    task = DbtCLI.model_validate(
        {
            "id": "dbt",
            "type": DbtCLI.type_id,
            "projectDir": "dbt",
            "commands": ['echo "profiles=$DBT_PROFILES_DIR"'],
        }
    )
    task.run(ctx)
    assert f"profiles={work / 'dbt'}" in [log["message"] for log in ctx.logs]


def test_assets_from_outputs_read_back_as_a_mapping(acceptance_run):
    task = DbtCLI.model_validate({"id": "dbt", "type": DbtCLI.type_id, "commands": ["dbt build"]})
    bundles = task.auto_assets(acceptance_run.context, acceptance_run.outputs)
    assert [b.model_dump() for b in bundles] == [b.model_dump() for b in acceptance_run.assets]
    assert task.auto_assets(acceptance_run.context, {"exitCode": 0}) == []
