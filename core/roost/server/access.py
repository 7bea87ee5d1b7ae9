"""Authorization of every request, before the route reads anything (an ASGI middleware after auth).

The request's path is resolved to its route template (:class:`roost.server.permissions.RouteMatcher`)
and the route's declared rule is checked against the principal's roles (:mod:`roost.server.rbac`):
403 ``{"message": ...}`` when refused. Routes then narrow what they return or change through
:func:`access_of` (search results filtered to readable namespaces, each item of a bulk body checked).

It also names who acts for the audit log: :data:`roost.server.audit.ACTOR` holds the principal and
the client address for the length of the request (context variables follow the request into the
threads its route uses).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import anyio.to_thread

from roost.server.audit import ACTOR, Actor, client_ip
from roost.server.auth import route_path
from roost.server.permissions import ROUTES, RouteMatcher, Rule
from roost.server.rbac import EVERYWHERE, Policy, Principal, Scope

X = TypeVar("X")
TENANT_PARAM = "tenant"


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Access:
    """What the principal of one request may do, for routes to narrow their work."""

    def __init__(self, policy: Policy, principal: Any) -> None:
        self.policy = policy
        self.principal = principal
        self.unrestricted = policy.unrestricted(principal)

    def can(self, permission: str, action: str, namespace: str | None = None, tenant: str = "main") -> bool:
        return self.unrestricted or self.policy.can(
            self.principal, permission, action, namespace, tenant=tenant
        )

    def require(self, permission: str, action: str, namespace: str | None, tenant: str = "main") -> None:
        """Raise a 403 :class:`roost.server.errors.ApiError` unless allowed in ``namespace`` (``None``: on the
        whole tenant, unlike :meth:`can`, whose ``None`` means somewhere in it)."""
        if self.unrestricted:
            return
        scope = self.scope(permission, action, tenant)
        if not (scope.all if namespace is None else scope.allows(namespace)):
            from roost.server.errors import ApiError

            raise ApiError(403, denied(self.principal, permission, action, namespace, tenant))

    def scope(self, permission: str, action: str, tenant: str = "main") -> Scope:
        if self.unrestricted:
            return EVERYWHERE
        return self.policy.scope(self.principal, permission, action, tenant)

    def namespace_filter(self, permission: str, tenant: str, action: str = "READ") -> Any:
        """A search filter keeping the namespaces the principal may read (None when it may read them all)."""
        scope = self.scope(permission, action, tenant)
        if scope.all:
            return None
        from roost.server.filters import Filter

        return Filter("namespace", "WITHIN", list(scope.prefixes))

    def filter(self, items: Iterable[X], permission: str, tenant: str = "main", *, action: str = "READ",
               namespace: Callable[[X], str | None] = lambda x: x.get("namespace")) -> list[X]:  # type: ignore[attr-defined]  # fmt: skip
        """The items whose namespace the principal may act on (all of them when unrestricted)."""
        items = list(items)
        scope = self.scope(permission, action, tenant)
        if scope.all:
            return items
        return [x for x in items if scope.allows(namespace(x))]


def access_of(request: Any) -> Access:
    """The :class:`Access` of a request (set by the middleware; unrestricted when none ran, as in tests
    that call a route's function directly)."""
    found = request.scope.get("state", {}).get("access")
    if found is None:
        return Access(Policy(auth=False), None)
    return found


def denied(principal: Any, permission: str, action: str, namespace: str | None, tenant: str | None) -> str:
    who = getattr(principal, "id", None) or principal or "anonymous"
    where = (
        f"namespace {namespace} of tenant {tenant}"
        if namespace
        else (f"tenant {tenant}" if tenant else "this instance")
    )
    return f"Permission denied: {who} may not {action} {permission} in {where}"


class AccessMiddleware:
    def __init__(self, app: Any, state: Any, routes: dict[str, Rule] | None = None) -> None:
        self.app = app
        self.state = state
        self.matcher = RouteMatcher(routes if routes is not None else ROUTES)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth = self.state.config.auth
        policy: Policy = auth.policy
        state = scope.setdefault("state", {})
        principal = state.get("principal")
        if principal is not None:  # carries its policy from here on (roost.server.rbac.can)
            principal = state["principal"] = Principal(
                str(principal), getattr(principal, "kind", "user"), policy
            )
        token = ACTOR.set(Actor(getattr(principal, "id", None) or (str(principal) if principal else "anonymous"),
                                client_ip(scope, auth.trusted_proxies)))  # fmt: skip
        try:
            access = Access(policy, principal)
            state["access"] = access
            if not access.unrestricted:
                try:
                    await self._check(scope, policy, principal)
                except Forbidden as exc:
                    await anyio.to_thread.run_sync(self._audit_refusal, scope, exc.message)
                    await _forbidden(send, exc.message, route_path(scope).startswith("/ui/"))
                    return
            await self.app(scope, receive, send)
        finally:
            ACTOR.reset(token)

    async def _check(self, scope: dict[str, Any], policy: Policy, principal: Any) -> None:
        found = self.matcher.match(scope.get("method", "GET"), route_path(scope))
        if found is None:
            return  # no such route: the router answers 404 or 405 and nothing runs
        _template, rule, params = found
        if rule.where == "public" or (principal is None and policy.auth):
            return  # an open URL (the auth middleware let it through): its key is its credential
        if rule.where == "authenticated":
            return
        tenant = params.get(TENANT_PARAM)
        if rule.where == "member":
            if not any(b.tenant in (None, tenant) for b in policy.bindings_of(principal)):
                raise Forbidden(
                    f"Permission denied: {getattr(principal, 'id', principal)} has no role on tenant {tenant}"
                )
            return
        perm = rule.permission
        assert perm is not None
        if rule.where == "instance":
            if not any(policy.instance_wide(principal, perm, a) for a in rule.actions):
                raise Forbidden(
                    denied(principal, perm, rule.actions[0], None, None) + " (needs a role on every tenant)"
                )
            return
        if rule.where == "anywhere":
            if not any(policy.anywhere(principal, perm, a) for a in rule.actions):
                raise Forbidden(denied(principal, perm, rule.actions[0], None, None))
            return
        tenant = tenant or "main"
        scopes = [policy.scope(principal, perm, a, tenant) for a in rule.actions]
        if any(s.all for s in scopes):
            return
        if all(s.none for s in scopes):
            raise Forbidden(denied(principal, perm, rule.actions[0], None, tenant))
        if rule.where == "whole":  # a namespace binding is not enough: the route acts on whatever matches
            raise Forbidden(denied(principal, perm, rule.actions[0], None, tenant))
        if rule.where == "tenant":
            return  # somewhere in the tenant: the route narrows to the namespaces it may
        namespace = params.get(rule.param or "namespace")
        if rule.where == "execution":
            namespace = await anyio.to_thread.run_sync(
                self._execution_namespace, tenant, params.get(rule.param or "")
            )
            if namespace is None:
                return  # no such execution in this tenant: the route answers 404
        if not any(s.allows(namespace) for s in scopes):
            raise Forbidden(denied(principal, perm, rule.actions[0], namespace, tenant))

    def _audit_refusal(self, scope: dict[str, Any], message: str) -> None:
        found = self.matcher.match(scope.get("method", "GET"), route_path(scope))
        if found is None or not found[1].audited:
            return
        template, rule, params = found
        self.state.audit.record("ACCESS_DENIED", rule.permission or "", tenant=params.get(TENANT_PARAM),
                                detail={"operation": f"{scope.get('method', 'GET')} {template}", "message": message})  # fmt: skip

    def _execution_namespace(self, tenant: str, execution_id: str | None) -> str | None:
        if not execution_id or len(execution_id) > 64:
            return None
        found = self.state.store.execution_namespace(execution_id)
        if found is None or found[0] != tenant:
            return None
        return found[1]


async def _forbidden(send: Any, message: str, page: bool = False) -> None:
    """403 with ``{"message": ...}``, or a small page for the web UI's paths."""
    if page:
        from html import escape

        body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not allowed</title></head><body>'
                f'<h1>Not allowed</h1><p role="alert">{escape(message)}</p><p><a href="/ui/">Back</a></p></body></html>').encode()  # fmt: skip
        kind = b"text/html; charset=utf-8"
    else:
        body, kind = json.dumps({"message": message}).encode(), b"application/json"
    await send({"type": "http.response.start", "status": 403, "headers": [
        (b"content-type", kind), (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


__all__ = ["Access", "AccessMiddleware", "access_of", "denied"]
