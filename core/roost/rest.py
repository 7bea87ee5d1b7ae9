"""A small REST transport for plugins that call an HTTP API, over httpx.

:class:`ApiClient` holds what every such plugin needs and nothing vendor-specific:

* one ``httpx.Client`` with the base URL, headers, timeouts, HTTP proxy and TLS verification
  taken from :class:`HttpOptions` (Kestra's ``options``);
* an optional ``httpx.Auth`` that signs every request as it is sent (each retry is signed
  anew: OAuth nonces, timestamps), and per-request headers (``send(..., headers=...)``);
* :meth:`ApiClient.send` runs each HTTP exchange on a helper thread so that killing the
  execution (``ctx.on_kill``) returns at once even while a request is in flight;
* answers the server asks to repeat later (by default ``429``, and ``503`` with
  ``Retry-After``) are retried a bounded number of times as :class:`HttpRetry` says, waiting
  with ``ctx.sleep`` so that a kill interrupts the wait;
* network failures, timeouts and non-JSON answers become :class:`ApiError` (a
  :class:`roost.TaskError`) naming the service, the call and -- inside :meth:`ApiClient.doing`
  -- what the task was doing;
* every registered secret (credentials, proxy password) is scrubbed from every message.

A plugin subclasses it, sets :attr:`ApiClient.service`, and overrides
:meth:`ApiClient.error_message` to read its vendor's error envelope::

    class AcmeClient(ApiClient):
        service = "Acme API"
        retry = HttpRetry(max_retries=5)

        def error_message(self, response):
            return self.scrub(response.json()["error"])

        with AcmeClient(url, headers={"Authorization": f"Bearer {t}"}, secrets=[t], ctx=ctx) as acme:
            with acme.doing("listing things"):
                body = acme.request("GET", "/things", params={"limit": 10})
"""

from __future__ import annotations

import email.utils
import functools
import json
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any, Literal, NoReturn, Self
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from pydantic import ConfigDict

from roost import Model, RunContext, TaskError
from roost.killgate import KillGate

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
    """An HTTP proxy between Roost and the API."""

    type: Literal["DIRECT", "HTTP"] = "HTTP"
    """Proxy type: ``HTTP`` or ``DIRECT`` (no proxy)."""
    address: str | None = None
    """Proxy host name or address."""
    port: int | None = None
    """Proxy port."""
    username: str | None = None
    """User name for the proxy, if it asks for one."""
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


class ApiError(TaskError):
    """An API call failed; ``status`` is the HTTP status (``None`` when there was no answer).

    ``timed_out`` tells a call that got no answer in time from other failures, and ``retry_after``
    holds the seconds an error answer asked to wait (its ``Retry-After``), for callers that pass
    them on (the AI Copilot answers 504 and 429 with them)."""

    timed_out: bool = False
    retry_after: float | None = None

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


@dataclass(frozen=True)
class HttpRetry:
    """Which answers :class:`ApiClient` waits out and sends again, and how long it waits.

    Only answers that say the server did not act on the request belong here (``429 Too Many
    Requests``, ``503 Service Unavailable``), which is why every method may be repeated.
    """

    statuses: frozenset[int] = frozenset({429})
    """Retried always: after the ``Retry-After`` delay, or with exponential backoff without one."""
    statuses_with_retry_after: frozenset[int] = frozenset({503})
    """Retried only when the answer carries a usable ``Retry-After``."""
    max_retries: int = 3
    """How many times one call is repeated before the task fails."""
    backoff: float = 1.0
    """The first wait (seconds) when no ``Retry-After`` says how long; doubled on each retry."""
    max_wait: float = 60.0
    """Longest wait (seconds); an answer asking for longer fails the call at once, since the
    task's own ``retry`` policy is the tool for long waits."""

    def delay(self, response: httpx.Response, retries: int) -> float | None:
        """Seconds to wait before repeating a call that got ``response`` after ``retries``
        retries, or ``None`` when this answer is not retried."""
        asked = parse_retry_after(response.headers.get("retry-after"))
        if response.status_code in self.statuses:
            return asked if asked is not None else self.backoff * 2**retries
        if response.status_code in self.statuses_with_retry_after:
            return asked
        return None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context, built once: building one loads the CA bundle (~30 ms),
    which every client paid before; a context is safe to share between clients and threads."""
    return httpx.create_ssl_context()


def _variants(secrets: Iterable[str]) -> list[str]:
    """Each secret as written and as Python/JSON would escape it, so scrubbing catches both."""
    out: list[str] = []
    for secret in secrets:
        out.append(secret)
        for escaped in (repr(secret)[1:-1], json.dumps(secret)[1:-1]):
            if escaped != secret:
                out.append(escaped)
    return out


def _without_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class ApiClient:
    """One connection to a REST API, bound to a task's run context (``ctx`` may be ``None`` in
    tests, and for calls made from a kill callback: no kill awareness, plain sleeps)."""

    service = "API"
    """The name messages give the API, e.g. ``"Cloudflare API"``."""
    user_agent = "roost"
    retry = HttpRetry()
    """Which answers are waited out and repeated (the constructor's ``retry`` overrides it)."""
    insecure_setting = "options.ssl.insecureTrustAllCertificates: true"
    """The task setting that turns TLS verification off, named when a certificate is refused."""
    error_class: type[ApiError] = ApiError
    """The exception every failure of this client raises."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
        secrets: Iterable[str | None] = (),
        options: HttpOptions | None = None,
        retry: HttpRetry | None = None,
        ctx: RunContext | None = None,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        """``headers`` go with every request; ``auth`` (an ``httpx.Auth``) signs each request as
        it is sent, retries included; ``secrets`` are scrubbed from every message; ``verify`` is a
        TLS context trusting a vendor's own CA (``options.ssl`` can still turn checks off)."""
        self.base_url = base_url.rstrip("/")
        self.display_url = _without_userinfo(self.base_url)
        """The base URL without credentials, for messages."""
        if retry is not None:
            self.retry = retry
        self._ctx = ctx
        self._doing: str | None = None
        self._secrets = _variants(s for s in (*secrets, urlsplit(self.base_url).password) if s)
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
            credentials = ""
            if options.proxy.username:
                credentials = quote(options.proxy.username, safe="")
                if options.proxy.password:
                    self._secrets.extend(_variants([options.proxy.password]))
                    credentials += ":" + quote(options.proxy.password, safe="")
                credentials += "@"
            port = f":{options.proxy.port}" if options.proxy.port else ""
            proxy = f"http://{credentials}{options.proxy.address}{port}"
        if options.model_extra and ctx is not None:
            ctx.logger.warning(
                "HTTP options not supported here and ignored: %s", ", ".join(sorted(options.model_extra))
            )
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Accept": "application/json", "User-Agent": self.user_agent, **(headers or {})},
            auth=auth,
            timeout=httpx.Timeout(read, connect=connect),
            follow_redirects=options.follow_redirects,
            verify=False
            if options.ssl and options.ssl.insecure_trust_all_certificates
            else verify or _tls_context(),
            proxy=proxy,
        )
        self._gate = KillGate(on_kill=self._http.close)
        self._killed = self._gate.killed
        if ctx is not None:
            ctx.on_kill(self._gate.kill)

    @staticmethod
    def header_value(value: str | None, name: str) -> str | None:
        """A credential stripped of surrounding blanks (``None`` when empty); one an HTTP header
        cannot carry is refused, naming the property ``name`` but never the value."""
        if value is None:
            return None
        value = value.strip()
        if any(c in value for c in "\r\n\x00") or not value.isascii():
            raise TaskError(f"{name} contains a line break or a character an HTTP header cannot carry")
        return value or None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _raise_killed(self) -> NoReturn:
        if self._ctx is not None:
            self._ctx.sleep(0)  # raises the engine's kill exception
        raise TaskError(f"{self.service} call{self._while()} abandoned: the execution was killed")

    # -- helpers ---------------------------------------------------------------------------------
    @contextmanager
    def doing(self, what: str) -> Iterator[None]:
        """Name what the calls inside are for: their error messages say ``while <what>``."""
        outer, self._doing = self._doing, what
        try:
            yield
        finally:
            self._doing = outer

    def _while(self) -> str:
        return f" while {self._doing}" if self._doing else ""

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret replaced by ``****``."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "****")
        return text

    def log(self, level: str, message: str, *args: Any) -> None:
        if self._ctx is not None:
            getattr(self._ctx.logger, level)(message, *args)

    def snippet(self, response: httpx.Response) -> str:
        """The start of a response body on one line, scrubbed, for error messages."""
        text = response.text.strip().replace("\n", " ")
        if len(text) > 300:
            text = text[:300] + "..."
        return self.scrub(text) or "(empty body)"

    # -- transport -------------------------------------------------------------------------------
    def _do(self, request: httpx.Request, label: str) -> httpx.Response:
        try:
            return self._http.send(request)
        except httpx.TimeoutException as exc:
            err = self.error_class(
                f"{self.service} did not answer {label}{self._while()} in time ({type(exc).__name__}; "
                f"read timeout {self._read_timeout:g}s): {self.scrub(str(exc)) or 'timed out'}"
            )
            err.timed_out = True
            raise err from None
        except httpx.ConnectError as exc:
            hint = ""
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                hint = (
                    " (the server's TLS certificate is not trusted: fix the certificate or, for a trusted "
                    f"test setup only, set {self.insecure_setting})"
                )
            raise self.error_class(
                f"cannot reach {self.service} at {self.display_url}{self._while()}: "
                f"{type(exc).__name__}: {self.scrub(str(exc))}{hint}"
            ) from None
        except httpx.HTTPError as exc:
            if self._killed.is_set():
                raise TaskError(
                    f"{self.service} call{self._while()} abandoned: the execution was killed"
                ) from None
            raise self.error_class(
                f"{self.service} request {label}{self._while()} failed: "
                f"{type(exc).__name__}: {self.scrub(str(exc))}"
            ) from None

    def _exchange(self, request: httpx.Request, label: str) -> httpx.Response:
        """One HTTP exchange; with a run context it runs on a helper thread that a kill abandons."""
        if self._killed.is_set():
            self._raise_killed()
        if self._ctx is None:
            return self._do(request, label)
        return self._gate.run(
            lambda: self._do(request, label), self._raise_killed, f"{type(self).__name__}-http"
        )

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
        content: bytes | str | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Call the API and return its response; an HTTP error status raises :meth:`error`.

        ``params`` is a mapping or a list of pairs (a key may repeat), added to any query ``path``
        has; ``None`` values are left out. ``headers`` are added to this call only, the same on each of its retries. Answers
        :attr:`retry` names are waited out and repeated, at most ``retry.max_retries`` times.
        """
        label = f"{method} {path}"
        clean: Any
        if isinstance(params, Mapping):
            clean = {k: v for k, v in params.items() if v is not None}
        else:
            clean = [(k, v) for k, v in params or () if v is not None]
        # Merged into the path's own query (``/machines/?op=deploy``), which httpx's params= would replace.
        target = httpx.URL(path).copy_merge_params(clean) if clean else path
        kwargs: dict[str, Any] = {"headers": headers}
        if json_body is not None:
            kwargs["json"] = json_body
        elif content is not None:
            kwargs["content"] = content
        elif files is not None or data is not None:
            kwargs["files"] = files
            kwargs["data"] = data
        retries = 0
        while True:
            response = self._exchange(self._http.build_request(method, target, **kwargs), label)
            status = response.status_code
            self.log("debug", "%s %s -> HTTP %s", self.service, label, status)
            wait = self.retry.delay(response, retries)
            if wait is None:
                break
            if retries >= self.retry.max_retries:
                raise self.error(
                    response,
                    label,
                    prefix=(
                        f"{self.service} kept rate-limiting {label}{self._while()} after {retries + 1} attempts "
                        f"(HTTP {status})"
                    ),
                )
            if wait > self.retry.max_wait:
                raise self.error(
                    response,
                    label,
                    prefix=(
                        f"{self.service} rate-limited {label}{self._while()} (HTTP {status}) and asked to retry "
                        f"after {wait:g}s, longer than the {self.retry.max_wait:g}s this task waits; use the "
                        "task's retry policy"
                    ),
                )
            retries += 1
            self.log(
                "warning",
                "%s answered HTTP %s to %s; retrying in %gs (retry %d of %d)",
                self.service,
                status,
                label,
                wait,
                retries,
                self.retry.max_retries,
            )
            if self._ctx is not None:
                self._ctx.sleep(wait)  # a kill interrupts the wait
            else:
                time.sleep(wait)
        if response.status_code >= 400:
            raise self.error(response, label)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API and return its decoded JSON body (``None`` for an empty body)."""
        response = self.send(method, path, **kwargs)
        if not response.content.strip():
            return None
        return self.decode(response, f"{method} {path}")

    def decode(self, response: httpx.Response, label: str) -> Any:
        """The JSON body of a response; an error naming the call when it is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise self.error_class(
                f"{self.service} returned a malformed response to {label}{self._while()} (HTTP "
                f"{response.status_code}, content-type {response.headers.get('content-type', '?')}, not JSON): "
                f"{self.snippet(response)}",
                status=response.status_code,
            ) from None

    # -- errors ----------------------------------------------------------------------------------
    def error(self, response: httpx.Response, label: str, prefix: str | None = None) -> ApiError:
        """The exception for an error answer: ``prefix`` (default: service, call and status),
        then :meth:`error_message`."""
        status = response.status_code
        head = prefix or f"{self.service} error on {label}{self._while()} (HTTP {status})"
        err = self.error_class(f"{head}: {self.error_message(response)}", status=status)
        err.retry_after = parse_retry_after(response.headers.get("retry-after"))
        return err

    def error_message(self, response: httpx.Response) -> str:
        """The API's own words about an error answer; override to read the vendor's envelope.

        Whatever it returns must be scrubbed (:meth:`scrub`); the default is the body's start.
        """
        return self.snippet(response)

    def malformed(self, label: str, what: str, response: httpx.Response | None = None) -> ApiError:
        """An error for an answer that is not as documented (with its HTTP status when given)."""
        where = f"{label}{self._while()}"
        if response is None:
            return self.error_class(f"{self.service} returned a malformed response to {where}: {what}")
        return self.error_class(
            f"{self.service} returned a malformed response to {where} (HTTP {response.status_code}): {what}",
            status=response.status_code,
        )
