"""A throwaway PostgreSQL server for tests (reusable: no dependency on the JDBC plugin).

``postgres_server()`` initdb's a temporary folder, starts the server on a free loopback
port with its socket inside that folder (another server may hold 5432), and removes it all
on exit. Run as root, it runs the server as the ``postgres`` user, as PostgreSQL requires.

    with postgres_server() as pg:
        psycopg.connect(pg.dsn())          # superuser "postgres", trust authentication
        pg.jdbc_url("postgres")            # jdbc:postgresql://127.0.0.1:PORT/postgres

A pytest fixture is one line::

    @pytest.fixture(scope="session")
    def postgres():
        with postgres_server() as pg:
            yield pg
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


@dataclass
class PgServer:
    host: str
    port: int
    data_dir: Path
    socket_dir: Path
    bin_dir: Path
    user: str = "postgres"

    def dsn(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        dsn = f"host={self.host} port={self.port} dbname={dbname} user={user or self.user}"
        return dsn + (f" password={password}" if password else "")

    def jdbc_url(self, dbname: str = "postgres") -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser through the server's own psql (no Python driver needed)."""
        return subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                dbname,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout


def find_bin_dir() -> Path:
    override = os.environ.get("ROOST_PG_BIN")
    for candidate in ((override,) if override else ()) + PG_BIN_CANDIDATES:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql-15")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@contextlib.contextmanager
def postgres_server(
    extra_hba: list[str] | None = None, settings: dict[str, str] | None = None
) -> Iterator[PgServer]:
    """Start a fresh server; ``extra_hba`` lines go before the trust rules of pg_hba.conf."""
    bin_dir = find_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="roost-pg-"))
    root.chmod(0o755)
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    started = False
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        if extra_hba:
            hba = data / "pg_hba.conf"
            hba.write_text("\n".join(extra_hba) + "\n" + hba.read_text())
        options = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", **(settings or {})}
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        last_error = ""
        for _ in range(3):  # the free port can be taken between the probe and the start
            port = free_port()
            proc = subprocess.run(
                _as_postgres(
                    [
                        str(bin_dir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-l",
                        str(root / "server.log"),
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 {opts}",
                        "start",
                    ]
                ),
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0:
                started = True
                break
            last_error = proc.stdout + proc.stderr + _tail(root / "server.log")
        if not started:
            raise RuntimeError(f"PostgreSQL did not start: {last_error}")
        yield PgServer("127.0.0.1", port, data, root, bin_dir)
    finally:
        if started:
            subprocess.run(
                _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
