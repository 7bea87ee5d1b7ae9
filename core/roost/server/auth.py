"""Basic auth and API tokens (Bearer), as a pure ASGI middleware.

With auth configured every route but ``/health`` (and the configured open URLs:
Kestra's webhook route by default, whose key is its credential) answers an
anonymous request with 401. Open URLs match the path the router routes — the
percent-decoded path — segment by segment (:func:`roost.server.config.compile_open_url`):
a wildcard never spans a ``/``, and a path with an empty, ``.`` or ``..`` segment
is never open. A verified password is remembered by its SHA-256 so that scrypt
runs once per credential, not once per request; scrypt runs off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import threading
from typing import Any

import anyio.to_thread

from roost.server.config import AuthConfig, compile_open_url, hash_password, hash_token, verify_password
from roost.server.rbac import Principal

PUBLIC = ("/health",)
MAX_CREDENTIALS = 4096  # bytes of an Authorization header; longer is refused without decoding it


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the user is unknown, so that a wrong user costs as much as a wrong password."""
    return hash_password("roost-no-such-user", salt=b"\0" * 16)


def route_path(scope: dict[str, Any]) -> str:
    """The path the router matches: the decoded path less ``root_path`` (as Starlette computes it)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (path == root or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def open_url(patterns: list[tuple[str, ...]], path: str) -> bool:
    """Whether ``path`` (a decoded route path) matches one of the compiled open-URL patterns."""
    if not path.startswith("/"):
        return False
    segments = path[1:].split("/")
    if any(s in ("", ".", "..") for s in segments):
        return False
    for pattern in patterns:
        if pattern and pattern[-1] == "**":
            head = pattern[:-1]
            if len(segments) < len(head):
                continue
        elif len(segments) != len(pattern):
            continue
        else:
            head = pattern
        if all(p == "*" or p == s for p, s in zip(head, segments, strict=False)):
            return True
    return False


class AuthMiddleware:
    def __init__(self, app: Any, config: AuthConfig, sessions: Any = None, audit: Any = None) -> None:
        """``sessions``: the web UI's cookie sessions (:class:`roost.server.ui.session.Sessions`), if any;
        ``audit``: the :class:`roost.server.audit.AuditRecorder` of logins and failed logins."""
        self.app = app
        self.config = config
        self.sessions = sessions
        self.audit = audit
        self._verified: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._open = [compile_open_url(u) for u in config.open_urls]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.config.enabled:
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path in PUBLIC or open_url(self._open, path):
            await self.app(scope, receive, send)
            return
        if self.sessions is not None and self.sessions.is_open(path):
            await self.app(scope, receive, send)
            return
        header = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value
                break
        # a browser: its session cookie, or the login page
        if (
            not header
            and self.sessions is not None
            and await self.sessions.authenticate(scope, receive, send, self.app)
        ):
            return
        principal = await self.check(header)
        if principal is None:
            if header:
                await self._login(scope, self._claimed(header), False)
            await _unauthorized(send, "Authentication required: use basic auth or an API token (Authorization: Bearer ...)"
                                if not header else "Invalid credentials")  # fmt: skip
            return
        scope.setdefault("state", {})["principal"] = principal
        await self._login(scope, principal.id, True, "token" if principal.kind == "token" else "basic")
        await self.app(scope, receive, send)

    async def _login(self, scope: dict[str, Any], user: str, success: bool, method: str = "basic") -> None:
        if self.audit is None:
            return
        from roost.server.audit import client_ip

        ip = client_ip(scope, self.config.trusted_proxies)
        attempts = self.audit.admit_login(user, ip, success)
        if attempts:  # most requests are held back by the rate limit: no thread, no write
            await anyio.to_thread.run_sync(
                functools.partial(self.audit.write_login, user, ip, success, method, attempts)
            )

    @staticmethod
    def _claimed(header: bytes) -> str:
        """Who a refused ``Authorization`` header claimed to be (the user of basic auth; never a secret)."""
        try:
            scheme, _, credentials = header.decode("ascii").partition(" ")
            if scheme.lower() == "basic":
                user = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[0]
                return user[:256] or "(empty user)"
            if scheme.lower() == "bearer":
                return "(API token)"
        except (UnicodeError, ValueError, binascii.Error):
            pass
        return "(malformed credentials)"

    async def check(self, header: bytes) -> Principal | None:
        """The principal named by an ``Authorization`` header, or None. Any malformed header is
        simply not a credential: non-ASCII bytes, bad base64, a password that is not UTF-8."""
        if not header or len(header) > MAX_CREDENTIALS or not header.isascii():
            return None
        scheme, _, credentials = header.decode("ascii").partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "bearer" and credentials:
            name = self.config.tokens.get(hash_token(credentials))
            return None if name is None else Principal(name, "token")
        if scheme != "basic" or not credentials:
            return None
        try:
            user, sep, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return None
        if not sep:
            return None
        stored = self.config.users.get(user)
        key = (user, hashlib.sha256(f"{stored}\0{password}".encode()).hexdigest())
        if stored is not None and key in self._verified:
            return Principal(user)
        ok = await anyio.to_thread.run_sync(verify_password, password, stored or _dummy_hash())
        if not ok or stored is None:
            return None
        with self._lock:
            if len(self._verified) > 10000:
                self._verified.clear()
            self._verified.add(key)
        return Principal(user)


async def _unauthorized(send: Any, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Basic realm="Roost"'),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
