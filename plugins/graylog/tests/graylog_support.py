"""Flows the tests run: a generator of log lines, and LogShipper flows shaped as Kestra documents them."""

from __future__ import annotations

import textwrap
from typing import Any

# Kestra's documented example for its Graylog log exporter, as written on kestra.io; the endpoint is
# replaced by the fake input's.
KESTRA_EXAMPLE = """
id: log_shipper
namespace: company.team

triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"

tasks:
  - id: log_export
    type: io.kestra.plugin.ee.core.log.LogShipper
    logLevelFilter: INFO
    lookbackPeriod: P1D
    logExporters:
      - id: GraylogExporter
        type: io.kestra.plugin.ee.graylog.LogExporter
        endpoint: "http://localhost:12201/gelf"
        graylogHost: "Kestra"
        chunk: 1000
"""


def noisy(lines: int, id: str = "noisy", namespace: str = "company.team", prefix: str = "line") -> str:
    """A flow whose one task prints ``lines`` lines (one INFO log line each)."""
    return textwrap.dedent(f"""
        id: {id}
        namespace: {namespace}
        tasks:
          - id: print
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - seq 1 {lines} | sed 's/^/{prefix} /'
    """)


def shipper(exporter: dict[str, Any], *, flow_id: str | None = "noisy", extra: dict[str, Any] | None = None,
            id: str = "ship") -> str:  # fmt: skip
    """A LogShipper flow (namespace ``system``) with one Graylog exporter, as YAML."""
    import json

    task: dict[str, Any] = {"id": "ship", "type": "io.kestra.plugin.ee.core.log.LogShipper",
                            "logExporters": [{"id": "graylog", "type": "io.kestra.plugin.ee.graylog.LogExporter", **exporter}]}  # fmt: skip
    if flow_id:
        task["flowId"] = flow_id
    task.update(extra or {})
    return json.dumps({"id": id, "namespace": "system", "tasks": [task]})  # JSON is YAML


def lines_of(messages: list[dict[str, Any]], flow_id: str = "noisy", prefix: str = "line") -> list[str]:
    return [m["message"] for m in messages if m.get("flowId") == flow_id and m["message"].startswith(prefix)]
