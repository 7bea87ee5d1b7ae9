"""The plugin registers through its entry point, and every type documents itself."""

from __future__ import annotations

import sys

import pytest
from roost_jdbc import tasks

EXPECTED = {
    f"io.kestra.plugin.jdbc.{db}.{kind}"
    for db in ("sqlite", "postgresql", "duckdb", "mysql")
    for kind in ("Query", "Queries")
}


def test_entry_point_registers_every_type(roost_plugins):
    owned = {tid for tid in roost_plugins.types if roost_plugins.type_owner(tid) == "jdbc"}
    assert owned == EXPECTED
    assert roost_plugins.info["jdbc"].distribution == "roost-plugin-jdbc"


def test_discovery_does_not_import_drivers():
    import subprocess

    code = (
        "import sys, roost_jdbc.plugin; "
        "heavy = [m for m in ('duckdb', 'psycopg', 'pymysql', 'sqlglot') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


@pytest.mark.parametrize("cls", tasks.TASKS, ids=lambda c: c.type_id)
def test_every_property_and_output_is_documented(cls):
    assert cls.__doc__ and cls.__doc__.strip()
    schema = cls.model_json_schema(by_alias=True)
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{cls.type_id}: property {name} has no description"
    for name, info in cls.Out.model_fields.items():
        assert info.description, f"{cls.type_id}: output {name} has no description"
    props = set(schema["properties"])
    assert {
        "url",
        "username",
        "password",
        "sql",
        "fetchType",
        "fetchSize",
        "parameters",
        "timeZoneId",
    } <= props
    if cls.type_id.endswith("Queries"):
        assert "transaction" in props
    if ".sqlite." in cls.type_id:
        assert {"sqliteFile", "outputDbFile"} <= props
    if ".duckdb." in cls.type_id:
        assert {"databaseUri", "outputDbFile"} <= props


def test_fetch_type_is_validated():
    with pytest.raises(ValueError):
        tasks.SqliteQuery.model_validate(
            {"id": "q", "type": tasks.SqliteQuery.type_id, "sql": "select 1", "fetchType": "ALL"}
        )
    task = tasks.SqliteQuery.model_validate(
        {"id": "q", "type": tasks.SqliteQuery.type_id, "sql": "select 1", "fetchType": "{{ inputs.mode }}"}
    )
    assert task.fetch_type == "{{ inputs.mode }}"
