"""Helpers the route modules share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from roost.server.errors import bad_request
from roost.server.state import ServerState

R = TypeVar("R")

YAML_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/x-yaml": {"schema": {"type": "string"}}}}}  # fmt: skip
TEXT_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}
}


def multipart_body(required: bool = False, **props: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
    if props:
        schema["properties"] = props
    return {"requestBody": {"required": required, "content": {"multipart/form-data": {"schema": schema}}}}


def state_of(request: Request) -> ServerState:
    return request.app.state.roost


def known_tenant(request: Request, tenant: str) -> None:
    """Every tenant-scoped route: a tenant the server does not host is 404, before the request is read."""
    state_of(request).tenant(tenant)


TENANT_SCOPED = [Depends(known_tenant)]  # the ``dependencies`` of every tenant-scoped router


async def blocking(fn: Callable[..., R], *args: Any, **kw: Any) -> R:
    """Run store or engine work off the event loop."""
    return await run_in_threadpool(fn, *args, **kw)


async def body_text(request: Request, what: str = "body") -> str:
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"the {what} must be UTF-8 text") from None


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "event": {"type": "string"},
                        "data": {"type": "string"},
                    },
                }
            }
        },
    }
}
