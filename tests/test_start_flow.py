"""RunContext.start_flow and describe_flow: a task starting another flow itself (an AI agent's flow tool),
waiting for its outputs, carrying the correlation id, killed with it; clear errors without an engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from roost import Dynamic, RunContext, Task, TaskError, hookimpl
from roost.engine.engine import Engine
from roost.store.db import Store
from roost.testing import registered, run_task


class StartFlow(Task, type="io.roost.test.StartFlow"):
    """Start a flow and answer what start_flow answered."""

    namespace: str
    flow_id: str
    inputs: dict[str, Any] | None = None
    wait: bool = True
    timeout_s: Dynamic[float] | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        described = ctx.describe_flow(self.namespace, self.flow_id)
        started = ctx.start_flow(self.namespace, self.flow_id, inputs=self.inputs, wait=self.wait,
                                 labels=[{"key": "asked", "value": "yes"}, {"key": "system.evil", "value": "x"}],
                                 timeout=self.timeout_s)  # fmt: skip
        return {"described": described, **started}


class Plugin:
    @hookimpl
    def register_task_types(self, register: Any) -> None:
        register(StartFlow)


CHILD = """id: child
namespace: company.kids
description: Double a number
inputs:
  - id: n
    type: INT
tasks:
  - id: double
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.n * 2 }}"
outputs:
  - id: doubled
    type: STRING
    value: "{{ outputs.double.value }}"
"""
SLOW = """id: slow
namespace: company.kids
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""


def parent(**props: Any) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in props.items())
    return (
        f"id: parent\nnamespace: company\ntasks:\n  - id: start\n    type: io.roost.test.StartFlow\n{lines}"
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with registered(Plugin(), "start-flow"):
        eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=4).start()
        yield eng
        eng.stop()


def outputs(ex: Any) -> dict[str, Any]:
    return next(tr for tr in ex.task_runs if tr.task_id == "start").outputs or {}


def test_a_task_starts_a_flow_and_waits_for_its_outputs(engine: Engine) -> None:
    engine.deploy(CHILD)
    ex = engine.run(
        engine.deploy(parent(namespace="company.kids", flowId="child", inputs="{n: 21}")), timeout=30
    )
    assert ex.state.current == "SUCCESS"
    out = outputs(ex)
    assert out["state"] == "SUCCESS" and out["outputs"] == {"doubled": "42"}
    assert out["described"]["description"] == "Double a number"
    assert out["described"]["inputs"] == [{"id": "n", "type": "INT", "description": None, "required": True,
                                           "hasDefault": False}]  # fmt: skip
    child = engine.get_execution(out["executionId"])
    assert child is not None and child.parent_id == ex.id
    labels = child.label_map()
    assert (
        labels["asked"] == "yes" and labels["system.correlationId"] == ex.id and "system.evil" not in labels
    )
    assert child.trigger["variables"] == {"executionId": ex.id, "namespace": "company", "flowId": "parent",
                                          "taskId": "start"}  # fmt: skip


def test_without_wait_it_answers_at_once(engine: Engine) -> None:
    engine.deploy(SLOW)
    ex = engine.run(engine.deploy(parent(namespace="company.kids", flowId="slow", wait="false")), timeout=30)
    assert ex.state.current == "SUCCESS" and outputs(ex)["state"] in ("CREATED", "RUNNING")
    engine.kill(outputs(ex)["executionId"])


def test_bad_starts_fail_the_task_with_the_reason(engine: Engine) -> None:
    engine.deploy(CHILD)
    ex = engine.run(engine.deploy(parent(namespace="company.kids", flowId="nope")), timeout=30)
    assert ex.state.current == "FAILED"
    ex = engine.run(
        engine.deploy(parent(namespace="company.kids", flowId="child", inputs="{n: not-a-number}")),
        timeout=30,
    )
    assert ex.state.current == "FAILED"
    text = " ".join(r["message"] for r in engine.store.get_logs("main", ex.id))
    assert "flow company.kids.child cannot start" in text


def test_a_wait_that_runs_out_says_so_and_a_kill_reaches_the_child(engine: Engine) -> None:
    engine.deploy(SLOW)
    active = ("CREATED", "RUNNING")
    ex = engine.run(
        engine.deploy(parent(namespace="company.kids", flowId="slow", timeoutS="0.5")), timeout=30
    )
    assert ex.state.current == "FAILED"
    text = " ".join(r["message"] for r in engine.store.get_logs("main", ex.id))
    assert "did not end within 0.5 s; it goes on" in text
    before = engine.store.execution_ids_of("main", "company.kids", "slow", active)
    ex = engine.create_execution(engine.deploy(parent(namespace="company.kids", flowId="slow")))
    deadline = time.monotonic() + 10
    children: set[str] = set()
    while not children and time.monotonic() < deadline:
        children = engine.store.execution_ids_of("main", "company.kids", "slow", active) - before
        time.sleep(0.05)
    assert len(children) == 1
    engine.kill(ex.id)
    assert engine.wait(ex.id, 15).state.current == "KILLED"
    assert engine.wait(children.pop(), 15).state.current == "KILLED"
    for leftover in before:
        engine.kill(leftover)


def test_without_an_engine_the_task_says_so() -> None:
    with pytest.raises(TaskError, match="no engine runs it"):
        run_task(StartFlow(id="t", type=StartFlow.type_id, namespace="a", flow_id="b"))
