"""AHV VM tasks (VMM v4): list, create, update, power operations, delete and clone."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field, PrivateAttr
from roost import AssetBundle, Dynamic, RunContext, TaskError

from roost_nutanix.client import MAX_LIMIT, PrismClient, PrismError, q
from roost_nutanix.tasks.base import (
    AHV,
    VMS,
    AsyncTask,
    FetchType,
    ListOutput,
    NutanixTask,
    PrismTasks,
    VmOutput,
    affected,
    duration,
    fetched,
)
from roost_nutanix.tasks.shapes import vm_asset, vm_ips, vm_payload, vm_view


class ListVms(NutanixTask, type=AHV + "ListVms"):
    """List AHV VMs through the VMM v4 API, with an optional OData filter, sort, selection and paging."""

    filter: Dynamic[str] | None = None
    """OData filter applied by Prism Central, such as startswith(name, 'prod-') or name eq 'web-01'."""
    order_by: Dynamic[str] | None = None
    """OData sort, such as name desc."""
    select: Dynamic[str] | None = None
    """Comma-separated VM properties to return."""
    page: Dynamic[int] | None = None
    """Page number, 0 first; when unset, every page is fetched."""
    limit: Dynamic[int] | None = None
    """VMs per page (1-100; Prism's default is 50 when page is set, 100 when fetching every page)."""
    fetch_type: Dynamic[FetchType] = "FETCH"
    """FETCH (rows), FETCH_ONE (row), STORE (a JSON file in internal storage, uri) or NONE (size only)."""

    class Out(ListOutput):
        pass

    _vms: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def run(self, ctx: RunContext) -> ListVms.Out:
        if self.limit is not None and not 1 <= self.limit <= MAX_LIMIT:
            raise TaskError(f"limit must be between 1 and {MAX_LIMIT} (got {self.limit})")
        params = {"$filter": self.filter, "$orderby": self.order_by, "$select": self.select}
        with self.client(ctx) as client:
            ctx.logger.info(
                "listing VMs of Prism Central %s%s",
                client.display_url,
                f" where {self.filter}" if self.filter else "",
            )
            if self.page is not None:
                vms, total = client.page(VMS, page=self.page, limit=self.limit or 50, **params)
            else:
                vms = client.list_all(VMS, limit=self.limit or MAX_LIMIT, **params)
                total = len(vms)
        self._vms = vms
        rows = [vm_view(vm) for vm in vms]
        ctx.logger.info("%d VM(s) returned", len(rows))
        ctx.metric("vms", len(rows))
        return self.Out(total=total, **fetched(ctx, rows, self.fetch_type, "vms"))

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        vms = [vm for vm in self._vms if vm.get("extId")]
        return [AssetBundle(outputs=[vm_asset(vm, self.prism()) for vm in vms])] if vms else []


class CreateVm(AsyncTask, type=AHV + "CreateVm"):
    """Create an AHV VM from a full VM definition, optionally power it on and wait for its IP address."""

    vm: Dynamic[dict[str, Any]]
    """VM definition: name, description, cluster.extId and resources (numSockets, numCoresPerSocket, numThreadsPerCore, memorySizeBytes, disks, nics); other VMM v4 VM properties pass through."""
    power_on: Dynamic[bool] = False
    """Power the VM on once it is created (this waits for the creation, whatever waitForCompletion says)."""
    wait: Dynamic[bool] = False
    """Wait until the VM reports an IP address (with powerOn; bounded by the task's timeout)."""

    class Out(VmOutput):
        vm_ext_id: str | None = None
        """extId (UUID) of the new VM (known once the creation task completed)."""
        ip: str | None = None
        """First IP address of the VM, when known."""

    def run(self, ctx: RunContext) -> CreateVm.Out:
        payload = vm_payload(self.vm)
        if not payload.get("name"):
            raise TaskError("vm.name is required")
        must_wait = self.wait_for_completion or self.power_on or self.wait
        with self.client(ctx) as client:
            tasks = PrismTasks(self, ctx, client)
            cluster = (payload.get("cluster") or {}).get("extId")
            ctx.logger.info("creating VM '%s' on cluster %s", payload["name"], cluster or "(Prism's choice)")
            task_id, task = tasks.run(
                f"creation of VM '{payload['name']}'",
                lambda: client.task_ref(client.call("POST", VMS, body=payload), "POST vms"),
                wait=must_wait,
            )
            if task is None:
                return self.Out(task_ext_id=task_id, task_status="RUNNING")
            created = affected(task, "vm")
            if not created:
                raise TaskError(f"Prism task {task_id} succeeded but names no created VM (entitiesAffected)")
            vm, etag = client.get_vm(created[0])
            if self.power_on and vm.get("powerState") != "ON":
                ctx.logger.info("powering on VM %s", vm["extId"])
                tasks.run(
                    f"power-on of VM '{vm.get('name')}'",
                    lambda: client.vm_action(vm["extId"], "power-on", etag),
                    wait=True,
                )
                vm, _ = client.get_vm(vm["extId"])
            if self.wait:
                vm = self._wait_for_ip(ctx, client, vm)
        self._assets = [AssetBundle(outputs=[vm_asset(vm, self.prism())])]
        ips = vm_ips(vm)
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status"),
            vm_ext_id=vm["extId"],
            power_state=vm.get("powerState"),
            vm=vm_view(vm),
            ip=ips[0] if ips else None,
        )

    def _wait_for_ip(self, ctx: RunContext, client: PrismClient, vm: dict[str, Any]) -> dict[str, Any]:
        limit = self.wait_limit()
        deadline = time.monotonic() + limit.total_seconds()
        while not vm_ips(vm):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TaskError(
                    f"VM {vm['extId']} ('{vm.get('name')}') reported no IP address within {duration(limit)}"
                )
            ctx.sleep(min(self.poll_interval.total_seconds(), remaining))
            vm, _ = client.get_vm(vm["extId"])
        ctx.logger.info("VM %s has IP address %s", vm["extId"], vm_ips(vm)[0])
        return vm


class UpdateVm(AsyncTask, type=AHV + "UpdateVm"):
    """Change an AHV VM's configuration: the given properties are merged into the current VM (If-Match guarded)."""

    vm_ext_id: Dynamic[str]
    """extId of the VM to update."""
    vm: Dynamic[dict[str, Any]]
    """Properties to change: name, description, resources (numSockets, numCoresPerSocket, memorySizeBytes...) or other VMM v4 VM properties."""

    class Out(VmOutput):
        pass

    def run(self, ctx: RunContext) -> UpdateVm.Out:
        changes = vm_payload(self.vm)
        if not changes:
            raise TaskError("vm must name at least one property to change")
        with self.client(ctx) as client:
            tasks = PrismTasks(self, ctx, client)
            for attempt in range(1, 4):
                current, etag = client.get_vm(self.vm_ext_id)
                desired = {**current, **changes}
                ctx.logger.info(
                    "updating VM %s ('%s'): %s",
                    self.vm_ext_id,
                    current.get("name"),
                    ", ".join(sorted(changes)),
                )
                try:
                    task_id = tasks.submit(
                        f"update of VM '{current.get('name')}'",
                        lambda d=desired, e=etag: client.task_ref(
                            client.call("PUT", f"{VMS}/{q(self.vm_ext_id)}", body=d, if_match=e), "PUT vm"
                        ),
                    )
                    break
                except PrismError as exc:
                    if exc.status != 412 or attempt == 3:
                        raise
                    ctx.logger.warning(
                        "VM %s changed since it was read (HTTP 412); reading it again", self.vm_ext_id
                    )
            task = (
                tasks.wait(task_id, f"update of VM '{current.get('name')}'")
                if self.wait_for_completion
                else None
            )
            vm, _ = client.get_vm(self.vm_ext_id)
        self._assets = [AssetBundle(outputs=[vm_asset(vm, self.prism())])]
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status") if task else "RUNNING",
            vm_ext_id=self.vm_ext_id,
            power_state=vm.get("powerState"),
            vm=vm_view(vm),
        )


class _PowerTask(AsyncTask):
    """A power operation on one VM."""

    vm_ext_id: Dynamic[str]
    """extId of the VM."""

    class Out(VmOutput):
        pass

    def action(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def skip_when(self) -> str | None:
        """A power state in which there is nothing to do."""
        return None

    def run(self, ctx: RunContext) -> Any:
        action = self.action()
        with self.client(ctx) as client:
            vm, etag = client.get_vm(self.vm_ext_id)
            name = vm.get("name")
            if self.skip_when() is not None and vm.get("powerState") == self.skip_when():
                ctx.logger.info(
                    "VM %s ('%s') is already %s; nothing to do", self.vm_ext_id, name, vm.get("powerState")
                )
                self._assets = [AssetBundle(outputs=[vm_asset(vm, self.prism())])]
                return self.Out(vm_ext_id=self.vm_ext_id, power_state=vm.get("powerState"), vm=vm_view(vm))
            ctx.logger.info(
                "%s of VM %s ('%s'), currently %s", action, self.vm_ext_id, name, vm.get("powerState")
            )
            task_id, task = PrismTasks(self, ctx, client).run(
                f"{action} of VM '{name}'", lambda: client.vm_action(self.vm_ext_id, action, etag)
            )
            vm, _ = client.get_vm(self.vm_ext_id)
        self._assets = [AssetBundle(outputs=[vm_asset(vm, self.prism())])]
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status") if task else "RUNNING",
            vm_ext_id=self.vm_ext_id,
            power_state=vm.get("powerState"),
            vm=vm_view(vm),
        )


class StartVm(_PowerTask, type=AHV + "StartVm"):
    """Power on an AHV VM (nothing to do when it is already on)."""

    def action(self) -> str:
        return "power-on"

    def skip_when(self) -> str | None:
        return "ON"


class StopVm(_PowerTask, type=AHV + "StopVm"):
    """Stop an AHV VM: a forced power-off, or a graceful shutdown through ACPI or the Nutanix Guest Tools."""

    gracefully: Dynamic[bool] = False
    """Shut the guest OS down cleanly instead of cutting the power."""
    guest: Dynamic[bool] = False
    """With gracefully, ask the Nutanix Guest Tools (guest-shutdown) instead of ACPI (shutdown)."""

    def action(self) -> str:
        if not self.gracefully:
            return "power-off"
        return "guest-shutdown" if self.guest else "shutdown"

    def skip_when(self) -> str | None:
        return "OFF"


class RebootVm(_PowerTask, type=AHV + "RebootVm"):
    """Restart an AHV VM: a forced power cycle, or a graceful reboot through ACPI or the Nutanix Guest Tools."""

    gracefully: Dynamic[bool] = False
    """Reboot the guest OS cleanly instead of cycling the power."""
    guest: Dynamic[bool] = False
    """With gracefully, ask the Nutanix Guest Tools (guest-reboot) instead of ACPI (reboot)."""

    def action(self) -> str:
        if not self.gracefully:
            return "power-cycle"
        return "guest-reboot" if self.guest else "reboot"


class ResetVm(_PowerTask, type=AHV + "ResetVm"):
    """Reset an AHV VM at once (a hard reboot, no guest involvement)."""

    def action(self) -> str:
        return "reset"


class DeleteVm(AsyncTask, type=AHV + "DeleteVm"):
    """Delete an AHV VM and its disks."""

    vm_ext_id: Dynamic[str]
    """extId of the VM to delete."""

    class Out(VmOutput):
        pass

    def run(self, ctx: RunContext) -> DeleteVm.Out:
        with self.client(ctx) as client:
            vm, etag = client.get_vm(self.vm_ext_id)
            ctx.logger.info("deleting VM %s ('%s')", self.vm_ext_id, vm.get("name"))
            task_id, task = PrismTasks(self, ctx, client).run(
                f"deletion of VM '{vm.get('name')}'",
                lambda: client.task_ref(
                    client.call("DELETE", f"{VMS}/{q(self.vm_ext_id)}", if_match=etag), "DELETE vm"
                ),
            )
        self._assets = [AssetBundle(outputs=[vm_asset(vm, self.prism(), state="DELETED")])] if task else []
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status") if task else "RUNNING",
            vm_ext_id=self.vm_ext_id,
        )


class CloneVm(AsyncTask, type=AHV + "CloneVm"):
    """Clone an AHV VM, optionally overriding the clone's name, CPU, memory, NICs, boot or guest customization."""

    vm_ext_id: Dynamic[str]
    """extId of the VM to clone."""
    clone_overrides: Dynamic[dict[str, Any]] = Field(default_factory=dict)
    """Overrides of the clone: name, numSockets, numCoresPerSocket, numThreadsPerCore, memorySizeBytes, nics, bootConfig, guestCustomization."""

    class Out(VmOutput):
        vm_ext_id: str | None = None
        """extId of the clone (known once the clone task completed)."""
        source_vm_ext_id: str
        """extId of the VM that was cloned."""

    def run(self, ctx: RunContext) -> CloneVm.Out:
        with self.client(ctx) as client:
            source, etag = client.get_vm(self.vm_ext_id)
            ctx.logger.info(
                "cloning VM %s ('%s') as '%s'",
                self.vm_ext_id,
                source.get("name"),
                self.clone_overrides.get("name") or "(default name)",
            )
            task_id, task = PrismTasks(self, ctx, client).run(
                f"clone of VM '{source.get('name')}'",
                lambda: client.vm_action(self.vm_ext_id, "clone", etag, self.clone_overrides),
            )
            if task is None:
                return self.Out(task_ext_id=task_id, task_status="RUNNING", source_vm_ext_id=self.vm_ext_id)
            clones = [e for e in affected(task, "vm") if e != self.vm_ext_id]
            if not clones:
                raise TaskError(f"Prism task {task_id} succeeded but names no cloned VM (entitiesAffected)")
            clone, _ = client.get_vm(clones[0])
        prism = self.prism()
        self._assets = [AssetBundle(inputs=[vm_asset(source, prism)], outputs=[vm_asset(clone, prism)])]
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status"),
            vm_ext_id=clone["extId"],
            source_vm_ext_id=self.vm_ext_id,
            power_state=clone.get("powerState"),
            vm=vm_view(clone),
        )
