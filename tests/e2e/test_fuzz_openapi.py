"""Schema-driven fuzz of the server's own OpenAPI document (schemathesis + hypothesis), against a real process.

Every operation gets generated requests; no answer may be a 5xx, and every
answer must match the status codes, content types and schemas the document
declares. Bounded by ``ROOST_FUZZ_EXAMPLES`` examples per operation (default 12)
so that the whole run stays around a minute.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import ServerProcess, flow_yaml  # noqa: E402

pytestmark = pytest.mark.e2e
EXAMPLES = int(os.environ.get("ROOST_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess("local", tmp_path_factory.mktemp("roost-fuzz") / "data").wait_ready()
    api = httpx.Client(base_url=proc.url + "/api/v1/main", timeout=30)
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
    api.post("/executions/company.team/fuzz", params={"wait": "true"})
    api.put("/namespaces/company.team/kv/k", content="1")
    api.post("/namespaces/company.team/files", params={"path": "/a.txt"}, files={"fileContent": ("a.txt", b"a")})
    yield proc
    api.close()
    proc.stop()


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_server: ServerProcess) -> Any:
    config = schemathesis.Config.from_dict({"parameters": {"tenant": "main"}})
    return schemathesis.openapi.from_url(fuzz_server.url + "/api/v1/openapi.json", config=config)


def test_openapi_fuzz(fuzz_schema: Any) -> None:
    """Each operation in turn (schemathesis' own pytest plugin does not load under pytest 9)."""
    from hypothesis import given

    checks = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
    failures: list[str] = []
    count = 0
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        count += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case: Any) -> None:
            case.call_and_validate(checks=checks, timeout=30)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert count > 40, f"only {count} operations in the document"
    assert not failures, "\n\n".join(failures)
