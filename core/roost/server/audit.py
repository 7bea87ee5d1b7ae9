"""The audit recorder: who changed what, when, from where, and the state before and after.

Routes call :meth:`AuditRecorder.record` where a change happens (the one place that writes audit
entries; the store's log is append-only). The actor is the request's principal and client address,
set by the access middleware in :data:`ACTOR`; a change made outside a request (the scheduler, a flow's
own tasks) is not a user's and is not recorded. Values under keys that name secrets (``password``,
``token``, ``secret``, ``apiKey``...) are masked before they are written; flows are recorded as
their YAML source, as the API returns it.

Logins: :meth:`AuditRecorder.login` records a success once per principal and address every 30
minutes (an API client authenticates on every request) and failures at most once a minute per user
and address, with the number of attempts, and at most 60 a minute in all, so a brute force cannot
flood the table. The UI's login form calls the same method.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("roost.server")

MASK = "******"
_SECRET_KEY = re.compile(r"pass(word|phrase)?|secret|token|api[_-]?key|private[_-]?key|authorization|cookie|credential",
                         re.IGNORECASE)  # fmt: skip
PERMISSION_OF = {"FLOW": "FLOW", "EXECUTION": "EXECUTION", "NAMESPACE_FILE": "NAMESPACE", "NAMESPACE": "NAMESPACE",
                 "KV_STORE": "KVSTORE", "TRIGGER": "FLOW", "ASSET": "ASSET", "KILL_SWITCH": "KILL_SWITCH",
                 "USER": "USER", "CREDENTIAL": "CREDENTIAL", "SETTING": "SETTING", "SECRET": "SECRET"}  # fmt: skip


@dataclass(frozen=True)
class Actor:
    user_id: str
    ip: str | None = None


ACTOR: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("roost_audit_actor", default=None)


def client_ip(scope: Mapping[str, Any], trusted: tuple[Any, ...] = ()) -> str | None:
    """The client's address: the TCP peer, or — only when the peer is a trusted proxy — the rightmost
    address of ``X-Forwarded-For`` that is not itself a trusted proxy (what a client cannot forge)."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not trusted or peer is None or not _trusted(peer, trusted):
        return peer
    header = b""
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            header = value if not header else header + b"," + value
    hops = [h.strip() for h in header.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage: the last proxy we trust is the client as far as we know
        if not _trusted(hop, trusted):
            return hop
        peer = hop
    return peer


def _trusted(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-like keys masked (recursively)."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "") else redact(v))
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class _Limiter:
    """At most one record per key every ``interval`` seconds (counting what it held back), and at most
    ``per_minute`` records a minute in all."""

    def __init__(self, interval: float, per_minute: int) -> None:
        self.interval = interval
        self.per_minute = per_minute
        self._last: dict[Any, tuple[float, int]] = {}
        self._window = (0.0, 0)
        self.dropped = 0
        self._lock = threading.Lock()

    def admit(self, key: Any) -> int:
        """How many events this record stands for (0: do not record now)."""
        now = time.monotonic()
        with self._lock:
            last, held = self._last.get(key, (-1e18, 0))
            if now - last < self.interval:
                self._last[key] = (last, held + 1)
                return 0
            start, count = self._window
            if now - start >= 60:
                start, count = now, 0
            if count >= self.per_minute:
                self._last[key] = (last, held + 1)
                self.dropped += 1
                return 0
            self._window = (start, count + 1)
            if len(self._last) > 10_000:
                self._last = {k: v for k, v in self._last.items() if now - v[0] < self.interval}
            self._last[key] = (now, 0)
            return held + 1


class AuditRecorder:
    """Writes audit entries to the store's append-only log (``store.audit``)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._failures = _Limiter(60.0, 60)
        self._logins = _Limiter(1800.0, 600)

    def record(self, type: str, resource_type: str, *, tenant: str | None, detail: dict[str, Any],
               before: Any = None, after: Any = None, actor: Actor | None = None) -> dict[str, Any] | None:  # fmt: skip
        """Record a change by the current request's principal (None, and nothing written, outside a request).
        A failure to write is logged, never raised: the change itself has happened."""
        actor = actor or ACTOR.get()
        if actor is None:
            return None
        detail = {"permission": PERMISSION_OF.get(resource_type, resource_type), **detail}
        try:
            return self.store.audit.append(type=type, resource_type=resource_type, tenant=tenant, detail=detail,
                                           user_id=actor.user_id, ip=actor.ip, before=redact(before), after=redact(after))  # fmt: skip
        except Exception:
            log.exception(
                "cannot write the audit entry %s %s %s by %s",
                type,
                resource_type,
                detail.get("id"),
                actor.user_id,
            )
            return None

    def login(self, user: str, ip: str | None, *, success: bool, method: str = "basic") -> None:
        """Record a login (``LOGIN``) or a failed one (``LOGIN_FAILURE``), rate-limited (see the module).
        The UI's login form calls this; the API's auth middleware calls its two halves."""
        attempts = self.admit_login(user, ip, success)
        if attempts:
            self.write_login(user, ip, success, method, attempts)

    def admit_login(self, user: str, ip: str | None, success: bool) -> int:
        """How many attempts a login entry written now stands for; 0: held back by the rate limit."""
        return (self._logins if success else self._failures).admit((user, ip))

    def write_login(self, user: str, ip: str | None, success: bool, method: str, attempts: int = 1) -> None:
        detail: dict[str, Any] = {"id": user, "method": method}
        if not success:
            detail["attempts"] = attempts
        self.record(
            "LOGIN" if success else "LOGIN_FAILURE",
            "USER",
            tenant=None,
            detail=detail,
            actor=Actor(user or "anonymous", ip),
        )


def configuration_sections(config: Any) -> dict[str, tuple[str, Any]]:
    """What of the configuration file the audit log follows: the credentials (secret references only; the
    values behind them are never in the file) and the roles (who has which, custom roles). Password and
    token hashes are left out."""
    auth = config.auth
    roles = {
        "users": {name: [vars(b) for b in auth.bindings.get(name, ())] for name in sorted(auth.users)},
        "tokens": {name: [vars(b) for b in auth.bindings.get(f"token:{name}", ())] for name in sorted(auth.tokens.values())},
        "customRoles": {name: {p: sorted(a) for p, a in role.grants.items()} for name, role in sorted(auth.roles.items())
                        if name not in ("ADMIN", "DEVELOPER", "LAUNCHER", "VIEWER")},
        "defaultRole": [vars(b) for b in auth.default_bindings],
    }  # fmt: skip
    return {"credentials": ("CREDENTIAL", config.credentials or {}), "roles": ("SETTING", roles)}


def record_configuration(store: Any, config: Any) -> list[str]:
    """At a server's start: record (by ``system``, the file has no author) each followed section of the
    configuration that differs from what the audit log last recorded, with its state before and after.
    Returns the sections recorded."""
    from roost.store.audit import SYSTEM

    changed = []
    for section, (resource, state) in configuration_sections(config).items():
        state = redact(state)
        found, _ = store.audit.search(all_tenants=True, resources=[resource], resource_id=section, size=1)
        previous = store.audit.get(found[0]["id"])["after"] if found else None
        if previous == state or (
            previous is None and not any(state.values() if isinstance(state, dict) else [state])
        ):
            continue
        store.audit.append(type="UPDATE" if found else "CREATE", resource_type=resource, tenant=None, user_id=SYSTEM,
                           detail={"id": section, "permission": PERMISSION_OF[resource], "source": "configuration file"},
                           before=previous, after=state)  # fmt: skip
        changed.append(section)
    return changed


__all__ = ["ACTOR", "MASK", "Actor", "AuditRecorder", "client_ip", "record_configuration", "redact"]
