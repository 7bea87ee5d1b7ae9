"""Credentials: server-to-server tokens minted and refreshed for flows, reached with ``credential('key')``.

Credential types are registered through the ``register_credential_types`` hook
(the built-in plugin registers ``oauth2_client_credentials``,
``oauth2_jwt_bearer``, ``oauth2_private_key_jwt`` and ``github_app``); a
plugin adds its own the same way, usually by subclassing :class:`TokenProvider`
to get caching and refresh::

    from roost import hookimpl

    @hookimpl
    def register_credential_types(register):
        from my_plugin.creds import MyToken      # a TokenProvider subclass
        register("my_token", MyToken)            # MyToken(config) -> .token()

Credentials are configured once per tenant (optionally per namespace) in the
server configuration or ``ROOST_CREDENTIALS``; see :mod:`roost.credentials.store`.
"""

from roost.credentials.base import (
    CredentialConfig,
    CredentialConfigError,
    CredentialError,
    Settings,
    Token,
    TokenProvider,
    is_reference,
    secret_field,
)
from roost.credentials.store import ENV_VAR, CredentialStore, TenantCredentials, credential_types

__all__ = [
    "ENV_VAR",
    "CredentialConfig",
    "CredentialConfigError",
    "CredentialError",
    "CredentialStore",
    "Settings",
    "TenantCredentials",
    "Token",
    "TokenProvider",
    "credential_types",
    "is_reference",
    "secret_field",
]
