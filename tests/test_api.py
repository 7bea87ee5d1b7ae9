"""The server in process (Starlette's TestClient): filters, config and auth, error shapes, the store queue."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.engine.queue import Message, StoreQueue
from roost.server import ServerConfig, ServerState, create_app
from roost.server.config import ConfigError, hash_password, hash_token, load_config, verify_password
from roost.server.errors import ApiError
from roost.server.filters import match_labels, match_text, parse_filters
from roost.store.db import Store
from roost.store.search import FilterError

HELLO = """id: hello
namespace: company.team
inputs:
  - id: who
    type: STRING
    defaults: world
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{ inputs.who }}"
"""


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=2)
    eng.start()
    yield eng
    eng.stop()


def client_for(engine: Engine, config: ServerConfig | None = None) -> TestClient:
    return TestClient(create_app(ServerState(engine, config)), raise_server_exceptions=False)


# -- filters -----------------------------------------------------------------------------------------------
def test_filters_parse_kestra_query_strings() -> None:
    params = [("filters[namespace][PREFIX]", "company"), ("filters[state][IN]", "SUCCESS,FAILED"),
              ("filters[labels][EQUALS][team]", "data"), ("filters[labels][EQUALS][env]", "prod"), ("page", "1")]  # fmt: skip
    got = {(f.field, f.op): f.value for f in parse_filters(params, ("namespace", "state", "labels"))}
    assert got == {("namespace", "PREFIX"): "company", ("state", "IN"): ["SUCCESS", "FAILED"],
                   ("labels", "EQUALS"): {"team": "data", "env": "prod"}}  # fmt: skip


@pytest.mark.parametrize(
    "key", ["filters[bogus][EQUALS]", "filters[namespace][SOUNDS_LIKE]", "filters[namespace]"]
)
def test_bad_filters_are_400_naming_the_problem(key: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_filters([(key, "x")], ("namespace",))
    assert err.value.status == 400 and ("bogus" in err.value.message or "SOUNDS_LIKE" in err.value.message
                                         or "malformed" in err.value.message)  # fmt: skip


def test_text_and_label_matching() -> None:
    assert match_text("company.team", "PREFIX", "company") and not match_text("companyx", "PREFIX", "company")
    assert match_text("abc", "REGEX", "^a.c$") and match_text("ABC", "CONTAINS", "b")
    with pytest.raises(FilterError, match="invalid regular expression"):  # the API answers it 400
        match_text("abc", "REGEX", "(")
    assert match_labels([{"key": "a", "value": "1"}], "EQUALS", {"a": "1"})
    assert match_labels({"a": "1"}, "NOT_EQUALS", {"a": "2"})


# -- configuration and auth --------------------------------------------------------------------------------
def test_passwords_are_stored_hashed(tmp_path: Path) -> None:
    secret = "correct horse battery staple"  # long enough never to occur by chance in a base64 hash
    hashed = hash_password(secret)
    assert hashed.startswith("scrypt$") and secret not in hashed
    assert (
        verify_password(secret, hashed)
        and not verify_password("nope", hashed)
        and not verify_password("pw", "garbage")
    )
    clear = tmp_path / "clear.yaml"
    clear.write_text("server:\n  basicAuth:\n    users:\n      - username: a\n        password: pw\n")
    with pytest.raises(ConfigError, match="clear-text"):
        load_config(clear, env={})
    cfg = load_config(None, env={"ROOST_SERVER_BASIC_AUTH_USERNAME": "admin", "ROOST_SERVER_BASIC_AUTH_PASSWORD": "pw",
                                 "ROOST_SERVER_API_TOKENS": "t1, t2"})  # fmt: skip
    assert verify_password("pw", cfg.auth.users["admin"]) and cfg.auth.users["admin"].startswith("scrypt$")
    assert set(cfg.auth.tokens) == {hash_token("t1"), hash_token("t2")}


def test_auth_middleware(engine: Engine) -> None:
    config = ServerConfig()
    config.auth.users["ada"] = hash_password("lovelace")
    config.auth.tokens[hash_token("tok")] = "ci"
    c = client_for(engine, config)
    assert c.get("/health").status_code == 200
    assert c.get("/api/v1/main/flows/search").status_code == 401
    assert c.get("/api/v1/main/flows/search", auth=("ada", "lovelace")).status_code == 200
    assert c.get("/api/v1/main/flows/search", auth=("ada", "babbage")).status_code == 401
    assert c.get("/api/v1/main/flows/search", headers={"Authorization": "Bearer tok"}).status_code == 200
    bad = base64.b64encode(b"no-colon").decode()
    assert c.get("/api/v1/main/flows/search", headers={"Authorization": f"Basic {bad}"}).status_code == 401


# -- routes in process --------------------------------------------------------------------------------------
def test_errors_are_json_and_never_500(engine: Engine) -> None:
    c = client_for(engine)
    r = c.get("/api/v1/main/flows/search", params={"page": "zero"})
    assert r.status_code == 400 and "page" in r.json()["message"]
    assert c.get("/api/v1/main/executions/nope").json() == {"message": "execution nope not found"}
    assert c.post("/api/v1/main/flows", content=b"\xff\xfe").status_code == 400
    r = c.post("/api/v1/main/flows", content="id: x\nnamespace: a\ntasks: 3\n")
    assert r.status_code == 422 and r.json()["violations"][0]["path"] == "tasks"
    assert c.get("/api/v1/main/executions/search", params={"sort": "nope:asc"}).status_code == 400
    assert (
        c.get(
            "/api/v1/main/executions/search", params={"filters[startDate][GREATER_THAN]": "yesterday"}
        ).status_code
        == 400
    )
    assert c.delete("/api/v1/main/namespaces/company.team/files", params={"path": "/"}).status_code == 400
    # filters the store's search cannot apply: 400 with the reason, as every bad request
    engine.deploy(
        "id: x\nnamespace: company.team\ntasks:\n  - id: l\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )
    r = c.get("/api/v1/main/flows/search", params={"filters[namespace][REGEX]": "("})
    assert r.status_code == 400 and "invalid regular expression" in r.json()["message"]
    r = c.get("/api/v1/main/logs/search", params={"filters[level][EQUALS]": "LOUD"})
    assert r.status_code == 400 and r.json() == {
        "message": "filters[level]: 'LOUD' is not one of TRACE, DEBUG, INFO, WARN, ERROR"
    }


def test_create_get_and_search(engine: Engine) -> None:
    c = client_for(engine)
    assert (
        c.post(
            "/api/v1/main/flows", content=HELLO, headers={"content-type": "application/x-yaml"}
        ).status_code
        == 200
    )
    ex = c.post(
        "/api/v1/main/executions/company.team/hello", params={"wait": "true"}, files={"who": (None, "ada")}
    ).json()
    assert ex["state"]["current"] == "SUCCESS" and ex["taskRunList"][0]["outputs"] == {"value": "hello ada"}
    for _ in range(3):
        c.post("/api/v1/main/executions/company.team/hello")
    deadline = time.monotonic() + 10
    while c.get("/api/v1/main/executions/search", params={"filters[state][IN]": "CREATED,RUNNING"}).json()[
        "total"
    ]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    page = c.get(
        "/api/v1/main/executions/search", params={"size": 2, "page": 2, "sort": "state.startDate:asc"}
    ).json()
    assert page["total"] == 4 and len(page["results"]) == 2
    legacy = c.get(
        "/api/v1/main/executions/search",
        params={"namespace": "company", "flowId": "hello", "state": "SUCCESS"},
    )
    assert legacy.json()["total"] == 4
    assert (
        c.get("/api/v1/main/executions", params={"namespace": "company.team", "flowId": "hello"}).json()[
            "total"
        ]
        == 4
    )
    spec: dict[str, Any] = c.get("/api/v1/openapi.json").json()
    assert "basicAuth" in spec["components"]["securitySchemes"]


def test_store_queue_between_processes(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path)
    producer = StoreQueue(store, consume=False)
    consumer = StoreQueue(store, consume=True, poll_interval=0.01)
    producer.put(Message("kill", "ex1", {"why": "test"}))
    consumer.put(Message("result", "ex2"))
    assert (
        producer.depth() == 1 and consumer.depth() == 2
    )  # the table's row, plus the consumer's own in memory
    got = consumer.take(0.5)
    assert sorted((m.kind, m.execution_id) for m in got) == [("kill", "ex1"), ("result", "ex2")]
    assert got[[m.kind for m in got].index("kill")].payload == {"why": "test"}
    assert consumer.owed() and consumer.depth() == 1  # stored until acknowledged
    consumer.acknowledge()
    assert consumer.take(0.05) == [] and consumer.depth() == 0 and not consumer.owed()


def test_a_stored_message_is_deleted_only_with_the_batch_that_applied_it(tmp_path: Path) -> None:
    """An executor that dies between taking a message and committing what it led to leaves the message
    to the next executor: a worker's result is not lost between the two."""
    store = Store.sqlite(tmp_path)
    StoreQueue(store, consume=False).put(Message("result", "ex1", {"taskrun_id": "tr1"}))
    first = StoreQueue(store, consume=True, poll_interval=0.01)
    assert [m.kind for m in first.take(0.5)] == ["result"]
    with pytest.raises(RuntimeError), store.transaction() as conn:  # the batch's transaction fails
        first.acknowledge_in(conn)
        raise RuntimeError("crash before the commit")
    second = StoreQueue(store, consume=True, poll_interval=0.01)  # the executor taking over
    (again,) = second.take(0.5)
    assert (again.kind, again.payload) == ("result", {"taskrun_id": "tr1"})
    second.release({"ex2"})  # another execution's messages only
    with store.transaction() as conn:
        second.acknowledge_in(conn)
    second.acknowledged()
    assert second.depth() == 0 and not second.owed()


def test_assets_api(engine: Engine) -> None:
    from roost.assets.model import Asset, AssetBundle

    svc = engine.assets
    table = "io.kestra.plugin.ee.assets.Table"
    svc.record("main", [AssetBundle(inputs=[Asset(id="raw", type=table)], outputs=[Asset(id="mart", type=table, metadata={"layer": "mart"})])],
               {"namespace": "company.data", "flowId": "f", "executionId": "e1", "taskId": "t", "taskRunId": "r1"})  # fmt: skip
    client = client_for(engine)
    page = client.get(
        "/api/v1/main/assets/search", params={"filters[namespace][EQUALS]": "company.data"}
    ).json()
    assert page["total"] == 2 and {a["id"] for a in page["results"]} == {"raw", "mart"}
    q = client.get(
        "/api/v1/main/assets/search",
        params={"metadataQuery": '[{"field": "layer", "type": "EQUAL_TO", "value": "mart"}]'},
    )
    assert [a["id"] for a in q.json()["results"]] == ["mart"]
    assert client.get("/api/v1/main/assets/search", params={"metadataQuery": "nope"}).status_code == 400
    got = client.get("/api/v1/main/assets/mart").json()
    assert (
        got["metadata"] == {"layer": "mart"} and got["namespace"] == "company.data" and "_updated" not in got
    )
    graph = client.get("/api/v1/main/assets/mart/dependencies").json()
    assert [(e["source"].split("/")[1], e["target"].split("/")[1]) for e in graph["edges"]] == [
        ("raw", "mart")
    ]
    lineage = client.get("/api/v1/main/assets/lineage-events/search", params={"assetId": "mart"}).json()
    assert lineage["total"] == 1 and lineage["results"][0]["executionId"] == "e1"
    usages = client.get("/api/v1/main/assets/usages/search", params={"assetId": "raw"}).json()
    assert usages["results"][0]["taskRunId"] == "r1"
    created = client.post("/api/v1/main/assets", json={"namespace": "ops", "id": "dash", "type": "DASHBOARD"})
    assert created.status_code == 200 and created.json()["id"] == "dash"
    assert client.delete("/api/v1/main/assets/mart").status_code == 200
    assert client.get("/api/v1/main/assets/mart").status_code == 404
    events = client.get("/api/v1/main/assets/mart/events").json()
    assert [e["event"] for e in events["results"]] == ["CREATED", "DELETED"]
    assert client.get("/api/v1/other/assets/search").status_code == 404  # not a hosted tenant
    hosting = client_for(engine, ServerConfig(tenants=("main", "other")))
    assert hosting.get("/api/v1/other/assets/search").json()["total"] == 0  # tenants are isolated


def test_pause_and_resume_through_the_api(engine: Engine) -> None:
    import time

    client = client_for(engine)
    source = "id: slow\nnamespace: company.team\ntasks:\n  - id: nap\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT2S\n  - id: after\n    type: io.kestra.plugin.core.log.Log\n    message: resumed\n"
    assert (
        client.post(
            "/api/v1/main/flows", content=source, headers={"Content-Type": "application/x-yaml"}
        ).status_code
        == 200
    )
    ex = client.post("/api/v1/main/executions/company.team/slow").json()
    for _ in range(750):  # a 2 s nap: time enough to pause it on a loaded machine
        if client.get(f"/api/v1/main/executions/{ex['id']}").json()["state"]["current"] == "RUNNING":
            break
        time.sleep(0.02)
    assert client.post(f"/api/v1/main/executions/{ex['id']}/pause").status_code == 204
    for _ in range(750):
        if client.get(f"/api/v1/main/executions/{ex['id']}").json()["state"]["current"] == "PAUSED":
            break
        time.sleep(0.02)
    assert client.post(f"/api/v1/main/executions/{ex['id']}/pause").status_code == 409
    assert client.post(f"/api/v1/main/executions/{ex['id']}/resume").status_code == 204
    assert engine.wait(ex["id"], 20).state.current == "SUCCESS"
