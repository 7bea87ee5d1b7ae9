"""Helpers shared by the core tests."""

from __future__ import annotations

import textwrap


def flow(body: str, id: str = "test", namespace: str = "company.team") -> str:
    """A flow's YAML from its body (tasks, inputs...), with id and namespace added."""
    return f"id: {id}\nnamespace: {namespace}\n" + textwrap.dedent(body)
