"""API errors: JSON bodies with a ``message`` that names the problem, never a bare 500.

An unexpected error never shows its text (SQL, paths, internals) to the caller: the answer carries a
reference, and the server log has the error under that reference. A store that is busy, full or
read-only answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

log = logging.getLogger("roost.server")


class ApiError(Exception):
    """An error the API answers with ``status`` and ``{"message": ..., **extra}``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, message, **extra)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def unprocessable(message: str, **extra: Any) -> ApiError:
    return ApiError(422, message, **extra)


def error_body(message: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, **extra}


def _where(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, **exc.extra), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"path": _where(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()
        ]
        text = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        return JSONResponse(error_body(f"Invalid request: {text}", errors=errors), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404 and message == "Not Found":
            message = "No such route"
        elif exc.status_code == 405:
            message = "Method not allowed on this route"
        return JSONResponse(
            error_body(message), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from roost.store.db import store_unavailable

        reference = secrets.token_hex(6)
        if store_unavailable(exc):
            log.error(
                "store unavailable on %s %s (reference %s): %s",
                request.method,
                request.url.path,
                reference,
                exc,
            )
            return JSONResponse(error_body("The store is unavailable (busy, full or read-only); retry later "
                                           f"(reference {reference})", reference=reference),
                                status_code=503, headers={"Retry-After": "5"})  # fmt: skip
        log.exception("unhandled error on %s %s (reference %s)", request.method, request.url.path, reference)
        return JSONResponse(
            error_body(
                f"Internal error (reference {reference}: the server log has the details)", reference=reference
            ),
            status_code=500,
        )


class RequestGuard:
    """Answers 400 to a request whose path or query string holds a NUL byte or bytes that are not
    UTF-8 (raw or percent-encoded): no namespace, flow id, key or file path can hold them, and further
    in they would fail as 500s (a NUL in a file path) or be silently replaced."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            problem = target_problem(scope)
            if problem is not None:
                body = json.dumps(error_body(f"Invalid request: {problem}")).encode()
                await send({"type": "http.response.start", "status": 400, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def target_problem(scope: dict[str, Any]) -> str | None:
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    for where, raw in (("path", raw_path), ("query string", scope.get("query_string") or b"")):
        data = unquote_to_bytes(raw)
        if b"\0" in data:
            return f"the {where} contains a NUL byte"
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return f"the {where} is not valid UTF-8"
    return None
