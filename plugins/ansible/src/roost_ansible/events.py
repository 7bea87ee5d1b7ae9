"""Ansible job events: captured with ansible-runner's own machinery, summarised into task outputs.

ansible-playbook loads ansible-runner's ``awx_display`` stdout callback (copied
into the working folder, as ansible-runner does for containerised runs). The
callback writes each event's data to ``<artifact dir>/job_events/<uuid>-partial.json``
and marks the event's place in stdout with an escape-sequence token.
:class:`EventCapture` feeds the process's stdout and stderr, line by line as the
task runner reads them, through ansible-runner's ``OutputEventFilter`` and
``Runner.event_callback``: the tokens are stripped, each event is joined with
its data and its text, written to ``job_events/<counter>-<uuid>.json`` (the
ansible-runner artifact layout) and handed to us to log and keep.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from pathlib import Path
from typing import Any

#: Final per-host result events (loop items and async polls are summarised by these).
RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
_KEPT = {
    "playbook_on_start",
    "playbook_on_play_start",
    "playbook_on_task_start",
    "playbook_on_handler_task_start",
    "playbook_on_stats",
    *RESULT_EVENTS,
}
_WARNING_EVENTS = {"warning", "deprecated", "system_warning"}
_STAT_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failures",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}
LIGHT_LIMIT = 1024


class EventCapture:
    """Turns the two output streams of a run into logs and a list of Ansible job events."""

    def __init__(self, logger: Any, state_dir: Path) -> None:
        from ansible_runner import Runner, RunnerConfig
        from ansible_runner.utils import OutputEventFilter

        self.logger = logger
        self.config = RunnerConfig(
            private_data_dir=str(state_dir),
            artifact_dir=str(state_dir / "artifacts"),
            ident=uuid.uuid4().hex[:12],
            quiet=True,
        )
        self.runner = Runner(self.config, event_handler=self._on_event, remove_partials=True)
        self.artifact_dir = Path(self.config.artifact_dir)
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        """Ansible's error texts (``ERROR!``/``[ERROR]`` lines and error events)."""
        self.stderr_tail: deque[str] = deque(maxlen=3)
        """The last plain stderr lines (a shell's ``command not found``...)."""
        self._lock = threading.Lock()
        self._stream = "stdout"
        self._stderr_warning = False
        self._out = OutputEventFilter(
            None, lambda e: self._dispatch(e, "stdout"), suppress_ansible_output=True
        )
        self._err = OutputEventFilter(
            None, lambda e: self._dispatch(e, "stderr"), suppress_ansible_output=True
        )
        self._closed = False

    # -- streams ---------------------------------------------------------------------------------
    def stdout(self, line: str) -> None:
        self._out.write(line + "\n")

    def stderr(self, line: str) -> None:
        self._err.write(line + "\n")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.close()
            self._err.close()

    def _dispatch(self, event: dict[str, Any], stream: str) -> None:
        if "uuid" not in event:  # the filter's EOF marker
            return
        with self._lock:
            self._stream = stream
            self.runner.event_callback(event)

    # -- events ----------------------------------------------------------------------------------
    def _on_event(self, event: dict[str, Any]) -> bool:
        kind = event.get("event") or "verbose"
        self._log(kind, event)
        if kind in _KEPT:
            self.events.append(event)
        return kind != "verbose"  # ansible-runner writes the job event artifact for Ansible's own events

    def _log(self, kind: str, event: dict[str, Any]) -> None:
        text = (event.get("stdout") or "").strip("\r\n")
        if not text.strip():
            return
        data = event.get("event_data") or {}
        if kind == "runner_on_failed":
            level = "warning" if data.get("ignore_errors") else "error"
        elif kind == "runner_on_unreachable" or kind == "error":
            level = "error"
        elif kind in _WARNING_EVENTS:
            level = "warning"
        elif kind == "verbose" and self._stream == "stderr":
            level = self._stderr_level(text)
            if level == "error":
                self.stderr_tail.append(text.strip())
        else:
            level = "info"
        if kind == "error" or (kind == "verbose" and _is_error_line(text)):
            self.errors.append(text)
        getattr(self.logger, level)(text)

    def _stderr_level(self, text: str) -> str:
        """Ansible's multi-line warnings arrive line by line on stderr: keep their continuation lines at WARNING."""
        head = text.lstrip()
        if head.startswith(("[WARNING]", "[DEPRECATION WARNING]")):
            self._stderr_warning = True
        elif head.startswith("[") or _is_error_line(head):
            self._stderr_warning = False
        return "warning" if self._stderr_warning else "error"


def _is_error_line(text: str) -> bool:
    head = text.lstrip()
    return head.startswith(("ERROR!", "[ERROR]"))


# -- summaries -------------------------------------------------------------------------------------
def _clip(value: Any, limit: int = LIGHT_LIMIT, tail: bool = False) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= limit:
        return text
    return ("…" + text[-limit:]) if tail else (text[:limit] + "…")


def light_result(res: dict[str, Any], failed: bool) -> dict[str, Any]:
    """The part of a module result kept in outputs: flags, return code, a bounded message and stderr tail."""
    if not isinstance(res, dict):
        return {}
    light = {k: res[k] for k in ("changed", "failed", "skipped", "unreachable", "rc", "censored") if k in res}
    if res.get("msg") not in (None, ""):
        light["msg"] = _clip(res["msg"])
    stderr = res.get("stderr")
    if failed and isinstance(stderr, str) and stderr:
        light["stderr"] = _clip(stderr, tail=True)
    items = res.get("results")
    if isinstance(items, list):
        light["results"] = [
            light_result(item, bool(item.get("failed") or item.get("unreachable")))
            if isinstance(item, dict)
            else item
            for item in items
        ]
    return light


def result_message(res: dict[str, Any], failed: bool) -> str | None:
    """A one-line reason for a result: its ``msg``, plus the stderr tail of a failed command."""
    if not isinstance(res, dict):
        return None
    msg = res.get("msg")
    msg = None if msg in (None, "") else _clip(msg)
    if res.get("censored"):
        msg = msg or str(res["censored"])
    stderr = res.get("stderr")
    if failed and isinstance(stderr, str) and stderr.strip():
        tail = _clip(stderr.strip(), limit=300, tail=True)
        msg = f"{msg}: {tail}" if msg else tail
    return msg


def summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-host stats, a flat list of per-host task results, and Kestra's nested ``playbooks`` shape."""
    playbooks: dict[str, dict[str, Any]] = {}
    plays: dict[str, dict[str, Any]] = {}
    tasks: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    stats: dict[str, dict[str, int]] = {}

    def playbook_of(data: dict[str, Any]) -> dict[str, Any]:
        key = str(data.get("playbook_uuid") or "")
        if key not in playbooks:
            playbooks[key] = {"name": data.get("playbook"), "plays": []}
        return playbooks[key]

    def play_of(data: dict[str, Any]) -> dict[str, Any]:
        key = str(data.get("play_uuid") or "")
        if key not in plays:
            plays[key] = {"name": data.get("name") or data.get("play") or "implicit_play", "tasks": []}
            playbook_of(data)["plays"].append(plays[key])
        return plays[key]

    def task_of(data: dict[str, Any]) -> dict[str, Any]:
        key = str(data.get("task_uuid") or "")
        if key not in tasks:
            play = play_of(data)
            name = data.get("task") or data.get("task_action") or f"unnamed_task_{len(tasks) + 1}"
            tasks[key] = {"uid": f"play:{play['name']}|task:{name}", "name": name, "hosts": []}
            play["tasks"].append(tasks[key])
        return tasks[key]

    for event in events:
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_start":
            playbook_of(data)
        elif kind == "playbook_on_play_start":
            play_of({**data, "play_uuid": data.get("play_uuid") or data.get("uuid")})
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            task_of({**data, "task_uuid": data.get("task_uuid") or data.get("uuid")})
        elif kind in RESULT_EVENTS:
            status = RESULT_EVENTS[kind]
            res = data.get("res") if isinstance(data.get("res"), dict) else {}
            failed = status in ("failed", "unreachable")
            task = task_of(data)
            host = str(data.get("host") or data.get("remote_addr") or "")
            start, end = data.get("start"), data.get("end")
            if start and (not task.get("startedAt") or start < task["startedAt"]):
                task["startedAt"] = start
            if end and (not task.get("endedAt") or end > task["endedAt"]):
                task["endedAt"] = end
            task["hosts"].append({"host": host, "status": status, "result": light_result(res, failed)})
            results.append(
                {
                    "playbook": data.get("playbook"),
                    "play": data.get("play"),
                    "task": task["name"],
                    "action": data.get("resolved_action") or data.get("task_action"),
                    "host": host,
                    "status": status,
                    "changed": bool(res.get("changed", False)),
                    "ignored": bool(status == "failed" and data.get("ignore_errors")),
                    "msg": result_message(res, failed),
                    "startedAt": start,
                    "endedAt": end,
                }
            )
        elif kind == "playbook_on_stats":
            seen: set[str] = set()
            for key in (*_STAT_KEYS, "processed"):
                if isinstance(data.get(key), dict):
                    seen.update(str(h) for h in data[key])
            for host in sorted(seen):
                row = stats.setdefault(host, dict.fromkeys(_STAT_KEYS.values(), 0))
                for key, name in _STAT_KEYS.items():
                    value = (data.get(key) or {}).get(host, 0) if isinstance(data.get(key), dict) else 0
                    row[name] += int(value or 0)
    return {"stats": stats, "tasks": results, "playbooks": list(playbooks.values())}


def failure_lines(summary: dict[str, Any], limit: int = 5) -> list[str]:
    """Human-readable lines naming each host and task that failed (errors ignored by the playbook excluded)."""
    lines = []
    for r in summary["tasks"]:
        if r["status"] == "failed" and not r["ignored"]:
            lines.append(
                f"host '{r['host']}' failed task '{r['task']}'" + (f": {r['msg']}" if r["msg"] else "")
            )
        elif r["status"] == "unreachable":
            lines.append(
                f"host '{r['host']}' was unreachable at task '{r['task']}'"
                + (f": {r['msg']}" if r["msg"] else "")
            )
    if len(lines) > limit:
        lines = [*lines[:limit], f"and {len(lines) - limit} more"]
    return lines
