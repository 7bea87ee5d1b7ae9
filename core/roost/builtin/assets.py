"""Asset tasks (Set, List, Delete) and triggers (EventTrigger, FreshnessTrigger), with Kestra's type ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from roost import (
    Asset,
    Duration,
    Dynamic,
    Model,
    Output,
    PollingTrigger,
    RunContext,
    Task,
    TaskError,
    Trigger,
)
from roost.assets.model import canonical_asset_type
from roost.flow.properties import format_duration

A = "io.kestra.plugin.kestra.ee.assets."
B = "io.kestra.plugin.ee.assets."


class MetadataCondition(Model):
    """One condition on an asset's metadata."""

    field: str
    """Metadata key."""
    type: Literal["EQUAL_TO", "NOT_EQUAL_TO", "IN", "NOT_IN", "CONTAINS", "STARTS_WITH", "ENDS_WITH", "REGEX",
                  "GREATER_THAN", "LESS_THAN", "IS_NULL", "IS_NOT_NULL"] = "EQUAL_TO"  # fmt: skip
    """Comparison."""
    value: Any = None
    """Value compared with (a list for IN and NOT_IN)."""


def _runtime(ctx: RunContext) -> Any:
    return getattr(ctx, "runtime")  # noqa: B009 - the engine's context; not part of the public protocol


def _service(ctx: RunContext) -> Any:
    service = getattr(_runtime(ctx), "assets", None)
    if service is None:
        raise TaskError("no asset store is configured for this run")
    return service


def _source(ctx: RunContext) -> dict[str, Any]:
    return {
        "namespace": ctx.namespace,
        "flowId": ctx.flow_id,
        "executionId": ctx.execution_id,  # type: ignore[attr-defined]
        "taskId": ctx.task_id,
        "taskRunId": ctx.taskrun_id,
    }  # type: ignore[attr-defined]


class SetOutput(Output):
    event: str
    """CREATED or UPDATED."""
    asset: dict[str, Any]
    """The asset as stored."""


class Set(Task, type=A + "Set", aliases=(B + "Set",)):
    """Create or update an asset."""

    namespace: Dynamic[str] | None = None
    """Namespace of the asset; the flow's by default."""
    asset_id: Dynamic[str]
    """Identifier of the asset."""
    asset_type: Dynamic[str]
    """Type of the asset (TABLE, io.kestra.plugin.ee.assets.Table...)."""
    display_name: Dynamic[str] | None = None
    """Name shown in lists."""
    asset_description: Dynamic[str] | None = None
    """What the asset is."""
    metadata: Dynamic[dict[str, Any]] = Field(default_factory=dict)
    """Free-form metadata, merged into the existing asset's."""

    def run(self, ctx: RunContext) -> SetOutput:
        service = _service(ctx)
        asset = Asset(
            id=self.asset_id,
            type=self.asset_type,
            namespace=self.namespace or ctx.namespace,  # type: ignore[attr-defined]
            display_name=self.display_name,
            description=self.asset_description,
            metadata=self.metadata,
        )
        tenant = _runtime(ctx).tenant
        event = service.upsert(tenant, asset, asset.namespace, _source(ctx))
        stored = service.get(tenant, asset.id, asset.namespace, asset.type)
        ctx.logger.info("asset %s %s (%s)", asset.id, event.lower(), asset.type)
        return SetOutput(event=event, asset={k: v for k, v in stored.items() if not k.startswith("_")})


class ListOutput(Output):
    assets: list[dict[str, Any]] | None = None
    """The assets (FETCH)."""
    asset: dict[str, Any] | None = None
    """The first asset (FETCH_ONE)."""
    size: int = 0
    """How many assets matched."""
    uri: str | None = None
    """Internal-storage file of the assets, one JSON per line (STORE)."""


class List(Task, type=A + "List", aliases=(B + "List",)):
    """List assets by namespace, type and metadata."""

    namespace: Dynamic[str] | None = None
    """Namespace (and its children) to search; every namespace by default."""
    types: list[str] = Field(default_factory=list)
    """Asset types to keep."""
    metadata_query: list[MetadataCondition] = Field(default_factory=list)
    """Conditions on metadata, all of which must hold."""
    fetch_type: Literal["NONE", "FETCH_ONE", "FETCH", "STORE"] = "FETCH"
    """What the outputs carry."""

    def run(self, ctx: RunContext) -> ListOutput:
        found = _service(ctx).search(
            _runtime(ctx).tenant,
            namespace=self.namespace,
            types=self.types or None,
            metadata_query=[c.model_dump() for c in self.metadata_query],
        )
        items = [{k: v for k, v in a.items() if not k.startswith("_")} for a in found]
        ctx.logger.info("%d asset(s) found", len(items))
        out = ListOutput(size=len(items))
        if self.fetch_type == "FETCH":
            out.assets = items
        elif self.fetch_type == "FETCH_ONE":
            out.asset = items[0] if items else None
        elif self.fetch_type == "STORE":
            out.uri = ctx.put_bytes("".join(json.dumps(i) + "\n" for i in items).encode(), "assets.jsonl")  # type: ignore[attr-defined]
        return out


class DeleteOutput(Output):
    deleted: int
    """How many assets were deleted."""


class Delete(Task, type=A + "Delete", aliases=(B + "Delete",)):
    """Delete an asset (soft: its history and lineage stay)."""

    asset_id: Dynamic[str]
    """Identifier of the asset."""
    namespace: Dynamic[str] | None = None
    """Namespace of the asset; any namespace when not given."""
    asset_type: Dynamic[str] | None = None
    """Type of the asset; any type when not given."""
    error_on_missing: bool = False
    """Fail when no asset matches."""

    def run(self, ctx: RunContext) -> DeleteOutput:
        count = _service(ctx).delete(
            _runtime(ctx).tenant, self.asset_id, self.namespace, self.asset_type, _source(ctx)
        )
        if count == 0 and self.error_on_missing:
            raise TaskError(f"no asset '{self.asset_id}' to delete")
        ctx.logger.info("%d asset(s) deleted", count)
        return DeleteOutput(deleted=count)


class EventTrigger(Trigger, type=B + "EventTrigger", aliases=(A + "EventTrigger",)):
    """Start an execution for each asset lifecycle event that matches (``trigger.asset.*``)."""

    namespace: str | None = None
    """Namespace of the assets (and its children); any by default."""
    asset_type: str | None = None
    """Type of the assets; any by default."""
    events: list[Literal["CREATED", "UPDATED", "DELETED", "USED"]] = Field(
        default_factory=lambda: ["CREATED", "UPDATED", "DELETED", "USED"]  # type: ignore[arg-type]
    )
    """Events that start an execution."""
    metadata_query: list[MetadataCondition] = Field(default_factory=list)
    """Conditions on the asset's metadata."""

    def matches(self, event: dict[str, Any]) -> bool:
        from roost.assets.service import matches_query

        if event["event"] not in self.events:
            return False
        if self.namespace and not (
            event["namespace"] == self.namespace or event["namespace"].startswith(self.namespace + ".")
        ):
            return False
        if self.asset_type and event["type"] != canonical_asset_type(self.asset_type):
            return False
        return matches_query(event.get("metadata") or {}, [c.model_dump() for c in self.metadata_query])

    def variables(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"asset": {k: event[k] for k in ("id", "type", "namespace", "event", "eventTime", "metadata")}}


class FreshnessTrigger(PollingTrigger, type=A + "FreshnessTrigger", aliases=(B + "FreshnessTrigger",)):
    """Every ``interval``, start an execution listing the assets not updated within ``maxStaleness``."""

    max_staleness: Duration
    """An asset older than this is stale."""
    interval: Duration = timedelta(hours=1)
    """How often freshness is checked."""
    namespace: str | None = None
    """Namespace of the assets (and its children); any by default."""
    asset_type: str | None = None
    """Type of the assets; any by default."""
    metadata_query: list[MetadataCondition] = Field(default_factory=list)
    """Conditions on the assets' metadata."""

    def evaluate(self, ctx: Any) -> dict[str, Any] | None:
        service = ctx.engine.assets
        now = datetime.now(UTC)
        found = service.search(ctx.tenant, namespace=self.namespace, types=[self.asset_type] if self.asset_type else None,
                               metadata_query=[c.model_dump() for c in self.metadata_query])  # fmt: skip
        stale = []
        for a in found:
            age = now - datetime.fromtimestamp(a["_updated"], UTC)
            if age > self.max_staleness:
                stale.append({"id": a["id"], "namespace": a["namespace"], "type": a["type"], "lastUpdated": a["updated"],
                              "staleDuration": format_duration(age), "checkTime": now.isoformat().replace("+00:00", "Z"),
                              "metadata": a["metadata"]})  # fmt: skip
        if not stale:
            return None
        return {"assets": stale}


TASKS = (Set, List, Delete)
TRIGGERS = (EventTrigger, FreshnessTrigger)
