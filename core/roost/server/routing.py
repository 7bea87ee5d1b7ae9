"""Route resolution as Kestra's: the most specific route wins, and Kestra's own routes never fall into ours.

Starlette tries routes in order, so a catch-all declared first (``POST /flows/{namespace}``) would take
``POST /flows/graph``. Kestra's router (Micronaut) prefers the route whose first differing segment is
fixed rather than variable. :func:`rank_routes` sorts the app's routes that way, and
:func:`install_route_stubs` adds a "No such route" answer for every route of Kestra 1.3 we do not serve
that one of ours could otherwise swallow (``POST /executions/{id}/state`` must not create an execution
of flow ``state``). Only those are added: a route table of hundreds of regexes would slow every request.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Scope

from roost.server.kestra_routes import KESTRA_ROUTES


def segments(path: str) -> list[str]:
    return path.strip("/").split("/")


def _variable(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def rank(path: str) -> tuple[int, ...]:
    """Sort key: at the first segment where two routes differ in kind, the fixed one comes first."""
    return tuple(1 if _variable(s) else 0 for s in segments(path))


def overlap(a: str, b: str) -> bool:
    """Whether some concrete path matches both templates (single-segment variables only)."""
    sa, sb = segments(a), segments(b)
    if len(sa) != len(sb):
        return False
    return all(_variable(x) or _variable(y) or x == y for x, y in zip(sa, sb, strict=True))


def _methods(route: Any) -> set[str]:
    return set(getattr(route, "methods", None) or ())


class SegmentRoute(APIRoute):
    """A route that turns down a path of another number of segments before trying its pattern: most of the
    table does not apply to a request, and ranked routes put the common parametrised ones last."""

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.slashes = path.count("/")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"].count("/") != self.slashes:
            return Match.NONE, {}
        return super().matches(scope)


async def _no_such_route(_request: Request) -> None:
    raise HTTPException(404)  # the error handler words it "No such route"


class _Unserved(Route):
    """A route of Kestra's that Roost does not serve: "No such route", rather than a catch-all's answer."""

    def __init__(self, path: str, method: str) -> None:
        super().__init__(path, _no_such_route, methods=[method], include_in_schema=False)
        self.slashes = path.count("/")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"].count("/") != self.slashes:
            return Match.NONE, {}
        return super().matches(scope)


def install_route_stubs(app: FastAPI) -> list[str]:
    """Answer 404 "No such route" on Kestra's routes we lack wherever a less specific one of ours would take them."""
    paths = [(getattr(r, "path", None), _methods(r)) for r in app.router.routes]
    ours = [(path, methods) for path, methods in paths if isinstance(path, str)]
    served = {(m, path) for path, methods in ours for m in methods}
    templates = [path for path, _m in ours]
    wanted = [spec.split(" ", 1) for spec in KESTRA_ROUTES if tuple(spec.split(" ", 1)) not in served]
    added: list[str] = []
    changed = True
    while (
        changed
    ):  # a stub is itself a route that may take a more specific one of Kestra's: until nothing moves
        changed = False
        for method, path in wanted:
            spec = f"{method} {path}"
            if spec not in added and any(
                rank(path) < rank(other) and overlap(path, other) for other in templates
            ):
                app.router.routes.append(_Unserved(path, method))
                templates.append(path)
                added.append(spec)
                changed = True
    return added


def rank_routes(app: FastAPI) -> None:
    """Order the routes as Kestra's router would choose among them (stable within a rank); an included
    router (the UI's, a plugin's) has no path of its own: it comes after every API route."""

    def key(route: Any) -> tuple[int, ...]:
        path = getattr(route, "path", None)
        return rank(path) if isinstance(path, str) and path else (2,)

    app.router.routes.sort(key=key)


def handler_path(app: FastAPI, method: str, path: str) -> str | None:
    """The template of the route that would answer ``method path`` (tests and diagnostics)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in app.router.routes:
        match, _child = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", None)
    return None


__all__ = ["handler_path", "install_route_stubs", "overlap", "rank", "rank_routes"]
