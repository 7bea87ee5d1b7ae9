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
    """Register secret backends: ``register("vault", factory)``; the configuration's ``secret: {type: vault}``
    (instance, tenant or namespace) chooses one.

    The factory receives the backend's settings as a :class:`roost.credentials.CredentialConfig` (a mapping
    with ``path``, ``tenant``, ``namespace``, ``validate(model)`` and ``resolve(ref)`` for the
    ``{{ secret('X') }}``/``${VAR}`` references it holds) and returns an object with ``get(namespace, key)
    -> str | None`` (None: no such secret; raise for a backend failure, with no secret in the message),
    optionally ``invalidate(namespace, key)`` (the next read is fresh: a retried task run calls it) and
    ``close()`` (called when the engine stops). The factory connects to nothing; ``get`` does, lazily.
    The built-in ``env`` backend (``SECRET_<KEY>`` base64 variables) is the default.
    """


@hookspec
def register_storage_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register internal-storage backends: ``register("s3", factory)``; the configuration's
    ``storage: {type: s3, s3: {...}}`` chooses one (the built-in ``local`` by default).

    The factory receives the backend's settings as a :class:`roost.credentials.CredentialConfig` whose
    ``tenant`` is the tenant served, and returns a :class:`roost.Storage` for that tenant's files only
    (streaming ``put``/``open_read``, ``size``, ``exists``, ``list``, ``delete``, ``delete_prefix``; keys are
    normalised by :func:`roost.storage_key`). A ``check(config)`` attribute on the factory validates the
    settings at start-up without connecting. Failures raise :class:`roost.StorageError` subclasses:
    ``StorageNotFound``, ``StorageOutside``, ``StorageUnavailable`` (the API answers 404, 403 and 503).
    """


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
