"""Response and request shapes, for the server's own OpenAPI document (Kestra 1.3's schemas, trimmed).

Routes return plain JSON built from the store; these models only document it,
so the schema-driven fuzz can check every response against them. Objects
allow extra properties, as Kestra's do.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

StateType = Literal["CREATED", "SUBMITTED", "RUNNING", "PAUSED", "RESTARTED", "KILLING", "SUCCESS", "WARNING",
                    "FAILED", "KILLED", "CANCELLED", "QUEUED", "RETRYING", "RETRIED", "SKIPPED", "BREAKPOINT",
                    "RESUBMITTED"]  # fmt: skip
Level = Literal["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(Open):
    message: str


class Label(BaseModel):
    key: str
    value: str


class StateHistory(BaseModel):
    state: StateType
    date: str


class State(Open):
    current: StateType
    histories: list[StateHistory] = []
    startDate: str | None = None
    endDate: str | None = None
    duration: str | None = None


class TaskRunAttempt(Open):
    state: Any = None


class TaskRun(Open):
    id: str
    executionId: str
    namespace: str
    flowId: str
    taskId: str
    parentTaskRunId: str | None = None
    value: str | None = None
    attempts: list[TaskRunAttempt] | None = None
    outputs: dict[str, Any] | None = None
    state: State
    iteration: int | None = None
    dynamic: bool | None = None


class ExecutionTrigger(Open):
    id: str
    type: str
    variables: dict[str, Any] | None = None


class Execution(Open):
    id: str
    namespace: str
    flowId: str
    flowRevision: int
    tenantId: str | None = None
    labels: list[Label] = []
    taskRunList: list[TaskRun] | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    variables: dict[str, Any] | None = None
    state: State
    parentId: str | None = None
    originalId: str | None = None
    trigger: ExecutionTrigger | None = None
    deleted: bool
    metadata: dict[str, Any] | None = None
    scheduleDate: str | None = None
    kind: str | None = None


class ExecutionResponse(Execution):
    url: str


class WebhookResponse(Open):
    tenantId: str | None = None
    id: str
    namespace: str
    flowId: str
    flowRevision: int
    trigger: ExecutionTrigger | None = None
    outputs: dict[str, Any] | None = None
    labels: list[Label] = []
    state: State
    url: str


class Flow(Open):
    id: str
    namespace: str
    revision: int | None = None
    description: str | None = None
    labels: list[Label] = []
    inputs: list[dict[str, Any]] | None = None
    tasks: list[dict[str, Any]] | None = None
    triggers: list[dict[str, Any]] | None = None
    disabled: bool
    deleted: bool
    updated: str | None = None


class FlowWithSource(Flow):
    source: str | None = None


class Paged(BaseModel, Generic[T]):
    results: list[T]
    total: int


class ValidateConstraintViolation(Open):
    index: int
    flow: str | None = None
    namespace: str | None = None
    constraints: str | None = None
    violations: list[dict[str, Any]] | None = None
    outdated: bool = False
    deprecationPaths: list[str] = []
    warnings: list[str] = []
    infos: list[str] = []


class LogEntry(Open):
    namespace: str | None = None
    flowId: str | None = None
    taskId: str | None = None
    executionId: str | None = None
    taskRunId: str | None = None
    attemptNumber: int | None = None
    triggerId: str | None = None
    timestamp: str
    level: Level
    message: str


class Namespace(Open):
    id: str
    deleted: bool = False
    description: str | None = None


class FileAttributes(Open):
    fileName: str
    lastModifiedTime: int | None = None
    creationTime: int | None = None
    type: Literal["File", "Directory"]
    size: int


class FileRevision(BaseModel):
    revision: int


class FileMetas(BaseModel):
    size: int


class KvDetail(Open):
    type: Literal["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON"]
    value: Any = None
    revision: int | None = None
    updated: str | None = None


class KVEntry(Open):
    namespace: str
    key: str
    description: str | None = None
    updateDate: str | None = None
    expirationDate: str | None = None


class KeysBody(BaseModel):
    keys: list[str] = Field(default_factory=list)


class TriggerContext(Open):
    namespace: str
    flowId: str
    triggerId: str
    disabled: bool = False
    tenantId: str | None = None
    date: str | None = None
    nextExecutionDate: str | None = None
    executionId: str | None = None
    backfill: dict[str, Any] | None = None
    """A backfill: ``start``, ``end``, ``currentDate``, ``paused``, ``inputs``, ``labels``."""


class TriggerRef(BaseModel):
    namespace: str
    flowId: str
    triggerId: str


class Triggers(Open):
    abstractTrigger: dict[str, Any] | None = None
    triggerContext: TriggerContext


class SetDisabledRequest(BaseModel):
    triggers: list[TriggerRef] = Field(min_length=1)
    disabled: bool


class IdWithNamespace(BaseModel):
    namespace: str
    id: str


class BulkResponse(BaseModel):
    count: int


class BulkErrorResponse(Open):
    message: str
    invalids: dict[str, str] = {}
    """Each refused id with the reason."""


class SetLabelsByIdsRequest(BaseModel):
    executionsId: list[str]
    executionLabels: list[Label]


class QueryFilter(BaseModel):
    field: str
    operation: str
    value: Any = None


class FiltersBody(BaseModel):
    filters: list[QueryFilter] = []


RelationType = Literal["SEQUENTIAL", "CHOICE", "ERROR", "FINALLY", "AFTER_EXECUTION", "PARALLEL", "DYNAMIC"]


class GraphNode(Open):
    uid: str
    type: str
    branchType: Literal["ERROR", "FINALLY", "AFTER_EXECUTION"] | None = None
    task: dict[str, Any] | None = None
    taskRun: dict[str, Any] | None = None
    values: list[str] | None = None
    relationType: RelationType | None = None
    triggerDeclaration: dict[str, Any] | None = None


class GraphRelation(BaseModel):
    relationType: RelationType | None = None
    value: str | None = None


class GraphEdge(BaseModel):
    source: str
    target: str
    relation: GraphRelation


class GraphCluster(BaseModel):
    cluster: GraphNode
    nodes: list[str]
    parents: list[str]
    start: str
    end: str


class FlowGraph(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    clusters: list[GraphCluster]
    flowables: list[str] = []


class FlowNode(BaseModel):
    uid: str
    namespace: str
    id: str


class FlowTopologyEdge(BaseModel):
    source: str
    target: str
    relation: Literal["FLOW_TASK", "FLOW_TRIGGER"]


class FlowTopologyGraph(BaseModel):
    nodes: list[FlowNode]
    edges: list[FlowTopologyEdge]


class PluginIcon(BaseModel):
    name: str
    icon: str
    """The SVG, base64-encoded."""
    flowable: bool


class InputType(BaseModel):
    type: str
    cls: str


class DocumentationWithSchema(Open):
    markdown: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")


class PluginElement(Open):
    cls: str
    title: str | None = None
    description: str | None = None
    deprecated: bool = False


class Plugin(Open):
    name: str
    title: str | None = None
    version: str | None = None
    group: str | None = None
    tasks: list[PluginElement] = []
    triggers: list[PluginElement] = []
    taskRunners: list[PluginElement] = []
    logExporters: list[PluginElement] = []


class Health(BaseModel):
    status: Literal["UP", "DOWN"]
    component: str
    executor: bool


class Configuration(Open):
    uuid: str
    version: str
    edition: str
    isBasicAuthInitialized: bool
    url: str | None = None
    systemNamespace: str
    hiddenLabelsPrefixes: list[str] = []


class Me(Open):
    id: str
    username: str
    superAdmin: bool
    restricted: bool
    tenants: list[dict[str, str]] = []
    bindings: list[dict[str, str | None]] = []
    roles: list[dict[str, Any]] = []


class StateRequest(BaseModel):
    taskRunId: str
    state: StateType


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad request (the message names the parameter)"},
    401: {"model": ErrorBody, "description": "Authentication required"},
    404: {"model": ErrorBody, "description": "Not found"},
}
