"""A chat-model client for OpenAI-compatible endpoints and Ollama, on :class:`roost.ApiClient`.

The AI Copilot (``roost.server.routes.ai``) and the AI plugin's ``AIAgent`` speak to models through
this one client, so both honour the same settings the same way: a base URL per model, an API key
(sent as ``Authorization: Bearer``, scrubbed from every message), custom request headers, a timeout,
and answers a provider asks to repeat later (``429``) retried as :class:`roost.HttpRetry` says.

* ``openai`` (any OpenAI-compatible server): ``POST {baseUrl}/chat/completions`` and
  ``POST {baseUrl}/audio/transcriptions`` (multipart); the base URL includes the version
  (``https://api.openai.com/v1``);
* ``ollama``: ``POST {baseUrl}/api/chat`` with ``stream: false`` (``http://localhost:11434``).

Messages are OpenAI-shaped dicts (``role``, ``content``, ``tool_calls``, ``tool_call_id``); tools
are OpenAI function tools (``{"type": "function", "function": {name, description, parameters}}``).
A chat answers a :class:`ChatResult`: the text, the tool calls, the finish reason and the token
usage. Anything not as documented (no choices, a tool call without a name) is an
:class:`roost.ApiError` naming the model, never a ``KeyError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from roost import RunContext, TaskError
from roost.rest import ApiClient, ApiError, HttpOptions, HttpRetry, HttpTimeout

PROVIDER_TYPES = {
    "openai": "openai",
    "ollama": "ollama",
    # Kestra's plugin ids name the same two protocols
    "io.kestra.plugin.ai.provider.openai": "openai",
    "io.kestra.plugin.ai.provider.ollama": "ollama",
}
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "ollama": "http://localhost:11434"}


def provider_kind(type_name: str) -> str | None:
    """``openai`` or ``ollama`` for a provider type as written (case-insensitive), else None."""
    return PROVIDER_TYPES.get(str(type_name).strip().lower())


def check_headers(headers: Mapping[str, Any] | None, where: str) -> dict[str, str]:
    """Custom request headers, checked: names are HTTP tokens, values carry no line break.

    ``ValueError`` names the header (never its value, which may be a credential)."""
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        name = str(name)
        if not name or any(c in name for c in ' \t\r\n:()<>@,;\\"/[]?={}\x00') or not name.isascii():
            raise ValueError(f"{where}: {name!r} is not a valid HTTP header name")
        if name.lower() in ("authorization", "host", "content-length", "content-type", "transfer-encoding"):
            raise ValueError(f"{where}: header {name!r} is set by Roost and cannot be overridden")
        text = "" if value is None else str(value)
        if any(c in text for c in "\r\n\x00") or not text.isascii():
            raise ValueError(
                f"{where}: the value of header {name!r} has a line break or a non-ASCII character"
            )
        out[name] = text
    return out


@dataclass
class ToolCall:
    """A function call the model asks for; ``arguments`` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str

    def parsed(self) -> dict[str, Any]:
        """The arguments as a mapping (``{}`` when empty); ``ValueError`` when not a JSON object."""
        if not self.arguments.strip():
            return {}
        value = json.loads(self.arguments)
        if not isinstance(value, dict):
            raise ValueError("the arguments are not a JSON object")
        return value

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class TokenUsage:
    input_tokens: int | None = None
    output_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    def add(self, other: TokenUsage) -> None:
        if other.input_tokens is not None:
            self.input_tokens = (self.input_tokens or 0) + other.input_tokens
        if other.output_tokens is not None:
            self.output_tokens = (self.output_tokens or 0) + other.output_tokens


@dataclass
class ChatResult:
    text: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    model: str | None = None
    """The model that answered, as the provider names it."""

    def message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            msg["tool_calls"] = [c.message() for c in self.tool_calls]
        return msg


@dataclass
class ModelSettings:
    """How to reach one model: what a Copilot provider entry or an AIAgent ``provider`` resolves to."""

    kind: str  # openai | ollama
    model: str
    base_url: str | None = None
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds without data from the provider before giving up
    name: str | None = None  # how messages name it (the Copilot's provider id)

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URLS[self.kind]).rstrip("/")


class ChatClient(ApiClient):
    """One model behind an OpenAI-compatible or Ollama endpoint."""

    user_agent = "roost-ai"
    retry = HttpRetry(max_retries=2, max_wait=30.0)

    def __init__(self, settings: ModelSettings, *, ctx: RunContext | None = None,
                 retry: HttpRetry | None = None) -> None:  # fmt: skip
        if settings.kind not in DEFAULT_BASE_URLS:
            raise TaskError(f"unknown model provider type {settings.kind!r} (expected openai or ollama)")
        self.settings = settings
        self.service = f"model {settings.name or settings.model!r} at {settings.url}"
        headers = dict(settings.headers)
        if settings.api_key:
            key = self.header_value(settings.api_key, "apiKey")
            if key:
                headers["Authorization"] = f"Bearer {key}"
        timeout = None
        if settings.timeout is not None:
            from datetime import timedelta

            timeout = HttpTimeout(read_idle_timeout=timedelta(seconds=settings.timeout),
                                  connect_timeout=timedelta(seconds=min(settings.timeout, 10.0)))  # fmt: skip
        super().__init__(settings.url, headers=headers, secrets=[settings.api_key], ctx=ctx, retry=retry,
                         options=HttpOptions(timeout=timeout))  # fmt: skip

    def error_message(self, response: httpx.Response) -> str:
        """OpenAI's ``{"error": {"message": ...}}`` and Ollama's ``{"error": "..."}``."""
        try:
            body = response.json()
        except ValueError:
            return self.snippet(response)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return self.scrub(str(err["message"]))[:500]
        if isinstance(err, str) and err:
            return self.scrub(err)[:500]
        return self.snippet(response)

    # -- chat ------------------------------------------------------------------------------------
    def chat(self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None = None,
             json_schema: Mapping[str, Any] | None = None, json_mode: bool = False,
             parameters: Mapping[str, Any] | None = None) -> ChatResult:  # fmt: skip
        """One chat completion. ``json_schema`` asks for output matching it (structured output),
        ``json_mode`` for any JSON object; ``parameters`` are the request's sampling settings
        (``temperature``, ``top_p``, ``seed``, ``max_tokens``...) by their OpenAI names."""
        if self.settings.kind == "ollama":
            return self._ollama(messages, tools, json_schema, json_mode, parameters or {})
        body: dict[str, Any] = {"model": self.settings.model, "messages": list(messages)}
        body.update({k: v for k, v in (parameters or {}).items() if v is not None})
        if tools:
            body["tools"] = list(tools)
        if json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": dict(json_schema)}}  # fmt: skip
        elif json_mode:
            body["response_format"] = {"type": "json_object"}
        label = "POST /chat/completions"
        data = self.request("POST", "/chat/completions", json_body=body)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.malformed(label, "no choices in the answer")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise self.malformed(label, "the first choice has no message")
        calls = []
        for i, call in enumerate(message.get("tool_calls") or []):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise self.malformed(label, f"tool call {i} has no function name")
            args = fn.get("arguments")
            calls.append(ToolCall(str(call.get("id") or f"call_{i}"), fn["name"],
                                  args if isinstance(args, str) else json.dumps(args or {})))  # fmt: skip
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        content = message.get("content")
        return ChatResult(
            text=content if isinstance(content, str) else None,
            tool_calls=calls,
            finish_reason=choices[0].get("finish_reason"),
            usage=TokenUsage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))),
            model=data.get("model") if isinstance(data.get("model"), str) else None,
        )

    def _ollama(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                json_schema: Mapping[str, Any] | None, json_mode: bool, parameters: Mapping[str, Any]) -> ChatResult:  # fmt: skip
        label = "POST /api/chat"
        converted = []
        for m in messages:
            msg: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
            if m.get("tool_calls"):
                msg["tool_calls"] = [{"function": {"name": c["function"]["name"],
                                                   "arguments": _loads(c["function"]["arguments"])}}
                                     for c in m["tool_calls"]]  # fmt: skip
            if m["role"] == "tool" and m.get("name"):
                msg["tool_name"] = m["name"]
            converted.append(msg)
        body: dict[str, Any] = {"model": self.settings.model, "messages": converted, "stream": False}
        options = {_OLLAMA_OPTIONS.get(k, k): v for k, v in parameters.items() if v is not None}
        if options:
            body["options"] = options
        if tools:
            body["tools"] = list(tools)
        if json_schema is not None:
            body["format"] = dict(json_schema)
        elif json_mode:
            body["format"] = "json"
        data = self.request("POST", "/api/chat", json_body=body)
        message = data.get("message") if isinstance(data, dict) else None
        if not isinstance(message, dict):
            raise self.malformed(label, "no message in the answer")
        calls = []
        for i, call in enumerate(message.get("tool_calls") or []):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise self.malformed(label, f"tool call {i} has no function name")
            args = fn.get("arguments")
            calls.append(
                ToolCall(f"call_{i}", fn["name"], args if isinstance(args, str) else json.dumps(args or {}))
            )
        content = message.get("content")
        return ChatResult(
            text=content if isinstance(content, str) else None,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else data.get("done_reason"),
            usage=TokenUsage(_int(data.get("prompt_eval_count")), _int(data.get("eval_count"))),
            model=data.get("model") if isinstance(data.get("model"), str) else None,
        )

    # -- speech to text ----------------------------------------------------------------------------
    def transcribe(self, audio: bytes, filename: str, content_type: str, language: str | None = None) -> str:
        """The text of a recording (OpenAI's ``/audio/transcriptions``; Ollama has no such route)."""
        if self.settings.kind != "openai":
            raise ApiError(f"{self.service}: transcription needs an OpenAI-compatible endpoint")
        data: dict[str, Any] = {"model": self.settings.model, "response_format": "json"}
        if language:
            data["language"] = language
        answer = self.request("POST", "/audio/transcriptions", files={"file": (filename, audio, content_type)},
                              data=data)  # fmt: skip
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise self.malformed("POST /audio/transcriptions", "no text in the answer")
        return answer["text"]


_OLLAMA_OPTIONS = {"max_tokens": "num_predict", "top_p": "top_p", "top_k": "top_k", "seed": "seed",
                   "temperature": "temperature"}  # fmt: skip


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return text or {}
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {}


__all__ = [
    "ChatClient",
    "ChatResult",
    "ModelSettings",
    "TokenUsage",
    "ToolCall",
    "check_headers",
    "provider_kind",
]
