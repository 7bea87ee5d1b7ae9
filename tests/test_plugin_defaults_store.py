"""Versioned plugin defaults: store revisions, the folder imported at start, the engine using the latest
revision (a change applies to the next validation and execution), and the API (Kestra's import/export/
inherited operations plus Roost's get/put/revisions)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.plugin_defaults import INSTANCE, DefaultsInvalid, parse_defaults
from roost.server import ServerState, create_app
from roost.store.db import Store
from roost.store.defaults import StoredDefaults

LOG = "io.kestra.plugin.core.log.Log"
RETURN = "io.kestra.plugin.core.debug.Return"
FLOW = f"""id: f
namespace: company.team
tasks:
  - id: say
    type: {RETURN}
"""


def doc(fmt: str, *, type_: str = RETURN, key: str = "format") -> str:
    return f"pluginDefaults:\n  - type: {type_}\n    values:\n      {key}: {fmt}\n"


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.delenv("ROOST_PLUGIN_DEFAULTS", raising=False)
    eng = Engine(Store.sqlite(tmp_path / "db"), tmp_path, workers=2)
    eng.start()
    yield eng
    eng.stop()


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)


def test_parse_defaults_reports_path_and_line_of_unknown_property() -> None:
    from roost.plugins import get_plugins

    with pytest.raises(DefaultsInvalid) as err:
        parse_defaults(doc("x", key="nope"), get_plugins(), "namespace a")
    v = err.value.violations[0]
    assert (v.path, v.line) == ("pluginDefaults[0].values.nope", 4)
    assert "unknown property 'nope'" in v.message and "format" in v.message


def test_parse_defaults_accepts_a_bare_list_and_rejects_other_keys() -> None:
    assert parse_defaults(f"- type: {LOG}\n  values: {{level: WARN}}\n")[0].values == {"level": "WARN"}
    with pytest.raises(DefaultsInvalid, match="unexpected key"):
        parse_defaults("tasks: []\n")
    with pytest.raises(DefaultsInvalid, match="type"):
        parse_defaults("pluginDefaults:\n  - values: {a: 1}\n")


def test_revisions_skip_identical_content_and_keep_history(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path)
    sd = StoredDefaults(store)
    r1, new1 = sd.save("main", "a", doc("one"), origin="api")
    r2, new2 = sd.save("main", "a", doc("one"), origin="api")
    r3, new3 = sd.save("main", "a", doc("two"), origin="ui", author="ada")
    assert (r1.revision, new1, r2.revision, new2, r3.revision, new3) == (1, True, 1, False, 2, True)
    assert [r.origin for r in sd.revisions("main", "a")] == ["api", "ui"]
    assert sd.get("main", "a", 1).source == doc("one")
    assert sd.latest("other", "a") is None  # tenants are isolated
    assert sd("main", "a.b")[0].values == {"format": "two"}


def test_invalid_document_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    from roost.plugins import get_plugins

    sd = StoredDefaults(Store.sqlite(tmp_path), get_plugins())
    with pytest.raises(DefaultsInvalid):
        sd.save("main", "a", doc("x", key="nope"), origin="api")
    assert sd.revisions("main", "a") == []


def test_folder_is_imported_when_it_differs(tmp_path: Path) -> None:
    folder = tmp_path / "pd"
    folder.mkdir()
    (folder / "instance.yaml").write_text(doc("inst"))
    (folder / "company.yaml").write_text(doc("company"))
    (folder / "bad.yaml").write_text("pluginDefaults: 3\n")
    (folder / "README.md").write_text("not defaults")
    sd = StoredDefaults(Store.sqlite(tmp_path / "db"))
    added = sd.import_folder(folder, ["main", "t2"])
    assert sorted(added) == [("", "", 1), ("main", "company", 1), ("t2", "company", 1)]
    assert sd.import_folder(folder, ["main"]) == []  # unchanged: no new revision
    (folder / "company.yaml").write_text(doc("company v2"))
    assert sd.import_folder(folder, ["main"]) == [("main", "company", 2)]
    assert [d.values["format"] for d in sd("t2", "company.team")] == ["inst", "company"]


def test_engine_uses_latest_revision_for_new_executions(engine: Engine, client: TestClient) -> None:
    flow_ok = client.post(
        "/api/v1/main/flows",
        content=FLOW.replace("    type: " + RETURN, f"    type: {RETURN}\n    format: own"),
    )
    assert flow_ok.status_code == 200
    r = client.put("/api/v1/main/namespaces/company/plugindefaults", content=doc("from ns"))
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 1 and r.json()["pluginDefaults"][0]["type"] == RETURN
    flow2 = FLOW.replace("id: f", "id: g")
    assert client.post("/api/v1/main/flows", content=flow2).status_code == 200
    ex = client.post("/api/v1/main/executions/company.team/g?wait=true").json()
    assert ex["state"]["current"] == "SUCCESS"
    assert ex["taskRunList"][0]["outputs"]["value"] == "from ns"
    # change the default: the next execution of the same revision uses it
    client.put("/api/v1/main/namespaces/company/plugindefaults", content=doc("changed"))
    ex = client.post("/api/v1/main/executions/company.team/g?wait=true").json()
    assert ex["taskRunList"][0]["outputs"]["value"] == "changed"


def test_validate_route_honours_stored_defaults(client: TestClient) -> None:
    flow = FLOW.replace(RETURN, LOG)  # a Log without its required message
    yaml = {"content-type": "application/x-yaml"}
    before = client.post("/api/v1/main/flows/validate", content=flow, headers=yaml).json()
    assert "message" in before[0]["constraints"]
    client.put(
        "/api/v1/main/namespaces/company.team/plugindefaults", content=doc("x", type_=LOG, key="message")
    )
    after = client.post("/api/v1/main/flows/validate", content=flow, headers=yaml).json()
    assert "constraints" not in after[0]


def test_put_invalid_is_422_with_line(client: TestClient) -> None:
    r = client.put("/api/v1/main/namespaces/a/plugindefaults", content=doc("x", key="nope"))
    assert r.status_code == 422
    v = r.json()["violations"][0]
    assert (v["path"], v["line"]) == ("pluginDefaults[0].values.nope", 4) and "unknown property" in v[
        "message"
    ]
    assert client.get("/api/v1/main/namespaces/a/plugindefaults/revisions").json() == []


def test_kestra_import_export_and_inherited(client: TestClient) -> None:
    files = {"fileUpload": ("a.yaml", doc("imported").encode(), "application/x-yaml")}
    r = client.post("/api/v1/main/namespaces/company/plugindefaults/import", files=files)
    assert r.status_code == 200 and r.json() == [RETURN]
    exported = client.post("/api/v1/main/namespaces/company/plugindefaults/export")
    assert exported.status_code == 200 and exported.text == doc("imported")
    assert exported.headers["content-type"] == "application/octet-stream"
    client.put(
        "/api/v1/instance/plugindefaults", content=doc("inst", type_=LOG, key="level").replace("inst", "WARN")
    )
    inherited = client.get("/api/v1/main/namespaces/company.team/inherited-plugindefaults").json()
    assert inherited == [
        {"type": LOG, "forced": False, "values": {"level": "WARN"}},
        {"type": RETURN, "forced": False, "values": {"format": "imported"}, "namespace": "company"},
    ]
    # a namespace's own defaults are not inherited by itself
    assert client.get("/api/v1/main/namespaces/company/inherited-plugindefaults").json()[0]["type"] == LOG
    assert len(client.get("/api/v1/main/namespaces/company/inherited-plugindefaults").json()) == 1
    empty = client.post("/api/v1/main/namespaces/nothing.here/plugindefaults/export").text
    assert parse_defaults(empty) == []


def test_revisions_routes(client: TestClient) -> None:
    for text in ("a", "b", "c"):
        client.put("/api/v1/main/namespaces/ns1/plugindefaults", content=doc(text))
        time.sleep(0.01)
    revs = client.get("/api/v1/main/namespaces/ns1/plugindefaults/revisions").json()
    assert [r["revision"] for r in revs] == [3, 2, 1] and revs[0]["origin"] == "api"
    one = client.get("/api/v1/main/namespaces/ns1/plugindefaults/revisions/1").json()
    assert one["source"] == doc("a")
    assert client.get("/api/v1/main/namespaces/ns1/plugindefaults/revisions/9").status_code == 404
    assert client.get("/api/v1/main/plugindefaults/namespaces").json() == ["ns1"]
    assert client.get("/api/v1/main/namespaces/NOT_OK/plugindefaults").status_code == 400
    assert client.get("/api/v1/instance/plugindefaults").json()["revision"] is None
    assert INSTANCE == ""


def test_another_process_change_is_seen_within_ttl(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path)
    reader = StoredDefaults(store, ttl=0.05)
    writer = StoredDefaults(store)
    forgotten: list[int] = []
    reader.listeners.append(lambda: forgotten.append(1))
    assert reader("main", "a") == []
    writer.save("main", "a", doc("new"), origin="api")
    time.sleep(0.1)
    assert reader("main", "a")[0].values == {"format": "new"} and forgotten
