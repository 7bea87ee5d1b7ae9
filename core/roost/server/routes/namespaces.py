"""Namespaces, namespace files (with revisions and folders) and the KV store."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from roost.flow.model import NAMESPACE
from roost.server import models
from roost.server.access import access_of
from roost.server.errors import bad_request, conflict, not_found
from roost.server.filters import match_text, page_slice, parse_filters
from roost.server.routes.common import TENANT_SCOPED, TEXT_BODY, blocking, body_text, multipart_body, state_of
from roost.server.routing import SegmentRoute
from roost.server.state import ServerState
from roost.store.keys import InvalidKey, is_kv_key, kv_key

router = APIRouter(responses=models.ERRORS, dependencies=TENANT_SCOPED, route_class=SegmentRoute)
P = "/api/v1/{tenant}/namespaces"
Page = Annotated[int, Query(ge=1, le=100000)]
Size = Annotated[int, Query(ge=1, le=10000)]
_NS = re.compile(NAMESPACE)

# Empty folders: files imply their folders; a folder created empty is remembered here.
_dirs_meta = sa.MetaData()
namespace_dirs = sa.Table(
    "namespace_directories", _dirs_meta,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(150), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip


def install_tables(store: Any) -> None:
    namespace_dirs.create(store.engine, checkfirst=True)


def _ns(namespace: str) -> str:
    if not _NS.fullmatch(namespace) or len(namespace) > 150:
        raise bad_request(f"invalid namespace {namespace!r}: lower-case letters, digits, '.', '_' and '-'")
    return namespace


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# -- namespaces ----------------------------------------------------------------------------------------------
def _all_namespaces(st: ServerState, tenant: str) -> list[str]:
    names = set(st.store.namespaces(tenant))
    with st.store.engine.connect() as conn:
        names |= {
            r[0]
            for r in conn.execute(
                sa.select(namespace_dirs.c.namespace).where(namespace_dirs.c.tenant == tenant).distinct()
            )
        }
    with_parents: set[str] = set()
    for name in names:
        parts = name.split(".")
        with_parents.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(with_parents)


@router.get(P + "/search", operation_id="searchNamespaces", summary="Search for namespaces", tags=["Namespaces"],
            responses={200: {"model": models.Paged[models.Namespace]}})  # fmt: skip
def search_namespaces(request: Request, tenant: str, q: str | None = None, page: Page = 1, size: Size = 10,
                      sort: Annotated[list[str] | None, Query()] = None, existing: bool = False) -> JSONResponse:  # fmt: skip
    st = state_of(request)
    tenant = st.tenant(tenant)
    scope = access_of(request).scope("NAMESPACE", "READ", tenant)
    names = [n for n in _all_namespaces(st, tenant) if scope.allows(n)]
    if existing:
        direct = set(st.store.namespaces(tenant))
        names = [n for n in names if n in direct]
    if q:
        names = [n for n in names if q.lower() in n.lower()]
    for flt in parse_filters(request.query_params.multi_items(), ("q", "existingOnly", "namespace")):
        if flt.field in ("q", "namespace"):
            names = [
                n
                for n in names
                if match_text(n, flt.op if flt.field == "namespace" else "CONTAINS", flt.value)
            ]
    if sort and sort[0].endswith(":desc"):
        names.reverse()
    return JSONResponse(
        {"results": [{"id": n, "deleted": False} for n in page_slice(names, page, size)], "total": len(names)}
    )


@router.get(P + "/{id}", operation_id="getNamespace", summary="Get a namespace", tags=["Namespaces"],
            responses={200: {"model": models.Namespace}})  # fmt: skip
def get_namespace(request: Request, tenant: str, id: str) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    if id not in _all_namespaces(st, tenant):
        raise not_found(f"namespace {id} not found (a namespace exists once a flow, file or key is in it)")
    return JSONResponse({"id": id, "deleted": False})


# -- namespace files -----------------------------------------------------------------------------------------
F = P + "/{namespace}/files"


def _clean(path: str | None) -> str:
    from roost.store.db import SqlNamespaceFiles

    try:
        return SqlNamespaceFiles.clean(path or "")
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def _dirs(st: ServerState, tenant: str, namespace: str) -> list[str]:
    with st.store.engine.connect() as conn:
        rows = conn.execute(sa.select(namespace_dirs.c.path).where(namespace_dirs.c.tenant == tenant,
                                                                    namespace_dirs.c.namespace == namespace)).all()  # fmt: skip
    return [r.path for r in rows]


def _is_dir(st: ServerState, tenant: str, namespace: str, path: str, files: list[str]) -> bool:
    if path == "":
        return True
    return any(p.startswith(path + "/") for p in files) or any(
        d == path or d.startswith(path + "/") for d in _dirs(st, tenant, namespace)
    )


def _file_attrs(name: str, stat: dict[str, Any]) -> dict[str, Any]:
    ms = int(stat["created"] * 1000)
    return {
        "fileName": name,
        "type": "File",
        "size": stat["size"],
        "lastModifiedTime": ms,
        "creationTime": ms,
    }


def _dir_attrs(name: str) -> dict[str, Any]:
    return {"fileName": name, "type": "Directory", "size": 0}


AUDIT_TEXT_LIMIT = 65_536  # text files up to this size are recorded whole in the audit log, others by digest


def file_state(path: str, data: bytes | None) -> dict[str, Any] | None:
    """A namespace file as the audit log records it: its path, size and digest, and its text when small."""
    if data is None:
        return None
    import hashlib

    out: dict[str, Any] = {"path": "/" + path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if len(data) <= AUDIT_TEXT_LIMIT:
        try:
            out["content"] = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return out


def audit_file(
    st: ServerState, tenant: str, namespace: str, path: str, kind: str, before: Any, after: Any
) -> None:
    st.audit.record(kind, "NAMESPACE_FILE", tenant=tenant, detail={"id": f"{namespace}:/{path}", "namespace": namespace,
                                                                  "path": "/" + path}, before=before, after=after)  # fmt: skip


@router.get(F + "/directory", operation_id="listNamespaceDirectoryFiles", summary="List a folder", tags=["Files"],
            responses={200: {"model": list[models.FileAttributes]}})  # fmt: skip
def list_directory(request: Request, tenant: str, namespace: str, path: str | None = None) -> JSONResponse:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    folder = _clean(path)
    nsfiles = st.engine.runtime(tenant).namespace_files
    files = nsfiles.list(namespace)
    if not _is_dir(st, tenant, namespace, folder, files):
        if folder in files:
            raise bad_request(f"{path} is a file, not a folder")
        raise not_found(f"no folder {path} in namespace {namespace}")
    prefix = folder + "/" if folder else ""
    children: dict[str, dict[str, Any]] = {}
    for p in [*files, *(d + "/" for d in _dirs(st, tenant, namespace))]:
        if not p.startswith(prefix) or p == prefix:
            continue
        rest = p[len(prefix) :]
        head, sep, _tail = rest.partition("/")
        if sep:
            children.setdefault(head, _dir_attrs(head))
        elif head not in children:
            stat = nsfiles.stat(namespace, prefix + head)
            if stat is not None:
                children[head] = _file_attrs(head, stat)
    return JSONResponse(sorted(children.values(), key=lambda a: (a["type"] != "Directory", a["fileName"])))


@router.post(F + "/directory", operation_id="createNamespaceDirectory", summary="Create a folder", tags=["Files"],
             status_code=200, response_class=Response, responses={200: {"description": "Created"}, 409: {"model": models.ErrorBody}})  # fmt: skip
def create_directory(request: Request, tenant: str, namespace: str, path: str | None = None) -> Response:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    folder = _clean(path)
    if not folder:
        raise bad_request("give the folder to create as ?path=/folder")
    if folder in st.engine.runtime(tenant).namespace_files.list(namespace):
        raise conflict(f"{path} is a file")
    with st.store.write_lock, st.store.engine.begin() as conn:
        conn.execute(namespace_dirs.delete().where(namespace_dirs.c.tenant == tenant, namespace_dirs.c.namespace == namespace,
                                                   namespace_dirs.c.path == folder))  # fmt: skip
        conn.execute(
            namespace_dirs.insert().values(
                tenant=tenant, namespace=namespace, path=folder, created=time.time()
            )
        )
    audit_file(st, tenant, namespace, folder, "CREATE", None, {"path": "/" + folder, "type": "Directory"})
    return Response(status_code=200)


@router.get(F + "/stats", operation_id="getFileMetadatas", summary="Stats of a file or folder", tags=["Files"],
            responses={200: {"model": models.FileAttributes}})  # fmt: skip
def stats(request: Request, tenant: str, namespace: str, path: str | None = None) -> JSONResponse:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    target = _clean(path)
    nsfiles = st.engine.runtime(tenant).namespace_files
    stat = nsfiles.stat(namespace, target) if target else None
    if stat is not None:
        return JSONResponse(_file_attrs(target.rsplit("/", 1)[-1], stat))
    if _is_dir(st, tenant, namespace, target, nsfiles.list(namespace)):
        return JSONResponse(_dir_attrs(target.rsplit("/", 1)[-1] if target else ""))
    raise not_found(f"no file or folder {path} in namespace {namespace}")


@router.get(F + "/revisions", operation_id="getFileRevisions", summary="Revisions of a file", tags=["Files"],
            responses={200: {"model": list[models.FileRevision]}})  # fmt: skip
def file_revisions(request: Request, tenant: str, namespace: str, path: str | None = None) -> JSONResponse:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    revs = st.engine.runtime(tenant).namespace_files.revisions(namespace, _clean(path))
    if not revs:
        raise not_found(f"no file {path} in namespace {namespace}")
    return JSONResponse([{"revision": r} for r in revs])


@router.get(F + "/export", operation_id="exportNamespaceFiles", summary="Export namespace files as a ZIP", tags=["Files"],
            responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "A ZIP of the namespace's files (latest revisions), by path"}})  # fmt: skip
def export_files(request: Request, tenant: str, namespace: str) -> Response:
    import io
    import zipfile

    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    nsfiles = st.engine.runtime(tenant).namespace_files
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in nsfiles.list(namespace):
            data = nsfiles.read(namespace, path)
            if data is not None:
                zf.writestr(path, data)
        for folder in _dirs(st, tenant, namespace):  # empty folders too
            zf.writestr(folder.rstrip("/") + "/", b"")
    filename = f"{namespace}_files.zip"
    return Response(buf.getvalue(), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip


@router.get(F + "/search", operation_id="searchNamespaceFiles", summary="Files whose path contains q", tags=["Files"],
            responses={200: {"model": list[str]}})  # fmt: skip
def search_files(request: Request, tenant: str, namespace: str, q: str = "") -> JSONResponse:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    files = st.engine.runtime(tenant).namespace_files.list(namespace)
    return JSONResponse(["/" + p for p in files if q.lower() in p.lower()])


@router.get(F, operation_id="getFileContent", summary="Content of a namespace file (latest or a revision)", tags=["Files"],
            responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The file"}})  # fmt: skip
def get_file(request: Request, tenant: str, namespace: str, path: str,
             revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:  # fmt: skip
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    target = _clean(path)
    if not target:
        raise bad_request("give the file as ?path=/file")
    data = st.engine.runtime(tenant).namespace_files.read(namespace, target, revision)
    if data is None:
        raise not_found(
            f"no file {path} in namespace {namespace}" + (f" at revision {revision}" if revision else "")
        )
    return Response(data, media_type="application/octet-stream")


@router.post(F, operation_id="createNamespaceFile", summary="Upload a file (multipart part fileContent)", tags=["Files"],
             status_code=200, response_class=Response, openapi_extra=multipart_body(True, fileContent={"type": "string", "format": "binary"}),
             responses={200: {"description": "Stored"}, 409: {"model": models.ErrorBody}})  # fmt: skip
async def upload(request: Request, tenant: str, namespace: str, path: str) -> Response:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    target = _clean(path)
    if not target:
        raise bad_request("give the file as ?path=/file")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("upload the file as a multipart form with a fileContent part")
    form = await request.form()
    part = form.get("fileContent")
    if part is None:
        raise bad_request("the multipart part 'fileContent' is missing")
    data = await part.read() if hasattr(part, "read") else str(part).encode()

    def store() -> None:
        nsfiles = st.engine.runtime(tenant).namespace_files
        if _is_dir(st, tenant, namespace, target, nsfiles.list(namespace)):
            raise conflict(f"{path} is a folder")
        previous = nsfiles.read(namespace, target)
        if previous is not None:  # the route lets CREATE or UPDATE through: replacing a file is an update
            access_of(request).require("NAMESPACE", "UPDATE", namespace, tenant)
        else:
            access_of(request).require("NAMESPACE", "CREATE", namespace, tenant)
        nsfiles.write(namespace, target, data)
        audit_file(st, tenant, namespace, target, "UPDATE" if previous is not None else "CREATE",
                   file_state(target, previous), file_state(target, data))  # fmt: skip

    await blocking(store)
    return Response(status_code=200)


@router.put(F, operation_id="moveFileDirectory", summary="Move a file or folder", tags=["Files"], status_code=200, response_class=Response,
            responses={200: {"description": "Moved"}, 409: {"model": models.ErrorBody}})  # fmt: skip
def move(
    request: Request, tenant: str, namespace: str, from_: Annotated[str, Query(alias="from")], to: str
) -> Response:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    src, dst = _clean(from_), _clean(to)
    if not src or not dst:
        raise bad_request("from and to must name a file or folder")
    if dst == src or dst.startswith(src + "/"):
        raise bad_request(f"cannot move {from_} into itself")
    nsfiles = st.engine.runtime(tenant).namespace_files
    files = nsfiles.list(namespace)
    moves = [(p, dst + p[len(src) :]) for p in files if p == src or p.startswith(src + "/")]
    dir_moves = [d for d in _dirs(st, tenant, namespace) if d == src or d.startswith(src + "/")]
    if not moves and not dir_moves:
        raise not_found(f"no file or folder {from_} in namespace {namespace}")
    if any(new in files or _is_dir(st, tenant, namespace, new, files) for _old, new in moves) or dst in files:
        raise conflict(f"{to} already exists")
    for old, new in moves:
        data = nsfiles.read(namespace, old)
        nsfiles.write(namespace, new, data or b"")
    for old, _new in moves:
        nsfiles.delete(namespace, old)
    with st.store.write_lock, st.store.engine.begin() as conn:
        for d in dir_moves:
            conn.execute(namespace_dirs.delete().where(namespace_dirs.c.tenant == tenant, namespace_dirs.c.namespace == namespace,
                                                       namespace_dirs.c.path == d))  # fmt: skip
            conn.execute(namespace_dirs.insert().values(tenant=tenant, namespace=namespace, path=dst + d[len(src):],
                                                        created=time.time()))  # fmt: skip
    audit_file(st, tenant, namespace, src, "UPDATE", {"path": "/" + src, "files": [o for o, _n in moves]},
               {"path": "/" + dst, "files": [n for _o, n in moves]})  # fmt: skip
    return Response(status_code=200)


@router.delete(F, operation_id="deleteFileDirectory", summary="Delete a file or folder", tags=["Files"], status_code=200, response_class=Response,
               responses={200: {"description": "Deleted"}})  # fmt: skip
def delete_file(request: Request, tenant: str, namespace: str, path: str) -> Response:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    target = _clean(path)
    if not target:
        raise bad_request("refusing to delete the namespace's root folder: name a file or folder")
    nsfiles = st.engine.runtime(tenant).namespace_files
    gone = [p for p in nsfiles.list(namespace) if p == target or p.startswith(target + "/")]
    before = file_state(target, nsfiles.read(namespace, target)) if gone == [target] else {"path": "/" + target,
                                                                                           "files": ["/" + p for p in gone]}  # fmt: skip
    count = nsfiles.delete(namespace, target)
    with st.store.write_lock, st.store.engine.begin() as conn:
        count += conn.execute(namespace_dirs.delete().where(
            namespace_dirs.c.tenant == tenant, namespace_dirs.c.namespace == namespace,
            sa.or_(namespace_dirs.c.path == target, namespace_dirs.c.path.startswith(target + "/", autoescape=True)))).rowcount  # fmt: skip
    if not count:
        raise not_found(f"no file or folder {path} in namespace {namespace}")
    audit_file(st, tenant, namespace, target, "DELETE", before, None)
    return Response(status_code=200)


# -- KV ------------------------------------------------------------------------------------------------------
K = P + "/{namespace}/kv"


def _key(key: str) -> str:
    try:
        return kv_key(key)
    except InvalidKey as exc:
        raise bad_request(str(exc)) from None


def kv_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, dict | list) or value is None:
        return "JSON"
    return "STRING"


def audit_kv(
    st: ServerState, tenant: str, namespace: str, key: str, kind: str, before: Any, after: Any
) -> None:
    """A KV change: the value before and after, masked when the key's name says secret (``api_token``...)."""
    from roost.server.audit import redact

    def state(e: Any) -> Any:
        if e is None:
            return None
        return {"key": key, "type": kv_type(e["value"]), "value": redact({key: e["value"]})[key],
                "expires": _iso(e.get("expires"))}  # fmt: skip

    st.audit.record(kind, "KV_STORE", tenant=tenant, detail={"id": f"{namespace}:{key}", "namespace": namespace, "key": key},
                    before=state(before), after=state(after))  # fmt: skip


def _entry(namespace: str, e: dict[str, Any]) -> dict[str, Any]:
    out = {"namespace": namespace, "key": e["key"], "updateDate": _iso(e.get("updated")), "creationDate": _iso(e.get("updated")),
           "expirationDate": _iso(e.get("expires")), "description": e.get("description")}  # fmt: skip
    return {k: v for k, v in out.items() if v is not None}


@router.get(
    K,
    operation_id="listKeys",
    summary="Keys of a namespace",
    tags=["KV"],
    responses={200: {"model": list[models.KVEntry]}},
)
def list_keys(request: Request, tenant: str, namespace: str) -> JSONResponse:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    kv = st.engine.runtime(tenant).kv
    entries = [kv.entry(namespace, k) for k in kv.keys(namespace)]
    return JSONResponse([_entry(namespace, e) for e in entries if e is not None])


@router.get(K + "/inheritance", operation_id="listKeysWithInheritence", summary="Keys inherited from parent namespaces",
            tags=["KV"], responses={200: {"model": list[models.KVEntry]}})  # fmt: skip
def list_inherited_keys(request: Request, tenant: str, namespace: str) -> JSONResponse:
    """The keys of the parent namespaces (not the namespace's own), nearest parent first; a key
    defined at several levels is listed once, from the nearest parent (as Kestra)."""
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    kv = st.engine.runtime(tenant).kv
    parts = namespace.split(".")
    seen: set[str] = set()
    out = []
    for i in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:i])
        for key in kv.keys(parent):
            entry = kv.entry(parent, key)
            if entry is not None and key not in seen:
                seen.add(key)
                out.append(_entry(parent, entry))
    return JSONResponse(out)


@router.delete(K, operation_id="deleteKeyValues", summary="Delete several keys", tags=["KV"],
               responses={200: {"model": models.KeysBody}})  # fmt: skip
def delete_keys(request: Request, tenant: str, namespace: str, body: models.KeysBody) -> JSONResponse:
    st = state_of(request)
    tenant, namespace = st.tenant(tenant), _ns(namespace)
    kv = st.engine.runtime(tenant).kv
    deleted = []
    for k in body.keys:
        entry = kv.entry(namespace, k) if is_kv_key(k) else None
        if entry is not None and kv.delete(namespace, k):
            audit_kv(st, tenant, namespace, k, "DELETE", entry, None)
            deleted.append(k)
    return JSONResponse({"keys": deleted})


@router.get(
    K + "/{key}",
    operation_id="getKeyValue",
    summary="Value of a key",
    tags=["KV"],
    responses={200: {"model": models.KvDetail}},
)
def get_key(request: Request, tenant: str, namespace: str, key: str) -> JSONResponse:
    st = state_of(request)
    tenant, namespace, key = st.tenant(tenant), _ns(namespace), _key(key)
    entry = st.engine.runtime(tenant).kv.entry(namespace, key)
    if entry is None:
        raise not_found(f"no key {key} in namespace {namespace}")
    return JSONResponse(
        {"type": kv_type(entry["value"]), "value": entry["value"], "updated": _iso(entry.get("updated"))}
    )


@router.put(K + "/{key}", operation_id="setKeyValue", summary="Set a key (the body: JSON, or else text)", tags=["KV"],
            status_code=200, response_class=Response, openapi_extra=TEXT_BODY, responses={200: {"description": "Stored"}})  # fmt: skip
async def put_key(request: Request, tenant: str, namespace: str, key: str) -> Response:
    """The body is parsed as JSON when it is JSON (number, boolean, object...), kept as a string otherwise.
    A ``ttl`` header (ISO-8601 duration) makes the key expire."""
    st = state_of(request)
    tenant, namespace, key = st.tenant(tenant), _ns(namespace), _key(key)
    text = await body_text(request, "value")
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    ttl = None
    raw_ttl = request.headers.get("ttl")
    if raw_ttl:
        from pydantic import TypeAdapter, ValidationError

        try:
            ttl = TypeAdapter(timedelta).validate_python(raw_ttl).total_seconds()
        except ValidationError:
            raise bad_request(f"ttl header {raw_ttl!r} is not an ISO-8601 duration such as PT1H") from None
        if ttl <= 0:
            raise bad_request("ttl must be positive")
    kv = st.engine.runtime(tenant).kv

    def put() -> None:
        previous = kv.entry(namespace, key)
        access_of(request).require(
            "KVSTORE", "UPDATE" if previous is not None else "CREATE", namespace, tenant
        )
        kv.put(namespace, key, value, ttl)
        audit_kv(
            st,
            tenant,
            namespace,
            key,
            "UPDATE" if previous is not None else "CREATE",
            previous,
            kv.entry(namespace, key),
        )

    await blocking(put)
    return Response(status_code=200)


@router.delete(
    K + "/{key}",
    operation_id="deleteKeyValue",
    summary="Delete a key",
    tags=["KV"],
    responses={200: {"model": bool}},
)
def delete_key(request: Request, tenant: str, namespace: str, key: str) -> JSONResponse:
    st = state_of(request)
    tenant, namespace, key = st.tenant(tenant), _ns(namespace), _key(key)
    kv = st.engine.runtime(tenant).kv
    entry = kv.entry(namespace, key)
    deleted = bool(kv.delete(namespace, key))
    if deleted:
        audit_kv(st, tenant, namespace, key, "DELETE", entry, None)
    return JSONResponse(deleted)


@router.get("/api/v1/{tenant}/kv", operation_id="listAllKeys", summary="Keys of every namespace", tags=["KV"],
            responses={200: {"model": models.Paged[models.KVEntry]}})  # fmt: skip
def list_all_keys(request: Request, tenant: str, page: Page = 1, size: Size = 10) -> JSONResponse:
    st = state_of(request)
    tenant = st.tenant(tenant)
    filters = parse_filters(request.query_params.multi_items(), ("q", "namespace", "updated"))
    kv = st.engine.runtime(tenant).kv
    scope = access_of(request).scope("KVSTORE", "READ", tenant)
    entries = []
    for namespace in st.store.namespaces(tenant):
        if not scope.allows(namespace):
            continue
        for k in kv.keys(namespace):
            e = kv.entry(namespace, k)
            if e is not None:
                entries.append(_entry(namespace, e))
    for flt in filters:
        if flt.field == "namespace":
            entries = [e for e in entries if match_text(e["namespace"], flt.op, flt.value)]
        elif flt.field == "q":
            entries = [e for e in entries if match_text(e["key"], "CONTAINS", flt.value)]
    return JSONResponse({"results": page_slice(entries, page, size), "total": len(entries)})
