"""Blocking calls that a kill of the execution abandons at once (a request in flight, an SDK call).

A task's client makes a :class:`KillGate`, registers :meth:`KillGate.kill` with ``ctx.on_kill``, and runs
each blocking call through :meth:`KillGate.run`: the call goes to a helper thread and the task's thread
waits for it or for the kill, whichever comes first. What the abandoned thread does afterwards is
discarded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class KillGate:
    def __init__(self, on_kill: Callable[[], None] | None = None) -> None:
        self.killed = threading.Event()
        self._on_kill = on_kill  # more to do when killed (close a connection pool...)
        self._waiter: threading.Event | None = None
        self._lock = threading.Lock()

    def kill(self) -> None:
        """Wake the call being waited for; every later :meth:`run` is refused."""
        self.killed.set()
        with self._lock:
            waiter = self._waiter
        if waiter is not None:
            waiter.set()
        if self._on_kill is not None:
            try:
                self._on_kill()
            except Exception:  # closing what a helper thread still uses may complain
                pass

    def run(self, work: Callable[[], T], refuse: Callable[[], NoReturn], name: str = "call") -> T:
        """``work()`` on a helper thread: its result, or its exception; ``refuse()`` (which raises) once
        killed without a result."""
        if self.killed.is_set():
            refuse()
        done = threading.Event()
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = work()
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        with self._lock:
            self._waiter = done
        try:
            threading.Thread(target=target, name=name, daemon=True).start()
            done.wait()
        finally:
            with self._lock:
                self._waiter = None
        if "result" in box:
            return box["result"]
        if "error" in box and not self.killed.is_set():
            raise box["error"]
        refuse()
