"""What every layer knows of secrets: the errors, the backend protocol and the ``env`` backend (Kestra OSS's
``SECRET_<KEY>`` variables). Choosing a backend per tenant and namespace is :mod:`roost.secret_backends`."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Protocol, runtime_checkable


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
