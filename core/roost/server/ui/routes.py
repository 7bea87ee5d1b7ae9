"""The web UI's routes: server-rendered pages under ``/ui/``, htmx partials, and the login.

Pages read through the API's own functions (:mod:`roost.server.ui.views`); edits go to the API
routes from the browser (htmx or ``fetch`` with the CSRF header), or — for forms whose result is a
page (login, Execute, a plugin default) — to UI routes here, which call the same functions the API
routes call. Every unsafe request passes :func:`csrf_check`; every edit action asks
:func:`roost.server.ui.permissions.can`.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from roost.server.access import access_of
from roost.server.errors import ApiError
from roost.server.routes.common import blocking, state_of
from roost.server.state import ServerState
from roost.server.ui import views
from roost.server.ui.graphs import flow_tree, lineage_svg, outline, topology_svg
from roost.server.ui.permissions import ANONYMOUS, can
from roost.server.ui.session import CSRF_FIELD, CSRF_HEADER, SAFE_METHODS

HERE = Path(__file__).parent
DOUBLE_SUBMIT = "roost_csrf"  # the CSRF cookie when no session holds the token (auth off)
PAGE_SIZES = (25, 50, 100, 250, 1000)
STATES = ("CREATED", "QUEUED", "RUNNING", "PAUSED", "RESTARTED", "KILLING", "SUCCESS", "WARNING", "FAILED", "KILLED",
          "CANCELLED", "RETRYING", "SKIPPED")  # fmt: skip
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["short_time"] = views.short_time
templates.filters["ts"] = lambda value: views.short_time(_iso(float(value)))
templates.filters["q"] = lambda value: quote(str(value), safe="")
templates.globals["is_file_uri"] = views.is_file_uri


def _csrf(request: Request) -> str:
    token = getattr(request.state, "csrf_token", None)
    if token:
        return str(token)
    existing = request.cookies.get(DOUBLE_SUBMIT)
    if existing and len(existing) >= 32:
        return existing
    token = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
    request.state.new_csrf = token
    return token


async def csrf_check(request: Request) -> None:
    """Unsafe UI requests carry the CSRF token (header or form field): the session's, or with no session
    the double-submit cookie's."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)  # type: ignore[assignment]
    session = getattr(request.state, "session", None)
    if session is not None:
        expected = getattr(request.state, "csrf_token", None)
    else:
        expected = request.cookies.get(DOUBLE_SUBMIT)
    if not sent or not expected or not secrets.compare_digest(str(sent), str(expected)):
        raise ApiError(403, "CSRF token missing or invalid: reload the page and try again")


router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_check)])


def principal(request: Request) -> str | None:
    st = state_of(request)
    if not st.config.auth.enabled:
        return ANONYMOUS
    return getattr(request.state, "principal", None)


def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    st = state_of(request)
    who = principal(request)
    tenant = ctx.get("tenant") or "main"
    extensions = _extensions(st)
    base = {"request": request, "tenant": tenant, "principal": who, "auth": st.config.auth.enabled,
            "csrf": _csrf(request), "can": lambda res, act, ns=None: can(who, res, act, ns, tenant),
            "banners": _banners(st, tenant, ctx) if who is not None else [],  # not before signing in
            "nav_pages": [p for p in extensions if type(p).__name__ == "UiPage"], "path": request.url.path,
            "static": "/ui/static", "copilot": st.config.ai is not None,
            "transcription": st.config.ai is not None and st.config.ai.transcription is not None}  # fmt: skip
    html = templates.get_template(template).render({**base, **ctx})
    response = HTMLResponse(html, status_code=status)
    new = getattr(request.state, "new_csrf", None)
    if new:
        secure = "; Secure" if request.url.scheme == "https" else ""
        response.headers.append(
            "set-cookie", f"{DOUBLE_SUBMIT}={new}; Path=/ui; HttpOnly; SameSite=Strict{secure}"
        )
    response.headers["Cache-Control"] = "no-store"
    return response


def _banners(st: ServerState, tenant: str, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The kill switches to announce on this page: the tenant's on every page, a namespace's (or a flow's,
    an execution's) on the pages of that namespace, flow or execution."""
    from roost.server.routes.killswitches import banners

    ex, flow = ctx.get("ex") or {}, ctx.get("flow") or {}
    namespace = ctx.get("namespace") or flow.get("namespace") or ex.get("namespace") or None
    try:
        return banners(st, tenant, namespace, flow.get("id") or ex.get("flowId"), ex.get("id"))
    except Exception:  # a store hiccup never breaks a page
        return []


def _extensions(st: ServerState) -> list[Any]:
    try:
        return list(st.engine.plugins.ui_extensions())
    except Exception:  # a broken plugin never breaks the UI
        return []


def _panels(
    st: ServerState, where: str, request: Request, tenant: str, subject: dict[str, Any]
) -> list[tuple[str, str]]:
    from roost.uikit import UiContext, UiPanel

    out = []
    for ext in _extensions(st):
        if isinstance(ext, UiPanel) and ext.where == where:
            ctx = UiContext(tenant, principal(request), dict(request.query_params), subject)
            try:
                out.append((ext.title, ext.render(ctx)))
            except Exception as exc:
                out.append((ext.title, f'<p class="error">This panel failed: {type(exc).__name__}</p>'))
    return out


def deny(request: Request) -> HTMLResponse:
    return render(request, "error.html", 403, title="Not allowed", message="You may not do this here.")


def _tenant(request: Request, tenant: str) -> str:
    return state_of(request).tenant(tenant)


def _hx_redirect(url: str) -> Response:
    return Response(status_code=204, headers={"HX-Redirect": url})


# -- entry, login -----------------------------------------------------------------------------------
@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
@router.get("/ui/")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/main/flows", status_code=307)


def _safe_next(target: str | None) -> str:
    """Only a path of this UI (never another host) after login."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/main/flows"


@router.get("/ui/login")
def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query name
    st = state_of(request)
    if not st.config.auth.enabled:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    st = state_of(request)
    sessions = request.app.state.ui_sessions
    form = await request.form()
    user, password = str(form.get("username") or ""), str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or ""))
    if not st.config.auth.enabled:
        return RedirectResponse(target, status_code=303)
    ip = request.client.host if request.client else "?"
    wait = sessions.limiter.retry_after(ip, user)
    if wait:
        return render(
            request,
            "login.html",
            429,
            next=target,
            error=f"Too many failed attempts: try again in {int(wait) + 1} s.",
        )
    from roost.server.audit import client_ip

    address = client_ip(request.scope, st.config.auth.trusted_proxies)
    if not await blocking(sessions.verify, user, password):
        sessions.limiter.failed(ip, user)
        await blocking(st.audit.login, user[:256] or "(empty user)", address, success=False, method="form")
        return render(request, "login.html", 401, next=target, error="Invalid user name or password.")
    sessions.limiter.succeeded(ip, user)
    await blocking(st.audit.login, user, address, success=True, method="form")
    response = RedirectResponse(target, status_code=303)
    response.headers.append("set-cookie", sessions.cookie_header(request.scope, sessions.issue(user)))
    return response


@router.post("/ui/logout")
def logout(request: Request) -> Response:
    sessions = request.app.state.ui_sessions
    session = getattr(request.state, "session", None)
    if session is not None:
        sessions.revoke(session)
    response = RedirectResponse("/ui/login", status_code=303)
    response.headers.append("set-cookie", sessions.cookie_header(request.scope, "", max_age=0))
    return response


# -- flows ------------------------------------------------------------------------------------------
def _page(request: Request) -> tuple[int, int]:
    try:
        page = max(1, int(request.query_params.get("page", "1")))
        size = int(request.query_params.get("size", "50"))
    except ValueError:
        page, size = 1, 50
    return page, size if size in PAGE_SIZES else 50


def _pager(request: Request, page: int, size: int, total: int) -> dict[str, Any]:
    params = {k: v for k, v in request.query_params.items() if k != "page"}
    last = max(1, -(-total // size))
    link = lambda p: "?" + urlencode({**params, "page": p})  # noqa: E731
    return {"page": page, "size": size, "total": total, "last": last, "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < last else None, "sizes": PAGE_SIZES}  # fmt: skip


@router.get("/ui/{tenant}/flows")
def flows_page(request: Request, tenant: str, q: str = "", namespace: str = "") -> HTMLResponse:
    st = state_of(request)
    tenant = _tenant(request, tenant)
    page, size = _page(request)
    rows = access_of(request).filter(views.flow_rows(st, tenant, q, namespace), "FLOW", tenant)
    shown = rows[(page - 1) * size : page * size]
    last = views.last_states(st, tenant, [(f["namespace"], f["id"]) for f in shown])
    namespaces = sorted({f["namespace"] for f in rows} | ({namespace} if namespace else set()))
    template = "flows_table.html" if request.headers.get("hx-request") else "flows.html"
    return render(request, template, tenant=tenant, flows=shown, last=last, q=q, namespace=namespace,
                  namespaces=namespaces, pager=_pager(request, page, size, len(rows)))  # fmt: skip


NEW_FLOW = """id: hello
namespace: company.team

tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: Hello World! 🚀
"""


@router.get("/ui/{tenant}/flows/new")
def new_flow(request: Request, tenant: str) -> HTMLResponse:
    tenant = _tenant(request, tenant)
    if not can(principal(request), "FLOW", "CREATE", None, tenant):
        return deny(request)
    return render(request, "flow_editor.html", tenant=tenant, flow=None, source=NEW_FLOW, new=True)


def _stored_flow(
    st: ServerState, tenant: str, namespace: str, flow_id: str, revision: int | None = None
) -> Any:
    found = st.store.get_flow(tenant, namespace, flow_id, revision, allow_deleted=revision is not None)
    if found is None:
        raise ApiError(
            404, f"flow {namespace}.{flow_id} not found" + (f" at revision {revision}" if revision else "")
        )
    return found


def _parsed(
    st: ServerState, tenant: str, namespace: str, flow_id: str, revision: int
) -> tuple[Any, str | None]:
    """The parsed flow, or the reason it no longer validates (its page still shows the source)."""
    from roost.flow.build import FlowInvalid

    try:
        return st.engine.flow(tenant, namespace, flow_id, revision), None
    except FlowInvalid as exc:
        return None, str(exc)


FLOW_TABS = ("topology", "editor", "revisions", "triggers", "executions", "execute")


@router.get("/ui/{tenant}/flows/{namespace}/{flow_id}")
async def flow_page(
    request: Request, tenant: str, namespace: str, flow_id: str, tab: str = "topology"
) -> HTMLResponse:
    from roost.server.routes.flows import flow_json

    st = state_of(request)
    tenant = _tenant(request, tenant)
    tab = tab if tab in FLOW_TABS else "topology"
    rev, source = await blocking(_stored_flow, st, tenant, namespace, flow_id)
    flow, invalid = await blocking(_parsed, st, tenant, namespace, flow_id, rev)
    data = flow_json(tenant, namespace, flow_id, rev, source)
    ctx: dict[str, Any] = {"tenant": tenant, "flow": data, "source": source, "tab": tab, "invalid": invalid,
                           "parsed": flow, "tabs": FLOW_TABS}  # fmt: skip
    if tab == "topology" and flow is not None:
        tree = flow_tree(flow)
        ctx["svg"] = topology_svg(tree, label=f"Topology of {namespace}.{flow_id}")
        ctx["outline"] = outline(tree)
    elif tab == "revisions":
        revs = await blocking(st.store.flow_revisions, tenant, namespace, flow_id)
        ctx["revisions"] = [
            {"revision": r, "updated": views.short_time(_iso(u))} for r, _s, u in reversed(revs)
        ]
        sources = {r: s for r, s, _u in revs}
        try:
            left = int(request.query_params.get("left") or (rev - 1 if rev > 1 else rev))
            right = int(request.query_params.get("right") or rev)
        except ValueError:
            left, right = rev, rev
        if left in sources and right in sources:
            ctx["diff"] = views.revision_diff(
                sources[left], sources[right], f"revision {left}", f"revision {right}"
            )
        ctx["left"], ctx["right"] = left, right
    elif tab == "triggers":
        states = {t.get("triggerId"): t for t in await blocking(st.store.list_triggers, tenant, namespace)
                  if t.get("flowId") == flow_id}  # fmt: skip
        ctx["triggers"] = [{"id": t.id, "type": t.type, "disabled": t.disabled, "state": states.get(t.id) or {},
                            "cron": getattr(t, "cron", None)} for t in (flow.triggers if flow else [])]  # fmt: skip
    elif tab == "executions":
        from roost.server.filters import Filter
        from roost.server.queries import search_executions

        found: list[dict[str, Any]] = []
        total = 0
        if access_of(request).can("EXECUTION", "READ", namespace, tenant):
            found, total = await blocking(search_executions, st.store, tenant, [Filter("namespace", "EQUALS", namespace),
                                                                              Filter("flowId", "EQUALS", flow_id)], 1, 50)  # fmt: skip
        ctx["executions"] = [views.execution_row(st.shape_execution(d, None)) for d in found]
        ctx["total"] = total
    elif tab == "execute" and flow is not None:
        ctx["fields"] = views.input_fields(flow)
        ctx["error"] = None
    ctx["panels"] = _panels(
        st, "flow", request, tenant, {"namespace": namespace, "id": flow_id, "revision": rev}
    )
    return render(request, "flow.html", **ctx)


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


@router.post("/ui/{tenant}/flows/{namespace}/{flow_id}/execute")
async def execute(request: Request, tenant: str, namespace: str, flow_id: str) -> Response:
    """Create an execution from the Execute form through the API's own ``create``."""
    from roost.server.routes.executions import create

    st = state_of(request)
    tenant = _tenant(request, tenant)
    if not can(principal(request), "EXECUTION", "CREATE", namespace, tenant):
        return deny(request)
    form = await request.form()
    flow = await blocking(st.latest_flow, tenant, namespace, flow_id)
    try:
        inputs = views.form_inputs(flow, form)
        labels = [
            lbl
            for lbl in views.parse_labels(str(form.get("labels") or ""))
            if lbl["key"] != "system.username"
        ]
        who = principal(request)
        if who is not None and st.config.auth.enabled:  # who started it, as the API labels it
            labels.append({"key": "system.username", "value": getattr(who, "id", None) or str(who)})
        ex = await blocking(create, st, tenant, namespace, flow_id, inputs, labels, None, None)
    except (ApiError, ValueError) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        errors = getattr(exc, "extra", {}).get("inputs") or {}
        return render(request, "execute_form.html", 422, tenant=tenant, flow={"namespace": namespace, "id": flow_id},
                      fields=views.input_fields(flow), error=message, field_errors=errors)  # fmt: skip
    url = f"/ui/{tenant}/executions/{quote(namespace)}/{quote(flow_id)}/{ex['id']}"
    if request.headers.get("hx-request"):
        return _hx_redirect(url)
    return RedirectResponse(url, status_code=303)


# -- executions -------------------------------------------------------------------------------------
@router.get("/ui/{tenant}/executions")
async def executions_page(request: Request, tenant: str) -> HTMLResponse:
    from roost.server.queries import search_executions

    st = state_of(request)
    tenant = _tenant(request, tenant)
    page, size = _page(request)
    params = {k: v for k, v in request.query_params.items() if v}
    error = None
    try:
        filters = views.execution_filters(params)
        readable = access_of(request).namespace_filter("EXECUTION", tenant)
        found, total = await blocking(search_executions, st.store, tenant, [*filters, readable] if readable else filters,
                                      page, size)  # fmt: skip
    except (ApiError, ValueError) as exc:
        error, found, total = (exc.message if isinstance(exc, ApiError) else str(exc)), [], 0
    rows = [views.execution_row(st.shape_execution(d, None)) for d in found]
    template = "executions_table.html" if request.headers.get("hx-request") else "executions.html"
    return render(request, template, tenant=tenant, executions=rows, params=params, states=STATES, error=error,
                  pager=_pager(request, page, size, total))  # fmt: skip


@router.get("/ui/{tenant}/executions/{execution_id}")
async def execution_by_id(request: Request, tenant: str, execution_id: str) -> RedirectResponse:
    """An execution's page from its id alone (parent and subflow links)."""
    st = state_of(request)
    tenant = _tenant(request, tenant)
    ex = await blocking(st.execution_dict, tenant, execution_id)
    return RedirectResponse(
        f"/ui/{tenant}/executions/{quote(ex['namespace'])}/{quote(ex['flowId'])}/{ex['id']}", status_code=303
    )


EXECUTION_TABS = ("gantt", "logs", "topology", "outputs", "overview")


def _replay_route(request: Request) -> bool:
    return any(getattr(r, "name", "") in ("replay", "replay_execution") or getattr(r, "operation_id", None) == "replayExecution"
               for r in request.app.routes)  # fmt: skip


@router.get("/ui/{tenant}/executions/{namespace}/{flow_id}/{execution_id}")
async def execution_page(request: Request, tenant: str, namespace: str, flow_id: str, execution_id: str,
                         tab: str = "gantt") -> HTMLResponse:  # fmt: skip
    from roost.server.filters import Filter
    from roost.server.queries import execution_logs, search_executions
    from roost.server.routes.executions import RESTARTABLE

    st = state_of(request)
    tenant = _tenant(request, tenant)
    tab = tab if tab in EXECUTION_TABS else "gantt"
    ex = await blocking(st.execution_dict, tenant, execution_id)
    ctx: dict[str, Any] = {"tenant": tenant, "ex": views.execution_row(ex), "tab": tab, "tabs": EXECUTION_TABS,
                           "terminal": ex["state"]["current"] in _terminal(), "restartable": ex["state"]["current"] in RESTARTABLE,
                           "replay": _replay_route(request)}  # fmt: skip
    readable = access_of(request).namespace_filter("EXECUTION", tenant)
    children, _n = await blocking(search_executions, st.store, tenant,
                                  [Filter("triggerExecutionId", "EQUALS", execution_id), *([readable] if readable else [])],
                                  1, 50)  # fmt: skip
    ctx["children"] = [views.execution_row(st.shape_execution(d, None)) for d in children]
    if tab == "gantt":
        ctx["gantt"] = views.gantt(ex)
    elif tab == "logs":
        level = request.query_params.get("level") or "INFO"
        level = level if level in LEVELS else "INFO"
        rows = await blocking(execution_logs, st.store, tenant, execution_id, min_level=level, limit=5000)
        ctx["logs"] = [r for _s, r in rows]
        ctx["level"], ctx["levels"] = level, LEVELS
    elif tab == "topology":
        flow, invalid = await blocking(_parsed, st, tenant, ex["namespace"], ex["flowId"], ex["flowRevision"])
        if flow is not None:
            states = {}
            for run in ex.get("taskRunList") or []:
                states[run["taskId"]] = run["state"]["current"]
            ctx["svg"] = topology_svg(flow_tree(flow), states, label=f"Topology of execution {execution_id}")
        ctx["invalid"] = invalid
    elif tab == "outputs":
        ctx["runs"] = [{"taskId": r["taskId"], "value": r.get("value"), "id": r["id"], "state": r["state"]["current"],
                        "outputs": views.output_tree(r.get("outputs") or {})} for r in ex.get("taskRunList") or []]  # fmt: skip
        ctx["flow_outputs"] = views.output_tree(ex.get("outputs") or {})
    ctx["panels"] = _panels(st, "execution", request, tenant, ex)
    return render(request, "execution.html", **ctx)


def _terminal() -> frozenset[str]:
    from roost.engine.model import TERMINAL

    return frozenset(TERMINAL)


@router.get("/ui/{tenant}/executions/{execution_id}/gantt")
async def gantt_partial(request: Request, tenant: str, execution_id: str) -> HTMLResponse:
    st = state_of(request)
    tenant = _tenant(request, tenant)
    ex = await blocking(st.execution_dict, tenant, execution_id)
    return render(request, "gantt.html", tenant=tenant, ex=views.execution_row(ex), gantt=views.gantt(ex))


@router.get("/ui/{tenant}/executions/{execution_id}/preview")
async def preview(request: Request, tenant: str, execution_id: str, path: str) -> HTMLResponse:
    st = state_of(request)
    tenant = _tenant(request, tenant)
    text, truncated = await blocking(views.preview_file, st, tenant, execution_id, path)
    return render(
        request,
        "preview.html",
        tenant=tenant,
        text=text,
        truncated=truncated,
        path=path,
        execution_id=execution_id,
    )


# -- namespaces -------------------------------------------------------------------------------------
@router.get("/ui/{tenant}/namespaces")
async def namespaces_page(request: Request, tenant: str, q: str = "") -> HTMLResponse:
    from roost.server.routes.namespaces import _all_namespaces
    from roost.server.routes.plugin_defaults import stored

    st = state_of(request)
    tenant = _tenant(request, tenant)
    names = set(await blocking(_all_namespaces, st, tenant)) | {s for s in stored(st).scopes(tenant) if s}
    scope = access_of(request).scope("NAMESPACE", "READ", tenant)
    shown = sorted(n for n in names if q.lower() in n.lower() and scope.allows(n))
    return render(request, "namespaces.html", tenant=tenant, namespaces=shown, q=q)


NAMESPACE_TABS = ("flows", "files", "kv", "secrets", "plugindefaults")


@router.get("/ui/{tenant}/namespaces/{namespace}")
async def namespace_page(request: Request, tenant: str, namespace: str, tab: str = "flows") -> HTMLResponse:
    from roost.server.routes.namespaces import _ns, kv_type

    st = state_of(request)
    tenant, namespace = _tenant(request, tenant), _ns(namespace)
    tab = tab if tab in NAMESPACE_TABS else "flows"
    ctx: dict[str, Any] = {"tenant": tenant, "namespace": namespace, "tab": tab, "tabs": NAMESPACE_TABS}
    needs = {"flows": "FLOW", "kv": "KVSTORE", "secrets": "SECRET", "plugindefaults": "PLUGIN_DEFAULTS"}.get(
        tab
    )
    if needs is not None and not access_of(request).can(needs, "READ", namespace, tenant):
        return deny(request)
    if tab == "flows":
        ctx["flows"] = await blocking(views.flow_rows, st, tenant, "", namespace)
    elif tab == "files":
        nsfiles = st.engine.runtime(tenant).namespace_files
        paths = await blocking(nsfiles.list, namespace)
        ctx["tree"] = views.file_tree(paths)
        path = request.query_params.get("path") or ""
        ctx["path"], ctx["content"], ctx["binary"] = path, None, False
        if path:
            data = await blocking(nsfiles.read, namespace, path)
            if data is None:
                raise ApiError(404, f"no file {path} in namespace {namespace}")
            try:
                ctx["content"] = data.decode("utf-8")
            except UnicodeDecodeError:
                ctx["binary"] = True
    elif tab == "kv":
        kv = st.engine.runtime(tenant).kv

        def entries() -> list[dict[str, Any]]:
            out = []
            for key in kv.keys(namespace):
                e = kv.entry(namespace, key)
                if e is not None:
                    out.append({"key": key, "type": kv_type(e["value"]), "value": e["value"],
                                "updated": views.short_time(_iso(e["updated"])) if e.get("updated") else "",
                                "expires": views.short_time(_iso(e["expires"])) if e.get("expires") else ""})  # fmt: skip
            return out

        ctx["entries"] = await blocking(entries)
    elif tab == "secrets":
        ctx["secret_backend"], ctx["secrets"] = await blocking(views.secret_names, st, tenant, namespace)
    elif tab == "plugindefaults":
        ctx.update(await blocking(_defaults_context, st, tenant, namespace, request.query_params.get("rev")))
    ctx["panels"] = _panels(st, "namespace", request, tenant, {"id": namespace})
    return render(request, "namespace.html", **ctx)


def _defaults_context(st: ServerState, tenant: str, namespace: str, rev: str | None) -> dict[str, Any]:
    from roost.server.routes.plugin_defaults import document, stored

    doc = document(st, tenant, namespace)
    revisions = list(reversed(stored(st).revisions(tenant, namespace)))
    out: dict[str, Any] = {"doc": doc, "revisions": [r.json() for r in revisions], "types": _type_ids(st),
                           "inherited": [{"scope": s or "instance", **d.model_dump(mode="json")}
                                         for s, d in stored(st).inherited(tenant, namespace)],
                           "defaults_yaml": {i: views._yaml(d.get("values") or {}) for i, d in enumerate(doc["pluginDefaults"])}}  # fmt: skip
    if rev and rev.isdigit():
        chosen = next((r for r in revisions if r.revision == int(rev)), None)
        if chosen is not None:
            before = next((r for r in revisions if r.revision == chosen.revision - 1), None)
            out["diff_rev"] = chosen.revision
            out["diff"] = views.revision_diff(before.source if before else "", chosen.source,
                                              f"revision {chosen.revision - 1}", f"revision {chosen.revision}")  # fmt: skip
    return out


def _type_ids(st: ServerState) -> list[str]:
    plugins = st.engine.plugins
    return sorted(set(plugins.types))


def _type_class(st: ServerState, type_id: str) -> Any:
    found = st.engine.plugins.types.get(type_id)
    if found is None:
        raise ApiError(404, f"no installed type {type_id}")
    return found


@router.get("/ui/{tenant}/namespaces/{namespace}/plugindefaults/form")
async def plugin_default_form(
    request: Request, tenant: str, namespace: str, type: str = "", index: int | None = None
) -> HTMLResponse:  # noqa: A002
    """The form of one plugin default: the type's JSON schema, required fields apart from optional ones."""
    from roost.server.routes.namespaces import _ns
    from roost.server.routes.plugin_defaults import document

    st = state_of(request)
    tenant, namespace = _tenant(request, tenant), _ns(namespace)
    current: dict[str, Any] = {}
    forced = False
    if index is not None:
        items = (await blocking(document, st, tenant, namespace))["pluginDefaults"]
        if 0 <= index < len(items):
            type = type or items[index]["type"]
            current, forced = items[index].get("values") or {}, bool(items[index].get("forced"))
    form = views.default_form(_type_class(st, type), current) if type else None
    return render(request, "pd_fields.html", tenant=tenant, namespace=namespace, type_id=type, form=form,
                  forced=forced, index=index, errors={}, error=None)  # fmt: skip


@router.post("/ui/{tenant}/namespaces/{namespace}/plugindefaults")
async def save_plugin_default(request: Request, tenant: str, namespace: str) -> Response:
    """Add (or replace, with ``index``) one plugin default from its form; the document becomes a new revision."""
    from roost.flow.model import PluginDefault
    from roost.plugin_defaults import DefaultsInvalid, dump_defaults
    from roost.server.routes.namespaces import _ns
    from roost.server.routes.plugin_defaults import document, save_defaults

    st = state_of(request)
    tenant, namespace = _tenant(request, tenant), _ns(namespace)
    who = principal(request)
    if not can(who, "PLUGIN_DEFAULTS", "UPDATE", namespace, tenant):
        return deny(request)
    form = await request.form()
    type_id = str(form.get("type") or "")
    raw_index = str(form.get("index") or "")
    index = int(raw_index) if raw_index.isdigit() else None
    forced = form.get("forced") == "true"
    cls = _type_class(st, type_id)
    values, errors = views.values_from_form(cls, form)

    def again(status: int, error: str | None, field_errors: dict[str, str]) -> HTMLResponse:
        form_data = views.default_form(cls, {**values, **{k: form.get(f"value.{k}") for k in field_errors}})
        return render(request, "pd_fields.html", status, tenant=tenant, namespace=namespace, type_id=type_id,
                      form=form_data, forced=forced, index=index, errors=field_errors, error=error)  # fmt: skip

    if errors:
        return again(422, "Some fields are not valid.", errors)
    doc = await blocking(document, st, tenant, namespace)
    items = [PluginDefault.model_validate(d) for d in doc["pluginDefaults"]]
    new = PluginDefault(type=type_id, values=values, forced=forced)
    if index is not None and 0 <= index < len(items):
        items[index] = new
    else:
        items.append(new)
    try:
        await blocking(save_defaults, st, tenant, namespace, dump_defaults(items), origin="ui", author=who)
    except DefaultsInvalid as exc:
        messages = {v.path.rsplit(".", 1)[-1]: v.message for v in exc.violations}
        return again(422, "; ".join(str(v) for v in exc.violations), messages)
    return _hx_redirect(f"/ui/{tenant}/namespaces/{quote(namespace)}?tab=plugindefaults")


@router.post("/ui/{tenant}/namespaces/{namespace}/plugindefaults/{index}/delete")
async def delete_plugin_default(request: Request, tenant: str, namespace: str, index: int) -> Response:
    from roost.flow.model import PluginDefault
    from roost.plugin_defaults import dump_defaults
    from roost.server.routes.namespaces import _ns
    from roost.server.routes.plugin_defaults import document, save_defaults

    st = state_of(request)
    tenant, namespace = _tenant(request, tenant), _ns(namespace)
    who = principal(request)
    if not can(who, "PLUGIN_DEFAULTS", "UPDATE", namespace, tenant):
        return deny(request)
    doc = await blocking(document, st, tenant, namespace)
    items = [PluginDefault.model_validate(d) for i, d in enumerate(doc["pluginDefaults"]) if i != index]
    await blocking(
        save_defaults, st, tenant, namespace, dump_defaults(items), origin="ui", author=who, validate=False
    )
    return _hx_redirect(f"/ui/{tenant}/namespaces/{quote(namespace)}?tab=plugindefaults")


@router.get("/ui/{tenant}/namespaces/{namespace}/plugindefaults/export")
async def export_plugin_defaults(request: Request, tenant: str, namespace: str) -> Response:
    from roost.plugin_defaults import dump_defaults
    from roost.server.routes.namespaces import _ns
    from roost.server.routes.plugin_defaults import stored

    st = state_of(request)
    tenant, namespace = _tenant(request, tenant), _ns(namespace)
    latest = await blocking(stored(st).latest, tenant, namespace)
    body = latest.source if latest is not None and latest.source.strip() else dump_defaults([])
    return Response(body, media_type="application/x-yaml",
                    headers={"Content-Disposition": f'attachment; filename="{namespace}.yaml"'})  # fmt: skip


# -- assets -----------------------------------------------------------------------------------------
@router.get("/ui/{tenant}/assets")
async def assets_page(request: Request, tenant: str, q: str = "", type: str = "", namespace: str = "",  # noqa: A002
                      metadata: str = "") -> HTMLResponse:  # fmt: skip
    from roost.assets.service import public

    st = state_of(request)
    tenant = _tenant(request, tenant)
    page, size = _page(request)
    error = None
    query = []
    for pair in metadata.replace(",", "\n").splitlines():
        key, sep, value = pair.strip().partition("=")
        if pair.strip():
            if not sep:
                error = f"metadata filter {pair.strip()!r} must be key=value"
                break
            query.append({"field": key.strip(), "type": "EQUAL_TO", "value": value.strip()})
    svc = st.engine.assets
    items: list[dict[str, Any]] = []
    if error is None:
        try:
            items = await blocking(svc.search, tenant, namespace=namespace or None, types=[type] if type else None,
                                   metadata_query=query, q=q or None)  # fmt: skip
        except ValueError as exc:
            error = str(exc)
    all_types = sorted({a["type"] for a in await blocking(svc.search, tenant)})
    rows = access_of(request).filter((public(a) for a in items), "ASSET", tenant)
    shown = rows[(page - 1) * size : page * size]
    return render(request, "assets.html", tenant=tenant, assets=shown, q=q, type=type, namespace=namespace,
                  metadata=metadata, types=all_types, error=error, pager=_pager(request, page, size, len(rows)))  # fmt: skip


@router.get("/ui/{tenant}/assets/{asset_id:path}")
async def asset_page(request: Request, tenant: str, asset_id: str) -> HTMLResponse:
    from roost.assets.service import public

    st = state_of(request)
    tenant = _tenant(request, tenant)
    svc = st.engine.assets
    found = await blocking(svc.get, tenant, asset_id, None, None, True)
    if found is None or not access_of(request).can("ASSET", "READ", found.get("namespace") or "", tenant):
        raise ApiError(404, f"asset '{asset_id}' not found")
    graph = await blocking(svc.lineage, tenant, asset_id)
    events = await blocking(svc.events, tenant, asset_id)
    usages = [r for r in await blocking(svc.lineage_events, tenant, asset_id)
              if any(a["id"] == asset_id for a in r["inputs"])]  # fmt: skip
    producers = [r for r in await blocking(svc.lineage_events, tenant, asset_id)
                 if any(a["id"] == asset_id for a in r["outputs"])]  # fmt: skip
    svg = lineage_svg(graph, asset_id, lambda n: f"/ui/{tenant}/assets/{quote(n['id'], safe='')}")
    upstream = {e["source"] for e in graph["edges"]}
    nodes = {n["uid"]: n for n in graph["nodes"]}
    return render(request, "asset.html", tenant=tenant, asset=public(found), svg=svg, events=events, usages=usages,
                  producers=producers, graph=graph, nodes=nodes, upstream=upstream)  # fmt: skip


# -- plugins ----------------------------------------------------------------------------------------
@router.get("/ui/{tenant}/plugins")
def plugins_page(request: Request, tenant: str) -> HTMLResponse:
    from roost.server.routes.plugins import plugin_list

    st = state_of(request)
    tenant = _tenant(request, tenant)
    return render(request, "plugins.html", tenant=tenant, plugins=plugin_list(st.engine.plugins))


@router.get("/ui/{tenant}/plugins/{type_id}")
def plugin_type_page(request: Request, tenant: str, type_id: str) -> HTMLResponse:
    st = state_of(request)
    tenant = _tenant(request, tenant)
    plugins = st.engine.plugins
    cls = plugins.types.get(type_id) or plugins.task_runners.get(type_id)
    if cls is None:
        raise ApiError(404, f"no plugin type {type_id}")
    return render(request, "plugin_type.html", tenant=tenant, type_id=type_id, doc=views.type_doc(cls))


# -- kill switches ----------------------------------------------------------------------------------
def _ks_page(request: Request, tenant: str, status: int = 200, error: str | None = None,
             form: dict[str, Any] | None = None) -> HTMLResponse:  # fmt: skip
    from roost.server.routes.killswitches import visible_switches

    st = state_of(request)
    access = access_of(request)
    rows = []
    for sw in visible_switches(st, access, tenant):
        ids = sw.get("executionIds") or []
        sw["scope"] = (f"executions {', '.join(ids[:3])}" + (f" (+{len(ids) - 3})" if len(ids) > 3 else "") if ids
                       else f"flow {sw['namespace']}.{sw['flowId']}" if sw.get("flowId")
                       else f"namespace {sw['namespace']}" if sw.get("namespace") else f"tenant {tenant}")  # fmt: skip
        ns = sw.get("namespace") if not ids else None
        sw["can_update"] = (
            access.can("KILL_SWITCH", "UPDATE", ns, tenant)
            if ns
            else access.scope("KILL_SWITCH", "UPDATE", tenant).all
        )
        sw["can_delete"] = (
            access.can("KILL_SWITCH", "DELETE", ns, tenant)
            if ns
            else access.scope("KILL_SWITCH", "DELETE", tenant).all
        )
        rows.append(sw)
    current = [sw for sw in rows if sw["status"] != "ARCHIVED"]
    archived = [sw for sw in rows if sw["status"] == "ARCHIVED"]
    return render(request, "killswitches.html", status, tenant=tenant, current=current, archived=archived, error=error,
                  form=form or {})  # fmt: skip


@router.get("/ui/{tenant}/killswitches")
async def killswitches_page(request: Request, tenant: str) -> HTMLResponse:
    """Instance > Kill Switch: create one on this tenant; the active, scheduled and archived ones."""
    tenant = _tenant(request, tenant)
    return await blocking(_ks_page, request, tenant)


def _form_date(value: Any) -> str | None:
    """A ``datetime-local`` field (UTC) as the API's ISO date-time; empty stays empty."""
    text = str(value or "").strip()
    return (text + "Z" if "Z" not in text and "+" not in text else text) if text else None


@router.post("/ui/{tenant}/killswitches")
async def create_killswitch(request: Request, tenant: str) -> Response:
    from datetime import UTC, datetime

    from roost.server.routes.killswitches import create_switch

    st = state_of(request)
    tenant = _tenant(request, tenant)
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    body = {"name": form.get("name", ""), "tenantId": tenant, "evaluationType": form.get("evaluationType", ""),
            "namespace": form.get("namespace", "").strip() or None, "flowId": form.get("flowId", "").strip() or None,
            "executionIds": [i.strip() for i in form.get("executionIds", "").replace(",", "\n").splitlines() if i.strip()],
            "startDate": _form_date(form.get("startDate")) or datetime.now(UTC).isoformat(),
            "endDate": _form_date(form.get("endDate")), "description": form.get("description", "").strip() or None}  # fmt: skip
    try:
        await blocking(create_switch, st, access_of(request), body)
    except ApiError as exc:
        return await blocking(
            _ks_page, request, tenant, exc.status if exc.status in (400, 403) else 400, exc.message, form
        )
    return RedirectResponse(f"/ui/{tenant}/killswitches", status_code=303)


@router.post("/ui/{tenant}/killswitches/{switch_id}/delete")
async def delete_killswitch(request: Request, tenant: str, switch_id: str) -> Response:
    from roost.server.routes.killswitches import delete_switch

    tenant = _tenant(request, tenant)
    await blocking(delete_switch, state_of(request), access_of(request), switch_id)
    return RedirectResponse(f"/ui/{tenant}/killswitches", status_code=303)


@router.post("/ui/{tenant}/killswitches/{switch_id}/enabled")
async def enable_killswitch(request: Request, tenant: str, switch_id: str) -> Response:
    from roost.server.routes.killswitches import existing_switch, switch_json, update_switch

    st = state_of(request)
    tenant = _tenant(request, tenant)
    enabled = str((await request.form()).get("enabled") or "") == "true"
    access = access_of(request)

    def toggle() -> None:
        current = switch_json(existing_switch(st, access, switch_id, "UPDATE"))
        update_switch(st, access, switch_id, {**current, "enabled": enabled})

    await blocking(toggle)
    return RedirectResponse(f"/ui/{tenant}/killswitches", status_code=303)


# -- plugin pages -----------------------------------------------------------------------------------
@router.get("/ui/{tenant}/x/{name}")
def plugin_page(request: Request, tenant: str, name: str) -> HTMLResponse:
    from roost.uikit import UiContext, UiPage

    st = state_of(request)
    tenant = _tenant(request, tenant)
    for ext in _extensions(st):
        if isinstance(ext, UiPage) and ext.name == name:
            html = ext.render(UiContext(tenant, principal(request), dict(request.query_params)))
            return render(request, "plugin_page.html", tenant=tenant, title=ext.title, html=html)
    raise ApiError(404, f"no UI page {name}")


__all__ = ["router", "templates"]
