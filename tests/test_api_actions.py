"""Execution actions through the API: replay, force-run, unqueue, kill without cascade, every bulk action."""

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
E = "/api/v1/main/executions"
ENDED = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")

STEPS = """id: steps
namespace: company.team
inputs:
  - id: n
    type: INT
    defaults: 1
tasks:
  - id: one
    type: io.kestra.plugin.core.debug.Return
    format: "one {{ inputs.n }}"
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: a
        type: io.kestra.plugin.core.debug.Return
        format: "a {{ inputs.n }}"
      - id: b
        type: io.kestra.plugin.core.execution.Fail
        errorMessage: n is one
        runIf: "{{ inputs.n == 1 }}"
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "last {{ inputs.n }}"
"""
NAP = """id: nap
namespace: company.team
concurrency:
  limit: 1
  behavior: QUEUE
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"""


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=4)
    eng.start()
    yield eng
    eng.stop()


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)


def deploy(client: TestClient, source: str) -> None:
    assert client.post("/api/v1/main/flows", content=source, headers=Y).status_code == 200


def run(client: TestClient, flow: str, **inputs: Any) -> dict[str, Any]:
    return client.post(
        f"{E}/company.team/{flow}",
        params={"wait": "true"},
        files={k: (None, str(v)) for k, v in inputs.items()} or None,
    ).json()


def start(client: TestClient, flow: str) -> dict[str, Any]:
    return client.post(f"{E}/company.team/{flow}").json()


def until(client: TestClient, execution_id: str, *states: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        ex = client.get(f"{E}/{execution_id}").json()
        if ex["state"]["current"] in states:
            return ex
        assert time.monotonic() < deadline, ex["state"]
        time.sleep(0.02)


def runs(ex: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    return {
        t["taskId"]: (t["state"]["current"], (t.get("outputs") or {}).get("value"))
        for t in ex.get("taskRunList") or []
    }


# -- replay ---------------------------------------------------------------------------------------------------------------
def test_replay_from_the_start(client: TestClient) -> None:
    deploy(client, STEPS)
    original = run(client, "steps")
    assert original["state"]["current"] == "FAILED"
    replayed = client.post(f"{E}/{original['id']}/replay")
    assert replayed.status_code == 200
    new = replayed.json()
    assert new["id"] != original["id"] and new["state"]["current"] == "CREATED" and new["inputs"] == {"n": 1}
    assert new["parentId"] == original["id"] and new["originalId"] == original["id"]
    assert {"key": "system.replay", "value": "true"} in new["labels"] and new["metadata"][
        "attemptNumber"
    ] == 2
    assert until(client, new["id"], *ENDED)["state"]["current"] == "FAILED"  # same inputs, same outcome
    assert {"key": "system.replayed", "value": "true"} in client.get(f"{E}/{original['id']}").json()["labels"]
    again = client.post(f"{E}/{new['id']}/replay").json()
    assert again["originalId"] == original["id"] and again["parentId"] == new["id"]
    assert again["metadata"]["attemptNumber"] == 3


def test_replay_from_a_task_run_with_new_inputs(client: TestClient) -> None:
    deploy(client, STEPS)
    original = run(client, "steps")
    failed = next(t for t in original["taskRunList"] if t["taskId"] == "b")
    r = client.post(
        f"{E}/{original['id']}/replay-with-inputs",
        params={"taskRunId": failed["id"]},
        files={"n": (None, "2")},
    )
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["state"]["current"] == "RESTARTED" and new["inputs"] == {"n": 2}
    assert [h["state"] for h in new["state"]["histories"]][-2:] == ["FAILED", "RESTARTED"]
    # what ended before the failed branch is kept, with new ids; the branch runs again
    assert runs(new) == {"one": ("SUCCESS", "one 1"), "par": ("RUNNING", None), "a": ("SUCCESS", "a 1")}
    assert not {t["id"] for t in new["taskRunList"]} & {t["id"] for t in original["taskRunList"]}
    assert all(t["executionId"] == new["id"] for t in new["taskRunList"])
    done = until(client, new["id"], *ENDED)
    assert done["state"]["current"] == "SUCCESS"
    assert runs(done) == {"one": ("SUCCESS", "one 1"), "par": ("SUCCESS", None), "a": ("SUCCESS", "a 1"),
                          "b": ("SKIPPED", None), "last": ("SUCCESS", "last 2")}  # fmt: skip


def test_replay_errors(client: TestClient) -> None:
    deploy(client, STEPS)
    original = run(client, "steps")
    assert client.post(f"{E}/nope/replay").status_code == 404
    unknown = client.post(f"{E}/{original['id']}/replay", params={"taskRunId": "nope"})
    assert unknown.status_code == 404 and "task run nope" in unknown.json()["message"]
    assert client.post(f"{E}/{original['id']}/replay", params={"revision": 9}).status_code == 404
    bad = client.post(f"{E}/{original['id']}/replay-with-inputs", files={"n": (None, "not a number")})
    assert bad.status_code == 422 and "n" in bad.json()["inputs"]


def test_replay_on_another_revision(client: TestClient) -> None:
    deploy(
        client,
        "id: rev\nnamespace: company.team\ntasks:\n  - id: v\n    type: io.kestra.plugin.core.debug.Return\n    format: one\n",
    )
    original = run(client, "rev")
    client.put("/api/v1/main/flows/company.team/rev", headers=Y,
               content="id: rev\nnamespace: company.team\ntasks:\n  - id: v\n    type: io.kestra.plugin.core.debug.Return\n    format: two\n")  # fmt: skip
    same = client.post(f"{E}/{original['id']}/replay").json()
    assert same["flowRevision"] == 1 and runs(until(client, same["id"], *ENDED))["v"] == ("SUCCESS", "one")
    newer = client.post(f"{E}/{original['id']}/replay", params={"revision": 2}).json()
    assert newer["flowRevision"] == 2 and runs(until(client, newer["id"], *ENDED))["v"] == ("SUCCESS", "two")
    count = client.post(f"{E}/replay/by-ids", params={"latestRevision": "true"}, json=[original["id"]]).json()
    assert count == {"count": 1}


# -- force-run, unqueue, kill ----------------------------------------------------------------------------------------------
def test_force_run_and_unqueue_a_queued_execution(client: TestClient) -> None:
    deploy(client, NAP)
    first = start(client, "nap")
    until(client, first["id"], "RUNNING")
    queued = [start(client, "nap") for _ in range(3)]
    assert {q["state"]["current"] for q in queued} == {"QUEUED"}
    forced = client.post(f"{E}/{queued[0]['id']}/force-run")
    assert (
        forced.status_code == 200 and forced.json()["state"]["current"] == "RUNNING"
    )  # over the limit, as asked
    cancelled = client.post(f"{E}/{queued[1]['id']}/unqueue", params={"state": "CANCELLED"})
    assert cancelled.status_code == 200 and cancelled.json()["state"]["current"] == "CANCELLED"
    assert client.get(f"{E}/{queued[2]['id']}").json()["state"]["current"] == "QUEUED"  # its slot never freed
    started = client.post(f"{E}/{queued[2]['id']}/unqueue", params={"state": "RUNNING"}).json()
    assert started["state"]["current"] == "RUNNING"
    assert client.post(f"{E}/{queued[2]['id']}/unqueue").status_code == 409  # not queued any more
    assert client.post(f"{E}/{queued[2]['id']}/unqueue", params={"state": "SUCCESS"}).status_code == 400
    assert client.request(
        "DELETE", f"{E}/kill/by-ids", json=[first["id"], queued[0]["id"], queued[2]["id"]]
    ).json() == {"count": 3}
    for ex in (first, queued[0], queued[2]):
        assert until(client, ex["id"], *ENDED)["state"]["current"] == "KILLED"
    assert client.post(f"{E}/{first['id']}/force-run").status_code == 409


SUBFLOW_PARENT = """id: parent
namespace: company.team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: nap-free
"""


@pytest.mark.parametrize("cascade", [True, False])
def test_kill_with_or_without_cascade(client: TestClient, cascade: bool) -> None:
    deploy(
        client,
        NAP.replace("id: nap\n", "id: nap-free\n").replace(
            "concurrency:\n  limit: 1\n  behavior: QUEUE\n", ""
        ),
    )
    deploy(client, SUBFLOW_PARENT)
    parent = start(client, "parent")
    deadline = time.monotonic() + 20
    while not (
        child := client.get(f"{E}/search", params={"filters[flowId][EQUALS]": "nap-free"}).json()["results"]
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    until(client, child[0]["id"], "RUNNING")
    assert (
        client.delete(
            f"{E}/{parent['id']}/kill", params={"isOnKillCascade": str(cascade).lower()}
        ).status_code
        == 202
    )
    assert until(client, parent["id"], *ENDED)["state"]["current"] == "KILLED"
    if cascade:
        assert until(client, child[0]["id"], *ENDED)["state"]["current"] == "KILLED"
    else:
        time.sleep(0.5)
        assert client.get(f"{E}/{child[0]['id']}").json()["state"]["current"] == "RUNNING"
        client.delete(f"{E}/{child[0]['id']}/kill")
        until(client, child[0]["id"], *ENDED)


# -- bulk ------------------------------------------------------------------------------------------------------------------
def test_bulk_refuses_all_when_one_is_wrong(client: TestClient) -> None:
    deploy(client, STEPS)
    ex = run(client, "steps")
    r = client.post(f"{E}/pause/by-ids", json=[ex["id"], "nope"])
    assert r.status_code == 422
    assert r.json() == {"message": "invalid bulk pause", "invalids": {ex["id"]: "execution not in state RUNNING",
                                                                       "nope": "execution not found"}}  # fmt: skip
    assert (
        client.request("DELETE", f"{E}/kill/by-ids", json=[ex["id"]]).status_code == 422
    )  # it already ended


def test_bulk_by_ids(client: TestClient) -> None:
    deploy(client, STEPS)
    failed = [run(client, "steps") for _ in range(2)]
    ids = [ex["id"] for ex in failed]
    labels = client.post(
        f"{E}/labels/by-ids", json={"executionsId": ids, "executionLabels": [{"key": "team", "value": "ops"}]}
    )
    assert labels.json() == {"count": 2}
    assert all({"key": "team", "value": "ops"} in client.get(f"{E}/{i}").json()["labels"] for i in ids)
    assert client.post(f"{E}/change-status/by-ids", params={"newStatus": "WARNING"}, json=ids).json() == {
        "count": 2
    }
    assert {client.get(f"{E}/{i}").json()["state"]["current"] for i in ids} == {"WARNING"}
    assert (
        client.post(f"{E}/change-status/by-ids", params={"newStatus": "RUNNING"}, json=ids).status_code == 400
    )
    assert client.post(f"{E}/restart/by-ids", json=ids).json() == {"count": 2}
    for i in ids:
        until(client, i, *ENDED)
    replayed = client.post(f"{E}/replay/by-ids", json=ids).json()
    assert replayed == {"count": 2}
    children = client.get(f"{E}/search", params={"filters[childFilter][EQUALS]": "CHILD"}).json()["results"]
    assert {c["parentId"] for c in children} == set(ids)
    for c in children:
        until(client, c["id"], *ENDED)
    assert client.request("DELETE", f"{E}/by-ids", json=ids).json() == {"count": 2}
    assert all(client.get(f"{E}/{i}").status_code == 404 for i in ids)


def test_bulk_by_query(client: TestClient) -> None:
    deploy(client, STEPS)
    deploy(client, NAP)
    for n in (1, 2):
        run(client, "steps", n=n)
    running = start(client, "nap")
    until(client, running["id"], "RUNNING")
    queued = start(client, "nap")
    failed_only = {"filters[flowId][EQUALS]": "steps", "filters[state][IN]": "FAILED"}
    assert client.post(
        f"{E}/labels/by-query", params=failed_only, json=[{"key": "k", "value": "v"}]
    ).json() == {"count": 1}
    assert client.post(
        f"{E}/change-status/by-query", params={**failed_only, "newStatus": "KILLED"}
    ).json() == {"count": 1}
    assert client.post(f"{E}/replay/by-query", params={"flowId": "steps", "state": "SUCCESS"}).json() == {
        "count": 1
    }
    assert client.post(
        f"{E}/unqueue/by-query", params={"filters[state][EQUALS]": "QUEUED", "newState": "FAILED"}
    ).json() == {"count": 1}
    assert until(client, queued["id"], *ENDED)["state"]["current"] == "FAILED"
    nap = {"filters[flowId][EQUALS]": "nap", "filters[state][EQUALS]": "RUNNING"}
    assert client.post(f"{E}/pause/by-query", params=nap).json() == {"count": 1}
    until(client, running["id"], "PAUSED")
    assert client.post(f"{E}/resume/by-query", params={"filters[state][EQUALS]": "PAUSED"}).json() == {
        "count": 1
    }
    until(client, running["id"], "RUNNING")
    assert client.post(f"{E}/force-run/by-query", params=nap).json() == {"count": 1}
    assert client.request("DELETE", f"{E}/kill/by-query", params=nap).json() == {"count": 1}
    until(client, running["id"], *ENDED)
    assert client.post(f"{E}/restart/by-query", params={"filters[namespace][EQUALS]": "nope"}).json() == {
        "count": 0
    }
    for ex in client.get(f"{E}/search", params={"size": 50}).json()["results"]:
        until(client, ex["id"], *ENDED)
    before = client.get(f"{E}/search").json()["total"]
    assert client.request("DELETE", f"{E}/by-query", params={"filters[flowId][EQUALS]": "nap"}).json() == {
        "count": 2
    }
    assert client.get(f"{E}/search").json()["total"] == before - 2
    assert (
        client.post(f"{E}/labels/by-query", params={"filters[bogus][EQUALS]": "x"}, json=[]).status_code
        == 400
    )
