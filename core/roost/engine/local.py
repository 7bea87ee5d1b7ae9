"""Local runs: ``roost flow run`` and ``roost.run()`` on embedded storage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from roost.engine.engine import Engine
from roost.engine.model import Execution
from roost.flow.model import Flow
from roost.store.db import Store


def default_home() -> Path:
    return Path(os.environ.get("ROOST_HOME", ".roost"))


def open_engine(home: Path | str | None = None, **kw: Any) -> Engine:
    home = Path(home or default_home())
    store = Store.sqlite(home)
    return Engine(store, home, **kw)


def load_source(flow: Any) -> str:
    if isinstance(flow, Path) or (isinstance(flow, str) and "\n" not in flow and Path(flow).is_file()):
        return Path(flow).read_text()
    if isinstance(flow, Flow):
        from roost.flow.build import flow_source

        return flow_source(flow)
    return str(flow)


def run_flow(
    flow: Any,
    inputs: dict[str, Any] | None = None,
    *,
    flows: list[Path | str] | None = None,
    home: Path | str | None = None,
    labels: dict[str, str] | None = None,
    timeout: float | None = None,
    engine: Engine | None = None,
) -> Execution:
    """Deploy ``flow`` (and every flow under ``flows``) and run it to the end."""
    own = engine is None
    eng = engine or open_engine(home)
    try:
        for folder in flows or []:
            for path in sorted(Path(folder).rglob("*.y*ml")):
                eng.deploy(path.read_text())
        deployed = eng.deploy(load_source(flow))
        if own:
            eng.start()
        return eng.run(deployed, inputs, labels=labels, timeout=timeout)
    finally:
        if own:
            eng.stop()
