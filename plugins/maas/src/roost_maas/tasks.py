"""MAAS task types: list, enlist, commission, deploy and power-control machines.

Type ids follow Kestra's MAAS plugin (``io.kestra.plugin.ee.canonical.maas.*``)
and so do the property names (``url``, ``apiKey``, ``systemId``, ``waitFor...``,
``timeout``...). Waits follow the machine's MAAS status
(New -> Commissioning -> Testing -> Ready -> Allocated -> Deploying -> Deployed),
polling with ``ctx.sleep`` so a kill interrupts them at once; a kill while
waiting aborts the machine's current MAAS operation (``op=abort``).
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field, PrivateAttr
from roost import Asset, AssetBundle, Dynamic, Output, RunContext, Task, TaskError

from roost_maas.client import KILL_RETRY, NODE_STATUS_NAMES, MaasApiError, MaasClient, public_url

VM_ASSET = "io.kestra.plugin.ee.assets.VM"
PREFIX = "io.kestra.plugin.ee.canonical.maas."

NEW, COMMISSIONING, FAILED_COMMISSIONING, READY = 0, 1, 2, 4
DEPLOYED, BROKEN, DEPLOYING, ALLOCATED, FAILED_DEPLOYMENT = 6, 8, 9, 10, 11
TESTING, FAILED_TESTING = 21, 22


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


PowerAction = Annotated[Literal["ON", "OFF", "CYCLE", "QUERY"], BeforeValidator(_upper)]
PowerState = Annotated[Literal["on", "off"], BeforeValidator(_lower)]
StopMode = Annotated[Literal["soft", "hard"], BeforeValidator(_lower)]


# -- outputs ----------------------------------------------------------------------------------------
class MaasOutput(Output):
    """Base of this plugin's outputs: attribute docstrings become the output descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class MachineOutput(MaasOutput):
    """The state of one MAAS machine after the task."""

    system_id: str
    """MAAS system_id of the machine."""
    hostname: str | None = None
    """Hostname of the machine."""
    fqdn: str | None = None
    """Fully qualified domain name."""
    status: str | None = None
    """MAAS status name (New, Commissioning, Ready, Deploying, Deployed, Failed deployment...)."""
    status_code: int | None = None
    """MAAS numeric status."""
    status_message: str | None = None
    """Last status message MAAS recorded for the machine."""
    power_state: str | None = None
    """Power state as MAAS knows it: on, off, unknown or error."""
    ip_addresses: list[str] = Field(default_factory=list)
    """IP addresses assigned to the machine."""
    architecture: str | None = None
    """Architecture, such as amd64/generic."""
    zone: str | None = None
    """Physical zone."""
    pool: str | None = None
    """Resource pool."""
    osystem: str | None = None
    """Deployed (or selected) operating system."""
    distro_series: str | None = None
    """Deployed (or selected) OS release."""
    tag_names: list[str] = Field(default_factory=list)
    """Tags of the machine."""


def _name(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("name")
    return value if isinstance(value, str) else None


def _status_name(machine: dict[str, Any]) -> str | None:
    name = machine.get("status_name")
    if isinstance(name, str) and name:
        return name
    code = machine.get("status")
    return NODE_STATUS_NAMES.get(code) if isinstance(code, int) else None


def machine_fields(machine: dict[str, Any]) -> dict[str, Any]:
    """The output fields of a raw MAAS machine."""
    code = machine.get("status")
    return {
        "system_id": machine["system_id"],
        "hostname": machine.get("hostname"),
        "fqdn": machine.get("fqdn"),
        "status": _status_name(machine),
        "status_code": code if isinstance(code, int) else None,
        "status_message": machine.get("status_message") or None,
        "power_state": machine.get("power_state"),
        "ip_addresses": [str(ip) for ip in machine.get("ip_addresses") or []],
        "architecture": machine.get("architecture"),
        "zone": _name(machine.get("zone")),
        "pool": _name(machine.get("pool")),
        "osystem": machine.get("osystem") or None,
        "distro_series": machine.get("distro_series") or None,
        "tag_names": [str(t) for t in machine.get("tag_names") or []],
    }


def machine_asset(f: dict[str, Any], maas_url: str) -> Asset:
    """A machine (its output fields) as a VM asset: id is its system_id, metadata what a catalog needs."""
    metadata = {
        "system": "maas",
        "kind": "bare-metal",
        "maasUrl": maas_url,
        "systemId": f["system_id"],
        "hostname": f["hostname"],
        "fqdn": f["fqdn"],
        "status": f["status"],
        "powerState": f["power_state"],
        "ipAddresses": f["ip_addresses"],
        "architecture": f["architecture"],
        "zone": f["zone"],
        "pool": f["pool"],
        "osystem": f["osystem"],
        "distroSeries": f["distro_series"],
    }
    return Asset(
        id=f["system_id"],
        type=VM_ASSET,
        display_name=f["hostname"] or f["system_id"],
        metadata={k: v for k, v in metadata.items() if v not in (None, [], "")},
    )


# -- base -------------------------------------------------------------------------------------------
class MaasTask(Task):
    """Connection properties shared by every MAAS task."""

    url: Dynamic[str]
    """Address of the MAAS region API, such as http://maas.example.com:5240/MAAS (the /api/2.0 path is added)."""
    api_key: Dynamic[str]
    """MAAS API key 'consumer_key:token_key:token_secret'; pass it as {{ secret('MAAS_API_KEY') }}."""
    verify_ssl: Dynamic[bool] = True
    """Verify the TLS certificate of an https MAAS URL. Turn off only for trusted test environments."""
    request_timeout: Dynamic[timedelta] = timedelta(seconds=30)
    """Timeout of each HTTP call to MAAS."""

    def client(self, ctx: RunContext) -> MaasClient:
        return MaasClient(
            self.url,
            self.api_key,
            verify_ssl=self.verify_ssl,
            timeout=self.request_timeout.total_seconds(),
            ctx=ctx,
        )

    def _kill_client(self) -> MaasClient:
        # Used from the kill thread: its own connection pool, no run context (the run is being
        # killed), and a short budget so that the kill is never held up for long.
        return MaasClient(self.url, self.api_key, verify_ssl=self.verify_ssl, timeout=10.0, retry=KILL_RETRY)


class _Waiter:
    """Polls a machine until its status reaches a goal, fails, or the deadline passes.

    While a MAAS operation is awaited it is "active": a kill (from the engine's kill thread,
    also on the task's timeout) or the wait's own deadline aborts it -- exactly once, whichever
    comes first. A wait left because of a kill stays active so that the kill callback, which
    may run after the waiting thread woke up, still aborts.
    """

    def __init__(self, task: MaasTask, ctx: RunContext, client: MaasClient, system_id: str) -> None:
        self.task = task
        self.ctx = ctx
        self.client = client
        self.system_id = system_id
        self._active = False
        self._lock = threading.Lock()
        ctx.on_kill(self._abort_on_kill)

    def _claim(self) -> bool:
        """End the active period; true for the one caller that ended it."""
        with self._lock:
            active, self._active = self._active, False
            return active

    def _abort_on_kill(self) -> None:
        if not self._claim():
            return
        try:
            with self.task._kill_client() as client:
                self._abort(client, "execution killed")
        except Exception as exc:  # the kill must go on even when MAAS cannot be told
            self.ctx.logger.error(
                "execution killed, but aborting the MAAS operation of %s failed: %s", self.system_id, exc
            )

    def _abort(self, client: MaasClient, why: str) -> bool:
        """Abort the machine's current operation (commissioning, deployment...); never raises."""
        try:
            client.machine_op(self.system_id, "abort", [("comment", f"Roost: {why} while waiting")])
        except MaasApiError as exc:
            self.ctx.logger.error(
                "%s: aborting the MAAS operation of %s failed: %s", why, self.system_id, exc
            )
            return False
        self.ctx.logger.warning("%s: asked MAAS to abort the current operation of %s", why, self.system_id)
        return True

    def commissioned(self, machine: dict[str, Any]) -> dict[str, Any]:
        """Wait until commissioning (and testing) left the machine Ready."""
        return self.wait_status(
            goal={READY},
            failed={FAILED_COMMISSIONING, FAILED_TESTING, BROKEN},
            waiting={NEW, COMMISSIONING, TESTING},
            what="commissioning",
            timeout=self.task.timeout or timedelta(minutes=30),  # type: ignore[attr-defined]
            poll=self.task.poll_interval,  # type: ignore[attr-defined]
            first=machine,
        )

    def wait_status(
        self,
        *,
        goal: set[int],
        failed: set[int],
        waiting: set[int],
        what: str,
        timeout: timedelta,
        poll: timedelta,
        first: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout.total_seconds()
        machine = first if first is not None else self.client.get_machine(self.system_id)
        last = None
        seen: set[int] = set()
        with self._lock:
            self._active = True
        try:
            while True:
                code = machine.get("status")
                name = _status_name(machine) or str(code)
                if code != last:
                    self.ctx.logger.info("%s (%s) is %s", self.system_id, machine.get("hostname"), name)
                    last = code
                if code in goal:
                    return machine
                if code in failed:
                    message = machine.get("status_message") or ""
                    raise TaskError(
                        f"{what} of machine {self.system_id} ({machine.get('hostname')}) failed: MAAS status is "
                        f"'{name}'" + (f": {message}" if message else "")
                    )
                if code not in waiting or (code == ALLOCATED and DEPLOYING in seen):
                    raise TaskError(
                        f"{what} of machine {self.system_id} ({machine.get('hostname')}) stopped: MAAS status became "
                        f"'{name}' while waiting for {', '.join(NODE_STATUS_NAMES.get(g, str(g)) for g in sorted(goal))}"
                    )
                seen.add(code)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    aborted = self._claim() and self._abort(self.client, "timeout")
                    raise TaskError(
                        f"{what} of machine {self.system_id} ({machine.get('hostname')}) did not finish within "
                        f"{_duration(timeout)}: MAAS status is still '{name}'"
                        + ("; the MAAS operation was aborted" if aborted else "")
                    )
                self.ctx.sleep(min(poll.total_seconds(), remaining))
                machine = self.client.get_machine(self.system_id)
        finally:
            if not self.ctx.killed():  # after a kill, the kill callback claims it and aborts
                self._claim()

    def wait_power(self, expected: str, *, timeout: timedelta, poll: timedelta) -> dict[str, Any]:
        """Poll the power state MAAS reports (nothing to abort: a power change is a single BMC call)."""
        deadline = time.monotonic() + timeout.total_seconds()
        while True:
            machine = self.client.get_machine(self.system_id)
            state = machine.get("power_state")
            if state == expected:
                return machine
            if state == "error":
                raise TaskError(
                    f"MAAS reports a power error for machine {self.system_id} ({machine.get('hostname')}) "
                    f"while waiting for power '{expected}': {machine.get('status_message') or 'no detail'}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TaskError(
                    f"machine {self.system_id} ({machine.get('hostname')}) did not reach power state "
                    f"'{expected}' within {_duration(timeout)}; MAAS reports '{state}'"
                )
            self.ctx.sleep(min(poll.total_seconds(), remaining))


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("1" if value else "0")


# -- tasks ------------------------------------------------------------------------------------------
class ListMachines(MaasTask, type=PREFIX + "ListMachines"):
    """List MAAS machines, optionally filtered by status, zone, resource pool, tags or hostname."""

    filters: Dynamic[dict[str, Any]] | None = None
    """Filters: status (name or list of names, e.g. Ready, Deployed), zone, resourcePool, tags (all must match), hostname, systemId."""
    include_details: Dynamic[bool] = True
    """Return every field MAAS reports; when false, only a summary (system_id, hostname, fqdn, status_name, power_state, ip_addresses, zone, pool)."""
    fields: Dynamic[list[str]] | None = None
    """Keep only these MAAS fields of each machine (such as system_id, hostname, status_name, ip_addresses)."""
    page: Dynamic[int] | None = None
    """Page to return (1 is the first), with pageSize machines a page; unset returns every machine."""
    page_size: Dynamic[int] | None = None
    """Machines per page when page is set (default 50)."""

    FILTER_KEYS: ClassVar[tuple[str, ...]] = (
        "status",
        "zone",
        "resourcePool",
        "pool",
        "tags",
        "hostname",
        "systemId",
    )
    _machines: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    class Out(MaasOutput):
        machines: list[dict[str, Any]]
        """The machines, as MAAS describes them (snake_case MAAS field names)."""
        count: int
        """Number of machines returned."""
        total: int
        """Number of machines matching the filters, before paging."""

    def run(self, ctx: RunContext) -> ListMachines.Out:
        filters = dict(self.filters or {})
        unknown = sorted(set(filters) - set(self.FILTER_KEYS))
        if unknown:
            raise TaskError(f"unknown filter(s) {', '.join(unknown)}; allowed: {', '.join(self.FILTER_KEYS)}")
        params: list[tuple[str, Any]] = []
        for key, param in (("hostname", "hostname"), ("systemId", "id"), ("zone", "zone"), ("tags", "tags")):
            if filters.get(key) is not None:
                params.append((param, _as_list(filters[key])))
        pool = filters.get("resourcePool", filters.get("pool"))
        if pool is not None:
            params.append(("pool", pool))
        with self.client(ctx) as client:
            ctx.logger.info("listing machines of MAAS %s", client.public_url)
            machines = client.list_machines(params)
        machines = [m for m in machines if _matches(m, filters, pool)]
        total = len(machines)
        if self.page is not None:
            size = self.page_size or 50
            if self.page < 1 or size < 1:
                raise TaskError(
                    f"page and pageSize must be 1 or more (got page={self.page}, pageSize={size})"
                )
            machines = machines[(self.page - 1) * size : self.page * size]
        self._machines = machines
        rows = [m if self.include_details else _summary(m) for m in machines]
        if self.fields:
            rows = [
                {k: row.get(k, m.get(k)) for k in self.fields} for row, m in zip(rows, machines, strict=True)
            ]
        ctx.logger.info("%d machine(s) match (%d returned)", total, len(rows))
        ctx.metric("machines", len(rows))
        return self.Out(machines=rows, count=len(rows), total=total)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not self._machines:
            return []
        url = public_url(self.url)
        return [AssetBundle(outputs=[machine_asset(machine_fields(m), url) for m in self._machines])]


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _norm_status(value: str) -> str:
    return value.strip().lower().replace("_", " ")


def _matches(machine: dict[str, Any], filters: dict[str, Any], pool: Any) -> bool:
    # MAAS filters server-side on hostname, id, zone, pool and tags; status is filtered here, and
    # the others again so that an older MAAS that ignores a filter still gets the right answer.
    if filters.get("status") is not None:
        wanted = {_norm_status(s) for s in _as_list(filters["status"])}
        if _norm_status(_status_name(machine) or "") not in wanted:
            return False
    if filters.get("zone") is not None and _name(machine.get("zone")) not in _as_list(filters["zone"]):
        return False
    if pool is not None and _name(machine.get("pool")) not in _as_list(pool):
        return False
    if filters.get("tags") is not None and not set(_as_list(filters["tags"])) <= set(
        machine.get("tag_names") or []
    ):
        return False
    if filters.get("hostname") is not None and machine.get("hostname") not in _as_list(filters["hostname"]):
        return False
    return not (
        filters.get("systemId") is not None and machine.get("system_id") not in _as_list(filters["systemId"])
    )


def _summary(machine: dict[str, Any]) -> dict[str, Any]:
    return {
        "system_id": machine.get("system_id"),
        "hostname": machine.get("hostname"),
        "fqdn": machine.get("fqdn"),
        "status_name": _status_name(machine),
        "power_state": machine.get("power_state"),
        "ip_addresses": machine.get("ip_addresses") or [],
        "zone": _name(machine.get("zone")),
        "pool": _name(machine.get("pool")),
    }


class _MachineTask(MaasTask):
    """A task acting on one machine; returns its state and emits it as an asset."""

    class Out(MachineOutput):
        pass

    def _out(self, machine: dict[str, Any], **extra: Any) -> Any:
        return self.Out(**machine_fields(machine), **extra)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if not isinstance(out, MachineOutput):
            return []
        return [AssetBundle(outputs=[machine_asset(out.model_dump(), public_url(self.url))])]


class EnlistMachine(_MachineTask, type=PREFIX + "EnlistMachine"):
    """Add (enlist) a machine to MAAS by its PXE MAC address and power settings.

    MAAS commissions a machine an admin adds unless `commission` is false; set
    `waitForCommissioning` to wait until it is Ready.
    """

    mac_address: Dynamic[str]
    """MAC address of the interface the machine PXE boots from."""
    additional_mac_addresses: Dynamic[list[str]] = Field(default_factory=list)
    """Further MAC addresses of the machine."""
    architecture: Dynamic[str] = "amd64/generic"
    """Architecture of the machine, such as amd64/generic or arm64/generic."""
    hostname: Dynamic[str] | None = None
    """Hostname; MAAS generates one when unset."""
    domain: Dynamic[str] | None = None
    """DNS domain; the MAAS default domain when unset."""
    description: Dynamic[str] | None = None
    """Free-form description."""
    resource_pool: Dynamic[str] | None = None
    """Resource pool to put the machine in."""
    zone: Dynamic[str] | None = None
    """Physical zone to put the machine in."""
    power_type: Dynamic[str] | None = None
    """Power driver, such as ipmi, redfish, virsh or manual."""
    power_parameters: Dynamic[dict[str, Any]] = Field(default_factory=dict)
    """Power driver parameters (power_address, power_user, power_pass...); pass passwords with {{ secret(...) }}. Never logged."""
    commission: Dynamic[bool] | None = None
    """Commission the machine right away (MAAS's default for admins is true)."""
    wait_for_commissioning: Dynamic[bool] = False
    """Wait until commissioning brings the machine to Ready (when MAAS commissions it)."""
    timeout: Dynamic[timedelta] | None = timedelta(minutes=30)
    """Longest wait for commissioning (and the task's timeout)."""
    poll_interval: Dynamic[timedelta] = timedelta(seconds=10)
    """Time between two status checks while waiting."""

    def run(self, ctx: RunContext) -> EnlistMachine.Out:
        macs = [self.mac_address, *self.additional_mac_addresses]
        data: list[tuple[str, Any]] = [("architecture", self.architecture), ("mac_addresses", macs)]
        for key, value in (
            ("hostname", self.hostname),
            ("domain", self.domain),
            ("description", self.description),
            ("pool", self.resource_pool),
            ("zone", self.zone),
            ("power_type", self.power_type),
            ("commission", self.commission),
        ):
            if value is not None:
                data.append((key, value))
        for key, value in (self.power_parameters or {}).items():
            data.append((f"power_parameters_{key}", value))
        with self.client(ctx) as client:
            ctx.logger.info(
                "enlisting machine %s (MAC %s, architecture %s, power type %s) in MAAS %s",
                self.hostname or "(generated hostname)",
                ", ".join(macs),
                self.architecture,
                self.power_type or "none",
                client.public_url,
            )
            machine = client.create_machine(data)
            system_id = machine["system_id"]
            ctx.logger.info(
                "MAAS created machine %s (%s), status %s",
                system_id,
                machine.get("hostname"),
                _status_name(machine),
            )
            if self.wait_for_commissioning and machine.get("status") in (COMMISSIONING, TESTING):
                machine = _Waiter(self, ctx, client, system_id).commissioned(machine)
            return self._out(machine)


class CommissionMachine(_MachineTask, type=PREFIX + "CommissionMachine"):
    """Commission a machine: MAAS boots it, inventories its hardware and runs tests, leaving it Ready."""

    system_id: Dynamic[str]
    """system_id of the machine to commission."""
    enable_ssh: Dynamic[bool] | None = None
    """Allow SSH into the commissioning environment with the user's keys."""
    skip_networking: Dynamic[bool] | None = None
    """Keep the machine's current network configuration."""
    skip_storage: Dynamic[bool] | None = None
    """Keep the machine's current storage configuration."""
    commissioning_scripts: Dynamic[list[str]] | None = None
    """Commissioning scripts (names or tags) to run besides the built-in ones."""
    testing_scripts: Dynamic[list[str]] | None = None
    """Testing scripts (names or tags) to run; ['none'] runs no test."""
    wait_for_completion: Dynamic[bool] = False
    """Wait until the machine is Ready (fails on Failed commissioning or Failed testing)."""
    timeout: Dynamic[timedelta] | None = timedelta(minutes=30)
    """Longest wait for commissioning (and the task's timeout)."""
    poll_interval: Dynamic[timedelta] = timedelta(seconds=10)
    """Time between two status checks while waiting."""

    def run(self, ctx: RunContext) -> CommissionMachine.Out:
        data = [
            ("enable_ssh", _flag(self.enable_ssh)),
            ("skip_networking", _flag(self.skip_networking)),
            ("skip_storage", _flag(self.skip_storage)),
            (
                "commissioning_scripts",
                ",".join(self.commissioning_scripts) if self.commissioning_scripts else None,
            ),
            ("testing_scripts", ",".join(self.testing_scripts) if self.testing_scripts else None),
        ]
        with self.client(ctx) as client:
            ctx.logger.info("commissioning machine %s on MAAS %s", self.system_id, client.public_url)
            body = client.machine_op(self.system_id, "commission", data)
            machine = (
                body if isinstance(body, dict) and "system_id" in body else client.get_machine(self.system_id)
            )
            if self.wait_for_completion:
                machine = _Waiter(self, ctx, client, self.system_id).commissioned(machine)
            return self._out(machine)


class DeployMachine(_MachineTask, type=PREFIX + "DeployMachine"):
    """Deploy an operating system to a machine (MAAS allocates a Ready machine to the API user first)."""

    system_id: Dynamic[str]
    """system_id of the machine to deploy."""
    osystem: Dynamic[str] | None = None
    """Operating system, such as ubuntu; the MAAS default when unset."""
    distro_series: Dynamic[str] | None = None
    """OS release, such as jammy or noble; the MAAS default when unset."""
    kernel: Dynamic[str] | None = None
    """Kernel to install (MAAS hwe_kernel), such as ga-22.04 or hwe-22.04."""
    install_kvm: Dynamic[bool] | None = None
    """Install KVM and register the machine as a MAAS VM host."""
    storage_layout: Dynamic[str] | None = None
    """Storage layout applied before deploying: flat, lvm, bcache, vmfs6, vmfs7 or blank (machine must be Ready)."""
    user_data: Dynamic[str] | None = None
    """cloud-init user data (such as a #cloud-config document); sent base64-encoded."""
    user_tags: Dynamic[list[str]] = Field(default_factory=list)
    """MAAS tags to add to the machine (created when missing)."""
    wait_for_deployment: Dynamic[bool] = False
    """Wait until the machine is Deployed (fails on Failed deployment)."""
    timeout: Dynamic[timedelta] | None = timedelta(minutes=45)
    """Longest wait for the deployment (and the task's timeout)."""
    poll_interval: Dynamic[timedelta] = timedelta(seconds=10)
    """Time between two status checks while waiting."""

    def run(self, ctx: RunContext) -> DeployMachine.Out:
        with self.client(ctx) as client:
            machine = client.get_machine(self.system_id)
            ctx.logger.info(
                "deploying %s %s to machine %s (%s), currently %s, on MAAS %s",
                self.osystem or "(default OS)",
                self.distro_series or "(default release)",
                self.system_id,
                machine.get("hostname"),
                _status_name(machine),
                client.public_url,
            )
            if self.storage_layout:
                ctx.logger.info("applying storage layout %s", self.storage_layout)
                client.machine_op(
                    self.system_id, "set_storage_layout", [("storage_layout", self.storage_layout)]
                )
            for tag in self.user_tags:
                ctx.logger.info("tagging machine %s with %s", self.system_id, tag)
                client.tag_machine(tag, self.system_id)
            data: list[tuple[str, Any]] = [
                ("osystem", self.osystem),
                ("distro_series", self.distro_series),
                ("hwe_kernel", self.kernel),
                ("install_kvm", self.install_kvm),
            ]
            if self.user_data:
                data.append(("user_data", base64.b64encode(self.user_data.encode()).decode()))
            body = client.machine_op(self.system_id, "deploy", data)
            machine = (
                body if isinstance(body, dict) and "system_id" in body else client.get_machine(self.system_id)
            )
            ctx.logger.info("MAAS accepted the deployment; machine is %s", _status_name(machine))
            if self.wait_for_deployment:
                machine = _Waiter(self, ctx, client, self.system_id).wait_status(
                    goal={DEPLOYED},
                    failed={FAILED_DEPLOYMENT, BROKEN},
                    waiting={READY, ALLOCATED, DEPLOYING},
                    what="deployment",
                    timeout=self.timeout or timedelta(minutes=45),
                    poll=self.poll_interval,
                    first=machine,
                )
            return self._out(machine)


class PowerControlMachine(_MachineTask, type=PREFIX + "PowerControlMachine"):
    """Power a machine on, off or through a cycle through its BMC, or query its power state."""

    system_id: Dynamic[str]
    """system_id of the machine."""
    action: Dynamic[PowerAction]
    """ON, OFF, CYCLE (off, wait until off, then on) or QUERY (ask the BMC for the current state)."""
    stop_mode: Dynamic[StopMode] | None = None
    """How OFF (and the off half of CYCLE) stops the machine: soft (ask the OS) or hard (default)."""
    wait_for_power_state: Dynamic[bool] = False
    """Wait until MAAS reports the expected power state."""
    expected_state: Dynamic[PowerState] | None = None
    """Power state to wait for; defaults to on for ON and CYCLE, off for OFF."""
    timeout: Dynamic[timedelta] | None = timedelta(minutes=5)
    """Longest wait for the power state (and the task's timeout)."""
    poll_interval: Dynamic[timedelta] = timedelta(seconds=5)
    """Time between two power-state checks while waiting."""

    class Out(MachineOutput):
        action: str
        """The action performed."""

    def run(self, ctx: RunContext) -> PowerControlMachine.Out:
        timeout = self.timeout or timedelta(minutes=5)
        with self.client(ctx) as client:
            machine = client.get_machine(self.system_id)
            host = machine.get("hostname")
            if self.action == "QUERY":
                state = client.query_power_state(self.system_id)
                ctx.logger.info("machine %s (%s) power state: %s", self.system_id, host, state)
                return self._out({**machine, "power_state": state}, action=self.action)
            waiter = _Waiter(self, ctx, client, self.system_id)
            off_data = [("stop_mode", self.stop_mode)]
            if self.action == "ON":
                ctx.logger.info("powering on machine %s (%s)", self.system_id, host)
                client.machine_op(self.system_id, "power_on")
            elif self.action == "OFF":
                ctx.logger.info(
                    "powering off machine %s (%s), stop mode %s",
                    self.system_id,
                    host,
                    self.stop_mode or "hard",
                )
                client.machine_op(self.system_id, "power_off", off_data)
            else:
                ctx.logger.info("power cycling machine %s (%s): powering off", self.system_id, host)
                client.machine_op(self.system_id, "power_off", off_data)
                waiter.wait_power("off", timeout=timeout, poll=self.poll_interval)
                ctx.logger.info("machine %s is off; powering on", self.system_id)
                client.machine_op(self.system_id, "power_on")
            expected = self.expected_state or ("off" if self.action == "OFF" else "on")
            if self.wait_for_power_state:
                machine = waiter.wait_power(expected, timeout=timeout, poll=self.poll_interval)
                ctx.logger.info("machine %s is %s", self.system_id, expected)
            else:
                machine = client.get_machine(self.system_id)
            return self._out(machine, action=self.action)


TASKS = (ListMachines, EnlistMachine, CommissionMachine, DeployMachine, PowerControlMachine)

__all__ = [
    "TASKS",
    "CommissionMachine",
    "DeployMachine",
    "EnlistMachine",
    "ListMachines",
    "MaasApiError",
    "MachineOutput",
    "PowerControlMachine",
]
