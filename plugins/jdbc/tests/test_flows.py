"""The seed's JDBC flows on the real engine (roost.testing's ``run_flow`` fixture)."""

from __future__ import annotations

import sqlite3

import psycopg
from roost.testing.postgres import PgServer

# acceptance/flows/jdbc_create_trips.yaml, as written
JDBC_CREATE_TRIPS = """
id: jdbc_create_trips
namespace: company.team
tasks:
  - id: create_trips_table
    type: io.kestra.plugin.jdbc.sqlite.Query
    url: jdbc:sqlite:myfile.db
    outputDbFile: true
    sql: |
      CREATE TABLE IF NOT EXISTS trips (
        VendorID INTEGER,
        passenger_count INTEGER,
        trip_distance REAL
      );
    assets:
      enableAuto: true
"""

# acceptance/flows/audit_asset_deletions.yaml's task as written; the URL and user come from plugin
# defaults (here flow-level ones), and the trigger's variables are given to the execution directly.
AUDIT_ASSET_DELETIONS = """
id: audit_asset_deletions
namespace: company.security
tasks:
  - id: log_deletion
    type: io.kestra.plugin.jdbc.postgresql.Query
    sql: |
      INSERT INTO audit_log (asset_id, asset_type, namespace, event, event_time)
      VALUES (
        '{{ trigger.asset.id }}',
        '{{ trigger.asset.type }}',
        '{{ trigger.asset.namespace }}',
        '{{ trigger.asset.event }}',
        '{{ trigger.asset.eventTime }}'
      )
pluginDefaults:
  - type: io.kestra.plugin.jdbc.postgresql
    values:
      url: "%(url)s"
      username: postgres
"""


def test_jdbc_create_trips_flow(run_flow, roost_engine):
    emitted = []
    roost_engine.asset_sink = lambda job, ctx, bundles: emitted.extend(bundles)
    ex = run_flow(JDBC_CREATE_TRIPS)
    assert ex.state.current == "SUCCESS"
    [tr] = ex.task_runs
    uri = tr.outputs["databaseUri"]
    path = roost_engine.runtime().storage.local_path(uri)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("trips",)]
    [bundle] = emitted
    assert [(a.id, a.type, a.metadata) for a in bundle.outputs] == [
        (
            "myfile.trips",
            "io.kestra.plugin.ee.assets.Table",
            {"system": "sqlite", "database": "myfile", "name": "trips"},
        )
    ]


def test_audit_asset_deletions_flow(run_flow, postgres: PgServer, pg_db: str):
    with psycopg.connect(postgres.dsn(pg_db), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE audit_log (asset_id text, asset_type text, namespace text, event text, "
            "event_time timestamptz)"
        )
    asset = {
        "id": "customers_by_country",
        "type": "io.kestra.plugin.ee.assets.Table",
        "namespace": "company.data",
        "event": "DELETED",
        "eventTime": "2026-01-15T10:00:00Z",
    }
    trigger = {
        "id": "asset_deletion_event",
        "type": "io.kestra.plugin.ee.assets.EventTrigger",
        "variables": {"asset": asset},
    }
    ex = run_flow(AUDIT_ASSET_DELETIONS % {"url": postgres.jdbc_url(pg_db)}, trigger=trigger)
    assert ex.state.current == "SUCCESS"
    with psycopg.connect(postgres.dsn(pg_db)) as conn:
        assert conn.execute("SELECT asset_id, namespace, event FROM audit_log").fetchall() == [
            ("customers_by_country", "company.data", "DELETED")
        ]
