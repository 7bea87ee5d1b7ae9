"""The seed's auto-asset examples: JDBC, Ansible and dbt, and the asset flows that react to events."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from acceptance_support import acceptance_flow
from roost.testing.postgres import postgres_server

DBT_PROJECT = Path(__file__).resolve().parents[2] / "plugins" / "dbt" / "tests" / "fixtures" / "shop"
TABLE = "io.kestra.plugin.ee.assets.Table"


def node_ids(graph):
    return {n["id"] for n in graph["nodes"]}


def test_jdbc_create_trips(run, engine):
    ex = run(acceptance_flow("jdbc_create_trips"))
    assert ex.state.current == "SUCCESS", ex.to_dict()
    assert ex.outputs_tree["create_trips_table"]["databaseUri"].startswith("kestra:///")
    [trips] = [a for a in engine.assets.search("main") if a["metadata"].get("name") == "trips"]
    assert trips["type"] == TABLE
    assert trips["metadata"]["system"] == "sqlite" and trips["metadata"]["database"] == "myfile"
    assert trips["namespace"] == "company.team"
    assert node_ids(engine.assets.lineage("main", trips["id"])) == {trips["id"]}


def test_ansible_playbook(run, engine):
    ex = run(acceptance_flow("ansible_playbook"))
    assert ex.state.current == "SUCCESS", ex.to_dict()
    assert ex.outputs_tree["ansible_task"]["stats"]["localhost"]["failures"] == 0
    [host] = engine.assets.search("main", types=["io.kestra.core.models.assets.External"])
    assert host["id"] == "localhost"
    [record] = engine.assets.lineage_events("main", execution_id=ex.id)
    assert [a["id"] for a in record["inputs"]] == ["localhost"] and record["outputs"] == []


def _dbt_repository(tmp_path: Path, monkeypatch) -> None:
    """Stand-in: the flow's GitHub URL is rewritten by git itself to a local repository of a small dbt project."""
    repo = tmp_path / "dbt-example"
    shutil.copytree(DBT_PROJECT, repo, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "dbt example"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{repo}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "https://github.com/kestra-io/dbt-example")


def test_dbt_build_duckdb(run, engine, tmp_path, monkeypatch, plugin_defaults):
    _dbt_repository(tmp_path, monkeypatch)
    # Stand-in: no Docker engine here, so a forced instance default runs DbtCLI with the Process runner.
    (plugin_defaults / "instance.yaml").write_text(
        "pluginDefaults:\n  - type: io.kestra.plugin.dbt.cli.DbtCLI\n    forced: true\n"
        "    values:\n      taskRunner:\n        type: io.kestra.plugin.core.runner.Process\n"
    )
    ex = run(acceptance_flow("dbt_build_duckdb"))
    assert ex.state.current == "SUCCESS", [
        (t.task_id, t.state.current, t.extra.get("error")) for t in ex.task_runs
    ]
    models = {a["metadata"]["name"]: a for a in engine.assets.search("main", types=[TABLE])}
    assert {"stg_orders", "stg_customers", "customer_orders"} <= set(models)
    assert models["stg_orders"]["metadata"]["model_layer"] == "staging"
    assert (
        models["customer_orders"]["metadata"]["database"] and models["customer_orders"]["metadata"]["schema"]
    )
    graph = engine.assets.lineage("main", models["customer_orders"]["id"])
    edges = {(e["source"].split("/")[1], e["target"].split("/")[1]) for e in graph["edges"]}
    assert (models["stg_orders"]["id"], models["customer_orders"]["id"]) in edges


def test_dbt_build_duckdb_without_the_default_names_the_missing_docker_engine(run, tmp_path, monkeypatch):
    _dbt_repository(tmp_path, monkeypatch)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    ex = run(acceptance_flow("dbt_build_duckdb"))
    assert ex.state.current == "FAILED"
    [dbt] = [t for t in ex.task_runs if t.task_id == "dbt_build"]
    assert "No Docker engine is reachable" in dbt.extra["error"]


def test_audit_asset_deletions_into_real_postgresql(engine, plugin_defaults):
    with postgres_server() as pg:
        pg.psql(
            "CREATE TABLE audit_log (asset_id text, asset_type text, namespace text, event text, event_time text)"
        )
        # Stand-in: the URL and credentials come from namespace plugin defaults, as a user would set them.
        (plugin_defaults / "company.security.yaml").write_text(
            "pluginDefaults:\n  - type: io.kestra.plugin.jdbc.postgresql\n    values:\n"
            f"      url: {pg.jdbc_url('postgres')}\n      username: postgres\n      password: unused-with-trust\n"
        )
        engine.deploy(acceptance_flow("audit_asset_deletions"))
        engine.deploy(acceptance_flow("asset_lifecycle_ops"))
        ex = engine.run(engine.flow("main", "company.data", "asset_lifecycle_ops"), timeout=60)
        assert ex.state.current == "SUCCESS"
        deadline = time.monotonic() + 60
        rows = ""
        while time.monotonic() < deadline:
            rows = pg.psql("SELECT asset_id, asset_type, namespace, event FROM audit_log")
            if rows.strip():
                break
            time.sleep(0.2)
        # assetType TABLE (the Set task) and io.kestra.plugin.ee.assets.Table name one type, stored as the latter
        assert rows.strip() == "customers_by_country|io.kestra.plugin.ee.assets.Table|assets.data|DELETED"
