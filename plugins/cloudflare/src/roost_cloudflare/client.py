"""A small client for the Cloudflare API v4, over httpx.

Every call goes through :meth:`CloudflareClient.request`, which

* authenticates with an API token (``Authorization: Bearer``) or with the legacy
  ``X-Auth-Email`` + ``X-Auth-Key`` pair;
* unwraps the v4 envelope ``{"success", "errors", "messages", "result", "result_info"}``
  and turns ``success: false`` into a :class:`CloudflareApiError` carrying Cloudflare's
  own codes and messages;
* honours ``429 Too Many Requests`` (and ``503`` with ``Retry-After``) a bounded number
  of times, waiting with ``ctx.sleep`` so a kill interrupts the wait;
* turns network failures and timeouts into clear :class:`roost.TaskError` messages;
* runs each HTTP exchange on a helper thread so that killing the execution returns at
  once even while a request is in flight.

Credentials never appear in a log line or an error message: every text that comes back
from the server is scrubbed of them before it is shown.
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import ConfigDict
from roost import Model, RunContext, TaskError

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
USER_AGENT = "roost-plugin-cloudflare/0.1.0"
MAX_RATE_LIMIT_RETRIES = 3
"""How many times a rate-limited call is retried before the task fails."""
MAX_RETRY_AFTER = 60.0
"""Longest ``Retry-After`` (seconds) the client waits; a longer one fails the task at once."""
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0
_ZONE_ID = re.compile(r"^[0-9a-f]{32}$")


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


class CloudflareApiError(TaskError):
    """The API answered with an error envelope or an error status."""

    def __init__(self, message: str, *, status: int | None = None, codes: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
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
    base = now if now is not None else time.time()
    return max(0.0, when.timestamp() - base)


def _header_value(value: str | None, name: str) -> str | None:
    """A credential stripped of surrounding blanks; one that cannot be sent in a header is refused."""
    if value is None:
        return None
    value = value.strip()
    if any(c in value for c in "\r\n\x00") or not value.isascii():
        raise TaskError(f"{name} contains a line break or a character an HTTP header cannot carry")
    return value or None


def _variants(secrets: Any) -> list[str]:
    """Each secret as written and as Python/JSON would escape it, so scrubbing catches both."""
    out: list[str] = []
    for secret in secrets:
        out.append(secret)
        for escaped in (repr(secret)[1:-1], json.dumps(secret)[1:-1]):
            if escaped != secret:
                out.append(escaped)
    return out


def looks_like_zone_id(value: str) -> bool:
    """Cloudflare identifiers are 32 lowercase hexadecimal characters."""
    return bool(_ZONE_ID.match(value))


class CloudflareClient:
    """One connection to the Cloudflare API, bound to a task's run context."""

    service = "Cloudflare API"

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_token: str | None = None,
        email: str | None = None,
        api_key: str | None = None,
        options: HttpOptions | None = None,
        ctx: RunContext | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise TaskError(f"baseUrl must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._ctx = ctx
        api_token = _header_value(api_token, "apiToken")
        api_key = _header_value(api_key, "apiKey")
        email = _header_value(email, "email")
        self._secrets = _variants(s for s in (api_token, api_key) if s)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if api_token:
            headers["Authorization"] = f"Bearer {api_token}"
        elif email and api_key:
            headers["X-Auth-Email"] = email
            headers["X-Auth-Key"] = api_key
        else:
            raise TaskError("Cloudflare credentials are missing: set apiToken, or email and apiKey")
        options = options or HttpOptions()
        connect = DEFAULT_CONNECT_TIMEOUT
        read = DEFAULT_READ_TIMEOUT
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
                from urllib.parse import quote

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
            base_url=self.base_url,
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

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> CloudflareClient:
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

    # -- helpers ---------------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        """``text`` with every credential replaced by ``****``."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "****")
        return text

    def _log(self, level: str, message: str, *args: Any) -> None:
        if self._ctx is not None:
            getattr(self._ctx.logger, level)(message, *args)

    def _sleep(self, seconds: float) -> None:
        if self._ctx is not None:
            self._ctx.sleep(seconds)
        else:
            time.sleep(seconds)

    # -- transport -------------------------------------------------------------------------------
    def _do(self, request: httpx.Request, label: str) -> httpx.Response:
        try:
            return self._http.send(request)
        except httpx.TimeoutException as exc:
            kind = type(exc).__name__
            raise TaskError(
                f"{self.service} did not answer {label} in time ({kind}; read timeout "
                f"{self._read_timeout:g}s): {self.scrub(str(exc)) or 'timed out'}"
            ) from None
        except httpx.ConnectError as exc:
            raise TaskError(
                f"cannot reach {self.service} at {self.base_url}: {self.scrub(str(exc))}"
            ) from None
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
            threading.Thread(target=work, name="cloudflare-http", daemon=True).start()
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
        files: Any = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        """Call the API; return the decoded envelope (or the ``httpx.Response`` when ``raw``)."""
        label = f"{method} {path}"
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            kwargs: dict[str, Any] = {"params": clean_params or None, "headers": headers}
            if json_body is not None:
                kwargs["json"] = json_body
            elif content is not None:
                kwargs["content"] = content
            elif files is not None or data is not None:
                kwargs["files"] = files
                kwargs["data"] = data
            request = self._http.build_request(method, path, **kwargs)
            response = self._send(request, label)
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
            self._sleep(wait)
        if raw:
            if response.status_code >= 400:
                raise self._error(response, label)
            return response
        return self._envelope(response, label)

    # -- envelopes and errors --------------------------------------------------------------------
    def _snippet(self, response: httpx.Response) -> str:
        text = response.text.strip().replace("\n", " ")
        if len(text) > 300:
            text = text[:300] + "..."
        return self.scrub(text) or "(empty body)"

    def _error(self, response: httpx.Response, label: str, prefix: str | None = None) -> CloudflareApiError:
        status = response.status_code
        head = prefix or f"{self.service} error on {label} (HTTP {status})"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
            detail, codes = self._format_errors(body["errors"])
            message = f"{head}: {detail}"
        else:
            codes = ()
            message = f"{head}: {self._snippet(response)}"
        if status == 401:
            message += " (check the credentials: apiToken, or email and apiKey)"
        elif status == 403:
            message += " (the credentials lack a permission this call needs)"
        return CloudflareApiError(message, status=status, codes=codes)

    def _format_errors(self, errors: list[Any]) -> tuple[str, tuple[int, ...]]:
        parts = []
        codes = []
        for err in errors:
            if not isinstance(err, dict):
                parts.append(self.scrub(str(err)))
                continue
            code = err.get("code")
            if isinstance(code, int):
                codes.append(code)
            text = (
                f"[{code}] {err.get('message', '')}".strip() if code is not None else str(err.get("message"))
            )
            chain = err.get("error_chain")
            if isinstance(chain, list) and chain:
                inner, inner_codes = self._format_errors(chain)
                codes.extend(inner_codes)
                text += f" ({inner})"
            parts.append(self.scrub(text))
        return "; ".join(parts), tuple(codes)

    def _envelope(self, response: httpx.Response, label: str) -> dict[str, Any]:
        try:
            body = response.json()
        except (ValueError, json.JSONDecodeError):
            if response.status_code >= 400:
                raise self._error(response, label) from None
            ctype = response.headers.get("content-type", "?")
            raise CloudflareApiError(
                f"{self.service} returned a malformed response to {label} (HTTP {response.status_code}, "
                f"content-type {ctype}, not JSON): {self._snippet(response)}",
                status=response.status_code,
            ) from None
        if not isinstance(body, dict) or "success" not in body:
            if response.status_code >= 400:
                raise self._error(response, label)
            raise CloudflareApiError(
                f"{self.service} returned a malformed response to {label} (HTTP {response.status_code}): "
                f"expected an object with 'success' and 'result', got {self._snippet(response)}",
                status=response.status_code,
            )
        if body.get("success") is not True or response.status_code >= 400:
            raise self._error(response, label)
        for message in body.get("messages") or ():
            if isinstance(message, dict) and message.get("message"):
                self._log("debug", "Cloudflare: %s", self.scrub(str(message["message"])))
        return body

    def malformed(self, label: str, what: str) -> CloudflareApiError:
        """An error for a response whose envelope is fine but whose ``result`` is not as documented."""
        return CloudflareApiError(f"{self.service} returned a malformed response to {label}: {what}")

    # -- conveniences ----------------------------------------------------------------------------
    def result(self, method: str, path: str, *, expect: type | tuple[type, ...] = dict, **kw: Any) -> Any:
        """The ``result`` member of a call, checked against the expected JSON type."""
        body = self.request(method, path, **kw)
        result = body.get("result")
        if expect is not None and not isinstance(result, expect):
            raise self.malformed(
                f"{method} {path}", f"'result' should be {_type_name(expect)}, got {_json_kind(result)}"
            )
        return result

    def pages(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        per_page: int = 100,
        max_pages: int = 100_000,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield every page of a paginated list (``page``/``per_page``, ``result_info.total_pages``)."""
        page = 1
        seen = 0
        while page <= max_pages:
            label = f"GET {path}"
            body = self.request("GET", path, params={**(params or {}), "page": page, "per_page": per_page})
            result = body.get("result")
            if result is None:
                result = []
            if not isinstance(result, list):
                raise self.malformed(label, f"'result' should be a list, got {_json_kind(result)}")
            seen += len(result)
            yield result
            info = body.get("result_info")
            if not isinstance(info, dict) or not result:
                return
            total_pages = info.get("total_pages")
            total_count = info.get("total_count")
            if isinstance(total_pages, int):
                if page >= total_pages:
                    return
            elif isinstance(total_count, int):
                if seen >= total_count:
                    return
            else:
                return
            page += 1

    def list_all(self, path: str, params: dict[str, Any] | None = None, *, per_page: int = 100) -> list[Any]:
        items: list[Any] = []
        for chunk in self.pages(path, params, per_page=per_page):
            items.extend(chunk)
        return items

    def zone(self, zone_id: str) -> dict[str, Any]:
        return self.result("GET", f"/zones/{zone_id}")

    def resolve_zone(self, zone_id: str | None, zone_name: str | None) -> tuple[str, str | None]:
        """(zone id, zone name if known) from a zone id, or from a zone name looked up by ``GET /zones``."""
        if zone_id and looks_like_zone_id(zone_id):
            return zone_id, None
        name = zone_name or zone_id
        if not name:
            raise TaskError("set zoneId or zoneName")
        name = name.strip().rstrip(".").lower()
        if zone_id:
            self._log("debug", "zoneId %r is not a Cloudflare id; looking it up as a zone name", zone_id)
        zones = self.result("GET", "/zones", params={"name": name, "per_page": 50}, expect=list)
        matches = [z for z in zones if isinstance(z, dict) and str(z.get("name", "")).lower() == name]
        if not matches:
            raise TaskError(f"no Cloudflare zone named {name!r} is visible to these credentials")
        if len(matches) > 1:
            accounts = ", ".join(str((z.get("account") or {}).get("name") or z.get("id")) for z in matches)
            raise TaskError(f"several Cloudflare zones are named {name!r} ({accounts}): set zoneId instead")
        found = matches[0]
        if not isinstance(found.get("id"), str):
            raise self.malformed("GET /zones", "a zone has no 'id'")
        self._log("info", "zone %s resolved to id %s", name, found["id"])
        return found["id"], found.get("name")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _type_name(expect: type | tuple[type, ...]) -> str:
    kinds = expect if isinstance(expect, tuple) else (expect,)
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def utc_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
