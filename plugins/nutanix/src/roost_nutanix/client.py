"""A small client of the Nutanix Prism Central v4 REST APIs over :class:`roost.ApiClient`.

Kestra's Nutanix plugin speaks the v4 APIs, and so does this client:

* VMM ``/api/vmm/v4.0/ahv/config/vms`` (list with ``$page``/``$limit``/``$filter``/
  ``$orderby``/``$select``, create, read with an ``ETag``, update/delete/actions
  with ``If-Match`` -- HTTP 428 without it, 412 when it is stale),
* VMM templates ``/api/vmm/v4.0/content/templates`` (create from a VM or a
  version, ``$actions/deploy``),
* data protection ``/api/dataprotection/{version}/config/recovery-points``,
* Prism tasks ``/api/prism/v4.0/config/tasks/{extId}`` and
  ``$actions/cancel``.

Mutating calls answer HTTP 202 with a task reference; they carry an
``NTNX-Request-Id`` that stays the same when a call is retried after HTTP 429,
so Prism Central never runs an operation twice. The transport (kill-aware
requests, ``Retry-After`` waits, scrubbing of credentials) is the core's; errors
become :class:`PrismError` naming the call, the HTTP status and Prism's own
messages (v4 ``data.error`` envelopes, schema validation errors, or v3
``message_list`` from older gateways).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from roost import ApiClient, ApiError, HttpOptions, HttpRetry, HttpSsl, HttpTimeout, RunContext, TaskError

VMM = "/api/vmm/v4.0"
PRISM = "/api/prism/v4.0"
USER_AGENT = "roost-plugin-nutanix/0.1.0"
MAX_LIMIT = 100


class PrismError(ApiError):
    """A Prism Central call failed; ``status`` is the HTTP status (``None`` for network errors)."""


@dataclass
class Reply:
    body: Any
    etag: str | None
    status: int


def base_url(host: str, port: int | None, scheme: str) -> str:
    """``pc.example.com`` + 9440 + https, or a full ``https://pc:9440`` in ``host``."""
    host = (host or "").strip().rstrip("/")
    if not host:
        raise TaskError("host must be the Prism Central host name or address")
    if "://" in host:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TaskError(f"host {host!r} is not an http(s) address")
        scheme = parts.scheme
        port = parts.port or port
        host = parts.hostname
    if scheme not in ("http", "https"):
        raise TaskError(f"scheme must be http or https (got {scheme!r})")
    if ":" in host and not host.startswith("["):  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or 9440}"


def q(value: str) -> str:
    """A path segment; task ids such as ``ZXJnb24=:uuid`` keep their ':' and '='."""
    return quote(value, safe=":=")


REASONS = {
    400: "the request was rejected",
    401: "authentication failed; check username/password, token or apiKey",
    403: "the user is not allowed to do this",
    404: "not found",
    409: "conflict",
    412: "the object changed since it was read (stale If-Match ETag)",
    428: "the call needs an If-Match ETag",
    429: "rate limited",
    503: "Prism Central is unavailable",
}

# Prism answers 429 and 503 with Retry-After when it sheds load; other answers stand.
RETRY = HttpRetry(statuses=frozenset(), statuses_with_retry_after=frozenset({429, 503}), max_retries=5)
KILL_RETRY = HttpRetry(
    statuses=frozenset(), statuses_with_retry_after=frozenset({429, 503}), max_retries=1, max_wait=5.0
)
"""Retries of the calls a kill callback makes: one short wait at most."""


class PrismClient(ApiClient):
    """Calls Prism Central; one instance per task run (or per kill callback, without ``ctx``)."""

    service = "Prism Central"
    user_agent = USER_AGENT
    error_class = PrismError
    insecure_setting = "verifySsl: false"
    retry = RETRY

    def __init__(
        self,
        host: str,
        *,
        port: int | None = 9440,
        scheme: str = "https",
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        api_key: str | None = None,
        verify_ssl: bool = True,
        timeout: float = 30.0,
        retry: HttpRetry | None = None,
        ctx: RunContext | None = None,
    ) -> None:
        token = self.header_value(token, "token")
        api_key = self.header_value(api_key, "apiKey")
        headers: dict[str, str] = {}
        auth: httpx.Auth | None = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif api_key:
            headers["X-ntnx-api-key"] = api_key
        elif username and password:
            auth = httpx.BasicAuth(username, password)
        else:
            raise TaskError(
                "Prism Central credentials are missing: set username and password, or token, or apiKey"
            )
        limit = timedelta(seconds=timeout)
        super().__init__(
            base_url(host, port, scheme),
            headers=headers,
            auth=auth,
            secrets=(password, token, api_key),
            options=HttpOptions(
                timeout=HttpTimeout(connect_timeout=limit, read_idle_timeout=limit),
                ssl=HttpSsl(insecure_trust_all_certificates=not verify_ssl),
            ),
            retry=retry,
            ctx=ctx,
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        if_match: str | None = None,
    ) -> Reply:
        """One call; its JSON body (``None`` when empty), ETag and status."""
        headers: dict[str, str] = {}
        if method != "GET":
            # One id per logical call, the same on its retries: Prism recognises a repeat.
            headers["NTNX-Request-Id"] = str(uuid.uuid4())
        if if_match is not None:
            headers["If-Match"] = if_match
        response = self.send(method, path, params=params, json_body=body, headers=headers)
        data = self.decode(response, f"{method} {path}") if response.content.strip() else None
        return Reply(data, response.headers.get("etag"), response.status_code)

    def error_message(self, response: httpx.Response) -> str:
        detail = self.scrub(error_detail(response.text)) or "(no message)"
        return f"{REASONS.get(response.status_code, 'failed')}: {detail}"

    # -- typed helpers ------------------------------------------------------------------------------
    def data(self, reply: Reply, what: str, kind: type = dict) -> Any:
        body = reply.body
        if not isinstance(body, dict) or "data" not in body or not isinstance(body["data"], kind):
            raise PrismError(
                f"Prism Central returned a malformed response to {what}: expected an object with a "
                f"'data' {'list' if kind is list else 'object'}, got {_describe(body)}",
                status=reply.status,
            )
        return body["data"]

    def task_ref(self, reply: Reply, what: str) -> str:
        data = self.data(reply, what)
        ext_id = data.get("extId")
        if not isinstance(ext_id, str) or not ext_id:
            raise PrismError(
                f"Prism Central accepted {what} but returned no task reference (data.extId): {_describe(data)}",
                status=reply.status,
            )
        return ext_id

    def page(self, path: str, *, page: int, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
        reply = self.call("GET", path, params={"$page": page, "$limit": limit, **params})
        body = reply.body
        if isinstance(body, dict) and "data" not in body and "metadata" in body:
            return [], _total(body, 0)  # an empty page has no data member
        items = self.data(reply, f"GET {path}", list)
        if not all(isinstance(i, dict) for i in items):
            raise PrismError(f"Prism Central returned list items that are not objects for GET {path}")
        return items, _total(body, len(items))

    def list_all(self, path: str, *, limit: int = MAX_LIMIT, **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 0
        while True:
            items, total = self.page(path, page=page, limit=limit, **params)
            out.extend(items)
            if not items or len(out) >= total or len(items) < limit:
                return out
            page += 1

    def get(self, path: str, what: str) -> tuple[dict[str, Any], str | None]:
        reply = self.call("GET", path)
        return self.data(reply, what), reply.etag

    # -- VMs ------------------------------------------------------------------------------------------
    def get_vm(self, ext_id: str) -> tuple[dict[str, Any], str]:
        try:
            vm, etag = self.get(f"{VMM}/ahv/config/vms/{q(ext_id)}", "GET vm")
        except PrismError as exc:
            if exc.status == 404:
                raise PrismError(
                    f"Prism Central has no VM with extId '{ext_id}' (HTTP 404): {exc}", status=404
                ) from None
            raise
        if not etag:
            raise PrismError(
                f"Prism Central returned VM '{ext_id}' without an ETag header; cannot change it safely"
            )
        return vm, etag

    def vm_action(self, ext_id: str, action: str, etag: str, body: Any = None) -> str:
        path = f"{VMM}/ahv/config/vms/{q(ext_id)}/$actions/{action}"
        return self.task_ref(self.call("POST", path, body=body, if_match=etag), path)

    # -- tasks ----------------------------------------------------------------------------------------
    def get_task(self, ext_id: str) -> dict[str, Any]:
        task, _ = self.get(f"{PRISM}/config/tasks/{q(ext_id)}", "GET task")
        if not isinstance(task.get("status"), str):
            raise PrismError(f"Prism Central returned task '{ext_id}' without a status: {_describe(task)}")
        return task

    def cancel_task(self, ext_id: str) -> None:
        self.call("POST", f"{PRISM}/config/tasks/{q(ext_id)}/$actions/cancel")


def _total(body: Any, default: int) -> int:
    meta = body.get("metadata") if isinstance(body, dict) else None
    total = meta.get("totalAvailableResults") if isinstance(meta, dict) else None
    return total if isinstance(total, int) else default


def _describe(body: Any) -> str:
    if body is None:
        return "an empty body"
    text = json.dumps(body)[:160] if not isinstance(body, str) else body[:160]
    return f"{type(body).__name__} {text}"


def error_detail(text: str) -> str:
    """Prism's own words from an error body (v4 envelopes, schema errors, v3 message_list)."""
    text = (text or "").strip()
    if not text:
        return ""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500]
    messages: list[str] = []

    def app_messages(items: Any) -> None:
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, dict):
                msg = item.get("message") or item.get("reason") or ""
                code = item.get("code")
                if msg:
                    messages.append(f"{msg} [{code}]" if code else msg)
                for sub in item.get("validationErrorMessages") or []:
                    if isinstance(sub, dict) and sub.get("message"):
                        where = sub.get("attributePath")
                        messages.append(f"{where}: {sub['message']}" if where else sub["message"])

    if isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, dict) and "error" in data:
            app_messages(data["error"])
        if "message_list" in body:  # v3: {"state": "ERROR", "code": 409, "message_list": [...]}
            app_messages(body["message_list"])
        if not messages and body.get("message"):
            messages.append(str(body["message"]))
    return "; ".join(messages)[:500] if messages else text[:500]
