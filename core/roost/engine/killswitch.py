"""Kill switches as the engine sees them: which one (if any) applies to an execution, answered cheaply.

A switch is KILL (running executions are killed with their worker tasks, new ones end KILLED at
creation), CANCEL (nothing new starts, task runs in flight finish, then the execution ends CANCELLED;
new ones end CANCELLED at creation) or IGNORE (every message of the execution is dropped). Its scope
is a tenant, a namespace and its children, a flow, or a list of execution ids; it acts from its start
date until its end date (if any), unless disabled or deleted.

The executor asks on every message, so the question is answered from an in-memory
:class:`SwitchIndex` of the switches active *now*: one dict lookup per dotted prefix of the namespace
at most, and nothing but an attribute test when no switch is active. :class:`KillSwitchGuard` keeps
that index current: it re-reads the store only when the store's version counter moved (checked at
most every ``interval`` seconds), and rebuilds the index when a start or end date passes, so switches
turn on and off on time without any restart.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("roost.engine")

KILL, CANCEL, IGNORE = "KILL", "CANCEL", "IGNORE"
TYPES = (KILL, CANCEL, IGNORE)
LABEL = (
    "system.killSwitch"  # set on the executions a KILL or CANCEL switch stopped (its value: the switch id)
)
_STRENGTH = {CANCEL: 1, KILL: 2, IGNORE: 3}  # where several switches cover an execution, the strongest acts


@dataclass(frozen=True, slots=True)
class Switch:
    id: str
    name: str
    type: str
    tenant: str
    namespace: str | None = None
    flow_id: str | None = None
    execution_ids: frozenset[str] = field(default_factory=frozenset)
    start: float = 0.0
    end: float | None = None
    enabled: bool = True
    description: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Switch:
        return cls(id=row["id"], name=row["name"], type=row["type"], tenant=row["tenant"], namespace=row.get("namespace"),
                   flow_id=row.get("flow_id"), execution_ids=frozenset(row.get("execution_ids") or ()),
                   start=float(row["start_date"]), end=None if row.get("end_date") is None else float(row["end_date"]),
                   enabled=bool(row.get("enabled", True)) and not row.get("deleted"),
                   description=row.get("description"))  # fmt: skip

    def active(self, at: float) -> bool:
        return self.enabled and self.start <= at and (self.end is None or at < self.end)

    def covers(self, tenant: str, namespace: str, flow_id: str, execution_id: str) -> bool:
        if tenant != self.tenant:
            return False
        if self.execution_ids:
            return execution_id in self.execution_ids
        if self.flow_id is not None:
            return namespace == self.namespace and flow_id == self.flow_id
        if self.namespace is not None:
            return namespace == self.namespace or namespace.startswith(self.namespace + ".")
        return True

    @property
    def scope(self) -> str:
        """The scope in words, for logs and banners."""
        if self.execution_ids:
            return f"executions {', '.join(sorted(self.execution_ids)[:5])}" + (
                " ..." if len(self.execution_ids) > 5 else ""
            )
        if self.flow_id is not None:
            return f"flow {self.namespace}.{self.flow_id}"
        if self.namespace is not None:
            return f"namespace {self.namespace}"
        return f"tenant {self.tenant}"


def stronger(a: Switch | None, b: Switch | None) -> Switch | None:
    if a is None:
        return b
    if b is None or _STRENGTH[a.type] >= _STRENGTH[b.type]:
        return a
    return b


class _TenantIndex:
    __slots__ = ("whole", "namespaces", "flows")

    def __init__(self) -> None:
        self.whole: Switch | None = None
        self.namespaces: dict[str, Switch] = {}
        self.flows: dict[tuple[str, str], Switch] = {}


class SwitchIndex:
    """The switches active at one moment, indexed by tenant, namespace, flow and execution id (immutable)."""

    __slots__ = ("switches", "tenants", "executions")

    def __init__(self, switches: Iterable[Switch] = ()) -> None:
        self.switches: tuple[Switch, ...] = tuple(switches)
        self.tenants: dict[str, _TenantIndex] = {}
        self.executions: dict[str, Switch] = {}
        for sw in self.switches:
            if sw.execution_ids:
                for ex_id in sw.execution_ids:
                    self.executions[ex_id] = stronger(self.executions.get(ex_id), sw)  # type: ignore[assignment]
                continue
            t = self.tenants.get(sw.tenant)
            if t is None:
                t = self.tenants[sw.tenant] = _TenantIndex()
            if sw.flow_id is not None and sw.namespace is not None:
                key = (sw.namespace, sw.flow_id)
                t.flows[key] = stronger(t.flows.get(key), sw)  # type: ignore[assignment]
            elif sw.namespace is not None:
                t.namespaces[sw.namespace] = stronger(t.namespaces.get(sw.namespace), sw)  # type: ignore[assignment]
            else:
                t.whole = stronger(t.whole, sw)

    def match(self, tenant: str, namespace: str, flow_id: str, execution_id: str) -> Switch | None:
        best: Switch | None = None
        if self.executions:
            sw = self.executions.get(execution_id)
            if sw is not None and sw.tenant == tenant:
                best = sw
        t = self.tenants.get(tenant)
        if t is None:
            return best
        best = stronger(best, t.whole)
        if t.namespaces:
            ns = namespace
            while True:
                best = stronger(best, t.namespaces.get(ns))
                dot = ns.rfind(".")
                if dot < 0:
                    break
                ns = ns[:dot]
        if t.flows:
            best = stronger(best, t.flows.get((namespace, flow_id)))
        return best


EMPTY = SwitchIndex()


class KillSwitchGuard:
    """The active switches of a store, kept current (see the module docstring).

    ``load`` returns the switches that are not archived; ``version`` the store's change counter.
    Without them (an engine without a store of switches) the guard holds no switch.
    """

    def __init__(self, load: Callable[[], list[Switch]] | None = None, version: Callable[[], int] | None = None,
                 *, interval: float = 0.5) -> None:  # fmt: skip
        self._load = load
        self._version = version
        self.interval = interval
        self.index: SwitchIndex = EMPTY
        self.current: list[
            Switch
        ] = []  # not archived: active, scheduled, disabled, or ended not yet archived
        self.generation = 0  # bumped whenever the active set changes
        self.activated: dict[
            str, float
        ] = {}  # switch id → when this process began applying it (epoch seconds)
        self._seen_version: int | None = None
        self._next_check = 0.0  # monotonic
        self._next_transition = math.inf  # epoch seconds: the next start or end date among current switches
        self._lock = threading.Lock()

    def match(self, tenant: str, namespace: str, flow_id: str, execution_id: str) -> Switch | None:
        """The switch acting on an execution now, or None (refreshing first when due)."""
        if time.monotonic() >= self._next_check or time.time() >= self._next_transition:
            self.refresh()
        index = self.index
        if not index.switches:
            return None
        return index.match(tenant, namespace, flow_id, execution_id)

    def due(self) -> float:
        """Seconds until the next refresh or date transition (for the executor loop's wait)."""
        return max(0.0, min(self._next_check - time.monotonic(), self._next_transition - time.time()))

    def refresh(self, force: bool = False) -> bool:
        """Re-read the store if it changed and rebuild the index if the active set changed; True if it did.
        A thread that finds another one refreshing goes on with the current index (unless ``force``)."""
        if self._load is None:
            self._next_check = math.inf
            return False
        if not force and time.monotonic() < self._next_check and time.time() < self._next_transition:
            return False  # not due (the executor asks at every step): no lock taken
        if not self._lock.acquire(blocking=force):
            return False
        try:
            if not force and time.monotonic() < self._next_check and time.time() < self._next_transition:
                return False
            self._next_check = time.monotonic() + self.interval
            try:
                version = self._version() if self._version is not None else None
                if force or version is None or version != self._seen_version:
                    self.current = self._load()
                    self._seen_version = version
            except Exception as exc:  # the store is busy or down: keep the switches we know
                log.warning(
                    "cannot read the kill switches (keeping the %d known): %s", len(self.current), exc
                )
            return self._rebuild(time.time())
        finally:
            self._lock.release()

    def set(self, switches: list[Switch]) -> bool:
        """Use these switches (tests, engines without a store); returns whether the active set changed."""
        with self._lock:
            self.current = list(switches)
            return self._rebuild(time.time())

    def _rebuild(self, at: float) -> bool:
        active = [sw for sw in self.current if sw.active(at)]
        upcoming = [
            d for sw in self.current if sw.enabled for d in (sw.start, sw.end) if d is not None and d > at
        ]
        self._next_transition = min(upcoming, default=math.inf)
        if set(active) == set(self.index.switches):
            return False
        before = {sw.id for sw in self.index.switches}
        self.index = SwitchIndex(active)  # swapped first: a worker checking after this line sees the switch
        stamp = time.time()  # taken after the swap, so that work admitted before it started before this time
        self.activated = {
            sw.id: self.activated.get(sw.id, stamp) if sw.id in before else stamp for sw in active
        }
        self.generation += 1
        for sw in active:
            if sw.id not in before:
                log.warning(
                    "kill switch %s (%s) is active on %s: %s",
                    sw.name,
                    sw.type,
                    sw.scope,
                    sw.description or "no reason given",
                )
        for sw_id in before - {sw.id for sw in active}:
            log.warning("kill switch %s is no longer active", sw_id)
        return True

    def ended(self, at: float | None = None) -> list[Switch]:
        """Current switches whose end date has passed (to archive)."""
        at = time.time() if at is None else at
        return [sw for sw in self.current if sw.end is not None and sw.end <= at]


def store_guard(store: Any, interval: float = 0.5) -> KillSwitchGuard:
    """A guard over the store's ``kill_switches`` table."""
    repo = store.kill_switches
    return KillSwitchGuard(lambda: [Switch.from_row(r) for r in repo.list(current_only=True)], repo.version,
                           interval=interval)  # fmt: skip


__all__ = [
    "CANCEL",
    "IGNORE",
    "KILL",
    "LABEL",
    "TYPES",
    "KillSwitchGuard",
    "Switch",
    "SwitchIndex",
    "store_guard",
]
