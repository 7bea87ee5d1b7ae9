"""The ``roost`` command line, run as a subprocess the way users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ACCEPTANCE = Path(__file__).resolve().parent / "acceptance" / "flows"
ENV = {**os.environ, "ROOST_LOAD_PLUGINS": ""}


def roost(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "roost.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env=env or ENV, timeout=120)  # fmt: skip


HELLO = """
id: hello
namespace: company.team
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }}"
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.name | upper }}"
outputs:
  - id: shout
    type: STRING
    value: "{{ outputs.ret.value }}"
"""


def test_flow_run_json_and_exit_codes(tmp_path):
    (tmp_path / "hello.yaml").write_text(HELLO)
    out = roost("flow", "run", "hello.yaml", "--input", "name=roost", "--output", "json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    ex = json.loads(out.stdout)
    assert ex["state"]["current"] == "SUCCESS" and ex["outputs"] == {"shout": "ROOST"}
    assert "Hello roost" in out.stderr  # live logs

    (tmp_path / "fail.yaml").write_text(
        "id: f\nnamespace: company.team\ntasks:\n  - id: x\n    type: io.kestra.plugin.core.execution.Fail\n"
    )
    out = roost("flow", "run", "fail.yaml", cwd=tmp_path)
    assert out.returncode == 1
    assert "FAILED" in out.stderr


def test_flow_run_bad_input_starts_nothing(tmp_path):
    (tmp_path / "f.yaml").write_text(HELLO.replace("type: STRING\n    defaults: world", "type: INT"))
    out = roost("flow", "run", "f.yaml", "--input", "name=abc", cwd=tmp_path)
    assert out.returncode == 1
    assert "inputs.name" in out.stderr and "expected an integer" in out.stderr


def test_flow_run_with_subflows_folder(tmp_path):
    sub = tmp_path / "flows"
    sub.mkdir()
    (sub / "child.yaml").write_text(
        "id: child\nnamespace: company.team\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: child-ran\noutputs:\n  - id: v\n    type: STRING\n    value: '{{ outputs.r.value }}'\n"
    )
    (tmp_path / "parent.yaml").write_text(
        "id: parent\nnamespace: company.team\ntasks:\n  - id: call\n    type: io.kestra.plugin.core.flow.Subflow\n    namespace: company.team\n    flowId: child\n"
    )
    out = roost("flow", "run", "parent.yaml", "--flows", "flows", "-o", "json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["taskRunList"][0]["outputs"]["outputs"] == {"v": "child-ran"}


def test_flow_validate_reports_and_exit_code(tmp_path):
    (tmp_path / "ok.yaml").write_text(HELLO)
    (tmp_path / "bad.yaml").write_text(
        "id: bad\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
    )
    out = roost("flow", "validate", str(tmp_path), "--output", "json")
    assert out.returncode == 1
    report = {Path(r["file"]).name: r for r in json.loads(out.stdout)}
    assert report["ok.yaml"]["valid"] is True
    assert report["bad.yaml"]["violations"] == [
        {
            "path": "tasks[0].message",
            "message": "missing required property 'message'",
            "line": 4,
            "column": None,
        }
    ]
    text = roost("flow", "validate", str(tmp_path / "bad.yaml"))
    assert "line 4" in text.stdout and "tasks[0].message" in text.stdout


def test_validate_acceptance_flows_names_missing_plugins():
    out = roost("flow", "validate", str(ACCEPTANCE), "--output", "json")
    for result in json.loads(out.stdout):
        for v in result["violations"]:
            assert "provided by the plugin package 'roost-plugin-" in v["message"], v


def test_plugins_list_and_schema(tmp_path):
    out = roost("plugins", "list", "--json")
    data = json.loads(out.stdout)
    core = next(p for p in data["plugins"] if p["name"] == "core")
    assert "io.kestra.plugin.core.flow.ForEach" in core["types"]
    assert "register_task_types" in core["hooks"]
    out = roost("plugins", "schema")
    schema = json.loads(out.stdout)
    one_of = schema["$defs"]["__task"]["oneOf"]
    assert {"$ref": "#/$defs/io.kestra.plugin.core.log.Log"} in one_of
    log = schema["$defs"]["io.kestra.plugin.core.log.Log"]
    assert log["properties"]["type"]["const"] == "io.kestra.plugin.core.log.Log"
    assert log["properties"]["message"]["$dynamic"] is True
    assert log["properties"]["message"]["description"]


def test_plugins_new_yields_an_installable_package_with_a_passing_test(tmp_path):
    out = roost("plugins", "new", "greeter", "--dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    pkg = tmp_path / "greeter"
    venv_site = tmp_path / "site"
    # install it for real (no deps: roost is already here), then run its own tests
    import importlib.util
    import shutil

    if importlib.util.find_spec("pip") is not None:
        installer = [sys.executable, "-m", "pip", "install", "-q"]
    else:
        installer = [shutil.which("uv") or "uv", "pip", "install", "-q", "--python", sys.executable]
    inst = subprocess.run(
        [*installer, "--no-deps", "--target", str(venv_site), str(pkg)], capture_output=True, text=True
    )
    assert inst.returncode == 0, inst.stderr
    env = {**os.environ, "PYTHONPATH": str(venv_site), "ROOST_LOAD_PLUGINS": "greeter"}
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pkg / "tests")],
                          capture_output=True, text=True, env=env, cwd=pkg)  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr


def test_plugins_list_without_a_terminal_is_a_readable_list():
    text = roost("plugins", "list").stdout
    assert "┃" not in text and "│" not in text
    lines = text.splitlines()
    assert lines[0].startswith("core ")
    assert "    io.kestra.plugin.core.flow.ForEach" in lines
