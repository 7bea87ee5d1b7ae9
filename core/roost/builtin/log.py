"""Log, Return, OutputValues, Fail and Sleep: the small core tasks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from roost import Dynamic, Output, RunContext, Task, TaskError
from roost.flow.properties import is_truthy

Level = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]


class Log(Task, type="io.kestra.plugin.core.log.Log", aliases=("io.kestra.core.tasks.log.Log",)):
    """Write a message (or several) to the execution's logs."""

    inline: ClassVar[bool] = True

    message: Dynamic[str] | list[Dynamic[str]]
    """The message, or a list of messages."""
    level: Dynamic[Level] = "INFO"
    """Level of the log line."""

    def run(self, ctx: RunContext) -> None:
        messages = self.message if isinstance(self.message, list) else [self.message]
        for m in messages:
            ctx.logger.log(self.level, ctx.render(m) if isinstance(m, str) else str(m))


class Echo(Task, type="io.kestra.plugin.core.debug.Echo", aliases=("io.kestra.core.tasks.debugs.Echo",)):
    """Deprecated: write ``format`` to the logs (use io.kestra.plugin.core.log.Log)."""

    inline: ClassVar[bool] = True
    deprecated: ClassVar[str] = "use io.kestra.plugin.core.log.Log"

    format: Dynamic[str]
    """The message."""
    level: Dynamic[Level] = "INFO"
    """Level of the log line."""

    def run(self, ctx: RunContext) -> None:
        ctx.logger.log(self.level, self.format)


class FetchOutput(Output):
    size: int
    """How many log lines were fetched."""
    uri: str
    """Internal-storage file of the lines: one Ion struct per line, as Kestra writes it."""


class Fetch(Task, type="io.kestra.plugin.core.log.Fetch", aliases=("io.kestra.core.tasks.log.Fetch",)):
    """Store the log lines of an execution (this one by default) in a file, from ``level`` up."""

    namespace: Dynamic[str] | None = None
    """Namespace of the flow of ``executionId``; this flow's by default."""
    flow_id: Dynamic[str] | None = None
    """Flow of ``executionId``; this flow by default."""
    execution_id: Dynamic[str] | None = None
    """The execution; this one by default."""
    tasks_id: Dynamic[list[str]] | None = None
    """Only the lines of these tasks."""
    level: Dynamic[Level] = "INFO"
    """The lowest level fetched."""

    def run(self, ctx: RunContext) -> FetchOutput:
        from roost.builtin.log_shipper import _ion_line as ion_line  # the Ion lines the file exporter writes

        services = getattr(getattr(ctx, "runtime", None), "engine_services", None)
        if services is None:
            raise TaskError("log.Fetch needs an engine: the logs live in its store")
        execution_id = self.execution_id or ctx.execution_id
        namespace, flow_id = self.namespace or ctx.namespace, self.flow_id or ctx.flow_id
        lines: list[dict[str, Any]] = []
        for task_id in self.tasks_id or [None]:  # type: ignore[list-item]
            lines += services.logs(execution_id, min_level=self.level, task_id=task_id, namespace=namespace,
                                   flow_id=flow_id)  # fmt: skip
        data = "".join(ion_line(line) + "\n" for line in lines)
        ctx.logger.debug("%d log line(s) fetched from execution %s", len(lines), execution_id)
        return FetchOutput(size=len(lines), uri=ctx.put_bytes(data.encode(), "logs.ion"))


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
        if self.condition is not None and not is_truthy(self.condition):
            return
        raise TaskError(self.error_message)


class Sleep(Task, type="io.kestra.plugin.core.flow.Sleep"):
    """Wait for ``duration``; a kill wakes it at once."""

    duration: Dynamic[timedelta]
    """How long to wait (ISO-8601)."""

    def run(self, ctx: RunContext) -> None:
        ctx.sleep(self.duration.total_seconds())


TASKS = (Log, Return, OutputValues, Fail, Sleep, Echo, Fetch)
