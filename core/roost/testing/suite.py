"""The standard suite every task and trigger type must pass (as Prefect's integration suite).

Subclass it in a plugin's tests::

    from roost.testing.suite import TypeSuite
    from roost_kvm import tasks

    class TestKvmTypes(TypeSuite):
        types = tasks.TASKS
        examples = [EXAMPLE_FLOW_YAML]

Each type's JSON schema must render, the type and every property must be
described, and each example flow must validate.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from roost.flow.task import PluginType, Task, Trigger

BASE_FIELDS = set(Task.model_fields) | set(Trigger.model_fields)


def problems(cls: type[PluginType]) -> list[str]:
    """What the standard suite finds wrong with one type (empty when it passes)."""
    from roost.flow.schema import type_schema

    found: list[str] = []
    if not getattr(cls, "type_id", ""):
        found.append(f"{cls.__name__}: no type id (declare it with type=...)")
    if not (cls.__doc__ or "").strip():
        found.append(f"{cls.__name__}: no docstring")
    try:
        schema = type_schema(cls)
    except Exception as exc:
        return [*found, f"{cls.__name__}: JSON schema fails to render: {exc}"]
    props = schema.get("properties", {})
    for name, field in cls.model_fields.items():
        if name in BASE_FIELDS:
            continue
        alias = field.alias or name
        if not (field.description or "").strip():
            found.append(f"{cls.type_id}: property '{alias}' has no description (add a docstring under it)")
        if alias not in props:
            found.append(f"{cls.type_id}: property '{alias}' missing from the JSON schema")
    return found


class TypeSuite:
    """Base test class: set ``types`` (and optionally ``examples``) in a subclass."""

    types: ClassVar[tuple[type[PluginType], ...] | list[type[PluginType]]] = ()
    examples: ClassVar[list[str]] = []

    def test_types_are_declared(self) -> None:
        assert self.types, "set `types` to the plugin's task and trigger classes"

    def test_standard_checks(self) -> None:
        issues = [p for cls in self.types for p in problems(cls)]
        assert not issues, "\n".join(issues)

    def test_examples_validate(self) -> None:
        from roost.flow.build import parse_flow
        from roost.plugins import Plugins

        plugins: Any = Plugins()
        for example in self.examples:
            parse_flow(example, plugins)

    @pytest.fixture(autouse=True)
    def _isolated(self) -> None:
        return None
