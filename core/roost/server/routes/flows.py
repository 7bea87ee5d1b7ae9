"""Flows: create and update from YAML, get (with source), revisions, delete, list, search, validate, bulk."""

from __future__ import annotations

import io
import threading
import zipfile
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from roost.flow.build import FlowInvalid, flow_notices, parse_flow
from roost.flow.yaml import Violation, load_document
from roost.server import models
from roost.server.access import Access, access_of
from roost.server.errors import ApiError, bad_request, not_found, unprocessable
from roost.server.filters import match_labels, match_text, page_slice, parse_filters, sorter
from roost.server.routes.common import TENANT_SCOPED, YAML_BODY, blocking, body_text, multipart_body, state_of
from roost.server.routing import SegmentRoute
from roost.server.state import ServerState

router = APIRouter(
    tags=["Flows"], responses=models.ERRORS, dependencies=TENANT_SCOPED, route_class=SegmentRoute
)
P = "/api/v1/{tenant}/flows"
Page = Annotated[int, Query(ge=1, le=100000, description="The current page")]
Size = Annotated[int, Query(ge=1, le=10000, description="The current page size")]

_json_cache: dict[tuple[str, str, str, int], dict[str, Any]] = {}
_cache_lock = threading.Lock()


def flow_json(tenant: str, namespace: str, flow_id: str, revision: int, source: str, *, with_source: bool = False,
              deleted: bool = False, updated: float | None = None) -> dict[str, Any]:  # fmt: skip
    """A stored flow shaped as Kestra's ``Flow`` (from its YAML as written), cached per revision."""
    key = (tenant, namespace, flow_id, revision)
    data = _json_cache.get(key)
    if data is None:
        try:
            raw = load_document(source).data
        except Exception:
            raw = {}
        data = dict(raw) if isinstance(raw, dict) else {}
        labels = data.get("labels")
        if isinstance(labels, dict):
            data["labels"] = [{"key": str(k), "value": str(v)} for k, v in labels.items()]
        elif isinstance(labels, list):
            data["labels"] = [
                {"key": str(x.get("key")), "value": str(x.get("value"))}
                for x in labels
                if isinstance(x, dict)
            ]
        else:
            data["labels"] = []
        data.update(id=flow_id, namespace=namespace, revision=revision, tenantId=tenant)
        data["disabled"] = bool(data.get("disabled", False))
        with _cache_lock:
            if len(_json_cache) > 20000:
                _json_cache.clear()
            _json_cache[key] = data
    out = dict(data)
    out["deleted"] = deleted
    if updated is not None:
        from datetime import UTC, datetime

        out["updated"] = datetime.fromtimestamp(updated, UTC).isoformat().replace("+00:00", "Z")
    if with_source:
        out["source"] = source
    return out


def violations_body(exc: FlowInvalid, line_offset: int = 0) -> list[dict[str, Any]]:
    out = []
    for v in exc.violations:
        d = v.as_dict()
        if d.get("line") and line_offset:
            d["line"] += line_offset
        out.append(d)
    return out


def notices_body(flow: Any) -> dict[str, list[str]]:
    """A valid flow's deprecations and warnings in the shape of Kestra's ValidateConstraintViolation."""
    notices = flow_notices(flow)
    return {
        "deprecationPaths": [n.path for n in notices if n.kind == "deprecated"],
        "infos": [f"{n.replaced[0]} is replaced by {n.replaced[1]}" for n in notices if n.replaced],
        "warnings": [n.message for n in notices if n.kind == "warning"],
    }


def _constraints(violations: list[dict[str, Any]]) -> str:
    return "\n".join(f"{v['path'] or '<root>'}: {v['message']}" + (f" (line {v['line']})" if v.get("line") else "")
                     for v in violations)  # fmt: skip


def parse_or_422(st: ServerState, tenant: str, source: str) -> Any:
    try:
        return st.engine.parse(source, tenant)
    except FlowInvalid as exc:
        violations = violations_body(exc)
        raise unprocessable(f"Invalid flow: {exc.flow_ref or 'flow'}:\n{_constraints(violations)}",
                            violations=violations) from None  # fmt: skip


def audit_flow(st: ServerState, tenant: str, namespace: str, flow_id: str, before: str | None, after: str | None,
               revision: int | None = None) -> None:  # fmt: skip
    """The audit entry of a flow change: its YAML source before and after (None: created, or deleted)."""
    if before == after:
        return
    kind = "CREATE" if before is None else "DELETE" if after is None else "UPDATE"
    detail: dict[str, Any] = {"id": flow_id, "namespace": namespace, "flowId": flow_id}
    if revision is not None:
        detail["revision"] = revision
    st.audit.record(kind, "FLOW", tenant=tenant, detail=detail, before=before, after=after)


def _deploy(st: ServerState, tenant: str, source: str, *, expect_exists: bool | None,
            namespace: str | None = None, flow_id: str | None = None, access: Access | None = None) -> dict[str, Any]:  # fmt: skip
    flow = parse_or_422(st, tenant, source)
    if namespace is not None and (flow.namespace != namespace or flow.id != flow_id):
        raise unprocessable(f"the flow in the body is {flow.namespace}.{flow.id}, but the URL names {namespace}.{flow_id}: "
                            "a flow's id and namespace cannot change (create a new flow instead)")  # fmt: skip
    previous = st.store.get_flow(tenant, flow.namespace, flow.id)
    exists = previous is not None
    if access is not None:
        access.require("FLOW", "UPDATE" if exists else "CREATE", flow.namespace, tenant)
    if expect_exists is False and exists:
        raise unprocessable(
            f"flow {flow.namespace}.{flow.id} already exists: update it with PUT {P}/{{namespace}}/{{id}}"
        )
    if expect_exists is True and not exists:
        raise not_found(f"flow {flow.namespace}.{flow.id} not found")
    deployed = st.engine.deploy(source, tenant)
    st.forget_flow(tenant, deployed.namespace, deployed.id)
    audit_flow(
        st,
        tenant,
        deployed.namespace,
        deployed.id,
        previous[1] if previous else None,
        source,
        deployed.revision,
    )
    return flow_json(
        tenant, deployed.namespace, deployed.id, deployed.revision or 1, source, with_source=True
    )


@router.post(P, operation_id="createFlow", summary="Create a flow from YAML source", openapi_extra=YAML_BODY,
             responses={200: {"model": models.FlowWithSource}, 422: {"model": models.ErrorBody}})  # fmt: skip
async def create_flow(request: Request, tenant: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    source = await body_text(request, "flow source")
    return JSONResponse(
        await blocking(_deploy, st, tenant, source, expect_exists=False, access=access_of(request))
    )


def _all_flows(st: ServerState, tenant: str) -> list[dict[str, Any]]:
    return [flow_json(tenant, ns, fid, rev, src) for ns, fid, rev, src in st.store.list_flows(tenant)]


@router.get(P + "/search", operation_id="searchFlows", summary="Search for flows",
            responses={200: {"model": models.Paged[models.Flow]}})  # fmt: skip
def search_flows(request: Request, tenant: str, page: Page = 1, size: Size = 10,
                 sort: Annotated[list[str] | None, Query()] = None,
                 q: Annotated[str | None, Query(description="Deprecated: use filters[q][EQUALS]")] = None,
                 namespace: Annotated[str | None, Query(description="Deprecated: use filters[namespace][PREFIX]")] = None,
                 ) -> JSONResponse:  # fmt: skip
    st = state_of(request)
    tenant = st.tenant(tenant)
    flows = _matching(st, tenant, request, q, namespace)
    key, desc = sorter(sort, {"id": lambda f: f["id"], "namespace": lambda f: (f["namespace"], f["id"]),
                              "revision": lambda f: f.get("revision") or 0}, "namespace:asc")  # fmt: skip
    flows.sort(key=key, reverse=desc)
    return JSONResponse({"results": page_slice(flows, page, size), "total": len(flows)})


FLOW_FIELDS = ("q", "namespace", "labels", "flowId", "scope")


def _matching(st: ServerState, tenant: str, request: Request, q: str | None = None,
              namespace: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The flows the search filters (``filters[...]``, deprecated ``q`` and ``namespace``) select."""
    filters = parse_filters(request.query_params.multi_items(), FLOW_FIELDS)
    flows = access_of(request).filter(_all_flows(st, tenant), "FLOW", tenant)
    if q:
        flows = [f for f in flows if _query_match(f, q)]
    if namespace:
        flows = [f for f in flows if match_text(f["namespace"], "PREFIX", namespace)]
    for flt in filters:
        if flt.field == "q":
            flows = [f for f in flows if _query_match(f, str(flt.value)) == (flt.op != "NOT_EQUALS")]
        elif flt.field == "namespace":
            flows = [f for f in flows if match_text(f["namespace"], flt.op, flt.value)]
        elif flt.field == "flowId":
            flows = [f for f in flows if match_text(f["id"], flt.op, flt.value)]
        elif flt.field == "labels":
            if not isinstance(flt.value, dict):
                raise bad_request("filters[labels] expects filters[labels][OP][key]=value")
            flows = [f for f in flows if match_labels(f.get("labels"), flt.op, flt.value)]
        elif flt.field == "scope":
            wanted = {
                v.upper() for v in (flt.value if isinstance(flt.value, list) else str(flt.value).split(","))
            }
            flows = [f for f in flows if ("SYSTEM" if f["namespace"] == "system" else "USER") in wanted]
    return flows


def _query_match(flow: dict[str, Any], q: str) -> bool:
    q = q.lower()
    return any(q in str(flow.get(k) or "").lower() for k in ("id", "namespace", "description"))


@router.get(P + "/distinct-namespaces", operation_id="listDistinctNamespaces", summary="List all distinct namespaces",
            responses={200: {"model": list[str]}})  # fmt: skip
def distinct_namespaces(request: Request, tenant: str, q: str | None = None) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    scope = access_of(request).scope("FLOW", "READ", tenant)
    names = sorted({ns for ns, _id, _rev, _src in st.store.list_flows(tenant) if scope.allows(ns)})
    if q:
        names = [n for n in names if q.lower() in n.lower()]
    return JSONResponse(names)


async def _sources_from_request(request: Request) -> list[tuple[str, str]]:
    """(name, text) of every YAML the request carries: the body, or each file of a multipart form."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        out = []
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                data = await value.read()
                try:
                    out.append((getattr(value, "filename", None) or key, data.decode("utf-8")))
                except UnicodeDecodeError:
                    raise bad_request(f"file {getattr(value, 'filename', key)!r} is not UTF-8 text") from None
            else:
                out.append((key, str(value)))
        return out
    return [("body", await body_text(request, "flow source"))]


def validate_sources(st: ServerState, tenant: str, sources: list[tuple[str, str]]) -> list[dict[str, Any]]:
    from roost.flow.yaml import _split_documents

    results: list[dict[str, Any]] = []
    for name, text in sources:
        chunks = _split_documents(text) or [(0, text)]
        for offset, chunk in chunks:
            entry: dict[str, Any] = {"index": len(results), "outdated": False, "deprecationPaths": [], "warnings": [],
                                     "infos": []}  # fmt: skip
            if name != "body":
                entry["filename"] = name
            try:
                doc = load_document(chunk).data
            except Exception:
                doc = None
            if isinstance(doc, dict):
                if isinstance(doc.get("id"), str):
                    entry["flow"] = doc["id"]
                if isinstance(doc.get("namespace"), str):
                    entry["namespace"] = doc["namespace"]
            try:
                ns = entry.get("namespace")
                parsed = parse_flow(chunk, st.engine.plugins, st.engine.defaults(tenant, ns) if ns else [])
                entry.update(notices_body(parsed))
            except FlowInvalid as exc:
                violations = violations_body(exc, offset)
                entry["constraints"] = _constraints(violations)
                entry["violations"] = violations
            results.append(entry)
    return results


@router.post(P + "/validate", operation_id="validateFlows", summary="Validate a list of flows",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-yaml": {"schema": {"type": "string"}},
                 "multipart/form-data": {"schema": {"type": "object", "additionalProperties": {"type": "string", "format": "binary"}}}}}},
             responses={200: {"model": list[models.ValidateConstraintViolation]}})  # fmt: skip
async def validate_flows(request: Request, tenant: str) -> JSONResponse:
    """One result per YAML document (``index`` in order); ``constraints`` holds the violations as text."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    sources = await _sources_from_request(request)
    return JSONResponse(await blocking(validate_sources, st, tenant, sources))


def _bulk(st: ServerState, tenant: str, text: str, *, delete: bool, namespace: str | None, allow_child: bool,
          override: bool = False, access: Access | None = None) -> list[dict[str, Any]]:  # fmt: skip
    from roost.flow.yaml import _split_documents

    chunks = [c for _o, c in _split_documents(text)]
    parsed = []
    problems = []
    for i, chunk in enumerate(chunks):
        if override and namespace:
            chunk = _set_key(chunk, "namespace", namespace)
        try:
            flow = st.engine.parse(chunk, tenant)
        except FlowInvalid as exc:
            problems.append({"index": i, "violations": violations_body(exc), "message": str(exc)})
            continue
        if namespace and not override:
            inside = flow.namespace == namespace or (
                allow_child and flow.namespace.startswith(namespace + ".")
            )
            if not inside:
                problems.append(
                    {
                        "index": i,
                        "message": f"flow {flow.namespace}.{flow.id} is outside namespace {namespace}",
                    }
                )
                continue
        parsed.append((flow, chunk))
    if problems:
        raise unprocessable("Invalid flows: " + "; ".join(f"document {p['index']}: {p['message']}" for p in problems),
                            errors=problems)  # fmt: skip
    previous = {(f.namespace, f.id): st.store.get_flow(tenant, f.namespace, f.id) for f, _c in parsed}
    keep = {(f.namespace, f.id) for f, _c in parsed}
    doomed = [(ns, fid, src) for ns, fid, _rev, src in (st.store.list_flows(tenant, namespace, prefix=allow_child)
              if delete and namespace else []) if (ns, fid) not in keep]  # fmt: skip
    if access is not None:  # every flow checked before anything is written
        for (ns, _fid), prev in previous.items():
            access.require("FLOW", "UPDATE" if prev else "CREATE", ns, tenant)
        for ns, _fid, _src in doomed:
            access.require("FLOW", "DELETE", ns, tenant)
    out = []
    for _flow, chunk in parsed:
        deployed = st.engine.deploy(chunk, tenant)
        st.forget_flow(tenant, deployed.namespace, deployed.id)
        prev = previous.get((deployed.namespace, deployed.id))
        audit_flow(
            st, tenant, deployed.namespace, deployed.id, prev[1] if prev else None, chunk, deployed.revision
        )
        out.append(
            flow_json(
                tenant, deployed.namespace, deployed.id, deployed.revision or 1, chunk, with_source=True
            )
        )
    for ns, fid, src in doomed:
        st.store.delete_flow(tenant, ns, fid)
        st.forget_flow(tenant, ns, fid)
        audit_flow(st, tenant, ns, fid, src, None)
    return out


@router.post(P + "/bulk", operation_id="bulkUpdateFlows", summary="Update from multiples yaml sources",
             openapi_extra=YAML_BODY, responses={200: {"model": list[models.FlowWithSource]}, 422: {"model": models.ErrorBody}})  # fmt: skip
async def bulk_update(
    request: Request,
    tenant: str,
    delete: bool = True,
    namespace: str | None = None,
    allowNamespaceChild: bool = False,
) -> JSONResponse:  # noqa: N803 - Kestra's parameter name
    """Create or update every flow of the body; with ``namespace`` and ``delete``, delete that namespace's other flows."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    text = await body_text(request, "flow sources")
    return JSONResponse(await blocking(_bulk, st, tenant, text, delete=delete, namespace=namespace,
                                       allow_child=allowNamespaceChild, access=access_of(request)))  # fmt: skip


@router.post(P + "/import", operation_id="importFlows", summary="Import flows (a multi-document YAML or a ZIP of YAML files)",
             openapi_extra=multipart_body(True, fileUpload={"type": "string", "format": "binary"}),
             responses={200: {"model": list[str]}, 422: {"model": models.ErrorBody}})  # fmt: skip
async def import_flows(request: Request, tenant: str, failOnError: bool = False) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("import expects a multipart form with a fileUpload part")
    form = await request.form()
    upload = form.get("fileUpload")
    if upload is None or not hasattr(upload, "read"):
        raise bad_request("the multipart part 'fileUpload' is missing")
    data = await upload.read()
    sources: list[tuple[str, str]] = []
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    if info.filename.endswith((".yml", ".yaml")) and not info.is_dir():
                        sources.append((info.filename, zf.read(info).decode("utf-8", "replace")))
        except zipfile.BadZipFile:
            raise bad_request("fileUpload is not a valid ZIP archive") from None
    else:
        from roost.flow.yaml import _split_documents

        sources = [
            (str(i), chunk) for i, (_o, chunk) in enumerate(_split_documents(data.decode("utf-8", "replace")))
        ]

    access = access_of(request)

    def run() -> list[str]:
        failed = []
        for _name, text in sources:  # every flow checked before anything is written
            doc = _document(text)
            ns, fid = doc.get("namespace"), doc.get("id")
            if isinstance(ns, str) and isinstance(fid, str):
                access.require(
                    "FLOW", "UPDATE" if st.store.get_flow(tenant, ns, fid) else "CREATE", ns, tenant
                )
        for name, text in sources:
            try:
                doc = _document(text)
                prev = st.store.get_flow(tenant, doc["namespace"], doc["id"]) if _named(doc) else None
                deployed = st.engine.deploy(text, tenant)
                st.forget_flow(tenant, deployed.namespace, deployed.id)
                audit_flow(
                    st,
                    tenant,
                    deployed.namespace,
                    deployed.id,
                    prev[1] if prev else None,
                    text,
                    deployed.revision,
                )
            except FlowInvalid as exc:
                if failOnError:
                    raise unprocessable(f"{name}: {exc}", violations=violations_body(exc)) from None
                failed.append(name)
        return failed

    return JSONResponse(await blocking(run))


def _document(text: str) -> dict[str, Any]:
    try:
        data = load_document(text).data
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}


def _named(doc: dict[str, Any]) -> bool:
    return isinstance(doc.get("namespace"), str) and isinstance(doc.get("id"), str)


def _set_key(source: str, key: str, value: Any) -> str:
    """Set a top-level key of a flow's YAML, keeping comments and layout (ruamel round trip)."""
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    data = y.load(source)
    if not isinstance(data, dict):
        return source
    data[key] = value
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _toggle(st: ServerState, tenant: str, items: list[models.IdWithNamespace], disabled: bool,
            access: Access) -> int:  # fmt: skip
    for item in items:
        access.require("FLOW", "UPDATE", item.namespace, tenant)
    count = 0
    for item in items:
        found = st.store.get_flow(tenant, item.namespace, item.id)
        if found is None:
            continue
        source = _set_key(found[1], "disabled", disabled)
        deployed = st.engine.deploy(source, tenant)
        st.forget_flow(tenant, item.namespace, item.id)
        audit_flow(st, tenant, item.namespace, item.id, found[1], source, deployed.revision)
        count += 1
    return count


@router.post(P + "/enable/by-ids", operation_id="enableFlowsByIds", summary="Enable flows by their ids",
             responses={200: {"model": models.BulkResponse}})  # fmt: skip
def enable_by_ids(request: Request, tenant: str, body: list[models.IdWithNamespace]) -> JSONResponse:
    st = state_of(request)
    return JSONResponse({"count": _toggle(st, st.tenant(tenant), body, False, access_of(request))})


@router.post(P + "/disable/by-ids", operation_id="disableFlowsByIds", summary="Disable flows by their ids",
             responses={200: {"model": models.BulkResponse}})  # fmt: skip
def disable_by_ids(request: Request, tenant: str, body: list[models.IdWithNamespace]) -> JSONResponse:
    st = state_of(request)
    return JSONResponse({"count": _toggle(st, st.tenant(tenant), body, True, access_of(request))})


@router.delete(P + "/delete/by-ids", operation_id="deleteFlowsByIds", summary="Delete flows by their ids",
               responses={200: {"model": models.BulkResponse}})  # fmt: skip
def delete_by_ids(request: Request, tenant: str, body: list[models.IdWithNamespace]) -> JSONResponse:
    st = state_of(request)
    return JSONResponse({"count": _delete_flows(st, st.tenant(tenant), body, access_of(request))})


Q = Annotated[str | None, Query(description="Deprecated: use filters[q][EQUALS]")]
NS = Annotated[str | None, Query(description="Deprecated: use filters[namespace][PREFIX]")]


def _ids(flows: list[dict[str, Any]]) -> list[models.IdWithNamespace]:
    return [models.IdWithNamespace(namespace=f["namespace"], id=f["id"]) for f in flows]


def _delete_flows(st: ServerState, tenant: str, items: list[models.IdWithNamespace], access: Access) -> int:
    for item in items:  # all checked before any is deleted
        access.require("FLOW", "DELETE", item.namespace, tenant)
    count = 0
    for item in items:
        st.forget_flow(tenant, item.namespace, item.id)
        found = st.store.get_flow(tenant, item.namespace, item.id)
        if found is not None and st.store.delete_flow(tenant, item.namespace, item.id):
            audit_flow(st, tenant, item.namespace, item.id, found[1], None)
            count += 1
    return count


@router.delete(P + "/delete/by-query", operation_id="deleteFlowsByQuery", summary="Delete flows returned by the query parameters.",
               responses={200: {"model": models.BulkResponse}})  # fmt: skip
def delete_by_query(request: Request, tenant: str, q: Q = None, namespace: NS = None) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return JSONResponse(
        {
            "count": _delete_flows(
                st, tenant, _ids(_matching(st, tenant, request, q, namespace)), access_of(request)
            )
        }
    )


@router.post(P + "/enable/by-query", operation_id="enableFlowsByQuery", summary="Enable flows returned by the query parameters.",
             responses={200: {"model": models.BulkResponse}})  # fmt: skip
def enable_by_query(request: Request, tenant: str, q: Q = None, namespace: NS = None) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return JSONResponse(
        {
            "count": _toggle(
                st, tenant, _ids(_matching(st, tenant, request, q, namespace)), False, access_of(request)
            )
        }
    )


@router.post(P + "/disable/by-query", operation_id="disableFlowsByQuery", summary="Disable flows returned by the query parameters.",
             responses={200: {"model": models.BulkResponse}})  # fmt: skip
def disable_by_query(request: Request, tenant: str, q: Q = None, namespace: NS = None) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return JSONResponse(
        {
            "count": _toggle(
                st, tenant, _ids(_matching(st, tenant, request, q, namespace)), True, access_of(request)
            )
        }
    )


ZIP: dict[int | str, dict[str, Any]] = {200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
             "description": "A ZIP of the flows' YAML sources, one <namespace>.<id>.yml each"}}  # fmt: skip


def _zip(st: ServerState, tenant: str, items: list[models.IdWithNamespace]) -> Response:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in items:
            found = st.store.get_flow(tenant, item.namespace, item.id)
            if found is not None:
                zf.writestr(f"{item.namespace}.{item.id}.yml", found[1])
    return Response(buf.getvalue(), media_type="application/octet-stream",
                    headers={"Content-Disposition": 'attachment; filename="flows.zip"'})  # fmt: skip


@router.post(P + "/export/by-ids", operation_id="exportFlowsByIds", summary="Export flows as a ZIP archive of yaml sources.",
             responses=ZIP)  # fmt: skip
def export_by_ids(request: Request, tenant: str, body: list[models.IdWithNamespace]) -> Response:
    st = state_of(request)
    return _zip(st, st.tenant(tenant), body)


@router.get(P + "/export/by-query", operation_id="exportFlowsByQuery", summary="Export flows as a ZIP archive of yaml sources.",
            responses=ZIP)  # fmt: skip
def export_by_query(request: Request, tenant: str, q: Q = None, namespace: NS = None) -> Response:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return _zip(st, tenant, _ids(_matching(st, tenant, request, q, namespace)))


@router.get(P + "/{namespace}", operation_id="listFlowsByNamespace", summary="Retrieve all flows from a given namespace",
            responses={200: {"model": list[models.Flow]}})  # fmt: skip
def list_by_namespace(request: Request, tenant: str, namespace: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    return JSONResponse(
        [flow_json(tenant, ns, fid, rev, src) for ns, fid, rev, src in st.store.list_flows(tenant, namespace)]
    )


@router.post(P + "/{namespace}", operation_id="updateFlowsInNamespace", summary="Update a complete namespace from yaml source",
             openapi_extra=YAML_BODY, responses={200: {"model": list[models.FlowWithSource]}, 422: {"model": models.ErrorBody}})  # fmt: skip
async def update_namespace(request: Request, tenant: str, namespace: str, delete: bool = True,
                           override: bool = False) -> JSONResponse:  # fmt: skip
    """Create or update the namespace's flows from a multi-document body; ``delete`` removes the ones not in it."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    text = await body_text(request, "flow sources")
    return JSONResponse(await blocking(_bulk, st, tenant, text, delete=delete, namespace=namespace, allow_child=False,
                                       override=override, access=access_of(request)))  # fmt: skip


@router.get(P + "/{namespace}/{id}", operation_id="getFlow", summary="Get a flow",
            responses={200: {"model": models.FlowWithSource}})  # fmt: skip
def get_flow(
    request: Request,
    tenant: str,
    namespace: str,
    id: str,
    source: bool = False,
    revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    allowDeleted: bool = False,
) -> JSONResponse:  # noqa: N803
    st = state_of(request)
    tenant = st.tenant(tenant)
    found = st.store.get_flow(
        tenant, namespace, id, revision, allow_deleted=allowDeleted or revision is not None
    )
    if found is None:
        raise not_found(f"flow {namespace}.{id} not found" + (f" at revision {revision}" if revision else ""))
    rev, src = found
    deleted = False
    if allowDeleted and revision is None:
        deleted = st.store.get_flow(tenant, namespace, id) is None
    return JSONResponse(flow_json(tenant, namespace, id, rev, src, with_source=source, deleted=deleted))


@router.put(P + "/{namespace}/{id}", operation_id="updateFlow", summary="Update a flow", openapi_extra=YAML_BODY,
            responses={200: {"model": models.FlowWithSource}, 422: {"model": models.ErrorBody}})  # fmt: skip
async def update_flow(request: Request, tenant: str, namespace: str, id: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    source = await body_text(request, "flow source")
    return JSONResponse(await blocking(_deploy, st, tenant, source, expect_exists=True, namespace=namespace, flow_id=id,
                                       access=access_of(request)))  # fmt: skip


@router.delete(P + "/{namespace}/{id}", operation_id="deleteFlow", summary="Delete a flow", status_code=204,
               responses={204: {"description": "Deleted"}})  # fmt: skip
def delete_flow(request: Request, tenant: str, namespace: str, id: str) -> Response:
    st = state_of(request)
    tenant = st.tenant(tenant)
    st.forget_flow(tenant, namespace, id)
    found = st.store.get_flow(tenant, namespace, id)
    if found is None or not st.store.delete_flow(tenant, namespace, id):
        raise not_found(f"flow {namespace}.{id} not found")
    audit_flow(st, tenant, namespace, id, found[1], None)
    return Response(status_code=204)


@router.get(P + "/{namespace}/{id}/revisions", operation_id="listFlowRevisions", summary="Get revisions for a flow",
            responses={200: {"model": list[models.FlowWithSource]}})  # fmt: skip
def revisions(request: Request, tenant: str, namespace: str, id: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    revs = st.store.flow_revisions(tenant, namespace, id)
    if not revs:
        raise not_found(f"flow {namespace}.{id} not found")
    return JSONResponse(
        [flow_json(tenant, namespace, id, rev, src, with_source=True, updated=upd) for rev, src, upd in revs]
    )


__all__ = ["ApiError", "Violation", "flow_json", "router"]
