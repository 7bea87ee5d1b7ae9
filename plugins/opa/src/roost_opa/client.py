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

The token never appears in a log line or an error message.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from datetime import UTC, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import ConfigDict
from roost import Model, RunContext, TaskError

USER_AGENT = "roost-plugin-opa/0.1.0"
MAX_RATE_LIMIT_RETRIES = 3
"""How many times a rate-limited call is retried before the task fails."""
MAX_RETRY_AFTER = 60.0
"""Longest ``Retry-After`` (seconds) the client waits; a longer one fails the task at once."""
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0


class HttpTimeout(Model):
    """Timeouts of the HTTP client (Kestra's ``options.timeout``)."""

    connect_timeout: timedelta | None = None
    """Longest wait to open a connection (default 10 seconds)."""
    read_idle_timeout: timedelta | None = None
    """Longest wait for data on an open connection (default 120 seconds)."""


class HttpSsl(Model):
    """TLS settings of the HTTP client."""

    insecure_trust_all_certificates: bool = False
    """Accept any server certificate (never do this in production)."""


class HttpProxy(Model):
    """An HTTP proxy between Roost and OPA."""

    type: Literal["DIRECT", "HTTP"] = "HTTP"
    """Proxy type: ``HTTP`` or ``DIRECT`` (no proxy)."""
    address: str | None = None
    """Proxy host name or address."""
    port: int | None = None
    """Proxy port."""
    username: str | None = None
    """User name for the proxy."""
    password: str | None = None
    """Password for the proxy."""


class HttpOptions(Model):
    """Advanced HTTP settings (a subset of Kestra's ``HttpConfiguration``).

    Other keys Kestra accepts here are tolerated and ignored with a warning.
    """

    model_config = ConfigDict(extra="allow")

    timeout: HttpTimeout | None = None
    """Connection and read timeouts."""
    follow_redirects: bool = True
    """Follow HTTP redirects."""
    ssl: HttpSsl | None = None
    """TLS settings."""
    proxy: HttpProxy | None = None
    """Proxy to go through."""


class OpaApiError(TaskError):
    """OPA answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _header_value(value: str | None, name: str) -> str | None:
    """A credential stripped of surrounding blanks; one that cannot be sent in a header is refused."""
    if value is None:
        return None
    value = value.strip()
    if any(c in value for c in "\r\n\x00") or not value.isascii():
        raise TaskError(f"{name} contains a line break or a character an HTTP header cannot carry")
    return value or None


def _variants(secrets: list[str]) -> list[str]:
    """Each secret as written and as Python/JSON would escape it, so scrubbing catches both."""
    out: list[str] = []
    for secret in secrets:
        out.append(secret)
        for escaped in (repr(secret)[1:-1], json.dumps(secret)[1:-1]):
            if escaped != secret:
                out.append(escaped)
    return out


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


class OpaClient:
    """One connection to an OPA server, bound to a task's run context."""

    service = "OPA"

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
        self.url = url.rstrip("/")
        self.host = urlsplit(self.url).netloc
        self._ctx = ctx
        token = _header_value(token, "token")
        self._secrets = _variants([token] if token else [])
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        options = options or HttpOptions()
        connect, read = DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
        if options.timeout is not None:
            if options.timeout.connect_timeout is not None:
                connect = options.timeout.connect_timeout.total_seconds()
            if options.timeout.read_idle_timeout is not None:
                read = options.timeout.read_idle_timeout.total_seconds()
        self._read_timeout = read
        proxy = None
        if options.proxy is not None and options.proxy.type == "HTTP" and options.proxy.address:
            auth = ""
            if options.proxy.username:
                auth = quote(options.proxy.username, safe="")
                if options.proxy.password:
                    self._secrets.extend(_variants([options.proxy.password]))
                    auth += ":" + quote(options.proxy.password, safe="")
                auth += "@"
            port = f":{options.proxy.port}" if options.proxy.port else ""
            proxy = f"http://{auth}{options.proxy.address}{port}"
        if options.model_extra and ctx is not None:
            ctx.logger.warning(
                "HTTP options not supported here and ignored: %s", ", ".join(sorted(options.model_extra))
            )
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(read, connect=connect),
            follow_redirects=options.follow_redirects,
            verify=not (options.ssl and options.ssl.insecure_trust_all_certificates),
            proxy=proxy,
        )
        self._killed = threading.Event()
        self._waiter: threading.Event | None = None
        self._lock = threading.Lock()
        if ctx is not None:
            ctx.on_kill(self._on_kill)

    def __enter__(self) -> OpaClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _on_kill(self) -> None:
        self._killed.set()
        with self._lock:
            waiter = self._waiter
        if waiter is not None:
            waiter.set()
        try:
            self._http.close()
        except Exception:  # closing while a request runs on another thread may complain
            pass

    def _raise_killed(self) -> None:
        if self._ctx is not None:
            self._ctx.sleep(0)  # raises the engine's kill exception
        raise TaskError(f"{self.service} call abandoned: the execution was killed")

    def scrub(self, text: str) -> str:
        """``text`` with every credential replaced by ``****``."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "****")
        return text

    def _log(self, level: str, message: str, *args: Any) -> None:
        if self._ctx is not None:
            getattr(self._ctx.logger, level)(message, *args)

    # -- transport -------------------------------------------------------------------------------
    def _do(self, request: httpx.Request, label: str) -> httpx.Response:
        try:
            return self._http.send(request)
        except httpx.TimeoutException as exc:
            raise TaskError(
                f"{self.service} did not answer {label} in time ({type(exc).__name__}; read timeout "
                f"{self._read_timeout:g}s): {self.scrub(str(exc)) or 'timed out'}"
            ) from None
        except httpx.ConnectError as exc:
            raise TaskError(f"cannot reach {self.service} at {self.url}: {self.scrub(str(exc))}") from None
        except httpx.HTTPError as exc:
            if self._killed.is_set():
                raise TaskError(f"{self.service} call abandoned: the execution was killed") from None
            raise TaskError(
                f"{self.service} request {label} failed: {type(exc).__name__}: {self.scrub(str(exc))}"
            ) from None

    def _send(self, request: httpx.Request, label: str) -> httpx.Response:
        if self._killed.is_set():
            self._raise_killed()
        if self._ctx is None:
            return self._do(request, label)
        done = threading.Event()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["response"] = self._do(request, label)
            except BaseException as exc:  # handed to the calling thread
                box["error"] = exc
            finally:
                done.set()

        with self._lock:
            self._waiter = done
        try:
            threading.Thread(target=work, name="opa-http", daemon=True).start()
            done.wait()
        finally:
            with self._lock:
                self._waiter = None
        if "response" in box:
            return box["response"]
        if "error" in box and not self._killed.is_set():
            raise box["error"]
        self._raise_killed()
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Call OPA and return its JSON answer (an object; ``{}`` for an empty body)."""
        label = f"{method} {path}"
        clean = {k: v for k, v in (params or {}).items() if v is not None and v is not False}
        attempt = 0
        while True:
            kwargs: dict[str, Any] = {"params": clean or None, "headers": headers}
            if json_body is not None:
                kwargs["json"] = json_body
            elif content is not None:
                kwargs["content"] = content
            response = self._send(self._http.build_request(method, path, **kwargs), label)
            wait = None
            if response.status_code == 429 or (
                response.status_code == 503 and "retry-after" in response.headers
            ):
                wait = parse_retry_after(response.headers.get("retry-after"))
                if wait is None:
                    wait = float(2**attempt)
            if wait is None:
                break
            if attempt >= MAX_RATE_LIMIT_RETRIES:
                raise self._error(
                    response,
                    label,
                    prefix=f"{self.service} kept rate-limiting {label} after {attempt + 1} attempts",
                )
            if wait > MAX_RETRY_AFTER:
                raise self._error(
                    response,
                    label,
                    prefix=(
                        f"{self.service} rate-limited {label} and asked to retry after {wait:g}s, "
                        f"longer than the {MAX_RETRY_AFTER:g}s this task waits; use the task's retry policy"
                    ),
                )
            attempt += 1
            self._log(
                "warning",
                "%s answered HTTP %s to %s; retrying in %gs (retry %d of %d)",
                self.service,
                response.status_code,
                label,
                wait,
                attempt,
                MAX_RATE_LIMIT_RETRIES,
            )
            if self._ctx is not None:
                self._ctx.sleep(wait)
            else:
                time.sleep(wait)
        if response.status_code >= 400:
            raise self._error(response, label)
        if not response.content.strip():
            return {}
        try:
            body = response.json()
        except ValueError:
            raise OpaApiError(
                f"{self.service} returned a malformed response to {label} (HTTP {response.status_code}, "
                f"content-type {response.headers.get('content-type', '?')}, not JSON): {self._snippet(response)}",
                status=response.status_code,
            ) from None
        if not isinstance(body, dict):
            raise OpaApiError(
                f"{self.service} returned a malformed response to {label} (HTTP {response.status_code}): "
                f"expected a JSON object, got {self._snippet(response)}",
                status=response.status_code,
            )
        for warning in [body.get("warning")] if isinstance(body.get("warning"), dict) else []:
            self._log("info", "OPA: %s", self.scrub(str(warning.get("message", warning))))
        return body

    def malformed(self, label: str, what: str) -> OpaApiError:
        return OpaApiError(f"{self.service} returned a malformed response to {label}: {what}")

    # -- errors ----------------------------------------------------------------------------------
    def _snippet(self, response: httpx.Response) -> str:
        text = response.text.strip().replace("\n", " ")
        if len(text) > 300:
            text = text[:300] + "..."
        return self.scrub(text) or "(empty body)"

    def _error(self, response: httpx.Response, label: str, prefix: str | None = None) -> OpaApiError:
        status = response.status_code
        head = prefix or f"{self.service} error on {label} (HTTP {status})"
        try:
            body = response.json()
        except ValueError:
            body = None
        code = None
        if isinstance(body, dict) and ("code" in body or "message" in body):
            code = str(body.get("code")) if body.get("code") is not None else None
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
            message = f"{head}: {self.scrub(text)}"
        else:
            message = f"{head}: {self._snippet(response)}"
        if status == 401:
            message += " (check the token)"
        elif status == 403:
            message += " (the token is not allowed to make this call)"
        return OpaApiError(message, status=status, code=code)
