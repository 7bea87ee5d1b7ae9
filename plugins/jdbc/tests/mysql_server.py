"""A throwaway MariaDB server for tests (Debian's ``mariadb-server``; see ../setup-system.sh).

``mariadb_server()`` creates a data folder with ``mariadb-install-db``, starts ``mariadbd`` on a
free loopback port with its socket and pid file inside that folder, and removes it all on exit.
The ``root`` account has an empty password from 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])


@dataclass
class MariaDbServer:
    host: str
    port: int
    root: Path
    user: str = "root"

    def jdbc_url(self, database: str = "") -> str:
        return f"jdbc:mysql://{self.host}:{self.port}/{database}"

    def connect(self, database: str | None = None, **kw: object):  # noqa: ANN201 - PyMySQL connection
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password="",
            database=database,
            autocommit=True,
            **kw,
        )


def _which(name: str) -> str:
    found = shutil.which(name, path=SEARCH_PATH)
    if not found:
        raise RuntimeError(
            f"{name} not found: install Debian's mariadb-server (plugins/jdbc/setup-system.sh)"
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_mysql(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "mysql", "--", *argv]
    return argv


@contextlib.contextmanager
def mariadb_server(timeout: float = 60.0) -> Iterator[MariaDbServer]:
    install_db = _which("mariadb-install-db")
    server = _which("mariadbd")
    root = Path(tempfile.mkdtemp(prefix="roost-mariadb-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "mysql", "mysql")
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            _as_mysql(
                [
                    install_db,
                    "--no-defaults",
                    f"--datadir={root / 'data'}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ]
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        port = _free_port()
        proc = subprocess.Popen(
            _as_mysql(
                [
                    server,
                    "--no-defaults",
                    f"--datadir={root / 'data'}",
                    f"--port={port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={root / 'mysqld.sock'}",
                    f"--pid-file={root / 'mysqld.pid'}",
                    "--skip-name-resolve",
                    "--innodb-buffer-pool-size=16M",
                    "--innodb-log-file-size=8M",
                    "--skip-log-bin",
                    f"--log-error={root / 'error.log'}",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {_tail(root / 'error.log')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mariadbd did not start in {timeout}s: {_tail(root / 'error.log')}"
                    ) from None
                time.sleep(0.1)
        yield MariaDbServer("127.0.0.1", port, root)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
