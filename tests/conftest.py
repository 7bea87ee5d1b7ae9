"""Shared fixtures: the engine fixtures come from roost.testing's pytest plugin."""

from __future__ import annotations

import os
import textwrap
from typing import Any

import pytest

# Core tests see only the built-in plugin, whatever else is installed in the environment.
os.environ.setdefault("ROOST_LOAD_PLUGINS", "")


def flow(body: str, id: str = "test", namespace: str = "company.team") -> str:
    """A flow's YAML from its body (tasks, inputs...), with id and namespace added."""
    return f"id: {id}\nnamespace: {namespace}\n" + textwrap.dedent(body)


@pytest.fixture
def states() -> Any:
    def of(execution: Any) -> dict[str, str]:
        return {
            tr.task_id + (f"[{tr.value}]" if tr.value is not None else ""): tr.state.current
            for tr in execution.task_runs
        }

    return of
