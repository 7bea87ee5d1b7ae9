"""Server-side SVG for the flow topology and the asset lineage graph.

The topology is drawn from a neutral tree (:class:`Item`): tasks are boxes, a flowable is a group
holding its branches as lanes (parallel branches, Switch/If cases, or one sequence), with its own
``errors`` and ``finally`` lanes; the flow adds lanes for its triggers, ``errors``, ``finally`` and
``afterExecution``. The tree is built from the flow model today (:func:`flow_tree`); Kestra's
``FlowGraph`` (``GET /flows/{ns}/{id}/graph``) maps onto the same tree, so the drawing does not
depend on where the structure comes from. Left to right, no graph library: flows are trees.

The lineage graph lays assets out in columns by their distance from the sources (longest path),
edges drawn between columns, the asset of the page highlighted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

NODE_W, NODE_H, GAP, PAD, LANE_LABEL = 168, 46, 28, 12, 18
PARALLEL = (".Parallel", ".EachParallel", ".Dag", ".ForEachItem")
CHOICE = (".Switch", ".If")
STATE_CLASS = {"SUCCESS": "ok", "WARNING": "warn", "FAILED": "bad", "KILLED": "bad", "RUNNING": "run",
               "CREATED": "run", "RETRYING": "run", "KILLING": "run", "PAUSED": "wait", "QUEUED": "wait",
               "SKIPPED": "skip", "CANCELLED": "skip"}  # fmt: skip


@dataclass
class Item:
    """A task (no lanes) or a group of lanes (a flowable task, or the flow itself)."""

    id: str
    type: str = ""
    lanes: list[tuple[str, list[Item]]] = field(default_factory=list)  # (label, sequence)
    parallel: bool = False  # lanes run side by side (else: one of them, or in order)
    kind: str = "task"  # task | group | trigger


def _children(task: Any) -> tuple[list[tuple[str, list[Any]]], bool]:
    """The branches of a flowable task as (label, tasks), and whether they run in parallel."""
    from roost.flow.task import Task, task_slots

    lanes: list[tuple[str, list[Any]]] = []
    type_id = getattr(task, "type", "")
    parallel = type_id.endswith(PARALLEL)
    for name, kind in task_slots(type(task)).items():  # type: ignore[arg-type]
        if name in ("errors", "finally_", "after_execution"):
            continue
        value = getattr(task, name, None)
        if not value:
            continue
        label = "" if name == "tasks" else name
        if kind == "list":
            if parallel and name == "tasks":
                lanes += [("", [t]) for t in value]
            else:
                lanes.append((label, list(value)))
        elif kind == "dict":
            lanes += [(f"{name}: {key}", list(tasks)) for key, tasks in value.items()]
        elif kind == "single" and isinstance(value, Task):
            lanes.append((label, [value]))
        elif kind == "models":
            for model in value:
                inner = [t for t in vars(model).values() if isinstance(t, Task)]
                if inner:
                    lanes.append(("", inner))
    for name, label in (("errors", "errors"), ("finally_", "finally")):
        value = getattr(task, name, None)
        if value:
            lanes.append((label, list(value)))
    return lanes, parallel


def task_item(task: Any) -> Item:
    lanes, parallel = _children(task)
    if not lanes:
        return Item(task.id, getattr(task, "type", ""))
    return Item(task.id, getattr(task, "type", ""), [(label, [task_item(t) for t in ts]) for label, ts in lanes],
                parallel, "group")  # fmt: skip


def flow_tree(flow: Any) -> Item:
    lanes: list[tuple[str, list[Item]]] = []
    if flow.triggers:
        lanes.append(("triggers", [Item(t.id, t.type, kind="trigger") for t in flow.triggers]))
    lanes.append(("tasks", [task_item(t) for t in flow.tasks]))
    for label, tasks in (
        ("errors", flow.errors),
        ("finally", flow.finally_),
        ("afterExecution", flow.after_execution),
    ):
        if tasks:
            lanes.append((label, [task_item(t) for t in tasks]))
    return Item(flow.id, "flow", lanes, False, "group")


# -- layout -----------------------------------------------------------------------------------------
@dataclass
class Box:
    w: float
    h: float
    parts: list[str]  # SVG drawn at (0, 0)

    def at(self, x: float, y: float) -> str:
        return f'<g transform="translate({x:.0f},{y:.0f})">{"".join(self.parts)}</g>'


def _short(type_id: str) -> str:
    return type_id.rsplit(".", 1)[-1]


def _clip(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _node(item: Item, states: dict[str, str]) -> Box:
    state = states.get(item.id)
    css = f"node {item.kind} {STATE_CLASS.get(state or '', '')}".strip()
    title = f"{item.id} ({item.type})" + (f": {state}" if state else "")
    parts = [f'<g class="{css}" data-task="{escape(item.id)}"><title>{escape(title)}</title>',
             f'<rect width="{NODE_W}" height="{NODE_H}" rx="6"/>',
             f'<text x="10" y="19" class="id">{escape(_clip(item.id))}</text>',
             f'<text x="10" y="36" class="type">{escape(_clip(_short(item.type) + (" · " + state if state else ""), 26))}</text></g>']  # fmt: skip
    return Box(NODE_W, NODE_H, parts)


def _sequence(items: list[Item], states: dict[str, str]) -> Box:
    boxes = [_layout(i, states) for i in items]
    if not boxes:
        return Box(0, 0, [])
    h = max(b.h for b in boxes)
    parts: list[str] = []
    x = 0.0
    for i, b in enumerate(boxes):
        parts.append(b.at(x, 0))
        if i:
            y = NODE_H / 2
            parts.append(
                f'<path class="edge" d="M{x - GAP:.0f},{y:.0f} H{x - 4:.0f}" marker-end="url(#arrow)"/>'
            )
        x += b.w + GAP
    return Box(x - GAP, h, parts)


def _lanes(lanes: list[tuple[str, list[Item]]], states: dict[str, str]) -> Box:
    parts: list[str] = []
    y, w = 0.0, 0.0
    for label, items in lanes:
        seq = _sequence(items, states)
        top = y
        if label:
            cls = "lane-label" + (" errors" if label == "errors" else "")
            parts.append(f'<text class="{cls}" x="0" y="{y + 12:.0f}">{escape(label)}</text>')
            top += LANE_LABEL
        parts.append(seq.at(0, top))
        w = max(w, seq.w)
        y = top + seq.h + GAP / 2
    return Box(max(w, NODE_W), max(y - GAP / 2, 0), parts)


def _layout(item: Item, states: dict[str, str]) -> Box:
    if not item.lanes:
        return _node(item, states)
    inner = _lanes(item.lanes, states)
    head = 30
    w, h = inner.w + 2 * PAD, inner.h + head + PAD
    state = states.get(item.id)
    css = f"group {STATE_CLASS.get(state or '', '')}".strip()
    parts = [f'<g class="{css}" data-task="{escape(item.id)}"><title>{escape(item.id)} ({escape(item.type)})</title>',
             f'<rect width="{w:.0f}" height="{h:.0f}" rx="8"/>',
             f'<text x="{PAD}" y="20" class="id">{escape(_clip(item.id, 40))} <tspan class="type">'
             f'{escape(_short(item.type))}{" · parallel" if item.parallel else ""}{" · " + state if state else ""}</tspan></text></g>',
             inner.at(PAD, head)]  # fmt: skip
    return Box(w, h, parts)


ARROW = ('<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
         'orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>')  # fmt: skip


def topology_svg(tree: Item, states: dict[str, str] | None = None, label: str = "Flow topology") -> str:
    """The SVG of a flow tree; ``states`` (task id → state) colours an execution's tasks."""
    box = _lanes(tree.lanes, states or {})
    w, h = box.w + 2 * PAD, box.h + 2 * PAD
    return (f'<svg class="topology" role="img" aria-label="{escape(label)}" viewBox="0 0 {w:.0f} {h:.0f}" '
            f'width="{w:.0f}" height="{h:.0f}" xmlns="http://www.w3.org/2000/svg">{ARROW}{box.at(PAD, PAD)}</svg>')  # fmt: skip


def outline(tree: Item) -> list[tuple[int, Item, str]]:
    """The tree as (depth, item, lane label) rows: the text alternative of the drawing."""
    rows: list[tuple[int, Item, str]] = []

    def walk(item: Item, depth: int, lane: str) -> None:
        rows.append((depth, item, lane))
        for label, items in item.lanes:
            for child in items:
                walk(child, depth + 1, label)

    for label, items in tree.lanes:
        for child in items:
            walk(child, 0, label)
    return rows


# -- lineage ----------------------------------------------------------------------------------------
def lineage_svg(graph: dict[str, Any], focus_id: str, href: Any) -> str:
    """Assets in columns by depth from the sources; ``href(node) -> url`` links each asset."""
    nodes = {n["uid"]: n for n in graph.get("nodes", [])}
    edges = [
        (e["source"], e["target"])
        for e in graph.get("edges", [])
        if e["source"] in nodes and e["target"] in nodes
    ]
    depth = {u: 0 for u in nodes}
    for _ in range(len(nodes)):  # longest path from a source (the graph is small and acyclic in practice)
        changed = False
        for s, t in edges:
            if depth[t] < depth[s] + 1 and depth[s] + 1 < len(nodes) + 1:
                depth[t] = depth[s] + 1
                changed = True
        if not changed:
            break
    columns: dict[int, list[str]] = {}
    for u in sorted(nodes, key=lambda u: (nodes[u]["namespace"], nodes[u]["id"])):
        columns.setdefault(depth[u], []).append(u)
    col_w, row_h = NODE_W + 70, NODE_H + 22
    pos = {u: (PAD + c * col_w, PAD + r * row_h) for c, us in columns.items() for r, u in enumerate(us)}
    parts = []
    for s, t in edges:
        (x1, y1), (x2, y2) = pos[s], pos[t]
        mx = (x1 + NODE_W + x2) / 2
        parts.append(f'<path class="edge" d="M{x1 + NODE_W},{y1 + NODE_H / 2:.0f} C{mx:.0f},{y1 + NODE_H / 2:.0f} '
                     f'{mx:.0f},{y2 + NODE_H / 2:.0f} {x2 - 4},{y2 + NODE_H / 2:.0f}" marker-end="url(#arrow)"/>')  # fmt: skip
    for u, (x, y) in pos.items():
        n = nodes[u]
        cls = "node asset" + (" focus" if n["id"] == focus_id else "")
        parts.append(f'<a href="{escape(href(n))}"><g class="{cls}" transform="translate({x},{y})">'
                     f'<title>{escape(n["namespace"])}/{escape(n["id"])} ({escape(n["type"])})</title>'
                     f'<rect width="{NODE_W}" height="{NODE_H}" rx="6"/>'
                     f'<text x="10" y="19" class="id">{escape(_clip(n["id"]))}</text>'
                     f'<text x="10" y="36" class="type">{escape(_clip(n["namespace"] + " · " + _short(n["type"]), 26))}</text></g></a>')  # fmt: skip
    w = PAD * 2 + (max(columns) + 1 if columns else 1) * col_w - 70
    h = PAD * 2 + max((len(us) for us in columns.values()), default=1) * row_h - 22
    return (f'<svg class="lineage" role="group" aria-label="Lineage of {escape(focus_id)}: upstream on the left, downstream on the right" '
            f'viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">{ARROW}{"".join(parts)}</svg>')  # fmt: skip
