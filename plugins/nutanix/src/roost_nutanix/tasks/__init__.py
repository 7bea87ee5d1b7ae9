"""Nutanix task types: AHV VMs, templates and snapshots on Prism Central (v4 APIs), one module
per resource.

Type ids and property names follow Kestra's Nutanix plugin
(``io.kestra.plugin.ee.nutanix.ahv.*`` and ``io.kestra.plugin.ee.nutanix.snapshot.*``),
which drives the VMM v4 and data protection v4 APIs.
"""

from __future__ import annotations

from roost_nutanix.tasks.snapshots import (
    CreateVmSnapshot,
    DeleteVmSnapshot,
    ListVmSnapshots,
    RestoreVmSnapshot,
)
from roost_nutanix.tasks.templates import CloneTemplate, ConvertTemplateToVm, ConvertVmToTemplate
from roost_nutanix.tasks.vms import (
    CloneVm,
    CreateVm,
    DeleteVm,
    ListVms,
    RebootVm,
    ResetVm,
    StartVm,
    StopVm,
    UpdateVm,
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
"""Every task type, in the order the registry lists them."""

__all__ = [
    "TASKS",
    "CloneTemplate",
    "CloneVm",
    "ConvertTemplateToVm",
    "ConvertVmToTemplate",
    "CreateVm",
    "CreateVmSnapshot",
    "DeleteVm",
    "DeleteVmSnapshot",
    "ListVmSnapshots",
    "ListVms",
    "RebootVm",
    "ResetVm",
    "RestoreVmSnapshot",
    "StartVm",
    "StopVm",
    "UpdateVm",
]
