"""Secret backends: where ``secret('KEY')`` reads values, chosen per tenant and namespace.

Backends are registered through the ``register_secret_backends`` hook (the built-in plugin registers
``env``, Kestra OSS's ``SECRET_<KEY>`` variables holding base64 values, the default) and configured in
the server configuration's ``secret:`` section, in Kestra's shape, or ``ROOST_SECRETS`` (a file or the
YAML itself) for local runs::

    secret:
      type: env                          # the instance default
      namespaces:
        company.payments:                # this namespace and its children, every tenant
          type: beyondtrust
          beyondtrust: {url: ..., apiKey: "${PS_API_KEY}", runAs: svc-roost}
      tenants:
        acme:                            # one tenant (and its namespaces)
          type: beyondtrust
          beyondtrust: {...}

A task of namespace ``a.b`` of tenant ``t`` reads its secrets from the most specific backend: namespace
``a.b`` then ``a`` (tenant ``t``'s before every tenant's), then tenant ``t``, then the instance default
-- the same lookup as ``credential()`` (:func:`roost.credentials.store.scope_chain`). Every value read
joins the execution's mask set. A backend's own settings reach secrets as ``{{ secret('X') }}`` (read from
the ``env`` backend) or ``${VAR}``, never as values.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("roost.secrets")

SECRETS_ENV = "ROOST_SECRETS"


class SecretError(Exception):
    """A secret could not be read; the message names the key and namespace, never a value."""


class SecretBackendError(SecretError):
    """A backend could not answer (unreachable, refused the credentials, misconfigured)."""


class SecretConfigError(ValueError):
    """The ``secret:`` configuration is malformed; the message names the configuration path."""


@runtime_checkable
class SecretBackend(Protocol):
    """What a secret backend provides. ``get`` returns None for a secret it does not have and raises for
    anything else (:class:`SecretBackendError`, with a message that holds no secret). A backend may also
    have ``invalidate(namespace, key)`` (forget a cached value: the next ``get`` reads it fresh),
    ``keys(namespace)`` (the names it can list, for the UI; never values) and ``close()`` (release sessions
    when the engine stops)."""

    def get(self, namespace: str, key: str) -> str | None: ...


class EnvSecrets:
    """Kestra's open-source secret backend: ``SECRET_<KEY>`` variables holding base64 values."""

    kind = "env"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = environ

    def keys(self, namespace: str) -> list[str]:
        """The names of the ``SECRET_<KEY>`` (and ``ENV_SECRET_<KEY>``) variables, never their values."""
        env = os.environ if self.environ is None else self.environ
        return sorted(
            {k.split("SECRET_", 1)[1] for k in env if k.startswith(("SECRET_", "ENV_SECRET_"))} - {""}
        )

    def get(self, namespace: str, key: str) -> str | None:
        env = os.environ if self.environ is None else self.environ
        raw = env.get(f"SECRET_{key}")
        if raw is None:
            return env.get(f"ENV_SECRET_{key}")
        try:
            return base64.b64decode(raw, validate=True).decode()
        except ValueError:
            return raw


class EnvBackend:
    """The ``env`` backend's factory: no settings."""

    @staticmethod
    def check(config: Any) -> None:
        if len(config):
            raise SecretConfigError(
                f"{config.path}: the env backend takes no settings (found {', '.join(sorted(config))})"
            )

    def __call__(self, config: Any) -> EnvSecrets:
        self.check(config)
        return EnvSecrets()


Scope = tuple[str | None, str | None]  # (tenant or every tenant, namespace or none)


class SecretBackends:
    """Every configured backend, by scope; :meth:`for_tenant` is what a tenant's runtime reads through."""

    def __init__(self, backends: Mapping[Scope, tuple[str, Any]] | None = None) -> None:
        self._backends: dict[Scope, tuple[str, Any]] = dict(backends or {})
        self._backends.setdefault((None, None), ("env", EnvSecrets()))
        self._views: dict[str, TenantSecrets] = {}

    @classmethod
    def build(
        cls, value: Any = None, *, plugins: Any = None, environ: Mapping[str, str] | None = None
    ) -> SecretBackends:
        """From what ``Engine(secrets=...)`` was given: ``None`` (``ROOST_SECRETS``, else ``env``), a mapping
        (the ``secret:`` configuration), a backend object (used everywhere) or a :class:`SecretBackends`."""
        if isinstance(value, SecretBackends):
            return value
        if value is None:
            env = os.environ if environ is None else environ
            raw = env.get(SECRETS_ENV, "")
            if not raw.strip():
                return cls()
            from roost.credentials.base import CredentialConfigError
            from roost.credentials.store import load_text_or_file

            try:
                loaded = load_text_or_file(raw, SECRETS_ENV)
            except CredentialConfigError as exc:
                raise SecretConfigError(str(exc)) from None
            inner = loaded.get("secret")
            return cls.from_config(inner if isinstance(inner, Mapping) and len(loaded) == 1 else loaded,
                                   plugins=plugins, environ=environ, source=SECRETS_ENV)  # fmt: skip
        if isinstance(value, Mapping):
            return cls.from_config(value, plugins=plugins, environ=environ)
        if callable(getattr(value, "get", None)):
            return cls({(None, None): (getattr(value, "kind", type(value).__name__), value)})
        raise TypeError(f"secrets: expected a mapping or a secret backend, got {type(value).__name__}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, plugins: Any = None, environ: Mapping[str, str] | None = None,
                    source: str = "secret") -> SecretBackends:  # fmt: skip
        """Validate ``config`` and build a backend per scope (backends connect on first use, not now)."""
        from roost.credentials.base import CredentialConfig, CredentialConfigError, CredentialError
        from roost.credentials.store import scoped_sections
        from roost.store.storage import backend_section

        if plugins is None:
            from roost.plugins import get_plugins

            plugins = get_plugins()
        factories = plugins.named("register_secret_backends")
        backends: dict[Scope, tuple[str, Any]] = {}
        try:
            sections = list(
                scoped_sections(config, source, what="secret backend settings", error=SecretConfigError)
            )
        except CredentialConfigError as exc:
            raise SecretConfigError(str(exc)) from None
        for tenant, namespace, section, path in sections:
            if not section:
                continue
            type_name, data, where = backend_section(section, path, factories, "secret", SecretConfigError)
            settings = CredentialConfig(type_name, data, type=type_name, path=where, tenant=tenant, namespace=namespace,
                                        secrets=EnvSecrets(environ), environ=environ,
                                        label=f"secret backend '{type_name}' ({where})")  # fmt: skip
            try:
                backend = factories[type_name](settings)
            except SecretConfigError:
                raise
            except (CredentialConfigError, CredentialError) as exc:
                raise SecretConfigError(str(exc)) from None
            except Exception as exc:
                raise SecretConfigError(f"{where}: {type(exc).__name__}: {exc}") from None
            if not callable(getattr(backend, "get", None)):
                raise SecretConfigError(f"{where}: the {type_name!r} backend has no get(namespace, key)")
            backends[(tenant, namespace)] = (type_name, backend)
        return cls(backends)

    def for_tenant(self, tenant: str) -> TenantSecrets:
        view = self._views.get(tenant)
        if view is None:
            view = self._views[tenant] = TenantSecrets(self, tenant)
        return view

    def backend_for(self, tenant: str | None, namespace: str | None) -> tuple[Scope, str, Any]:
        """The backend ``namespace`` of ``tenant`` reads from, with its scope and type."""
        from roost.credentials.store import scope_chain

        for scope in scope_chain(tenant, namespace):
            found = self._backends.get(scope)
            if found is not None:
                return scope, found[0], found[1]
        return (None, None), *self._backends[(None, None)]

    def describe(self) -> list[dict[str, Any]]:
        """Which backend serves which scope (types only: no settings, no values)."""
        return [{"tenant": t, "namespace": ns, "type": kind} for (t, ns), (kind, _b) in sorted(
            self._backends.items(), key=lambda item: (item[0][0] or "", item[0][1] or ""))]  # fmt: skip

    def close(self) -> None:
        for _kind, backend in self._backends.values():
            close = getattr(backend, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # closing one backend never stops the others
                    log.warning("closing the %s secret backend failed: %s", _kind, exc)


class TenantSecrets:
    """One tenant's view: ``get(namespace, key)`` through the backend of that namespace."""

    def __init__(self, backends: SecretBackends, tenant: str) -> None:
        self.backends = backends
        self.tenant = tenant

    def get(self, namespace: str, key: str) -> str | None:
        scope, kind, backend = self.backends.backend_for(self.tenant, namespace)
        try:
            value = backend.get(namespace, key)
        except SecretError:
            raise
        except Exception as exc:  # a backend's own failure: named, and never with a value in it
            raise SecretBackendError(
                f"the {kind} secret backend{_scope_text(scope)} failed: {type(exc).__name__}: {exc}"
            ) from None
        if value is not None and not isinstance(value, str):
            raise SecretBackendError(
                f"the {kind} secret backend returned a {type(value).__name__} for '{key}', not text"
            )
        return value

    def invalidate(self, namespace: str, key: str) -> None:
        """Forget a cached value, so the next read is fresh (a retried task run may have been refused the old one)."""
        _scope, _kind, backend = self.backends.backend_for(self.tenant, namespace)
        invalidate = getattr(backend, "invalidate", None)
        if callable(invalidate):
            invalidate(namespace, key)

    def kind(self, namespace: str) -> str:
        return self.backends.backend_for(self.tenant, namespace)[1]

    def keys(self, namespace: str) -> list[str] | None:
        """The key names the namespace's backend can list (``keys(namespace)``), or None when it cannot."""
        backend = self.backends.backend_for(self.tenant, namespace)[2]
        keys = getattr(backend, "keys", None)
        return list(keys(namespace)) if callable(keys) else None

    def __repr__(self) -> str:
        return f"<TenantSecrets {self.tenant}>"


def _scope_text(scope: Scope) -> str:
    tenant, namespace = scope
    parts = [f"namespace {namespace}" if namespace else "", f"tenant {tenant}" if tenant else ""]
    text = ", ".join(p for p in parts if p)
    return f" ({text})" if text else ""
