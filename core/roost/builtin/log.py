"""Log, Return, OutputValues, Fail and Sleep: the small core tasks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from roost import Dynamic, Output, RunContext, Task, TaskError


class Log(Task, type="io.kestra.plugin.core.log.Log", aliases=("io.kestra.core.tasks.log.Log",)):
    """Write a message (or several) to the execution's logs."""

    inline: ClassVar[bool] = True

    message: Dynamic[str] | list[Dynamic[str]]
    """The message, or a list of messages."""
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    """Level of the log line."""

    def run(self, ctx: RunContext) -> None:
        messages = self.message if isinstance(self.message, list) else [self.message]
        for m in messages:
            ctx.logger.log(self.level, ctx.render(m) if isinstance(m, str) else str(m))


class ReturnOutput(Output):
    value: Any = None
    """The rendered value."""


class Return(
    Task, type="io.kestra.plugin.core.debug.Return", aliases=("io.kestra.core.tasks.debugs.Return",)
):
    """Render a value and expose it as ``outputs.<id>.value``."""

    inline: ClassVar[bool] = True

    format: Dynamic[str] | None = None
    """The template to render."""

    def run(self, ctx: RunContext) -> ReturnOutput:
        return ReturnOutput(value=self.format)


class OutputValues(Task, type="io.kestra.plugin.core.output.OutputValues"):
    """Expose rendered values as ``outputs.<id>.values``."""

    inline: ClassVar[bool] = True

    values: Dynamic[dict[str, Any]] = Field(default_factory=dict)
    """Values to expose."""

    def run(self, ctx: RunContext) -> dict[str, Any]:
        return {"values": self.values}


class Fail(
    Task, type="io.kestra.plugin.core.execution.Fail", aliases=("io.kestra.core.tasks.executions.Fail",)
):
    """Fail the execution, optionally only when ``condition`` is true."""

    condition: Dynamic[str] | None = None
    """When set, fail only if it renders to true."""
    error_message: Dynamic[str] = "Task failure"
    """Message of the failure."""

    def run(self, ctx: RunContext) -> None:
        if self.condition is not None and str(self.condition).strip().lower() not in ("true", "1", "yes"):
            return
        raise TaskError(self.error_message)


class Sleep(Task, type="io.kestra.plugin.core.flow.Sleep"):
    """Wait for ``duration``; a kill wakes it at once."""

    duration: Dynamic[timedelta]
    """How long to wait (ISO-8601)."""

    def run(self, ctx: RunContext) -> None:
        ctx.sleep(self.duration.total_seconds())


TASKS = (Log, Return, OutputValues, Fail, Sleep)
