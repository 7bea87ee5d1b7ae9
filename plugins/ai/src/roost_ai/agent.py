"""Kestra's ``io.kestra.plugin.ai.agent.AIAgent``: a model, a system message and a prompt, tools the
model may call, an optional memory, text or schema-checked JSON output, and Langfuse traces.

The loop: send the conversation (system message, the memory's earlier turns, the prompt) with the
tools' specifications; run every tool call the model asks for and send the results back; stop at
the first answer without tool calls. It is bounded (``maxSequentialToolsInvocations``, 25 by
default) and kill-aware (a kill abandons the call in flight). With ``responseFormat.type: JSON`` the
answer must be a JSON value matching ``jsonSchema``: one that is not gets the problem sent back once,
then fails the task naming it.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import Field
from roost import ChatClient, ChatResult, Dynamic, Output, RunContext, Task, TaskError, TokenUsage

from roost_ai.models import (
    ChatConfiguration,
    LangfuseObservability,
    Memory,
    Provider,
    correlation_id,
    rendered,
)
from roost_ai.tools import Tool, ToolFunction, ToolRefused
from roost_ai.tracing import Tracing

DEFAULT_TIMEOUT = timedelta(seconds=120)  # Kestra's model timeout when the task sets none
DEFAULT_MAX_TOOL_CALLS = 25
FINISH_REASONS = {"stop": "STOP", "length": "LENGTH", "tool_calls": "TOOL_EXECUTION", "function_call": "TOOL_EXECUTION",
                  "content_filter": "CONTENT_FILTER"}  # fmt: skip


class AgentOutput(Output):
    text_output: str | None = None
    """The answer, with the ``TEXT`` response format (the default)."""
    json_output: Any = None
    """The answer, with the ``JSON`` response format (checked against ``jsonSchema``)."""
    token_usage: dict[str, int | None] = Field(default_factory=dict)
    """``inputTokenCount``, ``outputTokenCount`` and ``totalTokenCount`` over every model call."""
    finish_reason: str | None = None
    """Why the last answer ended: STOP, LENGTH, TOOL_EXECUTION, CONTENT_FILTER or OTHER."""
    tool_executions: list[dict[str, Any]] = Field(default_factory=list)
    """Every tool call: ``requestId``, ``requestName``, ``requestArguments``, ``result``."""
    intermediate_responses: list[dict[str, Any]] = Field(default_factory=list)
    """The model's answers that asked for tools, before the final one."""
    request_duration: int | None = None
    """Milliseconds spent waiting for the model."""
    output_files: dict[str, str] = Field(default_factory=dict)
    """Files of ``outputFiles``, by name, in internal storage."""


class AIAgent(Task, type="io.kestra.plugin.ai.agent.AIAgent"):
    """Run an AI agent: a model answers the prompt, calling the tools it is given as it sees fit."""

    system_message: Dynamic[str] | None = None
    """The system message: the agent's role and rules."""
    prompt: Dynamic[str]
    """The user's request for this run."""
    provider: Provider
    """The model: ``io.kestra.plugin.ai.provider.OpenAI`` (any OpenAI-compatible endpoint) or ``...Ollama``."""
    configuration: ChatConfiguration = Field(default_factory=ChatConfiguration)
    """Sampling settings and the response format (``TEXT``, or ``JSON`` with a schema)."""
    tools: list[Tool] | None = None
    """Tools the model may call: ``io.kestra.plugin.ai.tool.KestraFlow``, ``io.roost.plugin.ai.tool.HttpRequest``."""
    max_sequential_tools_invocations: Dynamic[int] | None = Field(default=None, ge=1)
    """Most tool calls in one run (25 by default; Kestra's is unbounded)."""
    memory: Memory | None = None
    """Conversation memory kept between runs (``io.kestra.plugin.ai.memory.KestraKVStore``)."""
    observability: LangfuseObservability | None = None
    """Langfuse traces over OpenTelemetry (off by default; payload capture opt-in)."""
    output_files: list[str] | None = None
    """Files of the working directory to keep in internal storage after the run."""

    Out: ClassVar[type[AgentOutput]] = AgentOutput

    def run(self, ctx: RunContext) -> AgentOutput:
        provider = rendered(ctx, self.provider)
        config = rendered(ctx, self.configuration)
        observability = rendered(ctx, self.observability) if self.observability is not None else None
        memory = rendered(ctx, self.memory) if self.memory is not None else None
        timeout = (self.timeout if isinstance(self.timeout, timedelta) else None) or DEFAULT_TIMEOUT
        settings = provider.settings(timeout.total_seconds())
        functions = self._functions(ctx)
        limit = int(self.max_sequential_tools_invocations or DEFAULT_MAX_TOOL_CALLS)
        schema, json_mode = self._response_format(config)
        tracing = Tracing(
            ctx, observability, system=settings.kind, model=settings.model, parameters=config.parameters()
        )

        messages: list[dict[str, Any]] = []
        if self.system_message:
            messages.append({"role": "system", "content": str(self.system_message)})
        history = self._recall(ctx, memory)
        messages.extend(history)
        messages.append({"role": "user", "content": str(self.prompt)})
        if config.log_requests:
            ctx.logger.debug("AI request to %s: %s", settings.model, json.dumps(messages)[:4000])

        usage = TokenUsage()
        executions: list[dict[str, Any]] = []
        intermediate: list[dict[str, Any]] = []
        waited = 0.0
        tracing.start(str(self.prompt), self.system_message)
        result: ChatResult | None = None
        schema_retry_used = False
        error: BaseException | None = None
        try:
            with ChatClient(settings, ctx=ctx) as client:
                while True:
                    ctx.raise_if_killed()
                    started = time.monotonic()
                    with tracing.model_call(messages) as done:
                        result = client.chat(messages, tools=[f.spec() for f in functions.values()] or None,
                                             json_schema=schema, json_mode=json_mode, parameters=config.parameters())  # fmt: skip
                        done(result)
                    waited += time.monotonic() - started
                    usage.add(result.usage)
                    if config.log_responses:
                        ctx.logger.debug(
                            "AI response from %s: %s", settings.model, (result.text or "")[:4000]
                        )
                    if result.tool_calls:
                        if len(executions) + len(result.tool_calls) > limit:
                            raise TaskError(f"the model asked for more than {limit} tool calls "
                                            "(maxSequentialToolsInvocations); stopped")  # fmt: skip
                        intermediate.append(self._intermediate(result))
                        messages.append(result.message())
                        for call in result.tool_calls:
                            text = self._call_tool(ctx, tracing, functions, call)
                            executions.append({"requestId": call.id, "requestName": call.name,
                                               "requestArguments": _arguments(call.arguments), "result": text})  # fmt: skip
                            messages.append(
                                {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": text}
                            )
                        continue
                    if schema is not None or json_mode:
                        problem = _json_problem(result.text, schema)
                        if problem is not None:
                            if schema_retry_used:
                                raise TaskError(
                                    f"the model's answer does not match responseFormat.jsonSchema: {problem}"
                                )
                            schema_retry_used = True
                            messages.append(result.message())
                            messages.append({"role": "user", "content": f"Your answer is not valid: {problem}. Answer "
                                             "again with only the JSON value matching the schema."})  # fmt: skip
                            continue
                    break
        except BaseException as exc:
            error = exc
            raise
        finally:
            reason = _finish_reason(result.finish_reason) if result is not None else None
            tracing.finish(result.text if result is not None else None, usage, reason, error)
            tracing.close()

        assert result is not None
        self._remember(ctx, memory, history, str(self.prompt), result.text)
        json_output = json.loads(result.text or "null") if (schema is not None or json_mode) else None
        for name, value in (("input.token.count", usage.input_tokens), ("output.token.count", usage.output_tokens),
                            ("total.token.count", usage.total_tokens)):  # fmt: skip
            if value is not None:
                ctx.metric(name, value)
        return AgentOutput(
            text_output=None if (schema is not None or json_mode) else result.text,
            json_output=json_output,
            token_usage={
                "inputTokenCount": usage.input_tokens,
                "outputTokenCount": usage.output_tokens,
                "totalTokenCount": usage.total_tokens,
            },  # fmt: skip
            finish_reason=_finish_reason(result.finish_reason),
            tool_executions=executions,
            intermediate_responses=intermediate,
            request_duration=int(waited * 1000),
            output_files=self._output_files(ctx),
        )

    # -- pieces -----------------------------------------------------------------------------------------
    def _functions(self, ctx: RunContext) -> dict[str, ToolFunction]:
        out: dict[str, ToolFunction] = {}
        for tool in self.tools or []:
            for fn in rendered(ctx, tool).callables(ctx):
                if fn.name in out:
                    raise TaskError(f"two tools are named {fn.name!r}: give each a distinct name or flow")
                out[fn.name] = fn
        return out

    @staticmethod
    def _response_format(config: ChatConfiguration) -> tuple[dict[str, Any] | None, bool]:
        fmt = config.response_format
        if fmt is None or fmt.type == "TEXT":
            if fmt is not None and fmt.json_schema is not None:
                raise TaskError("configuration.responseFormat.jsonSchema is only allowed when type is JSON")
            return None, False
        if fmt.json_schema is None:
            return None, True
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(fmt.json_schema)
        except SchemaError as exc:
            raise TaskError(
                f"configuration.responseFormat.jsonSchema is not a valid JSON Schema: {exc.message}"
            ) from None
        schema = dict(fmt.json_schema)
        if fmt.json_schema_description and "description" not in schema:
            schema["description"] = str(fmt.json_schema_description)
        return schema, False

    @staticmethod
    def _call_tool(ctx: RunContext, tracing: Tracing, functions: dict[str, ToolFunction], call: Any) -> str:
        with tracing.tool_call(call.name, call.id, call.arguments) as done:
            fn = functions.get(call.name)
            if fn is None:
                text = (
                    f"error: there is no tool named {call.name!r} (tools: {', '.join(functions) or 'none'})"
                )
                done(text, "unknown tool")
                return text
            try:
                args = call.parsed()
            except ValueError as exc:
                text = f"error: the arguments are not a JSON object ({exc})"
                done(text, "bad arguments")
                return text
            try:
                text = fn.run(args)
            except ToolRefused as exc:
                text = f"error: {exc}"
                ctx.logger.warning("tool %s refused a call: %s", call.name, exc)
                done(text, "refused")
                return text
            done(text)
            ctx.logger.info("tool %s called", call.name)
            return text

    @staticmethod
    def _intermediate(result: ChatResult) -> dict[str, Any]:
        return {"completion": result.text, "finishReason": _finish_reason(result.finish_reason),
                "tokenUsage": {"inputTokenCount": result.usage.input_tokens, "outputTokenCount": result.usage.output_tokens,
                               "totalTokenCount": result.usage.total_tokens},
                "toolExecutionRequests": [{"id": c.id, "name": c.name, "arguments": _arguments(c.arguments)}
                                          for c in result.tool_calls]}  # fmt: skip

    @staticmethod
    def _recall(ctx: RunContext, memory: Any) -> list[dict[str, Any]]:
        """The earlier turns (user prompts and final answers) of the conversation, oldest first."""
        if memory is None:
            return []
        key = str(memory.memory_id or correlation_id(ctx))
        if memory.drop == "BEFORE_TASKRUN":
            ctx.kv_delete(key)
            return []
        stored = ctx.kv(key, error_on_missing=False)
        if isinstance(stored, str):
            try:
                stored = json.loads(stored)
            except ValueError:
                stored = None
        if not isinstance(stored, list):
            return []
        turns = [m for m in stored if isinstance(m, dict) and m.get("role") in ("user", "assistant")
                 and isinstance(m.get("content"), str)]  # fmt: skip
        return turns[-int(memory.messages) :]

    @staticmethod
    def _remember(
        ctx: RunContext, memory: Any, history: list[dict[str, Any]], prompt: str, answer: str | None
    ) -> None:
        if memory is None:
            return
        key = str(memory.memory_id or correlation_id(ctx))
        if memory.drop == "AFTER_TASKRUN":
            ctx.kv_delete(key)
            return
        turns = [
            *history,
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": answer or ""},
        ]
        turns = turns[-int(memory.messages) :]
        while turns and turns[0]["role"] != "user":  # a window starts with a question
            turns = turns[1:]
        ctx.kv_put(key, turns, ttl=memory.ttl.total_seconds())

    def _output_files(self, ctx: RunContext) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self.output_files or []:
            path = (ctx.working_dir / name).resolve()
            if not path.is_relative_to(ctx.working_dir.resolve()) or not path.is_file():
                raise TaskError(f"outputFiles: {name!r} is not a file of the task's working directory")
            out[name] = ctx.put_file(path, path.name)
        return out


def _arguments(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return text


def _finish_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    return FINISH_REASONS.get(str(reason).lower(), "OTHER")


def _json_problem(text: str | None, schema: dict[str, Any] | None) -> str | None:
    """Why an answer is not the JSON asked for (None when it is)."""
    try:
        value = json.loads(text or "")
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at position {exc.pos})"
    if schema is None:
        return None
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(p) for p in first.absolute_path) or "the root"
    return f"at {where}: {first.message}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
