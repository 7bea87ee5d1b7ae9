"""Shared fixtures: the engine fixtures come from roost.testing's pytest plugin."""

from __future__ import annotations

import os
from typing import Any

import pytest

# Core tests see only the built-in plugin, whatever else is installed in the environment.
os.environ.setdefault("ROOST_LOAD_PLUGINS", "")


@pytest.fixture
def states() -> Any:
    def of(execution: Any) -> dict[str, str]:
        return {
            tr.task_id + (f"[{tr.value}]" if tr.value is not None else ""): tr.state.current
            for tr in execution.task_runs
        }

    return of
