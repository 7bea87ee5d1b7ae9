"""The HTTP side of roostctl: one httpx client per command, API errors mapped to exit codes.

Exit codes (documented in ``roostctl --help``):

=====  ===========================================================================
0      success
1      the operation failed: the server refused it, a flow is invalid, some files
       failed, or a waited-for execution did not end in SUCCESS
2      usage error: bad arguments or flags, unreadable config file, unknown context
3      authentication or authorization failed (HTTP 401/403)
4      not found (HTTP 404: flow, execution, file, key, asset...)
5      the server cannot be reached (connection refused, DNS, TLS, timeout)
=====  ===========================================================================
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from roost.cli.ctl_config import Settings

OK, FAILED, USAGE, AUTH, NOT_FOUND, UNREACHABLE = 0, 1, 2, 3, 4, 5
TERMINAL = frozenset({"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"})


class CtlError(Exception):
    """A failure roostctl reports on stderr and turns into an exit code."""

    def __init__(self, message: str, code: int = FAILED, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.body = body


class WaitTimeout(CtlError):
    """An execution waited for did not end in time; ``execution`` is how it was last seen."""

    def __init__(self, message: str, execution: dict[str, Any]) -> None:
        super().__init__(message)
        self.execution = execution


class NotFound(CtlError):
    def __init__(self, message: str, body: Any = None) -> None:
        super().__init__(message, NOT_FOUND, 404, body)


def _message(resp: httpx.Response) -> tuple[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return (text[:500] or resp.reason_phrase), None
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error") or resp.reason_phrase
        return str(msg), body
    return resp.reason_phrase, body


def seg(value: str) -> str:
    """One URL path segment."""
    return quote(str(value), safe="")


class Client:
    """The Roost (or Kestra) API for one tenant."""

    def __init__(self, settings: Settings, timeout: float = 60.0) -> None:
        self.settings = settings
        self.tenant = settings.tenant
        auth: Any = None
        headers = {"User-Agent": "roostctl", "Accept": "application/json"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        elif settings.username:
            auth = httpx.BasicAuth(settings.username, settings.password or "")
        hooks: dict[str, list[Any]] = (
            {"request": [self._log_request], "response": [self._log_response]} if settings.verbose else {}
        )
        self.http = httpx.Client(
            base_url=settings.host, auth=auth, headers=headers, timeout=timeout, event_hooks=hooks
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- verbose ------------------------------------------------------------------------------------------
    @staticmethod
    def _log_request(request: httpx.Request) -> None:
        auth = request.headers.get("authorization")
        shown = f" (authorization: {auth.split(' ', 1)[0]} ***)" if auth else ""
        print(f"> {request.method} {request.url}{shown}", file=sys.stderr)

    @staticmethod
    def _log_response(response: httpx.Response) -> None:
        print(f"< {response.status_code} {response.request.method} {response.request.url}", file=sys.stderr)

    # -- requests ------------------------------------------------------------------------------------------
    def path(self, path: str) -> str:
        return f"/api/v1/{seg(self.tenant)}{path}"

    def request(self, method: str, path: str, *, tenant_scoped: bool = True, ok404: bool = False,
                **kw: Any) -> httpx.Response:  # fmt: skip
        url = self.path(path) if tenant_scoped else path
        try:
            resp = self.http.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            raise CtlError(f"the server at {self.settings.host} did not answer in time ({type(exc).__name__})",
                           UNREACHABLE) from None  # fmt: skip
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise CtlError(f"cannot reach the server at {self.settings.host}: {exc}", UNREACHABLE) from None
        except httpx.UnsupportedProtocol as exc:
            raise CtlError(f"invalid host {self.settings.host!r}: {exc}", 2) from None
        if resp.status_code < 400 or (ok404 and resp.status_code == 404):
            return resp
        msg, body = _message(resp)
        if resp.status_code in (401, 403):
            hint = (
                ""
                if self.settings.auth_method != "none"
                else " (no credentials configured: use --token, or --username and --password)"
            )
            raise CtlError(f"{'authentication' if resp.status_code == 401 else 'authorization'} failed: {msg}{hint}",
                           AUTH, resp.status_code, body)  # fmt: skip
        if resp.status_code == 404:
            raise NotFound(msg, body)
        raise CtlError(msg, FAILED, resp.status_code, body)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def exists(self, path: str, **kw: Any) -> bool:
        return self.request("GET", path, ok404=True, **kw).status_code != 404

    # -- shared helpers ----------------------------------------------------------------------------------------
    def paged(self, path: str, params: list[tuple[str, Any]] | None = None, size: int = 200,
              limit: int | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Every result of a paged search endpoint (``{"results": [...], "total": N}``)."""
        page, seen = 1, 0
        while True:
            body = self.get(path, params=[*(params or []), ("page", page), ("size", size)])
            results = body.get("results") or [] if isinstance(body, dict) else list(body or [])
            for item in results:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            total = body.get("total") if isinstance(body, dict) else None
            if not results or total is None or seen >= int(total):
                return
            page += 1

    def execution(self, execution_id: str) -> dict[str, Any]:
        return self.get(f"/executions/{seg(execution_id)}")

    def wait_execution(self, execution_id: str, timeout: float | None = None, poll: float = 0.5,
                       on_state: Any = None) -> dict[str, Any]:  # fmt: skip
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            ex = self.execution(execution_id)
            state = (ex.get("state") or {}).get("current")
            if on_state is not None and state != last:
                on_state(state)
                last = state
            if state in TERMINAL:
                return ex
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(
                    f"execution {execution_id} did not end within {timeout:g} s (state {state})", ex
                )
            time.sleep(poll)


def filters(**values: Any) -> list[tuple[str, Any]]:
    """Kestra 1.x search filters as query parameters: ``filters[field][OP]=value``.

    A value may be a scalar (EQUALS), a list (IN), a ``(op, value)`` pair, or for ``labels``
    a mapping of label key to value.
    """
    out: list[tuple[str, Any]] = []
    for name, value in values.items():
        if value is None or value == [] or value == {}:
            continue
        if name == "labels" and isinstance(value, dict):
            out += [(f"filters[labels][EQUALS][{k}]", v) for k, v in value.items()]
        elif isinstance(value, tuple):
            out.append((f"filters[{name}][{value[0]}]", value[1]))
        elif isinstance(value, (list, set)):
            out.append((f"filters[{name}][IN]", ",".join(map(str, value))))
        else:
            out.append((f"filters[{name}][EQUALS]", value))
    return out
