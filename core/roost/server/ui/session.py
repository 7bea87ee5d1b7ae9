"""Browser sessions for the web UI: a signed cookie, CSRF tokens, login rate limits.

The cookie (``roost_session``) is ``base64url(json).base64url(hmac-sha256)`` over the user, an expiry
and a random nonce; it is HttpOnly, SameSite=Strict, Secure when the request came over HTTPS, and
signed with a server-side secret (``ROOST_SERVER_SESSION_SECRET``, else a random key kept in the data
folder, mode 0600, so sessions survive a restart). The CSRF token is bound to the session (an HMAC of
its nonce): every unsafe request a cookie authenticates must carry it, as the ``X-CSRF-Token`` header
(htmx and the UI's scripts send it) or a form's ``csrf_token`` field. Logout revokes the nonce in this
process and clears the cookie. A session for a user no longer in the configuration is refused.

Failed logins are limited per client address and user name (``MAX_FAILURES`` in ``WINDOW`` seconds),
and a wrong user costs as much as a wrong password and gets the same answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from roost.server.config import AuthConfig, hash_password, verify_password

COOKIE = "roost_session"
LOGIN_COOKIE = "roost_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
LIFETIME = 12 * 3600
MAX_FAILURES = 5
WINDOW = 300.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UI = "/ui"
# reachable without a session: the login page, its assets, and the root redirect
OPEN_PATHS = ("/", "/ui", "/ui/", "/ui/login")
OPEN_PREFIXES = ("/ui/static/",)

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(data_dir: Path | None, env: dict[str, str] | None = None) -> bytes:
    """The signing key: ``ROOST_SERVER_SESSION_SECRET`` (shared by several webservers), else a key file."""
    given = (os.environ if env is None else env).get("ROOST_SERVER_SESSION_SECRET")
    if given:
        return hashlib.sha256(given.encode()).digest()
    if data_dir is None:
        return secrets.token_bytes(32)
    path = Path(data_dir) / "ui-session.key"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


class LoginLimiter:
    """Failed logins per (client address, user name) in a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, ()) if now - t < self.window]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def retry_after(self, ip: str, user: str) -> float:
        """Seconds before this client may try this user again (0: now)."""
        now = time.monotonic()
        with self._lock:
            recent = self._recent((ip, user), now)
            if len(recent) < self.max_failures:
                return 0.0
            return max(0.0, self.window - (now - recent[0]))

    def failed(self, ip: str, user: str) -> None:
        with self._lock:
            if len(self._failures) > 100_000:
                self._failures.clear()
            self._failures.setdefault((ip, user), []).append(time.monotonic())

    def succeeded(self, ip: str, user: str) -> None:
        with self._lock:
            self._failures.pop((ip, user), None)


class Sessions:
    """Issues and checks session cookies; plugged into :class:`roost.server.auth.AuthMiddleware`."""

    def __init__(self, config: AuthConfig, secret: bytes, lifetime: int = LIFETIME) -> None:
        self.config = config
        self.secret = secret
        self.lifetime = lifetime
        self.limiter = LoginLimiter()
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()
        self._dummy = hash_password("roost-no-such-user", salt=b"\0" * 16)

    # -- tokens ------------------------------------------------------------------------------------------
    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self.secret, payload, hashlib.sha256).digest())

    def issue(self, user: str) -> str:
        payload = json.dumps({"u": user, "e": int(time.time()) + self.lifetime, "n": secrets.token_urlsafe(16)},
                             separators=(",", ":")).encode()  # fmt: skip
        return f"{_b64(payload)}.{self._sign(payload)}"

    def read(self, cookie: str | None) -> dict[str, Any] | None:
        """The session of a cookie value, or None (bad signature, expired, revoked, unknown user)."""
        if not cookie or len(cookie) > 1024 or "." not in cookie:
            return None
        body, _, sig = cookie.partition(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sign(payload)):
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("e"), int) or data["e"] < time.time():
            return None
        if data.get("n") in self._revoked or data.get("u") not in self.config.users:
            return None
        return data

    def csrf_token(self, session: dict[str, Any]) -> str:
        return self._sign(b"csrf:" + str(session["n"]).encode())

    def check_csrf(self, session: dict[str, Any], token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    def revoke(self, session: dict[str, Any]) -> None:
        now = time.time()
        with self._lock:
            self._revoked = {n: e for n, e in self._revoked.items() if e > now}
            self._revoked[str(session["n"])] = float(session["e"])

    def verify(self, user: str, password: str) -> bool:
        """Constant work whether the user exists or not (scrypt against a dummy hash)."""
        stored = self.config.users.get(user)
        ok = verify_password(password, stored or self._dummy)
        return ok and stored is not None

    # -- cookies -----------------------------------------------------------------------------------------
    def cookie_header(self, scope: dict[str, Any], value: str, max_age: int | None = None) -> str:
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        age = self.lifetime if max_age is None else max_age
        return f"{COOKIE}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict{secure}"

    # -- the middleware hook -----------------------------------------------------------------------------
    @staticmethod
    def is_open(path: str) -> bool:
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)

    def session_of(self, scope: dict[str, Any]) -> dict[str, Any] | None:
        return self.read(cookie_value(scope, COOKIE))

    async def authenticate(self, scope: dict[str, Any], receive: Any, send: Any, app: ASGIApp) -> bool:
        """Serve the request if a session cookie authenticates it (CSRF checked for unsafe methods
        outside the UI's own routes, which check the header or form field themselves); or send the
        browser to the login page. Returns False when the request is left to the other schemes."""
        path = scope.get("path", "")
        session = self.session_of(scope)
        if session is not None:
            method = scope.get("method", "GET")
            unsafe = method not in SAFE_METHODS and not path.startswith(UI + "/")
            if unsafe and not self.check_csrf(session, header_value(scope, CSRF_HEADER)):
                await _send(send, 403, b'{"message":"CSRF token missing or invalid (X-CSRF-Token header)"}',
                            [(b"content-type", b"application/json")])  # fmt: skip
                return True
            state = scope.setdefault("state", {})
            state["principal"] = session["u"]
            state["session"] = session
            state["csrf_token"] = self.csrf_token(session)
            await app(scope, receive, send)
            return True
        if path == UI or path.startswith(UI + "/"):
            target = UI + "/login?next=" + quote(path + ("?" + scope["query_string"].decode("latin-1")
                                                         if scope.get("query_string") else ""), safe="")  # fmt: skip
            if header_value(scope, "hx-request"):
                await _send(send, 401, b"", [(b"hx-redirect", target.encode())])
            else:
                await _send(send, 303, b"", [(b"location", target.encode())])
            return True
        return False


def cookie_value(scope: dict[str, Any], name: str) -> str | None:
    raw = header_value(scope, "cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def header_value(scope: dict[str, Any], name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", ()):
        if key == wanted:
            return value.decode("latin-1")
    return None


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
