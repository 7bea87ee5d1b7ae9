"""KVM task types: list, create, update, start, stop and delete libvirt domains.

Type ids, property names and outputs follow Kestra's ``io.kestra.plugin.kvm``
plugin; this one adds building a VM from properties, storage clean-up,
typed VM facts in every output and VM assets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal, TypeVar

import libvirt
from pydantic import AliasChoices, ConfigDict, Field, ValidationError
from roost import Asset, AssetBundle, Dynamic, Model, Output, RunContext, Task, TaskError

from roost_kvm import client, domxml

VM_ASSET = "io.kestra.plugin.ee.assets.VM"


# -- shared pieces --------------------------------------------------------------------------------


class KvmTask(Task):
    """Base of the KVM tasks: where libvirt is and how to reach it."""

    uri: Dynamic[str] = "qemu:///system"
    """Libvirt connection URI, e.g. `qemu:///system`, `qemu+ssh://root@host/system`, `test:///path/node.xml`."""
    username: Dynamic[str] | None = None
    """User name for URIs whose driver asks for credentials (SASL, the test driver's `<auth>`)."""
    password: Dynamic[str] | None = None
    """Password for URIs whose driver asks for credentials; use `{{ secret('...') }}`."""
    connection_timeout: Dynamic[timedelta] = timedelta(seconds=30)
    """Give up connecting after this long (ISO-8601 duration or seconds)."""

    @contextmanager
    def connect(self, ctx: RunContext) -> Iterator[libvirt.virConnect]:
        ctx.logger.debug("connecting to %s", client.safe_uri(self.uri))
        with client.connection(
            ctx,
            self.uri,
            username=self.username,
            password=self.password,
            timeout=self.connection_timeout.total_seconds(),
        ) as conn:
            yield conn

    def vm_asset(self, vm: Any, **extra: Any) -> Asset:
        """A VM asset with a stable id (the libvirt UUID) and what the run learned about it."""
        metadata = {
            "provider": "kvm",
            "host": client.uri_host(self.uri),
            "uri": client.safe_uri(self.uri),
            "name": vm.name,
            "uuid": vm.uuid,
            "state": vm.state,
            "memory": vm.memory,
            "vcpus": vm.vcpus,
            **extra,
        }
        return Asset(
            id=vm.uuid,
            type=VM_ASSET,
            display_name=vm.name,
            metadata={k: v for k, v in metadata.items() if v is not None},
        )


class KvmOutput(Output):
    """Base of this plugin's outputs: field docstrings become their descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class VmFacts(KvmOutput):
    """What libvirt says about one VM."""

    name: str
    """Domain name."""
    uuid: str
    """Libvirt UUID of the domain (stable across redefinitions)."""
    state: str
    """Domain state as Kestra names it: `VIR_DOMAIN_RUNNING`, `VIR_DOMAIN_SHUTOFF`, `VIR_DOMAIN_PAUSED`..."""
    id: int | None = None
    """Runtime id while the domain is active."""
    active: bool = False
    """True while a hypervisor process backs the domain (running, paused...)."""
    persistent: bool = True
    """True for a defined domain, false for a transient one."""
    autostart: bool = False
    """Whether the host starts the domain when it boots."""
    vcpus: int | None = None
    """Number of virtual CPUs."""
    memory: int | None = None
    """Memory in MiB."""


M = TypeVar("M", bound=Model)


def _render_items(ctx: RunContext, items: list[M], cls: type[M], what: str) -> list[M]:
    """Render expressions inside nested models (the engine renders top-level properties only)."""
    out = []
    for i, item in enumerate(items):
        data = ctx.render(item.model_dump(by_alias=True, exclude_none=True))
        try:
            out.append(cls.model_validate(data))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise TaskError(f"{what}[{i}].{loc}: {err['msg']}") from None
    return out


def _positive(value: int | None, what: str) -> None:
    if value is not None and value <= 0:
        raise TaskError(f"{what} must be a positive number, not {value}")


def _shutdown(ctx: RunContext, dom: libvirt.virDomain, timeout: float, *, force_after: bool) -> bool:
    """Ask the guest to power off and wait; destroy it after ``timeout`` when ``force_after``.

    Returns True when the domain had to be destroyed.
    """
    name = dom.name()
    if client.current_state(dom) == client.PAUSED:
        if not force_after:
            raise TaskError(
                f"VM '{name}' is paused and a paused guest cannot shut down: "
                "resume it first, or set `force` or `forceAfterTimeout`"
            )
        ctx.logger.warning("VM %s is paused; powering it off (destroy)", name)
        _destroy(dom)
        return True
    with client.errors(f"shutting down VM '{name}'"):
        dom.shutdown()
    try:
        client.wait_for_state(
            ctx, dom, {client.SHUTOFF}, timeout, fail_states={client.PAUSED, client.CRASHED}
        )
        return False
    except client.WaitTimeout as exc:
        if not force_after:
            raise
        ctx.logger.warning("%s; forcing it off (destroy)", exc)
    _destroy(dom)
    return True


def _destroy(dom: libvirt.virDomain) -> None:
    try:
        dom.destroy()
    except libvirt.libvirtError as err:
        # it may have stopped on its own between our last look and the destroy
        if client.current_state(dom) != client.SHUTOFF:
            raise client.fail(f"destroying VM '{dom.name()}'", err) from None


# -- ListVms --------------------------------------------------------------------------------------


class ListVms(KvmTask, type="io.kestra.plugin.kvm.ListVms"):
    """List the virtual machines (libvirt domains) of a host, running or not, optionally by state."""

    status_filter: Dynamic[str] | None = None
    """Keep only VMs in this state: `running`, `shutoff`, `paused`... (with or without `VIR_DOMAIN_`)."""

    class Out(KvmOutput):
        vms: list[VmFacts]
        """The VMs, sorted by name."""
        count: int
        """Number of VMs listed."""

    def run(self, ctx: RunContext) -> ListVms.Out:
        wanted = client.parse_state(self.status_filter) if self.status_filter else None
        with self.connect(ctx) as conn:
            with client.errors(f"listing VMs on {client.safe_uri(self.uri)}"):
                domains = conn.listAllDomains(0)
            vms = []
            for dom in domains:
                try:
                    facts = VmFacts(**client.describe(dom))
                except client.DomainGone:
                    continue
                if wanted is None or facts.state == client.state_name(wanted):
                    vms.append(facts)
        vms.sort(key=lambda v: v.name)
        ctx.logger.info("%d VM(s) on %s", len(vms), client.safe_uri(self.uri))
        return self.Out(vms=vms, count=len(vms))

    def auto_assets(self, ctx: RunContext, out: ListVms.Out) -> list[AssetBundle]:
        if out is None or not out.vms:
            return []
        return [AssetBundle(inputs=[self.vm_asset(vm) for vm in out.vms])]


# -- CreateVm -------------------------------------------------------------------------------------


class Disk(Model):
    """A disk of a VM built from properties: a pool volume (created when `sizeMib` is set) or a path."""

    pool: Dynamic[str] | None = None
    """Storage pool holding the volume (with `volume`)."""
    volume: Dynamic[str] | None = None
    """Volume name in `pool`; created when missing and `sizeMib` is set."""
    path: Dynamic[str] | None = None
    """Path of an existing image or block device (instead of `pool`/`volume`)."""
    size_mib: Dynamic[int] | None = None
    """Size in MiB of the volume to create when it does not exist yet."""
    format: Dynamic[str] | None = None
    """Image format (`qcow2`, `raw`...); new volumes default to `qcow2`."""
    device: Dynamic[Literal["disk", "cdrom"]] = "disk"
    """`disk` or `cdrom` (a cdrom is read-only and never deleted with the VM)."""
    bus: Dynamic[str] | None = None
    """Bus: `virtio` (default for disks), `sata` (default for cdroms), `scsi`, `ide`."""
    target: Dynamic[str] | None = None
    """Guest device name (`vda`, `sdb`...); assigned in order when omitted."""
    readonly: Dynamic[bool] = False
    """Attach the disk read-only."""


class NetworkInterface(Model):
    """A network interface of a VM built from properties: on a libvirt network or a host bridge."""

    network: Dynamic[str] | None = None
    """Libvirt network name (default `default` when no `bridge` is given)."""
    bridge: Dynamic[str] | None = None
    """Host bridge to plug into instead of a libvirt network."""
    model: Dynamic[str] = "virtio"
    """NIC model seen by the guest."""
    mac: Dynamic[str] | None = None
    """MAC address; libvirt picks one when omitted."""


class CreateVm(KvmTask, type="io.kestra.plugin.kvm.CreateVm"):
    """Create (define) a VM from a libvirt domain XML or from properties, and optionally start it.

    With `xmlDefinition` the XML is sent as is (`memory`/`vcpus` override its values). Without it the
    domain is built from `name`, `memory`, `vcpus`, `disks` and `networks`; pool volumes with a
    `sizeMib` are created first. When a VM of that name exists, `ifExists` decides: `UPDATE`
    redefines it (keeping its UUID), `SKIP` leaves it alone, `FAIL` stops the task.
    """

    name: Dynamic[str] | None = None
    """Domain name; required without `xmlDefinition`, and must match the XML's `<name>` with it."""
    xml_definition: Dynamic[str] | None = Field(
        default=None, validation_alias=AliasChoices("xmlDefinition", "xml_definition", "domainXml", "xml")
    )
    """Full libvirt domain XML (also accepted as `domainXml` or `xml`)."""
    memory: Dynamic[int] | None = None
    """Memory in MiB (512 when building from properties)."""
    vcpus: Dynamic[int] | None = None
    """Number of virtual CPUs (1 when building from properties)."""
    domain_type: Dynamic[str] = "kvm"
    """Hypervisor type of a built domain: `kvm`, or `qemu` for emulation where /dev/kvm is unusable."""
    arch: Dynamic[str] | None = None
    """Guest architecture of a built domain (`x86_64`...); the host's default when omitted."""
    machine: Dynamic[str] | None = None
    """Machine type of a built domain (`q35`, `pc`...); the hypervisor's default when omitted."""
    boot: Dynamic[list[str]] = Field(default_factory=lambda: ["hd"])
    """Boot order of a built domain: `hd`, `cdrom`, `network`."""
    disks: Dynamic[list[Disk]] = Field(default_factory=list)
    """Disks of a built domain."""
    networks: Dynamic[list[NetworkInterface]] = Field(default_factory=list)
    """Network interfaces of a built domain."""
    autostart: Dynamic[bool] | None = None
    """Start the VM when the host boots (left unchanged when omitted)."""
    start_after_create: Dynamic[bool] = False
    """Boot the VM once it is defined (when it is not already running)."""
    if_exists: Dynamic[Literal["UPDATE", "SKIP", "FAIL"]] = "UPDATE"
    """What to do when a VM with this name exists: redefine it, leave it, or fail."""

    class Out(VmFacts):
        created: bool
        """True when the VM did not exist before this run."""
        created_volumes: list[str] = Field(default_factory=list)
        """Paths of the storage volumes this run created."""

    def _definition(self, ctx: RunContext) -> tuple[str, Any, list[domxml.DiskSpec]]:
        _positive(self.memory, "memory")
        _positive(self.vcpus, "vcpus")
        if self.xml_definition:
            if self.disks or self.networks:
                raise TaskError(
                    "`disks` and `networks` build a VM from properties: put them in the XML instead"
                )
            root = domxml.parse(self.xml_definition)
            xml_name = domxml.domain_name(root)
            if self.name and xml_name and xml_name != self.name:
                raise TaskError(f"`name` is '{self.name}' but the XML definition names the VM '{xml_name}'")
            name = self.name or xml_name
            if not name:
                raise TaskError("the XML definition has no <name>: add one or set `name`")
            domxml.set_name(root, name)
            domxml.set_resources(root, self.memory, self.vcpus)
            return name, root, []
        if not self.name:
            raise TaskError("set `name` (to build the VM from properties) or `xmlDefinition`")
        disks = [_disk_spec(d, i) for i, d in enumerate(_render_items(ctx, self.disks, Disk, "disks"))]
        nics = [
            domxml.NicSpec(network=n.network, bridge=n.bridge, model=n.model, mac=n.mac)
            for n in _render_items(ctx, self.networks, NetworkInterface, "networks")
        ]
        xml = domxml.build_domain(
            name=self.name,
            memory_mib=self.memory or 512,
            vcpus=self.vcpus or 1,
            domain_type=self.domain_type,
            arch=self.arch,
            machine=self.machine,
            boot=self.boot,
            disks=disks,
            nics=nics,
        )
        return self.name, domxml.parse(xml), disks

    def run(self, ctx: RunContext) -> CreateVm.Out:
        name, root, disks = self._definition(ctx)
        with self.connect(ctx) as conn:
            existing = client.find_domain(conn, name)
            if existing is not None and self.if_exists == "FAIL":
                raise TaskError(f"VM '{name}' already exists on {client.safe_uri(self.uri)} (ifExists: FAIL)")
            if existing is not None and self.if_exists == "SKIP":
                ctx.logger.info("VM %s already exists; leaving its definition as it is", name)
                dom, created_volumes = existing, []
            else:
                if existing is not None:
                    domxml.ensure_uuid(root, existing.UUIDString(), name)
                created_volumes = _create_volumes(ctx, conn, disks)
                try:
                    with client.errors(f"defining VM '{name}'"):
                        dom = conn.defineXML(domxml.to_string(root))
                except TaskError:
                    _delete_volumes(ctx, created_volumes)
                    raise
                ctx.logger.info("VM %s %s", name, "redefined" if existing is not None else "defined")
            if self.autostart is not None:
                with client.errors(f"setting autostart of VM '{name}'"):
                    dom.setAutostart(1 if self.autostart else 0)
            if self.start_after_create and not dom.isActive():
                with client.errors(f"starting VM '{name}'"):
                    dom.create()
                ctx.logger.info("VM %s started", name)
            facts = client.describe(dom)
        return self.Out(**facts, created=existing is None, created_volumes=[p for p, _ in created_volumes])

    def auto_assets(self, ctx: RunContext, out: CreateVm.Out) -> list[AssetBundle]:
        if out is None:
            return []
        return [AssetBundle(outputs=[self.vm_asset(out, created=out.created)])]


def _disk_spec(disk: Disk, index: int) -> domxml.DiskSpec:
    where = f"disks[{index}]"
    if bool(disk.pool) != bool(disk.volume):
        raise TaskError(f"{where}: `pool` and `volume` go together")
    if bool(disk.pool) == bool(disk.path):
        raise TaskError(f"{where}: set either `pool` and `volume`, or `path`")
    if disk.size_mib is not None and not disk.pool:
        raise TaskError(f"{where}: `sizeMib` creates a pool volume: it needs `pool` and `volume`")
    _positive(disk.size_mib, f"{where}.sizeMib")
    return domxml.DiskSpec(
        pool=disk.pool,
        volume=disk.volume,
        path=disk.path,
        size_mib=disk.size_mib,
        format=disk.format or ("qcow2" if disk.size_mib else None),
        device=disk.device,
        bus=disk.bus,
        target=disk.target,
        readonly=disk.readonly,
    )


def _pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise TaskError(f"storage pool '{name}' not found: {client.message(err)}") from None
        raise client.fail(f"looking up storage pool '{name}'", err) from None


def _create_volumes(
    ctx: RunContext, conn: libvirt.virConnect, disks: list[domxml.DiskSpec]
) -> list[tuple[str, libvirt.virStorageVol]]:
    """Create the missing pool volumes that have a size; returns (path, volume) of those created."""
    created: list[tuple[str, libvirt.virStorageVol]] = []
    try:
        for disk in disks:
            if not (disk.pool and disk.volume and disk.size_mib):
                continue
            pool = _pool(conn, disk.pool)
            try:
                pool.storageVolLookupByName(disk.volume)
                ctx.logger.info("volume %s/%s exists; reusing it", disk.pool, disk.volume)
                continue
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise client.fail(f"looking up volume {disk.pool}/{disk.volume}", err) from None
            xml = domxml.volume_xml(disk.volume, disk.size_mib, disk.format or "qcow2")
            with client.errors(f"creating volume {disk.pool}/{disk.volume}"):
                vol = pool.createXML(xml, 0)
                created.append((vol.path(), vol))
            ctx.logger.info("created volume %s (%d MiB)", vol.path(), disk.size_mib)
    except TaskError:
        _delete_volumes(ctx, created)
        raise
    return created


def _delete_volumes(ctx: RunContext, volumes: list[tuple[str, libvirt.virStorageVol]]) -> None:
    for path, vol in volumes:
        try:
            vol.delete(0)
            ctx.logger.info("removed volume %s", path)
        except libvirt.libvirtError as err:
            ctx.logger.warning("could not remove volume %s: %s", path, client.message(err))


# -- UpdateVm -------------------------------------------------------------------------------------


class UpdateVm(KvmTask, type="io.kestra.plugin.kvm.UpdateVm"):
    """Change an existing VM: a new domain XML, or just its memory and vCPU count.

    The persistent definition is updated; a running VM picks the change up at its next boot, or at
    once with `restart: true` (graceful shutdown, forced off after `timeToWait`, then started again).
    The task never creates a VM.
    """

    name: Dynamic[str] | None = None
    """Domain name; taken from the XML's `<name>` when omitted."""
    xml_definition: Dynamic[str] | None = Field(
        default=None, validation_alias=AliasChoices("xmlDefinition", "xml_definition", "domainXml", "xml")
    )
    """Complete new libvirt domain XML (also accepted as `domainXml` or `xml`)."""
    memory: Dynamic[int] | None = None
    """New memory in MiB."""
    vcpus: Dynamic[int] | None = None
    """New number of virtual CPUs."""
    restart: Dynamic[bool] = False
    """Restart a running VM whose definition changed so the change applies now."""
    time_to_wait: Dynamic[timedelta] = timedelta(seconds=60)
    """How long a restart waits for the guest to shut down before forcing it off."""

    class Out(VmFacts):
        was_restarted: bool
        """True when the VM was restarted to apply the change."""
        changed: bool
        """True when the persistent definition differs from before."""

    def run(self, ctx: RunContext) -> UpdateVm.Out:
        _positive(self.memory, "memory")
        _positive(self.vcpus, "vcpus")
        root = domxml.parse(self.xml_definition) if self.xml_definition else None
        xml_name = domxml.domain_name(root) if root is not None else None
        if self.name and xml_name and xml_name != self.name:
            raise TaskError(f"`name` is '{self.name}' but the XML definition names the VM '{xml_name}'")
        name = self.name or xml_name
        if not name:
            raise TaskError("set `name` or give an `xmlDefinition` with a <name>")
        if root is None and self.memory is None and self.vcpus is None:
            raise TaskError("nothing to update: set `xmlDefinition`, `memory` or `vcpus`")
        with self.connect(ctx) as conn:
            dom = client.get_domain(conn, name, self.uri)
            with client.errors(f"reading the definition of VM '{name}'"):
                before = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            if root is None:
                root = domxml.parse(before, "current domain XML")
            domxml.set_name(root, name)
            domxml.ensure_uuid(root, dom.UUIDString(), name)
            domxml.set_resources(root, self.memory, self.vcpus)
            with client.errors(f"redefining VM '{name}'"):
                dom = conn.defineXML(domxml.to_string(root))
                after = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            changed = before != after
            ctx.logger.info("VM %s definition %s", name, "updated" if changed else "unchanged")
            restarted = False
            if changed and dom.isActive():
                if self.restart:
                    ctx.logger.info("restarting VM %s to apply the change", name)
                    _shutdown(ctx, dom, self.time_to_wait.total_seconds(), force_after=True)
                    with client.errors(f"starting VM '{name}'"):
                        dom.create()
                    restarted = True
                else:
                    ctx.logger.info("VM %s is running: the change applies at its next boot", name)
            facts = client.describe(dom)
        return self.Out(**facts, was_restarted=restarted, changed=changed)

    def auto_assets(self, ctx: RunContext, out: UpdateVm.Out) -> list[AssetBundle]:
        if out is None:
            return []
        return [AssetBundle(outputs=[self.vm_asset(out)])]


# -- StartVm / StopVm -----------------------------------------------------------------------------


class StartVm(KvmTask, type="io.kestra.plugin.kvm.StartVm"):
    """Start a VM (or resume a paused one) unless it is already running; optionally wait for RUNNING."""

    name: Dynamic[str]
    """Domain name."""
    wait_for_running: Dynamic[bool] = False
    """Poll until the VM is RUNNING (fails if it stops or crashes instead)."""
    time_to_wait: Dynamic[timedelta] = timedelta(seconds=60)
    """How long `waitForRunning` waits."""

    class Out(VmFacts):
        started: bool
        """False when the VM was already running."""

    def run(self, ctx: RunContext) -> StartVm.Out:
        with self.connect(ctx) as conn:
            dom = client.get_domain(conn, self.name, self.uri)
            state = client.current_state(dom)
            started = True
            with client.errors(f"starting VM '{self.name}'"):
                if state == client.RUNNING:
                    ctx.logger.info("VM %s is already running", self.name)
                    started = False
                elif state == client.PAUSED:
                    dom.resume()
                    ctx.logger.info("VM %s resumed", self.name)
                elif state == libvirt.VIR_DOMAIN_PMSUSPENDED:
                    dom.pMWakeup(0)
                    ctx.logger.info("VM %s woken up", self.name)
                else:
                    dom.create()
                    ctx.logger.info("VM %s started", self.name)
            if self.wait_for_running:
                client.wait_for_state(
                    ctx,
                    dom,
                    {client.RUNNING},
                    self.time_to_wait.total_seconds(),
                    fail_states={client.SHUTOFF, client.CRASHED, client.PAUSED},
                )
            facts = client.describe(dom)
        return self.Out(**facts, started=started)

    def auto_assets(self, ctx: RunContext, out: StartVm.Out) -> list[AssetBundle]:
        if out is None:
            return []
        return [AssetBundle(outputs=[self.vm_asset(out)])]


class StopVm(KvmTask, type="io.kestra.plugin.kvm.StopVm"):
    """Shut a VM down gracefully (ACPI), or power it off at once with `force`.

    `waitForStopped` polls until SHUTOFF for up to `timeToWait`; with `forceAfterTimeout` a guest
    that has not shut down by then is powered off (libvirt `destroy`) instead of failing the task.
    """

    name: Dynamic[str]
    """Domain name."""
    force: Dynamic[bool] = False
    """Power off at once (libvirt `destroy`) instead of asking the guest to shut down."""
    wait_for_stopped: Dynamic[bool] = False
    """Poll until the VM is SHUTOFF; fails after `timeToWait` unless `forceAfterTimeout`."""
    time_to_wait: Dynamic[timedelta] = timedelta(seconds=60)
    """How long to wait for a graceful shutdown."""
    force_after_timeout: Dynamic[bool] = False
    """Power the VM off when it has not shut down within `timeToWait` (implies waiting)."""

    class Out(VmFacts):
        forced: bool
        """True when the VM was powered off with `destroy`."""
        stopped: bool
        """True when the VM is shut off at the end of the task."""

    def run(self, ctx: RunContext) -> StopVm.Out:
        with self.connect(ctx) as conn:
            dom = client.get_domain(conn, self.name, self.uri)
            facts = client.describe(dom)
            state = client.current_state(dom)
            forced = False
            if not dom.isActive():
                ctx.logger.info("VM %s is already stopped (%s)", self.name, client.state_name(state))
            elif self.force:
                ctx.logger.info("powering off VM %s (destroy)", self.name)
                _destroy(dom)
                forced = True
            elif state == client.PAUSED or self.wait_for_stopped or self.force_after_timeout:
                wait = self.time_to_wait.total_seconds()
                ctx.logger.info("shutting down VM %s (waiting up to %gs)", self.name, wait)
                forced = _shutdown(ctx, dom, wait, force_after=self.force_after_timeout)
            else:
                with client.errors(f"shutting down VM '{self.name}'"):
                    dom.shutdown()
                ctx.logger.info("shutdown requested for VM %s", self.name)
            try:
                facts = client.describe(dom)
            except client.DomainGone:  # a transient domain is gone once stopped
                facts.update(state=client.state_name(client.SHUTOFF), active=False, id=None)
        return self.Out(**facts, forced=forced, stopped=facts["state"] == client.state_name(client.SHUTOFF))

    def auto_assets(self, ctx: RunContext, out: StopVm.Out) -> list[AssetBundle]:
        if out is None:
            return []
        return [AssetBundle(outputs=[self.vm_asset(out)])]


# -- DeleteVm -------------------------------------------------------------------------------------


class DeleteVm(KvmTask, type="io.kestra.plugin.kvm.DeleteVm"):
    """Delete a VM: power it off if needed, undefine it and, with `deleteStorage`, delete its volumes.

    Only disks backed by libvirt storage volumes are deleted; cdroms, read-only and shareable disks,
    files outside any storage pool and volumes another VM also uses are left in place (and logged).
    """

    name: Dynamic[str]
    """Domain name."""
    delete_storage: Dynamic[bool] = False
    """Also delete the storage volumes of the VM's disks (and its UEFI NVRAM)."""
    fail_if_not_found: Dynamic[bool] = True
    """Fail when there is no VM of that name; otherwise end successfully with `deleted: false`."""

    class Out(KvmOutput):
        name: str
        """Domain name."""
        uuid: str | None = None
        """UUID of the deleted domain."""
        success: bool
        """True when the task did what was asked (a missing VM counts when `failIfNotFound` is false)."""
        deleted: bool
        """True when a VM was deleted."""
        deleted_volumes: list[str] = Field(default_factory=list)
        """Paths of the storage volumes deleted with the VM."""
        state: str | None = None
        """State of the VM before deletion."""
        memory: int | None = None
        """Memory in MiB of the deleted VM."""
        vcpus: int | None = None
        """Virtual CPUs of the deleted VM."""

    def run(self, ctx: RunContext) -> DeleteVm.Out:
        with self.connect(ctx) as conn:
            dom = client.find_domain(conn, self.name)
            if dom is None:
                if self.fail_if_not_found:
                    client.get_domain(conn, self.name, self.uri)  # raises with libvirt's own message
                ctx.logger.warning(
                    "VM %s not found on %s; nothing to delete", self.name, client.safe_uri(self.uri)
                )
                return self.Out(name=self.name, success=True, deleted=False)
            facts = client.describe(dom)
            with client.errors(f"reading the definition of VM '{self.name}'"):
                root = domxml.parse(dom.XMLDesc(0), "domain XML")
            volumes = _volumes_to_delete(ctx, conn, dom, root) if self.delete_storage else []
            if dom.isActive():
                ctx.logger.info("powering off VM %s (destroy)", self.name)
                _destroy(dom)
            if facts["persistent"]:
                _undefine(dom, nvram=self.delete_storage)
            ctx.logger.info("VM %s deleted", self.name)
            deleted, failures = [], []
            for path, vol in volumes:
                try:
                    vol.delete(0)
                    deleted.append(path)
                    ctx.logger.info("deleted volume %s", path)
                except libvirt.libvirtError as err:
                    failures.append(f"{path}: {client.message(err)}")
            if failures:
                raise TaskError(
                    f"VM '{self.name}' was deleted but some volumes were not: {'; '.join(failures)}"
                    + (f" (deleted: {', '.join(deleted)})" if deleted else "")
                )
        return self.Out(
            name=self.name,
            uuid=facts["uuid"],
            success=True,
            deleted=True,
            deleted_volumes=deleted,
            state=facts["state"],
            memory=facts["memory"],
            vcpus=facts["vcpus"],
        )

    def auto_assets(self, ctx: RunContext, out: DeleteVm.Out) -> list[AssetBundle]:
        if out is None or not out.deleted:
            return []
        vm = VmFacts(name=out.name, uuid=out.uuid, state="DELETED", memory=out.memory, vcpus=out.vcpus)
        return [AssetBundle(outputs=[self.vm_asset(vm, deleted=True, deletedVolumes=out.deleted_volumes)])]


def _undefine(dom: libvirt.virDomain, *, nvram: bool) -> None:
    """Undefine with the clean-up flags the driver supports (the test driver knows fewer)."""
    base = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    full = base | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    full |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if nvram else libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
    last: libvirt.libvirtError | None = None
    for flags in (full, base, 0):
        try:
            dom.undefineFlags(flags) if flags else dom.undefine()
            return
        except libvirt.libvirtError as err:
            last = err
            if err.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                break
    assert last is not None
    raise client.fail(f"undefining VM '{dom.name()}'", last)


def _volumes_to_delete(
    ctx: RunContext, conn: libvirt.virConnect, dom: libvirt.virDomain, root: Any
) -> list[tuple[str, libvirt.virStorageVol]]:
    """The storage volumes behind the VM's own writable disks, minus those another VM uses."""
    others: set[str] = set()
    with client.errors("listing VMs"):
        for other in conn.listAllDomains(0):
            if other.UUIDString() != dom.UUIDString():
                try:
                    others |= domxml.disk_paths(domxml.parse(other.XMLDesc(0)))
                except (libvirt.libvirtError, TaskError):
                    continue
    found: dict[str, tuple[str, libvirt.virStorageVol]] = {}
    for disk in domxml.disks(root):
        if disk.device != "disk" or disk.readonly or disk.shareable:
            ctx.logger.info(
                "keeping %s (%s%s)", disk.label, disk.device, ", read-only" if disk.readonly else ""
            )
            continue
        try:
            if disk.pool and disk.volume:
                vol = _pool(conn, disk.pool).storageVolLookupByName(disk.volume)
            elif disk.path:
                vol = conn.storageVolLookupByPath(disk.path)
            else:
                continue
        except libvirt.libvirtError as err:
            ctx.logger.warning(
                "keeping %s: not a storage volume libvirt manages (%s)", disk.label, client.message(err)
            )
            continue
        except TaskError as err:  # its pool is gone
            ctx.logger.warning("keeping %s: %s", disk.label, err)
            continue
        path = vol.path()
        if {path, disk.label} & others:
            ctx.logger.warning("keeping %s: another VM uses it", path)
            continue
        found.setdefault(vol.key(), (path, vol))
    return list(found.values())


TASKS = (ListVms, CreateVm, UpdateVm, StartVm, StopVm, DeleteVm)
