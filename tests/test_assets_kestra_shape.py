"""Assets in Kestra's shape: ``TaskRun.assets`` in the execution JSON, and one name per asset type."""

from __future__ import annotations

import time

from support import flow

TABLE = "io.kestra.plugin.ee.assets.Table"


def test_task_run_carries_its_assets(run_flow):
    ex = run_flow(
        flow("""
        tasks:
          - id: make
            type: io.kestra.plugin.core.debug.Return
            format: orders_v2
            assets:
              inputs:
                - id: raw_orders
                  type: TABLE
              outputs:
                - id: "{{ outputs.make.value }}"
                  type: io.kestra.plugin.ee.assets.Table
                  displayName: Orders
                  metadata:
                    layer: mart
          - id: plain
            type: io.kestra.plugin.core.debug.Return
            format: x
    """)
    )
    runs = {tr["taskId"]: tr for tr in ex.to_dict()["taskRunList"]}
    assert runs["make"]["assets"] == {
        "inputs": [{"id": "raw_orders", "type": TABLE, "namespace": "company.team"}],
        "outputs": [
            {"id": "orders_v2", "type": TABLE, "namespace": "company.team", "displayName": "Orders",
             "metadata": {"layer": "mart"}}
        ],
    }  # fmt: skip
    assert "assets" not in runs["plain"]


def test_task_run_assets_survive_the_store(run_flow, roost_engine):
    ex = run_flow(
        flow("""
        tasks:
          - id: make
            type: io.kestra.plugin.core.log.Log
            message: hi
            assets:
              outputs: "{{ [{'id': 'from_expression', 'type': 'TABLE'}] }}"
    """)
    )
    header, runs = roost_engine.store.load_execution(ex.id)
    assert runs[0]["assets"]["outputs"] == [
        {"id": "from_expression", "type": TABLE, "namespace": "company.team", "metadata": {}}
    ]
    assert roost_engine.assets.get("main", "from_expression")["type"] == TABLE


def test_one_name_per_asset_type_across_set_list_and_triggers(run_flow, roost_engine):
    roost_engine.deploy(
        flow(
            """
        tasks:
          - id: seen
            type: io.kestra.plugin.core.debug.Return
            format: "{{ trigger.asset.type }}"
        triggers:
          - id: on_table
            type: io.kestra.plugin.ee.assets.EventTrigger
            assetType: TABLE
            events: [CREATED]
    """,
            id="listener",
        )
    )
    ex = run_flow(
        flow("""
        tasks:
          - id: set
            type: io.kestra.plugin.kestra.ee.assets.Set
            assetId: customers
            assetType: TABLE
          - id: set_again
            type: io.kestra.plugin.ee.assets.Set
            assetId: customers
            assetType: io.kestra.plugin.ee.assets.Table
            metadata:
              owner: data
          - id: by_short_name
            type: io.kestra.plugin.kestra.ee.assets.List
            types: [TABLE]
          - id: by_class_name
            type: io.kestra.plugin.kestra.ee.assets.List
            types: [io.kestra.plugin.ee.assets.Table]
    """)
    )
    assert ex.state.current == "SUCCESS"
    assert ex.outputs_tree["set"]["event"] == "CREATED"
    assert ex.outputs_tree["set_again"]["event"] == "UPDATED"  # the same asset, not a second one
    assert ex.outputs_tree["by_short_name"]["size"] == ex.outputs_tree["by_class_name"]["size"] == 1
    assert ex.outputs_tree["by_short_name"]["assets"][0]["type"] == TABLE
    deadline = time.monotonic() + 15
    found: list = []
    while not found and time.monotonic() < deadline:
        found, _ = roost_engine.store.search_executions("main", flow_id="listener")
        time.sleep(0.05)
    assert len(found) == 1
    assert roost_engine.wait(found[0]["id"], timeout=20).outputs_tree["seen"]["value"] == TABLE


def test_api_type_filter_accepts_either_name(roost_engine):
    from fastapi.testclient import TestClient
    from roost import Asset
    from roost.server.app import create_app
    from roost.server.state import ServerState

    roost_engine.assets.upsert("main", Asset(id="t1", type="TABLE"), "company.team")
    roost_engine.assets.upsert("main", Asset(id="vm1", type="VM"), "company.team")
    with TestClient(create_app(ServerState(roost_engine, None))) as client:
        for value in ("TABLE", TABLE):
            body = client.get("/api/v1/main/assets/search", params={"filters[type][EQUALS]": value}).json()
            assert [a["id"] for a in body["results"]] == ["t1"], value
