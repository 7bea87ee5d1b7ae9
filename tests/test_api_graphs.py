"""Topologies through the API: flow graphs (stored, from source, of an execution) and flow dependencies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.server import ServerState, create_app
from roost.store.db import Store

Y = {"content-type": "application/x-yaml"}
H = "io.kestra.core.models.hierarchies."


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=2)
    eng.start()
    yield eng
    eng.stop()


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)


def deploy(client: TestClient, source: str) -> None:
    r = client.post("/api/v1/main/flows", content=source, headers=Y)
    if r.status_code == 422 and "already exists" in r.text:
        flow_id = source.split("\n", 1)[0].removeprefix("id: ")
        r = client.put(f"/api/v1/main/flows/company.team/{flow_id}", content=source, headers=Y)
    assert r.status_code == 200, r.text


def edges(graph: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    """Edges with junction uids shortened to their kind (``root.root``, ``root.par.end``)."""

    def short(uid: str) -> str:
        head, _, last = uid.rpartition(".")
        kind = last.split("-", 1)[0]
        return f"{head}.{kind}" if kind in ("root", "end", "finally", "after") and "-" in last else uid

    return {
        (short(e["source"]), short(e["target"]), e["relation"].get("relationType")) for e in graph["edges"]
    }


def node(graph: dict[str, Any], uid: str) -> dict[str, Any]:
    return next(n for n in graph["nodes"] if n["uid"] == uid)


FULL = """id: full
namespace: company.team
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: a
      - id: b
        type: io.kestra.plugin.core.log.Log
        message: b
  - id: pick
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ 'x' }}"
    cases:
      x:
        - id: x1
          type: io.kestra.plugin.core.log.Log
          message: x
    defaults:
      - id: d1
        type: io.kestra.plugin.core.log.Log
        message: d
errors:
  - id: oops
    type: io.kestra.plugin.core.log.Log
    message: failed
finally:
  - id: always
    type: io.kestra.plugin.core.log.Log
    message: bye
afterExecution:
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
"""


def test_flow_graph_has_kestras_shape(client: TestClient) -> None:
    deploy(client, FULL)
    graph = client.get("/api/v1/main/flows/company.team/full/graph").json()
    assert set(graph) == {"nodes", "edges", "clusters", "flowables"}
    assert graph["flowables"] == ["par", "pick"]
    assert node(graph, "root.first") == {"uid": "root.first", "type": H + "GraphTask", "relationType": "SEQUENTIAL",
                                         "task": {"id": "first", "type": "io.kestra.plugin.core.log.Log", "message": "one"}}  # fmt: skip
    assert node(graph, "root.Triggers.hourly")["triggerDeclaration"]["cron"] == "0 * * * *"
    assert (
        node(graph, "root.oops")["branchType"] == "ERROR"
        and node(graph, "root.always")["branchType"] == "FINALLY"
    )
    assert node(graph, "root.after")["branchType"] == "AFTER_EXECUTION"
    got = edges(graph)
    expected = {
        ("root.Triggers.end", "root.root", None),
        ("root.root", "root.first", None),
        ("root.first", "root.par.root", "SEQUENTIAL"),
        ("root.par.root", "root.par", None),
        ("root.par", "root.par.a", "PARALLEL"),
        ("root.par", "root.par.b", "PARALLEL"),
        ("root.par.a", "root.par.end", None),
        ("root.par.end", "root.pick.root", "SEQUENTIAL"),
        ("root.pick", "root.pick.d1", "CHOICE"),
        ("root.pick", "root.pick.x1", "CHOICE"),
        ("root.pick.end", "root.finally", None),
        ("root.root", "root.oops", "ERROR"),  # errors leave from the flow's start
        ("root.oops", "root.finally", None),
        ("root.finally", "root.always", None),
        ("root.always", "root.after", None),
        ("root.after", "root.end", None),
    }
    assert expected <= got, expected - got
    clusters = {c["cluster"]["uid"]: c for c in graph["clusters"]}
    assert set(clusters) == {"cluster_root.Triggers", "cluster_root.par", "cluster_root.pick"}
    par = clusters["cluster_root.par"]
    assert par["cluster"]["relationType"] == "PARALLEL" and par["cluster"]["taskNode"]["uid"] == "root.par"
    assert (
        par["start"].startswith("root.par.root-")
        and par["end"].startswith("root.par.end-")
        and par["parents"] == []
    )
    assert clusters["cluster_root.pick"]["cluster"]["relationType"] == "CHOICE"
    choices = {
        (e["target"], e["relation"].get("value")) for e in graph["edges"] if e["source"] == "root.pick"
    }
    assert choices == {("root.pick.x1", "x"), ("root.pick.d1", "defaults")}
    # the same flow, the same graph: junction ids do not change between calls
    assert client.get("/api/v1/main/flows/company.team/full/graph").json() == graph


def test_graph_of_a_source_is_not_deployed(client: TestClient, engine: Engine) -> None:
    r = client.post("/api/v1/main/flows/graph", content=FULL, headers=Y)
    assert r.status_code == 200 and node(r.json(), "root.par.a")["relationType"] == "PARALLEL"
    assert engine.store.list_flows("main") == []
    bad = client.post("/api/v1/main/flows/graph", content="id: x\nnamespace: a\ntasks: 3\n", headers=Y)
    assert bad.status_code == 422 and bad.json()["violations"][0]["path"] == "tasks"
    assert client.get("/api/v1/main/flows/company.team/nope/graph").status_code == 404


def test_graph_of_a_revision_and_nested_flowables(client: TestClient) -> None:
    deploy(
        client,
        "id: rev\nnamespace: company.team\ntasks:\n  - id: one\n    type: io.kestra.plugin.core.log.Log\n    message: x\n",
    )
    deploy(
        client,
        """id: rev
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2]
    tasks:
      - id: inner
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: leaf
            type: io.kestra.plugin.core.log.Log
            message: x
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task:
          id: t1
          type: io.kestra.plugin.core.log.Log
          message: "1"
      - task:
          id: t2
          type: io.kestra.plugin.core.log.Log
          message: "2"
        dependsOn: [t1]
  - id: cond
    type: io.kestra.plugin.core.flow.If
    condition: "{{ true }}"
    then:
      - id: ok
        type: io.kestra.plugin.core.log.Log
        message: y
    else:
      - id: ko
        type: io.kestra.plugin.core.log.Log
        message: n
""",
    )
    first = client.get("/api/v1/main/flows/company.team/rev/graph", params={"revision": 1}).json()
    assert [n["uid"] for n in first["nodes"] if n["type"] == H + "GraphTask"] == ["root.one"]
    graph = client.get("/api/v1/main/flows/company.team/rev/graph").json()
    clusters = {c["cluster"]["uid"]: c for c in graph["clusters"]}
    assert clusters["cluster_root.each"]["cluster"]["relationType"] == "DYNAMIC"
    assert clusters["cluster_root.each.inner"]["parents"] == ["cluster_root.each"]
    assert clusters["cluster_root.dag"]["cluster"]["relationType"] == "DYNAMIC"
    got = edges(graph)
    assert ("root.dag.t1", "root.dag.t2", "PARALLEL") in got and (
        "root.dag",
        "root.dag.t1",
        "PARALLEL",
    ) in got
    assert ("root.cond", "root.cond.ok", "CHOICE") in got and ("root.cond", "root.cond.ko", "CHOICE") in got
    assert ("root.each.inner", "root.each.inner.leaf", "SEQUENTIAL") in got


def test_subflows_expand_on_demand(client: TestClient) -> None:
    deploy(
        client,
        "id: child\nnamespace: company.team\ntasks:\n  - id: work\n    type: io.kestra.plugin.core.log.Log\n    message: x\n",
    )
    deploy(
        client,
        """id: parent
namespace: company.team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
""",
    )
    plain = client.get("/api/v1/main/flows/company.team/parent/graph").json()
    call = node(plain, "root.call")
    assert call["type"] == H + "SubflowGraphTask" and call["executableTask"]["flowId"] == "child"
    expanded = client.get(
        "/api/v1/main/flows/company.team/parent/graph", params={"subflows": "root.call"}
    ).json()
    cluster = next(c for c in expanded["clusters"] if c["cluster"]["uid"] == "cluster_root.call")
    assert cluster["cluster"]["type"] == H + "SubflowGraphCluster"
    assert node(expanded, "root.call.work")["task"]["id"] == "work"
    assert ("root.call", "root.call.work", "SEQUENTIAL") in edges(expanded)


def wait_end(client: TestClient, execution_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        ex = client.get(f"/api/v1/main/executions/{execution_id}").json()
        if ex["state"]["current"] in ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"):
            return ex
        assert time.monotonic() < deadline, ex
        time.sleep(0.02)


def test_execution_graph_carries_the_task_runs(client: TestClient) -> None:
    deploy(
        client,
        """id: runs
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: hello
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
""",
    )
    ex = client.post("/api/v1/main/executions/company.team/runs", params={"wait": "true"}).json()
    graph = client.get(f"/api/v1/main/executions/{ex['id']}/graph").json()
    runs = {n["uid"]: n for n in graph["nodes"] if "taskRun" in n}
    assert set(runs) == {"root.each", "root.each.hello_a", "root.each.hello_b"}
    assert runs["root.each.hello_b"]["values"] == ["b"] and runs["root.each.hello_b"]["taskRun"][
        "outputs"
    ] == {"value": "b"}
    assert all(n["taskRun"]["state"]["current"] == "SUCCESS" for n in runs.values())
    assert client.get("/api/v1/main/executions/nope/graph").status_code == 404


# -- dependencies --------------------------------------------------------------------------------------------------
def test_flow_dependencies(client: TestClient) -> None:
    deploy(
        client,
        "id: leaf\nnamespace: company.b\ntasks:\n  - id: x\n    type: io.kestra.plugin.core.log.Log\n    message: x\n",
    )
    deploy(
        client,
        """id: caller
namespace: company.a
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.b
    flowId: leaf
""",
    )
    deploy(
        client,
        """id: listener
namespace: company.c
tasks:
  - id: x
    type: io.kestra.plugin.core.log.Log
    message: x
triggers:
  - id: on-leaf
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: leaf-done
      flows:
        - namespace: company.b
          flowId: leaf
          states: [SUCCESS]
""",
    )
    deploy(
        client,
        """id: by-condition
namespace: company.c
tasks:
  - id: x
    type: io.kestra.plugin.core.log.Log
    message: x
triggers:
  - id: on-caller
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: company.a
        flowId: caller
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [FAILED]
""",
    )
    uid = "main_{}_{}".format
    around = client.get("/api/v1/main/flows/company.b/leaf/dependencies").json()
    assert {(e["source"], e["target"], e["relation"]) for e in around["edges"]} == {
        (uid("company.a", "caller"), uid("company.b", "leaf"), "FLOW_TASK"),
        (uid("company.b", "leaf"), uid("company.c", "listener"), "FLOW_TRIGGER"),
    }
    assert {"uid": uid("company.b", "leaf"), "namespace": "company.b", "id": "leaf"} in around["nodes"]
    downstream = client.get(
        "/api/v1/main/flows/company.b/leaf/dependencies", params={"destinationOnly": "true"}
    ).json()
    assert [(e["source"], e["target"]) for e in downstream["edges"]] == [
        (uid("company.b", "leaf"), uid("company.c", "listener"))
    ]
    direct = client.get("/api/v1/main/flows/company.a/caller/dependencies").json()
    assert len(direct["edges"]) == 2  # leaf (task) and by-condition (trigger)
    everything = client.get(
        "/api/v1/main/flows/company.a/caller/dependencies", params={"expandAll": "true"}
    ).json()
    assert len(everything["edges"]) == 3 and len(everything["nodes"]) == 4
    namespace = client.get("/api/v1/main/namespaces/company.c/dependencies").json()
    assert {n["id"] for n in namespace["nodes"]} >= {"listener", "by-condition"} and len(
        namespace["edges"]
    ) == 2
    tenant = client.get("/api/v1/main/dependencies").json()
    assert len(tenant["nodes"]) == 4 and len(tenant["edges"]) == 3
    assert client.get("/api/v1/main/flows/company.a/nope/dependencies").status_code == 404
