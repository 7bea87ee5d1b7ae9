"""Scale-out benchmarks: executor, worker and webserver processes over a real PostgreSQL (started here).

Run alone: ``python bench/bench_scaleout.py [--only cpu,api,latency,chaos] [--chaos-executions 1000]``.
One line per figure:

- worker processes on CPU-bound tasks (a ``kv.Set`` whose value is a ~50 ms template, rendered in the
  worker): task runs/s with 1 worker process and with 2, and the ratio (goal ≥ 1.8×), with workers of one
  thread each and of two;
- executions/s through the API (POST without wait until every execution ended, a one-task flow that
  goes through a worker) with ``webserver`` + ``executor --no-local-workers`` + 2 ``worker`` on
  PostgreSQL, and with ``local`` on SQLite (goal ≥ 300/s on PostgreSQL);
- worker-path dispatch latency on PostgreSQL: a chain of 300 ``kv.Set`` tasks in one execution, the
  time between one task run's end and the next one's, p50/p99 (goal p50 ≤ 5 ms); the same chain in
  one ``local`` process for comparison;
- chaos: N executions (1,000 by default) of a 3-task flow while a worker and then an executor are
  SIGKILLed mid-work, and the active scheduler of two: executions that ended SUCCESS, lost, task runs
  run more than twice (all asked to be 0), resubmitted task runs, and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_api import Conn, percentile, throughput, until_all_ended  # noqa: E402
from roost.testing.postgres import postgres_server  # noqa: E402
from roost.testing.server import ServerProcess  # noqa: E402

CPU_TASK = """
  - id: burn{i}
    type: io.kestra.plugin.core.kv.Set
    key: "burn{i}"
    value: "{{% for i in range(0, 65000) %}}{{% if i % 7 == 8 %}}x{{% endif %}}{{% endfor %}}{{{{ execution.id }}}}"
"""
ONE_TASK = """id: bench
namespace: bench.api
tasks:
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: "last"
    value: "{{ execution.id }}"
"""


def chain(n: int) -> str:
    tasks = "".join(
        f'  - id: t{i}\n    type: io.kestra.plugin.core.kv.Set\n    key: "k{i}"\n    value: "{i}"\n'
        for i in range(n)
    )
    return f"id: chain\nnamespace: bench.api\ntasks:\n{tasks}"


class Cluster:
    """Server processes over one database (a fresh database per cluster)."""

    def __init__(self, pg: Any, root: Path, name: str) -> None:
        pg.psql(f"CREATE DATABASE {name}")
        self.url = f"postgresql://postgres@127.0.0.1:{pg.port}/{name}"
        self.data = root / name
        self.procs: list[ServerProcess] = []

    def start(self, kind: str, *args: str, http: bool = False) -> ServerProcess:
        proc = ServerProcess(kind, self.data, db_url=self.url, http=http, extra=list(args)).wait_ready(60)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


def post_flow(port: int, source: str) -> None:
    async def go() -> None:
        status, body = await Conn("127.0.0.1", port).request("POST", "/api/v1/main/flows", source.encode(),
                                                             "application/x-yaml")  # fmt: skip
        assert status == 200, body

    asyncio.run(go())


def run_executions(port: int, flow: str, n: int, concurrency: int = 16) -> float:
    async def go() -> float:
        path = f"/api/v1/main/executions/bench.api/{flow}"
        todo = iter(range(n))

        async def client() -> None:
            conn = Conn("127.0.0.1", port)
            for _ in todo:
                status, body = await conn.request("POST", path)
                assert status == 200, body

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        await until_all_ended(port, timeout=600)
        return time.perf_counter() - start

    return asyncio.run(go())


def cpu(pg: Any, root: Path, threads: int = 1) -> list[str]:
    """Worker processes of ``threads`` threads each: with one, a process runs one CPU-bound task at a time
    (two threads of one process share its interpreter lock, which makes one process slower, not two faster)."""
    flow = "id: cpu\nnamespace: bench.api\ntasks:" + "".join(CPU_TASK.format(i=i) for i in range(4))
    executions, rates, lines = 60, {}, []
    for workers in (1, 2):
        cluster = Cluster(pg, root, f"cpu{workers}_{threads}")
        try:
            web = cluster.start("webserver", http=True)
            cluster.start("executor", "--no-local-workers")
            procs = [cluster.start("worker", "--workers", str(threads)) for _ in range(workers)]
            post_flow(web.port or 0, flow)
            run_executions(web.port or 0, "cpu", 4)  # warm up
            before = [cpu_seconds(p.proc.pid) for p in procs]
            elapsed = run_executions(web.port or 0, "cpu", executions)
            used = [cpu_seconds(p.proc.pid) - b for p, b in zip(procs, before, strict=True)]
            rates[workers] = executions * 4 / elapsed
            lines.append(f"scale-out CPU-bound ~50 ms tasks, {workers} worker process(es) of {threads} thread(s): {rates[workers]:.1f} task runs/s "
                         f"({elapsed:.1f} s; CPU s per worker: {', '.join(f'{u:.1f}' for u in used)})")  # fmt: skip
        finally:
            cluster.stop()
    return [
        *lines,
        f"scale-out CPU-bound ~50 ms tasks, 2 workers vs 1 ({threads} thread(s) each): {rates[2] / rates[1]:.2f}x",
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def api(pg: Any, root: Path, n: int) -> list[str]:
    lines = []
    cluster = Cluster(pg, root, "api")
    try:
        web = cluster.start("webserver", http=True)
        cluster.start("executor", "--no-local-workers")
        cluster.start("worker")
        cluster.start("worker")
        lines.append(_api_rate(web.port or 0, n, "webserver + executor + 2 workers, PostgreSQL"))
    finally:
        cluster.stop()
    local = ServerProcess("local", root / "local-api").wait_ready(60)
    try:
        lines.append(_api_rate(local.port or 0, n, "local, SQLite"))
    finally:
        local.stop()
    return lines


def _api_rate(port: int, n: int, what: str) -> str:
    post_flow(port, ONE_TASK)

    async def go() -> float:
        await throughput(port, 200, 16, False)  # warm up
        return await throughput(port, n, 32, False)

    return f"api executions/s, 1 worker-task flow ({n} POSTs, 32 connections, until all ended), {what}: {asyncio.run(go()):.0f}"


def latency(pg: Any, root: Path, tasks: int = 300) -> list[str]:
    lines = []
    cluster = Cluster(pg, root, "latency")
    try:
        web = cluster.start("webserver", http=True)
        cluster.start("executor", "--no-local-workers")
        cluster.start("worker")
        lines += _chain_gaps(web.port or 0, tasks, "PostgreSQL worker processes")
    finally:
        cluster.stop()
    local = ServerProcess("local", root / "local-latency").wait_ready(60)
    try:
        lines += _chain_gaps(local.port or 0, tasks, "local in-process pool")
    finally:
        local.stop()
    return lines


def _chain_gaps(port: int, tasks: int, what: str) -> list[str]:
    post_flow(port, chain(tasks))

    async def go() -> list[float]:
        conn = Conn("127.0.0.1", port)
        gaps: list[float] = []
        for _ in range(3):
            status, body = await conn.request("POST", "/api/v1/main/executions/bench.api/chain?wait=true")
            assert status == 200, body
            ex = json.loads(body)
            status, body = await conn.request("GET", f"/api/v1/main/executions/{ex['id']}")
            runs = json.loads(body)["taskRunList"]
            assert len(runs) == tasks and all(r["state"]["current"] == "SUCCESS" for r in runs)
            ends = sorted(
                datetime.fromisoformat(r["state"]["endDate"].replace("Z", "+00:00")).timestamp() for r in runs
            )
            gaps += [b - a for a, b in zip(ends, ends[1:], strict=False)]
        return gaps

    gaps = asyncio.run(go())
    return [f"worker-path dispatch latency ({what}, {tasks}-task kv.Set chain, end to next end) p50/p99: "
            f"{percentile(gaps, 0.5) * 1000:.2f} / {percentile(gaps, 0.99) * 1000:.2f} ms"]  # fmt: skip


def chaos(pg: Any, root: Path, n: int) -> list[str]:
    """The issue's scenario at full size (the test runs 150)."""
    ledger = root / "ledger.txt"
    task = """
  - id: {id}
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo {{{{ taskrun.id }}}} >> {ledger}
      - sleep 0.05"""
    flow = "id: chaos\nnamespace: bench.api\ntasks:" + "".join(
        task.format(id=i, ledger=ledger) for i in ("a", "b", "c")
    )
    cluster = Cluster(pg, root, "chaos")
    fast = ["--lease-timeout", "5", "--worker-timeout", "5"]
    try:
        web = cluster.start("webserver", http=True)
        executors = [cluster.start("executor", "--no-local-workers", *fast) for _ in range(2)]
        workers = [cluster.start("worker") for _ in range(2)]
        schedulers = [cluster.start("scheduler") for _ in range(2)]
        port = web.port or 0
        post_flow(port, flow)
        steps: list[Callable[[], None]] = [
            lambda: (workers[0].kill(), cluster.start("worker")),  # type: ignore[func-returns-value]
            lambda: (executors[0].kill(), cluster.start("executor", "--no-local-workers", *fast)),  # type: ignore[func-returns-value]
            lambda: next(s for s in schedulers if "active one" in s.log.read_text()).kill(),
        ]

        async def go() -> float:
            conn = Conn("127.0.0.1", port)
            start = time.perf_counter()
            for _ in range(n):
                status, body = await conn.request("POST", "/api/v1/main/executions/bench.api/chaos")
                assert status == 200, body
            ended = "/api/v1/main/executions/search?size=1&filters%5Bstate%5D%5BIN%5D=SUCCESS,FAILED,KILLED,WARNING"
            marks = [n // 4, n // 2, 3 * n // 4]  # the kills land while work is in flight, by progress
            while marks:
                status, body = await conn.request("GET", ended)
                if json.loads(body)["total"] >= marks[0]:
                    marks.pop(0)
                    steps.pop(0)()
                await asyncio.sleep(0.1)
            await until_all_ended(port, timeout=1800)
            return time.perf_counter() - start

        elapsed = asyncio.run(go())

        async def census() -> tuple[collections.Counter[str], list[dict[str, Any]]]:
            conn = Conn("127.0.0.1", port)
            states: collections.Counter[str] = collections.Counter()
            runs: list[dict[str, Any]] = []
            page = 1
            while True:
                status, body = await conn.request(
                    "GET", f"/api/v1/main/executions/search?size=100&page={page}"
                )
                results = json.loads(body)["results"]
                if not results:
                    return states, runs
                for ex in results:
                    states[ex["state"]["current"]] += 1
                    _, full = await conn.request("GET", f"/api/v1/main/executions/{ex['id']}")
                    runs += json.loads(full)["taskRunList"]
                page += 1

        states, runs = asyncio.run(census())
    finally:
        cluster.stop()
    counts = collections.Counter(ledger.read_text().split())
    resubmitted = sum(any(h["state"] == "RESUBMITTED" for h in r["state"]["histories"]) for r in runs)
    never_ran = len({r["id"] for r in runs} - set(counts))
    return [f"chaos {n} executions of a 3-task flow (kill -9 of a worker, an executor, the active scheduler): "
            f"{states['SUCCESS']} SUCCESS, {n - sum(states.values())} lost, {sum(v > 2 for v in counts.values())} "
            f"task runs run more than twice, {never_ran} never ran, {resubmitted} resubmitted, {elapsed:.1f} s"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="cpu,api,latency,chaos")
    parser.add_argument("--api-executions", type=int, default=2000)
    parser.add_argument("--chaos-executions", type=int, default=1000)
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="roost-bench-scaleout-") as tmp, postgres_server() as pg:
        root = Path(tmp)
        if "cpu" in wanted:
            for threads in (1, 2):
                for line in cpu(pg, root, threads):
                    print(line, flush=True)
        if "api" in wanted:
            for line in api(pg, root, args.api_executions):
                print(line, flush=True)
        if "latency" in wanted:
            for line in latency(pg, root):
                print(line, flush=True)
        if "chaos" in wanted:
            for line in chaos(pg, root, args.chaos_executions):
                print(line, flush=True)


if __name__ == "__main__":
    main()
