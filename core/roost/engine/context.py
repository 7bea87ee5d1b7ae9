"""The engine's implementation of :class:`roost.RunContext`, and task rendering.

A :class:`Runtime` holds what every task run shares (storage, KV, secrets,
sinks for logs and metrics); a :class:`TaskRunContext` is one attempt's view.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, TypeAdapter

from roost import TaskError
from roost.expr import ExpressionEngine, ExpressionError, get_engine
from roost.expr.masking import MaskSet
from roost.flow.properties import needs_render, stringify
from roost.flow.task import PluginType, dynamic_fields_of, nested_models_of
from roost.secret_backends import EnvSecrets, SecretError
from roost.store.keys import kv_key
from roost.store.storage import LocalStorage, Storage, StorageError, download, read_all

MAX_READ = 10_000_000  # bytes read() takes into an expression (the expression budget)
LEVELS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "WARN": 30, "ERROR": 40}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}


class Killed(Exception):
    """Raised inside a task when its execution is killed."""


class KVMemory:
    """KV store kept in memory (``run_task`` and tests); the SQL store has the same methods."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Any] = {}

    def get(self, namespace: str, key: str) -> Any:
        return self.data.get((namespace, key), _MISSING)

    def put(self, namespace: str, key: str, value: Any, ttl: float | None = None) -> None:
        self.data[(namespace, kv_key(key))] = value

    def delete(self, namespace: str, key: str) -> bool:
        return self.data.pop((namespace, key), _MISSING) is not _MISSING

    def keys(self, namespace: str) -> list[str]:
        return sorted(k for ns, k in self.data if ns == namespace)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()
MISSING = _MISSING


class NamespaceFilesMemory:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}

    def read(self, namespace: str, path: str) -> bytes | None:
        return self.files.get((namespace, path.lstrip("/")))

    def write(self, namespace: str, path: str, data: bytes) -> None:
        self.files[(namespace, path.lstrip("/"))] = data

    def list(self, namespace: str) -> list[str]:
        return sorted(p for ns, p in self.files if ns == namespace)


@dataclass
class Runtime:
    """Services every task run of one engine shares."""

    storage: Storage
    kv: Any = field(default_factory=KVMemory)
    namespace_files: Any = field(default_factory=NamespaceFilesMemory)
    secrets: Any = field(default_factory=EnvSecrets)
    credentials: Mapping[str, Any] = field(default_factory=dict)
    expressions: ExpressionEngine = field(default_factory=get_engine)
    log_sink: Callable[[list[dict[str, Any]]], None] | None = None
    metric_sink: Callable[[dict[str, Any]], None] | None = None
    encryption_key: str | None = None
    plugins: Any = None
    tenant: str = "main"
    work_root: Path | None = None
    assets: Any = None  # the AssetService, when a store backs this runtime
    masks: Callable[[str], MaskSet] | None = None  # an execution id → its mask set (the engine's, shared)
    logs: Any = None  # the tenant's stored log lines (roost.store.db.SqlLogs), read by LogShipper
    engine_services: Any = None  # roost.engine.services.EngineServices, when an engine backs this runtime
    # starts executions of other flows for a task (the engine's FlowStarter; None in run_task)
    flows: Any = None

    @classmethod
    def in_memory(cls, root: Path | None = None) -> Runtime:
        """A runtime for one-off runs (``run_task``): files in a temporary folder, assets in a private SQLite."""
        from roost.assets.service import AssetService
        from roost.store.db import SqlLogs, Store

        root = root or Path(tempfile.mkdtemp(prefix="roost-"))
        root.mkdir(parents=True, exist_ok=True)
        store = Store.sqlite(root / "db")
        return cls(
            storage=LocalStorage(root / "storage"),
            work_root=root / "work",
            assets=AssetService(store),
            logs=SqlLogs(store),
        )


class TaskLogger:
    """A logger whose records go to the execution's log store, secrets masked."""

    def __init__(self, ctx: TaskRunContext, min_level: int = 5) -> None:
        self._ctx = ctx
        self.min_level = min_level

    def log(self, level: int | str, message: str, *args: Any) -> None:
        lvl = LEVELS[level] if isinstance(level, str) else level
        if lvl < self.min_level:
            return
        if args:
            try:
                message = message % args
            except (TypeError, ValueError):
                message = " ".join([message, *map(str, args)])
        self._ctx.emit_log(LEVEL_NAMES.get(lvl, "INFO") if lvl in LEVEL_NAMES else _nearest(lvl), message)

    def trace(self, msg: str, *a: Any) -> None:
        self.log(5, msg, *a)

    def debug(self, msg: str, *a: Any) -> None:
        self.log(10, msg, *a)

    def info(self, msg: str, *a: Any) -> None:
        self.log(20, msg, *a)

    def warning(self, msg: str, *a: Any) -> None:
        self.log(30, msg, *a)

    warn = warning

    def error(self, msg: str, *a: Any) -> None:
        self.log(40, msg, *a)

    def exception(self, msg: str, *a: Any) -> None:
        self.log(40, msg, *a)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name
        return level >= self.min_level


def _nearest(lvl: int) -> str:
    return LEVEL_NAMES[max(k for k in LEVEL_NAMES if k <= lvl)] if lvl >= 5 else "TRACE"


class TaskRunContext:
    """One attempt of one task run: variables, services, logs, kill signal."""

    def __init__(
        self,
        runtime: Runtime,
        variables: dict[str, Any],
        *,
        namespace: str,
        flow_id: str = "",
        execution_id: str = "",
        task_id: str = "",
        taskrun_id: str = "",
        kill_event: threading.Event | None = None,
        log_level: str | None = None,
        fresh_secrets: bool = False,
    ) -> None:
        self.runtime = runtime
        self.fresh_secrets = fresh_secrets  # a retried attempt reads its secrets again, past any cache
        self._refreshed: set[tuple[str, str]] = set()
        self.variables = variables
        self.namespace = namespace
        self.flow_id = flow_id
        self.execution_id = execution_id
        self.task_id = task_id
        self.taskrun_id = taskrun_id
        self.kill_event = kill_event or threading.Event()
        # the execution's mask set, shared by all its task runs: a secret one task learnt is masked in all
        self.secret_values = runtime.masks(execution_id) if runtime.masks and execution_id else MaskSet()
        self.logs: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self._kill_callbacks: list[Callable[[], None]] = []
        self._working_dir: Path | None = None
        self.logger = TaskLogger(self, LEVELS.get(log_level or "TRACE", 5))
        self.encryption_key = runtime.encryption_key

    # -- expressions -----------------------------------------------------------------------------
    def render(self, value: Any, **extra: Any) -> Any:
        if not needs_render(value):
            return value
        variables = {**self.variables, **extra} if extra else self.variables
        return self.runtime.expressions.render(value, variables, self)

    # Services protocol of the expression engine -------------------------------------------------
    def secret(self, key: str, namespace: str | None = None) -> str:
        """The secret ``key`` from the backend configured for the namespace (or a parent namespace of it)."""
        ns = namespace or self.namespace
        if ns != self.namespace and not self.namespace.startswith(ns + "."):
            raise ExpressionError(
                f"secret '{key}': namespace '{ns}' is not '{self.namespace}' nor a parent of it"
            )
        secrets = self.runtime.secrets
        if (
            self.fresh_secrets and (ns, key) not in self._refreshed
        ):  # a retry: the cached value may be the refused one
            self._refreshed.add((ns, key))
            invalidate = getattr(secrets, "invalidate", None)
            if callable(invalidate):
                invalidate(ns, key)
        try:
            value = secrets.get(ns, key)
        except SecretError as exc:  # the backend's reason, with the key and namespace (never a value)
            raise ExpressionError(f"Cannot read secret '{key}' for namespace '{ns}': {exc}") from None
        if value is None:
            raise ExpressionError(f"Cannot find secret for key '{key}' in namespace '{ns}'.")
        self.secret_values.add(value, (ns, key))  # re-read after a restart, never stored
        return value

    def kv(self, key: str, namespace: str | None = None, error_on_missing: bool = True) -> Any:
        value = self.runtime.kv.get(namespace or self.namespace, key)
        if value is MISSING:
            if error_on_missing:
                raise ExpressionError(
                    f"The key '{key}' does not exist in the namespace '{namespace or self.namespace}'."
                )
            return None
        return value

    def kv_put(self, key: str, value: Any, namespace: str | None = None, ttl: float | None = None) -> None:
        self.runtime.kv.put(namespace or self.namespace, key, value, ttl)

    def kv_delete(self, key: str, namespace: str | None = None) -> bool:
        return bool(self.runtime.kv.delete(namespace or self.namespace, kv_key(key)))

    def read(self, path: str) -> str:
        if path.startswith("kestra://"):
            try:
                size = self.runtime.storage.size(path)
                if size > MAX_READ:
                    raise ExpressionError(f"read('{path}'): the file has {size} bytes; read() loads a whole file "
                                          f"into the expression (at most {MAX_READ}): give the URI to a task instead")  # fmt: skip
                return self.read_file(path).decode()
            except StorageError as exc:
                raise ExpressionError(f"read('{path}'): {exc}") from None
        return self.namespace_file(path).decode()

    def file_uri(self, path: str) -> str:
        return f"kestra:///{self.namespace.replace('.', '/')}/_files/{path.lstrip('/')}"

    def credential(self, key: str) -> str:
        credentials = self.runtime.credentials
        lookup = getattr(credentials, "lookup", None)  # namespace-scoped credentials (roost.credentials)
        provider = lookup(key, self.namespace) if lookup is not None else credentials.get(key)
        if provider is None:
            raise ExpressionError(
                f"No credential '{key}' is configured for namespace '{self.namespace}' (tenant '{self.runtime.tenant}')"
            )
        token = provider.token()
        self.secret_values.add(token)
        return str(token)

    def error_logs(self) -> list[dict[str, Any]]:
        """The ERROR lines of this execution so far (``errorLogs()``)."""
        services = self.runtime.engine_services
        if services is None or not self.execution_id:
            return [r for r in self.logs if r["level"] == "ERROR"]
        return list(services.logs(self.execution_id, min_level="ERROR"))

    def file_size(self, path: str, namespace: str | None = None) -> int | None:
        """Size of an internal-storage file (``kestra://``) or a namespace file; None when there is none."""
        if path.startswith("kestra://"):
            if not _is_execution_file(path, self.namespace, self.flow_id, self.execution_id):
                raise ExpressionError(f"Unable to read the file '{path}' as it is not an execution file")
            try:
                return self.runtime.storage.size(path)
            except (OSError, StorageError):
                return None
        data = self.runtime.namespace_files.read(namespace or self.namespace, path)
        return None if data is None else len(data)

    # -- logs and metrics --------------------------------------------------------------------------
    def emit_log(self, level: str, message: str) -> None:
        record = {
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "executionId": self.execution_id,
            "taskId": self.task_id or None,
            "taskRunId": self.taskrun_id or None,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "level": level,
            "message": self.secret_values.mask(message),
        }
        self.logs.append(record)
        if self.runtime.log_sink is not None:
            self.runtime.log_sink([record])

    def metric(self, name: str, value: float, kind: str = "counter", **tags: str) -> None:
        m = {"name": name, "value": value, "type": kind, "tags": tags, "taskRunId": self.taskrun_id}
        self.metrics.append(m)
        if self.runtime.metric_sink is not None:
            self.runtime.metric_sink(m)

    # -- kill ------------------------------------------------------------------------------------
    def killed(self) -> bool:
        return self.kill_event.is_set()

    def on_kill(self, callback: Callable[[], None]) -> None:
        self._kill_callbacks.append(callback)
        if self.kill_event.is_set():
            callback()

    def fire_kill(self) -> None:
        self.kill_event.set()
        for cb in list(self._kill_callbacks):
            try:
                cb()
            except Exception:  # a failing cancel hook must not stop the others
                logging.getLogger("roost").exception("kill callback failed")

    def raise_if_killed(self) -> None:
        """Stop here (with :class:`Killed`) when the execution is being killed."""
        if self.kill_event.is_set():
            raise Killed("killed")

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once (with :class:`Killed`) when the execution is killed."""
        if self.kill_event.wait(max(0.0, seconds)):
            raise Killed("killed while waiting")

    # -- other flows -----------------------------------------------------------------------------
    def start_flow(self, namespace: str, flow_id: str, *, inputs: Mapping[str, Any] | None = None,
                   labels: list[dict[str, str]] | None = None, revision: int | None = None, wait: bool = True,
                   timeout: float | None = None, schedule_date: datetime | None = None) -> dict[str, Any]:  # fmt: skip
        """Start an execution of another flow of this tenant and, with ``wait``, wait for its end
        (a kill of this task kills it too). Answers ``executionId``, ``state`` and, once ended, the
        flow's ``outputs``; a flow that does not exist or refuses the inputs is a :class:`TaskError`."""
        starter = self.runtime.flows
        if starter is None:
            raise TaskError(f"task '{self.task_id}' cannot start flow {namespace}.{flow_id}: no engine runs it "
                            "(tasks run alone, as in roost.testing.run_task, have none)")  # fmt: skip
        return starter.start(self, namespace, flow_id, inputs=dict(inputs or {}), labels=list(labels or []),
                             revision=revision, wait=wait, timeout=timeout, schedule_date=schedule_date)  # fmt: skip

    def describe_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> dict[str, Any]:
        """Another flow's ``description`` and ``inputs`` (id, type, description, required, hasDefault)."""
        if self.runtime.flows is None:
            raise TaskError(
                f"task '{self.task_id}' cannot read flow {namespace}.{flow_id}: no engine runs it"
            )
        return self.runtime.flows.describe(namespace, flow_id, revision)

    # -- files -----------------------------------------------------------------------------------
    @property
    def working_dir(self) -> Path:
        if self._working_dir is None:
            base = self.runtime.work_root
            if base is not None:
                base.mkdir(parents=True, exist_ok=True)
            self._working_dir = Path(tempfile.mkdtemp(prefix=f"{self.task_id or 'task'}-", dir=base))
        return self._working_dir

    def use_working_dir(self, path: Path) -> None:
        """Share a folder between tasks (WorkingDirectory's children)."""
        self._working_dir = path

    def cleanup(self) -> None:
        if self._working_dir is not None and not getattr(self, "_shared_dir", False):
            shutil.rmtree(self._working_dir, ignore_errors=True)

    def _storage_prefix(self) -> str:
        ns = self.namespace.replace(".", "/")
        ex = self.execution_id or "adhoc"
        return (
            f"{ns}/{self.flow_id or '_'}/executions/{ex}/tasks/{self.task_id or '_'}/{self.taskrun_id or '_'}"
        )

    def put_file(self, path: Path | str, name: str | None = None) -> str:
        path = Path(path)
        if not path.is_absolute():
            path = self.working_dir / path
        key = f"{self._storage_prefix()}/{time.time_ns():x}-{name or path.name}"
        return self.runtime.storage.put(key, path)

    def put_bytes(self, data: bytes, name: str) -> str:
        return self.runtime.storage.put(f"{self._storage_prefix()}/{time.time_ns():x}-{name}", data)

    def put_stream(self, stream: BinaryIO, name: str) -> str:
        """Store what ``stream`` yields (read in chunks, never whole) as a file of this task run."""
        return self.runtime.storage.put(f"{self._storage_prefix()}/{time.time_ns():x}-{name}", stream)

    def read_file(self, uri: str) -> bytes:
        """The whole file in memory: for small files; :meth:`open_read` streams the others."""
        return read_all(self.runtime.storage, uri)

    def open_read(self, uri: str) -> BinaryIO:
        """A binary stream of a stored file (close it, or use ``with``)."""
        return self.runtime.storage.open_read(uri)

    def open_file(self, uri: str) -> Path:
        """A local file with the content of ``uri``, for tools that need a path: the stored file itself
        with local storage (read it, never write it), else a copy downloaded into the working folder."""
        local_path = getattr(self.runtime.storage, "local_path", None)
        if callable(local_path):
            return Path(local_path(uri))
        target = self.working_dir / ".roost-files" / f"{time.time_ns():x}-{uri.rsplit('/', 1)[-1]}"
        return download(self.runtime.storage, uri, target)

    def namespace_file(self, path: str, namespace: str | None = None) -> bytes:
        data = self.runtime.namespace_files.read(namespace or self.namespace, path)
        if data is None:
            raise TaskError(f"namespace file '{path}' not found in namespace '{namespace or self.namespace}'")
        return data

    def namespace_files(self, namespace: str | None = None) -> Iterator[tuple[str, bytes]]:
        ns = namespace or self.namespace
        for p in self.runtime.namespace_files.list(ns):
            data = self.runtime.namespace_files.read(ns, p)
            if data is not None:
                yield p, data


_EXECUTION_FILE = re.compile(r"kestra:///.+/.+/executions/.+/(tasks|trigger|inputs)/.+")


def _is_execution_file(uri: str, namespace: str, flow_id: str, execution_id: str) -> bool:
    """Kestra's rule for file functions: a file of an execution (any, in the open-source edition) or a namespace file."""
    ns = namespace.replace(".", "/")
    own = f"kestra:///{ns}/{flow_id}/executions/{execution_id}/"
    return uri.startswith((own, f"kestra:///{ns}/_files/")) or _EXECUTION_FILE.fullmatch(uri) is not None


def render_task(task: PluginType, ctx: TaskRunContext) -> PluginType:
    """A copy of ``task`` with every ``Dynamic`` property rendered and typed, in nested models too
    (``options.auth.token``), each value rendered once."""
    return _render_model(task, ctx, type(task).dynamic_fields(), task.id, "")


def _render_model(model: Any, ctx: TaskRunContext, fields: Any, task_id: str, prefix: str) -> Any:
    update: dict[str, Any] = {}
    cls: type[BaseModel] = type(model)
    for name, marker in fields:
        value = getattr(model, name)
        if value is None or not needs_render(value):
            continue
        rendered = ctx.render(value)
        if marker.inner is str and not isinstance(rendered, str):
            whole = _as_written(cls, name, value, rendered)
            if whole is not None:
                update[name] = whole
                continue
            rendered = stringify(rendered)  # an expression giving a number or a map, for a text property
        try:
            update[name] = marker.adapter.validate_python(rendered)
        except Exception as exc:
            alias = prefix + (cls.model_fields[name].alias or name)
            raise TaskError(
                f"property '{alias}' of task '{task_id}': {value!r} rendered to {rendered!r}, "
                f"which is not a valid {marker.inner if isinstance(marker.inner, str) else getattr(marker.inner, '__name__', marker.inner)}: {_first_error(exc)}"
            ) from None
    for name in nested_models_of(cls):
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            inner = _render_model(value, ctx, dynamic_fields_of(type(value)), task_id,
                                  prefix + (cls.model_fields[name].alias or name) + ".")  # fmt: skip
            if inner is not value:
                update[name] = inner
    return model.model_copy(update=update) if update else model


def _as_written(cls: type[BaseModel], name: str, source: Any, rendered: Any) -> Any:
    """A list or map written as such in the YAML, for a property that also takes one (Log's ``message:
    [a, b]``, typed ``str | list[str]``): kept, each item rendered; None when the property does not take it
    (only an expression's value becomes text)."""
    if not isinstance(source, (list, dict)) or not isinstance(rendered, (list, dict)):
        return None
    try:
        return _field_adapter(cls, name).validate_python(rendered)
    except Exception:
        return None


@functools.cache
def _field_adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(cls.model_fields[name].annotation or Any)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        errs = errors()
        if errs:
            return str(errs[0].get("msg"))
    return str(exc)
