"""NetBox task types, one module per resource: sites, devices and IPAM.

Type ids follow Kestra's NetBox plugin (``io.kestra.plugin.ee.netbox.*``); the earlier flat
ids (``io.kestra.plugin.ee.netbox.CreateDevice``...) and ``io.kestra.plugin.netbox.*`` are
accepted as aliases.
"""

from __future__ import annotations

from roost_netbox.tasks.devices import CreateDevice, ListDevices, UpdateDevice
from roost_netbox.tasks.ipam import AssignIpAddress
from roost_netbox.tasks.sites import ListSites

TASKS = (ListSites, ListDevices, CreateDevice, UpdateDevice, AssignIpAddress)
"""Every task type, in the order the registry lists them."""

__all__ = ["TASKS", "AssignIpAddress", "CreateDevice", "ListDevices", "ListSites", "UpdateDevice"]
