"""The web UI: server-rendered pages (Jinja2) under ``/ui/``, htmx partials, vendored static files.

:func:`mount` adds it to the API app: the routes, ``/ui/static`` (every script, style and font ships
in the package: no CDN), HTML error pages for ``/ui/`` paths, and the cookie sessions the auth
middleware consults (:mod:`roost.server.ui.session`).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from roost.server.errors import ApiError
from roost.server.ui.session import Sessions, load_secret

STATIC = Path(__file__).parent / "static"


def mount(app: Any, state: Any) -> Sessions:
    """Add the UI to ``app``; returns the sessions to hand to the auth middleware."""
    from roost.server.ui.routes import router

    sessions = Sessions(state.config.auth, load_secret(getattr(state.engine, "data_dir", None)))
    app.state.ui_sessions = sessions
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    for exc_class in (ApiError, StarletteHTTPException):
        _html_errors(app, exc_class)
    return sessions


def _html_errors(app: Any, exc_class: type[Exception]) -> None:
    """Errors on UI pages are pages (their message kept); elsewhere the API's JSON answer stands."""
    original = app.exception_handlers.get(exc_class)

    async def handler(request: Request, exc: Exception) -> Response:
        path = request.url.path
        if path.startswith("/ui/") and not path.startswith("/ui/static/") and original is not None:
            from roost.server.ui.routes import render

            status = int(getattr(exc, "status", None) or getattr(exc, "status_code", None) or 500)
            message = getattr(exc, "message", None) or getattr(exc, "detail", None) or "Error"
            if request.headers.get("hx-request"):
                return HTMLResponse(
                    f'<p class="error" role="alert">{escape(str(message))}</p>', status_code=status
                )
            return render(request, "error.html", status, title=f"Error {status}", message=str(message))
        if original is None:
            raise exc
        return await original(request, exc)

    app.add_exception_handler(exc_class, handler)
