"""Fixtures: libvirt test-driver hosts, misbehaving libvirt peers, and a real libvirtd with QEMU."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def node_uri() -> str:
    """A test-driver host (tests/fixtures/node.xml); each connection starts from the file's state."""
    return f"test://{FIXTURES / 'node.xml'}"


@pytest.fixture
def auth_uri() -> str:
    """A test-driver host that asks for a username and password."""
    return f"test://{FIXTURES / 'node-auth.xml'}"


@pytest.fixture
def shared_host() -> Iterator[tuple[str, str, libvirt.virConnect]]:
    """``test:///default``, a fresh VM name and a connection held open for the whole test.

    The default test host is one state shared by every connection of the process, kept
    only while a connection is open: the held one lets state survive from task to task
    (and lets the test look). Whatever the test left under that name is removed afterwards.
    """
    name = f"roost-{uuid.uuid4().hex[:8]}"
    conn = libvirt.open("test:///default")
    try:
        yield "test:///default", name, conn
    finally:
        try:
            dom = conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError:
            pass
        pool = conn.storagePoolLookupByName("default-pool")
        for vol in pool.listAllVolumes():
            if vol.name().startswith(name):
                vol.delete(0)
        conn.close()


class Peer:
    """A TCP listener on 127.0.0.1 that plays a broken libvirtd: silent, or answering garbage."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"qemu+tcp://127.0.0.1:{self.port}/system"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(conn)
            if self.mode == "garbage":
                try:
                    conn.recv(65536)
                    conn.sendall(b"\x00\x00\x00\x28HTTP/1.1 400 Bad Request\r\nX: yyyyyyyyyyyyy\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
        for c in self.clients:
            c.close()  # a libvirt connect still blocked on us gets EOF and returns


@pytest.fixture
def silent_peer() -> Iterator[Peer]:
    peer = Peer("silent")
    yield peer
    peer.close()


@pytest.fixture
def garbage_peer() -> Iterator[Peer]:
    peer = Peer("garbage")
    yield peer
    peer.close()


@pytest.fixture
def free_port_uri() -> str:
    """A qemu+tcp URI on a loopback port where nothing listens (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"qemu+tcp://127.0.0.1:{port}/system"


# -- a real libvirtd with QEMU --------------------------------------------------------------------

SYSTEM_URI = "qemu:///system"
RUN_DIR = Path("/run/libvirt")


def _listening(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _start(binary: str, pidfile: Path) -> int:
    pidfile.unlink(missing_ok=True)
    subprocess.run([binary, "--daemon", "--pid-file", str(pidfile)], check=True, timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if pidfile.exists() and pidfile.read_text().strip():
            return int(pidfile.read_text().strip())
        time.sleep(0.05)
    raise RuntimeError(f"{binary} wrote no pid file")


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def libvirtd() -> Iterator[str]:
    """``qemu:///system`` served by a real libvirtd; starts virtlogd and libvirtd if they are not up.

    Daemons this fixture started are stopped at the end (by the pids they wrote); daemons that
    were already running are left alone. Where libvirtd is not installed the tests skip, except
    in CI (``CI`` set), where setup-system.sh installs it and its absence is a failure.
    """
    if shutil.which("libvirtd") is None or shutil.which("virtlogd") is None:
        msg = "libvirtd/virtlogd not installed (run plugins/kvm/setup-system.sh as root)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    started: list[int] = []
    piddir = Path(tempfile.mkdtemp(prefix="roost-kvm-daemons-"))
    try:
        if not _listening(RUN_DIR / "virtlogd-sock"):
            started.append(_start("virtlogd", piddir / "virtlogd.pid"))
        if not _listening(RUN_DIR / "libvirt-sock"):
            started.append(_start("libvirtd", piddir / "libvirtd.pid"))
        deadline = time.monotonic() + 20
        while True:
            try:
                libvirt.open(SYSTEM_URI).close()
                break
            except libvirt.libvirtError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield SYSTEM_URI
    finally:
        for pid in reversed(started):
            _stop(pid)
        shutil.rmtree(piddir, ignore_errors=True)


@pytest.fixture(scope="session")
def qemu_pool(libvirtd: str) -> Iterator[tuple[str, Path]]:
    """A transient directory storage pool on the real libvirtd (QEMU must be able to reach it)."""
    path = Path(tempfile.mkdtemp(prefix="roost-kvm-pool-", dir="/var/tmp"))
    path.chmod(0o755)
    name = path.name
    conn = libvirt.open(libvirtd)
    pool = conn.storagePoolCreateXML(
        f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>", 0
    )
    try:
        yield name, path
    finally:
        try:
            pool.destroy()
        except libvirt.libvirtError:
            pass
        conn.close()
        shutil.rmtree(path, ignore_errors=True)
