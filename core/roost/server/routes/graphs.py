"""Topologies: the graph of a flow (stored or sent as YAML) and of an execution; flow dependencies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from roost.engine import topology
from roost.engine.engine import FlowNotFound
from roost.engine.graph import GraphBuilder, flow_graph
from roost.flow.build import FlowInvalid
from roost.server import models
from roost.server.errors import not_found, unprocessable
from roost.server.routes.common import TENANT_SCOPED, YAML_BODY, blocking, body_text, state_of
from roost.server.routing import SegmentRoute
from roost.server.state import ServerState

router = APIRouter(responses=models.ERRORS, dependencies=TENANT_SCOPED, route_class=SegmentRoute)
T = "/api/v1/{tenant}"
Subflows = Annotated[
    list[str] | None, Query(description="The subflow tasks to display (their node uids), expanded")
]
GRAPH: dict[int | str, dict[str, Any]] = {200: {"model": models.FlowGraph}, 422: {"model": models.ErrorBody}}
TOPOLOGY: dict[int | str, dict[str, Any]] = {200: {"model": models.FlowTopologyGraph}}


def _loader(st: ServerState, tenant: str) -> Any:
    def load(namespace: str, flow_id: str, revision: int | None) -> Any:
        try:
            return st.engine.flow(tenant, namespace, flow_id, revision)
        except (FlowNotFound, FlowInvalid):
            return None

    return load


def _stored_flow(st: ServerState, tenant: str, namespace: str, flow_id: str, revision: int | None) -> Any:
    try:
        return st.engine.flow(tenant, namespace, flow_id, revision)
    except FlowNotFound:
        raise not_found(
            f"flow {namespace}.{flow_id} not found" + (f" at revision {revision}" if revision else "")
        ) from None
    except FlowInvalid as exc:
        raise unprocessable(f"flow {namespace}.{flow_id} is stored but no longer valid: {exc}") from None


def graph_of(
    st: ServerState, tenant: str, flow: Any, execution: Any = None, subflows: list[str] | None = None
) -> dict[str, Any]:
    builder = GraphBuilder(flow, execution, expand=subflows or (), load_flow=_loader(st, tenant))
    return flow_graph(builder.build(), flow)


@router.get(T + "/flows/{namespace}/{id}/graph", operation_id="generateFlowGraph", tags=["Flows"],
            summary="Generate a graph for a flow", responses=GRAPH)  # fmt: skip
def flow_graph_route(request: Request, tenant: str, namespace: str, id: str,
                     revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                     subflows: Subflows = None) -> JSONResponse:  # fmt: skip
    st = state_of(request)
    tenant = st.tenant(tenant)
    flow = _stored_flow(st, tenant, namespace, id, revision)
    return JSONResponse(graph_of(st, tenant, flow, None, subflows))


@router.post(T + "/flows/graph", operation_id="generateFlowGraphFromSource", tags=["Flows"],
             summary="Generate a graph for a flow source", openapi_extra=YAML_BODY,
             responses={**GRAPH, 422: {"model": models.ErrorBody}})  # fmt: skip
async def source_graph(request: Request, tenant: str, subflows: Subflows = None) -> JSONResponse:
    """The flow is validated, not deployed."""
    from roost.server.routes.flows import parse_or_422

    st = state_of(request)
    tenant = st.tenant(tenant)
    source = await body_text(request, "flow source")

    def build() -> dict[str, Any]:
        return graph_of(st, tenant, parse_or_422(st, tenant, source), None, subflows)

    return JSONResponse(await blocking(build))


@router.get(T + "/executions/{executionId}/graph", operation_id="executionFlowGraph", tags=["Executions"],
            summary="Generate a graph for an execution", responses=GRAPH)  # fmt: skip
def execution_graph(
    request: Request, tenant: str, executionId: str, subflows: Subflows = None
) -> JSONResponse:  # noqa: N803
    """Each node carries its task run (``taskRun``) and the ForEach values it ran for (``values``)."""
    from roost.engine.model import Execution

    st = state_of(request)
    tenant = st.tenant(tenant)
    header = st.execution_dict(tenant, executionId)
    loaded = st.store.load_execution(executionId)
    if loaded is None:
        raise not_found(f"execution {executionId} not found")
    execution = Execution.from_dicts(*loaded)
    flow = _stored_flow(st, tenant, header["namespace"], header["flowId"], int(header["flowRevision"]))
    return JSONResponse(graph_of(st, tenant, flow, execution, subflows))


# -- dependencies ---------------------------------------------------------------------------------------------------
def flow_nodes(st: ServerState, tenant: str) -> list[topology.FlowNode]:
    nodes = []
    for namespace, flow_id, revision, _source in st.store.list_flows(tenant):
        try:
            flow = st.engine.flow(tenant, namespace, flow_id, revision)
        except (FlowNotFound, FlowInvalid):
            nodes.append(topology.FlowNode(tenant, namespace, flow_id))  # drawn, without links
            continue
        nodes.append(topology.node_of(tenant, flow))
    return nodes


DestinationOnly = Annotated[bool, Query(description="Only the flows this one starts, not those starting it")]


@router.get(T + "/flows/{namespace}/{id}/dependencies", operation_id="flowDependencies", tags=["Flows"],
            summary="Get flow dependencies", responses=TOPOLOGY)  # fmt: skip
def flow_dependencies(request: Request, tenant: str, namespace: str, id: str, destinationOnly: DestinationOnly = False,  # noqa: N803
                      expandAll: Annotated[bool, Query(description="Follow dependencies transitively")] = False) -> JSONResponse:  # noqa: N803 # fmt: skip
    st = state_of(request)
    tenant = st.tenant(tenant)
    nodes = flow_nodes(st, tenant)
    start = next((n for n in nodes if n.namespace == namespace and n.id == id), None)
    if start is None:
        raise not_found(f"flow {namespace}.{id} not found")
    return JSONResponse(
        topology.dependencies(nodes, start, destination_only=destinationOnly, expand_all=expandAll)
    )


@router.get(T + "/namespaces/{namespace}/dependencies", operation_id="flowDependenciesFromNamespace", tags=["Flows"],
            summary="Retrieve flow dependencies", responses=TOPOLOGY)  # fmt: skip
def namespace_dependencies(request: Request, tenant: str, namespace: str,
                           destinationOnly: DestinationOnly = False) -> JSONResponse:  # noqa: N803 # fmt: skip
    """Every flow of the namespace, and the dependencies that start or (unless ``destinationOnly``) end in it."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    nodes = flow_nodes(st, tenant)
    links = [(s, t, rel) for s, t, rel in topology.edges(nodes)
             if s.namespace == namespace or (not destinationOnly and t.namespace == namespace)]  # fmt: skip
    return JSONResponse(topology.graph([n for n in nodes if n.namespace == namespace], links))


@router.get(T + "/dependencies", operation_id="flowDependenciesFromTenant", tags=["Tenants"],
            summary="Get tenant dependencies", responses=TOPOLOGY)  # fmt: skip
def tenant_dependencies(
    request: Request, tenant: str, destinationOnly: DestinationOnly = False
) -> JSONResponse:  # noqa: N803
    """Every flow of the tenant and every dependency between them (``destinationOnly`` changes nothing here)."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    nodes = flow_nodes(st, tenant)
    return JSONResponse(topology.graph(nodes, topology.edges(nodes)))


__all__ = ["graph_of", "router"]
