"""Hookimpls only: the `beyondtrust` secret backend."""

from roost import hookimpl


@hookimpl
def register_secret_backends(register):
    from roost_beyondtrust.backend import BeyondTrustBackend

    register("beyondtrust", BeyondTrustBackend())
