"""Roost plugin for Canonical MAAS (Metal as a Service), API 2.0."""

__version__ = "0.1.0"
