"""Schema-driven fuzz of the server's own OpenAPI document, against a real server process.

Schemathesis (its CLI: the pytest plugin does not load under pytest 9) generates
requests for every operation, in its coverage phase (boundary and invalid
values) and its fuzzing phase (hypothesis). No answer may be a 5xx, and every
answer must match the status codes, content types and schemas the document
declares. Half of the identifiers it generates name things that exist, so
requests get past the 404s. ``ROOST_FUZZ_EXAMPLES`` (default 15 per operation)
bounds the run to about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("schemathesis")

from tests.e2e.conftest import ServerProcess, flow_yaml  # noqa: E402

pytestmark = pytest.mark.e2e
EXAMPLES = int(os.environ.get("ROOST_FUZZ_EXAMPLES", "15"))
# Without filters these act on everything: each replay-by-query call doubles the executions, the deletes
# remove the seeded flow and execution the rest of the run needs. Their by-ids twins are fuzzed.
EVERYTHING_AT_ONCE = ("replayExecutionsByQuery", "deleteExecutionsByQuery", "deleteFlowsByQuery")


def seed(api: httpx.Client) -> str:
    """A flow (with a webhook), one finished execution, a key and a namespace file; returns the execution id."""
    src = flow_yaml("""
        inputs:
          - id: name
            type: STRING
            defaults: x
        tasks:
          - id: hello
            type: io.kestra.plugin.core.log.Log
            message: "{{ inputs.name }}"
        triggers:
          - id: hook
            type: io.kestra.plugin.core.trigger.Webhook
            key: key
        """, "fuzz", "company.team")  # fmt: skip
    assert api.post("/flows", content=src, headers={"content-type": "application/x-yaml"}).status_code == 200
    execution_id = api.post("/executions/company.team/fuzz", params={"wait": "true"}).json()["id"]
    api.put("/namespaces/company.team/kv/k", content="1")
    api.post(
        "/namespaces/company.team/files", params={"path": "/a.txt"}, files={"fileContent": ("a.txt", b"a")}
    )
    return execution_id


def config_toml(execution_id: str) -> str:
    dictionaries = {"ns": ["company.team"], "flow": ["fuzz"], "hook": ["hook"], "execution": [execution_id],
                    "file": ["/a.txt", "/"], "key": ["k", "key"]}  # fmt: skip
    bound = {"path.namespace": "ns", "path.id": "flow", "path.flowId": "flow", "path.key": "key",
             "path.executionId": "execution", "query.path": "file", "path.triggerId": "hook"}  # fmt: skip
    lines = ["[dictionaries]"]
    lines += [f"{name} = {{ values = {json.dumps(values)} }}" for name, values in dictionaries.items()]
    lines += ["[parameters]", 'tenant = "main"']
    lines += [f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}' for key, name in bound.items()]
    return "\n".join(lines) + "\n"


def test_openapi_fuzz(tmp_path: Path) -> None:
    proc = ServerProcess("local", tmp_path / "data").wait_ready()
    try:
        with httpx.Client(base_url=proc.url + "/api/v1/main", timeout=30) as api:
            execution_id = seed(api)
        config = tmp_path / "schemathesis.toml"
        config.write_text(config_toml(execution_id))
        checks = (
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
        )
        run: Any = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", proc.url + "/api/v1/openapi.json",
             "--checks", checks, "--max-examples", str(EXAMPLES), "--phases", "examples,coverage,fuzzing",
             "--seed", "20240601", "--no-color", "--request-timeout", "30",
             *(arg for op in EVERYTHING_AT_ONCE for arg in ("--exclude-operation-id", op))],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )  # fmt: skip
        report = run.stdout + run.stderr
        assert run.returncode == 0, report[-20000:]
        assert "Tested: " in report
        server_log = proc.log.read_text()
        assert "unhandled error" not in server_log, server_log[-5000:]
    finally:
        proc.stop()
