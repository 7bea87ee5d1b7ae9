"""Roles, bindings and the one question every route and page asks: :func:`Policy.can`.

A **role** grants actions (READ, CREATE, UPDATE, DELETE) on permissions (Kestra's names: FLOW,
EXECUTION, NAMESPACE, KVSTORE, SECRET, ASSET, AUDITLOG, SETTING, CREDENTIAL, AI_COPILOT..., plus
Roost's KILL_SWITCH and PLUGIN_DEFAULTS). A **binding** gives a role to a user or an API token on a
tenant (every tenant when none is named) and, optionally, a namespace and its children. Built-in
roles: ADMIN (everything), DEVELOPER (flows, executions, files, KV, assets, plugin defaults, the AI
Copilot; secrets read-only), LAUNCHER (read, and start executions), VIEWER (read-only). Custom roles
are defined in the configuration.

Until the configuration binds any role, every authenticated principal is ADMIN everywhere (as before
roles existed, so an install without roles keeps working); once one binding exists, a principal
without one may do nothing but what any authenticated principal may (``defaultRole`` can change that).
With auth off there is no principal and everything is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("READ", "CREATE", "UPDATE", "DELETE")
# Kestra EE's Permission enum (the API's names), then Roost's own levers.
KESTRA_PERMISSIONS = ("FLOW", "BLUEPRINT", "TEMPLATE", "NAMESPACE", "EXECUTION", "USER", "GROUP", "ROLE", "BINDING",
                      "AUDITLOG", "SECRET", "KVSTORE", "IMPERSONATE", "SETTING", "APP", "ASSET", "APPEXECUTION", "TEST",
                      "DASHBOARD", "TENANT_ACCESS", "SERVICE_ACCOUNT", "INVITATION", "GROUP_MEMBERSHIP", "CREDENTIAL",
                      "AI_COPILOT")  # fmt: skip
ROOST_PERMISSIONS = ("KILL_SWITCH", "PLUGIN_DEFAULTS")
PERMISSIONS = KESTRA_PERMISSIONS + ROOST_PERMISSIONS
ALIASES = {"KV": "KVSTORE", "AUDIT_LOG": "AUDITLOG", "FILES": "NAMESPACE", "KILLSWITCH": "KILL_SWITCH"}

ALL = frozenset(ACTIONS)
READ = frozenset({"READ"})


@dataclass(frozen=True)
class Role:
    name: str
    grants: Mapping[str, frozenset[str]]  # permission → actions
    description: str = ""

    def allows(self, permission: str, action: str) -> bool:
        return action in self.grants.get(permission, ())


def _role(name: str, description: str, **grants: frozenset[str]) -> Role:
    return Role(name, dict(grants), description)


BUILTIN_ROLES: dict[str, Role] = {r.name: r for r in (
    _role("ADMIN", "Everything, kill switches and audit logs included",
          **{p: ALL for p in PERMISSIONS}),
    _role("DEVELOPER", "Flows, executions, namespace files, KV, assets, plugin defaults and the AI Copilot; secrets read-only",
          FLOW=ALL, EXECUTION=ALL, NAMESPACE=ALL, KVSTORE=ALL, ASSET=ALL, PLUGIN_DEFAULTS=ALL, AI_COPILOT=ALL,
          SECRET=READ, CREDENTIAL=READ),
    _role("LAUNCHER", "Read flows and executions, and start executions",
          FLOW=READ, EXECUTION=frozenset({"READ", "CREATE"}), NAMESPACE=READ, ASSET=READ),
    _role("VIEWER", "Read-only",
          FLOW=READ, EXECUTION=READ, NAMESPACE=READ, KVSTORE=READ, ASSET=READ, PLUGIN_DEFAULTS=READ),
)}  # fmt: skip


class Principal(str):
    """Who made a request: its name (what the API and the UI show), its kind (``user`` or ``token``) and,
    once the access middleware saw it, the :class:`Policy` that answers for it (see :func:`can`).

    A ``str`` so that code that only needs the name keeps treating it as one.
    """

    kind: str
    policy: Policy | None

    def __new__(cls, name: str, kind: str = "user", policy: Policy | None = None) -> Principal:
        obj = super().__new__(cls, name)
        obj.kind = kind
        obj.policy = policy
        return obj

    @property
    def id(self) -> str:
        """A unique id across kinds (a token named like a user is still another principal)."""
        return str(self) if self.kind == "user" else f"{self.kind}:{self}"


@dataclass(frozen=True)
class Binding:
    role: str
    tenant: str | None = None  # None: every tenant
    namespace: str | None = None  # None: the whole tenant; else this namespace and its children

    def covers(self, tenant: str, namespace: str | None) -> bool:
        if self.tenant is not None and self.tenant != tenant:
            return False
        return self.namespace is None or (namespace is not None and within(namespace, self.namespace))


def within(namespace: str, prefix: str) -> bool:
    """Whether ``namespace`` is ``prefix`` or one of its children (``a.b`` is in ``a``; ``ab`` is not)."""
    return namespace == prefix or namespace.startswith(prefix + ".")


@dataclass(frozen=True)
class Scope:
    """Where a principal may do one action on one permission in one tenant: everywhere (``all``), in
    some namespaces and their children (``prefixes``), or nowhere."""

    all: bool
    prefixes: tuple[str, ...] = ()

    @property
    def none(self) -> bool:
        return not self.all and not self.prefixes

    def allows(self, namespace: str | None) -> bool:
        if self.all:
            return True
        return namespace is not None and any(within(namespace, p) for p in self.prefixes)


EVERYWHERE = Scope(True)
NOWHERE = Scope(False)


@dataclass
class Policy:
    """Roles and bindings from the configuration; answers :meth:`can`."""

    roles: dict[str, Role] = field(default_factory=lambda: dict(BUILTIN_ROLES))
    bindings: dict[str, tuple[Binding, ...]] = field(default_factory=dict)  # Principal.id → bindings
    default: tuple[Binding, ...] = ()  # bindings of principals that have none
    auth: bool = True  # False: no authentication, so no principal and no restriction

    @property
    def enforced(self) -> bool:
        """Roles restrict only once some binding is configured."""
        return self.auth and bool(self.bindings or self.default)

    def bindings_of(self, principal: Any) -> tuple[Binding, ...]:
        if principal is None:
            return ()
        key = principal.id if isinstance(principal, Principal) else str(principal)
        return self.bindings.get(key) or self.default

    def unrestricted(self, principal: Any, tenant: str | None = None) -> bool:
        """True when roles restrict nothing for this principal (in ``tenant``; on every tenant without one):
        auth off, no role configured, or ADMIN on the whole tenant."""
        if not self.enforced:
            return not self.auth or principal is not None
        return any(b.role == "ADMIN" and b.namespace is None and (b.tenant is None or b.tenant == tenant)
                   for b in self.bindings_of(principal))  # fmt: skip

    def can(self, principal: Any, permission: str, action: str, namespace: str | None = None, *,
            tenant: str = "main") -> bool:  # fmt: skip
        """Whether ``principal`` may do ``action`` on ``permission`` in ``namespace`` of ``tenant``.

        ``namespace=None`` asks whether it may somewhere in the tenant (to show an action, or before the
        namespace is known); an operation on one namespace must name it.
        """
        if not self.enforced:
            return not self.auth or principal is not None
        permission = ALIASES.get(permission, permission)
        for b in self.bindings_of(principal):
            role = self.roles.get(b.role)
            if role is None or not role.allows(permission, action):
                continue
            if b.tenant is not None and b.tenant != tenant:
                continue
            if namespace is None or b.namespace is None or within(namespace, b.namespace):
                return True
        return False

    def scope(self, principal: Any, permission: str, action: str, tenant: str = "main") -> Scope:
        """The namespaces of ``tenant`` where ``principal`` may do ``action`` on ``permission``."""
        if not self.enforced:
            return EVERYWHERE if not self.auth or principal is not None else NOWHERE
        permission = ALIASES.get(permission, permission)
        prefixes: list[str] = []
        for b in self.bindings_of(principal):
            role = self.roles.get(b.role)
            if (
                role is None
                or not role.allows(permission, action)
                or (b.tenant is not None and b.tenant != tenant)
            ):
                continue
            if b.namespace is None:
                return EVERYWHERE
            prefixes.append(b.namespace)
        kept = tuple(sorted(p for p in set(prefixes) if not any(q != p and within(p, q) for q in prefixes)))
        return Scope(False, kept)

    def anywhere(self, principal: Any, permission: str, action: str) -> bool:
        """Whether some binding (any tenant, any namespace) grants it."""
        if not self.enforced:
            return not self.auth or principal is not None
        permission = ALIASES.get(permission, permission)
        return any((r := self.roles.get(b.role)) is not None and r.allows(permission, action)
                   for b in self.bindings_of(principal))  # fmt: skip

    def instance_wide(self, principal: Any, permission: str, action: str) -> bool:
        """Whether a binding on every tenant (no tenant named, no namespace) grants it: instance-level
        operations (all-tenant audit logs, instance plugin defaults) need one."""
        if not self.enforced:
            return not self.auth or principal is not None
        permission = ALIASES.get(permission, permission)
        return any(b.tenant is None and b.namespace is None and (r := self.roles.get(b.role)) is not None
                   and r.allows(permission, action) for b in self.bindings_of(principal))  # fmt: skip


def can(
    principal: Any, permission: str, action: str, namespace: str | None = None, *, tenant: str = "main"
) -> bool:
    """Whether ``principal`` may do ``action`` (READ, CREATE, UPDATE, DELETE) on ``permission`` (FLOW,
    EXECUTION, NAMESPACE, KVSTORE, SECRET, PLUGIN_DEFAULTS, KILL_SWITCH, AUDITLOG, AI_COPILOT...) in
    ``namespace`` (``None``: somewhere in ``tenant``) — the one function pages, routes and plugins ask.

    ``principal`` is the request's (``request.state.principal``: a :class:`Principal` carrying its policy).
    A principal known by its name only (no policy: roles are not in play, or auth is off) may do
    anything it is authenticated for; ``None`` may do nothing.
    """
    policy = getattr(principal, "policy", None)
    if policy is None:
        return principal is not None
    return bool(policy.can(principal, permission, action, namespace, tenant=tenant))


class PolicyError(ValueError):
    """A role or binding of the configuration is malformed; the message names it."""


def parse_roles(data: Any, where: str = "server.roles") -> dict[str, Role]:
    """Custom roles: ``{NAME: {permissions: {PERMISSION: [ACTION, ...]}, description: ...}}``."""
    roles = dict(BUILTIN_ROLES)
    if data is None:
        return roles
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: expected a mapping of role name to its permissions")
    for name, spec in data.items():
        if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
            raise PolicyError(f"{where}: {name!r} is not a role name (letters, digits and '_')")
        if name.upper() in BUILTIN_ROLES:
            raise PolicyError(f"{where}.{name}: {name.upper()} is a built-in role and cannot be redefined")
        if not isinstance(spec, dict) or not isinstance(spec.get("permissions"), dict):
            raise PolicyError(f"{where}.{name}: expected 'permissions: {{PERMISSION: [ACTION, ...]}}'")
        grants: dict[str, frozenset[str]] = {}
        for perm, actions in spec["permissions"].items():
            key = ALIASES.get(str(perm).upper(), str(perm).upper())
            if key not in PERMISSIONS:
                raise PolicyError(f"{where}.{name}.permissions: unknown permission {perm!r}; expected one of "
                                  f"{', '.join(PERMISSIONS)}")  # fmt: skip
            if actions == "ALL" or actions == ["ALL"]:
                actions = list(ACTIONS)
            if not isinstance(actions, list) or not actions:
                raise PolicyError(
                    f"{where}.{name}.permissions.{perm}: expected a list of actions ({', '.join(ACTIONS)})"
                )
            bad = [a for a in actions if str(a).upper() not in ACTIONS]
            if bad:
                raise PolicyError(f"{where}.{name}.permissions.{perm}: unknown action {bad[0]!r}; expected "
                                  f"{', '.join(ACTIONS)}")  # fmt: skip
            grants[key] = frozenset(str(a).upper() for a in actions)
        roles[name.upper()] = Role(name.upper(), grants, str(spec.get("description") or ""))
    return roles


def parse_bindings(data: Any, roles: Mapping[str, Role], where: str) -> tuple[Binding, ...]:
    """``[{role: DEVELOPER, tenant: main, namespace: company.team}, ...]`` (tenant and namespace optional)."""
    import re

    from roost.flow.model import NAMESPACE

    if data is None:
        return ()
    if not isinstance(data, list):
        raise PolicyError(
            f"{where}: expected a list of bindings such as '- {{role: DEVELOPER, tenant: main}}'"
        )
    out = []
    for i, item in enumerate(data):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            item = {"role": item}
        if not isinstance(item, dict) or not isinstance(item.get("role"), str):
            raise PolicyError(f"{at}: expected a mapping with 'role' (and optionally 'tenant', 'namespace')")
        unknown = set(item) - {"role", "tenant", "namespace"}
        if unknown:
            raise PolicyError(
                f"{at}: unknown key {sorted(unknown)[0]!r}; a binding has role, tenant and namespace"
            )
        role = item["role"].upper()
        if role not in roles:
            raise PolicyError(
                f"{at}.role: unknown role {item['role']!r}; expected one of {', '.join(sorted(roles))}"
            )
        tenant = item.get("tenant")
        if tenant is not None and (
            not isinstance(tenant, str) or not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", tenant)
        ):
            raise PolicyError(f"{at}.tenant: {tenant!r} is not a tenant id")
        ns = item.get("namespace")
        if ns is not None and (not isinstance(ns, str) or not re.match(NAMESPACE, ns)):
            raise PolicyError(f"{at}.namespace: {ns!r} is not a namespace")
        out.append(Binding(role, tenant, ns))
    return tuple(out)


def describe(roles: Iterable[Role]) -> list[dict[str, Any]]:
    """Roles as data (for the API and the docs)."""
    return [{"name": r.name, "description": r.description,
             "permissions": {p: sorted(a, key=ACTIONS.index) for p, a in sorted(r.grants.items())}} for r in roles]  # fmt: skip


__all__ = ["ACTIONS", "BUILTIN_ROLES", "PERMISSIONS", "Binding", "Policy", "PolicyError", "Principal", "Role", "Scope",
           "can", "parse_bindings", "parse_roles", "within"]  # fmt: skip
