"""Langfuse observability of one agent run, over OpenTelemetry OTLP/HTTP (``opentelemetry-sdk``).

A trace holds a span for the run (``ai.agent.run``), one per model call (``chat <model>``, with the
GenAI semantic conventions: ``gen_ai.system``, ``gen_ai.request.model``, ``gen_ai.usage.*``...) and one
per tool call (``execute_tool <name>``), each with the flow, namespace, execution and task it belongs
to (``roost.*``) and Langfuse's own attributes (``langfuse.observation.type``, ``langfuse.session.id``
= the correlation id, ``langfuse.trace.metadata``). Prompts, outputs, tool arguments and tool results
are attributes only when their ``capture*`` setting is on, cut to ``maxPayloadChars``.

Each run has its own tracer provider and exporter (Langfuse's basic auth: public key and secret key),
flushed when the run ends within ``exportTimeout``. Tracing never fails the task: a problem setting it
up or exporting is a warning in the task's log.
"""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from typing import Any

from roost import RunContext

from roost_ai.models import correlation_id

SCOPE = "io.kestra.plugin.ai.agent.AIAgent"


def _cut(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "...[truncated]"


def traces_url(endpoint: str) -> str:
    """Langfuse documents its OTLP base (``.../api/public/otel``); traces are posted under ``/v1/traces``."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class Tracing:
    """The spans of one agent run; every method is a no-op when tracing is off."""

    def __init__(self, ctx: RunContext, config: Any = None, *, system: str = "", model: str = "",
                 parameters: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.ctx = ctx
        self.config = config
        self.system = system
        self.model = model
        self.parameters = {k: v for k, v in (parameters or {}).items() if v is not None}
        self.provider: Any = None
        self.tracer: Any = None
        self.root: Any = None
        if config is None or not config.enabled:
            return
        if not (config.endpoint and config.public_key and config.secret_key):
            ctx.logger.warning("Langfuse observability is enabled but endpoint, publicKey or secretKey is missing: "
                               "no trace is exported")  # fmt: skip
            return
        try:
            self._setup()
        except Exception as exc:  # never fail the task for its traces
            ctx.logger.warning("Langfuse observability could not start (%s: %s): no trace is exported",
                               type(exc).__name__, exc)  # fmt: skip
            self.provider = self.tracer = None

    @property
    def on(self) -> bool:
        return self.tracer is not None

    def _setup(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        c = self.config
        attributes = {"service.name": c.service_name}
        if c.environment:
            attributes["deployment.environment"] = c.environment
        if c.release:
            attributes["service.version"] = c.release
        token = base64.b64encode(f"{c.public_key}:{c.secret_key}".encode()).decode()
        exporter = OTLPSpanExporter(endpoint=traces_url(c.endpoint), headers={"Authorization": f"Basic {token}"},
                                    timeout=c.export_timeout.total_seconds())  # fmt: skip
        self.provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer(SCOPE)

    # -- attributes -------------------------------------------------------------------------------------
    def _context(self) -> dict[str, Any]:
        ctx = self.ctx
        return {"roost.flow.id": ctx.flow_id, "roost.namespace": ctx.namespace, "roost.execution.id": ctx.execution_id,
                "roost.task.id": ctx.task_id, "roost.taskrun.id": ctx.taskrun_id}  # fmt: skip

    def _cut(self, value: Any) -> str:
        return _cut(value, self.config.max_payload_chars)

    # -- spans ------------------------------------------------------------------------------------------
    def start(self, prompt: str, system_message: str | None) -> None:
        if not self.on:
            return
        from opentelemetry.trace import SpanKind

        c = self.config
        metadata = {"taskId": self.ctx.task_id, "flowId": self.ctx.flow_id, "namespace": self.ctx.namespace,
                    "executionId": self.ctx.execution_id, "taskRunId": self.ctx.taskrun_id}  # fmt: skip
        if c.capture_system_message and system_message:
            metadata["systemMessage"] = self._cut(system_message)
        attributes: dict[str, Any] = {
            **self._context(),
            "langfuse.trace.name": "AIAgent",
            "langfuse.observation.type": "agent",
            "langfuse.trace.tags": ["roost", "ai-agent", self.system],
            "langfuse.trace.metadata": json.dumps(metadata),
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.system": self.system,
            "gen_ai.request.model": self.model,
        }
        attributes["langfuse.session.id"] = correlation_id(self.ctx)
        if self.parameters:
            attributes["langfuse.observation.model.parameters"] = json.dumps(self.parameters)
        if c.capture_prompt:
            attributes["langfuse.trace.input"] = attributes["langfuse.observation.input"] = self._cut(prompt)
        try:
            self.root = self.tracer.start_span("ai.agent.run", kind=SpanKind.INTERNAL, attributes=attributes)
        except Exception as exc:
            self.ctx.logger.warning("Langfuse: cannot start the trace (%s)", exc)
            self.tracer = None

    def _child(self, name: str, attributes: dict[str, Any], kind: Any) -> Any:
        from opentelemetry import trace

        parent = trace.set_span_in_context(self.root) if self.root is not None else None
        return self.tracer.start_span(
            name, context=parent, kind=kind, attributes={**self._context(), **attributes}
        )

    @contextmanager
    def model_call(self, messages: list[dict[str, Any]]) -> Any:
        """A span around one model call; the body calls ``done(result)`` with the :class:`roost.ChatResult`."""
        if not self.on:
            yield lambda result: None
            return
        from opentelemetry.trace import SpanKind, Status, StatusCode

        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.system": self.system,
                                      "gen_ai.request.model": self.model, "langfuse.observation.type": "generation"}  # fmt: skip
        for key, value in self.parameters.items():
            attributes[f"gen_ai.request.{key}"] = value
        if self.config.capture_prompt:
            attributes["langfuse.observation.input"] = self._cut(messages)
        span = self._child(f"chat {self.model}", attributes, SpanKind.CLIENT)

        def done(result: Any) -> None:
            span.set_attribute("gen_ai.response.model", result.model or self.model)
            span.set_attribute("langfuse.observation.model.name", result.model or self.model)
            if result.finish_reason:
                span.set_attribute("gen_ai.response.finish_reasons", [str(result.finish_reason)])
            usage = result.usage
            if usage.input_tokens is not None:
                span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            if usage.output_tokens is not None:
                span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            details = {k: v for k, v in (("input", usage.input_tokens), ("output", usage.output_tokens),
                                         ("total", usage.total_tokens)) if v is not None}  # fmt: skip
            if details:
                span.set_attribute("langfuse.observation.usage_details", json.dumps(details))
            if self.config.capture_output:
                out = result.text if result.text is not None else [c.message() for c in result.tool_calls]
                span.set_attribute("langfuse.observation.output", self._cut(out))

        try:
            yield done
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("error.type", type(exc).__name__)
            raise
        finally:
            span.end()

    @contextmanager
    def tool_call(self, name: str, call_id: str, arguments: str) -> Any:
        """A span around one tool call; the body calls ``done(result_text, error)``."""
        if not self.on:
            yield lambda result, error=None: None
            return
        from opentelemetry.trace import SpanKind, Status, StatusCode

        attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                                      "gen_ai.tool.call.id": call_id, "langfuse.observation.type": "tool"}  # fmt: skip
        if self.config.capture_tool_arguments:
            attributes["langfuse.observation.input"] = self._cut(arguments)
        span = self._child(f"execute_tool {name}", attributes, SpanKind.INTERNAL)

        def done(result: str, error: str | None = None) -> None:
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, "tool call refused or failed"))
                span.set_attribute("error.type", "ToolError")
            if self.config.capture_tool_results:
                span.set_attribute("langfuse.observation.output", self._cut(result))

        try:
            yield done
        finally:
            span.end()

    def finish(
        self, output: Any, usage: Any, finish_reason: str | None, error: BaseException | None = None
    ) -> None:
        if self.root is None:
            return
        from opentelemetry.trace import Status, StatusCode

        try:
            if usage.input_tokens is not None:
                self.root.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            if usage.output_tokens is not None:
                self.root.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            if finish_reason:
                self.root.set_attribute("ai.finish.reason", finish_reason)
            if self.config.capture_output and output is not None:
                self.root.set_attribute("langfuse.trace.output", self._cut(output))
                self.root.set_attribute("langfuse.observation.output", self._cut(output))
            if error is not None:
                self.root.set_status(Status(StatusCode.ERROR, type(error).__name__))
                self.root.set_attribute("error.type", type(error).__name__)
            else:
                self.root.set_status(Status(StatusCode.OK))
        finally:
            self.root.end()
            self.root = None

    def close(self) -> None:
        """Export what is left, within ``exportTimeout``; a failed export is a warning."""
        if self.provider is None:
            return
        millis = int(self.config.export_timeout.total_seconds() * 1000)
        try:
            if not self.provider.force_flush(millis):
                self.ctx.logger.warning("Langfuse: the traces were not all exported within %s ms", millis)
            self.provider.shutdown()
        except Exception as exc:
            self.ctx.logger.warning("Langfuse: exporting the traces failed (%s: %s)", type(exc).__name__, exc)
        self.provider = self.tracer = None
