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
      roles: [{role: LAUNCHER, tenant: main, namespace: company}]
  roles:                                                 # custom roles besides ADMIN, DEVELOPER, LAUNCHER, VIEWER
    OPERATOR: {permissions: {EXECUTION: [READ, UPDATE], FLOW: [READ], KILL_SWITCH: [READ, CREATE, UPDATE]}}
  defaultRole: VIEWER                                    # bindings of a principal that has none (optional)
  trustedProxies: [10.0.0.0/8]                           # whose X-Forwarded-For names the client (audit log)
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

Users and tokens take ``roles:`` (bindings: a role, a tenant or every tenant, a namespace and its children
or the whole tenant; see :mod:`roost.server.rbac`). Without any binding, every authenticated principal is ADMIN.

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
from dataclasses import dataclass, field, replace
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
    roles: dict[str, Any] = field(default_factory=dict)  # custom roles (roost.server.rbac.Role) by name
    bindings: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # Principal.id → rbac.Binding
    default_bindings: tuple[Any, ...] = ()  # bindings of principals without any (defaultRole)
    trusted_proxies: tuple[Any, ...] = ()  # ip_network: whose X-Forwarded-For names the client

    @property
    def enabled(self) -> bool:
        return bool(self.users or self.tokens)

    @property
    def policy(self) -> Any:
        """The :class:`roost.server.rbac.Policy` of this configuration (built once)."""
        key = (self.enabled, id(self.bindings), len(self.bindings), self.default_bindings, len(self.roles))
        cached = self.__dict__.get("_policy")
        if cached is None or cached[0] != key:  # rebuilt when the configuration object is edited (tests)
            from roost.server.rbac import BUILTIN_ROLES, Policy

            policy = Policy(roles={**BUILTIN_ROLES, **self.roles}, bindings=dict(self.bindings),
                            default=tuple(self.default_bindings), auth=self.enabled)  # fmt: skip
            cached = self.__dict__["_policy"] = (key, policy)
        return cached[1]


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
    ai: AiConfig | None = None  # the `ai:` section: the Copilot's models (None: the Copilot is off)


@dataclass(frozen=True)
class AiModel:
    """One model of the ``ai:`` section. ``api_key`` is a reference (``{{ secret('X') }}`` or ``${ENV}``),
    resolved at each call and never kept in clear."""

    id: str
    kind: str  # openai | ollama (roost.llm)
    model: str
    display_name: str
    base_url: str | None = None
    api_key: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 60.0
    default: bool = False


@dataclass(frozen=True)
class AiConfig:
    providers: tuple[AiModel, ...]
    max_attempts: int = 3  # generate → validate → feed the violations back, at most this many model calls
    context_budget: int = 24_000  # characters of installed-type context in the system prompt
    transcription: AiModel | None = None

    def provider(self, provider_id: str | None) -> AiModel | None:
        """The model a request names, or the default one (None: no such model)."""
        if not provider_id:
            return next((p for p in self.providers if p.default), self.providers[0])
        return next((p for p in self.providers if p.id == provider_id), None)


def _section(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if isinstance(data, dict) and key in data:
            return data[key]
    return None


def _bind(cfg: ServerConfig, key: str, data: Any, roles: dict[str, Any], where: str) -> None:
    from roost.server.rbac import PolicyError, parse_bindings

    try:
        bindings = parse_bindings(data, roles, where)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    if bindings:
        cfg.auth.bindings[key] = bindings


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
    from roost.server.rbac import PolicyError, parse_bindings, parse_roles

    try:
        roles = parse_roles(_section(server, "roles"))
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    cfg.auth.roles = {k: v for k, v in roles.items()}
    ai = _section(data, "ai")
    if ai is not None:
        cfg.ai = parse_ai(ai)
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
        _bind(cfg, str(user["username"]), user.get("roles"), roles, f"server.basicAuth.users[{i}].roles")
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
        name = str(tok.get("name") or f"token-{i}")
        if name in cfg.auth.tokens.values():
            raise ConfigError(
                f"server.apiTokens[{i}].name: another token is named {name!r} (names identify tokens)"
            )
        cfg.auth.tokens[str(tok["tokenHash"])] = name
        _bind(cfg, f"token:{name}", tok.get("roles"), roles, f"server.apiTokens[{i}].roles")
    default_role = _section(server, "defaultRole", "default-role")
    if default_role is not None:
        try:
            cfg.auth.default_bindings = parse_bindings([default_role] if not isinstance(default_role, list) else default_role,
                                                       roles, "server.defaultRole")  # fmt: skip
        except PolicyError as exc:
            raise ConfigError(str(exc)) from None
    proxies = _section(server, "trustedProxies", "trusted-proxies") or []
    if not isinstance(proxies, list):
        raise ConfigError("server.trustedProxies: expected a list of addresses or networks (10.0.0.0/8)")
    import ipaddress

    for i, net in enumerate(proxies):
        try:
            cfg.auth.trusted_proxies += (ipaddress.ip_network(str(net), strict=False),)
        except ValueError:
            raise ConfigError(f"server.trustedProxies[{i}]: {net!r} is not an address or network") from None
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


def _camel(raw: Any) -> Any:
    """Keys written Micronaut's way (``model-name``) read as camelCase; header names are kept as written."""
    if not isinstance(raw, dict):
        return raw
    return {re.sub(r"-([a-z])", lambda m: m.group(1).upper(), str(k)): v for k, v in raw.items()}


def _ai_model(raw: Any, path: str, *, need_id: bool) -> AiModel:
    from datetime import timedelta

    from pydantic import TypeAdapter, ValidationError

    from roost.credentials.base import is_reference
    from roost.llm import check_headers, provider_kind

    raw = _camel(raw)
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping (type, modelName, baseUrl, apiKey, customHeaders, timeout)"
        )
    known = {
        "id",
        "displayName",
        "type",
        "modelName",
        "model",
        "baseUrl",
        "apiKey",
        "customHeaders",
        "timeout",
        "default",
        "isDefault",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    pid = raw.get("id")
    if need_id and (not isinstance(pid, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", pid)):
        raise ConfigError(f"{path}.id: expected an id of letters, digits, '.', '_' or '-'")
    kind = provider_kind(str(raw.get("type", "openai")))
    if kind is None:
        raise ConfigError(f"{path}.type: {raw.get('type')!r} is not a provider type (openai, ollama, or Kestra's "
                          "io.kestra.plugin.ai.provider.OpenAI / Ollama)")  # fmt: skip
    model = raw.get("modelName", raw.get("model"))
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"{path}.modelName: required")
    base_url = raw.get("baseUrl")
    if base_url is not None and (
        not isinstance(base_url, str) or not re.match(r"https?://[^\s]+$", base_url)
    ):
        raise ConfigError(f"{path}.baseUrl: expected an http(s) URL")
    api_key = raw.get("apiKey")
    if api_key is not None and not is_reference(api_key):
        raise ConfigError(f"{path}.apiKey: write a reference, {{{{ secret('KEY') }}}} or ${{ENV_VAR}}; a key in "
                          "clear text in the configuration is refused")  # fmt: skip
    headers = raw.get("customHeaders") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"{path}.customHeaders: expected a mapping of header names to values")
    try:
        checked = check_headers(headers, f"{path}.customHeaders")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    timeout = raw.get("timeout", 60)
    try:
        seconds = (float(timeout) if isinstance(timeout, int | float) and not isinstance(timeout, bool)
                   else TypeAdapter(timedelta).validate_python(timeout).total_seconds())  # fmt: skip
    except (ValidationError, ValueError, TypeError):
        raise ConfigError(f"{path}.timeout: expected seconds or an ISO-8601 duration such as PT30S") from None
    if not 0 < seconds <= 3600:
        raise ConfigError(f"{path}.timeout: expected more than 0 and at most an hour")
    default = raw.get("default", raw.get("isDefault", False))
    if not isinstance(default, bool):
        raise ConfigError(f"{path}.default: expected true or false")
    return AiModel(id=str(pid or ""), kind=kind, model=model.strip(), display_name=str(raw.get("displayName") or model),
                   base_url=base_url, api_key=api_key, headers=tuple(checked.items()), timeout=seconds,
                   default=default)  # fmt: skip


def parse_ai(raw: Any) -> AiConfig:
    """The ``ai:`` section, checked; errors name the key (``ai.providers[1].apiKey: ...``). Keys may also
    be written Micronaut's way, as in Kestra's configuration (``model-name``, ``api-key``...)."""
    raw = _camel(raw)
    if not isinstance(raw, dict):
        raise ConfigError("ai: expected a mapping with providers")
    known = {"providers", "defaultProvider", "maxAttempts", "contextBudget", "transcription"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"ai: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    providers = raw.get("providers")
    if not isinstance(providers, list) or not providers:
        raise ConfigError("ai.providers: expected a list of at least one model")
    models = [_ai_model(p, f"ai.providers[{i}]", need_id=True) for i, p in enumerate(providers)]
    ids = [m.id for m in models]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise ConfigError(f"ai.providers: the id {dup!r} is used twice")
    chosen = raw.get("defaultProvider")
    if chosen is not None:
        if chosen not in ids:
            raise ConfigError(
                f"ai.defaultProvider: {chosen!r} is not one of the providers ({', '.join(ids)})"
            )
        models = [replace(m, default=m.id == chosen) for m in models]
    if sum(m.default for m in models) > 1:
        raise ConfigError("ai.providers: more than one model is marked default")
    attempts = raw.get("maxAttempts", 3)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 10:
        raise ConfigError("ai.maxAttempts: expected a whole number from 1 to 10")
    budget = raw.get("contextBudget", 24_000)
    if not isinstance(budget, int) or isinstance(budget, bool) or not 1_000 <= budget <= 1_000_000:
        raise ConfigError("ai.contextBudget: expected a number of characters from 1000 to 1000000")
    transcription = raw.get("transcription")
    speech = (
        _ai_model(transcription, "ai.transcription", need_id=False) if transcription is not None else None
    )
    if speech is not None and speech.kind != "openai":
        raise ConfigError("ai.transcription.type: transcription needs an OpenAI-compatible endpoint (openai)")
    return AiConfig(tuple(models), attempts, budget, speech)
