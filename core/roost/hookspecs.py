"""Every hook a Roost plugin can implement.

Hooks follow the ``register_*`` style of llm and tox: the engine calls the hook
with a ``register`` callback and the plugin hands its classes or callables to it.
Heavy imports belong inside the hook body so that discovering plugins stays fast.
A test fails if any hook here lacks a docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "roost"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_task_types(register: Callable[..., None]) -> None:
    """Register task classes: ``register(MyTask, OtherTask)``.

    Each class is a :class:`roost.Task` subclass declared with ``type="..."``;
    its JSON schema, documentation and validation come from its fields.
    """


@hookspec
def register_trigger_types(register: Callable[..., None]) -> None:
    """Register trigger classes (:class:`roost.Trigger` subclasses) by their type id."""


@hookspec
def register_task_runners(register: Callable[..., None]) -> None:
    """Register task-runner classes (:class:`roost.TaskRunner` subclasses) used by script tasks."""


@hookspec
def register_credential_types(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register credential providers: ``register("oauth2_client_credentials", factory)``.

    The factory receives the credential's configuration mapping and returns an
    object with ``token() -> str`` that ``credential('key')`` calls.
    """


@hookspec
def register_secret_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register secret backends: ``register("env", factory)``; the factory takes a config mapping
    and returns an object with ``get(namespace, key) -> str | None``."""


@hookspec
def register_storage_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register internal-storage backends: ``register("local", factory)``; the factory takes a
    config mapping and returns a :class:`roost.store.storage.Storage` implementation."""


@hookspec
def register_log_exporters(register: Callable[..., None]) -> None:
    """Register log-exporter classes: ``register(GraylogExporter)`` or, by id, ``register(LazyType(...))``.

    Each class is a :class:`roost.LogExporter` subclass declared with ``type="..."`` (Kestra's id);
    a ``LogShipper`` task lists exporters under ``logExporters`` by that id, and each entry is validated
    against the class's fields when the flow is deployed. At run time the shipper calls
    ``export(ctx, records)`` with a :class:`roost.LogRecords` stream; the exporter batches its own way
    (``records.batches(n)`` acknowledges each batch when the next is asked for) and returns its outputs.
    """


@hookspec
def register_expression_functions(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register expression functions callable in ``{{ }}``: ``register("name", fn)``.

    ``fn`` receives the render context (a :class:`roost.expr.Ctx`) as its first argument.
    """


@hookspec
def register_expression_filters(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register expression filters usable as ``{{ value | name(args) }}``: ``register("name", fn)``."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``roost`` command line; ``cli`` is its root :class:`click.Group`."""


@hookspec
def register_ui(register: Callable[[Any], None]) -> None:
    """Add to the web UI: ``register(roost.UiPage(name, title, render))`` for a page with a navigation
    entry (``/ui/{tenant}/x/{name}``), ``register(roost.UiPanel("flow"|"execution"|"namespace", title,
    render))`` for a section on those pages. ``render(ctx: roost.UiContext)`` returns an HTML fragment."""


@hookspec
def task_assets(task: Any, ctx: Any, output: Any) -> list[Any] | None:
    """Emit assets for a task run that has ``assets.enableAuto: true``.

    Return a list of :class:`roost.AssetBundle` (each bundle keeps its own inputs
    and outputs, so lineage is never cartesian), or ``None`` when this plugin has
    nothing to say about ``task``. Tasks may instead implement ``auto_assets``.
    """
