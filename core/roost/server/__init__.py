"""The HTTP server: Kestra 1.3's API over the engine and store (see :mod:`roost.server.runner` for components).

Names load on first use: ``roost flow run --config`` reads the server configuration
(``roost.server.config``) without importing FastAPI and every route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from roost.server.app import create_app
    from roost.server.config import ServerConfig, load_config
    from roost.server.state import ServerState

_LAZY = {
    "create_app": "roost.server.app",
    "ServerConfig": "roost.server.config",
    "load_config": "roost.server.config",
    "ServerState": "roost.server.state",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'roost.server' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["ServerConfig", "ServerState", "create_app", "load_config"]
