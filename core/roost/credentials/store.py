"""Credentials by tenant and namespace, built from configuration through the credential-type registry.

Configuration (the ``credentials:`` section of the server's ``--config`` file,
or ``ROOST_CREDENTIALS`` -- a file path or inline YAML/JSON -- for local runs)::

    credentials:
      my_oauth:                                  # every tenant
        type: oauth2_client_credentials
        tokenEndpoint: https://auth.example.com/oauth/token
        clientId: roost
        clientSecret: "{{ secret('MY_OAUTH_SECRET') }}"
      namespaces:
        company.team:                            # this namespace and its children, every tenant
          my_oauth: {...}
      tenants:
        acme:                                    # one tenant
          my_oauth: {...}
          namespaces:
            company.team: {...}

``credential('key')`` in a task of namespace ``a.b`` of tenant ``t`` finds the
most specific definition: namespace ``a.b`` then ``a`` (tenant ``t`` before every
tenant), then tenant ``t``, then every tenant. Types come from the
``register_credential_types`` hook, so a plugin's types are configured the same
way; Kestra's form ``type: OAUTH2`` with ``authConfigType: JWT_BEARER`` is accepted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from roost.credentials.base import CredentialConfig, CredentialConfigError

ENV_VAR = "ROOST_CREDENTIALS"
RESERVED = ("tenants", "namespaces")
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

ScopeKey = tuple[str | None, str | None, str]  # (tenant or every tenant, namespace or none, key)


def credential_types(plugins: Any = None) -> dict[str, Any]:
    """Every registered credential type: name -> factory."""
    if plugins is None:
        from roost.plugins import get_plugins

        plugins = get_plugins()
    return dict(plugins.named("register_credential_types"))


def _type_name(raw: Any, data: Mapping[str, Any], factories: Mapping[str, Any], path: str) -> str:
    known = ", ".join(sorted(factories)) or "none registered"
    if not isinstance(raw, str) or not raw.strip():
        raise CredentialConfigError(f"{path}.type: required (one of {known})")
    name = raw.strip().lower().replace("-", "_")
    if name == "oauth2":  # Kestra's form: type OAUTH2 + authConfigType
        sub = data.get("authConfigType")
        if not isinstance(sub, str) or not sub.strip():
            raise CredentialConfigError(
                f"{path}.authConfigType: required with type {raw} (CLIENT_CREDENTIALS, JWT_BEARER or PRIVATE_KEY_JWT)"
            )
        name = "oauth2_" + sub.strip().lower().replace("-", "_")
    for candidate in (name, f"oauth2_{name}"):
        if candidate in factories:
            return candidate
    raise CredentialConfigError(f"{path}.type: unknown credential type {raw!r} (known: {known})")


def scoped_sections(config: Any, source: str, *, what: str = "settings", namespaces: bool = True,
                    error: type[Exception] = CredentialConfigError) -> Iterator[tuple[str | None, str | None, dict[str, Any], str]]:  # fmt: skip
    """Each scope of a configuration with ``tenants:`` and ``namespaces:`` levels, most general first:
    ``(tenant or None, namespace or None, its own mapping without those levels, its path)``.

    The shape (credentials, secret backends, storage) is ``{..., namespaces: {ns: {...}}, tenants: {t: {...,
    namespaces: {...}}}}``; ``namespaces=False`` refuses the namespace level (storage is per tenant).
    """

    def walk(mapping: Any, tenant: str | None, namespace: str | None, path: str) -> Iterator[Any]:
        if not isinstance(mapping, Mapping):
            raise error(f"{path}: expected a mapping of {what}")
        own = {k: v for k, v in mapping.items() if k not in RESERVED}
        yield tenant, namespace, own, path
        for key in RESERVED:
            if key not in mapping:
                continue
            value = mapping[key]
            if key == "tenants" and tenant is None and namespace is None:
                if not isinstance(value, Mapping):
                    raise error(f"{path}.tenants: expected a mapping of tenant ids")
                for tenant_id, sub in value.items():
                    yield from walk(sub, str(tenant_id), None, f"{path}.tenants.{tenant_id}")
            elif key == "namespaces" and namespace is None and namespaces:
                if not isinstance(value, Mapping):
                    raise error(f"{path}.namespaces: expected a mapping of namespaces")
                for ns, sub in value.items():
                    yield from walk(sub, tenant, str(ns), f"{path}.namespaces.{ns}")
            else:
                raise error(f"{path}.{key}: not allowed here")

    yield from walk(config, None, None, source)


def scope_chain(tenant: str | None, namespace: str | None = None) -> Iterator[tuple[str | None, str | None]]:
    """The scopes visible from ``namespace`` of ``tenant``, most specific first: the namespace then each
    parent (the tenant's before every tenant's), then the tenant, then every tenant."""
    if namespace:
        parts = namespace.split(".")
        for i in range(len(parts), 0, -1):
            ns = ".".join(parts[:i])
            yield tenant, ns
            if tenant is not None:
                yield None, ns
    yield tenant, None
    if tenant is not None:
        yield None, None


class CredentialStore:
    """Every configured credential, by scope; :meth:`for_tenant` is what a tenant's runtime sees."""

    def __init__(self, providers: Mapping[ScopeKey, Any] | None = None) -> None:
        self._providers: dict[ScopeKey, Any] = dict(providers or {})
        self._views: dict[str, TenantCredentials] = {}

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def build(cls, value: Any = None, *, plugins: Any = None, secrets: Any = None,
              environ: Mapping[str, str] | None = None) -> CredentialStore:  # fmt: skip
        """A store from what ``Engine(credentials=...)`` was given.

        ``None``: the ``ROOST_CREDENTIALS`` environment variable (none when unset); a mapping:
        configuration (values may also be ready provider objects with ``token()``); a store: itself.
        """
        if isinstance(value, CredentialStore):
            return value
        if value is None:
            return cls.from_env(environ, plugins=plugins, secrets=secrets)
        if isinstance(value, Mapping):
            return cls.from_config(value, plugins=plugins, secrets=secrets, environ=environ)
        raise TypeError(f"credentials: expected a mapping or a CredentialStore, got {type(value).__name__}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, plugins: Any = None, secrets: Any = None,
                    source: str = "credentials", environ: Mapping[str, str] | None = None) -> CredentialStore:  # fmt: skip
        """Validate ``config`` and build a provider per credential (nothing is fetched yet)."""
        inner = config.get("credentials") if isinstance(config, Mapping) else None
        if isinstance(inner, Mapping) and "type" not in inner and len(config) == 1:
            config = inner  # a whole file whose top level is `credentials:`
        factories: dict[str, Any] | None = None
        providers: dict[ScopeKey, Any] = {}

        def build_one(key: str, data: Any, tenant: str | None, namespace: str | None, path: str) -> Any:
            nonlocal factories
            if not isinstance(key, str) or not _KEY.match(key):
                raise CredentialConfigError(f"{path}: invalid credential key (letters, digits, _ . -)")
            if not isinstance(data, Mapping):
                if callable(getattr(data, "token", None)):
                    return data  # a ready provider
                raise CredentialConfigError(f"{path}: expected a mapping with a type")
            if factories is None:
                factories = credential_types(plugins)
            type_name = _type_name(data.get("type"), data, factories, path)
            cfg = CredentialConfig(key, data, type=type_name, path=path, tenant=tenant, namespace=namespace,
                                   secrets=secrets, environ=environ)  # fmt: skip
            try:
                provider = factories[type_name](cfg)
            except CredentialConfigError:
                raise
            except Exception as exc:
                raise CredentialConfigError(f"{path}: {type(exc).__name__}: {exc}") from None
            if not callable(getattr(provider, "token", None)):
                raise CredentialConfigError(
                    f"{path}: the factory of type {type_name!r} returned no token() provider"
                )
            return provider

        for tenant, namespace, section, path in scoped_sections(config, source, what="credential keys"):
            for key, value in section.items():
                providers[(tenant, namespace, key)] = build_one(
                    key, value, tenant, namespace, f"{path}.{key}"
                )
        return cls(providers)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, plugins: Any = None,
                 secrets: Any = None) -> CredentialStore:  # fmt: skip
        """From ``ROOST_CREDENTIALS``: a YAML/JSON file path, or the YAML/JSON text itself."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_VAR, "")
        if not raw.strip():
            return cls()
        return cls.from_config(load_text_or_file(raw, ENV_VAR), plugins=plugins, secrets=secrets,
                               source=ENV_VAR, environ=environ)  # fmt: skip

    # -- lookups ----------------------------------------------------------------------------------
    def for_tenant(self, tenant: str) -> TenantCredentials:
        view = self._views.get(tenant)
        if view is None:
            view = self._views[tenant] = TenantCredentials(self, tenant)
        return view

    def get(self, tenant: str | None, namespace: str | None, key: str) -> Any:
        """The provider defined exactly at this scope (no fallback)."""
        return self._providers.get((tenant, namespace, key))

    def lookup(self, tenant: str, key: str, namespace: str | None = None) -> Any:
        """The most specific provider of ``key`` visible from ``namespace`` of ``tenant``, or None."""
        for scope in scope_chain(tenant, namespace):
            provider = self._providers.get((*scope, key))
            if provider is not None:
                return provider
        return None

    def scopes(self) -> list[ScopeKey]:
        return sorted(self._providers, key=lambda s: (s[0] or "", s[1] or "", s[2]))

    def describe(self) -> list[dict[str, Any]]:
        """Safe views of every credential (no secret values: references only)."""
        out = []
        for scope in self.scopes():
            provider = self._providers[scope]
            describe = getattr(provider, "describe", None)
            item = describe() if callable(describe) else {"key": scope[2]}
            out.append({**item, "tenant": scope[0], "namespace": scope[1]})
        return out

    def __len__(self) -> int:
        return len(self._providers)

    def __bool__(self) -> bool:
        return bool(self._providers)

    def __repr__(self) -> str:
        return f"<CredentialStore {len(self._providers)} credential(s)>"


class TenantCredentials(Mapping[str, Any]):
    """What one tenant's runtime sees: ``[key]`` at tenant level, :meth:`lookup` with a namespace."""

    def __init__(self, store: CredentialStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    def lookup(self, key: str, namespace: str | None = None) -> Any:
        return self.store.lookup(self.tenant, key, namespace)

    def __getitem__(self, key: str) -> Any:
        provider = self.store.lookup(self.tenant, key)
        if provider is None:
            raise KeyError(key)
        return provider

    def __iter__(self) -> Iterator[str]:
        seen = {k for t, ns, k in self.store.scopes() if ns is None and t in (None, self.tenant)}
        return iter(sorted(seen))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def keys_for(self, namespace: str | None = None) -> list[str]:
        """Every key ``credential()`` resolves from ``namespace``."""
        visible = set()
        for t, ns, k in self.store.scopes():
            if t not in (None, self.tenant):
                continue
            if ns is None or (namespace and (namespace == ns or namespace.startswith(ns + "."))):
                visible.add(k)
        return sorted(visible)

    def __repr__(self) -> str:
        return f"<TenantCredentials {self.tenant}: {', '.join(self.keys_for()) or 'none'}>"


def load_text_or_file(raw: str, what: str) -> Mapping[str, Any]:
    """A mapping from a YAML/JSON file path or from the text itself."""
    from ruamel.yaml import YAML

    text = raw
    where = what
    candidate = raw.strip()
    if "\n" not in candidate and not candidate.startswith("{"):
        path = Path(candidate).expanduser()
        if not path.is_file():
            raise CredentialConfigError(
                f"{what}: {candidate} is not a file (give a path, or the YAML/JSON itself)"
            )
        try:
            text = path.read_text()
        except OSError as exc:
            raise CredentialConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
        where = f"{what} ({path})"
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except Exception as exc:
        raise CredentialConfigError(f"{where}: not valid YAML/JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise CredentialConfigError(f"{where}: expected a mapping of credentials at the top level")
    return data
