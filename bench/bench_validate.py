"""Flow validation throughput. Prints one line per figure.

python bench/bench_validate.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("ROOST_LOAD_PLUGINS", "")

from roost.flow.build import FlowInvalid, parse_flow  # noqa: E402
from roost.plugins import get_plugins  # noqa: E402

VALID = """
id: orders
namespace: company.team
inputs:
  - id: day
    type: DATE
tasks:
  - id: fetch
    type: io.kestra.plugin.core.http.Request
    uri: "https://example.org/orders?day={{ inputs.day }}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ outputs.fetch.body | jq('.[].id') }}"
    tasks:
      - id: check
        type: io.kestra.plugin.core.flow.If
        condition: "{{ taskrun.value > 10 }}"
        then:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "order {{ taskrun.value }}"
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    level: ERROR
    message: failed
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 6 * * *"
"""

INVALID = VALID.replace("message: failed", "mesage: failed").replace('cron: "0 6 * * *"', 'cron: "0 6 * *"')


def rate(source: str, seconds: float = 3.0) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            parse_flow(f"{source}# {n}\n")  # a distinct text each time: no cache of recent texts helps
        except FlowInvalid:
            pass
        n += 1
    return n / (time.perf_counter() - start)


if __name__ == "__main__":
    get_plugins().load_types()
    parse_flow(VALID)
    print(f"flows validated per second (valid 8-task flow with a trigger): {rate(VALID):.0f}")
    print(f"flows validated per second (invalid, 2 violations reported): {rate(INVALID):.0f}")
