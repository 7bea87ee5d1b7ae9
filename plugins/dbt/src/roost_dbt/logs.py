"""dbt's structured logs (``--log-format json``) turned into task logs at dbt's own level.

The core's task runners hand every output line to ``ctx.logger.info`` (stdout)
or ``ctx.logger.error`` (stderr). :class:`DbtContext` wraps the run context so
those lines reach :class:`DbtLogRouter` first: a dbt JSON line is logged as its
message at the level dbt gave it, its ``StatsLine`` counters become metrics,
warnings are remembered (the task then ends in WARNING, as in Kestra) and
error messages are kept for the failure message. Anything else passes through.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from pathlib import Path
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


class DbtLogRouter:
    """A logger facade: parses dbt JSON log lines, passes other lines to the task logger."""

    def __init__(self, logger: Any, ctx: Any) -> None:
        self._logger = logger
        self._ctx = ctx
        self._lock = threading.Lock()
        self.warnings: list[str] = []
        self.errors: deque[str] = deque(maxlen=20)
        self.tail: deque[str] = deque(maxlen=6)

    # What the core's LineHandler calls for stdout / stderr lines.
    def info(self, message: str, *args: Any) -> None:
        self._line(message, "info", args)

    def error(self, message: str, *args: Any) -> None:
        self._line(message, "error", args)

    def warning(self, message: str, *args: Any) -> None:
        self._logger.warning(message, *args)

    warn = warning

    def debug(self, message: str, *args: Any) -> None:
        self._logger.debug(message, *args)

    def trace(self, message: str, *args: Any) -> None:
        self._logger.trace(message, *args)

    def exception(self, message: str, *args: Any) -> None:
        self._logger.error(message, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)

    def _line(self, line: str, default: str, args: tuple[Any, ...]) -> None:
        if args:  # a message of the task itself, not a line of the process
            getattr(self._logger, default)(line, *args)
            return
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                payload = json.loads(stripped)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and self._dbt(payload):
                return
        text = strip_ansi(line)
        with self._lock:
            if stripped:
                self.tail.append(text.strip())
            if default == "error" and stripped:
                self.errors.append(text.rstrip())
        getattr(self._logger, default)(text)

    def _dbt(self, payload: dict[str, Any]) -> bool:
        """Log one dbt JSON event; False when the payload is not one."""
        info = payload.get("info")
        if isinstance(info, dict):  # dbt >= 1.5
            level, msg = info.get("level"), info.get("msg")
        elif "level" in payload and "msg" in payload:  # older dbt and dbt Fusion
            level, msg = payload.get("level"), payload.get("msg")
        else:
            return False
        data = payload.get("data")
        if isinstance(data, dict) and isinstance(data.get("stats"), dict):
            for name, value in data["stats"].items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._ctx.metric(str(name), float(value))
        text = strip_ansi(str(msg or "")).rstrip()
        if not text.strip():
            return True  # dbt's blank separator lines
        level = str(level or "info").lower()
        if level != "debug":
            with self._lock:
                self.tail.append(text.strip())
        if level == "debug":
            self._logger.debug(text)
        elif level == "info":
            self._logger.info(text)
        elif level in ("warn", "warning"):
            with self._lock:
                self.warnings.append(text)
            self._logger.warning(text)
        else:
            with self._lock:
                self.errors.append(text)
            self._logger.error(text)
        return True


class DbtContext:
    """The run context as the dbt task hands it to the core's script machinery.

    Everything is delegated to the real context except ``logger`` (a
    :class:`DbtLogRouter`); it also carries the state of one run, so a task
    definition shared by concurrent runs keeps nothing on itself.
    """

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self.logger = DbtLogRouter(ctx.logger, ctx)
        self.project_dir: Path | None = None
        self.artifacts_before: dict[str, tuple[int, int] | None] = {}

    @property
    def working_dir(self) -> Path:
        return self._ctx.working_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)
