"""A big file through tasks and the API of a server on S3, at bounded memory: the server's peak RSS grows by
less than 100 MB while a 1 GB file goes up (a task's outputFiles), back down (the next task's inputFiles)
and out through the download route. ``ROOST_S3_BIG_MB`` sets the size (1024 by default)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
from roost.testing.server import ServerProcess

SIZE_MB = int(os.environ.get("ROOST_S3_BIG_MB", "1024"))
FLOW = """
id: big
namespace: company.team
inputs:
  - id: mb
    type: INT
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["big.bin"]
    commands:
      - head -c {{ inputs.mb }}M /dev/zero > big.bin
  - id: use
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      big.bin: "{{ outputs.make.outputFiles['big.bin'] }}"
    commands:
      - wc -c < big.bin
"""


def status(pid: int, field: str) -> int:
    """A memory figure of /proc/<pid>/status, in bytes (VmRSS now, VmHWM the peak since the last reset)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak RSS starts again from the current RSS


def test_a_gigabyte_through_tasks_and_the_api_at_bounded_memory(tmp_path, seaweed, bucket):
    config = tmp_path / "roost.yaml"
    config.write_text(json.dumps({"storage": seaweed.storage_config(bucket)}))
    server = ServerProcess("local", tmp_path / "data", config=config,
                           env={"ROOST_LOAD_PLUGINS": "s3", **seaweed.environ()}).wait_ready(60)  # fmt: skip
    try:
        api = httpx.Client(base_url=server.url + "/api/v1/main", timeout=600)
        api.post("/flows", content=FLOW, headers={"content-type": "application/x-yaml"}).raise_for_status()
        warm = api.post(
            "/executions/company.team/big", params={"wait": "true"}, data={"mb": "16"}
        )  # imports, pools
        assert warm.json()["state"]["current"] == "SUCCESS"
        pid = server.proc.pid
        reset_peak(pid)
        baseline = status(pid, "VmRSS")
        started = time.monotonic()
        ex = api.post(
            "/executions/company.team/big", params={"wait": "true"}, data={"mb": str(SIZE_MB)}
        ).json()
        assert ex["state"]["current"] == "SUCCESS", ex
        uri = ex["taskRunList"][0]["outputs"]["outputFiles"]["big.bin"]
        logs = api.get(f"/logs/{ex['id']}").json()
        assert any(
            line["message"].strip() == str(SIZE_MB << 20) for line in logs
        )  # the next task read it whole
        received = 0
        with api.stream("GET", f"/executions/{ex['id']}/file", params={"path": uri}) as answer:
            assert answer.status_code == 200
            assert int(answer.headers["content-length"]) == SIZE_MB << 20
            for chunk in answer.iter_bytes(1 << 20):
                received += len(chunk)
        elapsed = time.monotonic() - started
        growth = status(pid, "VmHWM") - baseline
        assert received == SIZE_MB << 20
        print(f"\n{SIZE_MB} MB up, down and out in {elapsed:.1f} s; peak RSS growth {growth / 1e6:.1f} MB")
        assert growth < 100e6, f"peak RSS grew by {growth / 1e6:.1f} MB"
    finally:
        server.stop()
