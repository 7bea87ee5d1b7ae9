"""HTTP requests (``io.kestra.plugin.core.http.Request``) through httpx."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from roost import Duration, Dynamic, Model, Output, PollingTrigger, RunContext, Task, TaskError
from roost.flow.properties import is_truthy

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


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
    """Client options (each may be an expression, as Kestra's ``Property``)."""

    connect_timeout: Dynamic[timedelta] | None = None
    """Time allowed to connect."""
    read_timeout: Dynamic[timedelta] | None = None
    """Time allowed between bytes of the response."""
    read_idle_timeout: Dynamic[timedelta] | None = None
    """Accepted for compatibility."""
    connection_pool_idle_timeout: Dynamic[timedelta] | None = None
    """Accepted for compatibility."""
    max_content_length: Dynamic[int] | None = None
    """Largest response body accepted, in bytes."""
    follow_redirects: Dynamic[bool] = True
    """Follow 3xx redirects."""
    allow_failed: Dynamic[bool] = False
    """Keep going on a 4xx or 5xx status."""
    default_charset: Dynamic[str] = "UTF-8"
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
    method: Dynamic[Method] = "GET"
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
    allow_failed: Dynamic[bool] = False
    """Keep going on a 4xx or 5xx status."""
    encrypt_body: Dynamic[bool] = False
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
                token = auth.token or ""  # nested properties arrive rendered (render_task)
                headers["Authorization"] = f"Bearer {token}"
            else:
                user, pwd = auth.username or "", auth.password or ""
                headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{pwd}".encode()).decode()
        elif opts.basic_auth_user:
            user, pwd = opts.basic_auth_user, opts.basic_auth_password or ""
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


class Trigger(
    PollingTrigger, type="io.kestra.plugin.core.http.Trigger", aliases=("io.kestra.plugin.fs.http.Trigger",)
):
    """Every ``interval``, send a request; start an execution when ``responseCondition`` holds.

    The condition sees ``response.statusCode``, ``response.body`` and ``response.headers``; a 4xx or 5xx answer
    does not fail the check (the condition decides). The execution's ``trigger`` variables are the response
    as Request outputs it (``uri``, ``code``, ``headers``, ``body``).
    """

    interval: Duration = timedelta(seconds=60)
    """How often the endpoint is called."""
    response_condition: Dynamic[str] = "{{ response.statusCode < 400 }}"
    """Expression on ``response``; an execution starts when it is true."""
    uri: Dynamic[str]
    """The URL."""
    method: Dynamic[Method] = "GET"
    """HTTP method."""
    body: Dynamic[str] | None = None
    """Request body."""
    form_data: Dynamic[dict[str, Any]] | None = None
    """Form fields."""
    content_type: Dynamic[str] = "application/json"
    """Content type of the body."""
    headers: Dynamic[dict[str, str]] | None = None
    """Request headers."""
    options: Options = Field(default_factory=Options)
    """Client options: timeouts, auth, redirects."""
    encrypt_body: Dynamic[bool] = False
    """Mask the body in the trigger variables."""
    ssl_options: dict[str, Any] | None = None
    """``insecureTrustAllCertificates`` to skip verification."""

    def evaluate(self, ctx: Any) -> dict[str, Any] | None:
        from roost.engine.context import TaskRunContext, render_task

        run_ctx = TaskRunContext(ctx.runtime, dict(ctx.variables), namespace=ctx.namespace, flow_id=ctx.flow_id,
                                 task_id=self.id)  # fmt: skip
        request = Request.model_construct(
            id=self.id, type=Request.type_id, uri=self.uri, method=self.method, body=self.body,
            form_data=self.form_data, content_type=self.content_type, headers=self.headers,
            options=self.options.model_copy(update={"allow_failed": True}), allow_failed=True,
            encrypt_body=self.encrypt_body, ssl_options=self.ssl_options,
        )  # fmt: skip
        output = render_task(request, run_ctx).run(run_ctx)  # type: ignore[attr-defined]
        response = {"statusCode": output.code, "body": output.body, "headers": output.headers}
        ctx.logger.debug("%s responded with status code %s", output.uri, output.code)
        if not is_truthy(run_ctx.render(self.response_condition, response=response)):
            return None
        return output.as_dict()


TASKS = (Request,)
TRIGGERS = (Trigger,)
