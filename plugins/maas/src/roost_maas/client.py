"""A small MAAS API 2.0 client over httpx, signed with OAuth 1.0 PLAINTEXT.

MAAS authenticates API calls with "0-legged" OAuth 1.0: the API key
``consumer_key:token_key:token_secret`` becomes an ``Authorization: OAuth ...``
header whose PLAINTEXT signature is ``<consumer secret>&<token secret>`` (the
consumer secret is empty), with a fresh nonce and timestamp on every request
(RFC 5849, sections 3.4.4 and 3.5.1). Named operations are selected with the
``op`` query parameter (``POST /machines/{system_id}/?op=deploy``), their
arguments travel as a form-encoded body.

Every failure becomes a :class:`MaasApiError` (a :class:`roost.TaskError`)
whose message names the call, the HTTP status and MAAS's own text, with the
parts of the API key scrubbed out.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from roost import TaskError, parse_retry_after

API_PATH = "/api/2.0"
USER_AGENT = "roost-plugin-maas/0.1.0"

# MAAS NODE_STATUS values (maasserver/enum.py) and their display names.
NODE_STATUS_NAMES: dict[int, str] = {
    0: "New",
    1: "Commissioning",
    2: "Failed commissioning",
    3: "Missing",
    4: "Ready",
    5: "Reserved",
    6: "Deployed",
    7: "Retired",
    8: "Broken",
    9: "Deploying",
    10: "Allocated",
    11: "Failed deployment",
    12: "Releasing",
    13: "Failed releasing",
    14: "Disk erasing",
    15: "Failed disk erasing",
    16: "Rescue mode",
    17: "Entering rescue mode",
    18: "Failed to enter rescue mode",
    19: "Exiting rescue mode",
    20: "Failed to exit rescue mode",
    21: "Testing",
    22: "Failed testing",
}


class MaasApiError(TaskError):
    """A MAAS call failed; ``status`` is the HTTP status (``None`` for network errors)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def parse_api_key(api_key: str) -> tuple[str, str, str]:
    """Split ``consumer_key:token_key:token_secret``; the error never repeats the key."""
    parts = (api_key or "").strip().split(":")
    if len(parts) != 3 or not all(parts):
        raise TaskError(
            "apiKey must be a MAAS API key of the form 'consumer_key:token_key:token_secret' "
            f"(three non-empty parts separated by ':'; got {len(parts)} part(s))"
        )
    return parts[0], parts[1], parts[2]


def oauth_header(consumer_key: str, token_key: str, token_secret: str) -> str:
    """The ``Authorization`` header value of one request (OAuth 1.0, PLAINTEXT)."""
    # RFC 5849 3.4.4: signature = encode(consumer_secret) "&" encode(token_secret).
    signature = "&" + quote(token_secret, safe="")
    params = {
        "oauth_version": "1.0",
        "oauth_signature_method": "PLAINTEXT",
        "oauth_consumer_key": consumer_key,
        "oauth_token": token_key,
        "oauth_signature": signature,
        "oauth_nonce": uuid.uuid4().hex,
        "oauth_timestamp": str(int(time.time())),
    }
    # RFC 5849 3.5.1: every parameter value is percent-encoded in the header.
    return "OAuth " + ", ".join(f'{k}="{quote(v, safe="")}"' for k, v in params.items())


def api_root(url: str) -> str:
    """``http://host:5240/MAAS`` (or ``.../MAAS/api/2.0/``) -> ``http://host:5240/MAAS/api/2.0``."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TaskError(
            f"url must be the http(s) address of MAAS, e.g. http://maas.example.com:5240/MAAS (got {url!r})"
        )
    path = parts.path.rstrip("/")
    if not path.endswith(API_PATH):
        path += API_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def public_url(url: str) -> str:
    """The MAAS address without any user:password part, for logs and asset metadata."""
    parts = urlsplit((url or "").strip())
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), else ``default``."""
    wait = parse_retry_after(value)
    return default if wait is None else wait


class MaasClient:
    """Calls the MAAS 2.0 API; one instance per task run (or per kill callback)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        verify_ssl: bool = True,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        logger: Any = None,
        max_rate_limit_retries: int = 5,
        max_retry_after: float = 60.0,
    ) -> None:
        self.root = api_root(url)
        self.display_url = public_url(url)
        self._consumer_key, self._token_key, self._token_secret = parse_api_key(api_key)
        self._sleep = sleep
        self._logger = logger
        self._max_retries = max_rate_limit_retries
        self._max_retry_after = max_retry_after
        self._http = httpx.Client(
            verify=verify_ssl,
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    # -- plumbing -------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MaasClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def redact(self, text: str) -> str:
        """Remove every part of the API key from ``text`` (MAAS echoes the token key on 401)."""
        for secret in sorted(
            {self._consumer_key, self._token_key, self._token_secret}, key=len, reverse=True
        ):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "****")
        return text

    def _debug(self, msg: str, *args: Any) -> None:
        if self._logger is not None:
            self._logger.debug(msg, *args)

    def request(
        self,
        method: str,
        path: str,
        *,
        op: str | None = None,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        data: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
    ) -> Any:
        """Send one call and return the decoded JSON body (``None`` when empty)."""
        query: list[tuple[str, str]] = []
        if op:
            query.append(("op", op))
        query.extend(_pairs(params))
        form = _pairs(data)
        url = self.root + path
        what = f"{method} {path}" + (f"?op={op}" if op else "")
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method,
                    url,
                    params=query or None,
                    data=_form(form) or None,
                    headers={
                        "Authorization": oauth_header(self._consumer_key, self._token_key, self._token_secret)
                    },
                )
            except httpx.TimeoutException as exc:
                raise MaasApiError(
                    f"MAAS at {self.display_url} did not answer {what} in time ({type(exc).__name__})"
                ) from None
            except httpx.TransportError as exc:
                hint = ""
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    hint = " (the TLS certificate is not trusted; fix the certificate or, for a trusted test setup only, set verifySsl: false)"
                raise MaasApiError(
                    f"cannot reach MAAS at {self.display_url} for {what}: {type(exc).__name__}: {self.redact(str(exc))}{hint}"
                ) from None
            self._debug("MAAS %s -> HTTP %s", what, response.status_code)
            if (
                response.status_code in (429, 503)
                and "retry-after" in response.headers
                and attempt < self._max_retries
            ):
                attempt += 1
                wait = min(retry_after_seconds(response.headers.get("retry-after")), self._max_retry_after)
                if self._logger is not None:
                    self._logger.warning(
                        "MAAS answered HTTP %s to %s; retrying in %.1f s as Retry-After asks (attempt %d of %d)",
                        response.status_code,
                        what,
                        wait,
                        attempt,
                        self._max_retries,
                    )
                self._sleep(wait)
                continue
            return self._decode(response, what)

    def _decode(self, response: httpx.Response, what: str) -> Any:
        status = response.status_code
        text = response.text
        if status >= 400:
            raise MaasApiError(self._error_message(status, text, what), status)
        if not text.strip():
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, ValueError):
            ctype = response.headers.get("content-type", "?")
            snippet = self.redact(text.strip()[:200])
            raise MaasApiError(
                f"MAAS returned a response that is not JSON for {what} (HTTP {status}, content-type {ctype}): {snippet!r}",
                status,
            ) from None

    def _error_message(self, status: int, text: str, what: str) -> str:
        detail = _error_detail(text)
        detail = self.redact(detail) if detail else "(no message)"
        reason = {
            400: "the request was rejected",
            401: "the API key was not accepted; check apiKey (consumer_key:token_key:token_secret)",
            403: "the API key's user is not allowed to do this (most machine operations need a MAAS admin)",
            404: "not found",
            409: "the machine is not in a state that allows this operation",
            429: "rate limited",
            503: "MAAS is unavailable",
        }.get(status, "failed")
        return f"MAAS {what} failed with HTTP {status}: {reason}: {detail}"

    # -- machines -------------------------------------------------------------------------------
    def list_machines(self, params: Sequence[tuple[str, Any]] | None = None) -> list[dict[str, Any]]:
        body = self.request("GET", "/machines/", params=params)
        if not isinstance(body, list) or not all(isinstance(m, dict) for m in body):
            raise MaasApiError(
                f"MAAS returned an unexpected body for GET /machines/ (expected a list of machines, got {_kind(body)})"
            )
        return body

    def get_machine(self, system_id: str) -> dict[str, Any]:
        try:
            body = self.request("GET", f"/machines/{quote(system_id, safe='')}/")
        except MaasApiError as exc:
            if exc.status == 404:
                raise MaasApiError(
                    f"MAAS has no machine with system_id '{system_id}' (HTTP 404)", 404
                ) from None
            raise
        return _expect_machine(body, f"GET /machines/{system_id}/")

    def create_machine(self, data: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        return _expect_machine(self.request("POST", "/machines/", data=data), "POST /machines/")

    def machine_op(self, system_id: str, op: str, data: Sequence[tuple[str, Any]] | None = None) -> Any:
        try:
            return self.request("POST", f"/machines/{quote(system_id, safe='')}/", op=op, data=data)
        except MaasApiError as exc:
            if exc.status == 404:
                raise MaasApiError(
                    f"MAAS has no machine with system_id '{system_id}' (HTTP 404 on op={op})", 404
                ) from None
            raise

    def query_power_state(self, system_id: str) -> str:
        body = self.request("GET", f"/machines/{quote(system_id, safe='')}/", op="query_power_state")
        if not isinstance(body, dict) or not isinstance(body.get("state"), str):
            raise MaasApiError(
                f"MAAS returned an unexpected body for op=query_power_state (expected {{'state': ...}}, got {_kind(body)})"
            )
        return body["state"]

    def tag_machine(self, tag: str, system_id: str) -> None:
        """Add ``tag`` to a machine, creating the tag when MAAS does not know it yet."""
        path = f"/tags/{quote(tag, safe='')}/"
        try:
            self.request("POST", path, op="update_nodes", data=[("add", system_id)])
            return
        except MaasApiError as exc:
            if exc.status != 404:
                raise
        self.request("POST", "/tags/", data=[("name", tag), ("comment", "created by Roost")])
        self.request("POST", path, op="update_nodes", data=[("add", system_id)])


# -- helpers ------------------------------------------------------------------------------------
def _pairs(values: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> list[tuple[str, str]]:
    if not values:
        return []
    items = values.items() if isinstance(values, Mapping) else values
    out: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, list | tuple):
            out.extend((key, str(v)) for v in value)
        else:
            out.append((key, str(value)))
    return out


def _form(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Pairs as httpx form data (a key repeated for every value, e.g. mac_addresses)."""
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    return form


def _kind(body: Any) -> str:
    if body is None:
        return "an empty body"
    return type(body).__name__


def _expect_machine(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("system_id"), str):
        raise MaasApiError(
            f"MAAS returned an unexpected body for {what} (expected a machine with a system_id, got {_kind(body)})"
        )
    return body


def _error_detail(text: str) -> str:
    """MAAS error bodies are plain text, or a JSON object of field -> messages (form errors)."""
    text = (text or "").strip()
    if not text:
        return ""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(body, dict):
        parts = []
        for key, value in body.items():
            msgs = value if isinstance(value, list) else [value]
            parts.append(f"{key}: {' '.join(str(m) for m in msgs)}")
        return "; ".join(parts)[:500]
    return str(body)[:500]
