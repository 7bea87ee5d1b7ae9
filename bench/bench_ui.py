"""Server-side render time of the web UI's heaviest pages (the app in process, no network).

Run alone: ``python bench/bench_ui.py [--repeat N]``. One line per figure (median of N requests, after
one warm-up): the flows page over 1,000 flows (first page of 50, and all 1,000 on one page), and an
execution of 1,000 task runs (Gantt tab, topology tab, outputs tab).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

FOREACH = """id: wide
namespace: bench.ui
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ range(1, 999) }}"
    concurrencyLimit: 0
    tasks:
      - id: value
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
"""


def median_ms(client, url: str, repeat: int) -> float:  # type: ignore[no-untyped-def]
    assert client.get(url).status_code == 200, url
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    from fastapi.testclient import TestClient
    from roost.engine.engine import Engine
    from roost.server import ServerState, create_app
    from roost.store.db import Store

    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    engine = Engine(Store.sqlite(tmp), tmp, workers=2).start()
    try:
        for i in range(1000):
            source = (f"id: flow_{i:04d}\nnamespace: bench.ns{i % 20}\ndescription: flow number {i}\nlabels:\n  team: t{i % 7}\n"
                      "tasks:\n  - id: hello\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n")  # fmt: skip
            engine.store.save_flow(
                "main", f"bench.ns{i % 20}", f"flow_{i:04d}", source, [{"key": "team", "value": f"t{i % 7}"}]
            )
        flow = engine.deploy(FOREACH)
        ex = engine.run(flow) if hasattr(engine, "run") else None
        client = TestClient(create_app(ServerState(engine)))
        if ex is None or len(ex.task_runs) < 1000:
            ex_id = client.post("/api/v1/main/executions/bench.ui/wide?wait=true").json()["id"]
        else:
            ex_id = ex.id
        runs = len(client.get(f"/api/v1/main/executions/{ex_id}").json()["taskRunList"])
        base = f"/ui/main/executions/bench.ui/wide/{ex_id}"
        figures = [
            ("flows page, 1,000 flows, first page of 50", "/ui/main/flows"),
            ("flows page, 1,000 flows, all on one page", "/ui/main/flows?size=1000"),
            (f"execution page, {runs} task runs, Gantt", base),
            (f"execution page, {runs} task runs, topology", base + "?tab=topology"),
            (f"execution page, {runs} task runs, outputs", base + "?tab=outputs"),
        ]
        for name, url in figures:
            print(f"{name}: {median_ms(client, url, args.repeat):.1f} ms (median of {args.repeat})")
            sys.stdout.flush()
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
