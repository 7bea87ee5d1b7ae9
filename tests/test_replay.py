"""Replay in the engine: which task runs a replay from a task run keeps, and that the rest runs again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from roost.engine.engine import Engine
from roost.engine.model import Execution
from roost.engine.replay import ReplayError, replay
from roost.store.db import Store


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=2)
    eng.start()
    yield eng
    eng.stop()


def ran(engine: Engine, source: str, **inputs: Any) -> tuple[Any, Execution]:
    flow = engine.deploy(source)
    return flow, engine.run(flow, inputs, timeout=30)


def replayed(
    engine: Engine, flow: Any, ex: Execution, task_id: str, value: str | None = None, **inputs: Any
) -> Execution:
    target = next(tr for tr in ex.task_runs if tr.task_id == task_id and (value is None or tr.value == value))
    new = replay(engine, ex, flow, flow, taskrun_id=target.id, inputs=inputs or None)
    return engine.wait(new.id, 30)


def counts(ex: Execution) -> dict[str, int]:
    out: dict[str, int] = {}
    for tr in ex.task_runs:
        out[tr.task_id] = out.get(tr.task_id, 0) + 1
    return out


def test_a_sequence_replays_from_the_chosen_task(engine: Engine, states: Any) -> None:
    flow, ex = ran(
        engine,
        """id: seq
namespace: company.team
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.id }}"
  - id: b
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.id }}"
  - id: c
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.id }}"
""",
    )
    new = replayed(engine, flow, ex, "b")
    assert states(new) == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"} and new.state.current == "SUCCESS"
    outputs = {tr.task_id: tr.outputs["value"] for tr in new.task_runs}
    assert outputs["a"] == ex.id  # kept from the original
    assert outputs["b"] == outputs["c"] == new.id  # ran again in the replay


def test_inside_a_foreach_and_errors_around(engine: Engine, states: Any) -> None:
    flow, ex = ran(
        engine,
        """id: each
namespace: company.team
inputs:
  - id: bad
    type: STRING
    defaults: b
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
      - id: check
        type: io.kestra.plugin.core.execution.Fail
        runIf: "{{ taskrun.value == inputs.bad }}"
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: failed
""",
    )
    assert ex.state.current == "FAILED" and counts(ex)["alert"] == 1
    new = replayed(engine, flow, ex, "check", "b", bad="z")
    assert new.state.current == "SUCCESS"
    assert "alert" not in counts(new)  # the errors branch is dropped; nothing failed this time
    assert counts(new)["first"] == 3 and counts(new)["check"] == 3


def test_a_working_directory_replays_whole(engine: Engine) -> None:
    flow, ex = ran(
        engine,
        """id: wd
namespace: company.team
inputs:
  - id: fail
    type: BOOLEAN
    defaults: true
tasks:
  - id: dir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: write
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo hi > file.txt
      - id: read
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - test -f file.txt
          - "{{ inputs.fail ? 'exit 1' : 'true' }}"
""",
    )
    assert ex.state.current == "FAILED"
    new = replayed(engine, flow, ex, "read", fail="false")
    assert new.state.current == "SUCCESS"  # `write` ran again: the folder of the first run is gone
    assert not {tr.id for tr in new.task_runs} & {tr.id for tr in ex.task_runs}


def test_an_unknown_task_run(engine: Engine) -> None:
    flow, ex = ran(
        engine,
        "id: one\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n",
    )
    with pytest.raises(ReplayError, match="task run nope not found"):
        replay(engine, ex, flow, flow, taskrun_id="nope")
