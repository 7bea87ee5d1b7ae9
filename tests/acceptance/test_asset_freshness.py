"""The seed's freshness examples: stale assets found by FreshnessTrigger start the monitoring flows.

Stand-ins: the subflow `refresh_marts` is deployed by the test; assets are aged by moving their
`updated` time back in the store (nobody waits 24 hours in a test).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from acceptance_support import acceptance_flow
from roost.assets.model import Asset
from roost.engine.scheduler import Scheduler
from roost.store.db import assets

TABLE = "TABLE"


def age(engine, asset_id: str, hours: float) -> None:
    with engine.store.engine.begin() as conn:
        conn.execute(
            sa.update(assets).where(assets.c.id == asset_id).values(updated=time.time() - hours * 3600)
        )


def executions_of(engine, flow_id: str, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found, _ = engine.store.search_executions("main", flow_id=flow_id)
        done = [f for f in found if f["state"]["current"] in ("SUCCESS", "WARNING", "FAILED")]
        if len(done) >= count:
            return done
        time.sleep(0.1)
    raise AssertionError(f"{flow_id}: fewer than {count} finished executions")


def test_stale_assets_monitor(engine):
    engine.deploy(acceptance_flow("stale_assets_monitor"))
    svc = engine.assets
    svc.upsert("main", Asset(id="old_report", type=TABLE), "company.data")
    svc.upsert("main", Asset(id="fresh_report", type=TABLE), "company.data")
    age(engine, "old_report", 30)
    scheduler = Scheduler(engine, refresh=0.1).start()
    try:
        [ex] = executions_of(engine, "stale_assets_monitor", 1)
    finally:
        scheduler.stop()
    assert ex["state"]["current"] == "SUCCESS"
    stale = ex["trigger"]["variables"]["assets"]
    assert [a["id"] for a in stale] == ["old_report"]
    assert stale[0]["staleDuration"].startswith("PT30H")
    logs = [r["message"] for r in engine.store.get_logs("main", ex["id"])]
    assert any(
        "Found 1 stale assets." in m and "First asset: old_report." in m and "Stale for: PT30H" in m
        for m in logs
    )


def test_prod_assets_freshness_calls_the_remediation_subflow(engine):
    engine.deploy("""
id: refresh_marts
namespace: company.data
inputs:
  - id: asset_id
    type: STRING
  - id: last_updated
    type: STRING
  - id: stale_duration
    type: STRING
tasks:
  - id: refresh
    type: io.kestra.plugin.core.log.Log
    message: "refreshing {{ inputs.asset_id }} (stale {{ inputs.stale_duration }})"
""")
    engine.deploy(acceptance_flow("prod_assets_freshness"))
    svc = engine.assets
    prod_mart = {"environment": "prod", "model_layer": "mart"}
    svc.upsert("main", Asset(id="mart_orders", type=TABLE, metadata=prod_mart), "company.data")
    svc.upsert(
        "main",
        Asset(id="stg_orders", type=TABLE, metadata={"environment": "prod", "model_layer": "staging"}),
        "company.data",
    )
    svc.upsert(
        "main",
        Asset(id="dev_mart", type=TABLE, metadata={"environment": "dev", "model_layer": "mart"}),
        "company.data",
    )
    svc.upsert("main", Asset(id="fresh_mart", type=TABLE, metadata=prod_mart), "company.data")
    for stale in ("mart_orders", "stg_orders", "dev_mart"):
        age(engine, stale, 8)
    scheduler = Scheduler(engine, refresh=0.1).start()
    try:
        [parent] = executions_of(engine, "prod_assets_freshness", 1)
        [child] = executions_of(engine, "refresh_marts", 1)
    finally:
        scheduler.stop()
    assert parent["state"]["current"] == "SUCCESS"
    assert [a["id"] for a in parent["trigger"]["variables"]["assets"]] == ["mart_orders"]
    assert child["inputs"]["asset_id"] == "mart_orders"
    assert child["inputs"]["stale_duration"].startswith("PT8H")
    assert child["parentId"] == parent["id"]
