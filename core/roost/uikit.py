"""What a plugin hands the web UI through the ``register_ui`` hook: pages and panels.

A page gets a navigation entry and the URL ``/ui/{tenant}/x/{name}``; a panel is a section on the
flow, execution or namespace page. Both render HTML fragments (the plugin's own, trusted markup:
escape what comes from users with :func:`html.escape`) inside the UI's layout, so they inherit
login, navigation and styles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class UiContext:
    """What a page or panel renders from."""

    tenant: str
    principal: str | None
    query: dict[str, str] = field(default_factory=dict)
    subject: dict[str, Any] = field(default_factory=dict)
    """For a panel: the flow (namespace, id, revision), execution (as the API returns it) or namespace (id)."""

    def can(self, permission: str, action: str, namespace: str | None = None) -> bool:
        """Whether the principal may do ``action`` (READ, CREATE, UPDATE, DELETE) on ``permission`` (FLOW,
        EXECUTION, AI_COPILOT...) in ``namespace`` of this tenant (``None``: somewhere in it), by the
        server's roles (:func:`roost.server.rbac.can`; without roles, any signed-in principal may)."""
        policy = getattr(self.principal, "policy", None)
        if policy is None:
            return self.principal is not None
        return bool(policy.can(self.principal, permission, action, namespace, tenant=self.tenant))


@dataclass(frozen=True)
class UiPage:
    """A page of the UI: ``name`` is its URL segment (``[a-z0-9-]+``), ``title`` its navigation label."""

    name: str
    title: str
    render: Callable[[UiContext], str]


@dataclass(frozen=True)
class UiPanel:
    """A section on the ``flow``, ``execution`` or ``namespace`` page."""

    where: Literal["flow", "execution", "namespace"]
    title: str
    render: Callable[[UiContext], str]
