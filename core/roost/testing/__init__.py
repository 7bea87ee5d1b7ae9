"""The plugin authoring kit: run one task without an engine, fresh plugin sets, a standard suite.

``run_task(MyTask, prop=value)`` validates the properties as a flow would,
renders expressions, runs the task and returns its outputs, logs and assets.
Fakes over real HTTP: :mod:`roost.testing.http` (the base, with fault injection) and
:mod:`roost.testing.llm` (OpenAI-compatible and Ollama chat models, scripted).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roost import AssetBundle, Output, Task, TaskError, TaskWarning
from roost.engine.context import Runtime, TaskRunContext, render_task


@dataclass
class TaskResult:
    state: str
    outputs: dict[str, Any]
    logs: list[dict[str, Any]]
    assets: list[AssetBundle] = field(default_factory=list)
    error: str | None = None
    context: TaskRunContext | None = None

    @property
    def messages(self) -> list[str]:
        return [log["message"] for log in self.logs]


def run_task(
    task: type[Task] | Task,
    *,
    variables: dict[str, Any] | None = None,
    runtime: Runtime | None = None,
    namespace: str = "company.team",
    raise_on_failure: bool = True,
    **props: Any,
) -> TaskResult:
    """Run one task as the worker would and return its result.

    ``task`` is a class (``props`` are its YAML properties, camelCase or snake_case)
    or an instance. Failures raise :class:`TaskError` unless ``raise_on_failure`` is false.
    """
    if isinstance(task, type):
        props.setdefault("id", "task")
        props.setdefault("type", task.type_id)
        task = task.model_validate(props)
    runtime = runtime or Runtime.in_memory(Path(tempfile.mkdtemp(prefix="roost-test-")))
    ctx = TaskRunContext(
        runtime,
        {"flow": {"id": "test", "namespace": namespace}, "execution": {"id": "test"}, **(variables or {})},
        namespace=namespace,
        flow_id="test",
        execution_id="test",
        task_id=task.id,
        taskrun_id="run",
    )
    from roost.engine.worker import collect_assets, outputs_dict

    try:
        rendered = render_task(task, ctx)
        out = rendered.run(ctx)  # type: ignore[attr-defined]
        state = "SUCCESS"
        error = None
    except TaskWarning as warn:
        out, state, error = warn.outputs, "WARNING", str(warn)
    except TaskError as exc:
        if raise_on_failure:
            raise
        return TaskResult("FAILED", {}, ctx.logs, error=str(exc), context=ctx)
    outputs = outputs_dict(out) or {}
    assets = collect_assets(rendered, ctx, out, outputs)
    return TaskResult(state, outputs, ctx.logs, assets, error, ctx)


__all__ = ["Output", "Runtime", "TaskResult", "TaskRunContext", "registered", "run_task"]


@contextmanager
def registered(plugin: object, name: str = "throwaway") -> Iterator[Any]:
    """Register a throwaway plugin (a module or an object with hookimpls) on the process-wide set for a block.

    ::

        class Mine:
            @hookimpl
            def register_task_types(self, register):
                register(MyTask)

        with registered(Mine()):
            roost.run(flow_yaml)
    """
    from roost.plugins import get_plugins

    plugins = get_plugins()
    plugins.register_module(plugin, name=name)
    try:
        yield plugins
    finally:
        plugins.unregister(name)
