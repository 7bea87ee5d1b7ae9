"""Roost plugin for the Cloudflare API v4 (import name ``roost_cloudflare``)."""

__version__ = "0.1.0"
