"""The flow: Kestra 1.3's shape as pydantic models (camelCase in YAML)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, PrivateAttr, field_validator, model_validator

from roost.flow.properties import Duration, Model, stringify
from roost.flow.task import Retry, Task, Trigger

FLOW_ID = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
NAMESPACE = r"^[a-z0-9][a-z0-9._-]*$"

InputType = Literal[
    "STRING", "ENUM", "SELECT", "MULTISELECT", "INT", "FLOAT", "BOOLEAN", "BOOL", "DATETIME", "DATE",
    "TIME", "DURATION", "FILE", "JSON", "URI", "SECRET", "ARRAY", "YAML", "EMAIL",
]  # fmt: skip

# Labels users may set although they start with ``system.``.
USER_SYSTEM_LABELS = frozenset({"system.readOnly"})


class DependsOn(Model):
    inputs: list[str] = Field(default_factory=list)
    """Inputs this one depends on."""
    condition: str | None = None
    """Expression deciding whether this input is shown."""


class Input(Model):
    """An execution input, typed and validated when an execution is created."""

    deprecated_aliases: ClassVar[dict[str, str]] = {"name": "id"}

    id: str = Field(pattern=r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*$", max_length=100,
                    validation_alias=AliasChoices("id", "name"))  # fmt: skip
    """Identifier, available as ``inputs.<id>`` (``name`` in Kestra's older flows)."""
    type: InputType
    """Input type."""
    description: str | None = None
    """Shown in forms."""
    display_name: str | None = None
    """Label shown in forms."""
    required: bool = True
    """Whether an execution needs a value (or a default)."""
    defaults: Any = None
    """Default value (may be an expression)."""
    depends_on: DependsOn | None = None
    """Inputs this one depends on."""
    values: list[Any] | str | None = None
    """Allowed values (ENUM, SELECT, MULTISELECT)."""
    options: list[Any] | None = None
    """Allowed values (older name for ``values`` of MULTISELECT)."""
    allow_custom_value: bool = False
    """Accept a value outside ``values``."""
    item_type: InputType | None = None
    """Type of each item (ARRAY)."""
    validator: str | None = None
    """Regular expression a STRING must match."""
    min: Any = None
    """Lower bound (INT, FLOAT, DATETIME, DURATION...)."""
    max: Any = None
    """Upper bound."""
    after: Any = None
    """Earliest DATETIME/DATE/TIME accepted."""
    before: Any = None
    """Latest DATETIME/DATE/TIME accepted."""
    min_length: int | None = None
    """Shortest STRING accepted."""
    max_length: int | None = None
    """Longest STRING accepted."""
    allowed_file_extensions: list[str] | None = None
    """FILE: accepted extensions."""
    expression: str | None = None
    """Expression computing the allowed values."""
    is_radio: bool | None = None
    auto_select_first: bool | None = None
    prefill: Any = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    """JSON schema a JSON input must match."""

    @field_validator("item_type")
    @classmethod
    def _no_nested_arrays(cls, v: str | None) -> str | None:
        if v == "ARRAY":
            raise ValueError("an ARRAY input cannot have itemType ARRAY")
        return v


class Concurrency(Model):
    """Limit of concurrent executions of the flow and what happens above it."""

    limit: int = Field(ge=1)
    """Most executions running at once."""
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"
    """What happens to an execution above the limit."""


class PluginDefault(Model):
    """Default property values for every task or trigger whose type matches ``type``."""

    type: str
    """A type id, or a prefix of type ids (``io.kestra.plugin.jdbc``)."""
    values: dict[str, Any] = Field(default_factory=dict)
    """Property values."""
    forced: bool = False
    """Override the task's own values instead of filling the gaps."""


class FlowOutput(Model):
    """A flow output, computed when the execution ends."""

    id: str
    """Identifier, ``outputs.<id>`` of the execution."""
    type: InputType = "STRING"
    """Type of the value."""
    value: Any = None
    """The value (an expression)."""
    description: str | None = None
    display_name: str | None = None
    required: bool = True


class SLA(Model):
    """A service-level agreement the executor enforces on every execution of the flow."""

    id: str = Field(min_length=1)
    """Identifier, named in the logs of a violation."""
    type: Literal["MAX_DURATION", "EXECUTION_ASSERTION"]
    """MAX_DURATION: the execution must end within ``duration``; EXECUTION_ASSERTION: ``assert`` must hold."""
    behavior: Literal["FAIL", "CANCEL", "NONE"]
    """What a violation does: fail or cancel the execution, or nothing but the labels."""
    duration: Duration | None = None
    """Longest an execution may run (MAX_DURATION), from its creation."""
    assert_: str | None = Field(default=None, alias="assert")
    """Expression evaluated at every change of a running execution (EXECUTION_ASSERTION)."""
    labels: dict[str, Any] | list[dict[str, Any]] | None = None
    """Labels added to the execution on a violation (a map, or a list of key/value)."""

    @model_validator(mode="after")
    def _complete(self) -> SLA:
        if self.type == "MAX_DURATION" and (self.duration is None or self.duration.total_seconds() <= 0):
            raise ValueError("a MAX_DURATION SLA needs a positive duration")
        if self.type == "EXECUTION_ASSERTION" and not self.assert_:
            raise ValueError("an EXECUTION_ASSERTION SLA needs an assert expression")
        for lbl in self.label_list():
            if lbl["key"].startswith("system."):
                raise ValueError(
                    f"label '{lbl['key']}' is reserved: labels starting with 'system.' are set by the system"
                )
        return self

    def label_list(self) -> list[dict[str, str]]:
        if self.labels is None:
            return []
        if isinstance(self.labels, dict):
            return [{"key": str(k), "value": stringify(v)} for k, v in self.labels.items()]
        return [{"key": str(x.get("key")), "value": stringify(x.get("value"))} for x in self.labels]


class Flow(Model):
    """A flow: tasks to run, and how executions of it are started and behave."""

    id: str = Field(pattern=FLOW_ID, max_length=100)
    """Identifier, unique within the namespace."""
    namespace: str = Field(pattern=NAMESPACE, max_length=150)
    """Dotted namespace (lower case)."""
    revision: int | None = None
    """Set by the server on every change."""
    tenant_id: str | None = None
    description: str | None = None
    """Markdown shown in the UI."""
    labels: dict[str, str] | list[dict[str, str]] | None = None
    """Labels added to every execution (a map, or a list of key/value)."""
    inputs: list[Input] = Field(default_factory=list)
    """Execution inputs."""
    variables: dict[str, Any] = Field(default_factory=dict)
    """Values available as ``vars.<name>``."""
    tasks: list[Task] = Field(min_length=1)
    """Tasks run in order."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run when a task fails."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end, whatever the outcome."""
    after_execution: list[Task] = Field(default_factory=list)
    """Tasks run after the execution reached its final state."""
    triggers: list[Trigger] = Field(default_factory=list)
    """What starts executions automatically."""
    plugin_defaults: list[PluginDefault] = Field(default_factory=list)
    """Default property values for task types."""
    task_defaults: list[PluginDefault] = Field(default_factory=list)
    """Older name of ``pluginDefaults``."""
    concurrency: Concurrency | None = None
    """Concurrency limit."""
    outputs: list[FlowOutput] = Field(default_factory=list)
    """Flow outputs."""
    retry: Retry | None = None
    """Retry policy of every task without its own."""
    sla: list[SLA] = Field(default_factory=list)
    """Service-level agreements."""
    disabled: bool = False
    """A disabled flow starts no execution."""
    deleted: bool = False
    _source: str | None = PrivateAttr(default=None)
    _notices: list[Any] | None = PrivateAttr(
        default=None
    )  # deprecations found when parsed (flow.build.Notice)

    def label_list(self) -> list[dict[str, str]]:
        if self.labels is None:
            return []
        if isinstance(self.labels, dict):
            return [{"key": k, "value": str(v)} for k, v in self.labels.items()]
        return [{"key": str(x.get("key")), "value": str(x.get("value"))} for x in self.labels]

    def all_tasks(self) -> list[Task]:
        """Every task of the flow, nested ones included, depth first."""
        out: list[Task] = []

        def walk(tasks: list[Task]) -> None:
            for t in tasks:
                out.append(t)
                walk(list(child_tasks(t)))

        walk([*self.tasks, *self.errors, *self.finally_, *self.after_execution])
        return out

    def uid(self) -> str:
        return f"{self.namespace}_{self.id}"


def child_tasks(task: Task) -> list[Task]:
    """The direct children of a flowable task, in every slot."""
    from roost.flow.build import task_slots

    children: list[Task] = []
    for name, kind in task_slots(type(task)).items():
        value = getattr(task, name, None)
        if not value:
            continue
        if kind == "list":
            children.extend(value)
        elif kind == "dict":
            for items in value.values():
                children.extend(items)
        elif kind == "models":
            for model in value:
                children.extend(child_tasks_of_model(model))
        else:
            children.append(value)
    return children


def child_tasks_of_model(model: Any) -> list[Task]:
    from roost.flow.build import task_slots

    out: list[Task] = []
    for name in task_slots(type(model)):  # type: ignore[arg-type]
        value = getattr(model, name, None)
        if isinstance(value, Task):
            out.append(value)
        elif isinstance(value, list):
            out.extend(value)
    return out
