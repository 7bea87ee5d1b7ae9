"""Flow dependencies (Kestra's ``FlowTopologyGraph``): which flows start which.

A flow depends on another when one of its Subflow tasks (or ForEachItem) calls it (``FLOW_TASK``),
or when its Flow trigger listens to it (``FLOW_TRIGGER``). As Kestra's ``FlowTopologyService``: a
Flow trigger's identity conditions (ExecutionFlow, ExecutionNamespace, and the ``preconditions``
``flows`` and ``where`` on NAMESPACE/FLOW_ID) must all hold for the upstream flow, while filter
conditions (states, labels, dates, expressions...) are left out; a Flow trigger that names no flow at
all listens to every flow. Node uids are ``tenant_namespace_id``; a flow never depends on itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FLOW_TASK, FLOW_TRIGGER = "FLOW_TASK", "FLOW_TRIGGER"
_FILTERS = {"DateTimeBetween", "DayWeek", "DayWeekInMonth", "ExecutionLabels", "ExecutionOutputs", "ExecutionStatus",
            "Expression", "HasRetryAttempt", "PublicHoliday", "TimeBetween", "Weekend"}  # fmt: skip


def _short(type_id: Any) -> str:
    return str(type_id or "").rsplit(".", 1)[-1].removesuffix("Condition")


@dataclass
class FlowNode:
    tenant: str
    namespace: str
    id: str
    calls: set[tuple[str, str]] = field(default_factory=set)  # (namespace, id) of the subflows it calls
    listeners: list[Any] = field(default_factory=list)  # its Flow triggers

    @property
    def uid(self) -> str:
        return f"{self.tenant}_{self.namespace}_{self.id}"

    def json(self) -> dict[str, str]:
        return {"uid": self.uid, "namespace": self.namespace, "id": self.id}


def node_of(tenant: str, flow: Any) -> FlowNode:
    node = FlowNode(tenant, flow.namespace, flow.id)
    for task in flow.all_tasks():
        call = getattr(task, "subflow_task", None) or task
        if getattr(call, "executor_kind", None) == "subflow" or call is not task:
            ns, fid = str(getattr(call, "namespace", "")), str(getattr(call, "flow_id", ""))
            if ns and fid and "{{" not in ns + fid:  # a subflow known only at run time is not drawn
                node.calls.add((ns, fid))
    node.listeners = [t for t in flow.triggers if _short(getattr(t, "type", "")) == "Flow"]
    return node


def _condition_holds(cond: dict[str, Any], upstream: FlowNode) -> bool:
    kind = _short(cond.get("type"))
    if kind in _FILTERS:
        return True
    if kind in ("ExecutionFlow", "Flow"):
        return cond.get("namespace") == upstream.namespace and cond.get("flowId") == upstream.id
    if kind in ("ExecutionNamespace", "FlowNamespace"):
        target = str(cond.get("namespace", ""))
        comparison = str(cond.get("comparison") or ("PREFIX" if cond.get("prefix") else "EQUALS")).upper()
        ns = upstream.namespace
        if comparison == "PREFIX":
            return ns.startswith(target)
        if comparison == "SUFFIX":
            return ns.endswith(target)
        return ns == target
    if kind in ("Not", "Or", "MultipleCondition"):
        inner = cond.get("conditions") or {}
        values = list(inner.values()) if isinstance(inner, dict) else list(inner)
        checked = [c for c in values if isinstance(c, dict) and _short(c.get("type")) not in _FILTERS]
        return not checked or any(_condition_holds(c, upstream) for c in checked)
    return True


def _where_holds(where: dict[str, Any], upstream: FlowNode) -> bool:
    results = []
    for f in where.get("filters") or ():
        field_name = str(f.get("field", "")).upper()
        actual = {"NAMESPACE": upstream.namespace, "FLOW_ID": upstream.id}.get(field_name)
        if actual is None:
            continue  # a filter on the execution (state, expression...) says nothing of the flow
        op, expected = str(f.get("type", "EQUAL_TO")).upper(), f.get("value")
        values = [str(v) for v in (f.get("values") or (expected if isinstance(expected, list) else []))]
        results.append({
            "EQUAL_TO": actual == str(expected), "EQUALS": actual == str(expected), "NOT_EQUAL_TO": actual != str(expected),
            "IN": actual in values, "NOT_IN": actual not in values, "STARTS_WITH": actual.startswith(str(expected)),
            "PREFIX": actual.startswith(str(expected)), "ENDS_WITH": actual.endswith(str(expected)),
            "CONTAINS": str(expected) in actual,
        }.get(op, True))  # fmt: skip
    if not results:
        return True
    return any(results) if str(where.get("operand", "AND")).upper() == "OR" else all(results)


def _listens_to(trigger: Any, upstream: FlowNode) -> bool:
    pre = getattr(trigger, "preconditions", None)
    if pre is None:
        return True
    flows_ok = any(
        (not f.get("namespace") or f["namespace"] == upstream.namespace)
        and (not f.get("flowId") or f["flowId"] == upstream.id)
        for f in pre.flows or ()
    )
    return flows_ok and all(_where_holds(w, upstream) for w in pre.where or ())


def relation(parent: FlowNode, child: FlowNode) -> str | None:
    """How ``child`` depends on ``parent`` (it is started by it), if it does."""
    if (parent.tenant, parent.namespace, parent.id) == (child.tenant, child.namespace, child.id):
        return None
    if (child.namespace, child.id) in parent.calls:
        return FLOW_TASK
    if not child.listeners:
        return None
    conditions_ok = all(
        _condition_holds(c, parent)
        for t in child.listeners
        for c in t.conditions or ()
        if isinstance(c, dict)
    )
    if conditions_ok and any(_listens_to(t, parent) for t in child.listeners):
        return FLOW_TRIGGER
    return None


def edges(nodes: Iterable[FlowNode]) -> list[tuple[FlowNode, FlowNode, str]]:
    """Every dependency among ``nodes``: (source, destination, relation)."""
    nodes = list(nodes)
    out = []
    for parent in nodes:
        for child in nodes:
            rel = relation(parent, child)
            if rel is not None:
                out.append((parent, child, rel))
    return out


def graph(nodes: Iterable[FlowNode], links: Iterable[tuple[FlowNode, FlowNode, str]]) -> dict[str, Any]:
    """Kestra's ``FlowTopologyGraph`` JSON: the nodes (each once) and the edges between them."""
    seen: dict[str, FlowNode] = {}
    for node in nodes:
        seen.setdefault(node.uid, node)
    out_edges = []
    for source, target, rel in links:
        seen.setdefault(source.uid, source)
        seen.setdefault(target.uid, target)
        out_edges.append({"source": source.uid, "target": target.uid, "relation": rel})
    return {"nodes": [n.json() for n in seen.values()], "edges": out_edges}


def dependencies(
    nodes: list[FlowNode], start: FlowNode, *, destination_only: bool, expand_all: bool
) -> dict[str, Any]:
    """The dependencies of one flow: the flows it starts (and, unless ``destination_only``, those starting it);
    with ``expand_all``, theirs too, transitively."""
    links = edges(nodes)
    chosen: list[tuple[FlowNode, FlowNode, str]] = []
    frontier, visited = [start.uid], set()
    while frontier:
        uid = frontier.pop()
        if uid in visited:
            continue
        visited.add(uid)
        for link in links:
            source, target, _rel = link
            hit = source.uid == uid or (not destination_only and target.uid == uid)
            if hit and link not in chosen:
                chosen.append(link)
                if expand_all:
                    frontier += [source.uid, target.uid]
    return graph([start], chosen)


__all__ = ["FLOW_TASK", "FLOW_TRIGGER", "FlowNode", "dependencies", "edges", "graph", "node_of", "relation"]
