"""Packaging, the standard type checks, Kestra's documented example, the README's flows, GELF encoding."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fake_graylog import decode
from graylog_support import KESTRA_EXAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st
from roost.testing.suite import TypeSuite
from roost_graylog import gelf
from roost_graylog.exporter import GraylogExporter

TYPE = "io.kestra.plugin.ee.graylog.LogExporter"
README = Path(__file__).resolve().parents[1] / "README.md"
README_FLOWS = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)


class TestGraylogTypes(TypeSuite):
    types = (GraylogExporter,)
    examples = [KESTRA_EXAMPLE, *README_FLOWS]


def test_readme_shows_flows():
    assert README_FLOWS and all("io.kestra.plugin.ee.graylog.LogExporter" in f for f in README_FLOWS[:1])


def test_entry_point_registers_the_exporter(monkeypatch):
    from roost.plugins import Plugins

    monkeypatch.setenv("ROOST_LOAD_PLUGINS", "graylog")
    plugins = Plugins()
    assert not [b for b in plugins.broken if b.name == "graylog"]
    assert plugins.log_exporter_types()[TYPE] is GraylogExporter
    assert plugins.info["graylog"].distribution == "roost-plugin-graylog"
    assert "register_log_exporters" in plugins.info["graylog"].hooks


def test_roost_plugins_list_shows_it():
    out = subprocess.run(
        [sys.executable, "-c", "from roost.cli.main import main; main()", "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    plugins = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    assert TYPE in plugins["graylog"]["types"]
    assert "io.kestra.plugin.ee.core.log.LogShipper" in plugins["core"]["types"]


def test_plugin_module_imports_no_exporter_code():
    code = "import sys, roost_graylog.plugin; print('roost_graylog.exporter' in sys.modules, 'httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


# -- GELF ---------------------------------------------------------------------------------------------
RECORD = {"seq": 7, "tenantId": "main", "namespace": "company.team", "flowId": "f", "executionId": "e1",
          "taskId": "t", "taskRunId": "tr1", "timestamp": "2025-03-01T10:20:30.123456Z", "level": "WARN",
          "message": "disk almost full"}  # fmt: skip


def test_a_log_line_as_a_gelf_message():
    message = gelf.message(RECORD, "roost")
    assert message == {
        "version": "1.1", "host": "roost", "short_message": "disk almost full", "timestamp": 1740824430.123,
        "level": 4, "_tenantId": "main", "_namespace": "company.team", "_flowId": "f", "_executionId": "e1",
        "_taskId": "t", "_taskRunId": "tr1", "_logLevel": "WARN",
    }  # fmt: skip
    assert b"\n" not in gelf.encode({**message, "short_message": "a\nb"})
    stored = decode(gelf.encode(message))  # as Graylog's codec reads it
    assert (
        stored["message"] == "disk almost full"
        and stored["namespace"] == "company.team"
        and stored["level"] == 4
    )


def test_absent_fields_are_left_out_and_levels_map_to_syslog():
    message = gelf.message(
        {"timestamp": "2025-03-01T10:20:30Z", "level": "TRACE", "message": "x", "taskId": None}, "h"
    )
    assert "_taskId" not in message and message["level"] == 7
    assert {lvl: gelf.message({**RECORD, "level": lvl}, "h")["level"] for lvl in gelf.SYSLOG_LEVELS} == {
        "ERROR": 3, "WARN": 4, "INFO": 6, "DEBUG": 7, "TRACE": 7,
    }  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=0, max_size=3000), limit=st.integers(min_value=400, max_value=2000))
def test_encode_within_always_fits_and_keeps_a_prefix(text, limit):
    message = gelf.message({**RECORD, "message": text}, "host")
    body, cut = gelf.encode_within(message, limit)
    assert len(body) <= limit
    decoded = json.loads(body)
    if not cut:
        assert decoded == message
        return
    for field in ("short_message", "full_message"):
        if field in decoded and "[truncated by Roost:" in decoded[field]:
            kept = decoded[field].split("… [truncated by Roost:")[0]
            assert message[field].startswith(kept)


def test_a_limit_too_small_for_any_message_is_an_error():
    with pytest.raises(ValueError, match="cannot fit in 40 bytes"):
        gelf.encode_within(gelf.message(RECORD, "host"), 40)
