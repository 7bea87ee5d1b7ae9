"""What a principal may do: the one question every edit action of the UI asks.

``can(principal, resource, action, namespace)`` answers for a page whether to show an action and
for a route whether to perform it. Today any authenticated principal (or anyone, when auth is off)
may do everything; roles (ADMIN, DEVELOPER, VIEWER) replace the body of this function without
touching a page or a route.
"""

from __future__ import annotations

from typing import Literal

Resource = Literal[
    "FLOW", "EXECUTION", "NAMESPACE", "KVSTORE", "SECRET", "PLUGIN_DEFAULTS", "ASSET", "AI_COPILOT"
]
Action = Literal["CREATE", "READ", "UPDATE", "DELETE"]
ANONYMOUS = "anonymous"  # the principal of every request when auth is off


def can(principal: str | None, resource: Resource, action: Action, namespace: str | None = None) -> bool:
    """Whether ``principal`` may perform ``action`` on ``resource`` (in ``namespace``)."""
    del resource, action, namespace  # roles arrive with the RBAC work; until then, authenticated is enough
    return principal is not None
