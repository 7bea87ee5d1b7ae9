"""jq programs run in helper processes, within the render's budget.

The jq library runs a program in one C call that holds the GIL: ``[limit(1e9; repeat(1))]`` or
``def f: f; f`` would freeze the whole server (every thread) and could take all its memory. So a
program runs in a small pool of helper processes (``python -m roost.expr.jq_runner``), each with a
memory limit; the caller waits until the render's deadline and kills a helper that has not
answered. A helper is started on first use (about 0.1 s, not counted in the render's time) and then reused.

Frames on the pipes: 4-byte big-endian length, then the bytes. A request is two frames (a JSON
header ``{"program", "max"}``, then the input text); an answer is one JSON frame: ``{"ok": [...]}``,
``{"error": "..."}`` or ``{"tooLarge": n}``.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from roost.expr.budget import Budget

MEMORY_LIMIT = 1024 * 1024 * 1024  # address space of a helper
MAX_IDLE = 4  # helpers kept for reuse


class JqError(ValueError):
    """A program failed, or was stopped (time, size, memory)."""


class JqTimeout(JqError):
    """The helper did not answer before the deadline: it was killed."""


class JqTooLarge(JqError):
    """The results are larger than the caller may receive."""


# -- the caller's side ------------------------------------------------------------------------------
class _Helper:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roost.expr.jq_runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        try:  # the helper says it is ready once jq is imported
            if self._read(time.monotonic() + 60) != b"ready":
                raise JqError("the jq helper process did not start")
        except JqError:
            self.kill()
            raise

    def _read(self, deadline: float) -> bytes:
        """One frame from the helper, waiting until ``deadline`` at most."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        data = b""
        need = 4
        size: int | None = None
        while True:
            while len(data) < need:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise JqTimeout("jq did not finish in time")
                chunk = os.read(fd, max(need - len(data), 65536))
                if not chunk:
                    raise JqError("the jq helper process ended (out of memory?)")
                data += chunk
            if size is None:
                size = struct.unpack(">I", data[:4])[0]
                need = 4 + size
                continue
            return data[4 : 4 + size]

    def call(self, program: str, text: str, timeout: float, max_size: int) -> list[Any]:
        assert self.proc.stdin is not None
        header = json.dumps({"program": program, "max": max_size}).encode()
        body = text.encode("utf-8", "surrogatepass")
        try:
            self.proc.stdin.write(_frame(header) + _frame(body))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise JqError("the jq helper process ended") from None
        answer = json.loads(self._read(time.monotonic() + timeout))
        if "ok" in answer:
            return answer["ok"]  # type: ignore[no-any-return]
        if "tooLarge" in answer:
            raise JqTooLarge(f"the results of jq are {answer['tooLarge']:,} characters")
        raise JqError(answer.get("error", "jq failed"))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


_idle: list[_Helper] = []
_lock = threading.Lock()


def run(program: str, text: str, budget: Budget) -> list[Any]:
    """Every result of ``program`` on the JSON ``text``, within ``budget``; raises :class:`JqError`."""
    with _lock:
        helper = _idle.pop() if _idle else None
    if helper is None or helper.proc.poll() is not None:
        started = time.monotonic()
        helper = _Helper()
        budget.deadline += time.monotonic() - started  # starting a helper is not the program's time
    try:
        results = helper.call(program, text, max(budget.time_left(), 0.001), max(budget.remaining, 0))
    except (JqTimeout, JqError) as exc:
        if isinstance(exc, JqTimeout) or helper.proc.poll() is not None:
            helper.kill()  # stuck or gone: never reused
            raise
        _release(helper)
        raise
    _release(helper)
    return results


def _release(helper: _Helper) -> None:
    with _lock:
        if len(_idle) < MAX_IDLE:
            _idle.append(helper)
            return
    helper.kill()


@atexit.register
def _stop_all() -> None:
    with _lock:
        helpers, _idle[:] = list(_idle), []
    for helper in helpers:
        helper.kill()


def _frame(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


# -- the helper's side -------------------------------------------------------------------------------
def _read_frame(stream: Any) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    return stream.read(size)  # type: ignore[no-any-return]


def main() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import jq

    programs: dict[str, Any] = {}
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(_frame(b"ready"))
    stdout.flush()
    while True:
        header = _read_frame(stdin)
        body = _read_frame(stdin)
        if header is None or body is None:
            return
        request = json.loads(header)
        try:
            program = programs.get(request["program"])
            if program is None:
                program = programs[request["program"]] = jq.compile(request["program"])
                if len(programs) > 256:
                    programs.pop(next(iter(programs)))
            answer = json.dumps({"ok": program.input_text(body.decode("utf-8", "surrogatepass")).all()})
            if len(answer) > request["max"]:
                answer = json.dumps({"tooLarge": len(answer)})
        except MemoryError:
            answer = json.dumps({"error": "jq ran out of memory"})
        except Exception as exc:  # jq reports a bad program or input as ValueError
            answer = json.dumps({"error": str(exc)})
        stdout.write(_frame(answer.encode()))
        stdout.flush()


if __name__ == "__main__":
    main()
