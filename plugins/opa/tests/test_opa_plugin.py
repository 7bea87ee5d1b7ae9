"""Packaging: the entry point registers every type, every property is documented, imports stay lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from roost_opa import tasks

EXPECTED = {
    f"io.kestra.plugin.ee.opa.policy.{name}" for name in ("Upload", "List", "Delete", "Evaluate", "Compile")
}


def test_entry_point_registers_every_type(monkeypatch):
    from roost.plugins import Plugins

    monkeypatch.setenv("ROOST_LOAD_PLUGINS", "opa")
    plugins = Plugins()
    assert not [b for b in plugins.broken if b.name == "opa"]
    assert set(plugins.task_types()) >= EXPECTED
    assert plugins.info["opa"].distribution == "roost-plugin-opa"


def test_plugin_module_imports_no_task_code():
    code = "import sys, roost_opa.plugin; print('roost_opa.tasks' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _undocumented(model: type) -> list[str]:
    return [name for name, info in model.model_fields.items() if not info.description]


@pytest.mark.parametrize("task", tasks.TASKS, ids=lambda t: t.__name__)
def test_every_property_and_output_is_documented(task):
    assert task.__doc__ and task.__doc__.strip()
    assert _undocumented(task) == []
    assert _undocumented(task.Out) == []
    schema = task.model_json_schema(by_alias=True)
    assert {"url", "token"} <= set(schema["properties"])
