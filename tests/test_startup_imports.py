"""What a short command pays for at start-up: names load on first use (profiled, see bench/RESULTS.md)."""

from __future__ import annotations

import subprocess
import sys


def _loaded(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_import_roost_leaves_scripts_ui_and_server_unloaded():
    out = _loaded(
        "import sys, roost\n"
        "print(sorted(m for m in ('roost.scripts', 'roost.uikit', 'roost.rest', 'fastapi', 'sqlalchemy') if m in sys.modules))"
    )
    assert out == "[]"


def test_lazy_names_resolve():
    out = _loaded(
        "import roost, roost.server\n"
        "print(roost.ScriptTask.__module__, roost.UiPage.__module__, roost.ApiClient.__module__,"
        " roost.server.ServerConfig.__module__, roost.server.create_app.__module__)"
    )
    assert out.split() == [
        "roost.scripts",
        "roost.uikit",
        "roost.rest",
        "roost.server.config",
        "roost.server.app",
    ]


def test_the_server_configuration_reads_without_the_web_stack():
    out = _loaded("import sys, roost.server.config\nprint('fastapi' in sys.modules)")
    assert out == "False"
