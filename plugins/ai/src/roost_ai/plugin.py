"""Hook implementations only: the agent's module (httpx, OpenTelemetry) is imported when a flow first uses it."""

from roost import LazyType, hookimpl


@hookimpl
def register_task_types(register):
    register(LazyType("io.kestra.plugin.ai.agent.AIAgent", "roost_ai.agent:AIAgent"))
