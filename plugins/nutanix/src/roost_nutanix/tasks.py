"""Nutanix task types: AHV VMs, templates and snapshots on Prism Central (v4 APIs).

Type ids and property names follow Kestra's Nutanix plugin
(``io.kestra.plugin.ee.nutanix.ahv.*`` and ``io.kestra.plugin.ee.nutanix.snapshot.*``),
which drives the VMM v4 and data protection v4 APIs. Every change is an
asynchronous Prism task: the task returns its ``taskExtId`` and, with
``waitForCompletion`` (the default), polls it until SUCCEEDED or FAILED with
``ctx.sleep``, bounded by the task's ``timeout``. A kill (or the timeout) while
waiting cancels the Prism task when Prism says it is cancelable.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, PrivateAttr
from roost import Asset, AssetBundle, Dynamic, Output, RunContext, Task, TaskError

from roost_nutanix.client import KILL_RETRY, MAX_LIMIT, VMM, PrismClient, PrismError, base_url, q

AHV = "io.kestra.plugin.ee.nutanix.ahv."
SNAPSHOT = "io.kestra.plugin.ee.nutanix.snapshot."
VM_ASSET = "io.kestra.plugin.ee.assets.VM"
EXTERNAL_ASSET = "io.kestra.core.models.assets.External"
DEFAULT_WAIT = timedelta(minutes=30)
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
VMS = f"{VMM}/ahv/config/vms"
TEMPLATES = f"{VMM}/content/templates"


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


FetchType = Annotated[Literal["FETCH", "FETCH_ONE", "STORE", "NONE"], BeforeValidator(_upper)]
Consistency = Annotated[Literal["CRASH_CONSISTENT", "APPLICATION_CONSISTENT"], BeforeValidator(_upper)]


# -- VM shapes ----------------------------------------------------------------------------------------
RESOURCE_KEYS = ("numSockets", "numCoresPerSocket", "numThreadsPerCore", "memorySizeBytes", "disks", "nics")


def vm_payload(vm: dict[str, Any]) -> dict[str, Any]:
    """Kestra's VM definition (``resources`` grouped) as a VMM v4 VM (resources at the top level)."""
    payload = {k: v for k, v in vm.items() if k not in ("resources", "ip", "extId")}
    resources = vm.get("resources") or {}
    if not isinstance(resources, dict):
        raise TaskError(
            "vm.resources must be an object (numSockets, numCoresPerSocket, memorySizeBytes, disks, nics...)"
        )
    payload.update(resources)
    return payload


def vm_ips(vm: dict[str, Any]) -> list[str]:
    """IP addresses of a v4 VM: configured ones first, then learned ones (v4.0 and v4.1 NIC shapes)."""
    ips: list[str] = []
    for nic in vm.get("nics") or []:
        info = (nic or {}).get("networkInfo") or (nic or {}).get("nicNetworkInfo") or {}
        cfg = ((info.get("ipv4Config") or {}).get("ipAddress") or {}).get("value")
        if cfg:
            ips.append(cfg)
        for learned in (info.get("ipv4Info") or {}).get("learnedIpAddresses") or []:
            value = (learned or {}).get("value")
            if value and value not in ips:
                ips.append(value)
    return ips


def vm_view(vm: dict[str, Any]) -> dict[str, Any]:
    """A v4 VM as Kestra's VM definition (``resources`` grouped), plus its power state."""
    ips = vm_ips(vm)
    view = {
        "extId": vm.get("extId"),
        "name": vm.get("name"),
        "description": vm.get("description"),
        "cluster": {"extId": (vm.get("cluster") or {}).get("extId")},
        "ip": ips[0] if ips else None,
        "powerState": vm.get("powerState"),
        "resources": {k: vm.get(k) for k in RESOURCE_KEYS if vm.get(k) is not None},
    }
    return {k: v for k, v in view.items() if v is not None}


def vcpus(vm: dict[str, Any]) -> int | None:
    sockets, cores = vm.get("numSockets"), vm.get("numCoresPerSocket")
    if not isinstance(sockets, int):
        return None
    return sockets * (cores if isinstance(cores, int) else 1) * (vm.get("numThreadsPerCore") or 1)


def vm_asset(vm: dict[str, Any], prism: str, **extra: Any) -> Asset:
    metadata = {
        "system": "nutanix",
        "prismCentral": prism,
        "uuid": vm.get("extId"),
        "name": vm.get("name"),
        "powerState": vm.get("powerState"),
        "cluster": (vm.get("cluster") or {}).get("extId"),
        "host": (vm.get("host") or {}).get("extId"),
        "vcpus": vcpus(vm),
        "numSockets": vm.get("numSockets"),
        "numCoresPerSocket": vm.get("numCoresPerSocket"),
        "memoryBytes": vm.get("memorySizeBytes"),
        "ipAddresses": vm_ips(vm),
        **extra,
    }
    return Asset(
        id=vm["extId"],
        type=VM_ASSET,
        display_name=vm.get("name") or vm["extId"],
        metadata={k: v for k, v in metadata.items() if v not in (None, [], "")},
    )


def snapshot_asset(ext_id: str, prism: str, **metadata: Any) -> Asset:
    meta = {"system": "nutanix", "kind": "recovery-point", "prismCentral": prism, **metadata}
    return Asset(
        id=ext_id,
        type=EXTERNAL_ASSET,
        display_name=metadata.get("name") or ext_id,
        metadata={k: v for k, v in meta.items() if v not in (None, [], "")},
    )


def template_asset(ext_id: str, prism: str, **metadata: Any) -> Asset:
    meta = {"system": "nutanix", "kind": "vm-template", "prismCentral": prism, **metadata}
    return Asset(
        id=ext_id,
        type=EXTERNAL_ASSET,
        display_name=metadata.get("name") or ext_id,
        metadata={k: v for k, v in meta.items() if v not in (None, [], "")},
    )


# -- outputs --------------------------------------------------------------------------------------------
class NutanixOutput(Output):
    """Base of this plugin's outputs: attribute docstrings become the output descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


class TaskOutput(NutanixOutput):
    """An asynchronous Prism operation."""

    timestamp: int = Field(default_factory=_now_ms)
    """When the task produced these outputs, in milliseconds since the epoch."""

    task_ext_id: str | None = None
    """extId of the Prism task that carried the operation (none when nothing had to be done)."""
    task_status: str | None = None
    """Final status of the Prism task (SUCCEEDED), or its status when the task did not wait."""


class VmOutput(TaskOutput):
    """An operation on one VM."""

    vm_ext_id: str
    """extId (UUID) of the VM."""
    power_state: str | None = None
    """Power state of the VM after the operation (ON, OFF, PAUSED...)."""
    vm: dict[str, Any] | None = None
    """The VM after the operation (extId, name, description, cluster, ip, powerState, resources)."""


# -- base ------------------------------------------------------------------------------------------------
class NutanixTask(Task):
    """Connection properties shared by every Nutanix task."""

    host: Dynamic[str]
    """Prism Central host name or address (a full https://host:port URL is accepted too)."""
    port: Dynamic[int] = 9440
    """Prism Central API port."""
    scheme: Dynamic[str] = "https"
    """HTTP scheme of the Prism Central API."""
    username: Dynamic[str] | None = None
    """Prism Central user (HTTP basic authentication); pass it with {{ secret(...) }}."""
    password: Dynamic[str] | None = None
    """Password of the user; pass it with {{ secret(...) }}. Never logged."""
    token: Dynamic[str] | None = None
    """Bearer token, used instead of username and password. Never logged."""
    api_key: Dynamic[str] | None = None
    """Prism Central API key (X-ntnx-api-key header), used instead of username and password. Never logged."""
    verify_ssl: Dynamic[bool] = True
    """Verify Prism Central's TLS certificate. Turn off only for trusted test environments."""
    request_timeout: Dynamic[timedelta] = timedelta(seconds=30)
    """Timeout of each HTTP call."""

    def client(self, ctx: RunContext | None = None) -> PrismClient:
        """The client of a task run; without ``ctx``, the client of a kill callback (no run context,
        a short timeout and one short retry, so that the kill is never held up for long)."""
        return PrismClient(
            self.host,
            port=self.port,
            scheme=self.scheme,
            username=self.username,
            password=self.password,
            token=self.token,
            api_key=self.api_key,
            verify_ssl=self.verify_ssl,
            timeout=self.request_timeout.total_seconds() if ctx is not None else 10.0,
            retry=None if ctx is not None else KILL_RETRY,
            ctx=ctx,
        )

    def prism(self) -> str:
        """The Prism Central address, for asset metadata."""
        try:
            return base_url(self.host, self.port, self.scheme)
        except TaskError:
            return self.host


class AsyncTask(NutanixTask):
    """A task whose operation runs as a Prism task."""

    wait_for_completion: Dynamic[bool] = True
    """Poll the Prism task until it SUCCEEDED (or FAILED); when false, return its taskExtId at once."""
    poll_interval: Dynamic[timedelta] = timedelta(seconds=2)
    """Time between two polls of the Prism task."""

    _assets: list[AssetBundle] = PrivateAttr(default_factory=list)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return list(self._assets)

    def wait_limit(self) -> timedelta:
        return self.timeout or DEFAULT_WAIT


class _Tasks:
    """Submits Prism operations, polls their tasks, cancels them on kill or timeout.

    The task being waited on is cancelled once, by whichever comes first: a kill (the
    engine's kill thread, also on the task's timeout) or the wait's own deadline. A wait
    left because of a kill keeps its task so the kill callback, which may run after the
    waiting thread woke up, still cancels it.
    """

    def __init__(self, task: AsyncTask, ctx: RunContext, client: PrismClient) -> None:
        self.task = task
        self.ctx = ctx
        self.client = client
        self._current: str | None = None
        self._lock = threading.Lock()
        ctx.on_kill(self._on_kill)

    def submit(self, what: str, call: Callable[[], str]) -> str:
        ext_id = call()
        self.ctx.logger.info("Prism Central accepted %s as task %s", what, ext_id)
        if self.ctx.killed():
            self._cancel(self.client, ext_id, "execution killed")
        return ext_id

    def run(
        self, what: str, call: Callable[[], str], *, wait: bool | None = None
    ) -> tuple[str, dict[str, Any] | None]:
        """Submit, then wait unless told not to; returns the task id and the final task."""
        ext_id = self.submit(what, call)
        if not (self.task.wait_for_completion if wait is None else wait):
            return ext_id, None
        return ext_id, self.wait(ext_id, what)

    def wait(self, ext_id: str, what: str) -> dict[str, Any]:
        limit = self.task.wait_limit()
        poll = self.task.poll_interval.total_seconds()
        deadline = time.monotonic() + limit.total_seconds()
        last: tuple[Any, Any] | None = None
        with self._lock:
            self._current = ext_id
        try:
            while True:
                task = self.client.get_task(ext_id)
                status, progress = task.get("status"), task.get("progressPercentage")
                if (status, progress) != last:
                    self.ctx.logger.info(
                        "task %s (%s): %s %s%%",
                        ext_id,
                        what,
                        status,
                        progress if progress is not None else "?",
                    )
                    last = (status, progress)
                if status == "SUCCEEDED":
                    return task
                if status in ("FAILED", "CANCELED", "SKIPPED"):
                    raise TaskError(f"{what} failed: Prism task {ext_id} ended {status}: {task_errors(task)}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    cancelled = self._claim() is not None and self._cancel(self.client, ext_id, "timeout")
                    raise TaskError(
                        f"{what} did not complete within {_duration(limit)}: Prism task {ext_id} is still {status} "
                        f"at {progress if progress is not None else '?'}%"
                        + ("; it was asked to cancel" if cancelled else "; it could not be cancelled")
                    )
                self.ctx.sleep(min(poll, remaining))
        finally:
            if not self.ctx.killed():  # after a kill, the kill callback claims the task and cancels it
                self._claim()

    def _claim(self) -> str | None:
        """End the wait on the current Prism task; its id for the one caller that ended it."""
        with self._lock:
            ext_id, self._current = self._current, None
            return ext_id

    def _on_kill(self) -> None:
        ext_id = self._claim()
        if ext_id is None:
            return
        try:
            with self.task.client() as client:
                self._cancel(client, ext_id, "execution killed")
        except Exception as exc:  # the kill goes on even when Prism cannot be told
            self.ctx.logger.error("execution killed, but cancelling Prism task %s failed: %s", ext_id, exc)

    def _cancel(self, client: PrismClient, ext_id: str, why: str) -> bool:
        try:
            task = client.get_task(ext_id)
            if task.get("status") in TERMINAL:
                return False
            if task.get("isCancelable") is False:
                self.ctx.logger.warning(
                    "%s: Prism task %s cannot be cancelled (isCancelable is false)", why, ext_id
                )
                return False
            client.cancel_task(ext_id)
        except PrismError as exc:
            self.ctx.logger.error("%s: cancelling Prism task %s failed: %s", why, ext_id, exc)
            return False
        self.ctx.logger.warning("%s: asked Prism Central to cancel task %s", why, ext_id)
        return True


def task_errors(task: dict[str, Any]) -> str:
    messages = []
    for err in task.get("errorMessages") or []:
        if isinstance(err, dict) and err.get("message"):
            messages.append(f"{err['message']} [{err['code']}]" if err.get("code") else err["message"])
    if task.get("legacyErrorMessage"):
        messages.append(str(task["legacyErrorMessage"]))
    return "; ".join(messages) or "no error message"


def affected(task: dict[str, Any] | None, kind: str) -> list[str]:
    """extIds of the entities of a kind ('vm', 'template', 'recovery-point') a task touched."""
    out = []
    for entity in (task or {}).get("entitiesAffected") or []:
        rel = str((entity or {}).get("rel") or "")
        if rel.split(":")[-1] == kind and entity.get("extId"):
            out.append(entity["extId"])
    return out


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


def _fetch(ctx: RunContext, rows: list[dict[str, Any]], fetch_type: str, name: str) -> dict[str, Any]:
    if fetch_type == "FETCH_ONE":
        return {"row": rows[0] if rows else None, "size": len(rows)}
    if fetch_type == "STORE":
        path = ctx.working_dir / f"{name}.json"
        path.write_text(json.dumps(rows, indent=None))
        return {"uri": ctx.put_file(path), "size": len(rows)}
    if fetch_type == "NONE":
        return {"size": len(rows)}
    return {"rows": rows, "size": len(rows)}


class ListOutput(NutanixOutput):
    """Rows as fetchType asks."""

    timestamp: int = Field(default_factory=_now_ms)
    """When the list was fetched, in milliseconds since the epoch."""

    rows: list[dict[str, Any]] | None = None
    """Every row (fetchType FETCH)."""
    row: dict[str, Any] | None = None
    """The first row (fetchType FETCH_ONE)."""
    uri: str | None = None
    """kestra:// URI of a JSON file holding the rows (fetchType STORE)."""
    size: int
    """Number of rows."""
    total: int | None = None
    """Number of matching objects Prism Central reports, across pages."""


# -- VM tasks ------------------------------------------------------------------------------------------
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
        return self.Out(total=total, **_fetch(ctx, rows, self.fetch_type, "vms"))

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
            tasks = _Tasks(self, ctx, client)
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
                    f"VM {vm['extId']} ('{vm.get('name')}') reported no IP address within {_duration(limit)}"
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
            tasks = _Tasks(self, ctx, client)
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
            task_id, task = _Tasks(self, ctx, client).run(
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
            task_id, task = _Tasks(self, ctx, client).run(
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
            task_id, task = _Tasks(self, ctx, client).run(
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


# -- templates ------------------------------------------------------------------------------------------
class TemplateOutput(TaskOutput):
    """A template operation."""

    template_ext_id: str | None = None
    """extId of the template (known once the task completed)."""
    template_version_ext_id: str | None = None
    """extId of the template's active version."""


class _TemplateTask(AsyncTask):
    """Creates a template from a source (a VM or a template version)."""

    template_name: Dynamic[str]
    """Name of the new template."""
    template_description: Dynamic[str] | None = None
    """Description of the new template."""
    version_name: Dynamic[str] | None = None
    """Name of the template's first version."""
    version_description: Dynamic[str] | None = None
    """Description of the template's first version."""
    is_active_version: Dynamic[bool] | None = None
    """Make the version the active one (Prism's default is true)."""
    is_gc_override_enabled: Dynamic[bool] | None = None
    """Allow guest customization to be overridden when VMs are deployed from the template."""

    class Out(TemplateOutput):
        pass

    def _create(
        self, ctx: RunContext, client: PrismClient, source: dict[str, Any], what: str
    ) -> tuple[str, Any, Any]:
        spec = {
            "versionName": self.version_name,
            "versionDescription": self.version_description,
            "isActiveVersion": self.is_active_version,
            "isGcOverrideEnabled": self.is_gc_override_enabled,
            "versionSource": source,
        }
        body = {
            "templateName": self.template_name,
            "templateDescription": self.template_description,
            "templateVersionSpec": {k: v for k, v in spec.items() if v is not None},
        }
        body = {k: v for k, v in body.items() if v is not None}
        task_id, task = _Tasks(self, ctx, client).run(
            what, lambda: client.task_ref(client.call("POST", TEMPLATES, body=body), "POST templates")
        )
        template = None
        if task is not None:
            ids = affected(task, "template")
            if not ids:
                raise TaskError(f"Prism task {task_id} succeeded but names no template (entitiesAffected)")
            template, _ = client.get(f"{TEMPLATES}/{q(ids[0])}", "GET template")
        return task_id, task, template

    def _out(self, task_id: str, task: Any, template: Any) -> Any:
        if template is None:
            return self.Out(task_ext_id=task_id, task_status="RUNNING")
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status"),
            template_ext_id=template.get("extId"),
            template_version_ext_id=(template.get("templateVersionSpec") or {}).get("extId"),
        )


class ConvertVmToTemplate(_TemplateTask, type=AHV + "ConvertVmToTemplate"):
    """Create a template from an AHV VM (its configuration and disks); the VM itself stays."""

    vm_ext_id: Dynamic[str]
    """extId of the source VM."""

    def run(self, ctx: RunContext) -> Any:
        with self.client(ctx) as client:
            vm, _ = client.get_vm(self.vm_ext_id)
            ctx.logger.info(
                "creating template '%s' from VM %s ('%s')", self.template_name, self.vm_ext_id, vm.get("name")
            )
            source = {"$objectType": "vmm.v4.content.TemplateVmReference", "extId": self.vm_ext_id}
            task_id, task, template = self._create(
                ctx, client, source, f"template '{self.template_name}' from VM"
            )
        if template is not None:
            prism = self.prism()
            self._assets = [
                AssetBundle(
                    inputs=[vm_asset(vm, prism)],
                    outputs=[
                        template_asset(
                            template["extId"], prism, name=self.template_name, sourceVm=self.vm_ext_id
                        )
                    ],
                )
            ]
        return self._out(task_id, task, template)


class CloneTemplate(_TemplateTask, type=AHV + "CloneTemplate"):
    """Create a new template from a version of an existing one, optionally overriding its VM configuration."""

    template_version_ext_id: Dynamic[str]
    """extId of the template version to start from."""
    vm_config_override: Dynamic[dict[str, Any]] | None = None
    """VM configuration overrides: name, numSockets, numCoresPerSocket, numThreadsPerCore, memorySizeBytes, nics, guestCustomization."""

    def run(self, ctx: RunContext) -> Any:
        source: dict[str, Any] = {
            "$objectType": "vmm.v4.content.TemplateVersionReference",
            "versionId": self.template_version_ext_id,
        }
        if self.vm_config_override:
            source["overrideVmConfig"] = self.vm_config_override
        with self.client(ctx) as client:
            ctx.logger.info(
                "creating template '%s' from template version %s",
                self.template_name,
                self.template_version_ext_id,
            )
            task_id, task, template = self._create(
                ctx, client, source, f"template '{self.template_name}' from a version"
            )
        if template is not None:
            prism = self.prism()
            self._assets = [
                AssetBundle(
                    inputs=[template_asset(self.template_version_ext_id, prism, kind="vm-template-version")],
                    outputs=[
                        template_asset(
                            template["extId"],
                            prism,
                            name=self.template_name,
                            sourceVersion=self.template_version_ext_id,
                        )
                    ],
                )
            ]
        return self._out(task_id, task, template)


class ConvertTemplateToVm(AsyncTask, type=AHV + "ConvertTemplateToVm"):
    """Deploy AHV VMs from a template version (the template stays)."""

    template_ext_id: Dynamic[str]
    """extId of the template."""
    template_version_ext_id: Dynamic[str] | None = None
    """extId of the version to deploy; the template's active version when unset."""
    cluster_ext_id: Dynamic[str]
    """extId of the cluster the VMs are created on."""
    number_of_vms: Dynamic[int] = 1
    """Number of VMs to deploy."""
    vm_name: Dynamic[str] | None = None
    """Name of the (first) VM; further VMs get -2, -3... suffixes."""
    vm_config_override: Dynamic[dict[str, Any]] | None = None
    """Configuration overrides of every VM: numSockets, numCoresPerSocket, memorySizeBytes, nics, guestCustomization..."""

    class Out(TaskOutput):
        vm_ext_ids: list[str] = Field(default_factory=list)
        """extIds of the deployed VMs."""
        vm_ext_id: str | None = None
        """extId of the first deployed VM."""

    def run(self, ctx: RunContext) -> ConvertTemplateToVm.Out:
        if self.number_of_vms < 1:
            raise TaskError(f"numberOfVms must be 1 or more (got {self.number_of_vms})")
        with self.client(ctx) as client:
            template, _ = client.get(f"{TEMPLATES}/{q(self.template_ext_id)}", "GET template")
            version = self.template_version_ext_id or (template.get("templateVersionSpec") or {}).get("extId")
            overrides: dict[str, Any] = {}
            for i in range(self.number_of_vms):
                override = dict(self.vm_config_override or {})
                if self.vm_name:
                    override["name"] = self.vm_name if i == 0 else f"{self.vm_name}-{i + 1}"
                if override:
                    overrides[str(i)] = override
            body: dict[str, Any] = {
                "numberOfVms": self.number_of_vms,
                "clusterReference": self.cluster_ext_id,
            }
            if version:
                body["versionId"] = version
            if overrides:
                body["overrideVmConfigMap"] = overrides
            ctx.logger.info(
                "deploying %d VM(s) from template %s ('%s') on cluster %s",
                self.number_of_vms,
                self.template_ext_id,
                template.get("templateName"),
                self.cluster_ext_id,
            )
            path = f"{TEMPLATES}/{q(self.template_ext_id)}/$actions/deploy"
            task_id, task = _Tasks(self, ctx, client).run(
                f"deployment of template '{template.get('templateName')}'",
                lambda: client.task_ref(client.call("POST", path, body=body), "POST deploy"),
            )
            if task is None:
                return self.Out(task_ext_id=task_id, task_status="RUNNING")
            vm_ids = affected(task, "vm")
            vms = [client.get_vm(ext_id)[0] for ext_id in vm_ids]
        prism = self.prism()
        self._assets = [
            AssetBundle(
                inputs=[template_asset(self.template_ext_id, prism, name=template.get("templateName"))],
                outputs=[vm_asset(vm, prism) for vm in vms],
            )
        ]
        return self.Out(
            task_ext_id=task_id,
            task_status=task.get("status"),
            vm_ext_ids=vm_ids,
            vm_ext_id=vm_ids[0] if vm_ids else None,
        )


# -- snapshots (recovery points) ------------------------------------------------------------------------
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
            task_id, task = _Tasks(self, ctx, client).run(
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
        return self.Out(total=total, **_fetch(ctx, rps, self.fetch_type, "snapshots"))

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
            task_id, task = _Tasks(self, ctx, client).run(
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
            task_id, task = _Tasks(self, ctx, client).run(
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


TASKS = (
    ListVms,
    CreateVm,
    UpdateVm,
    StartVm,
    StopVm,
    RebootVm,
    ResetVm,
    DeleteVm,
    CloneVm,
    CloneTemplate,
    ConvertVmToTemplate,
    ConvertTemplateToVm,
    CreateVmSnapshot,
    ListVmSnapshots,
    RestoreVmSnapshot,
    DeleteVmSnapshot,
)
