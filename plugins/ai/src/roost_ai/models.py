"""The AIAgent's nested settings, with Kestra's ids and property names: model providers,
``configuration`` (sampling and ``responseFormat``), ``memory`` and ``observability``.

Nested properties accept ``{{ }}`` expressions; :func:`rendered` renders a settings object with the
task's context just before it is used (a secret read there joins the execution's masks).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field
from roost import Dynamic, Model, ModelSettings, RunContext, TaskError

P = "io.kestra.plugin.ai."
M = TypeVar("M", bound=Model)


def correlation_id(ctx: RunContext) -> str:
    """The execution's ``system.correlationId`` label (set on subflows), else its id."""
    return str((ctx.variables.get("labels") or {}).get("system.correlationId") or ctx.execution_id)


def rendered(ctx: RunContext, model: M) -> M:
    """``model`` with every expression in it rendered, typed again (an error names the property)."""
    data = model.model_dump(by_alias=True, exclude_none=True)
    try:
        return type(model).model_validate(ctx.render(data))
    except TaskError:
        raise
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        if callable(errors):
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise TaskError(f"{type(model).__name__}.{where}: {first.get('msg')} once rendered") from None
        raise TaskError(f"{type(model).__name__}: {exc}") from None


# -- model providers ------------------------------------------------------------------------------------
class OpenAI(Model):
    """OpenAI, or any OpenAI-compatible endpoint (vLLM, LiteLLM, LocalAI, Azure gateways...) by ``baseUrl``."""

    type: Literal["io.kestra.plugin.ai.provider.OpenAI"]
    model_name: Dynamic[str]
    """Model name, e.g. ``gpt-4o-mini``."""
    api_key: Dynamic[str] | None = None
    """API key, sent as ``Authorization: Bearer`` (write ``{{ secret('OPENAI_API_KEY') }}``)."""
    base_url: Dynamic[str] | None = None
    """Base URL of the API, version included (default ``https://api.openai.com/v1``)."""
    custom_headers: dict[str, Dynamic[str]] | None = None
    """Extra request headers (Roost), e.g. an organisation or a gateway's routing header."""

    def settings(self, timeout: float) -> ModelSettings:
        from roost.llm import check_headers

        try:
            headers = check_headers(self.custom_headers, "provider.customHeaders")
        except ValueError as exc:
            raise TaskError(str(exc)) from None
        return ModelSettings("openai", str(self.model_name), base_url=self.base_url, api_key=self.api_key,  # type: ignore[arg-type]
                             headers=headers, timeout=timeout)  # fmt: skip


class Ollama(Model):
    """A model served by Ollama (``/api/chat``)."""

    type: Literal["io.kestra.plugin.ai.provider.Ollama", "io.kestra.plugin.langchain4j.provider.Ollama"]
    model_name: Dynamic[str]
    """Model name, e.g. ``llama3``."""
    endpoint: Dynamic[str]
    """Ollama's address, e.g. ``http://localhost:11434``."""
    custom_headers: dict[str, Dynamic[str]] | None = None
    """Extra request headers (Roost), e.g. for a proxy in front of Ollama."""

    def settings(self, timeout: float) -> ModelSettings:
        from roost.llm import check_headers

        try:
            headers = check_headers(self.custom_headers, "provider.customHeaders")
        except ValueError as exc:
            raise TaskError(str(exc)) from None
        return ModelSettings("ollama", str(self.model_name), base_url=str(self.endpoint), headers=headers,
                             timeout=timeout)  # fmt: skip


Provider = Annotated[OpenAI | Ollama, Field(discriminator="type")]


# -- configuration ----------------------------------------------------------------------------------------
class ResponseFormat(Model):
    """How the model answers: free text (``TEXT``) or JSON matching ``jsonSchema`` (``JSON``)."""

    type: Dynamic[Literal["TEXT", "JSON"]] = "TEXT"
    """``TEXT`` (default) or ``JSON``; a JSON answer is returned as ``jsonOutput``."""
    json_schema: dict[str, Any] | None = None
    """The JSON Schema the answer must match (with ``type: JSON``); the answer is validated against it."""
    json_schema_description: Dynamic[str] | None = None
    """What the schema describes, to help the model."""
    strict_json: Dynamic[bool] = False
    """Ask providers that support it to enforce the schema strictly."""


class ChatConfiguration(Model):
    """Sampling settings and the response format."""

    temperature: Dynamic[float] | None = None
    """Randomness, typically 0.0–1.0."""
    top_k: Dynamic[int] | None = None
    """Sample among the K most likely tokens (Ollama)."""
    top_p: Dynamic[float] | None = None
    """Nucleus sampling."""
    seed: Dynamic[int] | None = None
    """A seed for repeatable answers."""
    max_token: Dynamic[int] | None = None
    """Most tokens the model may generate in one answer."""
    log_requests: Dynamic[bool] = False
    """Log what is sent to the model (at DEBUG; secrets masked)."""
    log_responses: Dynamic[bool] = False
    """Log what the model answers (at DEBUG)."""
    response_format: ResponseFormat | None = None
    """``TEXT`` (default) or ``JSON`` with a schema."""

    def parameters(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
                "max_tokens": self.max_token, "top_k": self.top_k}  # fmt: skip


# -- memory ---------------------------------------------------------------------------------------------
class KestraKVStore(Model):
    """Conversation memory in the namespace's KV store, under ``memoryId``, kept for ``ttl``."""

    type: Literal["io.kestra.plugin.ai.memory.KestraKVStore", "io.kestra.plugin.ai.memory.KestraKVMemory",
                  "io.kestra.plugin.langchain4j.memory.KestraKVMemory"]  # fmt: skip
    memory_id: Dynamic[str] | None = None
    """The KV key of the conversation (default: the execution's ``system.correlationId`` label, shared with
    its subflows, or its id when it has none)."""
    messages: Dynamic[int] = Field(default=10, ge=1, le=1000)
    """How many messages are kept (oldest dropped first)."""
    ttl: Dynamic[timedelta] = timedelta(hours=1)
    """How long the conversation is kept after its last use."""
    drop: Dynamic[Literal["NEVER", "BEFORE_TASKRUN", "AFTER_TASKRUN"]] = "NEVER"
    """Erase the conversation before or after this task run instead of waiting for ``ttl``."""


Memory = Annotated[KestraKVStore, Field(discriminator="type")]


# -- observability -------------------------------------------------------------------------------------------
class LangfuseObservability(Model):
    """Traces of the agent (the run, each model call, each tool call) exported to Langfuse over
    OpenTelemetry OTLP/HTTP. Off by default; payloads (prompts, outputs, tool arguments and results)
    are sent only when their capture is turned on."""

    enabled: Dynamic[bool] = False
    """Export traces."""
    endpoint: Dynamic[str] | None = None
    """Langfuse's OTLP endpoint, e.g. ``https://cloud.langfuse.com/api/public/otel`` (``/v1/traces`` is added
    when missing)."""
    public_key: Dynamic[str] | None = None
    """Langfuse public key (``pk-lf-...``)."""
    secret_key: Dynamic[str] | None = None
    """Langfuse secret key (``sk-lf-...``): write ``{{ secret('LANGFUSE_SECRET_KEY') }}``."""
    service_name: Dynamic[str] = "kestra-plugin-ai"
    """``service.name`` of the traces."""
    environment: Dynamic[str] | None = None
    """``deployment.environment`` of the traces."""
    release: Dynamic[str] | None = None
    """``service.version`` of the traces."""
    capture_prompt: Dynamic[bool] = False
    """Send the prompt (and the messages sent to the model)."""
    capture_system_message: Dynamic[bool] = False
    """Send the system message (in the trace metadata)."""
    capture_output: Dynamic[bool] = False
    """Send the model's answers."""
    capture_tool_arguments: Dynamic[bool] = False
    """Send the arguments of tool calls."""
    capture_tool_results: Dynamic[bool] = False
    """Send the results of tool calls."""
    max_payload_chars: Dynamic[int] = Field(default=2000, ge=1)
    """Longest captured payload; longer ones are cut."""
    export_timeout: Dynamic[timedelta] = timedelta(seconds=5)
    """How long the export may take when the task ends."""
