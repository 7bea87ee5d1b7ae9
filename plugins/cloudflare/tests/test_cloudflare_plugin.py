"""Packaging: the entry point registers every type, every property is documented, imports stay lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from roost_cloudflare import tasks

EXPECTED = {
    "io.kestra.plugin.cloudflare.dns.records.Create",
    "io.kestra.plugin.cloudflare.dns.records.Update",
    "io.kestra.plugin.cloudflare.dns.records.Delete",
    "io.kestra.plugin.cloudflare.dns.records.Get",
    "io.kestra.plugin.cloudflare.dns.records.List",
    "io.kestra.plugin.cloudflare.dns.records.Upsert",
    "io.kestra.plugin.cloudflare.dns.records.Batch",
    "io.kestra.plugin.cloudflare.cache.Purge",
    "io.kestra.plugin.cloudflare.waf.accessrules.Create",
    "io.kestra.plugin.cloudflare.waf.accessrules.Delete",
    "io.kestra.plugin.cloudflare.waf.accessrules.List",
    "io.kestra.plugin.cloudflare.compute.kv.Get",
    "io.kestra.plugin.cloudflare.compute.kv.Write",
    "io.kestra.plugin.cloudflare.compute.namespaces.Create",
    "io.kestra.plugin.cloudflare.zones.Get",
    "io.kestra.plugin.cloudflare.zones.List",
}


def test_entry_point_registers_every_type(monkeypatch):
    from roost.plugins import Plugins

    monkeypatch.setenv("ROOST_LOAD_PLUGINS", "cloudflare")
    plugins = Plugins()
    assert not [b for b in plugins.broken if b.name == "cloudflare"]
    assert set(plugins.task_types()) >= EXPECTED
    assert plugins.type_owner("io.kestra.plugin.cloudflare.waf.Create") == "cloudflare"
    assert plugins.info["cloudflare"].distribution == "roost-plugin-cloudflare"
    assert {t.type_id for t in tasks.TASKS} == EXPECTED


def test_plugin_module_imports_no_task_code():
    code = "import sys, roost_cloudflare.plugin; print('roost_cloudflare.tasks' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _undocumented(model: type) -> list[str]:
    return [name for name, info in model.model_fields.items() if not info.description]


@pytest.mark.parametrize("task", tasks.TASKS, ids=lambda t: t.type_id.rsplit(".", 2)[-2] + "." + t.__name__)
def test_every_property_and_output_is_documented(task):
    assert task.__doc__ and task.__doc__.strip()
    assert _undocumented(task) == []
    assert _undocumented(task.Out) == []
    schema = task.model_json_schema(by_alias=True)
    assert "apiToken" in schema["properties"]
    for name, field in task.model_fields.items():
        annotation = getattr(field.annotation, "model_fields", None)
        if annotation:
            assert _undocumented(field.annotation) == [], name
