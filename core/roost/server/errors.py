"""API errors: JSON bodies with a ``message`` that names the problem, never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

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
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(f"Internal error: {type(exc).__name__}: {exc}"), status_code=500)
