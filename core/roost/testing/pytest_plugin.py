"""pytest fixtures for plugin authors (registered through the ``pytest11`` entry point).

- ``roost_plugins``: a fresh plugin set (entry points loaded), installed as the process-wide one;
- ``roost_engine``: a started engine over a temporary SQLite store;
- ``run_flow``: deploy YAML text and run it to the end on that engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def roost_plugins() -> Iterator[Any]:
    from roost.plugins import Plugins, get_plugins, set_plugins

    previous = get_plugins()
    fresh = Plugins()
    set_plugins(fresh)
    try:
        yield fresh
    finally:
        set_plugins(previous)


@pytest.fixture
def roost_engine(tmp_path: Path) -> Iterator[Any]:
    from roost.engine.engine import Engine
    from roost.store.db import Store

    engine = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=4)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
        engine.store.close()


@pytest.fixture
def run_flow(roost_engine: Any) -> Callable[..., Any]:
    def run(source: str, inputs: dict[str, Any] | None = None, timeout: float = 60, **kw: Any) -> Any:
        flow = roost_engine.deploy(source)
        return roost_engine.run(flow, inputs, timeout=timeout, **kw)

    return run
