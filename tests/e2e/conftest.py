"""A real ``roost server`` process on a free loopback port, and an HTTP client for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server component as a subprocess; ``url`` once it answers ``/health``."""

    def __init__(self, component: str, data_dir: Path, *, config: Path | None = None, db_url: str | None = None,
                 env: dict[str, str] | None = None, http: bool = True) -> None:  # fmt: skip
        self.port = free_port() if http else None
        self.url = f"http://127.0.0.1:{self.port}" if http else ""
        args = [
            sys.executable,
            "-m",
            "roost.cli.main",
            "server",
            component,
            "--data-dir",
            str(data_dir),
            "--workers",
            "4",
        ]
        if http:
            args += ["--port", str(self.port)]
        if config is not None:
            args += ["--config", str(config)]
        if db_url is not None:
            args += ["--db-url", db_url]
        full_env = {**os.environ, "ROOST_LOAD_PLUGINS": "", **(env or {})}
        self.log = data_dir.parent / f"{component}-{self.port or os.getpid()}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env)

    def wait_ready(self, timeout: float = 90) -> ServerProcess:  # a loaded 2-core machine starts slowly
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if not self.url:
                if "running" in self.log.read_text():
                    return self
            else:
                try:
                    if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``roost server local`` without auth, shared by the tests of a session."""
    root = tmp_path_factory.mktemp("roost-server")
    proc = ServerProcess("local", root / "data").wait_ready()
    yield proc
    proc.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v1/main", timeout=30) as client:
        yield client


def flow_yaml(body: str, id: str, namespace: str = "e2e.team") -> str:
    import textwrap

    return f"id: {id}\nnamespace: {namespace}\n" + textwrap.dedent(body)


def deploy(api: httpx.Client, source: str) -> dict[str, Any]:
    r = api.post("/flows", content=source, headers={"content-type": "application/x-yaml"})
    if r.status_code == 422 and "already exists" in r.text:
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(source)
        r = api.put(
            f"/flows/{data['namespace']}/{data['id']}",
            content=source,
            headers={"content-type": "application/x-yaml"},
        )
    assert r.status_code == 200, r.text
    return r.json()
