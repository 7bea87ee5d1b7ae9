"""Kill switch figures (state persisted in SQLite, as in production). Prints one line per figure.

python bench/bench_killswitch.py            # all figures
python bench/bench_killswitch.py kill       # one of: kill, cancel, ignore, overhead, split

The scenario: 200 executions of a 0.5 s shell flow (``io.kestra.plugin.scripts.shell.Commands``, Process
runner) in namespace ``fig.a`` and 20 in ``fig.b`` run on 8 worker threads; once the first steps run, a
switch on ``fig.a`` is created (as the API does in ``roost server local``: store, then the engine told).
Measured from the moment the engine applies the switch (``activated``, taken after the index swap):
how long until every ``fig.a`` execution ends (KILLED, CANCELLED), how many steps of ``fig.a`` started
after it (by the worker's start date of each attempt, and by the date each shell itself wrote), and
that ``fig.b`` is untouched. IGNORE: ``fig.a`` stays as it was (nothing progresses), ``fig.b`` completes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("ROOST_LOAD_PLUGINS", "")

from roost.engine.engine import Engine  # noqa: E402
from roost.engine.model import TERMINAL, new_id, parse_iso  # noqa: E402
from roost.engine.queue import Message  # noqa: E402
from roost.store.db import Store  # noqa: E402

FLOW = """id: step
namespace: {ns}
tasks:
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - date +%s.%N >> {starts}
      - sleep 0.5
"""


@dataclass
class Outcome:
    kind: str
    activated: float = 0.0
    settled: float = 0.0  # seconds from activation until every fig.a execution ended (or froze, for IGNORE)
    a_states: dict[str, int] = field(default_factory=dict)
    b_states: dict[str, int] = field(default_factory=dict)
    started_after: int = 0  # fig.a steps the worker started after the switch was active
    shell_after: int = 0  # fig.a shells whose own first line ran after it (process start latency included)
    shell_latest: float = 0.0  # how long after activation the last fig.a shell started (≤ 0: none after)
    frozen: bool = True  # IGNORE: fig.a's executions did not change while the switch was on
    b_labelled: int = 0
    ended_before: int = 0  # fig.a executions that had already ended when the switch became active


def _count(states: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in states:
        out[s] = out.get(s, 0) + 1
    return out


def scenario(kind: str, a: int = 200, b: int = 20, workers: int = 8, home: Path | None = None) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(home or tmp)
        eng = Engine(Store.sqlite(root / "store"), root / "store", workers=workers).start()
        try:
            return _run(eng, root, kind, a, b)
        finally:
            eng.stop()
            eng.store.close()


def _run(eng: Engine, root: Path, kind: str, a: int, b: int) -> Outcome:
    starts = {ns: root / f"{ns}.starts" for ns in ("fig.a", "fig.b")}
    flows = {ns: eng.deploy(FLOW.format(ns=ns, starts=starts[ns])) for ns in starts}
    ids: dict[str, list[str]] = {"fig.a": [], "fig.b": []}
    for i in range(a + b):  # interleaved: fig.b's work waits in the same worker queue
        ns = "fig.b" if b and i % max(1, (a + b) // b) == 0 and len(ids["fig.b"]) < b else "fig.a"
        if ns == "fig.a" and len(ids["fig.a"]) >= a:
            ns = "fig.b"
        ids[ns].append(eng.create_execution(flows[ns]).id)
    deadline = time.monotonic() + 30
    while (
        not starts["fig.a"].exists() or len(starts["fig.a"].read_text().split()) < 4
    ) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # steps are running, others wait in the worker queue
    switch_id = new_id()
    eng.store.kill_switches.create(switch_id, {"name": f"figure {kind}", "tenant": "main", "namespace": "fig.a",
                                               "flow_id": None, "execution_ids": [], "type": kind, "start_date": time.time(),
                                               "end_date": None, "description": "bench", "enabled": True}, "bench")  # fmt: skip
    eng.kill_switches.refresh(force=True)  # what the API does in roost server local
    eng.queue.put(Message("switches", ""))
    out = Outcome(kind, activated=eng.kill_switches.activated[switch_id])
    if kind == "IGNORE":
        time.sleep(0.3)
        before = {i: _snapshot(eng, i) for i in ids["fig.a"]}
        time.sleep(1.5)
        out.frozen = all(_snapshot(eng, i) == before[i] for i in ids["fig.a"])
        out.settled = 0.0
    else:
        for ex_id in ids["fig.a"]:
            eng.wait(ex_id, 60)
        out.settled = max(_end(eng, i) for i in ids["fig.a"]) - out.activated
    for ex_id in ids["fig.b"]:
        eng.wait(ex_id, 120)
    a_runs = [eng.get_execution(i) for i in ids["fig.a"]]
    out.a_states = _count([ex.state.current for ex in a_runs])  # type: ignore[union-attr]
    out.ended_before = sum(
        1 for ex in a_runs if ex.state.terminal() and ex.state.histories[-1][1].timestamp() <= out.activated
    )  # type: ignore[union-attr]
    b_runs = [eng.get_execution(i) for i in ids["fig.b"]]
    out.b_states = _count([ex.state.current for ex in b_runs])  # type: ignore[union-attr]
    out.b_labelled = sum(1 for ex in b_runs if any(lbl["key"] == "system.killSwitch" for lbl in ex.labels))  # type: ignore[union-attr]
    for ex_id in ids["fig.a"]:
        for tr in eng.get_execution(ex_id).task_runs:  # type: ignore[union-attr]
            for attempt in tr.attempts:
                hist = attempt["state"].get("histories") or []
                if (
                    hist
                    and hist[0]["state"] == "RUNNING"
                    and parse_iso(hist[0]["date"]).timestamp() > out.activated
                ):  # type: ignore[union-attr]
                    out.started_after += 1
    shells = [float(x) for x in starts["fig.a"].read_text().split()] if starts["fig.a"].exists() else []
    out.shell_after = sum(1 for t in shells if t > out.activated)
    out.shell_latest = max(shells, default=out.activated) - out.activated
    if kind == "IGNORE":
        for ex_id in ids["fig.a"]:
            eng.kill(ex_id)
    return out


def _snapshot(eng: Engine, ex_id: str) -> tuple[Any, ...]:
    ex = eng.get_execution(ex_id)
    assert ex is not None
    return ex.state.current, tuple((tr.task_id, tr.state.current, len(tr.attempts)) for tr in ex.task_runs)


def _end(eng: Engine, ex_id: str) -> float:
    ex = eng.get_execution(ex_id)
    assert ex is not None and ex.state.current in TERMINAL
    return ex.state.histories[-1][1].timestamp()


def figure(kind: str) -> None:
    out = scenario(kind)
    if kind == "IGNORE":
        print(f"IGNORE on fig.a (200 running/queued, 20 on fig.b): fig.a frozen for 1.5 s: {out.frozen}; "
              f"steps started after activation: {out.started_after}; shells after: {out.shell_after}; "
              f"fig.b {out.b_states}")  # fmt: skip
        return
    goal = "met" if out.settled <= 2.0 else "MISSED"
    print(f"{kind} on fig.a (200 executions, 20 on fig.b): all fig.a ended in {out.settled:.2f} s after activation "
          f"(goal 2 s: {goal}); fig.a {out.a_states}; steps started after activation: {out.started_after} (worker), "
          f"{out.shell_after} (shells, latest {out.shell_latest * 1000:+.0f} ms); fig.b {out.b_states}, "
          f"labelled {out.b_labelled}")  # fmt: skip


def overhead(n: int = 1000, switches: int = 100, repeat: int = 3) -> None:
    """Per-task overhead of the executor with no switch, and with 100 active switches elsewhere (other
    namespaces and tenants, execution lists) plus 100 inactive ones (scheduled, disabled)."""
    tasks = "".join(f'  - id: t{i}\n    type: io.kestra.plugin.core.debug.Return\n    format: "{{{{ taskrun.id }}}}"\n'
                    for i in range(n))  # fmt: skip
    results = {}
    for label, count in (("no switch", 0), (f"{switches} active elsewhere + {switches} inactive", switches)):
        with tempfile.TemporaryDirectory() as tmp:
            eng = Engine(Store.sqlite(tmp), tmp, workers=4).start()
            now = time.time()
            for i in range(count):
                scope = [{"namespace": f"other.ns{i}"}, {"namespace": f"bench.sibling{i}"},
                         {"tenant": f"tenant{i}"}, {"execution_ids": [new_id() for _ in range(5)]}][i % 4]  # fmt: skip
                base = {"name": f"s{i}", "tenant": "main", "namespace": None, "flow_id": None, "execution_ids": [],
                        "type": ("KILL", "CANCEL", "IGNORE")[i % 3], "start_date": now - 1, "end_date": None,
                        "description": None, "enabled": True}  # fmt: skip
                eng.store.kill_switches.create(new_id(), {**base, **scope}, "bench")
                eng.store.kill_switches.create(
                    new_id(), {**base, "namespace": "bench", "start_date": now + 3600}, "bench"
                )
                eng.store.kill_switches.create(
                    new_id(), {**base, "namespace": "bench", "enabled": False}, "bench"
                )
            eng.kill_switches.refresh(force=True)
            assert len(eng.kill_switches.index.switches) == count
            flow = eng.deploy(f"id: seq\nnamespace: bench\ntasks:\n{tasks}")
            eng.run(flow, timeout=120)
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                ex = eng.run(flow, timeout=300)
                best = min(best, time.perf_counter() - start)
                assert ex.state.current == "SUCCESS"
            eng.stop()
        results[label] = best * 1000 / n
        print(
            f"executor per-task overhead, sequential {n}-task flow, {label}: {results[label]:.3f} ms per task"
        )


def split(n: int = 20) -> None:
    """webserver and executor as two processes over one SQLite file: from the API's answer to the switch
    until every covered execution is KILLED (the executor learns of it through the store)."""
    from datetime import UTC, datetime

    import httpx
    from roost.testing.server import ServerProcess

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = f"sqlite:///{root / 'shared.db'}"
        executor = ServerProcess("executor", root / "data", db_url=db, http=False).wait_ready(90)
        web = ServerProcess("webserver", root / "data", db_url=db).wait_ready(90)
        try:
            with httpx.Client(base_url=web.url + "/api/v1", timeout=30) as api:
                api.post("/main/flows", content=FLOW.format(ns="fig.a", starts=root / "s").replace("sleep 0.5", "sleep 60"),
                         headers={"content-type": "application/x-yaml"})  # fmt: skip
                ids = [api.post("/main/executions/fig.a/step").json()["id"] for _ in range(n)]
                while any(
                    api.get(f"/main/executions/{i}").json()["state"]["current"] != "RUNNING" for i in ids
                ):
                    time.sleep(0.05)
                body = {"name": "split", "tenantId": "main", "namespace": "fig.a", "evaluationType": "KILL",
                        "startDate": datetime.now(UTC).isoformat()}  # fmt: skip
                assert api.post("/kill-switches", json=body).status_code == 200
                answered = time.monotonic()
                pending = set(ids)
                while pending:
                    pending = {
                        i
                        for i in pending
                        if api.get(f"/main/executions/{i}").json()["state"]["current"] != "KILLED"
                    }
                    time.sleep(0.01)
                elapsed = time.monotonic() - answered
        finally:
            web.stop()
            executor.stop()
    print(f"KILL through a webserver process, executor in another: {n} running executions KILLED {elapsed:.2f} s "
          f"after the API answered (goal: within 1 s plus the kill)")  # fmt: skip


FIGURES = {"kill": lambda: figure("KILL"), "cancel": lambda: figure("CANCEL"), "ignore": lambda: figure("IGNORE"),
           "overhead": overhead, "split": split}  # fmt: skip


if __name__ == "__main__":
    for name in sys.argv[1:] or list(FIGURES):
        FIGURES[name]()
