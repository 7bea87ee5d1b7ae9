"""VM definitions between Kestra's shape and VMM v4's, and the assets of VMs, templates and
recovery points."""

from __future__ import annotations

from typing import Any

from roost import Asset, TaskError

VM_ASSET = "io.kestra.plugin.ee.assets.VM"
EXTERNAL_ASSET = "io.kestra.core.models.assets.External"

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
