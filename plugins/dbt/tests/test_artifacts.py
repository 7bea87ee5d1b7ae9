"""run_results.json and manifest.json parsing, on hand-written artifacts and on a real dbt run's."""

from __future__ import annotations

import json

import pytest
from roost_dbt.artifacts import (
    TABLE,
    ArtifactError,
    asset_bundles,
    parse_run_results,
    result_line,
    table_nodes,
)


def node(
    uid, kind="model", parents=(), materialized="table", alias=None, meta=None, config_meta=None, **extra
):
    name = uid.rsplit(".", 1)[-1]
    return {
        "unique_id": uid,
        "resource_type": kind,
        "name": name,
        "alias": alias or name,
        "database": "warehouse",
        "schema": "analytics",
        "package_name": "proj",
        "config": {"materialized": materialized, "meta": config_meta or {}},
        "meta": meta or {},
        "depends_on": {"nodes": list(parents), "macros": []},
        **extra,
    }


def manifest(*nodes, sources=(), parent_map=None, adapter="postgres"):
    data = {
        "metadata": {"adapter_type": adapter},
        "nodes": {n["unique_id"]: n for n in nodes},
        "sources": {s["unique_id"]: s for s in sources},
    }
    if parent_map is not None:
        data["parent_map"] = parent_map
    return data


SOURCE = {
    "unique_id": "source.proj.raw.orders",
    "resource_type": "source",
    "source_name": "raw",
    "name": "orders",
    "identifier": "orders_v2",
    "database": "warehouse",
    "schema": "landing",
    "source_meta": {"owner": "ingest"},
    "meta": {"pii": False},
    "config": {"meta": {"pii": False}},
}


def test_bundle_per_table_with_depends_on_lineage():
    m = manifest(
        node(
            "model.proj.stg_orders",
            parents=["source.proj.raw.orders"],
            config_meta={"model_layer": "staging"},
        ),
        node("seed.proj.countries", kind="seed", materialized="seed"),
        node("model.proj.orders", parents=["model.proj.stg_orders", "seed.proj.countries", "macro.proj.x"]),
        node("test.proj.not_null_orders_id", kind="test", parents=["model.proj.orders"]),
        sources=[SOURCE],
    )
    bundles = {b.outputs[0].id: b for b in asset_bundles(m)}
    assert set(bundles) == {
        "warehouse.analytics.stg_orders",
        "warehouse.analytics.countries",
        "warehouse.analytics.orders",
    }
    assert [a.id for a in bundles["warehouse.analytics.stg_orders"].inputs] == ["warehouse.landing.orders_v2"]
    assert sorted(a.id for a in bundles["warehouse.analytics.orders"].inputs) == [
        "warehouse.analytics.countries",
        "warehouse.analytics.stg_orders",
    ]
    stg = bundles["warehouse.analytics.stg_orders"].outputs[0]
    assert stg.type == TABLE
    assert stg.metadata["model_layer"] == "staging"
    assert stg.metadata["system"] == "postgres"
    source = bundles["warehouse.analytics.stg_orders"].inputs[0]
    assert source.metadata == {
        "owner": "ingest",
        "pii": False,
        "system": "postgres",
        "database": "warehouse",
        "schema": "landing",
        "name": "orders_v2",
        "resource_type": "source",
        "source_name": "raw",
        "unique_id": "source.proj.raw.orders",
    }


def test_parent_map_wins_over_depends_on():
    m = manifest(
        node("model.proj.a"),
        node("model.proj.b"),
        node("model.proj.c", parents=["model.proj.a"]),
        parent_map={"model.proj.c": ["model.proj.b"]},
    )
    bundles = {b.outputs[0].id: b for b in asset_bundles(m)}
    assert [a.id for a in bundles["warehouse.analytics.c"].inputs] == ["warehouse.analytics.b"]


def test_alias_names_the_table_and_meta_never_overrides_identity():
    m = manifest(node("model.proj.orders", alias="fct_orders", meta={"name": "spoofed", "team": "sales"}))
    (bundle,) = asset_bundles(m)
    asset = bundle.outputs[0]
    assert asset.id == "warehouse.analytics.fct_orders"
    assert asset.display_name == "orders"
    assert asset.metadata["name"] == "fct_orders" and asset.metadata["team"] == "sales"


def test_ephemeral_models_are_looked_through():
    m = manifest(
        node("model.proj.base", parents=["source.proj.raw.orders"]),
        node("model.proj.eph", parents=["model.proj.base"], materialized="ephemeral"),
        node("model.proj.top", parents=["model.proj.eph"]),
        sources=[SOURCE],
    )
    bundles = {b.outputs[0].id: b for b in asset_bundles(m)}
    assert "warehouse.analytics.eph" not in bundles
    assert [a.id for a in bundles["warehouse.analytics.top"].inputs] == ["warehouse.analytics.base"]


def test_dependency_cycle_does_not_loop():
    m = manifest(
        node("model.proj.a", parents=["model.proj.b"], materialized="ephemeral"),
        node("model.proj.b", parents=["model.proj.a"], materialized="ephemeral"),
        node("model.proj.c", parents=["model.proj.a"]),
    )
    (bundle,) = asset_bundles(m)
    assert bundle.inputs == []


def test_id_falls_back_to_unique_id_without_relation_parts():
    n = node("snapshot.proj.snap", kind="snapshot", materialized="snapshot")
    n.update(database=None, schema=None, alias=None, name="")
    (bundle,) = asset_bundles(manifest(n))
    assert bundle.outputs[0].id == "snapshot.proj.snap"


@pytest.mark.parametrize("bad", [None, [], {"metadata": {}}, {"nodes": []}, "manifest"])
def test_not_a_manifest(bad):
    with pytest.raises(ArtifactError, match="not a dbt manifest.json"):
        table_nodes(bad)


def test_real_manifest(built_project):
    data = json.loads((built_project / "target" / "manifest.json").read_text())
    nodes = table_nodes(data)
    assert nodes["source.shop.raw.raw_orders"].produced is False
    assert nodes["model.shop.customer_orders"].parents == [
        "model.shop.stg_customers",
        "model.shop.stg_orders",
    ]
    # the disabled model is not part of the project's tables
    assert "model.shop.broken_revenue" not in nodes


# -- run results ---------------------------------------------------------------------------------


RUN_RESULTS = {
    "metadata": {"dbt_version": "1.11.0"},
    "elapsed_time": 3.5,
    "args": {"which": "build"},
    "results": [
        {"unique_id": "model.p.a", "status": "success", "execution_time": 1.5, "message": "OK",
         "adapter_response": {"rows_affected": 12}, "failures": None},
        {"unique_id": "model.p.b", "status": "error", "execution_time": 0.2,
         "message": "Database Error in model b\n  relation does not exist", "adapter_response": {}},
        {"unique_id": "model.p.c", "status": "skipped", "execution_time": 0, "message": None},
        {"unique_id": "seed.p.s", "status": "success", "execution_time": 2.5, "message": "INSERT 3"},
        {"unique_id": "test.p.t1", "status": "pass", "execution_time": 0.1, "failures": 0},
        {"unique_id": "test.p.t2", "status": "fail", "execution_time": 0.1, "failures": 4},
        {"unique_id": "test.p.t3", "status": "warn", "execution_time": 0.1, "failures": 1},
        {"unique_id": "unit_test.p.a.u", "status": "error", "execution_time": 0.1},
        {"unique_id": "operation.p.on-run-end-0", "status": "success", "execution_time": 9.0},
        {"status": "success"},
        "garbage",
    ],
}  # fmt: skip


def test_run_results_summaries():
    results = parse_run_results(RUN_RESULTS)
    assert len(results.nodes) == 9
    assert results.command == "build" and results.elapsed_time == 3.5
    summary = results.summary().as_dict()
    assert summary == {
        "total": 4, "success": 2, "error": 1, "warn": 0, "skipped": 1, "elapsedTime": 3.5, "command": "build",
        "slowest": [
            {"uniqueId": "seed.p.s", "executionTime": 2.5},
            {"uniqueId": "model.p.a", "executionTime": 1.5},
            {"uniqueId": "model.p.b", "executionTime": 0.2},
        ],
    }  # fmt: skip
    assert results.test_summary().as_dict() == {
        "total": 4,
        "pass": 1,
        "fail": 1,
        "warn": 1,
        "error": 1,
        "skipped": 0,
    }
    assert [n.unique_id for n in results.failed] == ["model.p.b", "test.p.t2", "unit_test.p.a.u"]
    a = results.nodes[0].as_dict()
    assert a == {
        "uniqueId": "model.p.a", "resourceType": "model", "status": "success", "executionTime": 1.5,
        "message": "OK", "adapterResponse": {"rows_affected": 12},
    }  # fmt: skip


def test_result_lines():
    nodes = {n.unique_id: n for n in parse_run_results(RUN_RESULTS).nodes}
    assert result_line(nodes["model.p.a"]) == "model.p.a => success in 1.50s: OK"
    assert result_line(nodes["test.p.t2"]) == "test.p.t2 => fail in 0.10s (4 failures)"
    assert result_line(nodes["test.p.t3"]) == "test.p.t3 => warn in 0.10s (1 failure)"
    assert result_line(nodes["model.p.b"]).endswith(": Database Error in model b\n  relation does not exist")


@pytest.mark.parametrize("bad", [None, {}, {"results": "x"}, []])
def test_not_run_results(bad):
    with pytest.raises(ArtifactError, match="not a dbt run_results.json"):
        parse_run_results(bad)


def test_malformed_artifacts_warn_without_crashing(tmp_path):
    from roost.testing import Runtime, TaskRunContext
    from roost_dbt.tasks import DbtCLI

    rt = Runtime.in_memory(tmp_path)
    ctx = TaskRunContext(rt, {}, namespace="company.team", task_id="dbt")
    task = DbtCLI.model_validate(
        {
            "id": "dbt",
            "type": DbtCLI.type_id,
            "commands": [
                "mkdir -p target",
                "echo '{\"results\": 3}' > target/run_results.json",
                "echo '{not json' > target/manifest.json",
            ],
            "assets": {"enableAuto": True},
        }
    )
    out = task.run(ctx)
    assert out.run_results is None
    assert task.auto_assets(ctx, out) == []
    warnings = [log["message"] for log in ctx.logs if log["level"] == "WARN"]
    assert any("run_results.json: not a dbt run_results.json" in w for w in warnings)
    assert any("cannot parse" in w and "manifest.json" in w for w in warnings)
    # the file is still kept, as Kestra keeps it
    assert "manifest.json" in out.output_files
