"""Roost plugin for the Open Policy Agent REST API (import name ``roost_opa``)."""

__version__ = "0.1.0"
