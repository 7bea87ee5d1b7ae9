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


class RequestGuard:
    """The outermost middleware. It answers 400 to a request whose path or query string holds a NUL byte
    or bytes that are not UTF-8 (raw or percent-encoded): no namespace, flow id, key or file path can hold
    them, and further in they would fail as 500s or be silently replaced. And it turns an unexpected
    error into an answer without internals (:func:`unexpected`) itself, so the connection stays usable
    (Starlette's own handler re-raises, and uvicorn then drops the connection)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = target_problem(scope)
        if problem is not None:
            await _send_json(send, 400, error_body(f"Invalid request: {problem}"))
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # half an answer is out: only closing the connection can tell the client
                raise
            status, body, headers = unexpected(scope.get("method", ""), scope.get("path", ""), exc)
            await _send_json(send, status, body, headers)


def unexpected(method: str, path: str, exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The answer to an error no route expected: 503 when the store is busy, full or read-only, else 500;
    the error's text (SQL, paths...) goes to the server log under a reference the answer gives."""
    from roost.secret_backends import SecretBackendError
    from roost.store.db import store_unavailable
    from roost.store.storage import StorageError, StorageNotFound, StorageOutside, StorageUnavailable

    reference = secrets.token_hex(6)
    if isinstance(
        exc, StorageUnavailable | SecretBackendError
    ):  # the message names the backend, never a secret
        log.error("backend unavailable on %s %s (reference %s): %s", method, path, reference, exc)
        return 503, error_body(f"{exc} (reference {reference})", reference=reference), {"Retry-After": "5"}
    if isinstance(exc, StorageError):
        status = 404 if isinstance(exc, StorageNotFound) else 403 if isinstance(exc, StorageOutside) else 400
        return status, error_body(str(exc)), {}
    if store_unavailable(exc):
        log.error("store unavailable on %s %s (reference %s): %s", method, path, reference, exc)
        message = f"The store is unavailable (busy, full or read-only); retry later (reference {reference})"
        return 503, error_body(message, reference=reference), {"Retry-After": "5"}
    log.error("unhandled error on %s %s (reference %s)", method, path, reference, exc_info=exc)
    message = f"Internal error (reference {reference}: the server log has the details)"
    return 500, error_body(message, reference=reference), {}


async def _send_json(
    send: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


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
