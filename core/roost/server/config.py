"""Server configuration: a YAML file (``--config``) and ``ROOST_SERVER_*`` environment variables.

```yaml
server:
  url: https://roost.example.com        # public address, used in execution URLs
  basicAuth:
    users:
      - username: admin@example.com
        passwordHash: "scrypt$16384$8$1$<salt>$<hash>"   # roost server hash-password
    openUrls:                                            # reachable without credentials (whole segments)
      - /api/v1/{tenant}/executions/webhook/{namespace}/{id}/{key}
  apiTokens:
    - name: ci
      tokenHash: "sha256$<hex>"                          # roost server new-token
  tenants: [acme, beta]                                  # hosted besides `main` (ROOST_SERVER_TENANTS=acme,beta)
limits:                                  # untrusted input (ROOST_YAML_* / ROOST_EXPRESSION_* win)
  yaml: {maxSize: 2097152, maxDepth: 100, maxValues: 100000, maxAliases: 100}
  expressions: {timeout: 5, maxOutputSize: 33554432}   # seconds; characters (+8 per list/map entry)
storage:                                # internal storage (Kestra's shape): local by default
  type: s3
  s3: {bucket: roost, endpoint: http://127.0.0.1:8333, forcePathStyle: true}
secret:                                 # secret backends: env (SECRET_<KEY>) by default
  type: env
  namespaces: {company.payments: {type: beyondtrust, beyondtrust: {...}}}
```

Tenants: `main` is always hosted; any other tenant id answers 404 unless it is listed.

Only hashes are kept: a clear password or token given through the environment
(``ROOST_SERVER_BASIC_AUTH_USERNAME`` / ``ROOST_SERVER_BASIC_AUTH_PASSWORD``,
``ROOST_SERVER_API_TOKENS`` as a comma list) is hashed as soon as it is read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Kestra's webhook route: the key is its credential (GitHub and the like send no basic auth).
DEFAULT_OPEN_URLS = ("/api/v1/{tenant}/executions/webhook/{namespace}/{id}/{key}",)
_WILDCARD_CHARS = frozenset("*?[]{}")
_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
DEFAULT_TENANT = "main"
TENANT_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_SCRYPT = (2**14, 8, 1)


class ConfigError(Exception):
    """The server configuration is malformed; the message names the key."""


def compile_open_url(pattern: str) -> tuple[str, ...]:
    """The segments of an open-URL pattern, checked: ``ValueError`` says what is wrong.

    A pattern matches a request path segment by segment, never across a ``/``: a literal segment
    matches itself exactly (case-sensitive), ``*`` or ``{name}`` matches any one segment, and ``**``,
    as the last segment only, matches any number of remaining segments (none included).
    """
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValueError(f"{pattern!r}: a pattern is an absolute path starting with '/'")
    segments = tuple(pattern[1:].split("/"))
    for i, seg in enumerate(segments):
        if seg == "":
            raise ValueError(f"{pattern!r}: empty path segment (a trailing or doubled '/'); patterns match whole "
                             "segments, so write '/**' at the end to open everything below a path")  # fmt: skip
        if seg in (".", ".."):
            raise ValueError(f"{pattern!r}: '.' and '..' segments are not allowed")
        if seg == "**":
            if i != len(segments) - 1:
                raise ValueError(f"{pattern!r}: '**' is allowed as the last segment only")
        elif seg == "*" or _PARAM.fullmatch(seg):
            continue
        elif _WILDCARD_CHARS & set(seg):
            raise ValueError(f"{pattern!r}: segment {seg!r} mixes text and wildcards; a segment is a literal, "
                             "'*' or '{name}' (one segment), or '**' (the rest of the path)")  # fmt: skip
    return tuple("*" if s.startswith("{") else s for s in segments)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), the only form passwords are stored in."""
    n, r, p = _SCRYPT
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def hash_token(token: str) -> str:
    """API tokens are long random strings: one SHA-256 is enough, and cheap on every request."""
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "roost_" + secrets.token_urlsafe(32)


@dataclass
class AuthConfig:
    users: dict[str, str] = field(default_factory=dict)  # username → password hash
    tokens: dict[str, str] = field(default_factory=dict)  # token hash → token name
    open_urls: tuple[str, ...] = DEFAULT_OPEN_URLS

    @property
    def enabled(self) -> bool:
        return bool(self.users or self.tokens)


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    url: str | None = None
    auth: AuthConfig = field(default_factory=AuthConfig)
    tenants: tuple[str, ...] = (DEFAULT_TENANT,)  # hosted tenants (each isolated); others answer 404
    access_log: bool = False  # uvicorn's access log (query strings masked)
    credentials: dict[str, Any] | None = None  # the `credentials:` section (secret references, never values)
    yaml_limits: Any = None  # roost.flow.yaml.YamlLimits, applied by apply_limits()
    expression_limits: Any = None  # roost.expr.budget.ExpressionLimits

    def apply_limits(self) -> None:
        """Make the configured limits those of the process (the server is the process)."""
        from roost.expr import budget
        from roost.flow import yaml

        yaml.set_limits(self.yaml_limits)
        budget.set_limits(self.expression_limits)

    # the `storage:` section: internal-storage backend (local by default)
    storage: dict[str, Any] | None = None
    # the `secret:` section: secret backends by tenant/namespace (env by default)
    secret: dict[str, Any] | None = None


def _section(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if isinstance(data, dict) and key in data:
            return data[key]
    return None


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> ServerConfig:
    env = dict(os.environ if env is None else env)
    data: dict[str, Any] = {}
    if path:
        from ruamel.yaml import YAML

        try:
            loaded = YAML(typ="safe", pure=True).load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from None
        except Exception as exc:
            raise ConfigError(f"configuration {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"configuration {path}: expected a mapping at the top level")
        data = loaded.get("roost", loaded) if isinstance(loaded.get("roost"), dict) else loaded
    server = _section(data, "server") or {}
    if not isinstance(server, dict):
        raise ConfigError("server: expected a mapping")
    cfg = ServerConfig()
    if "port" in server:
        cfg.port = int(server["port"])
    if "host" in server:
        cfg.host = str(server["host"])
    cfg.url = server.get("url") or env.get("ROOST_SERVER_URL") or None
    if "accessLog" in server:
        if not isinstance(server["accessLog"], bool):
            raise ConfigError("server.accessLog: expected true or false")
        cfg.access_log = server["accessLog"]
    tenants = server.get("tenants")
    if tenants is not None and (
        not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants)
    ):
        raise ConfigError("server.tenants: expected a list of tenant ids")
    from_env = [t.strip() for t in env.get("ROOST_SERVER_TENANTS", "").split(",") if t.strip()]
    for i, tenant in enumerate([*(tenants or []), *from_env]):
        if not re.match(TENANT_ID, tenant):
            raise ConfigError(
                f"server.tenants[{i}]: {tenant!r} is not a tenant id (lower-case letters, digits, '-', '_')"
            )
        if tenant not in cfg.tenants:
            cfg.tenants += (tenant,)
    credentials = _section(data, "credentials")
    if credentials is not None:  # validated now (types, properties, secret references), built by the engine
        from roost.credentials import CredentialConfigError, CredentialStore

        try:
            CredentialStore.from_config(credentials, environ=env)
        except CredentialConfigError as exc:
            raise ConfigError(str(exc)) from None
        cfg.credentials = credentials
    storage = _section(data, "storage")
    if storage is not None:  # validated now (types, settings); each tenant's storage is built by the engine
        from roost.store.storage import StorageConfigError, storage_factory

        if not isinstance(storage, dict):
            raise ConfigError("storage: expected a mapping with a type (local, or a plugin's: s3...)")
        try:
            storage_factory(storage, Path(".roost"), environ=env)
        except StorageConfigError as exc:
            raise ConfigError(str(exc)) from None
        cfg.storage = storage
    secret = _section(data, "secret")
    if secret is not None:
        from roost.secret_backends import SecretBackends, SecretConfigError

        if not isinstance(secret, dict):
            raise ConfigError("secret: expected a mapping with a type (env, or a plugin's: beyondtrust...)")
        try:
            SecretBackends.from_config(secret, environ=env)
        except SecretConfigError as exc:
            raise ConfigError(str(exc)) from None
        cfg.secret = secret
    basic = _section(server, "basicAuth", "basic-auth", "basic_auth") or {}
    if not isinstance(basic, dict):
        raise ConfigError("server.basicAuth: expected a mapping with users")
    for i, user in enumerate(basic.get("users") or []):
        if not isinstance(user, dict) or not user.get("username"):
            raise ConfigError(f"server.basicAuth.users[{i}]: expected username and passwordHash")
        hashed = user.get("passwordHash") or user.get("password-hash")
        if not hashed:
            if "password" in user:
                raise ConfigError(f"server.basicAuth.users[{i}]: clear-text passwords are refused; store passwordHash "
                                  "(from `roost server hash-password`)")  # fmt: skip
            raise ConfigError(f"server.basicAuth.users[{i}]: passwordHash is missing")
        if not str(hashed).startswith("scrypt$"):
            raise ConfigError(f"server.basicAuth.users[{i}].passwordHash: expected a scrypt$... hash")
        cfg.auth.users[str(user["username"])] = str(hashed)
    if "openUrls" in basic:
        urls = basic["openUrls"] or []
        if not isinstance(urls, list):
            raise ConfigError("server.basicAuth.openUrls: expected a list of path patterns")
        for i, url in enumerate(urls):
            try:
                compile_open_url(url)
            except ValueError as exc:
                raise ConfigError(f"server.basicAuth.openUrls[{i}]: {exc}") from None
        cfg.auth.open_urls = tuple(urls)
    for i, tok in enumerate(_section(server, "apiTokens", "api-tokens") or []):
        if not isinstance(tok, dict) or not str(tok.get("tokenHash", "")).startswith("sha256$"):
            raise ConfigError(f"server.apiTokens[{i}]: expected name and tokenHash (sha256$...)")
        cfg.auth.tokens[str(tok["tokenHash"])] = str(tok.get("name") or f"token-{i}")
    user = env.get("ROOST_SERVER_BASIC_AUTH_USERNAME")
    if user:
        hashed = env.get("ROOST_SERVER_BASIC_AUTH_PASSWORD_HASH")
        clear = env.get("ROOST_SERVER_BASIC_AUTH_PASSWORD")
        if not hashed and not clear:
            raise ConfigError(
                "ROOST_SERVER_BASIC_AUTH_USERNAME is set without ROOST_SERVER_BASIC_AUTH_PASSWORD(_HASH)"
            )
        cfg.auth.users[user] = hashed or hash_password(clear or "")
    for i, token in enumerate(t.strip() for t in env.get("ROOST_SERVER_API_TOKENS", "").split(",")):
        if token:
            cfg.auth.tokens[hash_token(token)] = f"env-{i}"
    cfg.yaml_limits, cfg.expression_limits = _limits(_section(data, "limits") or {}, env)
    return cfg


_LIMIT_KEYS = {
    "yaml": {
        "maxSize": "max_chars",
        "maxDepth": "max_depth",
        "maxValues": "max_nodes",
        "maxAliases": "max_aliases",
    },
    "expressions": {"timeout": "timeout", "maxOutputSize": "max_output"},
}


def _limits(section: Any, env: dict[str, str]) -> tuple[Any, Any]:
    """The ``limits:`` section, under the ROOST_YAML_* / ROOST_EXPRESSION_* variables."""
    from roost.expr.budget import ExpressionLimits
    from roost.flow.yaml import YamlLimits

    if not isinstance(section, dict):
        raise ConfigError("limits: expected a mapping with yaml and expressions")
    try:
        yaml_limits = YamlLimits.from_env(env, base=YamlLimits(**_limit_values(section, "yaml")))
        expression_limits = ExpressionLimits.from_env(
            env, base=ExpressionLimits(**_limit_values(section, "expressions"))
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return yaml_limits, expression_limits


def _limit_values(section: dict[str, Any], name: str) -> dict[str, Any]:
    given = section.get(name) or {}
    if not isinstance(given, dict):
        raise ConfigError(f"limits.{name}: expected a mapping")
    values: dict[str, Any] = {}
    for key, value in given.items():
        attr = _LIMIT_KEYS[name].get(key)
        if attr is None:
            raise ConfigError(f"limits.{name}.{key}: unknown limit; known: {', '.join(_LIMIT_KEYS[name])}")
        kind = (int, float) if attr == "timeout" else (int,)
        if not isinstance(value, kind) or isinstance(value, bool) or value <= 0:
            raise ConfigError(
                f"limits.{name}.{key}: expected a positive {'number' if attr == 'timeout' else 'integer'}"
            )
        values[attr] = float(value) if attr == "timeout" else value
    return values
