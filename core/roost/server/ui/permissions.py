"""What a principal may do: the one question every edit action of the UI asks.

``can(principal, resource, action, namespace)`` answers for a page whether to show an action and for a
route whether to perform it: :func:`roost.server.rbac.can` with the request's principal, which carries
the roles of the configuration (``namespace=None``: somewhere in the tenant). Without roles configured,
any authenticated principal (or anyone, when auth is off) may do everything.
"""

from __future__ import annotations

from typing import Any, Literal

from roost.server import rbac

Resource = Literal["FLOW", "EXECUTION", "NAMESPACE", "KVSTORE", "SECRET", "PLUGIN_DEFAULTS", "ASSET", "KILL_SWITCH",
                   "AUDITLOG", "AI_COPILOT"]  # fmt: skip
Action = Literal["CREATE", "READ", "UPDATE", "DELETE"]
ANONYMOUS = "anonymous"  # the principal of every request when auth is off


def can(
    principal: Any, resource: Resource, action: Action, namespace: str | None = None, tenant: str = "main"
) -> bool:
    """Whether ``principal`` may perform ``action`` on ``resource`` (in ``namespace`` of ``tenant``)."""
    return rbac.can(principal, resource, action, namespace, tenant=tenant)
