"""Kestra's ``FlowGraph`` of a flow, and of one of its executions: the topology a UI draws.

A port of Kestra's ``GraphUtils``: the flow is a cluster (``root``) with a start node, its tasks,
a ``finally`` and an ``afterExecution`` junction and an end node; every flowable task is a nested
cluster whose first node is the task itself; ``errors`` branches leave from the cluster's start,
``finally`` and ``afterExecution`` run between the last task and the end (their junctions vanish
when a cluster has none); triggers form a ``Triggers`` cluster leading to the flow's start. Node
uids are dotted paths (``root.parallel.hello``), suffixed with the ForEach values of their task run
in an execution graph; cluster junctions are ``<path>.root-<id>``, ``<path>.end-<id>``. Node and
cluster ``type`` are Kestra's class names, so a UI written for Kestra reads them unchanged.

Choices: junction ids are derived from the cluster path (and the task run's values), not random,
so the same flow always yields the same graph; task properties are shown as written (defaults left
out). The relation types per flowable follow Kestra: Parallel PARALLEL, Switch and If CHOICE,
ForEach and Dag DYNAMIC, everything else SEQUENTIAL; a flowable Roost does not know is drawn from
its task fields (one list: a sequence; several lists or maps of lists: branches).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from roost.flow.build import task_slots
from roost.flow.task import FlowableTask, Task

H = "io.kestra.core.models.hierarchies."
SEQUENTIAL, CHOICE, ERROR, FINALLY, AFTER_EXECUTION, PARALLEL, DYNAMIC = (
    "SEQUENTIAL", "CHOICE", "ERROR", "FINALLY", "AFTER_EXECUTION", "PARALLEL", "DYNAMIC",
)  # fmt: skip
BRANCHES = (ERROR, FINALLY, AFTER_EXECUTION)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LOOPS = (".LoopUntil", ".WaitFor")
SUBFLOW_BATCHES = "io.kestra.plugin.core.flow.ForEachItem"

FlowLoader = Callable[[str, str, int | None], Any]


def _stable_id(*parts: str) -> str:
    """A 22-character base62 id derived from ``parts`` (Kestra's junction ids are random ones)."""
    n = int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:16], "big")
    out = []
    for _ in range(22):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(out)


def _relation(relation_type: str | None = None, value: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if relation_type is not None:
        out["relationType"] = relation_type
    if value is not None:
        out["value"] = value
    return out


class Node:
    """A node of the graph (Kestra's ``AbstractGraph``)."""

    __slots__ = ("branch_type", "data", "kind", "run_id", "uid")

    def __init__(
        self, uid: str, kind: str, data: dict[str, Any] | None = None, run_id: str | None = None
    ) -> None:
        self.uid = uid
        self.kind = kind
        self.data = data or {}
        self.run_id = run_id
        self.branch_type: str | None = None

    def set_branch(self, branch: str) -> None:
        self.branch_type = branch

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": self.uid, "type": H + self.kind}
        if self.branch_type:
            out["branchType"] = self.branch_type
        out.update(self.data)
        return out


class Cluster(Node):
    """A group of nodes with its own start and end (the flow, a flowable task, the triggers)."""

    __slots__ = ("after", "edges", "end", "finally_", "nodes", "relation_type", "root", "task_node", "_seen")

    def __init__(self, base: str, *, relation_type: str | None = None, task_node: Node | None = None,
                 kind: str = "GraphCluster", salt: str = "") -> None:  # fmt: skip
        super().__init__(base, kind)
        self.relation_type = relation_type
        self.task_node = task_node
        self.nodes: list[Node] = []
        self._seen: set[int] = set()
        self.edges: list[tuple[Node, Node, dict[str, Any]]] = []
        ident = (base, salt)
        self.root = Node(f"{base}.root-{_stable_id('root', *ident)}", "GraphClusterRoot")
        self.finally_ = Node(f"{base}.finally-{_stable_id('finally', *ident)}", "GraphClusterFinally")
        self.after = Node(
            f"{base}.after-execution-{_stable_id('after', *ident)}", "GraphClusterAfterExecution"
        )
        self.end = Node(f"{base}.end-{_stable_id('end', *ident)}", "GraphClusterEnd")
        for node in (self.root, self.finally_, self.after, self.end):
            self.add(node)
        self.edge(self.finally_, self.after)
        self.edge(self.after, self.end)
        if task_node is not None:
            self.add(task_node)
            self.edge(self.root, task_node)

    @property
    def base(self) -> str:
        return self.uid

    def add(self, node: Node) -> None:
        if id(node) not in self._seen:
            self._seen.add(id(node))
            self.nodes.append(node)

    def edge(self, source: Node, target: Node, relation: dict[str, Any] | None = None) -> None:
        self.add(source)  # as Kestra's graph does: an edge brings its ends into the cluster's node list
        self.add(target)
        self.edges.append((source, target, relation or {}))

    def remove_node(self, node: Node) -> None:
        self.nodes = [n for n in self.nodes if n is not node]
        self._seen.discard(id(node))
        self.edges = [e for e in self.edges if e[0] is not node and e[1] is not node]

    def set_branch(self, branch: str) -> None:
        self.branch_type = branch
        for node in (self.task_node, self.root, self.end):
            if node is not None:
                node.branch_type = branch

    def entry(self) -> Node:
        return self.root

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": "cluster_" + self.uid, "type": H + self.kind}
        if self.relation_type:
            out["relationType"] = self.relation_type
        if self.branch_type:
            out["branchType"] = self.branch_type
        if self.task_node is not None:
            out["taskNode"] = self.task_node.json()
        return out


def _entry(node: Node) -> Node:
    return node.root if isinstance(node, Cluster) else node


def _exit(node: Node) -> Node:
    return node.end if isinstance(node, Cluster) else node


def task_json(task: Any) -> dict[str, Any]:
    """A task or trigger as written in the flow (default values left out)."""
    return task.model_dump(by_alias=True, mode="json", exclude_defaults=True, serialize_as_any=True)


class GraphBuilder:
    """Builds the graph of one flow, optionally with an execution's task runs and expanded subflows."""

    def __init__(self, flow: Any, execution: Any = None, *, triggers: dict[str, dict[str, Any]] | None = None,
                 expand: Iterable[str] = (), load_flow: FlowLoader | None = None) -> None:  # fmt: skip
        self.flow = flow
        self.execution = execution
        self.trigger_states = triggers or {}
        self.expand = list(expand)
        self.load_flow = load_flow

    # -- the flow ------------------------------------------------------------------------------------
    def build(self) -> Cluster:
        graph = Cluster("root")
        self._fill_flow(graph, self.flow, self.execution)
        return graph

    def _fill_flow(self, graph: Cluster, flow: Any, execution: Any) -> None:
        saved, self.execution = self.execution, execution
        try:
            if flow.triggers:
                triggers = self._triggers(graph, flow.triggers)
                graph.edge(triggers.end, graph.root)
            self._iterate(
                graph, flow.tasks, flow.errors, flow.finally_, flow.after_execution, None, SEQUENTIAL
            )
        finally:
            self.execution = saved

    def _triggers(self, graph: Cluster, triggers: list[Any]) -> Cluster:
        cluster = Cluster(f"{graph.base}.Triggers")
        graph.add(cluster)
        for trig in triggers:
            data: dict[str, Any] = {"triggerDeclaration": task_json(trig)}
            state = self.trigger_states.get(trig.id)
            if state is not None:
                data["trigger"] = state
            node = Node(f"{cluster.base}.{trig.id}", "GraphTrigger", data)
            cluster.add(node)
            cluster.edge(cluster.root, node)
            cluster.edge(node, cluster.end)
        self._remove_finally(cluster)
        self._remove_after_execution(cluster)
        return cluster

    # -- sequences, branches, alternatives -------------------------------------------------------------
    def _iterate(self, cluster: Cluster, tasks: list[Task] | None, errors: list[Task] | None,
                 finally_: list[Task] | None, after: list[Task] | None, parent: Any, relation: str) -> None:  # fmt: skip
        self._fill(cluster, tasks or [], relation, parent, None)
        self._alternatives(cluster, errors, finally_, after, parent)

    def _alternatives(self, cluster: Cluster, errors: list[Task] | None, finally_: list[Task] | None,
                      after: list[Task] | None, parent: Any) -> None:  # fmt: skip
        if errors:
            self._fill(cluster, errors, ERROR, parent, None)
        if finally_:
            self._fill(cluster, finally_, FINALLY, parent, None)
        else:
            self._remove_finally(cluster)
        if after:
            self._fill(cluster, after, AFTER_EXECUTION, parent, None)
        else:
            self._remove_after_execution(cluster)

    @staticmethod
    def _remove_finally(cluster: Cluster) -> None:
        """No ``finally``: whatever led to its junction leads to the afterExecution junction instead."""
        for source, target, rel in list(cluster.edges):
            if target is cluster.finally_ and source is not cluster.after:
                cluster.edge(source, cluster.after, rel)
        cluster.remove_node(cluster.finally_)

    @staticmethod
    def _remove_after_execution(cluster: Cluster) -> None:
        for source, target, rel in list(cluster.edges):
            if target is cluster.after:
                cluster.edge(source, cluster.end, rel)
        cluster.remove_node(cluster.after)

    def _fill(
        self, cluster: Cluster, tasks: list[Task], relation: str, parent: Any, value: str | None
    ) -> None:
        """Kestra's ``fillGraph``: chain (or fan out) ``tasks`` inside ``cluster``."""
        tasks = [t for t in tasks if t is not None]
        previous: Node | None = cluster.task_node or cluster.root
        if relation == FINALLY:
            previous = cluster.finally_
            cluster.edges = [
                e for e in cluster.edges if not (e[0] is cluster.finally_ and e[1] is cluster.after)
            ]
        elif relation == AFTER_EXECUTION:
            previous = cluster.after
            cluster.edges = [e for e in cluster.edges if not (e[0] is cluster.after and e[1] is cluster.end)]
        nxt = (
            cluster.end
            if relation == AFTER_EXECUTION
            else cluster.after
            if relation == FINALLY
            else cluster.finally_
        )
        fan_out = relation in (PARALLEL, CHOICE)
        first = True
        for i, task in enumerate(tasks):
            last = i == len(tasks) - 1
            for run in self._runs(task, parent):
                kind = cluster.relation_type
                if relation == ERROR or (
                    not first and relation != PARALLEL and cluster.relation_type != DYNAMIC
                ):
                    kind = relation
                rel = _relation(kind, run.value if run is not None else value)
                current = self._node(cluster, task, run, relation)
                cluster.add(current)
                if relation in BRANCHES:
                    current.set_branch(relation)
                if relation == ERROR and first:
                    previous = cluster.root
                if previous is not None:
                    cluster.edge(
                        _exit(previous) if isinstance(previous, Cluster) else previous, _entry(current), rel
                    )
                if relation != PARALLEL:
                    previous = current
                if fan_out or last:
                    cluster.edge(_exit(current), nxt)
                first = False

    # -- one task ----------------------------------------------------------------------------------------
    def _runs(self, task: Task, parent: Any) -> list[Any]:
        if self.execution is None:
            return [None]
        runs = [tr for tr in self.execution.task_runs if tr.task_id == task.id]
        if not runs:
            return [None]
        return [tr for tr in runs if parent is None or tr.parent_id == parent.id]

    def _values(self, run: Any) -> list[str] | None:
        if run is None:
            return None
        chain = [*reversed(self.execution.parents(run)), run]
        return [str(tr.value) for tr in chain if tr.value is not None]

    def _node(self, cluster: Cluster, task: Task, run: Any, relation: str) -> Node:
        values = self._values(run)
        base = f"{cluster.base}.{task.id}"
        uid = base + ("_" + "_".join(values) if values else "")
        data: dict[str, Any] = {"task": task_json(task)}
        if run is not None:
            tr = run.to_dict()
            tr.pop("_engine", None)
            data["taskRun"] = {k: v for k, v in tr.items() if v is not None}
        if values is not None:
            data["values"] = values
        data["relationType"] = relation
        run_id = run.id if run is not None else None
        if isinstance(task, FlowableTask) and task.type != SUBFLOW_BATCHES:
            sub = Cluster(
                base,
                relation_type=None,
                task_node=Node(uid, "GraphTask", data, run_id),
                salt="_".join(values or ()),
            )
            self._flowable(sub, task, run)
            return sub
        if getattr(task, "executor_kind", None) == "subflow" or task.type == SUBFLOW_BATCHES:
            data["executableTask"] = data["task"]
            node = Node(uid, "SubflowGraphTask", data, run_id)
            if uid in self.expand and self.load_flow is not None:
                return self._subflow_cluster(node, task)
            return node
        return Node(uid, "GraphTask", data, run_id)

    def _subflow_cluster(self, node: Node, task: Any) -> Node:
        """A Subflow task the caller asked to expand: the subflow's own graph in its place."""
        namespace = str(getattr(task, "namespace", ""))
        flow_id = str(getattr(task, "flow_id", ""))
        if "{{" in namespace or "{{" in flow_id:
            return node  # the subflow is only known at run time
        revision = getattr(task, "revision", None)
        subflow = self.load_flow(namespace, flow_id, revision if isinstance(revision, int) else None)  # type: ignore[misc]
        if subflow is None:
            return node
        cluster = Cluster(node.uid, relation_type=SEQUENTIAL, task_node=node, kind="SubflowGraphCluster")
        saved = self.expand
        self.expand = [e for e in saved if e.startswith(node.uid + ".")]
        try:
            self._fill_flow(cluster, subflow, None)
        finally:
            self.expand = saved
        return cluster

    # -- flowables -----------------------------------------------------------------------------------------
    def _flowable(self, cluster: Cluster, task: Any, run: Any) -> None:
        type_id = task.type
        errors, finally_ = getattr(task, "errors", None), getattr(task, "finally_", None)
        short = type_id.rsplit(".", 1)[-1]
        if short == "Parallel":
            cluster.relation_type = PARALLEL
            self._iterate(cluster, task.tasks, errors, finally_, None, run, PARALLEL)
        elif short == "Switch":
            cluster.relation_type = CHOICE
            branches = {"defaults": task.defaults, **task.cases} if task.defaults else dict(task.cases)
            self._choice(cluster, branches, errors, finally_, run)
        elif short == "If":
            cluster.relation_type = CHOICE
            branches = {"then": task.then, **({"else": task.else_} if task.else_ else {})}
            self._choice(cluster, branches, errors, finally_, run)
        elif short == "ForEach":
            cluster.relation_type = DYNAMIC
            self._iterate(cluster, task.tasks, errors, finally_, None, run, PARALLEL)
        elif short == "Dag":
            cluster.relation_type = DYNAMIC
            self._dag(cluster, task.tasks, run)
            self._alternatives(cluster, errors, finally_, None, run)
        else:
            self._generic(cluster, task, run)

    def _choice(
        self, cluster: Cluster, branches: dict[str, list[Task]], errors: Any, finally_: Any, run: Any
    ) -> None:
        for key, tasks in branches.items():
            self._fill(cluster, tasks or [], SEQUENTIAL, run, key)
        self._alternatives(cluster, errors, finally_, None, run)

    def _generic(self, cluster: Cluster, task: Any, run: Any) -> None:
        """A flowable drawn from its fields: one task list is a sequence, several are branches."""
        lists: dict[str, list[Task]] = {}
        for name, kind in task_slots(type(task)).items():  # type: ignore[arg-type]
            if name in ("errors", "finally_", "after_execution"):
                continue
            value = getattr(task, name, None)
            alias = type(task).model_fields[name].alias or name
            if kind == "list" and value:
                lists[alias] = value
            elif kind == "dict" and value:
                lists.update({str(k): v for k, v in value.items() if v})
            elif kind == "single" and value is not None:
                lists[alias] = [value]
            elif kind == "models" and value:
                lists[alias] = [t for m in value for t in _tasks_of_model(m)]
        errors, finally_ = getattr(task, "errors", None), getattr(task, "finally_", None)
        if len(lists) <= 1:
            cluster.relation_type = SEQUENTIAL
            self._iterate(cluster, next(iter(lists.values()), []), errors, finally_, None, run, SEQUENTIAL)
        else:
            cluster.relation_type = CHOICE
            self._choice(cluster, lists, errors, finally_, run)

    def _dag(self, cluster: Cluster, nodes: list[Any], run: Any) -> None:
        """Kestra's ``fillGraphDag``: a node follows each task it depends on, roots follow the start."""
        created: list[str] = []
        task_nodes: dict[str, Node] = {}
        dependencies = {d for n in nodes for d in (n.depends_on or ())}
        previous = cluster.task_node or cluster.root
        while len(set(created)) < len(nodes):
            ready = [
                n for n in nodes if n.task.id not in created and all(d in created for d in n.depends_on or ())
            ]
            if not ready:
                break  # a cycle (refused at deploy time) or a dependency on a missing task
            for dag_node in ready:
                for tr in self._runs(dag_node.task, run):
                    rel = _relation(PARALLEL, tr.value if tr is not None else None)
                    current = self._node(cluster, dag_node.task, tr, SEQUENTIAL)
                    cluster.add(current)
                    if not dag_node.depends_on:
                        cluster.edge(previous, _entry(current), rel)
                    for dep in dag_node.depends_on or ():
                        before = task_nodes.get(dep)
                        if before is not None:
                            cluster.edge(before, _entry(current), rel)
                            continue
                        for other in cluster.nodes:
                            if isinstance(other, Cluster) and other.base.endswith(dep):
                                cluster.edge(other.end, _entry(current), rel)
                                break
                    if dag_node.task.id not in dependencies:
                        cluster.edge(_exit(current), cluster.finally_)
                    if not isinstance(current, Cluster):
                        task_nodes[dag_node.task.id] = current
                created.append(dag_node.task.id)


def _tasks_of_model(model: Any) -> list[Task]:
    out = []
    for name in task_slots(type(model)):  # type: ignore[arg-type]
        value = getattr(model, name, None)
        if isinstance(value, Task):
            out.append(value)
        elif isinstance(value, list):
            out += [v for v in value if isinstance(v, Task)]
    return out


# -- Kestra's FlowGraph JSON ---------------------------------------------------------------------------------
def _all_nodes(cluster: Cluster, out: list[Node], seen: set[int]) -> None:
    for node in cluster.nodes:
        if isinstance(node, Cluster):
            _all_nodes(node, out, seen)
        elif id(node) not in seen:
            seen.add(id(node))
            out.append(node)


def _all_edges(cluster: Cluster) -> list[tuple[Node, Node, dict[str, Any]]]:
    edges = list(cluster.edges)
    for node in cluster.nodes:
        if isinstance(node, Cluster):
            edges += _all_edges(node)
    return edges


def _all_clusters(cluster: Cluster, parents: list[str]) -> list[tuple[Cluster, list[str]]]:
    out: list[tuple[Cluster, list[str]]] = []
    for node in cluster.nodes:
        if isinstance(node, Cluster):
            out.append((node, parents))
            out += _all_clusters(node, [*parents, "cluster_" + node.uid])
    return out


def _uid(node: Node) -> str:
    return "cluster_" + node.uid if isinstance(node, Cluster) else node.uid


def flow_graph(graph: Cluster, flow: Any = None) -> dict[str, Any]:
    """The ``FlowGraph`` JSON: nodes, edges, clusters (with their start and end) and flowable ids."""
    nodes: list[Node] = []
    _all_nodes(graph, nodes, set())
    edges = [{"source": _uid(s), "target": _uid(t), "relation": rel} for s, t, rel in _all_edges(graph)]
    clusters = []
    for cluster, parents in _all_clusters(graph, []):
        clusters.append({"cluster": cluster.json(), "nodes": [_uid(n) for n in cluster.nodes], "parents": parents,
                         "start": cluster.root.uid, "end": cluster.end.uid})  # fmt: skip
        task = cluster.task_node.data.get("task", {}) if cluster.task_node is not None else {}
        if str(task.get("type", "")).endswith(
            LOOPS
        ):  # a loop: draw the way back (Kestra does, for the UI only)
            edges.append({"source": cluster.end.uid, "target": cluster.root.uid, "relation": {}})
    out: dict[str, Any] = {"nodes": [n.json() for n in nodes], "edges": edges, "clusters": clusters}
    if flow is not None:
        out["flowables"] = [t.id for t in flow.all_tasks() if isinstance(t, FlowableTask)]
    return out


def successors(graph: Cluster, taskrun_ids: set[str]) -> set[str]:
    """Task run ids of the nodes reachable from the given task runs (Kestra's ``GraphUtils.successors``).

    A selected run linked straight from its cluster's start also starts from that start: the
    cluster's ``errors`` branch (and its parallel siblings) leave from there.
    """
    nodes: list[Node] = []
    _all_nodes(graph, nodes, set())
    edges = [(_uid(s), _uid(t)) for s, t, _r in _all_edges(graph)]
    roots = {n.uid for n in nodes if n.kind == "GraphClusterRoot"}
    selected = {n.uid for n in nodes if n.run_id in taskrun_ids}
    start = set(selected) | {s for s, t in edges if t in selected and s in roots}
    by_source: dict[str, list[str]] = {}
    for s, t in edges:
        by_source.setdefault(s, []).append(t)
    reached: set[str] = set()
    frontier = list(start)
    while frontier:
        uid = frontier.pop()
        if uid in reached:
            continue
        reached.add(uid)
        frontier += by_source.get(uid, [])
    sources = {s for s, _t in edges if s in reached}
    # a cluster's own task node is the source of the edges into its children; clusters are reached by their start
    return {n.run_id for n in nodes if n.run_id is not None and n.uid in sources}


__all__ = ["GraphBuilder", "flow_graph", "successors", "task_json"]
