"""Roost plugin for Nutanix Prism Central (v4 APIs): AHV VMs, templates and snapshots."""

__version__ = "0.1.0"
