"""A small client for the Trello REST API (``https://api.trello.com/1``), over httpx.

* The API key and token travel in Trello's ``Authorization: OAuth oauth_consumer_key="...",
  oauth_token="..."`` header, as Kestra's plugin sends them, never in the URL: a URL ends up in
  proxy logs and exception texts, a header does not.
* Trello's errors are mostly plain text (``invalid token``, ``The requested resource was not
  found.``), sometimes JSON (``{"error": "API_TOKEN_LIMIT_EXCEEDED", "message": ...}`` with a 429,
  ``{"path", "originalMessage", "originalStatus"}`` with a 449); both become a
  :class:`TrelloApiError` naming the call, the status and Trello's words.
* The transport (kill-aware threads, bounded ``429``/``Retry-After`` handling, secret scrubbing,
  HTTP options) is the core's :class:`roost.ApiClient`.

Neither the key nor the token ever appears in a log line or an error message.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
from roost import ApiClient, ApiError, HttpOptions, HttpRetry, RunContext, TaskError

__all__ = ["DEFAULT_BASE_URL", "HttpOptions", "HttpRetry", "TrelloApiError", "TrelloClient", "segment"]

DEFAULT_BASE_URL = "https://api.trello.com"
USER_AGENT = "roost-plugin-trello/0.1.0"
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


class TrelloApiError(ApiError):
    """Trello answered with an error status."""


def segment(value: str, what: str) -> str:
    """An id or short link for a URL path; anything else (``/``, ``..``, spaces) is refused."""
    value = value.strip()
    if not _SEGMENT.match(value):
        raise TaskError(f"{what} must be a Trello id or short link (letters, digits, - and _), got {value!r}")
    return quote(value, safe="")


class TrelloClient(ApiClient):
    """One connection to the Trello API, bound to a task's run context (``None`` for a trigger)."""

    service = "Trello API"
    user_agent = USER_AGENT
    error_class = TrelloApiError

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        version: str = "1",
        *,
        api_key: str | None,
        api_token: str | None,
        options: HttpOptions | None = None,
        retry: HttpRetry | None = None,
        ctx: RunContext | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise TaskError(f"apiBaseUrl must be an http(s) URL, got {base_url!r}")
        version = segment(str(version), "apiVersion")
        key = self.header_value(api_key, "apiKey")
        token = self.header_value(api_token, "apiToken")
        if not key or not token:
            raise TaskError("Trello credentials are missing: set apiKey and apiToken")
        if '"' in key or '"' in token:
            raise TaskError("apiKey and apiToken must not contain double quotes")
        headers = {"Authorization": f'OAuth oauth_consumer_key="{key}", oauth_token="{token}"'}
        super().__init__(
            f"{base_url.rstrip('/')}/{version}",
            headers=headers,
            secrets=(key, token),
            options=options,
            retry=retry,
            ctx=ctx,
        )

    def card_request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A call that answers one object (a card, an action)."""
        body = self.request(method, path, **kwargs)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise self.malformed(f"{method} {path}", "expected an object with an 'id'")
        return body

    def list_request(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """A call that answers a list of objects (the cards of a board or a list)."""
        body = self.request("GET", path, params=params)
        if not isinstance(body, list) or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) for c in body
        ):
            raise self.malformed(f"GET {path}", "expected a list of objects with an 'id'")
        return body

    # -- errors ----------------------------------------------------------------------------------
    def error_message(self, response: httpx.Response) -> str:
        body = _json_or_none(response)
        if isinstance(body, dict) and "originalMessage" in body:  # 449: a sub-request failed
            message = self.scrub(
                f"sub-request to {body.get('path')} failed: {body.get('originalMessage')} "
                f"(HTTP {body.get('originalStatus')})"
            )
        elif isinstance(body, dict) and (body.get("message") or body.get("error")):
            parts = [str(p) for p in (body.get("message"), body.get("error")) if p]
            message = self.scrub(f"{parts[0]} ({parts[1]})" if len(parts) == 2 else parts[0])
        else:
            message = self.snippet(response)
        if response.status_code == 401:
            message += " (check apiKey and apiToken, and that the token may act on this board)"
        return message


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
