"""Task and trigger bases: what every plugin type subclasses.

A task type is one pydantic class declared with its Kestra type id::

    class Log(Task, type="io.kestra.plugin.core.log.Log"):
        message: Dynamic[str]
        def run(self, ctx): ...

Runnable tasks implement ``run(ctx)``; flowable tasks (Sequential, If, ForEach...)
subclass :class:`FlowableTask` and tell the executor which children run next.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal, Protocol, get_args, runtime_checkable

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from roost.flow.properties import Duration, Dynamic, DynamicMarker, ExpressionStr, Model

LogLevel = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]


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


class Retry(Model):
    """Retry policy of a task or flow (Kestra's ``constant``, ``exponential``, ``random``)."""

    deprecated_aliases: ClassVar[dict[str, str]] = {"maxAttempt": "maxAttempts"}

    type: Literal["constant", "exponential", "random"]
    """Retry strategy."""
    interval: Duration | None = None
    """Wait between attempts (constant, and the first wait of exponential)."""
    max_attempts: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("maxAttempts", "maxAttempt", "max_attempts")
    )
    """Maximum number of attempts, the first one included (``maxAttempt`` before Kestra 0.24)."""
    max_duration: Duration | None = None
    """Stop retrying once this much time has passed since the first attempt."""
    max_interval: Duration | None = None
    """Upper bound of the wait (exponential)."""
    min_interval: Duration | None = None
    """Lower bound of the wait (random)."""
    delay_factor: float | None = None
    """Multiplier of the wait between attempts (exponential, default 2)."""
    warning_on_retry: bool = False
    """End in WARNING rather than SUCCESS when a retry was needed."""
    behavior: Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"] = "RETRY_FAILED_TASK"
    """What is retried."""

    @model_validator(mode="after")
    def _needs_bound(self) -> Retry:
        if self.max_attempts is None and self.max_duration is None:
            raise ValueError("a retry needs maxAttempts or maxDuration")
        if self.type in ("constant", "exponential") and self.interval is None:
            raise ValueError(f"a {self.type} retry needs an interval")
        if self.type == "random" and (self.min_interval is None or self.max_interval is None):
            raise ValueError("a random retry needs minInterval and maxInterval")
        return self

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` counts from 1)."""
        import random

        if self.type == "constant":
            return self.interval.total_seconds() if self.interval else 0.0
        if self.type == "exponential":
            base = self.interval.total_seconds() if self.interval else 1.0
            wait = base * (self.delay_factor or 2.0) ** (attempt - 1)
            if self.max_interval is not None:
                wait = min(wait, self.max_interval.total_seconds())
            return wait
        low = self.min_interval.total_seconds() if self.min_interval else 0.0
        high = self.max_interval.total_seconds() if self.max_interval else low
        return random.uniform(low, high)


class AssetRef(Model):
    """An asset declared on a task under ``assets.inputs`` or ``assets.outputs``."""

    model_config = ConfigDict(extra="allow")
    id: str
    """Asset identifier (may be an expression rendered after the run)."""
    type: str | None = None
    """Asset type, such as ``io.kestra.plugin.ee.assets.Table``."""
    namespace: str | None = None
    """Namespace of the asset; defaults to the flow's."""
    display_name: str | None = None
    """Name shown in lists."""
    description: str | None = None
    """What the asset is."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form metadata (owner, system, database...)."""


class TaskAssets(Model):
    """The ``assets`` property every task has (each part may be an expression, as Kestra's ``Property``)."""

    inputs: list[AssetRef] | ExpressionStr = Field(default_factory=list)
    """Assets the task reads."""
    outputs: list[AssetRef] | ExpressionStr = Field(default_factory=list)
    """Assets the task writes."""
    enable_auto: Dynamic[bool] = False
    """Let the plugin emit the assets it touched."""


class TaskCache(Model):
    """Cache a task's outputs for a while (Kestra's ``taskCache``)."""

    enabled: bool = False
    """Turn the cache on."""
    ttl: Duration | None = None
    """How long a cached output stays valid."""


class Output(BaseModel):
    """Base of a task's typed outputs; fields are camelCase in expressions and the API."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        arbitrary_types_allowed=True,
        use_attribute_docstrings=True,
    )

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class TaskLoggerLike(Protocol):
    """The logger a task writes to (levels as names or numbers; secrets masked by the engine)."""

    def log(self, level: int | str, message: str, *args: Any) -> None: ...

    def trace(self, message: str, *args: Any) -> None: ...

    def debug(self, message: str, *args: Any) -> None: ...

    def info(self, message: str, *args: Any) -> None: ...

    def warning(self, message: str, *args: Any) -> None: ...

    def error(self, message: str, *args: Any) -> None: ...


@runtime_checkable
class RunContext(Protocol):
    """What a task sees while it runs; the engine implements it.

    ``render`` evaluates expressions with the execution's variables; ``logger``
    masks secrets; ``working_dir`` is a private folder for the attempt;
    ``killed()`` turns true when the execution is being killed.
    """

    logger: TaskLoggerLike
    variables: Mapping[str, Any]
    namespace: str
    flow_id: str
    execution_id: str
    task_id: str
    taskrun_id: str

    @property
    def working_dir(self) -> Path: ...

    def render(self, value: Any, **extra: Any) -> Any: ...

    def killed(self) -> bool: ...

    def on_kill(self, callback: Callable[[], None]) -> None: ...

    def sleep(self, seconds: float) -> None: ...

    def raise_if_killed(self) -> None: ...

    def secret(self, key: str, namespace: str | None = None) -> str: ...

    def kv(self, key: str, namespace: str | None = None, error_on_missing: bool = True) -> Any: ...

    def kv_put(
        self, key: str, value: Any, namespace: str | None = None, ttl: float | None = None
    ) -> None: ...

    def kv_delete(self, key: str, namespace: str | None = None) -> bool: ...

    def put_file(self, path: Path | str, name: str | None = None) -> str: ...

    def put_bytes(self, data: bytes, name: str) -> str: ...

    def put_stream(self, stream: BinaryIO, name: str) -> str: ...

    def read_file(self, uri: str) -> bytes: ...

    def open_read(self, uri: str) -> BinaryIO: ...

    def open_file(self, uri: str) -> Path: ...

    def namespace_file(self, path: str, namespace: str | None = None) -> bytes: ...

    def namespace_files(self, namespace: str | None = None) -> Iterator[tuple[str, bytes]]: ...

    def metric(self, name: str, value: float, kind: str = "counter", **tags: str) -> None: ...

    def start_flow(self, namespace: str, flow_id: str, *, inputs: Mapping[str, Any] | None = None,
                   labels: list[dict[str, str]] | None = None, revision: int | None = None, wait: bool = True,
                   timeout: float | None = None, schedule_date: datetime | None = None) -> dict[str, Any]:  # fmt: skip
        """Start an execution of another flow (at ``schedule_date``, else now; ``wait``: until it ends, a kill
        reaching it too); answers ``executionId``, ``state`` and, once ended, ``outputs``."""
        ...

    def describe_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> dict[str, Any]:
        """Another flow's ``description`` and ``inputs`` (id, type, description, required, hasDefault)."""
        ...


class PluginType(Model):
    """Common base of task and trigger types: the ``type`` id and the registry hooks."""

    type_id: ClassVar[str] = ""
    type_aliases: ClassVar[tuple[str, ...]] = ()
    plugin_kind: ClassVar[str] = "plugin"
    """What the type is called in messages ("task", "trigger", "log exporter")."""
    _dynamic_fields: ClassVar[tuple[tuple[str, DynamicMarker], ...]] = ()

    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$", max_length=100)
    """Identifier, unique within the flow."""
    type: str
    """The plugin type id."""
    description: str | None = None
    """What this does, shown in the UI."""
    disabled: bool = False
    """Skip it entirely."""

    def __init_subclass__(cls, type: str | None = None, aliases: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if type is not None:
            cls.type_id = type
            cls.type_aliases = tuple(aliases)

    @classmethod
    def __pydantic_init_subclass__(cls, **kw: Any) -> None:
        super().__pydantic_init_subclass__(**kw)
        dyn = []
        for name, info in cls.model_fields.items():
            marker = _find_marker(info.metadata, info.annotation)
            if marker is not None:
                dyn.append((name, marker))
        cls._dynamic_fields = tuple(dyn)

    @classmethod
    def dynamic_fields(cls) -> tuple[tuple[str, DynamicMarker], ...]:
        return cls._dynamic_fields


@cache
def dynamic_fields_of(cls: type[BaseModel]) -> tuple[tuple[str, DynamicMarker], ...]:
    """The ``Dynamic`` fields of any model class (a task's, or a nested one such as http ``Options``)."""
    return tuple(
        (n, m) for n, info in cls.model_fields.items() if (m := _find_marker(info.metadata, info.annotation))
    )


@cache
def nested_models_of(cls: type[BaseModel]) -> tuple[str, ...]:
    """Fields of ``cls`` holding a model (not a task) that has ``Dynamic`` fields itself, at any depth."""
    out = []
    for name, info in cls.model_fields.items():
        for arg in (info.annotation, *get_args(info.annotation)):
            if (isinstance(arg, type) and issubclass(arg, BaseModel) and not issubclass(arg, PluginType)
                    and (dynamic_fields_of(arg) or nested_models_of(arg))):  # fmt: skip
                out.append(name)
                break
    return tuple(out)


def _find_marker(metadata: list[Any], annotation: Any) -> DynamicMarker | None:
    """The ``Dynamic`` marker of a field, also when wrapped in ``Optional``."""
    for meta in metadata:
        if isinstance(meta, DynamicMarker):
            return meta
    for arg in get_args(annotation):
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, DynamicMarker):
                return meta
    return None


class Task(PluginType):
    """A runnable task: implement ``run(ctx) -> Output | dict | None``."""

    plugin_kind: ClassVar[str] = "task"
    inline: ClassVar[bool] = False
    """True for pure, quick tasks (no I/O, no waiting) that the executor may run itself."""
    timeout_grace: ClassVar[float] = 0.0
    """Seconds the worker waits past ``timeout`` before stopping the task: set by tasks that enforce
    ``timeout`` themselves (a remote wait that fails with its own message, as Kestra's do)."""

    retry: Retry | None = None
    """Retry policy when the task fails."""
    timeout: Dynamic[timedelta] | None = None
    """Stop the task when it runs longer than this (ISO-8601 duration)."""
    log_level: LogLevel | None = None
    """Minimum level of the logs kept for this task."""
    log_to_file: bool = False
    """Also store the task's logs as a file."""
    allow_failure: bool = False
    """A failure of this task makes the execution WARNING instead of FAILED."""
    allow_warning: bool = False
    """A WARNING of this task counts as SUCCESS."""
    run_if: Dynamic[bool] | None = None
    """Expression: the task is SKIPPED when it renders to false."""
    assets: TaskAssets | None = None
    """Assets the task reads and writes; ``enableAuto`` lets the plugin emit them."""
    task_cache: TaskCache | None = None
    """Cache the task's outputs."""
    worker_group: dict[str, Any] | None = None
    """Kestra's ``workerGroup`` (``key``): with worker processes, only workers started with
    ``--worker-group KEY`` run the task (it waits for one); the in-process pool runs every task."""

    def run(self, ctx: RunContext) -> Output | dict[str, Any] | None:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")

    def auto_assets(self, ctx: RunContext, output: Any) -> list[Any]:
        """Assets emitted with ``assets.enableAuto``; plugins override this."""
        return []

    def kill(self) -> None:
        """Called from another thread when the execution is killed while the task runs."""


class FlowableTask(Task):
    """A task that only arranges children; the executor asks it what runs next.

    ``step(view)`` returns ``(state, children)``: children to create now, or
    the final state once nothing runs (``RUNNING`` while waiting). The view
    (:class:`roost.FlowView`) offers ``sequence``/``list_step`` for Kestra's
    usual semantics; ``roost.Child`` is a child to create. Optional ``on_start(view)`` and
    ``on_done(view)`` run when the task run starts and ends.
    """

    def step(self, view: Any) -> tuple[str, list[Any]]:
        """Next children to create, or the final state: Kestra's sequence over tasks, errors, finally."""
        return view.sequence(
            getattr(self, "tasks", None) or [], getattr(self, "errors", None), getattr(self, "finally_", None)
        )


class Trigger(PluginType):
    """Base of trigger types; polling triggers implement ``evaluate(ctx)``."""

    plugin_kind: ClassVar[str] = "trigger"

    conditions: list[dict[str, Any]] = Field(default_factory=list)
    """Conditions that must all hold for the trigger to start an execution."""
    stop_after: list[str] = Field(default_factory=list)
    """Disable the trigger once an execution it started ends in one of these states."""
    log_level: LogLevel | None = None
    """Minimum level of the trigger's logs."""
    worker_group: dict[str, Any] | None = None
    """Accepted for compatibility."""
    inputs: dict[str, Any] | None = None
    """Inputs passed to the executions this trigger starts."""
    labels: Any = None
    """Labels added to the executions this trigger starts."""


TERMINAL_STATES = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")


class Backfill(Model):
    """Replay the schedule from ``start`` (to ``end``)."""

    start: datetime
    """First date to replay."""
    end: datetime | None = None
    """Last date to replay; now by default."""
    inputs: dict[str, Any] | None = None
    labels: Any = None


class ScheduleTrigger(Trigger):
    """A trigger that fires at dates (Kestra's ``Schedulable``: Schedule's cron, or a list of dates).

    The scheduler keeps the next date in the trigger's state, starts one execution per date (its
    ``trigger.date``, ``trigger.next`` and ``trigger.previous``), replays dates missed while it was stopped
    as ``recoverMissedSchedules`` says, skips dates later than ``lateMaximumDelay`` and runs backfills.
    A subclass says which dates: :meth:`next_after`, :meth:`previous_before` and :meth:`fingerprint`.
    """

    timezone: str = "Etc/UTC"
    """Time zone the dates are read in."""
    recover_missed_schedules: Literal["ALL", "LAST", "NONE"] | None = None
    """What to do with dates missed while the scheduler was down (ALL by default)."""
    backfill: Backfill | None = None
    """Replay past dates."""
    late_maximum_delay: Duration | None = None
    """Skip a date that could not start within this delay."""

    def next_after(self, when: datetime) -> datetime:  # pragma: no cover - abstract
        """The first date strictly after ``when``."""
        raise NotImplementedError

    def previous_before(self, when: datetime) -> datetime:  # pragma: no cover - abstract
        """The last date strictly before ``when``."""
        raise NotImplementedError

    def fingerprint(self) -> str:  # pragma: no cover - abstract
        """What decides the dates: when it changes, the schedule restarts from the next date after now."""
        raise NotImplementedError

    def date_conditions(self) -> list[dict[str, Any]]:
        """The conditions checked at each date (``conditions`` by default)."""
        return list(self.conditions)

    def dates_between(self, start: datetime, end: datetime, limit: int = 10000) -> list[datetime]:
        out: list[datetime] = []
        current = start
        while len(out) < limit:
            nxt = self.next_after(current)
            if nxt > end:
                break
            out.append(nxt)
            current = nxt
        return out


class Precondition(Model):
    id: str | None = None
    where: list[dict[str, Any]] = Field(default_factory=list)
    flows: list[dict[str, Any]] = Field(default_factory=list)
    time_window: dict[str, Any] | None = None
    reset_on_success: bool = True


class FlowEndTrigger(Trigger):
    """A trigger that starts an execution when executions of other flows end (Kestra's Flow trigger).

    The scheduler hears every execution that ends in one of ``states`` (never one of this flow), checks
    ``conditions`` on it, then ``preconditions``: upstream ``flows`` and ``where`` filters that must all
    have been met within a ``timeWindow`` (progress persists in the trigger state).
    """

    states: list[str] = Field(default_factory=lambda: list(TERMINAL_STATES))
    """Terminal states that count."""
    preconditions: Precondition | None = None
    """Flows and states that must all have happened (within a time window)."""


class PollingTrigger(Trigger):
    """A trigger the scheduler evaluates every ``interval``.

    ``evaluate(ctx)`` returns the variables exposed as ``trigger.*`` for one
    execution, a list of such mappings for several, or ``None`` for none.
    ``ctx.state`` is the trigger's own JSON state (a cursor, the ids already
    seen...): the scheduler saves it together with the executions decided, so a
    restart neither loses a change nor fires one twice. An evaluation that raises
    keeps the previous state.
    """

    interval: Duration = timedelta(minutes=1)
    """How often the trigger is evaluated."""

    def evaluate(
        self, ctx: Any
    ) -> dict[str, Any] | list[dict[str, Any]] | Iterator[dict[str, Any]] | None:  # pragma: no cover
        """Variables of the executions to start now.

        ``evaluate`` may also be a generator: each mapping it yields starts one execution, and the
        yield expression gives back the execution created (``None`` when none was), so code after
        the ``yield`` runs only once the execution exists — where a queue consumer acknowledges
        what it read (at-least-once: a crash before that point reads it again).
        """
        raise NotImplementedError


class RealtimeTrigger(Trigger):
    """A trigger that listens without pause and starts one execution per event (a queue consumer).

    The scheduler runs :meth:`listen` in a thread of its own for each deployed trigger, stops it
    when the flow changes, is disabled or deleted, and starts the new revision's. ``listen`` is a
    generator: it yields the ``trigger.*`` variables of each execution to start; the yield
    expression gives back the execution created (``None`` when none was), so the trigger
    acknowledges the event only once its execution exists (at-least-once). It must yield ``None``
    when idle, at least every few seconds, so the scheduler can stop it — by closing the
    generator, which runs its ``finally``/``with`` blocks in the listening thread. An exception
    ends this listening; the scheduler logs it and listens again after a backoff (1 s doubling to
    30 s).
    """

    def listen(self, ctx: Any) -> Iterator[dict[str, Any] | None]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class WebhookRequest:
    """A call to a webhook URL, as the server received it (the body untouched, for signatures)."""

    method: str
    headers: Mapping[str, list[str]]
    """Header values by lower-case name (``Authorization`` and ``Cookie`` never appear)."""
    query: Mapping[str, list[str]]
    """Query-string values by name."""
    body: bytes
    """The raw body, byte for byte as sent."""

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or ``None``."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json_or_text(self) -> Any:
        """The body decoded as JSON, else as text (``None`` when empty)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return self.text()


@dataclass(frozen=True)
class WebhookStart:
    """Start one execution with these ``trigger.*`` variables."""

    variables: dict[str, Any]
    dedup_key: str | None = None
    """A delivery id: a second delivery with the same key starts no second execution."""
    wait: bool = False
    """Answer only when the execution ends (the built-in Webhook's ``wait``)."""
    return_outputs: bool = False
    """With ``wait``, answer with the flow's outputs instead of the execution."""


@dataclass(frozen=True)
class WebhookAnswer:
    """Answer the call without starting an execution (a handshake, an ignored event)."""

    status: int = 200
    body: Any = None
    """A ``str``/``bytes`` sent as is, anything else as JSON."""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass(frozen=True)
class WebhookReject:
    """Refuse the call with a 4xx status and a message (bad signature, stale request...)."""

    status: int
    message: str

    def __post_init__(self) -> None:
        if not 400 <= self.status < 500:
            raise ValueError(f"a webhook rejection is a 4xx status, got {self.status}")


WebhookOutcome = WebhookStart | WebhookAnswer | WebhookReject


class WebhookTrigger(Trigger):
    """A trigger fired by calls to ``/api/v1/{tenant}/executions/webhook/{namespace}/{flowId}/{key}``.

    The server finds the flow's trigger whose ``key`` matches and calls :meth:`receive` with the
    raw request; the outcome says whether to start an execution, answer without one, or reject
    the call. ``receive`` runs while the caller waits: keep it quick and never wait for the run.
    """

    key: str = Field(min_length=1, max_length=256)
    """Secret part of the webhook URL: treat it as a credential."""

    def receive(self, request: WebhookRequest, ctx: Any) -> WebhookOutcome:  # pragma: no cover - abstract
        """Decide what the call does; ``ctx.render(value)`` renders with the flow's secrets."""
        raise NotImplementedError


class TaskRunner(Model):
    """Where a script task's commands run (Process, Docker...)."""

    type_id: ClassVar[str] = ""
    type: str
    """The task runner type id."""

    def __init_subclass__(cls, type: str | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if type is not None:
            cls.type_id = type

    def run(self, ctx: RunContext, spec: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


# -- where a model holds tasks (flowables' children) or other plugin types --------------------------
@cache
def task_slots(cls: type) -> dict[str, str]:
    """Fields of ``cls`` that hold tasks: ``list`` (list[Task]), ``dict`` (dict[str, list[Task]]) or ``single``."""
    slots: dict[str, str] = {}
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return slots
    for name, info in cls.model_fields.items():
        kind = _slot_kind(info.annotation)
        if kind:
            slots[name] = kind
    return slots


@cache
def plugin_slots(cls: type) -> dict[str, type[PluginType]]:
    """Fields of ``cls`` typed ``list[X]`` where ``X`` is a plugin type other than a task (log exporters):
    name → ``X``. Their items are resolved by ``type`` through the registry, as tasks are."""
    slots: dict[str, type[PluginType]] = {}
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return slots
    for name, info in cls.model_fields.items():
        tp = unwrap_optional(info.annotation)
        args = typing.get_args(tp)
        if (
            typing.get_origin(tp) is list
            and args
            and isinstance(args[0], type)
            and issubclass(args[0], PluginType)
            and not issubclass(args[0], Task | Trigger)
        ):
            slots[name] = args[0]
    return slots


def unwrap_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and args else tp


def _is_task(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Task)


def _slot_kind(tp: Any) -> str | None:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            kind = _slot_kind(a)
            if kind:
                return kind
        return None
    if origin is list and args and _is_task(args[0]):
        return "list"
    if (
        origin is list
        and args
        and isinstance(args[0], type)
        and issubclass(args[0], BaseModel)
        and task_slots(args[0])
    ):
        return "models"
    if origin is dict and len(args) == 2 and _slot_kind(args[1]) == "list":
        return "dict"
    if _is_task(tp):
        return "single"
    return None
