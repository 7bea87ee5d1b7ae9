"""A real SSH server on loopback (Debian's openssh-server) in front of GnuCOBOL: the tests' "IBM i"."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class SshHost:
    port: int
    user: str
    private_key: str
    host_key: str
    root: Path
    """The test's library root (absolute), so tests do not share programs."""

    def props(self, **extra: object) -> dict[str, object]:
        return {"host": "127.0.0.1", "port": self.port, "user": self.user, "privateKey": self.private_key,
                "hostKey": self.host_key, "libraryRoot": str(self.root), **extra}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    if not Path(SSHD).exists() or shutil.which("cobc") is None:
        pytest.fail("sshd and cobc are needed: run plugins/cobol/setup-system.sh (as root)")
    home = Path(tmp_path_factory.mktemp("sshd"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key")], check=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "client_key")], check=True
    )
    (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
    port = _free_port()
    (home / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {home}/host_key
AuthorizedKeysFile {home}/authorized_keys
PidFile {home}/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin yes
MaxStartups 50
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(exist_ok=True) if os.geteuid() == 0 else None
    log = (home / "sshd.log").open("w")
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(home / "sshd_config")], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(home / 'sshd.log').read_text()}") from None
            time.sleep(0.05)
    try:
        yield port, home
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def ssh_host(sshd: tuple[int, Path], tmp_path: Path) -> SshHost:
    import pwd

    port, home = sshd
    host_key = " ".join((home / "host_key.pub").read_text().split()[:2])
    root = tmp_path / "libs"
    return SshHost(
        port, pwd.getpwuid(os.geteuid()).pw_name, (home / "client_key").read_text(), host_key, root
    )
