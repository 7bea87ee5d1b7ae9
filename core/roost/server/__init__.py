"""The HTTP server: Kestra 1.3's API over the engine and store (see :mod:`roost.server.runner` for components)."""

from __future__ import annotations

from roost.server.app import create_app
from roost.server.config import ServerConfig, load_config
from roost.server.state import ServerState

__all__ = ["ServerConfig", "ServerState", "create_app", "load_config"]
