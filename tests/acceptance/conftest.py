"""Acceptance: the seed's examples (copies in tests/acceptance/flows), run unmodified, with local stand-ins.

Each test says which stand-in it supplies; none edits a flow's tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from acceptance_support import FLOWS, acceptance_flow  # noqa: F401
from roost.engine.engine import Engine
from roost.store.db import Store


@pytest.fixture
def plugin_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plugin-defaults folder (instance.yaml, <namespace>.yaml), as a user keeps them."""
    folder = tmp_path / "plugin-defaults"
    folder.mkdir()
    monkeypatch.setenv("ROOST_PLUGIN_DEFAULTS", str(folder))
    return folder


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.delenv("ROOST_LOAD_PLUGINS", raising=False)  # the plugins these flows need are installed here
    from roost.plugins import Plugins

    eng = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", plugins=Plugins(), workers=4)
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()


@pytest.fixture
def run(engine: Engine) -> Callable[..., Any]:
    def go(source: str, inputs: dict[str, Any] | None = None, timeout: float = 180) -> Any:
        return engine.run(engine.deploy(source), inputs, timeout=timeout)

    return go
