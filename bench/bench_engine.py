"""Engine benchmarks (state persisted in SQLite, as in production). Prints one line per figure.

python bench/bench_engine.py            # all figures
python bench/bench_engine.py sequential # one of: sequential, worker, throughput, foreach, cli
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROOST_LOAD_PLUGINS", "")

from roost.engine.engine import Engine  # noqa: E402
from roost.store.db import Store  # noqa: E402


def engine(tmp: Path) -> Engine:
    return Engine(Store.sqlite(tmp), tmp, workers=4).start()


def sequential(n: int = 1000) -> None:
    tasks = "".join(
        f'  - id: t{i}\n    type: io.kestra.plugin.core.debug.Return\n    format: "{{{{ taskrun.id }}}}"\n'
        for i in range(n)
    )
    with tempfile.TemporaryDirectory() as tmp:
        eng = engine(Path(tmp))
        flow = eng.deploy(f"id: seq\nnamespace: bench\ntasks:\n{tasks}")
        eng.run(flow, timeout=120)  # warm-up
        start = time.perf_counter()
        ex = eng.run(flow, timeout=300)
        elapsed = time.perf_counter() - start
        eng.stop()
    assert ex.state.current == "SUCCESS" and len(ex.task_runs) == n
    print(f"sequential {n}-task flow (Return): {elapsed * 1000 / n:.3f} ms per task ({elapsed:.2f} s total)")


def worker_chain(n: int = 1000, repeat: int = 3) -> None:
    """Per-task cost of a sequential chain of tasks that go through the worker pool (KV Set): each one is
    persisted before it is handed to a worker (crash safety), run on a worker thread, and reported back."""
    tasks = "".join(
        f'  - id: t{i}\n    type: io.kestra.plugin.core.kv.Set\n    key: k{i % 10}\n    value: "{{{{ taskrun.id }}}}"\n'
        for i in range(n)
    )
    with tempfile.TemporaryDirectory() as tmp:
        eng = engine(Path(tmp))
        flow = eng.deploy(f"id: chain\nnamespace: bench\ntasks:\n{tasks}")
        eng.run(flow, timeout=120)  # warm-up
        times, cpu = [], []
        for _ in range(repeat):  # best of a few: the machine is shared
            start, start_cpu = time.perf_counter(), time.process_time()
            ex = eng.run(flow, timeout=300)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)  # all threads; other load cannot inflate it
            assert ex.state.current == "SUCCESS" and len(ex.task_runs) == n, ex.state.current
        eng.stop()
    best = min(times)
    print(f"sequential {n}-task flow through the worker pool (KV Set): {best * 1000 / n:.3f} ms per task "
          f"({best:.2f} s total; CPU {min(cpu) * 1000 / n:.3f} ms per task)")  # fmt: skip


def throughput(n: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        eng = engine(Path(tmp))
        flow = eng.deploy(
            "id: one\nnamespace: bench\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
        )
        eng.run(flow, timeout=60)
        start = time.perf_counter()
        ids = [eng.create_execution(flow).id for _ in range(n)]
        for ex_id in ids:
            assert eng.wait(ex_id, 300).state.current == "SUCCESS"
        elapsed = time.perf_counter() - start
        eng.stop()
    print(
        f"executions of a 1-task flow in one process: {n / elapsed:.0f} executions/s ({n} in {elapsed:.2f} s)"
    )


def foreach(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        eng = engine(Path(tmp))
        flow = eng.deploy(
            "id: fe\nnamespace: bench\ntasks:\n  - id: each\n    type: io.kestra.plugin.core.flow.ForEach\n"
            f'    values: "{{{{ range(1, {n}) }}}}"\n    concurrencyLimit: 0\n    tasks:\n'
            '      - id: inner\n        type: io.kestra.plugin.core.debug.Return\n        format: "{{ taskrun.value }}"\n'
        )
        start = time.perf_counter()
        ex = eng.run(flow, timeout=900)
        elapsed = time.perf_counter() - start
        eng.stop()
    assert ex.state.current == "SUCCESS", ex.state.current
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return elapsed, rss


def foreach_scaling(repeat: int = 3) -> None:
    small = min(foreach(1000)[0] for _ in range(repeat))  # best of a few: the machine is shared
    runs = [foreach(10000) for _ in range(repeat)]
    large, rss = min(r[0] for r in runs), max(r[1] for r in runs)
    print(f"ForEach over 1,000 values: {small:.2f} s")
    print(
        f"ForEach over 10,000 values: {large:.2f} s ({large / small:.1f}x the 1,000-value time; 10.0x is linear)"
    )
    print(f"ForEach over 10,000 values: peak RSS {rss:.0f} MB")


def cli(runs: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.yaml"
        hello.write_text(
            "id: hello\nnamespace: bench\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: Hello\n"
        )
        env = {**os.environ, "ROOST_HOME": str(Path(tmp) / "home")}
        env.pop("ROOST_LOAD_PLUGINS", None)
        # as installed (pip writes bytecode): without it every module is compiled again at each start
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        roost = str(Path(sys.executable).parent / "roost")  # the console script users run
        roost_cmd = [roost, "flow", "run", str(hello)]
        subprocess.run(roost_cmd, check=True, env=env, capture_output=True)  # warm-up: writes the bytecode
        times, cpu = [], []
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(roost_cmd, check=True, env=env, capture_output=True)
            times.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU: other load cannot inflate it
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    times.sort()
    cpu.sort()
    print(f"`roost flow run hello.yaml`, whole process: {times[len(times) // 2]:.2f} s median of {runs} "
          f"(CPU {cpu[len(cpu) // 2]:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    figures = {"sequential": sequential, "worker": worker_chain, "throughput": throughput, "foreach": foreach_scaling,
               "cli": cli}  # fmt: skip
    for name in sys.argv[1:] or list(figures):
        figures[name]()
