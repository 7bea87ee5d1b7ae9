"""Helpers of the BeyondTrust tests: the environment of the references, and backends built as the engine builds them."""

from __future__ import annotations

from roost.plugins import Plugins
from roost.secret_backends import SecretBackends

ENV = {"PS_API_KEY": "A" * 128, "PS_CLIENT_SECRET": "client-s3cret-value"}


def build(settings, **scopes):
    """The backends of a `secret:` configuration whose default is the beyondtrust backend."""
    config = {"type": "beyondtrust", "beyondtrust": settings, **scopes}
    return SecretBackends.from_config(config, plugins=Plugins(), environ=ENV)
