"""HTTP requests (``io.kestra.plugin.core.http.Request``) through httpx."""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import Field

from roost import Duration, Dynamic, Model, Output, RunContext, Task, TaskError


class Auth(Model):
    """Authentication of the request."""

    type: Literal["BASIC", "BEARER"]
    """BASIC (username and password) or BEARER (token)."""
    username: Dynamic[str] | None = None
    """User for BASIC."""
    password: Dynamic[str] | None = None
    """Password for BASIC."""
    token: Dynamic[str] | None = None
    """Token for BEARER."""


class Options(Model):
    """Client options."""

    connect_timeout: Duration | None = None
    """Time allowed to connect."""
    read_timeout: Duration | None = None
    """Time allowed between bytes of the response."""
    read_idle_timeout: Duration | None = None
    """Accepted for compatibility."""
    connection_pool_idle_timeout: Duration | None = None
    """Accepted for compatibility."""
    max_content_length: int | None = None
    """Largest response body accepted, in bytes."""
    follow_redirects: bool = True
    """Follow 3xx redirects."""
    allow_failed: bool = False
    """Keep going on a 4xx or 5xx status."""
    default_charset: str = "UTF-8"
    """Charset of bodies that do not say theirs."""
    auth: Auth | None = None
    """Authentication."""
    basic_auth_user: Dynamic[str] | None = None
    basic_auth_password: Dynamic[str] | None = None
    proxy: dict[str, Any] | None = None
    """Proxy settings (``address``, ``port``, ``username``, ``password``)."""


class RequestOutput(Output):
    uri: str
    """The URL requested."""
    code: int
    """HTTP status code."""
    headers: dict[str, list[str]]
    """Response headers."""
    body: Any = None
    """Response body as text."""
    form_data: dict[str, Any] | None = None


class Request(Task, type="io.kestra.plugin.core.http.Request", aliases=("io.kestra.plugin.fs.http.Request",)):
    """Send an HTTP request and expose the response's code, headers and body."""

    uri: Dynamic[str]
    """The URL."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    """HTTP method."""
    body: Dynamic[str] | None = None
    """Request body."""
    form_data: Dynamic[dict[str, Any]] | None = None
    """Form fields (urlencoded, or multipart with ``contentType: multipart/form-data``)."""
    content_type: Dynamic[str] = "application/json"
    """Content type of the body."""
    headers: Dynamic[dict[str, str]] | None = None
    """Request headers."""
    options: Options = Field(default_factory=Options)
    """Client options: timeouts, auth, redirects, allowFailed."""
    allow_failed: bool = False
    """Keep going on a 4xx or 5xx status."""
    encrypt_body: bool = False
    """Mask the body in outputs."""
    ssl_options: dict[str, Any] | None = None
    """``insecureTrustAllCertificates`` to skip verification."""

    def run(self, ctx: RunContext) -> RequestOutput:
        import httpx  # here, so that flows without HTTP tasks never import it

        opts = self.options
        headers = dict(self.headers or {})
        auth = opts.auth
        if auth is not None:
            if auth.type == "BEARER":
                token = ctx.render(auth.token) if auth.token else ""
                headers["Authorization"] = f"Bearer {token}"
            else:
                user, pwd = ctx.render(auth.username or ""), ctx.render(auth.password or "")
                headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{pwd}".encode()).decode()
        elif opts.basic_auth_user:
            user, pwd = ctx.render(opts.basic_auth_user), ctx.render(opts.basic_auth_password or "")
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{pwd}".encode()).decode()
        timeout = httpx.Timeout(
            connect=opts.connect_timeout.total_seconds() if opts.connect_timeout else 30.0,
            read=opts.read_timeout.total_seconds() if opts.read_timeout else 60.0,
            write=60.0,
            pool=30.0,
        )
        verify = not bool((self.ssl_options or {}).get("insecureTrustAllCertificates"))
        kwargs: dict[str, Any] = {"headers": headers}
        if self.form_data is not None:
            if self.content_type.startswith("multipart/"):
                kwargs["files"] = {k: (None, str(v)) for k, v in self.form_data.items()}
            else:
                kwargs["data"] = self.form_data
        elif self.body is not None:
            kwargs["content"] = self.body.encode()
            headers.setdefault("Content-Type", self.content_type)
        try:
            with httpx.Client(
                timeout=timeout, follow_redirects=opts.follow_redirects, verify=verify
            ) as client:
                ctx.on_kill(client.close)
                response = client.request(self.method, self.uri, **kwargs)
        except httpx.TimeoutException as exc:
            raise TaskError(f"HTTP {self.method} {self.uri} timed out: {exc}") from None
        except httpx.HTTPError as exc:
            raise TaskError(f"HTTP {self.method} {self.uri} failed: {exc}") from None
        if opts.max_content_length is not None and len(response.content) > opts.max_content_length:
            raise TaskError(
                f"response body of {len(response.content)} bytes exceeds maxContentLength {opts.max_content_length}"
            )
        ctx.logger.debug("HTTP %s %s -> %s", self.method, self.uri, response.status_code)
        ctx.metric("response.length", len(response.content))
        if response.status_code >= 400 and not (self.allow_failed or opts.allow_failed):
            raise TaskError(
                f"Failed http request with response code '{response.status_code}' and body: {response.text[:500]}"
            )
        grouped: dict[str, list[str]] = {}
        for k, v in response.headers.multi_items():
            grouped.setdefault(k, []).append(v)
        body: Any = response.text
        if self.encrypt_body:
            body = "******"
        return RequestOutput(
            uri=str(response.request.url), code=response.status_code, headers=grouped, body=body
        )


TASKS = (Request,)
