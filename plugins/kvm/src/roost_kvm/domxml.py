"""Libvirt domain XML: build it from task properties, read and adjust it, find its storage.

Pure functions over :mod:`xml.etree.ElementTree`; nothing here talks to libvirt.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from roost import TaskError

_TARGET_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd", "xen": "xvd"}


def parse(xml: str, what: str = "domain XML") -> ET.Element:
    """Parse ``xml``; a malformed document is a :class:`TaskError` naming the parser's complaint."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise TaskError(f"invalid {what}: {exc}") from None
    return root


def to_string(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


def domain_name(root: ET.Element) -> str | None:
    if root.tag != "domain":
        raise TaskError(f"the XML definition must have a <domain> root element, not <{root.tag}>")
    text = root.findtext("name")
    return text.strip() if text and text.strip() else None


def domain_uuid(root: ET.Element) -> str | None:
    text = root.findtext("uuid")
    return text.strip().lower() if text and text.strip() else None


def set_name(root: ET.Element, name: str) -> None:
    node = root.find("name")
    if node is None:
        node = ET.Element("name")
        root.insert(0, node)
    node.text = name


def ensure_uuid(root: ET.Element, uuid: str, name: str) -> None:
    """Keep a redefinition bound to the existing domain: add its UUID, refuse a different one."""
    current = domain_uuid(root)
    if current is None:
        node = ET.Element("uuid")
        node.text = uuid
        root.insert(1, node)
    elif current != uuid.lower():
        raise TaskError(
            f"the XML definition has UUID {current} but VM '{name}' has UUID {uuid}: "
            "remove <uuid> from the XML or use the VM's own"
        )


def set_resources(root: ET.Element, memory_mib: int | None, vcpus: int | None) -> None:
    """Set the boot memory (``<memory>`` and ``<currentMemory>``) and the vCPU count."""
    if memory_mib is not None:
        for tag in ("memory", "currentMemory"):
            node = root.find(tag)
            if node is None:
                node = ET.SubElement(root, tag)
            node.set("unit", "MiB")
            node.text = str(memory_mib)
    if vcpus is not None:
        node = root.find("vcpu")
        if node is None:
            node = ET.SubElement(root, "vcpu")
        node.attrib.pop("current", None)
        node.text = str(vcpus)


@dataclass(frozen=True)
class DiskRef:
    """A disk of a domain that may be backed by a libvirt storage volume."""

    target: str | None
    device: str
    source_type: str
    pool: str | None = None
    volume: str | None = None
    path: str | None = None
    readonly: bool = False
    shareable: bool = False

    @property
    def label(self) -> str:
        if self.pool and self.volume:
            return f"{self.pool}/{self.volume}"
        return self.path or "?"


def disks(root: ET.Element) -> list[DiskRef]:
    """Every ``<disk>`` of the domain with where its data lives."""
    found = []
    for disk in root.findall("./devices/disk"):
        source = disk.find("source")
        target = disk.find("target")
        src = source.attrib if source is not None else {}
        found.append(
            DiskRef(
                target=target.get("dev") if target is not None else None,
                device=disk.get("device", "disk"),
                source_type=disk.get("type", "file"),
                pool=src.get("pool"),
                volume=src.get("volume"),
                path=src.get("file") or src.get("dev"),
                readonly=disk.find("readonly") is not None,
                shareable=disk.find("shareable") is not None,
            )
        )
    return found


def disk_paths(root: ET.Element) -> set[str]:
    """Paths and pool/volume labels of every disk (to tell whether another domain shares one)."""
    refs = disks(root)
    return {d.label for d in refs} | {d.path for d in refs if d.path}


@dataclass
class DiskSpec:
    """A disk to put in a generated domain (validated task properties)."""

    pool: str | None = None
    volume: str | None = None
    path: str | None = None
    size_mib: int | None = None
    format: str | None = None
    device: str = "disk"
    bus: str | None = None
    target: str | None = None
    readonly: bool = False


@dataclass
class NicSpec:
    """A network interface of a generated domain."""

    network: str | None = None
    bridge: str | None = None
    model: str = "virtio"
    mac: str | None = None


def build_domain(
    *,
    name: str,
    memory_mib: int,
    vcpus: int,
    domain_type: str,
    arch: str | None,
    machine: str | None,
    boot: list[str],
    disks: list[DiskSpec],
    nics: list[NicSpec],
    uuid: str | None = None,
) -> str:
    """A complete, headless domain definition (ACPI on, so a graceful shutdown reaches the guest)."""
    dom = ET.Element("domain", {"type": domain_type})
    ET.SubElement(dom, "name").text = name
    if uuid:
        ET.SubElement(dom, "uuid").text = uuid
    ET.SubElement(dom, "memory", {"unit": "MiB"}).text = str(memory_mib)
    ET.SubElement(dom, "currentMemory", {"unit": "MiB"}).text = str(memory_mib)
    ET.SubElement(dom, "vcpu", {"placement": "static"}).text = str(vcpus)
    os_el = ET.SubElement(dom, "os")
    type_attrs = {}
    if arch:
        type_attrs["arch"] = arch
    if machine:
        type_attrs["machine"] = machine
    ET.SubElement(os_el, "type", type_attrs).text = "hvm"
    for dev in boot:
        ET.SubElement(os_el, "boot", {"dev": dev})
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    if arch is None or arch in ("x86_64", "i686"):
        ET.SubElement(features, "apic")
    devices = ET.SubElement(dom, "devices")
    used: set[str] = set()
    for spec in disks:
        devices.append(_disk_element(spec, used))
    for nic in nics:
        devices.append(_nic_element(nic))
    serial = ET.SubElement(devices, "serial", {"type": "pty"})
    ET.SubElement(serial, "target", {"port": "0"})
    console = ET.SubElement(devices, "console", {"type": "pty"})
    ET.SubElement(console, "target", {"type": "serial", "port": "0"})
    ET.indent(dom)
    return to_string(dom)


def _next_target(bus: str, used: set[str]) -> str:
    prefix = _TARGET_PREFIX.get(bus, "sd")
    for i in range(26 * 27):
        suffix = chr(ord("a") + i % 26) if i < 26 else chr(ord("a") + i // 26 - 1) + chr(ord("a") + i % 26)
        if prefix + suffix not in used:
            return prefix + suffix
    raise TaskError(f"too many disks on bus '{bus}'")  # pragma: no cover - 700 disks


def _disk_element(spec: DiskSpec, used: set[str]) -> ET.Element:
    bus = spec.bus or ("sata" if spec.device == "cdrom" else "virtio")
    if spec.pool and spec.volume:
        disk = ET.Element("disk", {"type": "volume", "device": spec.device})
        source = {"pool": spec.pool, "volume": spec.volume}
    else:
        disk = ET.Element("disk", {"type": "file", "device": spec.device})
        source = {"file": spec.path or ""}
    driver = {"name": "qemu"}
    if spec.format:
        driver["type"] = spec.format
    ET.SubElement(disk, "driver", driver)
    ET.SubElement(disk, "source", source)
    target = spec.target or _next_target(bus, used)
    if target in used:
        raise TaskError(f"two disks use the target device '{target}'")
    used.add(target)
    ET.SubElement(disk, "target", {"dev": target, "bus": bus})
    if spec.readonly or spec.device == "cdrom":
        ET.SubElement(disk, "readonly")
    return disk


def _nic_element(spec: NicSpec) -> ET.Element:
    if spec.bridge:
        nic = ET.Element("interface", {"type": "bridge"})
        ET.SubElement(nic, "source", {"bridge": spec.bridge})
    else:
        nic = ET.Element("interface", {"type": "network"})
        ET.SubElement(nic, "source", {"network": spec.network or "default"})
    if spec.mac:
        ET.SubElement(nic, "mac", {"address": spec.mac})
    ET.SubElement(nic, "model", {"type": spec.model})
    return nic


def volume_xml(name: str, size_mib: int, fmt: str) -> str:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", {"unit": "MiB"}).text = str(size_mib)
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", {"type": fmt})
    return to_string(vol)
