"""A real ``roost server`` component as a subprocess on a free loopback port, for end-to-end tests.

    proc = ServerProcess("local", tmp_path / "data", env={"ROOST_LOAD_PLUGINS": "slack"}).wait_ready()
    httpx.get(proc.url + "/api/v1/main/flows/search")
    proc.stop()

Plugins load as ``ROOST_LOAD_PLUGINS`` says (none but the built-in one unless ``env`` names some).
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SEQ = itertools.count()


class ServerProcess:
    """One server component as a subprocess; ``url`` once it answers ``/health``."""

    def __init__(self, component: str, data_dir: Path, *, config: Path | None = None, db_url: str | None = None,
                 env: dict[str, str] | None = None, http: bool = True, extra: list[str] | None = None) -> None:  # fmt: skip
        """``extra``: more arguments of ``roost server COMPONENT`` (``--ignore-flows a.b``...)."""
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
        args += extra or []
        full_env = {**os.environ, "ROOST_LOAD_PLUGINS": "", **(env or {})}
        self.log = data_dir.parent / f"{component}-{self.port or os.getpid()}-{next(_SEQ)}.log"
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

    def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-task, with nothing cleaned up."""
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
