"""Tasks that act on executions and triggers: Labels, Resume (``execution.*``) and Toggle (``trigger.Toggle``)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from roost import Dynamic, Output, RunContext, Task, TaskError
from roost.flow.properties import stringify

E = "io.kestra.plugin.core.execution."


def _services(ctx: RunContext, what: str) -> Any:
    services = getattr(getattr(ctx, "runtime", None), "engine_services", None)
    if services is None:
        raise TaskError(f"{what} needs an engine: it acts on executions and triggers")
    return services


class Labels(Task, type=E + "Labels", aliases=("io.kestra.core.tasks.executions.Labels",)):
    """Add labels to the current execution, or overwrite them (system labels are refused).

    Run by the executor, as Kestra's ExecutionUpdatableTask: the labels apply before the next task starts.
    """

    executor_kind: ClassVar[str] = "update"

    labels: dict[str, Any] | list[dict[str, Any]] | str
    """A map of labels, a list of ``{key, value}``, or an expression rendering to a JSON map."""

    def update(self, ex: Any, ctx: RunContext) -> None:
        new = self._rendered(ctx)
        for key, value in new.items():
            if key.startswith("system."):
                raise TaskError(
                    f"System labels can only be set by Kestra itself, offending label: {key}={value}"
                )
        merged = {lbl["key"]: lbl["value"] for lbl in ex.labels}
        merged.update(new)
        ex.labels = [{"key": k, "value": v} for k, v in merged.items()]

    def _rendered(self, ctx: RunContext) -> dict[str, str]:
        labels = self.labels
        if isinstance(labels, str):
            text = ctx.render(labels)
            try:
                parsed = json.loads(text) if isinstance(text, str) else text
            except ValueError:
                raise TaskError(
                    f"labels must render to a JSON map of labels, got {str(text)[:80]!r}"
                ) from None
            if not isinstance(parsed, dict):
                raise TaskError(f"labels must render to a JSON map of labels, got {stringify(parsed)[:80]}")
            return {str(k): _text(v) for k, v in parsed.items()}
        if isinstance(labels, list):
            out: dict[str, str] = {}
            for item in labels:
                if "key" not in item or "value" not in item:
                    raise TaskError(
                        f"each label of the list needs a key and a value, got {stringify(item)[:80]}"
                    )
                out[stringify(ctx.render(item["key"]))] = _text(ctx.render(item["value"]))
            return out
        return {stringify(ctx.render(k)): _text(ctx.render(v)) for k, v in labels.items()}


def _text(value: Any) -> str:
    """A label value: text as is, a map as JSON (as Kestra writes it)."""
    return stringify(value)


class ResumeOutput(Output):
    resumed_execution: dict[str, str]
    """The execution resumed: ``id``, ``namespace``, ``flowId``."""


class Resume(Task, type=E + "Resume", aliases=("io.kestra.core.tasks.executions.Resume",)):
    """Resume a paused execution: this one by default, or ``executionId`` (in ``namespace``/``flowId``)."""

    namespace: Dynamic[str] | None = None
    """Namespace of the flow of ``executionId``; this flow's by default."""
    flow_id: Dynamic[str] | None = None
    """Flow of ``executionId``; this flow by default."""
    execution_id: Dynamic[str] | None = None
    """The execution to resume; this one by default."""
    inputs: Dynamic[dict[str, Any]] | None = None
    """The ``onResume`` inputs passed to the paused task."""

    def run(self, ctx: RunContext) -> ResumeOutput:
        services = _services(ctx, "execution.Resume")
        execution_id = self.execution_id or ctx.execution_id
        namespace, flow_id = self.namespace or ctx.namespace, self.flow_id or ctx.flow_id
        target = services.execution(execution_id)
        if target is None or (target.namespace, target.flow_id) != (namespace, flow_id):
            raise TaskError(
                f"No execution found for execution id {execution_id} in flow {namespace}.{flow_id}"
            )
        if target.state.current != "PAUSED":
            raise TaskError(
                f"execution {execution_id} is {target.state.current}: only a PAUSED execution resumes"
            )
        services.resume(execution_id, self.inputs or None)
        ctx.logger.info("execution %s resumed", execution_id)
        return ResumeOutput(resumed_execution={"id": execution_id, "namespace": namespace, "flowId": flow_id})


class Toggle(
    Task, type="io.kestra.plugin.core.trigger.Toggle", aliases=("io.kestra.core.tasks.trigger.Toggle",)
):
    """Enable or disable a trigger of a flow (this one by default)."""

    namespace: Dynamic[str] | None = None
    """Namespace of the flow; this flow's by default."""
    flow_id: Dynamic[str] | None = None
    """The flow; this flow by default."""
    trigger: Dynamic[str]
    """Id of the trigger."""
    enabled: Dynamic[bool] = False
    """Enable (true) or disable (false) the trigger."""

    def run(self, ctx: RunContext) -> None:
        services = _services(ctx, "trigger.Toggle")
        namespace, flow_id = self.namespace or ctx.namespace, self.flow_id or ctx.flow_id
        flow = services.flow(namespace, flow_id)
        if flow is None:
            raise TaskError(
                f"Unable to find flow {namespace}.{flow_id}. Make sure the flow exists and the current execution "
                "is authorized to access it."
            )
        if not any(t.id == self.trigger for t in flow.triggers):
            raise TaskError(f"Unable to find trigger {self.trigger} for the flow {namespace}.{flow_id}")
        services.set_trigger_disabled(namespace, flow_id, self.trigger, not self.enabled)
        ctx.logger.info("trigger %s of %s.%s %s", self.trigger, namespace, flow_id,
                        "enabled" if self.enabled else "disabled")  # fmt: skip


TASKS = (Labels, Resume, Toggle)
