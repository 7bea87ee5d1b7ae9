"""Roost: a Kestra-compatible workflow orchestrator built on pluggy.

This module is the public face for plugin authors. It depends only on the model
and expression layers: importing ``roost`` never imports the engine, the server
or a database driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.assets.model import Asset, AssetBundle
from roost.flow.log_export import LogExporter, LogRecords
from roost.flow.properties import Duration, Dynamic, Model, is_expression
from roost.flow.task import (
    FlowableTask,
    Output,
    PollingTrigger,
    RealtimeTrigger,
    Retry,
    RunContext,
    Task,
    TaskRunner,
    Trigger,
    WebhookAnswer,
    WebhookReject,
    WebhookRequest,
    WebhookStart,
    WebhookTrigger,
)
from roost.hookspecs import hookimpl
from roost.killgate import KillGate
from roost.plugins import LazyType
from roost.scripts import ScriptOutput, ScriptTask
from roost.secret_backends import SecretBackendError, SecretConfigError
from roost.store.storage import (
    BodyStream,
    Storage,
    StorageConfigError,
    StorageError,
    StorageNotFound,
    StorageOutside,
    StorageUnavailable,
    key_uri,
    key_within,
    storage_key,
    uri_key,
)
from roost.uikit import UiContext, UiPage, UiPanel

if TYPE_CHECKING:
    from roost.engine.model import Execution
    from roost.llm import ChatClient, ChatResult, ModelSettings, TokenUsage, ToolCall
    from roost.rest import (
        ApiClient,
        ApiError,
        HttpOptions,
        HttpProxy,
        HttpRetry,
        HttpSsl,
        HttpTimeout,
        parse_retry_after,
    )

__version__ = "0.1.0"


class TaskError(Exception):
    """Raise from ``run`` to fail the task with a message meant for the user (no traceback).

    ``outputs`` (an Output or a dict) are kept on the failed task run, as Kestra keeps a failed
    script's outputs.
    """

    def __init__(self, message: str, outputs: Any = None) -> None:
        super().__init__(message)
        self.outputs = outputs


class TaskWarning(Exception):
    """Raise from ``run`` to end the task in WARNING, with outputs given as ``outputs``."""

    def __init__(self, message: str, outputs: Any = None) -> None:
        super().__init__(message)
        self.outputs = outputs


def run(flow: Any, inputs: dict[str, Any] | None = None, **kw: Any) -> Execution:
    """Run a flow (a path, YAML text or Flow) on embedded storage and return the final execution."""
    from roost.engine.local import run_flow

    return run_flow(flow, inputs=inputs, **kw)


# The REST transport (roost.rest) and the chat-model client (roost.llm) load on first use: it imports httpx, which plain
# ``import roost`` should not pay for.
_REST = {
    "ApiClient",
    "ApiError",
    "HttpOptions",
    "HttpProxy",
    "HttpRetry",
    "HttpSsl",
    "HttpTimeout",
    "parse_retry_after",
}


_LLM = {"ChatClient", "ChatResult", "ModelSettings", "TokenUsage", "ToolCall"}


def __getattr__(name: str) -> Any:
    if name in _REST:
        from roost import rest

        return getattr(rest, name)
    if name in _LLM:
        from roost import llm

        return getattr(llm, name)
    raise AttributeError(f"module 'roost' has no attribute {name!r}")


__all__ = [
    "KillGate",
    "ApiClient",
    "ApiError",
    "Asset",
    "ChatClient",
    "ChatResult",
    "ModelSettings",
    "TokenUsage",
    "ToolCall",
    "AssetBundle",
    "Duration",
    "BodyStream",
    "SecretBackendError",
    "SecretConfigError",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "StorageNotFound",
    "StorageOutside",
    "StorageUnavailable",
    "key_uri",
    "key_within",
    "storage_key",
    "uri_key",
    "Dynamic",
    "FlowableTask",
    "HttpOptions",
    "HttpProxy",
    "HttpRetry",
    "HttpSsl",
    "HttpTimeout",
    "LogExporter",
    "LogRecords",
    "Model",
    "Output",
    "PollingTrigger",
    "RealtimeTrigger",
    "Retry",
    "RunContext",
    "ScriptOutput",
    "ScriptTask",
    "Task",
    "TaskError",
    "TaskRunner",
    "TaskWarning",
    "UiContext",
    "UiPage",
    "UiPanel",
    "Trigger",
    "WebhookAnswer",
    "WebhookReject",
    "WebhookRequest",
    "WebhookStart",
    "WebhookTrigger",
    "hookimpl",
    "LazyType",
    "is_expression",
    "parse_retry_after",
    "run",
]
