"""The NetBox REST API over :class:`roost.ApiClient`.

The core's transport brings the timeout on every request, bounded retries of HTTP 429
(honouring ``Retry-After``, waiting with the interruptible ``ctx.sleep``), kill while a request
is under way, and scrubbing of the token. This module adds what is NetBox's own: the token
scheme (``Bearer`` for v2 tokens, ``Token`` for legacy ones), the ``/api/<app>/<objects>/``
endpoints, offset pagination, and error messages that quote NetBox (the validation errors of
an HTTP 400 verbatim, the ``detail`` of a refused token).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from roost import ApiClient, HttpOptions, HttpRetry, HttpSsl, HttpTimeout, RunContext, TaskError

USER_AGENT = "roost-plugin-netbox/0.1.0"
MAX_PAGE = 1000
"""NetBox's default MAX_PAGE_SIZE: the most objects one list call returns."""
V2_TOKEN_PREFIX = "nbt_"


def token_scheme(token: str) -> str:
    """``Bearer`` for a NetBox 4.5+ v2 token (``nbt_<key>.<secret>``), ``Token`` for a legacy one."""
    return "Bearer" if token.startswith(V2_TOKEN_PREFIX) and "." in token[len(V2_TOKEN_PREFIX) :] else "Token"


class NetBox(ApiClient):
    """One NetBox API connection for the duration of a task run."""

    service = "NetBox"
    user_agent = USER_AGENT
    insecure_setting = "verifySsl: false"
    # NetBox throttles with 429, with or without Retry-After (then 2, 4 and 8 s).
    retry = HttpRetry(statuses=frozenset({429}), statuses_with_retry_after=frozenset(), backoff=2.0)

    def __init__(
        self, ctx: RunContext, url: str, token: str, verify_ssl: bool = True, timeout: float = 30.0
    ) -> None:
        url = (url or "").strip().rstrip("/")
        if not url:
            raise TaskError("the NetBox 'url' is empty")
        if url.endswith("/api"):
            url = url[: -len("/api")]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TaskError(
                f"the NetBox 'url' must be an http(s) URL such as https://netbox.example.com, not {url!r}"
            )
        token = self.header_value(token, "token") or ""
        if not token:
            raise TaskError("the NetBox 'token' is empty")
        limit = timedelta(seconds=timeout)
        super().__init__(
            url,
            headers={"Authorization": f"{token_scheme(token)} {token}"},
            secrets=[token],
            options=HttpOptions(
                timeout=HttpTimeout(connect_timeout=limit, read_idle_timeout=limit),
                ssl=HttpSsl(insecure_trust_all_certificates=not verify_ssl),
            ),
            ctx=ctx,
        )
        self.url = self.display_url
        self.host = urlsplit(self.display_url).netloc
        if not verify_ssl and parts.scheme == "https":
            ctx.logger.warning("TLS certificate verification is off for %s (verifySsl: false)", self.url)

    # -- endpoints ---------------------------------------------------------------------------
    def get(self, endpoint: str, obj_id: int) -> dict[str, Any] | None:
        """One object of ``endpoint`` (such as ``dcim/devices``) by id; ``None`` when NetBox has none."""
        path = f"/api/{endpoint}/{obj_id}/"
        try:
            return self._object(self.request("GET", path), f"GET {path}")
        except self.error_class as exc:
            if exc.status == 404:
                return None
            raise

    def pages(
        self, endpoint: str, params: dict[str, Any] | None = None, page_size: int = MAX_PAGE
    ) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        """Each page of a list as (objects, the count NetBox reports), by offset."""
        path = f"/api/{endpoint}/"
        # A None filter value is NetBox's "null" (no VRF, no tenant...).
        query = {k: "null" if v is None else v for k, v in (params or {}).items()}
        offset = 0
        while True:
            page = {**query, "limit": page_size, "offset": offset}
            body = self._object(self.request("GET", path, params=page), f"GET {path}")
            results = body.get("results")
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                raise self.malformed(
                    f"GET {path}", f"'results' should be a list of objects, got {results!r:.200}"
                )
            count = body.get("count")
            yield results, count if isinstance(count, int) else None
            if not results or not body.get("next"):
                return
            offset += len(results)

    def all(self, endpoint: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every object of a list."""
        return [obj for page, _ in self.pages(endpoint, params) for obj in page]

    def create(self, endpoint: str, data: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/{endpoint}/"
        return self._object(self.request("POST", path, json_body=data), f"POST {path}")

    def patch(self, endpoint: str, obj_id: int, data: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/{endpoint}/{obj_id}/"
        return self._object(self.request("PATCH", path, json_body=data), f"PATCH {path}")

    def _object(self, body: Any, label: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise self.malformed(label, f"expected a JSON object, got {body!r:.200}")
        return body

    # -- errors ------------------------------------------------------------------------------
    def error_message(self, response: httpx.Response) -> str:
        status = response.status_code
        body = self.scrub(response.text.strip())
        detail = self.scrub(_detail(response))
        if status in (401, 403):
            said = (detail or body[:500] or response.reason_phrase).rstrip(".")
            return (
                f"{said}. Check that the API token is valid, enabled, not expired and allowed to do this "
                "(write-enabled with the needed permissions)."
            )
        if status == 404:
            return (
                f"{detail or 'not found'} (is {self.url} the base URL of NetBox, and the object still there?)"
            )
        return body[:2000] or "(empty body)"  # a 400 carries NetBox's validation errors: verbatim


def _detail(response: httpx.Response) -> str:
    """The ``detail`` NetBox (Django REST framework) gives with a refusal, if any."""
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        return ""
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return data["detail"]
    return ""
