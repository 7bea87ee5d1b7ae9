"""Plugin defaults of namespaces and of the instance: versioned YAML documents.

Kestra's operations (``plugindefaults/import``, ``plugindefaults/export``, ``inherited-plugindefaults``)
plus Roost's own to read a scope, write it and browse its revisions. Every write is validated as a
flow's ``pluginDefaults`` are (a value naming a property no matching type has is refused with its
path and line) and becomes a new revision; the engine uses the latest revision from then on.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse, Response

from roost.plugin_defaults import INSTANCE, DefaultsInvalid, dump_defaults, parse_defaults
from roost.server import models
from roost.server.errors import bad_request, not_found, unprocessable
from roost.server.routes.common import YAML_BODY, blocking, body_text, multipart_body, state_of
from roost.server.routing import SegmentRoute
from roost.server.state import ServerState

router = APIRouter(tags=["Plugin defaults"], responses=models.ERRORS, route_class=SegmentRoute)
NS = "/api/v1/{tenant}/namespaces/{id}"
INST = "/api/v1/instance/plugindefaults"
Namespace = Annotated[str, Path(description="The namespace id")]
MAX_DOCUMENT = 1024 * 1024


class PluginDefaultsRevision(models.Open):
    revision: int
    origin: str
    author: str | None = None
    created: str
    source: str | None = None


class PluginDefaultsDocument(models.Open):
    namespace: str
    revision: int | None = None
    source: str
    pluginDefaults: list[dict[str, Any]]


class InheritedPluginDefault(models.Open):
    type: str
    forced: bool = False
    values: dict[str, Any] = {}
    namespace: str


def stored(st: ServerState) -> Any:
    """The store's versioned defaults the engine validates with (installed on a bare engine too)."""
    from roost.plugin_defaults import defaults_dir
    from roost.store.defaults import StoredDefaults

    defaults = st.engine.defaults
    if not isinstance(defaults, StoredDefaults):
        defaults = StoredDefaults(st.store)
        st.engine.defaults = defaults
        defaults.attach(
            st.engine, folder=defaults_dir(), tenants=sorted({"main", *(st.config.tenants or ())})
        )
    return defaults


def _namespace(st: ServerState, tenant: str, namespace: str) -> tuple[str, str]:
    from roost.server.routes.namespaces import _ns

    return st.tenant(tenant), _ns(namespace)


def _violations(exc: DefaultsInvalid) -> Any:
    return unprocessable(str(exc), violations=[v.as_dict() for v in exc.violations])


def document(st: ServerState, tenant: str, namespace: str) -> dict[str, Any]:
    latest = stored(st).latest(tenant, namespace)
    source = latest.source if latest is not None else ""
    try:
        items = [d.model_dump(mode="json") for d in parse_defaults(source)]
    except DefaultsInvalid:
        items = []
    return {"namespace": namespace, "revision": latest.revision if latest else None, "source": source,
            "pluginDefaults": items}  # fmt: skip


def save_defaults(st: ServerState, tenant: str, namespace: str, source: str, *, origin: str, author: str | None,
                  validate: bool = True) -> Any:  # fmt: skip
    """Store a new revision (the API's and the UI's one write path) and record it in the audit log: the
    YAML before and after; a namespace's as a NAMESPACE change, the instance's as a SETTING change."""
    before = stored(st).latest(tenant, namespace)
    revision, new = stored(st).save(tenant, namespace, source, origin=origin, author=str(author) if author else None,
                                    validate=validate)  # fmt: skip
    if new:
        instance = namespace == INSTANCE
        detail = {
            "id": "plugin-defaults" if instance else namespace,
            "pluginDefaults": True,
            "revision": revision.revision,
        }
        if not instance:
            detail["namespace"] = namespace
        st.audit.record("UPDATE" if before is not None else "CREATE", "SETTING" if instance else "NAMESPACE",
                        tenant=None if instance else tenant, detail={**detail, "permission": "PLUGIN_DEFAULTS"},
                        before=before.source if before is not None else None, after=source)  # fmt: skip
    return revision, new


def save(
    st: ServerState, tenant: str, namespace: str, source: str, *, origin: str, author: str | None
) -> dict[str, Any]:
    if len(source.encode()) > MAX_DOCUMENT:
        raise bad_request(f"a plugin-defaults document is at most {MAX_DOCUMENT} bytes")
    try:
        save_defaults(st, tenant, namespace, source, origin=origin, author=author)
    except DefaultsInvalid as exc:
        raise _violations(exc) from None
    return document(st, tenant, namespace)


def _principal(request: Request) -> str | None:
    return getattr(request.state, "principal", None)


async def _uploaded(request: Request) -> str:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("import expects a multipart form with a fileUpload part (a YAML file)")
    form = await request.form()
    part = form.get("fileUpload")
    if part is None or not hasattr(part, "read"):
        raise bad_request("the multipart part 'fileUpload' is missing")
    data = await part.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("fileUpload must be UTF-8 YAML") from None


# -- Kestra's operations -----------------------------------------------------------------------------------
@router.get(NS + "/inherited-plugindefaults", operation_id="inheritedPluginDefaults", summary="List inherited plugin defaults",
            responses={200: {"model": list[InheritedPluginDefault]}})  # fmt: skip
def inherited(request: Request, tenant: str, id: Namespace) -> JSONResponse:
    """What the namespace inherits: the instance's defaults and its parent namespaces' (not its own)."""
    st = state_of(request)
    tenant, namespace = _namespace(st, tenant, id)
    out = [{**d.model_dump(mode="json"), "namespace": scope or None}
           for scope, d in stored(st).inherited(tenant, namespace)]  # fmt: skip
    return JSONResponse([{k: v for k, v in item.items() if v is not None} for item in out])


@router.post(NS + "/plugindefaults/export", operation_id="exportPluginDefaults", summary="Export this namespace plugin defaults",
             responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                              "description": "The YAML document"}})  # fmt: skip
def export(request: Request, tenant: str, id: Namespace) -> Response:
    """The latest revision as written (``pluginDefaults: []`` when there is none), ready for Git."""
    st = state_of(request)
    tenant, namespace = _namespace(st, tenant, id)
    latest = stored(st).latest(tenant, namespace)
    body = latest.source if latest is not None and latest.source.strip() else dump_defaults([])
    return Response(body, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{namespace}.yaml"'})  # fmt: skip


@router.post(NS + "/plugindefaults/import", operation_id="importPluginDefaults", summary="Import plugin defaults in this namespace",
             openapi_extra=multipart_body(True, fileUpload={"type": "string", "format": "binary"}),
             responses={200: {"model": list[str]}, 422: {"model": models.ErrorBody}})  # fmt: skip
async def import_(request: Request, tenant: str, id: Namespace) -> JSONResponse:
    """Replace the namespace's defaults with the uploaded YAML (a new revision); answers the types it sets."""
    st = state_of(request)
    tenant, namespace = _namespace(st, tenant, id)
    source = await _uploaded(request)
    doc = await blocking(save, st, tenant, namespace, source, origin="import", author=_principal(request))
    return JSONResponse([d["type"] for d in doc["pluginDefaults"]])


# -- Roost's: read, write, revisions (namespaces and the instance) ----------------------------------------
def _get(st: ServerState, tenant: str, namespace: str) -> JSONResponse:
    return JSONResponse(document(st, tenant, namespace))


def _revisions(st: ServerState, tenant: str, namespace: str) -> JSONResponse:
    return JSONResponse([r.json() for r in reversed(stored(st).revisions(tenant, namespace))])


def _revision(st: ServerState, tenant: str, namespace: str, revision: int) -> JSONResponse:
    found = stored(st).get(tenant, namespace, revision)
    if found is None:
        raise not_found(f"no revision {revision} of the plugin defaults of "
                        + ("the instance" if namespace == INSTANCE else f"namespace {namespace}"))  # fmt: skip
    return JSONResponse(found.json(with_source=True))


Revision = Annotated[int, Path(ge=1, le=2**31 - 1)]
DOC: dict[int | str, dict[str, Any]] = {200: {"model": PluginDefaultsDocument}}
REVS: dict[int | str, dict[str, Any]] = {200: {"model": list[PluginDefaultsRevision]}}
REV: dict[int | str, dict[str, Any]] = {200: {"model": PluginDefaultsRevision}}
PUT: dict[int | str, dict[str, Any]] = {
    200: {"model": PluginDefaultsDocument},
    422: {"model": models.ErrorBody},
}


@router.get(NS + "/plugindefaults", operation_id="getPluginDefaults", summary="The namespace's plugin defaults (latest revision)",
            responses=DOC)  # fmt: skip
def get_namespace(request: Request, tenant: str, id: Namespace) -> JSONResponse:
    st = state_of(request)
    return _get(st, *_namespace(st, tenant, id))


@router.put(NS + "/plugindefaults", operation_id="setPluginDefaults", summary="Replace the namespace's plugin defaults (a new revision)",
            openapi_extra=YAML_BODY, responses=PUT)  # fmt: skip
async def put_namespace(request: Request, tenant: str, id: Namespace) -> JSONResponse:
    st = state_of(request)
    tenant, namespace = _namespace(st, tenant, id)
    source = await body_text(request, "plugin defaults")
    return JSONResponse(
        await blocking(save, st, tenant, namespace, source, origin="api", author=_principal(request))
    )


@router.get(NS + "/plugindefaults/revisions", operation_id="listPluginDefaultsRevisions",
            summary="Revisions of the namespace's plugin defaults, newest first", responses=REVS)  # fmt: skip
def namespace_revisions(request: Request, tenant: str, id: Namespace) -> JSONResponse:
    st = state_of(request)
    return _revisions(st, *_namespace(st, tenant, id))


@router.get(NS + "/plugindefaults/revisions/{revision}", operation_id="getPluginDefaultsRevision",
            summary="One revision of the namespace's plugin defaults", responses=REV)  # fmt: skip
def namespace_revision(request: Request, tenant: str, id: Namespace, revision: Revision) -> JSONResponse:
    st = state_of(request)
    return _revision(st, *_namespace(st, tenant, id), revision)


@router.get("/api/v1/{tenant}/plugindefaults/namespaces", operation_id="listPluginDefaultsNamespaces",
            summary="Namespaces that have plugin defaults", responses={200: {"model": list[str]}})  # fmt: skip
def scopes(request: Request, tenant: str) -> JSONResponse:
    from roost.server.access import access_of

    st = state_of(request)
    tenant = st.tenant(tenant)
    scope = access_of(request).scope("PLUGIN_DEFAULTS", "READ", tenant)
    return JSONResponse([s for s in stored(st).scopes(tenant) if s != INSTANCE and scope.allows(s)])


@router.get(INST, operation_id="getInstancePluginDefaults", summary="The instance's plugin defaults (latest revision)",
            responses=DOC)  # fmt: skip
def get_instance(request: Request) -> JSONResponse:
    return _get(state_of(request), "main", INSTANCE)


@router.put(INST, operation_id="setInstancePluginDefaults", summary="Replace the instance's plugin defaults (a new revision)",
            openapi_extra=YAML_BODY, responses=PUT)  # fmt: skip
async def put_instance(request: Request) -> JSONResponse:
    st = state_of(request)
    source = await body_text(request, "plugin defaults")
    return JSONResponse(
        await blocking(save, st, "main", INSTANCE, source, origin="api", author=_principal(request))
    )


@router.get(INST + "/revisions", operation_id="listInstancePluginDefaultsRevisions",
            summary="Revisions of the instance's plugin defaults, newest first", responses=REVS)  # fmt: skip
def instance_revisions(request: Request) -> JSONResponse:
    return _revisions(state_of(request), "main", INSTANCE)


@router.get(INST + "/revisions/{revision}", operation_id="getInstancePluginDefaultsRevision",
            summary="One revision of the instance's plugin defaults", responses=REV)  # fmt: skip
def instance_revision(request: Request, revision: Revision) -> JSONResponse:
    return _revision(state_of(request), "main", INSTANCE, revision)


__all__ = ["document", "router", "save", "save_defaults", "stored"]
