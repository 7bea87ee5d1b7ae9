"""What every credential type shares: its configuration, references to secrets, and a token cache.

A provider is built once from configuration (nothing is fetched then) and asked
for a token by ``credential('key')``. :class:`TokenProvider` does the caching:
a token is reused until ``expires_in`` minus a margin (``refreshBeforeExpiry``),
then fetched again; one fetch at a time per credential, however many task runs
ask at once; a failed refresh falls back to the current token while it is still
valid. Secrets (client secrets, private keys) are written in the configuration
as references -- ``{{ secret('KEY') }}`` through the secret backend, or
``${VAR}`` from the environment -- and resolved at each fetch, never kept in
the configuration itself nor in any error message.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError, field_validator

from roost.expr.masking import mask
from roost.flow.properties import Model

log = logging.getLogger("roost.credentials")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


class CredentialError(ValueError):
    """A token could not be obtained; the message names the credential and endpoint, never a secret."""


class CredentialConfigError(ValueError):
    """A credential's configuration is malformed; the message names the configuration path."""


def is_reference(value: Any) -> bool:
    """True when ``value`` refers to a secret (``{{ ... }}``) or an environment variable (``${VAR}``)."""
    return isinstance(value, str) and ("{{" in value or _ENV_REF.search(value) is not None)


class _SecretServices:
    """The services an expression in a credential's configuration may reach: ``secret()`` only."""

    def __init__(self, backend: Any, namespace: str | None) -> None:
        self.backend = backend
        self.namespace = namespace or ""
        self.secret_values: set[str] = set()

    def secret(self, key: str, namespace: str | None = None) -> str:
        from roost.expr import ExpressionError
        from roost.secret_backends import SecretError

        try:
            value = self.backend.get(namespace or self.namespace, key)
        except SecretError as exc:  # the backend's reason, never a value
            raise ExpressionError(f"Cannot read secret '{key}': {exc}") from None
        if value is None:
            raise ExpressionError(f"Cannot find secret for key '{key}'.")
        return value


def _default_secrets() -> Any:
    from roost.secret_backends import EnvSecrets

    return EnvSecrets()


class CredentialConfig(Mapping[str, Any]):
    """One credential's configuration mapping, as a factory registered for its type receives it (the
    factories of secret and storage backends receive one too, with ``label`` naming the backend).

    It reads like the mapping written in the configuration (references unresolved)
    and also knows the credential's ``key``, its scope (``tenant``, ``namespace``),
    where it was written (``path``, for error messages) and how to :meth:`resolve`
    a reference through the secret backend or the environment.
    """

    def __init__(
        self,
        key: str,
        data: Mapping[str, Any],
        *,
        type: str,
        path: str | None = None,
        tenant: str | None = None,
        namespace: str | None = None,
        secrets: Any = None,
        environ: Mapping[str, str] | None = None,
        label: str | None = None,
    ) -> None:
        self.key = key
        self.label = label or f"credential '{key}'"  # how messages name what is configured
        self.type = type
        self._data = dict(data)
        self.path = path or f"credentials.{key}"
        self.tenant = tenant
        self.namespace = namespace
        self._secrets = secrets
        self._environ = environ

    # Mapping of the raw configuration -------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:  # no values: some are references to secrets
        return f"CredentialConfig({self.path}, type={self.type!r}, keys={sorted(self._data)})"

    @property
    def secrets(self) -> Any:
        if self._secrets is None:
            self._secrets = _default_secrets()
        for_tenant = getattr(self._secrets, "for_tenant", None)  # every tenant's backends: this scope's
        return for_tenant(self.tenant or "main") if callable(for_tenant) else self._secrets

    def validate(
        self, model: type[BaseModel], exclude: tuple[str, ...] = ("type", "authConfigType", "description")
    ) -> Any:
        """The configuration as ``model`` (camelCase names); errors name ``credentials.<key>.<field>``."""
        data = {k: v for k, v in self._data.items() if k not in exclude}
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
                msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                if err.get("type") == "extra_forbidden":
                    known = sorted(f.alias or n for n, f in model.model_fields.items())
                    msg = f"unknown property (known: {', '.join(known)})"
                lines.append(f"{self.path}{'.' + where if where else ''}: {msg}")
            raise CredentialConfigError("; ".join(lines)) from None

    def resolve(self, value: Any, name: str = "value") -> Any:
        """``value`` with ``${VAR}`` taken from the environment and ``{{ ... }}`` rendered (``secret()``).

        Mappings and lists are resolved item by item; other values are returned as they are.
        """
        if isinstance(value, Mapping):
            return {k: self.resolve(v, f"{name}.{k}") for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.resolve(v, name) for v in value]
        if not isinstance(value, str):
            return value
        environ = os.environ if self._environ is None else self._environ

        found: dict[str, str] = {}  # placeholder -> environment value, put back after rendering

        def env(match: re.Match[str]) -> str:
            var, default = match.group(1), match.group(2)
            got = environ.get(var)
            if got is None:
                if default is None:
                    raise CredentialError(
                        f"{self.label}: {name} refers to the environment variable {var}, which is not set"
                    )
                got = default
            placeholder = f"\x00{len(found)}\x00"
            found[placeholder] = got
            return placeholder

        # an environment value is never read as an expression, nor a secret's value as a ${VAR}
        out = _ENV_REF.sub(env, value) if "${" in value else value
        if "{{" in out or "{%" in out:
            from roost.expr import ExpressionError, get_engine

            services = _SecretServices(self.secrets, self.namespace)
            try:
                out = get_engine().render_string(out, {}, services)  # type: ignore[arg-type]
            except ExpressionError as exc:
                raise CredentialError(f"{self.label}: {name}: {exc}") from None
        for placeholder, got in found.items():
            out = out.replace(placeholder, got)
        return out


def secret_reference(value: Any, info: Any) -> Any:
    """Pydantic validator: a field holding key material must be a reference, never the value itself."""
    if value is not None and not is_reference(value):
        raise ValueError(
            "write a reference to the secret ({{ secret('KEY') }}, or ${ENV_VAR}), never its value: "
            "configuration is not a secret store"
        )
    return value


class Settings(Model):
    """Settings every credential type accepts."""

    refresh_before_expiry: timedelta = timedelta(seconds=60)
    """Fetch a new token this long before the current one expires (at most half its lifetime)."""
    cache: bool = True
    """Keep the token in memory until it is due for refresh; false fetches one for every use."""
    default_expires_in: timedelta = timedelta(minutes=5)
    """Lifetime assumed when the server's answer has no ``expires_in``."""
    timeout: timedelta = timedelta(seconds=30)
    """Time allowed for one token request."""


def secret_field(*names: str) -> Any:
    """A ``field_validator`` refusing clear values in the fields ``names``."""
    return field_validator(*names)(secret_reference)


@dataclass(frozen=True)
class Token:
    """A token as fetched: its value and lifetime in seconds (``None``: the server did not say)."""

    value: str
    expires_in: float | None = None


@dataclass(frozen=True)
class _Cached:
    value: str
    refresh_at: float
    expires_at: float


class TokenProvider:
    """Base of credential types: caches the token :meth:`fetch` returns, refreshes it before expiry.

    Subclasses set ``settings_model`` (a :class:`Settings` subclass) and implement
    :meth:`fetch`. ``token()`` is thread-safe and fetches at most once at a time:
    callers arriving while a fetch is in flight wait for it and share its outcome
    (its token or its failure) instead of sending requests of their own.
    """

    settings_model: ClassVar[type[Settings]] = Settings
    secret_fields: ClassVar[tuple[str, ...]] = ()
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, config: CredentialConfig) -> None:
        self.config = config
        self.key = config.key
        self.settings: Any = config.validate(self.settings_model)
        self._lock = threading.Lock()
        self._cached: _Cached | None = None
        self._pending: Future[str] | None = None
        self._secrets_seen: set[str] = set()
        self.fetches = 0  # how many token requests this provider made (observability, tests)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config.path}>"

    # -- what subclasses implement ----------------------------------------------------------------
    def fetch(self) -> Token:
        """Ask the authorization server for a new token."""
        raise NotImplementedError

    def endpoint(self) -> str:
        """The URL tokens come from, for messages."""
        return ""

    # -- the cache --------------------------------------------------------------------------------
    def token(self) -> str:
        """The current access token, fetched or refreshed when due."""
        cached = self._cached
        if cached is not None and self.clock() < cached.refresh_at:
            return cached.value
        with self._lock:  # held for bookkeeping only, never during a request
            cached = self._cached
            now = self.clock()
            if cached is not None and now < cached.refresh_at:
                return cached.value
            pending = self._pending
            owner = pending is None
            if pending is None:
                pending = self._pending = Future()
        if not owner:  # a fetch is in flight: share its outcome rather than send another request
            try:
                return pending.result()
            except CredentialError as exc:
                raise CredentialError(str(exc)) from None
        try:
            value = self._refresh(cached, now)
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        else:
            pending.set_result(value)
            return value
        finally:
            with self._lock:
                self._pending = None

    def _refresh(self, cached: _Cached | None, now: float) -> str:
        self.fetches += 1
        try:
            token = self.fetch()
        except CredentialError as exc:
            if cached is not None and now < cached.expires_at:
                log.warning("%s; the current token is used until it expires", exc)
                return cached.value
            raise
        except Exception as exc:  # a bug or an unexpected library error: same shape, secrets masked
            raise CredentialError(
                self.masked(
                    f"credential '{self.key}': token request to {self.endpoint()} failed: "
                    f"{type(exc).__name__}: {exc}"
                )  # fmt: skip
            ) from None
        if not token.value:
            raise CredentialError(f"credential '{self.key}': {self.endpoint()} returned an empty token")
        if self.settings.cache:
            lifetime = token.expires_in
            if lifetime is None:
                lifetime = self.settings.default_expires_in.total_seconds()
            lifetime = max(0.0, float(lifetime))
            margin = min(self.settings.refresh_before_expiry.total_seconds(), lifetime / 2)
            self._cached = _Cached(token.value, now + lifetime - margin, now + lifetime)
        return token.value

    def invalidate(self) -> None:
        """Forget the cached token (e.g. after a 401 with it): the next call fetches a new one."""
        with self._lock:
            self._cached = None

    # -- helpers for subclasses -------------------------------------------------------------------
    def resolve(self, value: Any, name: str) -> Any:
        resolved = self.config.resolve(value, name)
        if name in self.secret_fields and isinstance(resolved, str) and resolved:
            self._secrets_seen.add(resolved)
        return resolved

    def remember_secret(self, value: str) -> None:
        """Keep ``value`` out of every message this provider writes (assertions, resolved secrets)."""
        if value:
            self._secrets_seen.add(value)

    def masked(self, text: str) -> str:
        return mask(text, self._secrets_seen)

    def describe(self) -> dict[str, Any]:
        """A view safe to show: type, scope and non-secret settings; references are shown as written."""
        out: dict[str, Any] = {"key": self.key, "type": self.config.type}
        if self.config.tenant:
            out["tenant"] = self.config.tenant
        if self.config.namespace:
            out["namespace"] = self.config.namespace
        for name, value in self.config.items():
            if name == "type":
                continue
            out[name] = "******" if (name in self.secret_fields and not is_reference(value)) else value
        return out
