"""Roost plugin for NetBox: sites, devices and IP addresses through pynetbox."""

__version__ = "0.1.0"
