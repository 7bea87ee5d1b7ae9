"""Live logs and progress of a local run on a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from roost.cli.output import err_console

COLORS = {"TRACE": "dim", "DEBUG": "dim", "INFO": "cyan", "WARN": "yellow", "ERROR": "red"}
STATE_COLORS = {
    "SUCCESS": "green",
    "WARNING": "yellow",
    "FAILED": "red",
    "KILLED": "red",
    "CANCELLED": "yellow",
}


class LiveRun:
    """Prints an execution's logs as they arrive (stderr), and a summary at the end."""

    def __init__(self, engine: Any, enabled: bool = True) -> None:
        self.engine = engine
        self.enabled = enabled
        self.execution_id: str | None = None

    def _on_log(self, record: dict[str, Any]) -> None:
        if record.get("executionId") != self.execution_id:
            return
        level = record["level"]
        task = record.get("taskId") or "-"
        stamp = record["timestamp"][11:23]
        err_console().print(
            f"[dim]{stamp}[/dim] [{COLORS.get(level, 'white')}]{level:<5}[/] [bold]{task}[/bold] {record['message']}",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )

    @contextlib.contextmanager
    def follow(self, execution_id: str) -> Iterator[None]:
        self.execution_id = execution_id
        if not self.enabled:
            yield
            return
        self.engine.log_listeners.append(self._on_log)
        status = None
        if sys.stderr.isatty():
            status = err_console().status(f"running execution {execution_id}")
            status.start()
        try:
            yield
        finally:
            if status is not None:
                status.stop()
            self.engine.log_listeners.remove(self._on_log)

    def summary(self, ex: Any) -> None:
        state = ex.state.current
        color = STATE_COLORS.get(state, "white")
        runs = ex.task_runs
        err_console().print(
            f"execution [bold]{ex.id}[/bold] of {ex.namespace}.{ex.flow_id}: [{color}]{state}[/] "
            f"({len(runs)} task runs, {ex.state.to_dict().get('duration', '')})",
            markup=True,
        )
        for tr in runs:
            if tr.state.current in ("FAILED", "KILLED") and tr.extra.get("error"):
                err_console().print(f"  [red]{tr.task_id}[/red]: {tr.extra['error']}", markup=True)
        if ex.outputs:
            import json

            err_console().print(f"outputs: {json.dumps(ex.outputs, default=str)}", markup=False)
