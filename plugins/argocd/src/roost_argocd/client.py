"""A small client for the Argo CD REST API (``/api/v1``), over httpx.

Kestra's Argo CD tasks run the ``argocd`` CLI in a container; Roost speaks the REST API the CLI
itself uses (argocd-server's gRPC gateway), so no container or binary is needed:

* authentication with ``Authorization: Bearer <token>`` (an account or project token), or a
  session token from ``POST /api/v1/session`` with a user name and password;
* Argo CD's error body ``{"error", "code", "message"}`` (gRPC status codes through the gateway)
  becomes an :class:`ArgoCdApiError` carrying the gRPC code and Argo CD's own message;
* the transport (kill-aware threads, bounded ``Retry-After`` handling, secret scrubbing, HTTP
  options) is the core's :class:`roost.ApiClient`.

Neither the token nor the password ever appears in a log line or an error message.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from roost import ApiClient, ApiError, HttpOptions, RunContext, TaskError

__all__ = ["ArgoCdApiError", "ArgoCdClient", "HttpOptions", "app_path", "server_url", "tls_context"]

USER_AGENT = "roost-plugin-argocd/0.1.0"

GRPC_CODES = {
    1: "Canceled",
    2: "Unknown",
    3: "InvalidArgument",
    4: "DeadlineExceeded",
    5: "NotFound",
    6: "AlreadyExists",
    7: "PermissionDenied",
    8: "ResourceExhausted",
    9: "FailedPrecondition",
    10: "Aborted",
    11: "OutOfRange",
    12: "Unimplemented",
    13: "Internal",
    14: "Unavailable",
    15: "DataLoss",
    16: "Unauthenticated",
}


class ArgoCdApiError(ApiError):
    """Argo CD answered with an error status; ``code`` is the gRPC status code it carried."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code


def server_url(server: str, plaintext: bool = False) -> str:
    """The base URL of an Argo CD server given as the CLI takes it (``argocd.example.com[:443]``) or as a URL."""
    server = server.strip().rstrip("/")
    if not server:
        raise TaskError("server must not be empty")
    if "://" in server:
        scheme, rest = server.split("://", 1)
        if scheme not in ("http", "https"):
            raise TaskError(f"server must be a host name or an http(s) URL, got {server!r}")
        return f"http://{rest}" if plaintext else f"{scheme}://{rest}"
    return f"{'http' if plaintext else 'https'}://{server}"


def app_path(application: str) -> tuple[str, str | None]:
    """``(name, appNamespace)`` from ``name`` or ``namespace/name``, as the CLI takes an application."""
    application = application.strip()
    namespace, _, name = application.rpartition("/")
    if not name or "/" in namespace:
        raise TaskError(f"application must be a name or namespace/name, got {application!r}")
    return name, namespace or None


def tls_context(pem: str) -> ssl.SSLContext:
    """A client TLS context that trusts the given PEM certificate(s) (Kestra's ``serverCert``)."""
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise TaskError(f"serverCert is not a PEM certificate: {exc}") from None
    return context


class ArgoCdClient(ApiClient):
    """One connection to an Argo CD server, bound to a task's run context (or ``None``)."""

    service = "Argo CD"
    user_agent = USER_AGENT
    error_class = ArgoCdApiError
    insecure_setting = "insecure: true (or serverCert with the server's certificate)"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        options: HttpOptions | None = None,
        verify: ssl.SSLContext | None = None,
        ctx: RunContext | None = None,
    ) -> None:
        token = self.header_value(token, "token")
        if not token and not (username and password):
            raise TaskError("Argo CD credentials are missing: set token, or username and password")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        super().__init__(
            url, headers=headers, secrets=(token, password), options=options, ctx=ctx, verify=verify
        )
        self.host = urlsplit(self.base_url).netloc
        if not token:
            self._login(username or "", password or "")

    def _login(self, username: str, password: str) -> None:
        """Trade a user name and password for a session token (``POST /api/v1/session``)."""
        body = self.request("POST", "/api/v1/session", json_body={"username": username, "password": password})
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self.malformed("POST /api/v1/session", "no 'token' in the answer")
        self._secrets.append(token)
        self._http.headers["Authorization"] = f"Bearer {self.header_value(token, 'session token')}"

    def application(self, name: str, namespace: str | None, *, refresh: str | None = None) -> dict[str, Any]:
        """``GET /api/v1/applications/{name}`` (``refresh``: ``normal`` or ``hard``)."""
        path = f"/api/v1/applications/{quote(name, safe='')}"
        app = self.request("GET", path, params={"appNamespace": namespace, "refresh": refresh})
        return self.checked(app, f"GET {path}")

    def sync(self, name: str, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/applications/{name}/sync``: the application with its new ``operation``."""
        path = f"/api/v1/applications/{quote(name, safe='')}/sync"
        body = {"name": name, **body, **({"appNamespace": namespace} if namespace else {})}
        app = self.request("POST", path, json_body=body)
        return self.checked(app, f"POST {path}")

    def terminate(self, name: str, namespace: str | None) -> None:
        """``DELETE /api/v1/applications/{name}/operation``: terminate the running operation."""
        path = f"/api/v1/applications/{quote(name, safe='')}/operation"
        self.request("DELETE", path, params={"appNamespace": namespace})

    def checked(self, app: Any, label: str) -> dict[str, Any]:
        if not isinstance(app, dict) or not isinstance(app.get("metadata"), dict):
            raise self.malformed(label, "expected an Application object with 'metadata'")
        for key in ("spec", "status"):
            if app.get(key) is not None and not isinstance(app[key], dict):
                raise self.malformed(label, f"'{key}' should be an object")
        return app

    # -- errors ----------------------------------------------------------------------------------
    def error_message(self, response: httpx.Response) -> str:
        body = _json_or_none(response)
        if isinstance(body, dict) and (body.get("message") or body.get("error")):
            code = body.get("code")
            name = GRPC_CODES.get(code) if isinstance(code, int) else None
            text = str(body.get("message") or body.get("error"))
            message = self.scrub(f"{text} ({name})" if name else text)
        else:
            message = self.snippet(response)
        if response.status_code == 401:
            message += " (check the token, or the user name and password)"
        elif response.status_code == 403:
            message += " (the account lacks the Argo CD RBAC permission for this call)"
        return message

    def error(self, response: httpx.Response, label: str, prefix: str | None = None) -> ApiError:
        exc = super().error(response, label, prefix)
        body = _json_or_none(response)
        if isinstance(exc, ArgoCdApiError) and isinstance(body, dict) and isinstance(body.get("code"), int):
            exc.code = body["code"]
        return exc


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
