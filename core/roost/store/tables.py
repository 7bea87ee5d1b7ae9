"""The database's tables (SQLAlchemy Core). Changes reach a database only through a migration in
:mod:`roost.store.db`; the repositories (db, audit, killswitches) import their tables from here."""

from __future__ import annotations

import json
from typing import Any

import orjson
import sqlalchemy as sa

_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: Any) -> str:
    """Compact JSON for the store, what is not JSON as its ``str()``. orjson writes every executor batch
    (several times faster than the standard library); what it refuses and the standard library takes
    (an integer past 64 bits, a lone surrogate) goes through the standard library."""
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)


metadata = sa.MetaData()

flows = sa.Table(
    "flows", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(150), primary_key=True),
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("labels", sa.Text),
    sa.Column("updated", sa.Float, nullable=False),
)  # fmt: skip

executions = sa.Table(
    "executions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("namespace", sa.String(150), nullable=False),
    sa.Column("flow_id", sa.String(100), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("start_date", sa.Float, nullable=False),
    sa.Column("end_date", sa.Float),
    sa.Column("parent_id", sa.String(32)),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_executions_flow", "tenant", "namespace", "flow_id", "state"),
    sa.Index("ix_executions_state", "state"),
)  # fmt: skip

taskruns = sa.Table(
    "taskruns", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("execution_id", sa.String(32), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)  # fmt: skip

logs = sa.Table(
    "logs", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("namespace", sa.String(150)),
    sa.Column("flow_id", sa.String(100)),
    sa.Column("execution_id", sa.String(32), index=True),
    sa.Column("taskrun_id", sa.String(32)),
    sa.Column("task_id", sa.String(100)),
    sa.Column("timestamp", sa.String(40), nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)  # fmt: skip

kv = sa.Table(
    "kv", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(150), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("expires", sa.Float),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("description", sa.Text),
)  # fmt: skip

namespace_files = sa.Table(
    "namespace_files", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(150), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("content", sa.LargeBinary),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip

triggers = sa.Table(
    "triggers", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(150), primary_key=True),
    sa.Column("flow_id", sa.String(100), primary_key=True),
    sa.Column("trigger_id", sa.String(100), primary_key=True),
    sa.Column("next_date", sa.Float),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("data", sa.Text, nullable=False),
)  # fmt: skip

assets = sa.Table(
    "assets", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(150), primary_key=True),
    sa.Column("id", sa.String(512), primary_key=True),
    sa.Column("type", sa.String(255), primary_key=True),
    sa.Column("display_name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_assets_id", "tenant", "id"),
)  # fmt: skip

asset_lineage = sa.Table(
    "asset_lineage", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("namespace", sa.String(150)),
    sa.Column("flow_id", sa.String(100)),
    sa.Column("flow_revision", sa.Integer),
    sa.Column("execution_id", sa.String(32), index=True),
    sa.Column("task_id", sa.String(100)),
    sa.Column("taskrun_id", sa.String(32)),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip

asset_events = sa.Table(
    "asset_events", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("namespace", sa.String(150), nullable=False),
    sa.Column("asset_id", sa.String(512), nullable=False),
    sa.Column("type", sa.String(255), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("execution_id", sa.String(32)),
    sa.Column("flow_id", sa.String(100)),
    sa.Column("task_id", sa.String(100)),
    sa.Index("ix_asset_events_asset", "tenant", "asset_id"),
)  # fmt: skip

# What masks an execution's secrets in its logs after a restart, never a secret in clear (roost.expr.masking).
execution_masks = sa.Table(
    "execution_masks", metadata,
    sa.Column("execution_id", sa.String(32), primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
)  # fmt: skip

# Plugin defaults, one YAML document per scope and revision: tenant "" + namespace "" is the instance's.
plugin_defaults = sa.Table(
    "plugin_defaults", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(150), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("origin", sa.String(255), nullable=False),
    sa.Column("author", sa.String(255)),
    sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip

# Kill switches (roost.engine.killswitch): scoped KILL / CANCEL / IGNORE levers with a start and an optional end.
# Deletion is soft (``deleted``); ``archived`` is set once a switch is deleted or its end has passed.
kill_switches = sa.Table(
    "kill_switches", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("namespace", sa.String(150)),
    sa.Column("flow_id", sa.String(100)),
    sa.Column("execution_ids", sa.Text),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("start_date", sa.Float, nullable=False),
    sa.Column("end_date", sa.Float),
    sa.Column("description", sa.Text),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("archived", sa.Float),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(256)),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(256)),
    sa.Column("version", sa.Integer, nullable=False),
)  # fmt: skip

# One counter per watched table, bumped in the transaction of every write: the cheap change check other
# processes poll (a row lock serialises concurrent writers on PostgreSQL).
store_versions = sa.Table(
    "store_versions", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)  # fmt: skip

# The audit log (roost.store.audit): append-only, refused UPDATE and DELETE by triggers in the database itself.
audit_logs = sa.Table(
    "audit_logs", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("tenant", sa.String(64)),
    sa.Column("date", sa.Float, nullable=False),
    sa.Column("type", sa.String(24), nullable=False),
    sa.Column("resource_type", sa.String(32), nullable=False),
    sa.Column("resource_id", sa.String(1024)),
    sa.Column("namespace", sa.String(150)),
    sa.Column("flow_id", sa.String(100)),
    sa.Column("execution_id", sa.String(64)),
    sa.Column("user_id", sa.String(256), nullable=False),
    sa.Column("ip", sa.String(64)),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("before", sa.Text),
    sa.Column("after", sa.Text),
    sa.Index("ix_audit_logs_date", "tenant", "date"),
    sa.Index("ix_audit_logs_resource", "tenant", "resource_type", "resource_id"),
)  # fmt: skip

# Empty folders of namespace files (files imply their folders; a folder created empty is remembered here).
namespace_dirs = sa.Table(
    "namespace_directories", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(150), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip

# Scale-out (roost.store.cluster): task runs waiting for or held by a worker process, one row per task run
# in flight; ``claim`` fences results (a job taken back from a dead worker gets a new claim, so the dead
# worker's late result matches nothing). ``pin`` keeps a WorkingDirectory's task runs on one worker.
worker_jobs = sa.Table(
    "worker_jobs", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("taskrun_id", sa.String(32), nullable=False, unique=True),
    sa.Column("execution_id", sa.String(32), nullable=False),
    sa.Column("worker_group", sa.String(100)),
    sa.Column("pin", sa.String(1024)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("claim", sa.String(32)),
    sa.Column("claimed", sa.Float),
    sa.Column("submissions", sa.Integer, nullable=False, default=1),
    sa.Column("kill", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_worker_jobs_worker", "worker_id"),
)  # fmt: skip

# One row per live worker process, its heartbeat refreshed every few seconds (Kestra's worker instances).
worker_instances = sa.Table(
    "worker_instances", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("worker_group", sa.String(100)),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("threads", sa.Integer, nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
)  # fmt: skip

# The worker holding a WorkingDirectory's folder: its other task runs go to that worker only.
worker_pins = sa.Table(
    "worker_pins", metadata,
    sa.Column("pin", sa.String(1024), primary_key=True),
    sa.Column("worker_id", sa.String(64), nullable=False),
    sa.Column("execution_id", sa.String(32), nullable=False),
)  # fmt: skip

# The executor process working on an execution, until ``expires`` (renewed while it lives).
execution_leases = sa.Table(
    "execution_leases", metadata,
    sa.Column("execution_id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Index("ix_execution_leases_owner", "owner"),
)  # fmt: skip

# Facts every process of one installation must agree on (the identity of the shared internal storage).
cluster_settings = sa.Table(
    "cluster_settings", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)  # fmt: skip

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied", sa.Float, nullable=False),
)  # fmt: skip
