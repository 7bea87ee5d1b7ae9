"""Roost plugin for the Trello REST API (import name ``roost_trello``)."""

__version__ = "0.1.0"
