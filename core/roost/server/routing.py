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
from starlette.routing import BaseRoute, Match, NoMatchFound, Route, get_route_path
from starlette.types import Receive, Scope, Send

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


def _request_segments(scope: Scope) -> list[str]:
    """The request path's segments, split once per request (every route's check reads them)."""
    parts = scope.get("roost.segments")
    if parts is None:
        parts = scope["roost.segments"] = segments(get_route_path(scope))
    return parts


class _Segments:
    """What a route's template fixes: its number of segments and its literal ones. A request whose path
    differs in either cannot match, and is turned down without the route's regular expression: most of
    the table does not apply to a request, and ranking puts the common parametrised routes last (a
    creation of an execution was tried against 200 patterns)."""

    def __init__(self, path: str) -> None:
        parts = segments(path)
        self.any = ":path}" in path  # a path parameter spans segments: only the pattern can tell
        self.count = len(parts)
        self.fixed = [(i, part) for i, part in enumerate(parts) if "{" not in part]

    def rejects(self, scope: Scope) -> bool:
        if self.any or scope["type"] != "http":
            return False
        parts = _request_segments(scope)
        if len(parts) != self.count:
            return True
        return any(parts[i] != part for i, part in self.fixed)


class SegmentRoute(APIRoute):
    """A route that turns down a path of other segments before trying its pattern (:class:`_Segments`)."""

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.segments = _Segments(path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.segments.rejects(scope):
            return Match.NONE, {}
        return super().matches(scope)


async def _no_such_route(_request: Request) -> None:
    raise HTTPException(404)  # the error handler words it "No such route"


class _Unserved(Route):
    """A route of Kestra's that Roost does not serve: "No such route", rather than a catch-all's answer."""

    def __init__(self, path: str, method: str) -> None:
        super().__init__(path, _no_such_route, methods=[method], include_in_schema=False)
        self.segments = _Segments(path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.segments.rejects(scope):
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


class RouteIndex(BaseRoute):
    """First in the table: tries, in table order, only the routes a request's number of segments allows
    (and those whose segments it cannot know), instead of the 200-odd in turn — a Python call each, which
    cost a third of a millisecond per request. It answers only a full match; otherwise it steps aside and
    the router's own pass finds the partial match (405) or nothing (404) as before. Rebuilt when the table
    changes size (a route added later)."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self._size = -1
        self._by_count: dict[int, tuple[int, dict[str | None, list[Any]]]] = {}
        self._others: list[Any] = []

    def _build(self) -> None:
        routes = [r for r in self.router.routes if r is not self]
        placed = {id(r): r.segments.count for r in routes if isinstance(getattr(r, "segments", None), _Segments)
                  and not r.segments.any}  # fmt: skip
        self._others = [r for r in routes if id(r) not in placed]
        self._by_count = {}
        for count in set(placed.values()):
            group = [r for r in routes if placed.get(id(r), count) == count]
            # then by the literal at the position whose literals tell these routes apart best
            literals = [dict(r.segments.fixed) if id(r) in placed else {} for r in group]
            position = max(range(count), key=lambda i: len({lit.get(i) for lit in literals}))
            buckets: dict[str | None, list[Any]] = {}
            for key in {lit.get(position) for lit in literals}:
                buckets[key] = [
                    r for r, lit in zip(group, literals, strict=True) if lit.get(position) in (key, None)
                ]
            self._by_count[count] = (position, buckets)
        self._size = len(self.router.routes)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        if len(self.router.routes) != self._size:
            self._build()
        parts = _request_segments(scope)
        found = self._by_count.get(len(parts))
        if found is None:
            candidates = self._others
        else:
            position, buckets = found
            candidates = buckets.get(parts[position]) or buckets.get(None) or []
        for route in candidates:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return Match.FULL, {**child, "roost.route": route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope.pop("roost.route").handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)


def index_routes(app: FastAPI) -> None:
    """Put a :class:`RouteIndex` in front of the (ranked) table."""
    app.router.routes.insert(0, RouteIndex(app.router))


def handler_path(app: FastAPI, method: str, path: str) -> str | None:
    """The template of the route that would answer ``method path`` (tests and diagnostics)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in app.router.routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            return getattr(child.get("roost.route", route), "path", None)
    return None


__all__ = [
    "RouteIndex",
    "handler_path",
    "index_routes",
    "install_route_stubs",
    "overlap",
    "rank",
    "rank_routes",
]
