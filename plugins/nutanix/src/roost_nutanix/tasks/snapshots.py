"""VM snapshot tasks: recovery points of the data protection v4 API."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr
from roost import AssetBundle, Dynamic, RunContext, TaskError

from roost_nutanix.client import MAX_LIMIT, PrismClient, PrismError, q
from roost_nutanix.tasks.base import (
    SNAPSHOT,
    AsyncTask,
    Consistency,
    FetchType,
    ListOutput,
    NutanixTask,
    PrismTasks,
    TaskOutput,
    affected,
    fetched,
)
from roost_nutanix.tasks.shapes import snapshot_asset, vm_asset


class _DataProtection:
    """Paths of the data protection API's recovery points (mixed into the snapshot tasks)."""

    def rp_path(self, ext_id: str | None = None) -> str:
        base = f"/api/dataprotection/{self.api_version}/config/recovery-points"  # type: ignore[attr-defined]
        return base if ext_id is None else f"{base}/{q(ext_id)}"

    def get_rp(self, client: PrismClient, ext_id: str) -> dict[str, Any]:
        try:
            rp, _ = client.get(self.rp_path(ext_id), "GET recovery point")
        except PrismError as exc:
            if exc.status == 404:
                raise PrismError(
                    f"Prism Central has no snapshot (recovery point) '{ext_id}' (HTTP 404): {exc}", status=404
                ) from None
            raise
        return rp


class _SnapshotTask(AsyncTask, _DataProtection):
    """An asynchronous recovery point operation."""

    api_version: Dynamic[str] = "v4.0"
    """Data protection API version in the path (/api/dataprotection/<version>/...), such as v4.0 or v4.0.a4."""


class SnapshotOutput(TaskOutput):
    """A snapshot operation."""

    snapshot_ext_id: str | None = None
    """extId of the snapshot (recovery point)."""


class CreateVmSnapshot(_SnapshotTask, type=SNAPSHOT + "CreateVmSnapshot"):
    """Snapshot an AHV VM as a recovery point, crash- or application-consistent, with an optional expiry."""

    vm_ext_id: Dynamic[str]
    """extId of the VM to snapshot."""
    snapshot_name: Dynamic[str]
    """Name of the recovery point."""
    consistency: Dynamic[Consistency] = "CRASH_CONSISTENT"
    """CRASH_CONSISTENT, or APPLICATION_CONSISTENT (needs the guest tools to quiesce I/O)."""
    expiration_time: Dynamic[str] | None = None
    """Expiry of the recovery point, ISO-8601 (2030-01-01T00:00:00Z); kept until deleted when unset."""

    class Out(SnapshotOutput):
        snapshot_name: str
        """Name of the recovery point."""
        vm_ext_id: str
        """extId of the VM."""

    def run(self, ctx: RunContext) -> CreateVmSnapshot.Out:
        body = {
            "name": self.snapshot_name,
            "recoveryPointType": self.consistency,
            "vmRecoveryPoints": [{"vmExtId": self.vm_ext_id}],
        }
        if self.expiration_time:
            body["expirationTime"] = self.expiration_time
        with self.client(ctx) as client:
            vm, _ = client.get_vm(self.vm_ext_id)
            ctx.logger.info(
                "creating %s snapshot '%s' of VM %s ('%s')",
                self.consistency,
                self.snapshot_name,
                self.vm_ext_id,
                vm.get("name"),
            )
            task_id, task = PrismTasks(self, ctx, client).run(
                f"snapshot '{self.snapshot_name}'",
                lambda: client.task_ref(
                    client.call("POST", self.rp_path(), body=body), "POST recovery-points"
                ),
            )
        rp_ids = affected(task, "recovery-point")
        if task is not None and not rp_ids:
            raise TaskError(f"Prism task {task_id} succeeded but names no recovery point (entitiesAffected)")
        if rp_ids:
            prism = self.prism()
            self._assets = [
                AssetBundle(
                    inputs=[vm_asset(vm, prism)],
                    outputs=[
                        snapshot_asset(
                            rp_ids[0],
                            prism,
                            name=self.snapshot_name,
                            vm=self.vm_ext_id,
                            consistency=self.consistency,
                            expirationTime=self.expiration_time,
                        )
                    ],
                )
            ]
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status") if task else "RUNNING",
            snapshot_ext_id=rp_ids[0] if rp_ids else None,
            snapshot_name=self.snapshot_name,
            vm_ext_id=self.vm_ext_id,
        )


class ListVmSnapshots(NutanixTask, _DataProtection, type=SNAPSHOT + "ListVmSnapshots"):
    """List recovery points (VM snapshots), optionally only those of one VM."""

    vm_ext_id: Dynamic[str] | None = None
    """Only the recovery points holding this VM."""
    filter: Dynamic[str] | None = None
    """OData filter applied by Prism Central, such as startswith(name, 'daily-')."""
    order_by: Dynamic[str] | None = None
    """OData sort, such as creationTime desc."""
    page: Dynamic[int] | None = None
    """Page number, 0 first; when unset, every page is fetched."""
    limit: Dynamic[int] | None = None
    """Recovery points per page (1-100)."""
    fetch_type: Dynamic[FetchType] = "FETCH"
    """FETCH (rows), FETCH_ONE (row), STORE (a JSON file in internal storage, uri) or NONE (size only)."""
    api_version: Dynamic[str] = "v4.0"
    """Data protection API version in the path (/api/dataprotection/<version>/...), such as v4.0 or v4.0.a4."""

    class Out(ListOutput):
        pass

    _rps: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def run(self, ctx: RunContext) -> ListVmSnapshots.Out:
        if self.limit is not None and not 1 <= self.limit <= MAX_LIMIT:
            raise TaskError(f"limit must be between 1 and {MAX_LIMIT} (got {self.limit})")
        params = {"$filter": self.filter, "$orderby": self.order_by}
        with self.client(ctx) as client:
            ctx.logger.info(
                "listing snapshots (recovery points)%s", f" of VM {self.vm_ext_id}" if self.vm_ext_id else ""
            )
            if self.page is not None:
                rps, total = client.page(self.rp_path(), page=self.page, limit=self.limit or 50, **params)
            else:
                rps = client.list_all(self.rp_path(), limit=self.limit or MAX_LIMIT, **params)
                total = len(rps)
        if self.vm_ext_id:
            rps = [rp for rp in rps if self.vm_ext_id in _rp_vms(rp)]
            total = len(rps)
        self._rps = rps
        ctx.logger.info("%d snapshot(s) returned", len(rps))
        return self.Out(total=total, **fetched(ctx, rps, self.fetch_type, "snapshots"))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        prism = self.prism()
        assets = [
            snapshot_asset(
                rp["extId"],
                prism,
                name=rp.get("name"),
                vms=_rp_vms(rp),
                status=rp.get("status"),
                creationTime=rp.get("creationTime"),
                expirationTime=rp.get("expirationTime"),
            )
            for rp in self._rps
            if rp.get("extId")
        ]
        return [AssetBundle(outputs=assets)] if assets else []


def _rp_vms(rp: dict[str, Any]) -> list[str]:
    return [
        v.get("vmExtId") for v in rp.get("vmRecoveryPoints") or [] if isinstance(v, dict) and v.get("vmExtId")
    ]


class RestoreVmSnapshot(_SnapshotTask, type=SNAPSHOT + "RestoreVmSnapshot"):
    """Restore a recovery point: Prism Central creates VMs from it (on the recovery point's cluster by default)."""

    snapshot_ext_id: Dynamic[str]
    """extId of the recovery point to restore."""
    restore_spec: Dynamic[dict[str, Any]] | None = None
    """Restore specification (clusterExtId, vmRecoveryPointRestoreOverrides...); unset restores to the recovery point's cluster."""

    class Out(SnapshotOutput):
        vm_ext_ids: list[str] = Field(default_factory=list)
        """extIds of the restored VMs."""

    def run(self, ctx: RunContext) -> RestoreVmSnapshot.Out:
        with self.client(ctx) as client:
            rp = self.get_rp(client, self.snapshot_ext_id)
            spec = dict(self.restore_spec or {})
            if "clusterExtId" not in spec:
                locations = [
                    loc.get("locationExtId")
                    for loc in rp.get("locationReferences") or []
                    if isinstance(loc, dict)
                ]
                if not locations or not locations[0]:
                    raise TaskError(
                        f"recovery point {self.snapshot_ext_id} names no cluster (locationReferences); "
                        "set restoreSpec.clusterExtId"
                    )
                spec["clusterExtId"] = locations[0]
            ctx.logger.info(
                "restoring snapshot %s ('%s') on cluster %s",
                self.snapshot_ext_id,
                rp.get("name"),
                spec["clusterExtId"],
            )
            path = f"{self.rp_path(self.snapshot_ext_id)}/$actions/restore"
            task_id, task = PrismTasks(self, ctx, client).run(
                f"restore of snapshot '{rp.get('name')}'",
                lambda: client.task_ref(client.call("POST", path, body=spec), "POST restore"),
            )
            vm_ids = affected(task, "vm")
            vms = [client.get_vm(ext_id)[0] for ext_id in vm_ids]
        if task is not None:
            prism = self.prism()
            self._assets = [
                AssetBundle(
                    inputs=[
                        snapshot_asset(self.snapshot_ext_id, prism, name=rp.get("name"), vms=_rp_vms(rp))
                    ],
                    outputs=[vm_asset(vm, prism) for vm in vms],
                )
            ]
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status") if task else "RUNNING",
            snapshot_ext_id=self.snapshot_ext_id,
            vm_ext_ids=vm_ids,
        )


class DeleteVmSnapshot(_SnapshotTask, type=SNAPSHOT + "DeleteVmSnapshot"):
    """Delete a recovery point (VM snapshot); irreversible."""

    snapshot_ext_id: Dynamic[str]
    """extId of the recovery point to delete."""

    class Out(SnapshotOutput):
        pass

    def run(self, ctx: RunContext) -> DeleteVmSnapshot.Out:
        with self.client(ctx) as client:
            rp = self.get_rp(client, self.snapshot_ext_id)
            ctx.logger.info("deleting snapshot %s ('%s')", self.snapshot_ext_id, rp.get("name"))
            task_id, task = PrismTasks(self, ctx, client).run(
                f"deletion of snapshot '{rp.get('name')}'",
                lambda: client.task_ref(
                    client.call("DELETE", self.rp_path(self.snapshot_ext_id)), "DELETE recovery point"
                ),
            )
        if task is not None:
            self._assets = [
                AssetBundle(
                    outputs=[
                        snapshot_asset(
                            self.snapshot_ext_id,
                            self.prism(),
                            name=rp.get("name"),
                            vms=_rp_vms(rp),
                            state="DELETED",
                        )
                    ]
                )
            ]
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status") if task else "RUNNING",
            snapshot_ext_id=self.snapshot_ext_id,
        )
