"""What each route needs: a declared :class:`Rule` per ``METHOD /path`` of the API.

The access middleware (:mod:`roost.server.access`) resolves a request to its route template here and
checks the rule before the route reads anything. Every route of the app must have a rule: the app
refuses to start otherwise, and a test walks the OpenAPI with every role against this table.

Where the namespace comes from:

``ns``         a path parameter names it (``{namespace}``, or another one given);
``execution``  a path parameter is an execution id: the execution's namespace (a namespace-bound
               principal costs one indexed read; an unknown id goes on to the route's 404);
``tenant``     the route acts on several namespaces or learns the namespace from its body: the principal
               must hold the permission somewhere in the tenant, and the route narrows (search results
               filtered to the readable namespaces, each flow or item of a body checked);
``whole``      the permission on the whole tenant (a binding without namespace): bulk operations by query,
               which act on whatever matches, and routes that do not narrow to the principal's namespaces;
``anywhere``   instance-level routes of tenant-scoped objects (kill switches): the permission on some
               tenant; the route checks the object's own tenant and namespace;
``instance``   a binding on every tenant (no tenant, no namespace) is required;
``member``     any binding on the tenant (banners); ``authenticated``: any principal; ``public``: no check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    permission: str | None
    actions: tuple[str, ...]  # any of them lets the request through; the route checks the precise one
    where: str  # ns | execution | tenant | anywhere | instance | member | authenticated | public
    param: str | None = None  # the path parameter naming the namespace or the execution
    audited: bool = False  # a refusal is written to the audit log (the AI Copilot's, as the seed asks)

    def text(self) -> str:
        if self.permission is None:
            return self.where
        return f"{self.permission}:{'|'.join(self.actions)} ({self.where})"


def _actions(action: str | tuple[str, ...]) -> tuple[str, ...]:
    return (action,) if isinstance(action, str) else action


def ns(permission: str, action: str | tuple[str, ...], param: str = "namespace") -> Rule:
    return Rule(permission, _actions(action), "ns", param)


def execution(permission: str, action: str | tuple[str, ...], param: str = "executionId") -> Rule:
    return Rule(permission, _actions(action), "execution", param)


def tenant(permission: str, action: str | tuple[str, ...]) -> Rule:
    return Rule(permission, _actions(action), "tenant")


def whole(permission: str, action: str | tuple[str, ...]) -> Rule:
    return Rule(permission, _actions(action), "whole")


def anywhere(permission: str, action: str | tuple[str, ...]) -> Rule:
    return Rule(permission, _actions(action), "anywhere")


def instance(permission: str, action: str | tuple[str, ...]) -> Rule:
    return Rule(permission, _actions(action), "instance")


MEMBER = Rule(None, ("READ",), "member")
AUTHENTICATED = Rule(None, ("READ",), "authenticated")
PUBLIC = Rule(None, ("READ",), "public")

T = "/api/v1/{tenant}"
F = T + "/namespaces/{namespace}/files"
K = T + "/namespaces/{namespace}/kv"
E = T + "/executions/{executionId}"
U = "/ui/{tenant}"
CU = ("CREATE", "UPDATE")

ROUTES: dict[str, Rule] = {
    # -- flows
    f"POST {T}/flows": tenant("FLOW", "CREATE"),
    f"GET {T}/flows/search": tenant("FLOW", "READ"),
    f"GET {T}/flows/distinct-namespaces": tenant("FLOW", "READ"),
    f"POST {T}/flows/validate": tenant("FLOW", "READ"),
    f"POST {T}/flows/bulk": tenant("FLOW", CU),
    f"POST {T}/flows/import": tenant("FLOW", CU),
    f"POST {T}/flows/enable/by-ids": tenant("FLOW", "UPDATE"),
    f"POST {T}/flows/disable/by-ids": tenant("FLOW", "UPDATE"),
    f"DELETE {T}/flows/delete/by-ids": tenant("FLOW", "DELETE"),
    f"GET {T}/flows/{{namespace}}": ns("FLOW", "READ"),
    f"POST {T}/flows/{{namespace}}": ns("FLOW", CU),
    f"GET {T}/flows/{{namespace}}/{{id}}": ns("FLOW", "READ"),
    f"PUT {T}/flows/{{namespace}}/{{id}}": ns("FLOW", "UPDATE"),
    f"DELETE {T}/flows/{{namespace}}/{{id}}": ns("FLOW", "DELETE"),
    f"GET {T}/flows/{{namespace}}/{{id}}/revisions": ns("FLOW", "READ"),
    # -- executions
    f"GET {T}/executions/search": tenant("EXECUTION", "READ"),
    f"GET {T}/executions": tenant("EXECUTION", "READ"),
    f"DELETE {T}/executions/kill/by-ids": tenant("EXECUTION", "UPDATE"),
    f"GET {E}": execution("EXECUTION", "READ"),
    f"DELETE {E}": execution("EXECUTION", "DELETE"),
    f"DELETE {E}/kill": execution("EXECUTION", "UPDATE"),
    f"POST {E}/pause": execution("EXECUTION", "UPDATE"),
    f"POST {E}/resume": execution("EXECUTION", "UPDATE"),
    f"POST {E}/restart": execution("EXECUTION", "UPDATE"),
    f"POST {E}/change-status": execution("EXECUTION", "UPDATE"),
    f"POST {E}/labels": execution("EXECUTION", "UPDATE"),
    f"GET {E}/follow": execution("EXECUTION", "READ"),
    f"GET {E}/file": execution("EXECUTION", "READ"),
    f"GET {E}/file/metas": execution("EXECUTION", "READ"),
    f"GET {E}/flow": execution("EXECUTION", "READ"),
    f"GET {T}/executions/webhook/{{namespace}}/{{id}}/{{key}}": ns("EXECUTION", "CREATE"),
    f"POST {T}/executions/webhook/{{namespace}}/{{id}}/{{key}}": ns("EXECUTION", "CREATE"),
    f"PUT {T}/executions/webhook/{{namespace}}/{{id}}/{{key}}": ns("EXECUTION", "CREATE"),
    f"POST {T}/executions/{{namespace}}/{{id}}": ns("EXECUTION", "CREATE"),
    # -- logs
    f"GET {T}/logs/search": tenant("EXECUTION", "READ"),
    f"GET {T}/logs/{{executionId}}": execution("EXECUTION", "READ"),
    f"DELETE {T}/logs/{{executionId}}": execution("EXECUTION", "DELETE"),
    f"GET {T}/logs/{{executionId}}/download": execution("EXECUTION", "READ"),
    f"GET {T}/logs/{{executionId}}/follow": execution("EXECUTION", "READ"),
    # -- namespaces, files, KV
    f"GET {T}/namespaces/search": tenant("NAMESPACE", "READ"),
    f"GET {T}/namespaces/{{id}}": ns("NAMESPACE", "READ", "id"),
    f"GET {F}/directory": ns("NAMESPACE", "READ"),
    f"POST {F}/directory": ns("NAMESPACE", "CREATE"),
    f"GET {F}/stats": ns("NAMESPACE", "READ"),
    f"GET {F}/revisions": ns("NAMESPACE", "READ"),
    f"GET {F}/search": ns("NAMESPACE", "READ"),
    f"GET {F}": ns("NAMESPACE", "READ"),
    f"POST {F}": ns("NAMESPACE", CU),
    f"PUT {F}": ns("NAMESPACE", "UPDATE"),
    f"DELETE {F}": ns("NAMESPACE", "DELETE"),
    f"GET {K}": ns("KVSTORE", "READ"),
    f"DELETE {K}": ns("KVSTORE", "DELETE"),
    f"GET {K}/{{key}}": ns("KVSTORE", "READ"),
    f"PUT {K}/{{key}}": ns("KVSTORE", CU),
    f"DELETE {K}/{{key}}": ns("KVSTORE", "DELETE"),
    f"GET {T}/kv": tenant("KVSTORE", "READ"),
    # -- triggers
    f"GET {T}/triggers/search": tenant("FLOW", "READ"),
    f"GET {T}/triggers/{{namespace}}/{{flowId}}": ns("FLOW", "READ"),
    f"POST {T}/triggers/{{namespace}}/{{flowId}}/{{triggerId}}/unlock": ns("FLOW", "UPDATE"),
    f"PUT {T}/triggers": tenant("FLOW", "UPDATE"),
    f"POST {T}/triggers/set-disabled/by-triggers": tenant("FLOW", "UPDATE"),
    # -- assets (looked up by id: the route checks the asset's namespace)
    f"GET {T}/assets/search": tenant("ASSET", "READ"),
    f"POST {T}/assets": tenant("ASSET", CU),
    f"GET {T}/assets/lineage-events/search": tenant("ASSET", "READ"),
    f"GET {T}/assets/usages/search": tenant("ASSET", "READ"),
    f"GET {T}/assets/{{id}}": tenant("ASSET", "READ"),
    f"DELETE {T}/assets/{{id}}": tenant("ASSET", "DELETE"),
    f"GET {T}/assets/{{id}}/dependencies": tenant("ASSET", "READ"),
    f"GET {T}/assets/{{id}}/events": tenant("ASSET", "READ"),
    # -- plugins and the instance
    "GET /api/v1/plugins": AUTHENTICATED,
    "GET /api/v1/plugins/schemas/{type}": AUTHENTICATED,
    "GET /api/v1/plugins/{cls}": AUTHENTICATED,
    "GET /health": PUBLIC,
    "GET /api/v1/configs": AUTHENTICATED,
    "GET /api/v1/version": AUTHENTICATED,
    "GET /metrics": AUTHENTICATED,
    "GET /api/v1/openapi.yaml": AUTHENTICATED,
    "GET /api/v1/openapi.json": AUTHENTICATED,
    "GET /api/v1/docs": AUTHENTICATED,
    "GET /docs/oauth2-redirect": AUTHENTICATED,
    "GET /api/v1/me": AUTHENTICATED,
    # -- kill switches (instance-level objects of one tenant, as in Kestra)
    "POST /api/v1/kill-switches": anywhere("KILL_SWITCH", "CREATE"),
    "GET /api/v1/kill-switches/search": anywhere("KILL_SWITCH", "READ"),
    "GET /api/v1/kill-switches/{id}": anywhere("KILL_SWITCH", "READ"),
    "PUT /api/v1/kill-switches/{id}": anywhere("KILL_SWITCH", "UPDATE"),
    "DELETE /api/v1/kill-switches/{id}": anywhere("KILL_SWITCH", "DELETE"),
    f"GET {T}/kill-switches/banners": MEMBER,
    # the AI Copilot: somewhere in the tenant here, in the request's namespace in the route; refusals audited
    **{
        f"{verb} {T}/ai/{path}": Rule("AI_COPILOT", ("CREATE",), "tenant", audited=True)
        for verb, path in (
            ("GET", "providers"),
            ("POST", "generate/flow"),
            ("POST", "generate/test"),
            ("POST", "transcribe"),
        )
    },
    # -- plugin defaults (namespaces: {id}; the instance's are inherited by every namespace of every tenant)
    f"GET {T}/namespaces/{{id}}/inherited-plugindefaults": ns("PLUGIN_DEFAULTS", "READ", "id"),
    f"POST {T}/namespaces/{{id}}/plugindefaults/export": ns("PLUGIN_DEFAULTS", "READ", "id"),
    f"POST {T}/namespaces/{{id}}/plugindefaults/import": ns("PLUGIN_DEFAULTS", "UPDATE", "id"),
    f"GET {T}/namespaces/{{id}}/plugindefaults": ns("PLUGIN_DEFAULTS", "READ", "id"),
    f"PUT {T}/namespaces/{{id}}/plugindefaults": ns("PLUGIN_DEFAULTS", "UPDATE", "id"),
    f"GET {T}/namespaces/{{id}}/plugindefaults/revisions": ns("PLUGIN_DEFAULTS", "READ", "id"),
    f"GET {T}/namespaces/{{id}}/plugindefaults/revisions/{{revision}}": ns("PLUGIN_DEFAULTS", "READ", "id"),
    f"GET {T}/plugindefaults/namespaces": tenant("PLUGIN_DEFAULTS", "READ"),
    "GET /api/v1/instance/plugindefaults": anywhere("PLUGIN_DEFAULTS", "READ"),
    "PUT /api/v1/instance/plugindefaults": instance("PLUGIN_DEFAULTS", "UPDATE"),
    "GET /api/v1/instance/plugindefaults/revisions": anywhere("PLUGIN_DEFAULTS", "READ"),
    "GET /api/v1/instance/plugindefaults/revisions/{revision}": anywhere("PLUGIN_DEFAULTS", "READ"),
    # -- audit logs (append-only: no route changes them)
    f"GET {T}/auditlogs/search": tenant("AUDITLOG", "READ"),
    f"GET {T}/auditlogs/export": tenant("AUDITLOG", "READ"),
    f"POST {T}/auditlogs/find": tenant("AUDITLOG", "READ"),
    f"GET {T}/auditlogs/history/{{detailId}}": tenant("AUDITLOG", "READ"),
    f"GET {T}/auditlogs/{{id}}/diff": tenant("AUDITLOG", "READ"),
    "GET /api/v1/auditlogs/search": instance("AUDITLOG", "READ"),
    "GET /api/v1/auditlogs/export": instance("AUDITLOG", "READ"),
    "GET /api/v1/auditlogs/{id}/diff": instance("AUDITLOG", "READ"),
    # -- the web UI (its pages read through the API's functions and narrow as the API routes do)
    "GET /": PUBLIC,
    "GET /ui": PUBLIC,
    "GET /ui/": PUBLIC,
    "GET /ui/login": PUBLIC,
    "POST /ui/login": PUBLIC,
    "POST /ui/logout": PUBLIC,
    f"GET {U}/flows": tenant("FLOW", "READ"),
    f"GET {U}/flows/new": tenant("FLOW", "CREATE"),
    f"GET {U}/flows/{{namespace}}/{{flow_id}}": ns("FLOW", "READ"),
    f"POST {U}/flows/{{namespace}}/{{flow_id}}/execute": ns("EXECUTION", "CREATE"),
    f"GET {U}/executions": tenant("EXECUTION", "READ"),
    f"GET {U}/executions/{{execution_id}}": execution("EXECUTION", "READ", "execution_id"),
    f"GET {U}/executions/{{namespace}}/{{flow_id}}/{{execution_id}}": execution(
        "EXECUTION", "READ", "execution_id"
    ),
    f"GET {U}/executions/{{execution_id}}/gantt": execution("EXECUTION", "READ", "execution_id"),
    f"GET {U}/executions/{{execution_id}}/preview": execution("EXECUTION", "READ", "execution_id"),
    f"GET {U}/namespaces": tenant("NAMESPACE", "READ"),
    f"GET {U}/namespaces/{{namespace}}": ns("NAMESPACE", "READ"),
    f"GET {U}/namespaces/{{namespace}}/plugindefaults/form": ns("PLUGIN_DEFAULTS", "READ"),
    f"POST {U}/namespaces/{{namespace}}/plugindefaults": ns("PLUGIN_DEFAULTS", "UPDATE"),
    f"POST {U}/namespaces/{{namespace}}/plugindefaults/{{index}}/delete": ns("PLUGIN_DEFAULTS", "UPDATE"),
    f"GET {U}/namespaces/{{namespace}}/plugindefaults/export": ns("PLUGIN_DEFAULTS", "READ"),
    f"GET {U}/assets": tenant("ASSET", "READ"),
    f"GET {U}/assets/{{asset_id:path}}": tenant("ASSET", "READ"),
    f"GET {U}/plugins": AUTHENTICATED,
    f"GET {U}/plugins/{{type_id}}": AUTHENTICATED,
    f"GET {U}/x/{{name}}": AUTHENTICATED,  # a plugin's page asks roost.server.rbac.can itself
    f"GET {U}/killswitches": anywhere("KILL_SWITCH", "READ"),
    f"POST {U}/killswitches": anywhere("KILL_SWITCH", "CREATE"),
    f"POST {U}/killswitches/{{switch_id}}/delete": anywhere("KILL_SWITCH", "DELETE"),
    f"POST {U}/killswitches/{{switch_id}}/enabled": anywhere("KILL_SWITCH", "UPDATE"),
}

# Kestra routes being added in parallel (the compat-api work): declared ahead so that they are guarded the
# moment they land. Bulk operations by query or id list act on whatever matches: the whole tenant's right.
X = T + "/executions"
R = T + "/triggers"
ANTICIPATED: dict[str, Rule] = {
    "GET /api/v1/plugins/icons": AUTHENTICATED,
    "GET /api/v1/plugins/icons/groups": AUTHENTICATED,
    "GET /api/v1/plugins/inputs": AUTHENTICATED,
    "GET /api/v1/plugins/inputs/{type}": AUTHENTICATED,
    f"GET {T}/dependencies": whole("FLOW", "READ"),
    f"POST {T}/flows/graph": tenant("FLOW", "READ"),
    f"DELETE {T}/flows/delete/by-query": whole("FLOW", "DELETE"),
    f"POST {T}/flows/enable/by-query": whole("FLOW", "UPDATE"),
    f"POST {T}/flows/disable/by-query": whole("FLOW", "UPDATE"),
    f"POST {T}/flows/export/by-ids": whole("FLOW", "READ"),
    f"GET {T}/flows/export/by-query": whole("FLOW", "READ"),
    f"GET {T}/flows/{{namespace}}/{{id}}/graph": ns("FLOW", "READ"),
    f"GET {T}/flows/{{namespace}}/{{id}}/dependencies": ns("FLOW", "READ"),
    f"DELETE {X}/by-ids": whole("EXECUTION", "DELETE"),
    f"DELETE {X}/by-query": whole("EXECUTION", "DELETE"),
    f"DELETE {X}/kill/by-query": whole("EXECUTION", "UPDATE"),
    **{f"POST {X}/{verb}/{by}": whole("EXECUTION", "CREATE" if verb == "replay" else "UPDATE")
       for verb in ("restart", "replay", "resume", "pause", "labels", "change-status", "force-run", "unqueue")
       for by in ("by-ids", "by-query")},
    f"POST {E}/replay": execution("EXECUTION", "CREATE"),
    f"POST {E}/replay-with-inputs": execution("EXECUTION", "CREATE"),
    f"POST {E}/force-run": execution("EXECUTION", "UPDATE"),
    f"POST {E}/unqueue": execution("EXECUTION", "UPDATE"),
    f"GET {E}/graph": execution("EXECUTION", "READ"),
    f"GET {T}/namespaces/{{namespace}}/dependencies": ns("FLOW", "READ"),
    f"GET {F}/export": ns("NAMESPACE", "READ"),
    f"GET {K}/inheritance": ns("KVSTORE", "READ"),
    f"PUT {R}/backfill/pause": whole("FLOW", "UPDATE"),
    f"PUT {R}/backfill/unpause": whole("FLOW", "UPDATE"),
    f"POST {R}/backfill/delete": whole("FLOW", "UPDATE"),
    f"POST {R}/set-disabled/by-query": whole("FLOW", "UPDATE"),
    f"POST {R}/unlock/by-triggers": whole("FLOW", "UPDATE"),
    f"POST {R}/unlock/by-query": whole("FLOW", "UPDATE"),
    f"DELETE {R}/delete/by-triggers": whole("FLOW", "UPDATE"),
    f"DELETE {R}/delete/by-query": whole("FLOW", "UPDATE"),
    **{f"POST {R}/backfill/{verb}/{by}": whole("FLOW", "UPDATE")
       for verb in ("pause", "unpause", "delete") for by in ("by-triggers", "by-query")},
    f"DELETE {R}/{{namespace}}/{{flowId}}/{{triggerId}}": ns("FLOW", "UPDATE"),
    f"POST {R}/{{namespace}}/{{flowId}}/{{triggerId}}/restart": ns("FLOW", "UPDATE"),
}  # fmt: skip
ROUTES.update(ANTICIPATED)


def key(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def app_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route of an app, included routers flattened (HEAD left out: it
    answers as GET). Routes that only answer "No such route" are not routes anyone can use."""
    out: list[tuple[str, str]] = []

    def walk(routes: Any, prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:  # FastAPI's lazily included router
                walk(
                    included.routes,
                    prefix + (getattr(getattr(route, "include_context", None), "prefix", "") or ""),
                )
                continue
            path = getattr(route, "path", None)
            if path is None or getattr(getattr(route, "endpoint", None), "__name__", "") == "_no_such_route":
                continue
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    out.append((method, prefix + path))

    walk(app.router.routes, "")
    return out


class RouteMatcher:
    """Resolves a concrete path to its template as the router does: segment by segment, a fixed
    segment before a variable one at the first place two templates differ (Kestra's precedence).
    Templates sharing a prefix may name their variables differently: names belong to each template."""

    def __init__(self, templates: dict[str, Any]) -> None:
        self._root: dict[str, Any] = {}
        for spec, value in templates.items():
            method, path = spec.split(" ", 1)
            node = self._root.setdefault(method, {})
            names: list[str] = []
            for seg in path.strip("/").split("/") if path != "/" else [""]:
                if seg.startswith("{") and seg.endswith(":path}"):  # the rest of the path, slashes included
                    names.append(seg[1:-6])
                    node = node.setdefault("**", {})
                    break
                if seg.startswith("{") and seg.endswith("}"):
                    names.append(seg[1:-1].split(":")[0])
                    node = node.setdefault("*", {})
                else:
                    node = node.setdefault("=" + seg, {})
            node["$"] = (path, value, tuple(names))

    def match(self, method: str, path: str) -> tuple[str, Any, dict[str, str]] | None:
        """(template, value, path parameters) or None."""
        root = self._root.get("GET" if method == "HEAD" else method)
        if root is None or not path.startswith("/"):
            return None
        segments = path[1:].split("/")
        captured: list[str] = []

        def walk(node: dict[str, Any], i: int) -> tuple[str, Any, tuple[str, ...]] | None:
            if i == len(segments):
                return node.get("$")
            seg = segments[i]
            child = node.get("=" + seg)
            if child is not None:
                found = walk(child, i + 1)
                if found is not None:
                    return found
            var = node.get("*")
            if var is not None and seg:
                captured.append(seg)
                found = walk(var, i + 1)
                if found is not None:
                    return found
                captured.pop()
            rest = node.get("**")
            if rest is not None and "$" in rest:  # Starlette's path converter matches anything, even nothing
                captured.append("/".join(segments[i:]))
                return rest["$"]  # type: ignore[no-any-return]
            return None

        found = walk(root, 0)
        if found is None:
            return None
        template, value, names = found
        return template, value, dict(zip(names, captured, strict=True))


__all__ = [
    "ANTICIPATED",
    "AUTHENTICATED",
    "MEMBER",
    "PUBLIC",
    "ROUTES",
    "RouteMatcher",
    "Rule",
    "app_routes",
    "key",
]
