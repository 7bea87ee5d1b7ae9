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
```

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
    tenants: tuple[str, ...] | None = None  # None: any tenant id is accepted (each isolated)
    access_log: bool = False  # uvicorn's access log (query strings masked)
    credentials: dict[str, Any] | None = None  # the `credentials:` section (secret references, never values)
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
    if tenants is not None:
        if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
            raise ConfigError("server.tenants: expected a list of tenant ids")
        cfg.tenants = tuple(tenants)
    credentials = _section(data, "credentials")
    if credentials is not None:  # validated now (types, properties, secret references), built by the engine
        from roost.credentials import CredentialConfigError, CredentialStore

        try:
            CredentialStore.from_config(credentials, environ=env)
        except CredentialConfigError as exc:
            raise ConfigError(str(exc)) from None
        cfg.credentials = credentials
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
    return cfg


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
