"""LogShipper benchmarks: stored log lines shipped per second, and memory as the backlog grows.

python bench/bench_log_shipping.py            # all figures
python bench/bench_log_shipping.py store      # one of: store, graylog

``store`` ships through an exporter that only counts (the store's paging, the offsets, the engine);
``graylog`` ships to a local GELF HTTP input in both modes (needs roost-plugin-graylog installed).
Peak RSS is measured in a fresh process per backlog size, so the figures show whether memory grows
with the number of lines (it must not: lines are read a page at a time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from roost import LogExporter, LogRecords, hookimpl
from roost.engine.engine import Engine
from roost.store.db import Store
from roost.testing import registered

HERE = Path(__file__).resolve().parent


class Count(LogExporter, type="io.bench.Count"):
    """Count the lines received (bench)."""

    chunk: int = 1000
    """Lines per batch."""

    def export(self, ctx, records: LogRecords) -> dict[str, int]:
        return {"batches": sum(1 for _ in records.batches(self.chunk))}


class Exporters:
    @hookimpl
    def register_log_exporters(self, register):
        register(Count)


def fill(store: Store, n: int) -> None:
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for start in range(0, n, 10000):
        store.add_logs("main", [{"namespace": "bench", "flowId": "gen", "executionId": "e", "taskId": "t",
                                 "taskRunId": "tr", "timestamp": stamp, "level": "INFO",
                                 "message": f"line {i} of the backlog, with a little text to look like a real one"}
                                for i in range(start, min(n, start + 10000))])  # fmt: skip


def ship(exporter: dict, n: int, tmp: Path) -> tuple[float, int]:
    eng = Engine(Store.sqlite(tmp), tmp, workers=2).start()
    try:
        fill(eng.store, n)
        flow = eng.deploy(json.dumps({"id": "ship", "namespace": "bench", "tasks": [{
            "id": "ship", "type": "io.kestra.plugin.ee.core.log.LogShipper", "flowId": "gen",
            "logExporters": [{"id": "x", **exporter}]}]}))  # fmt: skip
        start = time.perf_counter()
        ex = eng.run(flow, timeout=3600)
        elapsed = time.perf_counter() - start
        assert ex.state.current == "SUCCESS", ex.state.current
        count = ex.task_runs[0].outputs["count"]
        assert count == n, count
        return elapsed, count
    finally:
        eng.stop()


def store_figures() -> None:
    with registered(Exporters()), tempfile.TemporaryDirectory() as tmp:
        elapsed, n = ship({"type": "io.bench.Count"}, 200_000, Path(tmp))
    print(
        f"LogShipper, 200,000 stored lines to a counting exporter: {n / elapsed:,.0f} lines/s ({elapsed:.2f} s)"
    )
    for n in (20_000, 200_000):
        code = "\n".join([
            "import resource, sys, tempfile",
            "from pathlib import Path",
            f"sys.path.insert(0, {str(HERE)!r})",
            "import bench_log_shipping as b",
            "from roost.testing import registered",
            "with registered(b.Exporters()), tempfile.TemporaryDirectory() as t:",
            f"    b.ship({{'type': 'io.bench.Count'}}, {n}, Path(t))",
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)",
        ])  # fmt: skip
        env = {**os.environ, "ROOST_LOAD_PLUGINS": ""}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        print(f"LogShipper peak RSS of the whole process, {n:,} lines: {out.stdout.strip()} MB")


def graylog_figures() -> None:
    sys.path.insert(0, str(HERE.parent / "plugins" / "graylog" / "tests"))
    from fake_graylog import FakeGraylog

    for bulk, n in ((False, 5_000), (True, 100_000)):
        receiver = FakeGraylog(bulk_receiving=bulk).start()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                exporter = {"type": "io.kestra.plugin.ee.graylog.LogExporter", "endpoint": receiver.endpoint,
                            "bulkReceiving": bulk}  # fmt: skip
                elapsed, n = ship(exporter, n, Path(tmp))
            assert len(receiver.messages) == n
        finally:
            receiver.stop()
        mode = "bulk (newline-delimited, 64 KiB requests)" if bulk else "single (one message per request)"
        print(f"Graylog GELF HTTP, {mode}, {n:,} lines to a local input: {n / elapsed:,.0f} lines/s")


if __name__ == "__main__":
    which = sys.argv[1:] or ["store", "graylog"]
    if "store" in which:
        os.environ.setdefault("ROOST_LOAD_PLUGINS", "")
        store_figures()
    if "graylog" in which:
        os.environ.pop("ROOST_LOAD_PLUGINS", None)
        from roost.plugins import set_plugins

        set_plugins(None)
        graylog_figures()
