"""Packaging: the entry point registers every type, every property is documented, imports stay lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from roost_argocd import tasks

EXPECTED = {"io.kestra.plugin.argocd.apps.Sync", "io.kestra.plugin.argocd.apps.Status"}


def test_entry_point_registers_every_type(monkeypatch):
    from roost.plugins import Plugins

    monkeypatch.setenv("ROOST_LOAD_PLUGINS", "argocd")
    plugins = Plugins()
    assert not [b for b in plugins.broken if b.name == "argocd"]
    assert set(plugins.task_types()) >= EXPECTED
    assert plugins.info["argocd"].distribution == "roost-plugin-argocd"
    assert tasks.Sync.type_aliases == ("io.kestra.plugin.argocd.app.Sync",)


def test_plugin_module_imports_no_task_code():
    code = (
        "import sys, roost_argocd.plugin; print('roost_argocd.tasks' in sys.modules, 'httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def _undocumented(model: type) -> list[str]:
    return [name for name, info in model.model_fields.items() if not info.description]


@pytest.mark.parametrize("task", tasks.TASKS, ids=lambda t: t.__name__)
def test_every_property_and_output_is_documented(task):
    assert task.__doc__ and task.__doc__.strip()
    assert _undocumented(task) == []
    assert _undocumented(task.Out) == []
    schema = task.model_json_schema(by_alias=True)
    assert {"server", "token", "application", "insecure", "serverCert", "argoCDVersion"} <= set(
        schema["properties"]
    )
