"""A small client for the Open Policy Agent REST API (v1), over httpx.

:meth:`OpaClient.request` sends one call and

* authenticates with ``Authorization: Bearer <token>`` when a token is set (OPA started
  with ``--authentication=token``);
* turns OPA's error body ``{"code", "message", "errors": [{"code", "message", "location"}]}``
  into a :class:`OpaApiError` whose message carries OPA's own codes, messages and locations;
* honours ``429`` (and ``503`` with ``Retry-After``), as answered by proxies in front of OPA,
  a bounded number of times, waiting with ``ctx.sleep`` so a kill interrupts the wait;
* turns network failures, timeouts and non-JSON answers into clear :class:`roost.TaskError`;
* runs each HTTP exchange on a helper thread so that a kill returns at once even while a
  request is in flight.

The token never appears in a log line or an error message. The transport (threads,
retries, scrubbing, HTTP options) is the core's :class:`roost.ApiClient`; this module adds
the token, OPA's answers and its error format.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from roost import ApiClient, ApiError, HttpOptions, RunContext, TaskError, parse_retry_after

__all__ = ["HttpOptions", "OpaApiError", "OpaClient", "data_path", "data_url", "parse_retry_after"]

USER_AGENT = "roost-plugin-opa/0.1.0"


class OpaApiError(ApiError):
    """OPA answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code


def data_path(path: str) -> str:
    """A decision path as OPA's Data API wants it: ``a/b/c`` from ``a/b/c``, ``/a/b``, ``data.a.b`` or ``a.b``."""
    path = path.strip()
    dotted = path.startswith("data.")
    if dotted:
        path = path[len("data.") :]
    path = path.strip("/")
    if path == "data":
        return ""
    if path.startswith("data/"):
        path = path[len("data/") :]
    if (dotted or "/" not in path) and "." in path:
        path = path.replace(".", "/")
    return path


def data_url(path: str) -> str:
    path = data_path(path)
    if not path:
        return "/v1/data"
    return "/v1/data/" + "/".join(quote(seg, safe="") for seg in path.split("/"))


class OpaClient(ApiClient):
    """One connection to an OPA server, bound to a task's run context."""

    service = "OPA"
    user_agent = USER_AGENT
    error_class = OpaApiError

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        options: HttpOptions | None = None,
        ctx: RunContext | None = None,
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise TaskError(f"url must be the http(s) URL of the OPA server, got {url!r}")
        token = self.header_value(token, "token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        super().__init__(url, headers=headers, secrets=[token], options=options, ctx=ctx)
        self.url = self.base_url
        self.host = urlsplit(self.url).netloc

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Call OPA and return its JSON answer (an object; ``{}`` for an empty body)."""
        label = f"{method} {path}"
        params = {k: v for k, v in (params or {}).items() if v is not False}  # OPA flags: absent, not "false"
        response = self.send(method, path, params=params, **kwargs)
        if not response.content.strip():
            return {}
        body = self.decode(response, label)
        if not isinstance(body, dict):
            raise self.malformed(label, f"expected a JSON object, got {self.snippet(response)}", response)
        for warning in [body.get("warning")] if isinstance(body.get("warning"), dict) else []:
            self.log("info", "OPA: %s", self.scrub(str(warning.get("message", warning))))
        return body

    # -- errors ----------------------------------------------------------------------------------
    def error_message(self, response: httpx.Response) -> str:
        text = _error_text(_json_or_none(response))
        message = self.scrub(text) if text is not None else self.snippet(response)
        if response.status_code == 401:
            message += " (check the token)"
        elif response.status_code == 403:
            message += " (the token is not allowed to make this call)"
        return message

    def error(self, response: httpx.Response, label: str, prefix: str | None = None) -> ApiError:
        exc = super().error(response, label, prefix)
        body = _json_or_none(response)
        if isinstance(exc, OpaApiError) and _error_text(body) is not None and body.get("code") is not None:
            exc.code = str(body["code"])
        return exc


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(body: Any) -> str | None:
    """OPA's error body ``{"code", "message", "errors": [{"code", "message", "location"}]}`` as one line."""
    if not (isinstance(body, dict) and ("code" in body or "message" in body)):
        return None
    text = ": ".join(str(p) for p in (body.get("code"), body.get("message")) if p)
    details = []
    for err in body.get("errors") or ():
        if not isinstance(err, dict):
            continue
        item = ": ".join(str(p) for p in (err.get("code"), err.get("message")) if p)
        loc = err.get("location")
        if isinstance(loc, dict) and loc.get("row") is not None:
            item += f" ({loc.get('file') or '?'}:{loc.get('row')}:{loc.get('col')})"
        details.append(item)
    if details:
        text += " [" + "; ".join(details) + "]"
    return text
