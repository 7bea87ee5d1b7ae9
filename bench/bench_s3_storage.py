"""Internal storage on S3 (a real SeaweedFS on loopback): throughput and memory for a big file.

Run alone: ``python bench/bench_s3_storage.py [--mb 1024]`` (needs ``pip install ./plugins/s3[test]``). One line
per figure:

- upload of a local file through the S3 backend (``put`` of a path: multipart), MB/s and peak RSS growth;
- streamed read back (``open_read``), MB/s and peak RSS growth;
- the whole path in a ``roost server local`` on S3: a task writes the file (outputFiles, up), the next task
  reads it (inputFiles, down), the API serves it (download route, out) -- seconds and the server's peak RSS
  growth (``/proc/<pid>/status`` VmHWM after resetting it through ``clear_refs``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from roost.plugins import Plugins
from roost.store.storage import storage_factory
from roost.testing.server import ServerProcess
from roost_s3.seaweedfs import SeaweedFS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "s3" / "tests"))
from test_s3_big_file import FLOW, reset_peak, status  # noqa: E402  (one flow for the test and the bench)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    args = parser.parse_args()
    size = args.mb << 20
    root = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    with SeaweedFS(root / "seaweedfs") as s3:
        s3.create_bucket("bench")
        config = s3.storage_config("bench")
        storage = storage_factory(config, root, plugins=Plugins(), environ=s3.environ())("main")
        local = root / "big.bin"
        with local.open("wb") as fh:
            fh.truncate(size)  # a sparse file of zeros: no disk time on the client side
        pid = os.getpid()
        storage.put("warm/x.bin", b"x" * (9 << 20))  # imports, connection pool, first multipart upload
        reset_peak(pid)
        base = status(pid, "VmRSS")
        started = time.monotonic()
        uri = storage.put("bench/big.bin", local)
        up = time.monotonic() - started
        print(f"S3 put of a {args.mb} MB file: {args.mb / up:.0f} MB/s ({up:.1f} s), "
              f"peak RSS growth {(status(pid, 'VmHWM') - base) / 1e6:.1f} MB")  # fmt: skip
        reset_peak(pid)
        base = status(pid, "VmRSS")
        started = time.monotonic()
        with storage.open_read(uri) as stream:
            got = sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 20), b""))
        down = time.monotonic() - started
        assert got == size
        print(f"S3 streamed read of {args.mb} MB: {args.mb / down:.0f} MB/s ({down:.1f} s), "
              f"peak RSS growth {(status(pid, 'VmHWM') - base) / 1e6:.1f} MB")  # fmt: skip

        (root / "roost.yaml").write_text(json.dumps({"storage": config}))
        server = ServerProcess("local", root / "data", config=root / "roost.yaml",
                               env={"ROOST_LOAD_PLUGINS": "s3", **s3.environ()}).wait_ready(60)  # fmt: skip
        try:
            api = httpx.Client(base_url=server.url + "/api/v1/main", timeout=900)
            api.post(
                "/flows", content=FLOW, headers={"content-type": "application/x-yaml"}
            ).raise_for_status()
            api.post(
                "/executions/company.team/big", params={"wait": "true"}, data={"mb": "16"}
            ).raise_for_status()
            reset_peak(server.proc.pid)
            base = status(server.proc.pid, "VmRSS")
            started = time.monotonic()
            ex = api.post(
                "/executions/company.team/big", params={"wait": "true"}, data={"mb": str(args.mb)}
            ).json()
            assert ex["state"]["current"] == "SUCCESS", ex
            tasks = time.monotonic() - started
            out = ex["taskRunList"][0]["outputs"]["outputFiles"]["big.bin"]
            received = 0
            with api.stream("GET", f"/executions/{ex['id']}/file", params={"path": out}) as answer:
                for chunk in answer.iter_bytes(1 << 20):
                    received += len(chunk)
            total = time.monotonic() - started
            assert received == size
            growth = status(server.proc.pid, "VmHWM") - base
            print(f"server on S3, {args.mb} MB written by a task, read by the next, downloaded through the API: "
                  f"{total:.1f} s (tasks {tasks:.1f} s, download {total - tasks:.1f} s), "
                  f"peak RSS growth {growth / 1e6:.1f} MB")  # fmt: skip
        finally:
            server.stop()


if __name__ == "__main__":
    main()
