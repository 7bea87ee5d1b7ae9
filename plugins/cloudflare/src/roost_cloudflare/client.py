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
from the server is scrubbed of them before it is shown. The transport (threads, retries,
scrubbing, HTTP options) is the core's :class:`roost.ApiClient`; this module adds the
Cloudflare credentials, the v4 envelope and its error format.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from roost import ApiClient, ApiError, HttpOptions, RunContext, TaskError, parse_retry_after

__all__ = ["CloudflareApiError", "CloudflareClient", "HttpOptions", "parse_retry_after"]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
USER_AGENT = "roost-plugin-cloudflare/0.1.0"
_ZONE_ID = re.compile(r"^[0-9a-f]{32}$")


class CloudflareApiError(ApiError):
    """The API answered with an error envelope or an error status."""

    def __init__(self, message: str, *, status: int | None = None, codes: tuple[int, ...] = ()) -> None:
        super().__init__(message, status=status)
        self.codes = codes


def looks_like_zone_id(value: str) -> bool:
    """Cloudflare identifiers are 32 lowercase hexadecimal characters."""
    return bool(_ZONE_ID.match(value))


class CloudflareClient(ApiClient):
    """One connection to the Cloudflare API, bound to a task's run context."""

    service = "Cloudflare API"
    user_agent = USER_AGENT
    error_class = CloudflareApiError

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
        api_token = self.header_value(api_token, "apiToken")
        api_key = self.header_value(api_key, "apiKey")
        email = self.header_value(email, "email")
        if api_token:
            headers = {"Authorization": f"Bearer {api_token}"}
        elif email and api_key:
            headers = {"X-Auth-Email": email, "X-Auth-Key": api_key}
        else:
            raise TaskError("Cloudflare credentials are missing: set apiToken, or email and apiKey")
        super().__init__(base_url, headers=headers, secrets=(api_token, api_key), options=options, ctx=ctx)

    def request(self, method: str, path: str, *, raw: bool = False, **kwargs: Any) -> Any:
        """Call the API; return the decoded envelope (or the ``httpx.Response`` when ``raw``)."""
        response = self.send(method, path, **kwargs)
        return response if raw else self._envelope(response, f"{method} {path}")

    # -- envelopes and errors --------------------------------------------------------------------
    def error_message(self, response: httpx.Response) -> str:
        errors = _errors(response)
        detail = self._format_errors(errors)[0] if errors else self.snippet(response)
        if response.status_code == 401:
            detail += " (check the credentials: apiToken, or email and apiKey)"
        elif response.status_code == 403:
            detail += " (the credentials lack a permission this call needs)"
        return detail

    def error(self, response: httpx.Response, label: str, prefix: str | None = None) -> ApiError:
        exc = super().error(response, label, prefix)
        errors = _errors(response)
        if errors and isinstance(exc, CloudflareApiError):
            exc.codes = self._format_errors(errors)[1]
        return exc

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
        body = self.decode(response, label)
        if not isinstance(body, dict) or "success" not in body:
            raise self.malformed(
                label,
                f"expected an object with 'success' and 'result', got {self.snippet(response)}",
                response,
            )
        if body.get("success") is not True:
            raise self.error(response, label)
        for message in body.get("messages") or ():
            if isinstance(message, dict) and message.get("message"):
                self.log("debug", "Cloudflare: %s", self.scrub(str(message["message"])))
        return body

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
            self.log("debug", "zoneId %r is not a Cloudflare id; looking it up as a zone name", zone_id)
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
        self.log("info", "zone %s resolved to id %s", name, found["id"])
        return found["id"], found.get("name")


def _errors(response: httpx.Response) -> list[Any]:
    """The ``errors`` list of a v4 envelope (empty when the body has none)."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return errors if isinstance(errors, list) else []


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
