"""Roost: a Kestra-compatible workflow orchestrator built on pluggy.

This module is the public face for plugin authors. It depends only on the model
and expression layers: importing ``roost`` never imports the engine, the server
or a database driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost import _docstrings  # noqa: F401  (first: it speeds up building every model below)
from roost.assets.model import Asset, AssetBundle
from roost.flow.flowable import (
    CANCELLED,
    FAILED,
    FAILURES,
    KILLED,
    RUNNING,
    SKIPPED,
    SUCCESS,
    TERMINAL,
    WARNING,
    Child,
    FlowView,
    effective,
    value_key,
    worst,
)
from roost.flow.log_export import LogExporter, LogRecords
from roost.flow.model import Input
from roost.flow.properties import (
    Duration,
    Dynamic,
    Model,
    format_duration,
    is_expression,
    is_truthy,
    stringify,
)
from roost.flow.task import (
    TERMINAL_STATES,
    Backfill,
    FlowableTask,
    FlowEndTrigger,
    LogLevel,
    Output,
    PollingTrigger,
    Precondition,
    RealtimeTrigger,
    Retry,
    RunContext,
    ScheduleTrigger,
    Task,
    TaskError,
    TaskRunner,
    TaskWarning,
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
from roost.secret_backends import SecretBackendError, SecretConfigError
from roost.store.storage import (
    BodyStream,
    Storage,
    StorageConfigError,
    StorageError,
    StorageNotFound,
    StorageOutside,
    StorageUnavailable,
    download,
    key_uri,
    key_within,
    storage_key,
    uri_key,
)

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
    from roost.scripts import ScriptOutput, ScriptTask
    from roost.uikit import UiContext, UiPage, UiPanel

__version__ = "0.1.0"


def run(flow: Any, inputs: dict[str, Any] | None = None, **kw: Any) -> Execution:
    """Run a flow (a path, YAML text or Flow) on embedded storage and return the final execution."""
    from roost.engine.local import run_flow

    return run_flow(flow, inputs=inputs, **kw)


# Parts of the API that load on first use, so that plain ``import roost`` does not pay for them:
# the REST transport and the chat-model client (roost.llm) import httpx; script tasks and UI pages are
# a few dozen models that a flow without scripts, or a process without the web UI, never uses.
_LAZY = {
    **dict.fromkeys(
        (
            "ApiClient",
            "ApiError",
            "HttpOptions",
            "HttpProxy",
            "HttpRetry",
            "HttpSsl",
            "HttpTimeout",
            "parse_retry_after",
        ),
        "roost.rest",
    ),
    **dict.fromkeys(("ScriptOutput", "ScriptTask"), "roost.scripts"),
    **dict.fromkeys(("UiContext", "UiPage", "UiPanel"), "roost.uikit"),
    **dict.fromkeys(("ChatClient", "ChatResult", "ModelSettings", "TokenUsage", "ToolCall"), "roost.llm"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'roost' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "KillGate",
    "LogLevel",
    "format_duration",
    "stringify",
    "CANCELLED",
    "FAILED",
    "FAILURES",
    "KILLED",
    "RUNNING",
    "SKIPPED",
    "SUCCESS",
    "TERMINAL",
    "WARNING",
    "Child",
    "FlowView",
    "Input",
    "download",
    "effective",
    "is_truthy",
    "value_key",
    "worst",
    "TERMINAL_STATES",
    "Backfill",
    "FlowEndTrigger",
    "Precondition",
    "ScheduleTrigger",
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
