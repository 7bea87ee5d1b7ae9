"""A small MAAS API 2.0 client over :class:`roost.ApiClient`, signed with OAuth 1.0 PLAINTEXT.

MAAS authenticates API calls with "0-legged" OAuth 1.0: the API key
``consumer_key:token_key:token_secret`` becomes an ``Authorization: OAuth ...``
header whose PLAINTEXT signature is ``<consumer secret>&<token secret>`` (the
consumer secret is empty), with a fresh nonce and timestamp on every request,
retries included (RFC 5849, sections 3.4.4 and 3.5.1): :class:`MaasOAuth` signs
each request as httpx sends it. Named operations are selected with the ``op``
query parameter (``POST /machines/{system_id}/?op=deploy``), their arguments
travel as a form-encoded body.

The transport (kill-aware requests, ``Retry-After`` waits, scrubbing of the key) is
the core's; every failure becomes a :class:`MaasApiError` whose message names the
call, the HTTP status and MAAS's own text.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from roost import ApiClient, ApiError, HttpOptions, HttpRetry, HttpSsl, HttpTimeout, RunContext, TaskError

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


class MaasApiError(ApiError):
    """A MAAS call failed; ``status`` is the HTTP status (``None`` for network errors)."""


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


class MaasOAuth(httpx.Auth):
    """Signs every request (each retry anew, with a fresh nonce) with the MAAS API key."""

    def __init__(self, api_key: str) -> None:
        self.key = parse_api_key(api_key)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = oauth_header(*self.key)
        yield request


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


REASONS = {
    400: "the request was rejected",
    401: "the API key was not accepted; check apiKey (consumer_key:token_key:token_secret)",
    403: "the API key's user is not allowed to do this (most machine operations need a MAAS admin)",
    404: "not found",
    409: "the machine is not in a state that allows this operation",
    429: "rate limited",
    503: "MAAS is unavailable",
}


KILL_RETRY = HttpRetry(
    statuses=frozenset(), statuses_with_retry_after=frozenset({429, 503}), max_retries=1, max_wait=5.0
)
"""Retries of the calls a kill callback makes: one short wait at most."""


class MaasClient(ApiClient):
    """Calls the MAAS 2.0 API; one instance per task run (or per kill callback, without ``ctx``)."""

    service = "MAAS"
    user_agent = USER_AGENT
    error_class = MaasApiError
    insecure_setting = "verifySsl: false"
    # MAAS answers 429 and 503 with Retry-After when it is busy or starting; other answers stand.
    retry = HttpRetry(statuses=frozenset(), statuses_with_retry_after=frozenset({429, 503}), max_retries=5)

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        verify_ssl: bool = True,
        timeout: float = 30.0,
        retry: HttpRetry | None = None,
        ctx: RunContext | None = None,
    ) -> None:
        auth = MaasOAuth(api_key)
        limit = timedelta(seconds=timeout)
        super().__init__(
            api_root(url),
            auth=auth,
            secrets=auth.key,
            options=HttpOptions(
                timeout=HttpTimeout(connect_timeout=limit, read_idle_timeout=limit),
                follow_redirects=False,
                ssl=HttpSsl(insecure_trust_all_certificates=not verify_ssl),
            ),
            retry=retry,
            ctx=ctx,
        )
        self.public_url = public_url(url)

    def call(
        self,
        method: str,
        path: str,
        *,
        op: str | None = None,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        data: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
    ) -> Any:
        """Send one call (``op`` names a MAAS operation) and return the decoded JSON body (``None`` when empty)."""
        if op:
            path += f"?op={quote(op, safe='')}"
        form = _form(_pairs(data))
        return self.request(method, path, params=_pairs(params), data=form or None)

    def error_message(self, response: httpx.Response) -> str:
        detail = _error_detail(response.text)
        detail = self.scrub(detail) if detail else "(no message)"
        return f"{REASONS.get(response.status_code, 'failed')}: {detail}"

    # -- machines -------------------------------------------------------------------------------
    def list_machines(self, params: Sequence[tuple[str, Any]] | None = None) -> list[dict[str, Any]]:
        body = self.call("GET", "/machines/", params=params)
        if not isinstance(body, list) or not all(isinstance(m, dict) for m in body):
            raise self.malformed("GET /machines/", f"expected a list of machines, got {_kind(body)}")
        return body

    def get_machine(self, system_id: str) -> dict[str, Any]:
        path = f"/machines/{quote(system_id, safe='')}/"
        try:
            body = self.call("GET", path)
        except MaasApiError as exc:
            if exc.status == 404:
                raise MaasApiError(
                    f"MAAS has no machine with system_id '{system_id}' (HTTP 404)", status=404
                ) from None
            raise
        return self._machine(body, f"GET {path}")

    def create_machine(self, data: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        return self._machine(self.call("POST", "/machines/", data=data), "POST /machines/")

    def machine_op(self, system_id: str, op: str, data: Sequence[tuple[str, Any]] | None = None) -> Any:
        try:
            return self.call("POST", f"/machines/{quote(system_id, safe='')}/", op=op, data=data)
        except MaasApiError as exc:
            if exc.status == 404:
                raise MaasApiError(
                    f"MAAS has no machine with system_id '{system_id}' (HTTP 404 on op={op})", status=404
                ) from None
            raise

    def query_power_state(self, system_id: str) -> str:
        path = f"/machines/{quote(system_id, safe='')}/"
        body = self.call("GET", path, op="query_power_state")
        if not isinstance(body, dict) or not isinstance(body.get("state"), str):
            raise self.malformed(
                f"GET {path}?op=query_power_state", f"expected {{'state': ...}}, got {_kind(body)}"
            )
        return body["state"]

    def tag_machine(self, tag: str, system_id: str) -> None:
        """Add ``tag`` to a machine, creating the tag when MAAS does not know it yet."""
        path = f"/tags/{quote(tag, safe='')}/"
        try:
            self.call("POST", path, op="update_nodes", data=[("add", system_id)])
            return
        except MaasApiError as exc:
            if exc.status != 404:
                raise
        self.call("POST", "/tags/", data=[("name", tag), ("comment", "created by Roost")])
        self.call("POST", path, op="update_nodes", data=[("add", system_id)])

    def _machine(self, body: Any, label: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("system_id"), str):
            raise self.malformed(label, f"expected a machine with a system_id, got {_kind(body)}")
        return body


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
