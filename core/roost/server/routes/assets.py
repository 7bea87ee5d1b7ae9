"""Assets: search, get, create, delete, dependencies (lineage), lineage events, usages, lifecycle events."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from roost.assets.model import Asset, canonical_asset_type
from roost.assets.service import public
from roost.server import models
from roost.server.access import access_of
from roost.server.errors import bad_request, not_found
from roost.server.filters import match_text, page_slice, parse_filters
from roost.server.routes.common import TENANT_SCOPED, state_of
from roost.server.routing import SegmentRoute

router = APIRouter(
    tags=["Assets"], responses=models.ERRORS, dependencies=TENANT_SCOPED, route_class=SegmentRoute
)
P = "/api/v1/{tenant}/assets"
Page = Annotated[int, Query(ge=1, le=100000)]
Size = Annotated[int, Query(ge=1, le=10000)]


class ApiAsset(models.Open):
    namespace: str
    id: str
    type: str
    displayName: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created: str | None = None
    updated: str | None = None
    deleted: bool = False


class AssetIdentifier(BaseModel):
    id: str
    type: str
    namespace: str | None = None


class LineageEvent(models.Open):
    uid: str
    namespace: str | None = None
    flowId: str | None = None
    executionId: str | None = None
    taskId: str | None = None
    taskRunId: str | None = None
    inputs: list[AssetIdentifier] = Field(default_factory=list)
    outputs: list[AssetIdentifier] = Field(default_factory=list)
    created: str | None = None


class Usage(models.Open):
    assetId: str
    namespace: str | None = None
    flowId: str | None = None
    executionId: str | None = None
    taskId: str | None = None
    taskRunId: str | None = None
    created: str | None = None


class LifecycleEvent(models.Open):
    id: str
    namespace: str
    type: str
    event: str
    eventTime: str | None = None
    executionId: str | None = None
    flowId: str | None = None
    taskId: str | None = None


class GraphNode(BaseModel):
    uid: str
    namespace: str
    id: str
    type: str


class GraphEdge(BaseModel):
    source: str
    target: str
    relation: str


class Topology(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class NewAsset(BaseModel):
    namespace: str
    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    displayName: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def _assets(request: Request) -> Any:
    return state_of(request).engine.assets


@router.get(P + "/search", operation_id="searchAssets", summary="Search for assets",
            responses={200: {"model": models.Paged[ApiAsset]}})  # fmt: skip
def search(request: Request, tenant: str, page: Page = 1, size: Size = 10,
           metadataQuery: Annotated[str | None, Query(description="JSON list of {field, type, value}")] = None,
           ) -> JSONResponse:  # fmt: skip
    st = state_of(request)
    tenant = st.tenant(tenant)
    filters = parse_filters(request.query_params.multi_items(), ("q", "namespace", "type", "id"))
    query: list[Any] = []
    if metadataQuery:
        try:
            query = json.loads(metadataQuery)
            if not isinstance(query, list) or not all(isinstance(c, dict) and "field" in c for c in query):
                raise ValueError("expected a list of {field, type, value}")
        except ValueError as exc:
            raise bad_request(f"metadataQuery: {exc}") from None
    try:
        items = _assets(request).search(tenant, metadata_query=query)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    for flt in filters:
        if flt.field == "q":
            items = [a for a in items if match_text(a["id"], "CONTAINS", flt.value)
                     or match_text(a.get("displayName") or "", "CONTAINS", flt.value)]  # fmt: skip
        else:
            value = flt.value
            if flt.field == "type":  # TABLE and io.kestra.plugin.ee.assets.Table are one type
                value = (
                    [canonical_asset_type(v) for v in value]
                    if isinstance(value, list)
                    else canonical_asset_type(value)
                )
            items = [a for a in items if match_text(a[flt.field], flt.op, value)]
    results = access_of(request).filter((public(a) for a in items), "ASSET", tenant)
    return JSONResponse({"results": page_slice(results, page, size), "total": len(results)})


@router.post(P, operation_id="createAsset", summary="Create or update an asset", status_code=200,
             responses={200: {"model": ApiAsset}})  # fmt: skip
def create(request: Request, tenant: str, body: NewAsset) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    svc = _assets(request)
    previous = svc.get(tenant, body.id, body.namespace, body.type)
    access_of(request).require("ASSET", "UPDATE" if previous else "CREATE", body.namespace, tenant)
    asset = Asset(id=body.id, type=body.type, namespace=body.namespace, display_name=body.displayName,
                  description=body.description, metadata=body.metadata)  # fmt: skip
    svc.upsert(tenant, asset, body.namespace, {"namespace": body.namespace})
    after = public(svc.get(tenant, body.id, body.namespace, body.type))
    st.audit.record("UPDATE" if previous else "CREATE", "ASSET", tenant=tenant,
                    detail={"id": body.id, "namespace": body.namespace, "assetType": body.type},
                    before=public(previous) if previous else None, after=after)  # fmt: skip
    return JSONResponse(after)


@router.get(P + "/lineage-events/search", operation_id="searchAssetLineageEvents",
            summary="Search lineage events (one per emitted bundle)",
            responses={200: {"model": models.Paged[LineageEvent]}})  # fmt: skip
def lineage_events(request: Request, tenant: str, page: Page = 1, size: Size = 10,
                   assetId: str | None = None, executionId: str | None = None) -> JSONResponse:  # fmt: skip
    tenant = state_of(request).tenant(tenant)
    items = access_of(request).filter(_assets(request).lineage_events(tenant, asset_id=assetId, execution_id=executionId),
                                      "ASSET", tenant)  # fmt: skip
    return JSONResponse({"results": page_slice(items, page, size), "total": len(items)})


@router.get(P + "/usages/search", operation_id="searchAssetUsages", summary="Search the task runs that used assets",
            responses={200: {"model": models.Paged[Usage]}})  # fmt: skip
def usages(
    request: Request, tenant: str, page: Page = 1, size: Size = 10, assetId: str | None = None
) -> JSONResponse:
    tenant = state_of(request).tenant(tenant)
    items = []
    records = _assets(request).lineage_events(tenant, asset_id=assetId)
    for record in access_of(request).filter(records, "ASSET", tenant):
        for a in record["inputs"]:
            if assetId is None or a["id"] == assetId:
                items.append({"assetId": a["id"], **{k: record[k] for k in ("namespace", "flowId", "executionId",
                                                                              "taskId", "taskRunId", "created")}})  # fmt: skip
    return JSONResponse({"results": page_slice(items, page, size), "total": len(items)})


@router.get(
    P + "/{id}", operation_id="getAsset", summary="Get an asset", responses={200: {"model": ApiAsset}}
)
def get(request: Request, tenant: str, id: str) -> JSONResponse:
    tenant = state_of(request).tenant(tenant)
    found = _assets(request).get(tenant, id)
    if found is None or not access_of(request).can("ASSET", "READ", found.get("namespace") or "", tenant):
        raise not_found(f"asset '{id}' not found")
    return JSONResponse(public(found))


@router.delete(P + "/{id}", operation_id="deleteAsset", summary="Delete an asset (its history and lineage stay)",
               status_code=200, response_class=Response, responses={200: {"description": "Deleted"}})  # fmt: skip
def delete(request: Request, tenant: str, id: str) -> Response:
    st = state_of(request)
    tenant = st.tenant(tenant)
    access = access_of(request)
    found = _assets(request).get(tenant, id)
    if found is None or not access.can("ASSET", "READ", found.get("namespace") or "", tenant):
        raise not_found(f"asset '{id}' not found")
    access.require("ASSET", "DELETE", found.get("namespace") or "", tenant)
    if _assets(request).delete(tenant, id, source={"namespace": None}) == 0:
        raise not_found(f"asset '{id}' not found")
    st.audit.record("DELETE", "ASSET", tenant=tenant, detail={"id": id, "namespace": found.get("namespace")},
                    before=public(found), after=None)  # fmt: skip
    return Response(status_code=200)


@router.get(P + "/{id}/dependencies", operation_id="getAssetDependencies",
            summary="The lineage graph around an asset (upstream and downstream)",
            responses={200: {"model": Topology}})  # fmt: skip
def dependencies(request: Request, tenant: str, id: str) -> JSONResponse:
    tenant = state_of(request).tenant(tenant)
    svc = _assets(request)
    found = svc.get(tenant, id, include_deleted=True)
    if found is None or not access_of(request).can("ASSET", "READ", found.get("namespace") or "", tenant):
        raise not_found(f"asset '{id}' not found")
    return JSONResponse(svc.lineage(tenant, id))


@router.get(P + "/{id}/events", operation_id="getAssetEvents",
            summary="Lifecycle events of an asset (CREATED, UPDATED, DELETED, USED)",
            responses={200: {"model": models.Paged[LifecycleEvent]}})  # fmt: skip
def events(request: Request, tenant: str, id: str, page: Page = 1, size: Size = 50) -> JSONResponse:
    tenant = state_of(request).tenant(tenant)
    items = access_of(request).filter(_assets(request).events(tenant, id), "ASSET", tenant)
    if not items:
        raise not_found(f"asset '{id}' not found")
    return JSONResponse({"results": page_slice(items, page, size), "total": len(items)})
