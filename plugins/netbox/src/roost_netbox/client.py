"""The NetBox connection: pynetbox over a requests session that knows about Roost.

The session adds what pynetbox leaves to the caller: a timeout on every request,
bounded retries of HTTP 429 honouring ``Retry-After`` (waiting with the interruptible
``ctx.sleep``), cancellation on kill (the session is closed from the kill thread), and
clear :class:`roost.TaskError` messages for unreachable hosts, TLS failures, refused
tokens, missing objects and NetBox's validation errors (the 400 body, verbatim).
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pynetbox
import requests
from roost import RunContext, TaskError

MAX_429_RETRIES = 3
MAX_RETRY_AFTER = 60.0
SECRET_HEADERS = ("authorization",)


class _Killed(Exception):
    """The execution was killed while a request was under way."""


class RoostSession(requests.Session):
    """A requests session with a default timeout, 429 handling and kill support."""

    def __init__(self, ctx: RunContext, timeout: float, max_429_retries: int = MAX_429_RETRIES) -> None:
        super().__init__()
        self.ctx = ctx
        self.timeout = timeout
        self.max_429_retries = max_429_retries
        self.closed = False

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        # Explicit, or REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE would override a session-level verify=False.
        kwargs.setdefault("verify", self.verify)
        attempt = 0
        while True:
            if self.closed or self.ctx.killed():
                raise _Killed()
            try:
                response = self._send(method, url, *args, **kwargs)
            except requests.exceptions.RequestException:
                if self.closed or self.ctx.killed():
                    raise _Killed() from None
                raise
            if response.status_code != 429 or attempt >= self.max_429_retries:
                return response
            attempt += 1
            wait = retry_after_seconds(response.headers.get("Retry-After"), default=2.0**attempt)
            self.ctx.logger.warning(
                "NetBox answered HTTP 429 (too many requests) to %s %s; retry %d/%d in %.1f s",
                method.upper(),
                _path(url),
                attempt,
                self.max_429_retries,
                wait,
            )
            response.close()
            self.ctx.sleep(wait)  # raises when the execution is killed

    def _send(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        """One HTTP exchange in a helper thread, so that a kill returns at once even mid-request."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["response"] = requests.Session.request(self, method, url, *args, **kwargs)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name="netbox-http", daemon=True).start()
        while not done.wait(0.05):
            if self.closed or self.ctx.killed():
                raise _Killed()
        if "error" in box:
            raise box["error"]
        return box["response"]

    def close(self) -> None:
        self.closed = True
        super().close()


def retry_after_seconds(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), bounded."""
    wait = default
    if value:
        value = value.strip()
        try:
            wait = float(value)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                wait = parsed.timestamp() - time.time()
    return max(0.0, min(wait, MAX_RETRY_AFTER))


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class NetBox:
    """One NetBox API connection for the duration of a task run."""

    def __init__(self, ctx: RunContext, url: str, token: str, verify_ssl: bool = True, timeout: float = 30.0):
        url = (url or "").strip().rstrip("/")
        if not url:
            raise TaskError("the NetBox 'url' is empty")
        if url.endswith("/api"):
            url = url[: -len("/api")]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TaskError(
                f"the NetBox 'url' must be an http(s) URL such as https://netbox.example.com, not {url!r}"
            )
        if not token:
            raise TaskError("the NetBox 'token' is empty")
        self.ctx = ctx
        self.url = url
        self.host = parts.netloc
        self.timeout = timeout
        self.session = RoostSession(ctx, timeout)
        self.session.verify = verify_ssl
        if not verify_ssl and parts.scheme == "https":
            import urllib3

            # Said once in the task log instead of a Python warning on every request.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            ctx.logger.warning("TLS certificate verification is off for %s (verifySsl: false)", url)
        self.api = pynetbox.api(url, token=token.strip())
        self.api.http_session = self.session
        ctx.on_kill(self.session.close)

    # -- error translation -------------------------------------------------------------------
    @contextmanager
    def call(self, what: str) -> Iterator[None]:
        """Run pynetbox calls, turning every failure into a TaskError that names ``what``."""
        try:
            yield
        except _Killed:
            raise TaskError(f"cancelled while {what}: the execution was killed") from None
        except pynetbox.RequestError as exc:
            raise TaskError(self.describe_http_error(exc.req, what)) from None
        except pynetbox.ContentError as exc:
            raise TaskError(self.describe_bad_content(exc.req, what)) from None
        except requests.exceptions.SSLError as exc:
            raise TaskError(
                f"TLS error while {what} at {self.url}: {_reason(exc)} "
                "(set verifySsl: false only for a NetBox with a self-signed certificate)"
            ) from None
        except requests.exceptions.Timeout:
            raise TaskError(
                f"NetBox at {self.url} did not answer within {self.timeout:g} s while {what} (requestTimeout)"
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise TaskError(f"cannot reach NetBox at {self.url} while {what}: {_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise TaskError(f"HTTP request to NetBox failed while {what}: {_reason(exc)}") from None
        except ValueError as exc:  # JSON decoding of a 2xx body inside pynetbox
            raise TaskError(f"NetBox sent a malformed response while {what}: {exc}") from None

    def describe_http_error(self, resp: requests.Response, what: str) -> str:
        status = resp.status_code
        body = _body_text(resp)
        detail = _detail(resp)
        where = f"{resp.request.method} {_path(resp.url)}" if resp.request is not None else resp.url
        if status in (401, 403):
            return (
                f"NetBox refused the request while {what} (HTTP {status} {resp.reason}, {where}): {detail or body}. "
                "Check that the API token is valid, enabled, not expired and allowed to do this "
                "(write-enabled with the needed permissions)."
            )
        if status == 404:
            return (
                f"not found while {what}: NetBox answered HTTP 404 to {where}"
                + (f": {detail}" if detail else "")
                + f" (is {self.url} the base URL of NetBox, and the object still there?)"
            )
        if status == 400:
            return f"NetBox rejected the request while {what} (HTTP 400, {where}): {body}"
        if status == 429:
            return f"NetBox kept answering HTTP 429 (too many requests) while {what} ({where}), retries exhausted"
        return f"NetBox answered HTTP {status} {resp.reason} while {what} ({where}): {body[:2000]}"

    def describe_bad_content(self, resp: requests.Response, what: str) -> str:
        ctype = resp.headers.get("Content-Type", "?")
        snippet = _body_text(resp)[:200]
        return (
            f"NetBox at {self.url} sent a malformed response while {what} "
            f"(HTTP {resp.status_code}, Content-Type {ctype}, not the JSON the API returns): {snippet!r}. "
            "Is 'url' the base URL of a NetBox instance?"
        )

    def ensure_json_object(self, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise TaskError(
                f"NetBox sent a malformed response while {what}: expected a JSON object, got {value!r:.200}"
            )
        return value

    # -- helpers -----------------------------------------------------------------------------
    def patch(self, endpoint: Any, obj_id: int, data: dict[str, Any], what: str) -> dict[str, Any]:
        """PATCH one object at its own URL (so that a 400 carries NetBox's plain validation body)."""
        from pynetbox.core.query import Request

        req = Request(key=obj_id, base=endpoint.url, token=self.api.token, http_session=self.session)
        with self.call(what):
            return self.ensure_json_object(req.patch(data), what)

    def web_url(self, obj: dict[str, Any]) -> str | None:
        return obj.get("display_url") or None

    def asset_id(self, kind: str, obj_id: Any) -> str:
        return f"{self.host}/{kind}/{obj_id}"


def _reason(exc: BaseException) -> str:
    """The innermost useful message of a requests/urllib3 exception chain."""
    text = str(exc)
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None)
    if reason is not None:
        text = str(reason)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "timed out",
                   "Temporary failure in name resolution", "certificate verify failed"):  # fmt: skip
        if marker in str(exc):
            return marker
    return text[:500]


def _body_text(resp: requests.Response) -> str:
    try:
        return resp.text.strip()
    except Exception:  # pragma: no cover - undecodable body
        return repr(resp.content[:500])


def _detail(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return ""
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return data["detail"]
    return ""
