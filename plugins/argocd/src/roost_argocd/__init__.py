"""Roost plugin for the Argo CD REST API (import name ``roost_argocd``)."""

__version__ = "0.1.0"
