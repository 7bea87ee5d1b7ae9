"""Basic auth and API tokens (Bearer), as a pure ASGI middleware.

With auth configured every route but ``/health`` (and the configured open URLs:
webhooks by default, whose key is their credential, as in Kestra) answers an
anonymous request with 401. A verified password is remembered by its SHA-256 so
that scrypt runs once per credential, not once per request.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import threading
from typing import Any

from roost.server.config import AuthConfig, hash_token, verify_password

PUBLIC = ("/health",)


class AuthMiddleware:
    def __init__(self, app: Any, config: AuthConfig, sessions: Any = None) -> None:
        """``sessions``: the web UI's cookie sessions (:class:`roost.server.ui.session.Sessions`), if any."""
        self.app = app
        self.config = config
        self.sessions = sessions
        self._verified: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._open = [u if u.endswith("*") else u + "*" for u in config.open_urls]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.config.enabled:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in PUBLIC or any(fnmatch.fnmatchcase(path, pat) for pat in self._open):
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
        principal = self.check(header.decode("latin-1"))
        if principal is None:
            await _unauthorized(send, "Authentication required: use basic auth or an API token (Authorization: Bearer ...)"
                                if not header else "Invalid credentials")  # fmt: skip
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def check(self, header: str) -> str | None:
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and credentials:
            return self.config.tokens.get(hash_token(credentials.strip()))
        if scheme == "basic" and credentials:
            try:
                user, sep, password = (
                    base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                return None
            if not sep:
                return None
            stored = self.config.users.get(user)
            if stored is None:
                return None
            key = (user, hashlib.sha256((stored + "\0" + password).encode()).hexdigest())
            if key in self._verified:
                return user
            if verify_password(password, stored):
                with self._lock:
                    if len(self._verified) > 10000:
                        self._verified.clear()
                    self._verified.add(key)
                return user
        return None


async def _unauthorized(send: Any, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Basic realm="Roost"'),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
