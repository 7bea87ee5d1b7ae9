"""Packaging: the entry point registers every type, every property is documented, imports stay lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from roost_trello import cards

TASKS = {f"io.kestra.plugin.trello.cards.{name}" for name in ("Create", "Update", "Move", "Comment")}


def test_entry_point_registers_every_type(monkeypatch):
    from roost.plugins import Plugins

    monkeypatch.setenv("ROOST_LOAD_PLUGINS", "trello")
    plugins = Plugins()
    assert not [b for b in plugins.broken if b.name == "trello"]
    assert set(plugins.task_types()) >= TASKS
    assert plugins.types["io.kestra.plugin.trello.cards.Trigger"] is cards.Trigger
    assert plugins.info["trello"].distribution == "roost-plugin-trello"


def test_plugin_module_imports_no_task_code():
    code = (
        "import sys, roost_trello.plugin; print('roost_trello.cards' in sys.modules, 'httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def _undocumented(model: type) -> list[str]:
    return [name for name, info in model.model_fields.items() if not info.description]


@pytest.mark.parametrize("kind", [*cards.TASKS, *cards.TRIGGERS], ids=lambda t: t.__name__)
def test_every_property_and_output_is_documented(kind):
    assert kind.__doc__ and kind.__doc__.strip()
    assert _undocumented(kind) == []
    assert _undocumented(kind.Out) == []
    assert {"apiKey", "apiToken", "apiBaseUrl", "apiVersion"} <= set(
        kind.model_json_schema(by_alias=True)["properties"]
    )


def test_outputs_nested_models_are_documented():
    assert _undocumented(cards.Card) == [] and _undocumented(cards.ChangedCard) == []
