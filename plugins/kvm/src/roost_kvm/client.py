"""The libvirt side: connections with a deadline, domain look-ups, state names, waits.

Every libvirt failure leaves this module as a :class:`roost.TaskError` that says
what was being done, on which URI, with libvirt's own message. Waits poll with
``ctx.sleep`` so a kill stops them at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import libvirt
from roost import RunContext, TaskError


def _quiet(_ctx: Any, _err: Any) -> None:
    """libvirt prints every error to stderr by default; errors reach the task as exceptions instead."""


libvirt.registerErrorHandler(_quiet, None)

#: Kestra's names for libvirt domain states (the Java binding's ``DomainState`` constants).
STATE_NAMES: dict[int, str] = {
    libvirt.VIR_DOMAIN_NOSTATE: "VIR_DOMAIN_NOSTATE",
    libvirt.VIR_DOMAIN_RUNNING: "VIR_DOMAIN_RUNNING",
    libvirt.VIR_DOMAIN_BLOCKED: "VIR_DOMAIN_BLOCKED",
    libvirt.VIR_DOMAIN_PAUSED: "VIR_DOMAIN_PAUSED",
    libvirt.VIR_DOMAIN_SHUTDOWN: "VIR_DOMAIN_SHUTDOWN",
    libvirt.VIR_DOMAIN_SHUTOFF: "VIR_DOMAIN_SHUTOFF",
    libvirt.VIR_DOMAIN_CRASHED: "VIR_DOMAIN_CRASHED",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "VIR_DOMAIN_PMSUSPENDED",
}
STATE_CODES = {name: code for code, name in STATE_NAMES.items()}
RUNNING = libvirt.VIR_DOMAIN_RUNNING
PAUSED = libvirt.VIR_DOMAIN_PAUSED
SHUTOFF = libvirt.VIR_DOMAIN_SHUTOFF
CRASHED = libvirt.VIR_DOMAIN_CRASHED
#: States in which a domain has a running QEMU process (``destroy`` applies).
ACTIVE_STATES = {RUNNING, libvirt.VIR_DOMAIN_BLOCKED, PAUSED, libvirt.VIR_DOMAIN_SHUTDOWN,
                 libvirt.VIR_DOMAIN_PMSUSPENDED}  # fmt: skip

_AUTH_ERRORS = {
    libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_AUTH_CANCELLED,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE,
    libvirt.VIR_ERR_ACCESS_DENIED,
}


def state_name(code: int) -> str:
    return STATE_NAMES.get(code, f"VIR_DOMAIN_UNKNOWN_{code}")


def parse_state(value: str) -> int:
    """``running``, ``RUNNING`` or ``VIR_DOMAIN_RUNNING`` → the libvirt state code."""
    key = value.strip().upper()
    if not key.startswith("VIR_DOMAIN_"):
        key = "VIR_DOMAIN_" + key
    if key not in STATE_CODES:
        names = ", ".join(n.removeprefix("VIR_DOMAIN_") for n in STATE_CODES)
        raise TaskError(f"unknown VM state '{value}': expected one of {names} (with or without VIR_DOMAIN_)")
    return STATE_CODES[key]


def message(err: libvirt.libvirtError) -> str:
    return err.get_error_message() or str(err)


def safe_uri(uri: str) -> str:
    """The URI with any password in its user part removed (for logs, errors and assets)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def uri_host(uri: str) -> str:
    """The host a URI points at; ``localhost`` for local drivers (``qemu:///system``, ``test:///...``)."""
    return urlsplit(uri).hostname or "localhost"


def fail(action: str, err: libvirt.libvirtError) -> TaskError:
    return TaskError(f"{action} failed: {message(err)}")


@contextmanager
def errors(action: str) -> Iterator[None]:
    """Turn a libvirt error raised inside the block into a TaskError naming ``action``."""
    try:
        yield
    except libvirt.libvirtError as err:
        raise fail(action, err) from None


def _open(uri: str, username: str | None, password: str | None) -> libvirt.virConnect:
    if username is None and password is None:
        return libvirt.open(uri)

    def answer(credentials: list[list[Any]], _data: Any) -> int:
        for cred in credentials:
            if cred[0] == libvirt.VIR_CRED_AUTHNAME:
                cred[4] = username or ""
            elif cred[0] == libvirt.VIR_CRED_PASSPHRASE:
                cred[4] = password or ""
            else:
                return -1
        return 0

    auth = [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], answer, None]
    return libvirt.openAuth(uri, auth, 0)


def open_connection(
    ctx: RunContext,
    uri: str,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 30.0,
) -> libvirt.virConnect:
    """Connect to ``uri`` within ``timeout`` seconds; a kill stops the wait.

    libvirt's connect has no deadline of its own (an SSH or TCP peer that never
    answers blocks it forever), so it runs in a helper thread; a connection that
    arrives after we gave up is closed by that thread.
    """
    shown = safe_uri(uri)
    lock = threading.Lock()
    done = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            conn, err = _open(uri, username, password), None
        except libvirt.libvirtError as exc:
            conn, err = None, exc
        with lock:
            if box.get("abandoned"):
                if conn is not None:
                    _close(conn)
            else:
                box["conn"], box["error"] = conn, err
            done.set()

    threading.Thread(target=work, name=f"libvirt-connect {shown}", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.wait(max(0.0, min(0.1, deadline - time.monotonic()))):
        if ctx.killed() or time.monotonic() >= deadline:
            with lock:
                if done.is_set():
                    break
                box["abandoned"] = True
            if ctx.killed():
                ctx.sleep(0)  # raises the engine's kill exception
                raise TaskError(f"killed while connecting to libvirt at {shown}")
            raise TaskError(f"cannot connect to libvirt at {shown}: no answer within {timeout:g}s")
    err = box.get("error")
    if err is not None:
        if err.get_error_code() in _AUTH_ERRORS:
            raise TaskError(f"authentication to libvirt at {shown} failed: {message(err)}")
        raise TaskError(f"cannot connect to libvirt at {shown}: {message(err)}")
    return box["conn"]


def _close(conn: libvirt.virConnect) -> None:
    try:
        conn.close()
    except libvirt.libvirtError:
        pass


@contextmanager
def connection(ctx: RunContext, uri: str, **kw: Any) -> Iterator[libvirt.virConnect]:
    conn = open_connection(ctx, uri, **kw)
    try:
        yield conn
    finally:
        _close(conn)


def find_domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    """The domain called ``name``, or None when there is none."""
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise fail(f"looking up VM '{name}'", err) from None


def get_domain(conn: libvirt.virConnect, name: str, uri: str) -> libvirt.virDomain:
    """The domain called ``name``; a missing one is a TaskError with libvirt's message."""
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise TaskError(f"VM '{name}' not found on {safe_uri(uri)}: {message(err)}") from None
        raise fail(f"looking up VM '{name}'", err) from None


def current_state(dom: libvirt.virDomain) -> int:
    """The domain's state; a transient domain that vanished counts as shut off."""
    try:
        return dom.state()[0]
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return SHUTOFF
        raise fail(f"reading the state of VM '{dom.name()}'", err) from None


class DomainGone(TaskError):
    """The domain disappeared while we looked at it (a transient domain that stopped)."""


def describe(dom: libvirt.virDomain) -> dict[str, Any]:
    """What the outputs and assets say about a domain (snake_case keys)."""
    try:
        return _describe(dom)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise DomainGone(f"VM '{dom.name()}' no longer exists: {message(err)}") from None
        raise fail(f"reading VM '{dom.name()}'", err) from None


def _describe(dom: libvirt.virDomain) -> dict[str, Any]:
    state, max_kib, _cur_kib, vcpus, _cpu_time = dom.info()
    persistent = bool(dom.isPersistent())
    try:
        autostart = bool(dom.autostart()) if persistent else False
    except libvirt.libvirtError:
        autostart = False
    dom_id = dom.ID()
    return {
        "name": dom.name(),
        "uuid": dom.UUIDString(),
        "state": state_name(state),
        "id": dom_id if dom_id >= 0 else None,
        "active": state in ACTIVE_STATES,
        "persistent": persistent,
        "autostart": autostart,
        "vcpus": vcpus,
        "memory": max_kib // 1024,
    }


class WaitTimeout(TaskError):
    """A domain did not reach the expected state in time."""

    def __init__(self, message: str, last_state: int) -> None:
        super().__init__(message)
        self.last_state = last_state


def wait_for_state(
    ctx: RunContext,
    dom: libvirt.virDomain,
    targets: set[int],
    timeout: float,
    *,
    fail_states: set[int] | frozenset[int] = frozenset(),
    first_interval: float = 0.1,
    max_interval: float = 2.0,
) -> int:
    """Poll until the domain is in one of ``targets``; back off from 0.1 s to 2 s.

    Raises :class:`WaitTimeout` after ``timeout`` seconds, a TaskError when the
    domain lands in one of ``fail_states``; ``ctx.sleep`` ends the wait on kill.
    """
    deadline = time.monotonic() + timeout
    interval = first_interval
    wanted = " or ".join(sorted(state_name(s) for s in targets))
    while True:
        state = current_state(dom)
        if state in targets:
            return state
        if state in fail_states:
            raise TaskError(f"VM '{dom.name()}' entered state {state_name(state)} while waiting for {wanted}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(
                f"VM '{dom.name()}' did not reach {wanted} within {timeout:g}s (state is {state_name(state)})",
                state,
            )
        ctx.sleep(min(interval, remaining))
        interval = min(interval * 2, max_interval)
