"""Flows on S3 storage: task outputs, input files, ForEachItem, read(), FILE inputs, and the API of a real
server process configured with S3 (upload, download, metas, delete)."""

from __future__ import annotations

import json

import httpx
import pytest
from roost.engine.engine import Engine
from roost.plugins import Plugins
from roost.store.db import Store
from roost.testing.server import ServerProcess

PIPELINE = """
id: pipeline
namespace: company.team
inputs:
  - id: data
    type: FILE
tasks:
  - id: write
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["out/*.txt"]
    commands:
      - mkdir -p out
      - printf 'a\\nb\\nc\\nd\\ne\\n' > out/items.txt
  - id: read
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      copy.txt: "{{ outputs.write.outputFiles['out/items.txt'] }}"
      input.txt: "{{ inputs.data }}"
    commands:
      - wc -l < copy.txt
      - cat input.txt
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "{{ read(outputs.write.outputFiles['out/items.txt']) | trim }}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ outputs.write.outputFiles['out/items.txt'] }}"
    batch: {rows: 2}
    namespace: company.team
    flowId: child
    inputs:
      batch: "{{ taskrun.items }}"
    wait: true
"""

CHILD = """
id: child
namespace: company.team
inputs:
  - id: batch
    type: FILE
tasks:
  - id: count
    type: io.kestra.plugin.core.log.Log
    message: "batch {{ read(inputs.batch) | trim }}"
"""


@pytest.fixture
def engine(tmp_path, seaweed, bucket, s3_env):
    eng = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=4, plugins=Plugins(),
                 storage=seaweed.storage_config(bucket, prefix="flows"))  # fmt: skip
    eng.start()
    yield eng
    eng.stop()
    eng.store.close()


def test_a_pipeline_keeps_every_file_in_the_bucket(engine, seaweed, bucket, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("id,name\n1,Ada\n")
    engine.deploy(CHILD)
    flow = engine.deploy(PIPELINE)
    ex = engine.run(flow, {"data": data}, timeout=120)
    assert ex.state.current == "SUCCESS", [
        m["message"] for m in engine.store.get_logs("main", ex.id) if m["level"] == "ERROR"
    ]
    logs = [line["message"] for line in engine.store.get_logs("main", ex.id)]
    assert "5" in logs and "id,name" in logs and "1,Ada" in logs
    assert "a\nb\nc\nd\ne" in logs  # read() of an output file
    children = [e for e in engine.store.execution_ids_of("main", "company.team", "child", ("SUCCESS",))]
    assert len(children) == 3  # 5 items in batches of 2
    child_logs = sorted(
        m["message"]
        for c in children
        for m in engine.store.get_logs("main", c)
        if m["message"].startswith("batch")
    )
    assert child_logs == ["batch a\nb", "batch c\nd", "batch e"]
    keys = [
        o["Key"] for o in seaweed.client().list_objects_v2(Bucket=bucket, Prefix="flows/main/")["Contents"]
    ]
    mine = [k for k in keys if f"/executions/{ex.id}/" in k]
    assert any(k.endswith("/inputs/data/data.csv") for k in mine)
    assert any(k.endswith("-items.txt") and "/tasks/write/" in k for k in mine)
    assert sum("/tasks/each/" in k and k.endswith(".txt") for k in mine) == 3
    assert not (tmp_path / "home" / "storage" / "main" / "company").exists()  # nothing landed on local disk


def test_a_missing_file_fails_the_task_with_its_uri(engine):
    flow = engine.deploy("""
id: missing
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "kestra:///company/team/missing/executions/nope/file.txt"
    namespace: company.team
    flowId: child
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: never
""")
    ex = engine.run(flow, timeout=60)
    assert ex.state.current == "FAILED"
    errors = [m["message"] for m in engine.store.get_logs("main", ex.id) if m["level"] == "ERROR"]
    assert any(
        "no file in internal storage at kestra:///company/team/missing/executions/nope/file.txt" in e
        for e in errors
    )


@pytest.fixture
def server(tmp_path, seaweed, bucket):
    config = tmp_path / "roost.yaml"
    config.write_text(json.dumps({"storage": seaweed.storage_config(bucket)}))
    proc = ServerProcess("local", tmp_path / "data", config=config,
                         env={"ROOST_LOAD_PLUGINS": "s3", **seaweed.environ()}).wait_ready(60)  # fmt: skip
    yield proc
    proc.stop()


def test_the_api_of_a_server_on_s3(server, seaweed, bucket):
    api = httpx.Client(base_url=server.url + "/api/v1/main", timeout=60)
    flow = """
id: files
namespace: company.team
inputs:
  - id: report
    type: FILE
tasks:
  - id: upper
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["upper.txt"]
    inputFiles:
      report.txt: "{{ inputs.report }}"
    commands:
      - tr a-z A-Z < report.txt > upper.txt
"""
    assert api.post("/flows", content=flow, headers={"content-type": "application/x-yaml"}).status_code == 200
    answer = api.post("/executions/company.team/files", params={"wait": "true"},
                      files={"report": ("report.txt", b"hello from the api\n" * 1000)})  # fmt: skip
    assert answer.status_code == 200, answer.text
    ex = answer.json()
    assert ex["state"]["current"] == "SUCCESS", ex
    uri = ex["taskRunList"][0]["outputs"]["outputFiles"]["upper.txt"]
    metas = api.get(f"/executions/{ex['id']}/file/metas", params={"path": uri})
    assert metas.json() == {"size": 19 * 1000}
    got = api.get(f"/executions/{ex['id']}/file", params={"path": uri})
    assert got.status_code == 200 and got.content == b"HELLO FROM THE API\n" * 1000
    assert got.headers["content-disposition"].endswith('upper.txt"')
    assert int(got.headers["content-length"]) == 19 * 1000
    uploaded = ex["inputs"]["report"]
    assert (
        api.get(f"/executions/{ex['id']}/file", params={"path": uploaded}).content
        == b"hello from the api\n" * 1000
    )
    # another execution's folder, a missing file, a path outside every execution
    other = uri.replace(ex["id"], "0" * 22)
    assert api.get(f"/executions/{ex['id']}/file", params={"path": other}).status_code == 403
    missing = uri.rsplit("/", 1)[0] + "/missing.txt"
    answer = api.get(f"/executions/{ex['id']}/file", params={"path": missing})
    assert answer.status_code == 404 and "no file in internal storage" in answer.json()["message"]
    assert api.get(f"/executions/{ex['id']}/file/metas", params={"path": missing}).status_code == 404
    # deleting the execution deletes its files in the bucket
    assert api.delete(f"/executions/{ex['id']}").status_code == 204
    left = seaweed.client().list_objects_v2(
        Bucket=bucket, Prefix=f"main/company/team/files/executions/{ex['id']}/"
    )
    assert left.get("KeyCount", 0) == 0


def test_working_directory_files_go_through_the_bucket(engine, seaweed, bucket):
    items = engine.runtime("main").storage.put("company/team/seed/executions/e0/items.txt", b"a\nb\nc\n")
    flow = engine.deploy(f"""
id: wd
namespace: company.team
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      in.txt: "{items}"
    outputFiles: ["out.txt"]
    tasks:
      - id: copy
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - tr a-z A-Z < in.txt > out.txt
""")
    ex = engine.run(flow, timeout=120)
    assert ex.state.current == "SUCCESS", [m["message"] for m in engine.store.get_logs("main", ex.id)]
    out = ex.task_runs[0].outputs["outputFiles"]["out.txt"]
    with engine.runtime("main").storage.open_read(out) as fh:
        assert fh.read() == b"A\nB\nC\n"
    listed = seaweed.client().list_objects_v2(
        Bucket=bucket, Prefix=f"flows/main/company/team/wd/executions/{ex.id}/"
    )
    assert any(o["Key"].endswith("/out.txt") for o in listed["Contents"])
