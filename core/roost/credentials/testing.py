"""A small OAuth 2.0 authorization server on loopback, for tests of credential types.

It follows the specifications a real server does, strictly enough that a
client bug shows: RFC 6749 (token endpoint, ``client_credentials``, client
authentication by HTTP Basic with form-encoded id and secret, or by form
fields; one method per request; errors as ``error``/``error_description``),
RFC 7521/7523 (JWT bearer grant and ``private_key_jwt`` client assertions:
signature checked with the registered public key, ``iss``/``sub``/``aud``/
``exp``/``jti`` checked, replays refused) and GitHub's installation-token
endpoint (an RS256 app JWT valid at most 10 minutes). Any other GET is a
resource that accepts the tokens it issued, so a flow can call it.

::

    with FakeAuthorizationServer(expires_in=3600) as server:
        server.add_client("roost", "s3cret")
        ...  # tokenEndpoint: server.token_url
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY = 30
_INSTALLATION = re.compile(r"^(?P<prefix>.*)/app/installations/(?P<id>[^/]+)/access_tokens$")


class OAuthError(Exception):
    def __init__(
        self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None
    ):
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status, self.headers = error, description, status, headers or {}


@dataclass
class Client:
    client_id: str
    secret: str | None = None
    auth_method: str = (
        "client_secret_basic"  # client_secret_basic | client_secret_post | private_key_jwt | none
    )
    public_key: Any = None
    scopes: set[str] | None = None  # None: any scope


@dataclass
class Issuer:
    issuer: str
    public_key: Any
    subjects: set[str] | None = None
    scopes: set[str] | None = None


@dataclass
class GitHubApp:
    app_id: str
    public_key: Any
    installations: set[str] = field(default_factory=set)


class FakeAuthorizationServer:
    """An authorization server (and a resource accepting its tokens) on ``127.0.0.1``."""

    token_path = "/oauth/token"

    def __init__(self, *, expires_in: int | None = 3600, host: str = "127.0.0.1") -> None:
        self.expires_in = expires_in
        self.host = host
        self.clients: dict[str, Client] = {}
        self.issuers: dict[str, Issuer] = {}
        self.github_apps: dict[str, GitHubApp] = {}
        self.requests: list[dict[str, Any]] = []  # every token request, as received
        self.tokens: dict[str, dict[str, Any]] = {}  # issued access token -> grant
        self.resource_calls: list[dict[str, Any]] = []
        self.delay = 0.0  # seconds each token answer waits (concurrency tests)
        self._failures: list[tuple[int, Any]] = []
        self._jti: set[str] = set()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- registration ---------------------------------------------------------------------------------
    def add_client(self, client_id: str, secret: str | None = None, *, auth_method: str = "client_secret_basic",
                   public_key: Any = None, scopes: set[str] | list[str] | None = None) -> Client:  # fmt: skip
        if auth_method == "private_key_jwt" and public_key is None:
            raise ValueError("a private_key_jwt client needs its public key")
        client = Client(client_id, secret, auth_method, _public(public_key), set(scopes) if scopes else None)
        self.clients[client_id] = client
        return client

    def add_jwt_issuer(self, issuer: str, public_key: Any, *, subjects: set[str] | list[str] | None = None,
                       scopes: set[str] | list[str] | None = None) -> Issuer:  # fmt: skip
        entry = Issuer(
            issuer, _public(public_key), set(subjects) if subjects else None, set(scopes) if scopes else None
        )
        self.issuers[issuer] = entry
        return entry

    def add_github_app(self, app_id: str | int, public_key: Any, installations: list[Any] = ()) -> GitHubApp:  # type: ignore[assignment]
        app = GitHubApp(str(app_id), _public(public_key), {str(i) for i in installations})
        self.github_apps[str(app_id)] = app
        return app

    def fail_next(self, status: int, body: Any, times: int = 1) -> None:
        """Answer the next ``times`` token requests with ``status`` and ``body`` (a dict is sent as JSON)."""
        self._failures.extend([(status, body)] * times)

    def valid(self, token: str) -> dict[str, Any] | None:
        """The grant behind ``token`` if this server issued it and it has not expired."""
        grant = self.tokens.get(token)
        if grant is None or grant["expires_at"] < time.time():
            return None
        return grant

    # -- lifecycle ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    @property
    def token_url(self) -> str:
        return self.url + self.token_path

    def start(self) -> FakeAuthorizationServer:
        server = self

        class Handler(_Handler):
            auth = server

        self._httpd = ThreadingHTTPServer((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-oauth", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeAuthorizationServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the token endpoint (RFC 6749 §3.2, §4.4, §5; RFC 7523) ---------------------------------------
    def token_request(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError(
                "invalid_request", f"expected application/x-www-form-urlencoded, got {ctype or 'none'}"
            )
        raw = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
        for name, values in raw.items():
            if len(values) > 1:
                raise OAuthError("invalid_request", f"parameter {name} is repeated")
        form = {k: v[0] for k, v in raw.items()}
        record: dict[str, Any] = {"form": dict(form), "headers": dict(headers.items()), "at": time.time()}
        with self._lock:
            self.requests.append(record)
        if self.delay:
            time.sleep(self.delay)
        if self._failures:
            with self._lock:
                status, failure = self._failures.pop(0) if self._failures else (0, None)
            if status:
                return status, failure or {}, {}
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is missing")
        client, method = self._authenticate(headers, form)
        record["client_id"] = client.client_id if client else None
        record["client_auth"] = method
        requested = set((form.get("scope") or "").split())
        if grant_type == "client_credentials":
            if client is None or method == "none":
                raise OAuthError("invalid_client", "client_credentials needs an authenticated client", 401)
            self._check_scope(requested, client.scopes)
            subject = client.client_id
        elif grant_type == GRANT_JWT_BEARER:
            subject = self._jwt_grant(form.get("assertion"), requested)
        else:
            raise OAuthError("unsupported_grant_type", f"grant type {grant_type} is not supported")
        token = "at_" + secrets.token_urlsafe(24)
        now = time.time()
        lifetime = self.expires_in if self.expires_in is not None else 3600
        grant = {"subject": subject, "client_id": record["client_id"], "scope": " ".join(sorted(requested)),
                 "audience": form.get("audience"), "expires_at": now + lifetime, "grant_type": grant_type}  # fmt: skip
        with self._lock:
            self.tokens[token] = grant
        record["token"] = token
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        if requested:
            answer["scope"] = grant["scope"]
        return 200, answer, {"Cache-Control": "no-store", "Pragma": "no-cache"}

    def _authenticate(self, headers: Any, form: dict[str, str]) -> tuple[Client | None, str | None]:
        methods = []
        authorization = headers.get("Authorization") or ""
        if authorization.lower().startswith("basic "):
            methods.append("client_secret_basic")
        if "client_secret" in form:
            methods.append("client_secret_post")
        if "client_assertion" in form or "client_assertion_type" in form:
            methods.append("private_key_jwt")
        if len(methods) > 1:
            raise OAuthError(
                "invalid_request", f"more than one client authentication method: {', '.join(methods)}"
            )
        challenge = {"WWW-Authenticate": 'Basic realm="fake-oauth"'}
        if not methods:
            client_id = form.get("client_id")
            if client_id is None:
                return None, None
            client = self.clients.get(client_id)
            if client is None or client.auth_method != "none":
                raise OAuthError("invalid_client", "client authentication failed", 401)
            return client, "none"
        method = methods[0]
        if method == "client_secret_basic":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
                raw_id, _, raw_secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed Basic credentials", 401, challenge) from None
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
            if "client_id" in form and form["client_id"] != client_id:
                raise OAuthError("invalid_request", "client_id differs from the authenticated client")
        elif method == "client_secret_post":
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        else:
            return self._client_assertion(form), method
        client = self.clients.get(client_id)
        if client is None or client.secret is None or not hmac.compare_digest(client.secret, secret):
            raise OAuthError("invalid_client", "client authentication failed", 401,
                             challenge if method == "client_secret_basic" else None)  # fmt: skip
        if client.auth_method != method:
            raise OAuthError(
                "invalid_client", f"client {client_id} must authenticate with {client.auth_method}", 401
            )
        return client, method

    def _client_assertion(self, form: dict[str, str]) -> Client:
        import jwt

        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
        assertion = form.get("client_assertion") or ""
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_client", f"client_assertion is not a JWT: {exc}", 401) from None
        client_id = form.get("client_id") or unverified.get("iss")
        client = self.clients.get(str(client_id))
        if client is None or client.auth_method != "private_key_jwt":
            raise OAuthError("invalid_client", f"unknown private_key_jwt client {client_id}", 401)
        claims = self._verify(assertion, client.public_key, "invalid_client", 401)
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise OAuthError("invalid_client", "client_assertion: iss and sub must be the client_id", 401)
        return client

    def _jwt_grant(self, assertion: str | None, requested: set[str]) -> str:
        import jwt

        if not assertion:
            raise OAuthError("invalid_request", "assertion is missing")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_grant", f"assertion is not a JWT: {exc}") from None
        issuer = self.issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise OAuthError("invalid_grant", f"unknown issuer {unverified.get('iss')}")
        claims = self._verify(assertion, issuer.public_key, "invalid_grant", 400)
        if issuer.subjects is not None and claims.get("sub") not in issuer.subjects:
            raise OAuthError("invalid_grant", f"subject {claims.get('sub')} is not allowed for this issuer")
        requested |= set(str(claims.get("scope") or "").split())  # Google's form: scope as a claim
        self._check_scope(requested, issuer.scopes)
        return str(claims["sub"])

    def _verify(self, assertion: str, key: Any, error: str, status: int) -> dict[str, Any]:
        """RFC 7523 §3: signature, iss, sub, aud (this token endpoint), exp, iat, nbf; jti used once."""
        import jwt

        try:
            claims = jwt.decode(assertion, key, algorithms=ASYMMETRIC, audience=self.token_url, leeway=LEEWAY,
                                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})  # fmt: skip
        except jwt.PyJWTError as exc:
            raise OAuthError(error, f"assertion rejected: {exc}", status) from None
        if claims["iat"] > time.time() + LEEWAY:
            raise OAuthError(error, "assertion issued in the future", status)
        with self._lock:
            if claims["jti"] in self._jti:
                raise OAuthError(error, "assertion replayed (jti already used)", status)
            self._jti.add(claims["jti"])
        return claims

    @staticmethod
    def _check_scope(requested: set[str], allowed: set[str] | None) -> None:
        if allowed is not None and not requested <= allowed:
            raise OAuthError("invalid_scope", f"scope {' '.join(sorted(requested - allowed))} is not allowed")

    # -- GitHub installation tokens -------------------------------------------------------------------
    def github_token(self, installation: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        import jwt

        bad = {
            "message": "A JSON web token could not be decoded",
            "documentation_url": "https://docs.github.com/rest",
        }
        authorization = headers.get("Authorization") or ""
        if not authorization.startswith("Bearer "):
            return 401, {
                "message": "Requires authentication",
                "documentation_url": "https://docs.github.com/rest",
            }
        app_jwt = authorization[7:]
        record: dict[str, Any] = {
            "installation": installation,
            "headers": dict(headers.items()),
            "at": time.time(),
        }
        with self._lock:
            self.requests.append(record)
        if self.delay:
            time.sleep(self.delay)
        try:
            header = jwt.get_unverified_header(app_jwt)
            unverified = jwt.decode(app_jwt, options={"verify_signature": False})
        except jwt.PyJWTError:
            return 401, bad
        if header.get("alg") != "RS256":
            return 401, bad
        app = self.github_apps.get(str(unverified.get("iss")))
        if app is None:
            return 401, {
                "message": "Integration not found",
                "documentation_url": "https://docs.github.com/rest",
            }
        try:
            claims = jwt.decode(app_jwt, app.public_key, algorithms=["RS256"], leeway=LEEWAY,
                                options={"require": ["iat", "exp", "iss"]})  # fmt: skip
        except jwt.ExpiredSignatureError:
            return 401, {"message": "'Expiration time' claim ('exp') must be a numeric value representing the "
                                    "future time at which the assertion expires"}  # fmt: skip
        except jwt.PyJWTError:
            return 401, bad
        if claims["exp"] - time.time() > 600 + LEEWAY or claims["exp"] - claims["iat"] > 660:
            return 401, {"message": "'Expiration time' claim ('exp') is too far in the future"}
        if installation not in app.installations:
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        try:
            wanted = json.loads(body) if body else {}
        except ValueError:
            return 400, {"message": "Problems parsing JSON"}
        if self._failures:
            with self._lock:
                status, failure = self._failures.pop(0) if self._failures else (0, None)
            if status:
                return status, failure or {}
        token = "ghs_" + secrets.token_urlsafe(27)
        lifetime = self.expires_in if self.expires_in is not None else 3600
        expires_at = datetime.fromtimestamp(int(time.time() + lifetime), UTC)
        grant = {"subject": f"app/{app.app_id}/installation/{installation}", "client_id": app.app_id,
                 "scope": "", "expires_at": expires_at.timestamp(), "grant_type": "github_app", "request": wanted}  # fmt: skip
        with self._lock:
            self.tokens[token] = grant
        record["token"] = token
        record["body"] = wanted
        return 201, {
            "token": token,
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            "permissions": wanted.get("permissions") or {"contents": "read", "metadata": "read"},
            "repository_selection": "selected" if wanted.get("repositories") else "all",
        }


def _public(key: Any) -> Any:
    """A public key from a private key, a public key, or PEM text."""
    if key is None:
        return None
    if isinstance(key, str | bytes):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

        data = key.encode() if isinstance(key, str) else key
        try:
            return load_pem_public_key(data)
        except ValueError:
            return load_pem_private_key(data, password=None).public_key()
    public = getattr(key, "public_key", None)
    return public() if callable(public) else key


class _Handler(BaseHTTPRequestHandler):
    auth: FakeAuthorizationServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, dict | list):
            data = json.dumps(body).encode()
            ctype = "application/json"
        else:
            data = str(body or "").encode()
            ctype = "text/html"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        installation = _INSTALLATION.match(path)
        if installation:
            status, answer = self.auth.github_token(installation.group("id"), self.headers, body)
            self._send(status, answer)
            return
        if path != self.auth.token_path:
            self._send(404, {"error": "not_found"})
            return
        try:
            status, answer, headers = self.auth.token_request(self.headers, body)
        except OAuthError as exc:
            self._send(exc.status, {"error": exc.error, "error_description": exc.description}, exc.headers)
            return
        self._send(status, answer, headers)

    def do_GET(self) -> None:  # noqa: N802
        authorization = self.headers.get("Authorization") or ""
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        grant = self.auth.valid(token)
        self.auth.resource_calls.append(
            {"path": self.path, "authorization": authorization, "ok": grant is not None}
        )
        if grant is None:
            self._send(
                401, {"message": "invalid token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
            return
        self._send(200, {"ok": True, "subject": grant["subject"], "path": self.path})
