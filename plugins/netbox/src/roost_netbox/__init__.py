"""Roost plugin for NetBox: sites, devices and IP addresses over its REST API."""

__version__ = "0.1.0"
