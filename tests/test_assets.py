"""Assets in the core: declared and automatic emission, lifecycle tasks, events, EventTrigger, lineage."""

from __future__ import annotations

import time
from pathlib import Path

from roost import Asset, AssetBundle
from roost.assets.service import matches_query
from support import flow

ACCEPTANCE = Path(__file__).resolve().parent / "acceptance" / "flows"


def wait_for(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition never held")


def test_asset_lifecycle_ops_acceptance_flow(run_flow, roost_engine):
    ex = run_flow((ACCEPTANCE / "asset_lifecycle_ops.yaml").read_text())
    assert ex.state.current == "SUCCESS"
    listed = ex.outputs_tree["list_assets"]
    assert listed["size"] == 1
    asset = listed["assets"][0]
    assert asset["id"] == "customers_by_country" and asset["namespace"] == "assets.data"
    assert asset["metadata"] == {"owner": "data-team", "environment": "prod"}
    assert asset["displayName"] == "Customers by Country"
    assert ex.outputs_tree["delete_asset"]["deleted"] == 1
    assert roost_engine.assets.get("main", "customers_by_country") is None
    events = [e["event"] for e in roost_engine.assets.events("main", "customers_by_country")]
    assert events == ["CREATED", "DELETED"]


def test_declared_assets_rendered_with_outputs_and_bundles_kept_apart(run_flow, roost_engine):
    ex = run_flow(
        flow("""
        tasks:
          - id: make
            type: io.kestra.plugin.core.debug.Return
            format: orders_v2
            assets:
              inputs:
                - id: raw_orders
                  type: io.kestra.plugin.ee.assets.Table
              outputs:
                - id: "{{ outputs.make.value }}"
                  type: io.kestra.plugin.ee.assets.Table
                  metadata:
                    layer: mart
          - id: other
            type: io.kestra.plugin.core.debug.Return
            format: x
            assets:
              inputs:
                - id: customers
                  type: io.kestra.plugin.ee.assets.Table
              outputs:
                - id: customer_report
                  type: io.kestra.plugin.ee.assets.Table
    """)
    )
    assert ex.state.current == "SUCCESS"
    svc = roost_engine.assets
    assert svc.get("main", "orders_v2")["metadata"] == {"layer": "mart"}
    graph = svc.lineage("main", "orders_v2")
    edges = {(e["source"].split("/")[1], e["target"].split("/")[1]) for e in graph["edges"]}
    assert edges == {("raw_orders", "orders_v2")}  # no edge from customers: bundles are not mixed
    lineage = svc.lineage_events("main", execution_id=ex.id)
    assert [
        (r["taskId"], [a["id"] for a in r["inputs"]], [a["id"] for a in r["outputs"]]) for r in lineage
    ] == [("make", ["raw_orders"], ["orders_v2"]), ("other", ["customers"], ["customer_report"])]
    assert [e["event"] for e in svc.events("main", "raw_orders")] == ["CREATED", "USED"]


def test_event_trigger_fires_once_per_matching_event(roost_engine):
    roost_engine.deploy(
        flow(
            """
        inputs:
          - id: source_asset_id
            type: STRING
          - id: source_event
            type: STRING
          - id: event_time
            type: STRING
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{ inputs.source_asset_id }} {{ inputs.source_event }}"
    """,
            id="create_mart_tables",
            namespace="company.data",
        )
    )
    pipeline = roost_engine.deploy((ACCEPTANCE / "asset_event_driven_pipeline.yaml").read_text())
    table = "io.kestra.plugin.ee.assets.Table"
    svc = roost_engine.assets
    svc.upsert(
        "main", Asset(id="stg_orders", type=table, metadata={"model_layer": "staging"}), "company.data"
    )
    svc.upsert(
        "main", Asset(id="stg_orders", type=table, metadata={"model_layer": "staging"}), "company.data"
    )
    svc.upsert("main", Asset(id="mart_orders", type=table, metadata={"model_layer": "mart"}), "company.data")
    svc.upsert("main", Asset(id="stg_other_ns", type=table, metadata={"model_layer": "staging"}), "other.ns")

    def runs():
        found, total = roost_engine.store.search_executions(
            "main", namespace="company.data", flow_id=pipeline.id
        )
        return found if total == 2 and all(f["state"]["current"] == "SUCCESS" for f in found) else None

    found = wait_for(runs)
    events = sorted(f["trigger"]["variables"]["asset"]["event"] for f in found)
    assert events == ["CREATED", "UPDATED"]
    children, total = roost_engine.store.search_executions(
        "main", namespace="company.data", flow_id="create_mart_tables"
    )
    wait_for(lambda: roost_engine.store.search_executions("main", flow_id="create_mart_tables")[1] == 2)
    child = roost_engine.store.search_executions("main", flow_id="create_mart_tables")[0][0]
    assert child["inputs"]["source_asset_id"] == "stg_orders"
    time.sleep(0.3)
    assert roost_engine.store.search_executions("main", flow_id=pipeline.id)[1] == 2  # and no more


def test_metadata_query_operators():
    meta = {"owner": "data-team", "tags": ["pii", "gold"], "rows": 120, "path": "s3://bucket/x"}
    q = lambda op, value, field="owner": [{"field": field, "type": op, "value": value}]  # noqa: E731
    assert matches_query(meta, q("EQUAL_TO", "data-team"))
    assert not matches_query(meta, q("EQUAL_TO", "other"))
    assert matches_query(meta, q("NOT_EQUAL_TO", "other"))
    assert matches_query(meta, q("IN", ["x", "data-team"]))
    assert not matches_query(meta, q("IN", ["x"]))
    assert matches_query(meta, q("CONTAINS", "pii", "tags"))
    assert matches_query(meta, q("CONTAINS", "team"))
    assert matches_query(meta, q("STARTS_WITH", "s3://", "path"))
    assert matches_query(meta, q("GREATER_THAN", 100, "rows"))
    assert not matches_query(meta, q("EQUAL_TO", "x", "missing"))
    assert matches_query(meta, q("EQUAL_TO", "data-team") + q("STARTS_WITH", "s3", "path"))


def test_auto_assets_from_a_task(run_flow, roost_engine):
    from roost import Task
    from roost.plugins import get_plugins

    class Emitter(Task, type="io.test.assets.Emitter"):
        """Emits two bundles."""

        def run(self, ctx):
            return {"ok": True}

        def auto_assets(self, ctx, out):
            return [
                AssetBundle(inputs=[Asset(id="a")], outputs=[Asset(id="b")]),
                AssetBundle(inputs=[Asset(id="c")], outputs=[Asset(id="d")]),
            ]

    class Plugin:
        from roost import hookimpl

        @hookimpl
        def register_task_types(self, register):
            register(Emitter)

    plugins = get_plugins()
    plugins.register_module(Plugin(), name="emitter")
    try:
        ex = run_flow(
            flow("""
            tasks:
              - id: emit
                type: io.test.assets.Emitter
                assets:
                  enableAuto: true
        """)
        )
    finally:
        plugins.unregister("emitter")
    assert ex.state.current == "SUCCESS"
    edges = {
        (e["source"].split("/")[1], e["target"].split("/")[1])
        for e in roost_engine.assets.lineage("main", "a")["edges"]
    }
    assert edges == {("a", "b")}
