"""``roostctl executions``: run (and wait), get, list and kill executions; ``roostctl logs``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

from roost.cli.ctl_base import CtlGroup, ctl, parse_pairs
from roost.cli.ctl_client import TERMINAL, CtlError, WaitTimeout, filters, seg
from roost.cli.ctl_render import Renderer, duration

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
LEVEL_STYLE = {"TRACE": "dim", "DEBUG": "dim", "INFO": "cyan", "WARN": "yellow", "ERROR": "red"}


@click.group("executions", cls=CtlGroup, aliases=("execution", "ex"))
def executions() -> None:
    """Run flows (and wait for the end), get, list and kill executions."""


def _summary(out: Renderer, ex: dict[str, Any], title: str) -> None:
    state = ex.get("state") or {}
    rows = [
        ("Execution ID", ex.get("id")), ("Namespace", ex.get("namespace")), ("Flow", ex.get("flowId")),
        ("Revision", ex.get("flowRevision")), ("State", out.state(state.get("current"))),
        ("Started", state.get("startDate")), ("Ended", state.get("endDate")), ("Duration", duration(state)),
    ]  # fmt: skip
    labels = ex.get("labels") or []
    if labels:
        rows.append(("Labels", ", ".join(f"{lbl.get('key')}={lbl.get('value')}" for lbl in labels)))
    if ex.get("trigger"):
        rows.append(("Trigger", f"{ex['trigger'].get('id')} ({ex['trigger'].get('type')})"))
    if ex.get("outputs"):
        import json

        rows.append(("Outputs", json.dumps(ex["outputs"], default=str)))
    if ex.get("error"):
        rows.append(("Error", ex["error"]))
    if ex.get("url"):
        rows.append(("URL", ex["url"]))
    out.line(f"[bold]{title}[/]")
    out.table(["", ""], [(k, v) for k, v in rows if v not in (None, "")])
    runs = ex.get("taskRunList") or []
    if runs:
        out.line("")
        out.table(["TASK", "VALUE", "STATE", "DURATION", "ERROR"],
                  [(tr.get("taskId"), tr.get("value"), out.state((tr.get("state") or {}).get("current")),
                    duration(tr.get("state") or {}), _task_error(tr)) for tr in runs])  # fmt: skip


def _task_error(tr: dict[str, Any]) -> str | None:
    if (tr.get("state") or {}).get("current") not in ("FAILED", "KILLED"):
        return None
    for attempt in reversed(tr.get("attempts") or []):
        if isinstance(attempt, dict) and attempt.get("error"):
            return str(attempt["error"])
    engine: dict[str, Any] = tr["_engine"] if isinstance(tr.get("_engine"), dict) else {}
    return tr.get("error") or engine.get("error")


@executions.command("run", aliases=("trigger", "execute"))
@click.argument("namespace")
@click.argument("flow_id")
@click.option("--wait", "-w", is_flag=True, help="Wait for the end; exit 1 unless it ends in SUCCESS.")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An input (repeatable); KEY=@path uploads a file.",
)
@click.option("--label", "-l", "labels", multiple=True, metavar="KEY=VALUE", help="A label (repeatable).")
@click.option("--revision", type=int, help="Run this revision of the flow instead of the latest.")
@click.option("--schedule-date", help="Start at this date (ISO-8601) instead of now.")
@click.option(
    "--timeout",
    type=float,
    help="With --wait, stop waiting after this many seconds: the execution (still "
    "running) is printed and the exit code is 1.",
)
def executions_run(namespace: str, flow_id: str, wait: bool, inputs: tuple[str, ...], labels: tuple[str, ...],
                   revision: int | None, schedule_date: str | None, timeout: float | None) -> None:  # fmt: skip
    """Start an execution of a flow; with --wait, wait for its end and print the final execution."""
    c = ctl()
    values = parse_pairs(inputs, "--input")
    label_map = parse_pairs(labels, "--label")
    parts: list[tuple[str, Any]] = []
    handles = []
    timed_out: dict[str, Any] | None = None
    try:
        for key, value in values.items():
            if value.startswith("@"):
                local = Path(value[1:]).expanduser()
                if not local.is_file():
                    raise click.BadParameter(f"no such file for input {key!r}: {local}", param_hint="--input")
                fh = local.open("rb")
                handles.append(fh)
                parts.append((key, (local.name, fh, "application/octet-stream")))
            else:
                parts.append((key, (None, value.encode())))
        # With --timeout, create without the server-side wait and poll: the id is known when time runs out.
        server_wait = wait and timeout is None
        params: list[tuple[str, Any]] = [("wait", "true" if server_wait else "false")]
        params += [("labels", f"{k}:{v}") for k, v in label_map.items()]
        if revision:
            params.append(("revision", revision))
        if schedule_date:
            params.append(("scheduleDate", schedule_date))
        url = f"/executions/{seg(namespace)}/{seg(flow_id)}"
        request_timeout = httpx.Timeout(30.0, read=None) if server_wait else 60.0
        with c.out.status(f"Running {namespace}.{flow_id}..." if wait else "Starting...") as status:
            try:
                ex = c.client.request(
                    "POST", url, params=params, files=parts or None, timeout=request_timeout
                ).json()
            except CtlError as exc:
                if exc.status == 422 and isinstance(exc.body, dict) and exc.body.get("inputs"):
                    details = "; ".join(f"{k}: {v}" for k, v in exc.body["inputs"].items())
                    raise CtlError(
                        f"{exc.message} ({details})" if details not in exc.message else exc.message
                    ) from None
                raise
            if wait and (ex.get("state") or {}).get("current") not in TERMINAL:
                status.update(f"Execution {ex.get('id')} {ex.get('state', {}).get('current')}...")
                try:
                    ex = c.client.wait_execution(ex["id"], timeout,
                                                 on_state=lambda s: status.update(f"Execution {ex.get('id')} {s}..."))  # fmt: skip
                except WaitTimeout as late:
                    timed_out = late.execution
    finally:
        for fh in handles:
            fh.close()
    if timed_out is not None:
        _print_execution(c.out, timed_out, "Execution still running")
        c.out.error(f"execution {timed_out.get('id')} did not end within {timeout or 0:g} s "
                    f"(state {(timed_out.get('state') or {}).get('current')})")  # fmt: skip
        raise click.exceptions.Exit(1)
    state = (ex.get("state") or {}).get("current")
    _print_execution(c.out, ex, "Execution finished" if wait else "Execution created")
    if wait and state != "SUCCESS":
        raise click.exceptions.Exit(1)


def _print_execution(out: Renderer, ex: dict[str, Any], title: str) -> None:
    if out.json_mode:
        out.json(ex)
    else:
        _summary(out, ex, title)


@executions.command("get", aliases=("show", "describe"))
@click.argument("execution_id")
def executions_get(execution_id: str) -> None:
    """Show an execution: state, timing, labels, outputs and task runs."""
    c = ctl()
    ex = c.client.execution(execution_id)
    if c.out.json_mode:
        c.out.json(ex)
    else:
        _summary(c.out, ex, "Execution")


@executions.command("list", aliases=("ls", "search"))
@click.option("--namespace", "-n", help="Namespace (and its children).")
@click.option("--flow-id", "-f", help="Flow id.")
@click.option("--state", "-s", "states", multiple=True, help="Only these states (repeatable).")
@click.option(
    "--label", "-l", "labels", multiple=True, metavar="KEY=VALUE", help="Label to match (repeatable)."
)
@click.option("--query", "-q", help="Free-text filter.")
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--size", type=int, default=25, show_default=True)
def executions_list(namespace: str | None, flow_id: str | None, states: tuple[str, ...], labels: tuple[str, ...],
                    query: str | None, page: int, size: int) -> None:  # fmt: skip
    """List executions, newest first."""
    c = ctl()
    params = filters(namespace=("PREFIX", namespace) if namespace else None, flowId=flow_id,
                     state=[s.upper() for s in states] or None, labels=parse_pairs(labels, "--label") or None,
                     q=query)  # fmt: skip
    body = c.client.get("/executions/search", params=[*params, ("page", page), ("size", size)])
    results = body.get("results") or []
    if c.out.json_mode:
        c.out.json(body)
        return
    c.out.table(["ID", "NAMESPACE", "FLOW", "STATE", "STARTED", "DURATION"],
                [(e.get("id"), e.get("namespace"), e.get("flowId"), c.out.state((e.get("state") or {}).get("current")),
                  (e.get("state") or {}).get("startDate"), duration(e.get("state") or {})) for e in results],
                footer=f"\nShowing {len(results)} execution(s) (page {page}, total {body.get('total', len(results))})")  # fmt: skip


@executions.command("kill", aliases=("cancel",))
@click.argument("execution_ids", nargs=-1, required=True)
@click.option("--cascade/--no-cascade", default=True, show_default=True,
              help="Also kill the subflow executions they started (--cascade=false: only these executions).")  # fmt: skip
@click.option("--wait", "-w", is_flag=True, help="Wait until the executions are KILLED.")
@click.option("--timeout", type=float, default=120, show_default=True, help="With --wait, seconds to wait.")
def executions_kill(execution_ids: tuple[str, ...], cascade: bool, wait: bool, timeout: float) -> None:
    """Kill running executions (their running tasks are stopped)."""
    c = ctl()
    results = []
    failed = 0
    for ex_id in execution_ids:
        try:
            c.client.request("DELETE", f"/executions/{seg(ex_id)}/kill",
                             params={"isOnKillCascade": "true" if cascade else "false"})  # fmt: skip
            state: str | None = "KILLING"
            if wait:
                state = (c.client.wait_execution(ex_id, timeout).get("state") or {}).get("current")
            results.append({"id": ex_id, "state": state, "success": True})
        except CtlError as exc:
            if exc.code in (3, 5) or len(execution_ids) == 1:
                raise
            failed += 1
            results.append({"id": ex_id, "state": None, "success": False, "error": exc.message})
    if c.out.json_mode:
        c.out.json(results[0] if len(results) == 1 else results)
    elif len(results) == 1 and results[0]["success"]:
        r = results[0]
        c.out.line(
            f"Execution '{r['id']}' {'killed' if r['state'] == 'KILLED' else 'kill requested'} ({r['state']})."
        )
    else:
        c.out.table(["EXECUTION", "STATE", "ERROR"], [(r["id"], r["state"], r.get("error")) for r in results])
    if failed:
        raise click.exceptions.Exit(1)


@executions.command("restart")
@click.argument("execution_id")
def executions_restart(execution_id: str) -> None:
    """Restart a failed execution from its failed tasks."""
    c = ctl()
    ex = c.client.request("POST", f"/executions/{seg(execution_id)}/restart").json()
    c.out.result(ex, f"Execution '{execution_id}' restarted ({(ex.get('state') or {}).get('current')}).")


@executions.command("resume")
@click.argument("execution_id")
def executions_resume(execution_id: str) -> None:
    """Resume a paused execution."""
    c = ctl()
    c.client.request("POST", f"/executions/{seg(execution_id)}/resume")
    c.out.result({"id": execution_id, "status": "resumed"}, f"Execution '{execution_id}' resumed.")


@executions.command("pause")
@click.argument("execution_id")
def executions_pause(execution_id: str) -> None:
    """Pause a running execution (resume it with `executions resume`)."""
    c = ctl()
    c.client.request("POST", f"/executions/{seg(execution_id)}/pause")
    c.out.result({"id": execution_id, "status": "paused"}, f"Execution '{execution_id}' paused.")


@executions.command("replay")
@click.argument("execution_id")
@click.option("--task-run-id", help="Replay from this task run: it and what follows run again.")
@click.option("--revision", type=int, help="Replay on this revision of the flow.")
@click.option(
    "--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE", help="Replay with new inputs (repeatable)."
)
def executions_replay(
    execution_id: str, task_run_id: str | None, revision: int | None, inputs: tuple[str, ...]
) -> None:
    """Replay an execution as a new execution (same inputs and labels unless --input)."""
    c = ctl()
    params: dict[str, Any] = {}
    if task_run_id:
        params["taskRunId"] = task_run_id
    if revision:
        params["revision"] = revision
    values = parse_pairs(inputs, "--input")
    if values:
        parts = [(k, (None, v.encode())) for k, v in values.items()]
        ex = c.client.request(
            "POST", f"/executions/{seg(execution_id)}/replay-with-inputs", params=params, files=parts
        ).json()
    else:
        ex = c.client.request("POST", f"/executions/{seg(execution_id)}/replay", params=params).json()
    c.out.result(
        ex,
        f"Execution '{execution_id}' replayed as '{ex.get('id')}' ({(ex.get('state') or {}).get('current')}).",
    )


@executions.command("force-run")
@click.argument("execution_id")
def executions_force_run(execution_id: str) -> None:
    """Run a queued or created execution now, whatever the concurrency limit (a paused one resumes)."""
    c = ctl()
    ex = c.client.request("POST", f"/executions/{seg(execution_id)}/force-run").json()
    c.out.result(
        ex, f"Execution '{execution_id}' force-run requested ({(ex.get('state') or {}).get('current')})."
    )


@executions.command("unqueue")
@click.argument("execution_id")
@click.option("--state", type=click.Choice(["RUNNING", "CANCELLED", "FAILED"], case_sensitive=False),
              help="What the execution becomes (RUNNING by default).")  # fmt: skip
def executions_unqueue(execution_id: str, state: str | None) -> None:
    """Take a queued execution out of the queue."""
    c = ctl()
    params = {"state": state.upper()} if state else {}
    ex = c.client.request("POST", f"/executions/{seg(execution_id)}/unqueue", params=params).json()
    c.out.result(ex, f"Execution '{execution_id}' unqueued ({(ex.get('state') or {}).get('current')}).")


@executions.command("delete", aliases=("rm", "del"))
@click.argument("execution_id")
@click.option("--delete-logs/--keep-logs", default=True, show_default=True, help="Delete its logs too.")
@click.option(
    "--delete-storage/--keep-storage", default=True, show_default=True, help="Delete its files too."
)
def executions_delete(execution_id: str, delete_logs: bool, delete_storage: bool) -> None:
    """Delete an ended execution."""
    c = ctl()
    params = {"deleteLogs": str(delete_logs).lower(), "deleteStorage": str(delete_storage).lower()}
    c.client.request("DELETE", f"/executions/{seg(execution_id)}", params=params)
    c.out.result({"id": execution_id, "status": "deleted"}, f"Execution '{execution_id}' deleted.")


@executions.command("change-status")
@click.argument("execution_id")
@click.argument("status")
def executions_change_status(execution_id: str, status: str) -> None:
    """Set the (end) state of an ended execution (SUCCESS, FAILED, KILLED...)."""
    c = ctl()
    ex = c.client.request(
        "POST", f"/executions/{seg(execution_id)}/change-status", params={"status": status.upper()}
    ).json()
    c.out.result(
        ex, f"Execution '{execution_id}' status changed to {(ex.get('state') or {}).get('current')}."
    )


@executions.command("set-labels")
@click.argument("execution_id")
@click.argument("labels", nargs=-1, required=True, metavar="KEY=VALUE...")
def executions_set_labels(execution_id: str, labels: tuple[str, ...]) -> None:
    """Add (or overwrite) labels of an ended execution."""
    c = ctl()
    body = [{"key": k, "value": v} for k, v in parse_pairs(labels, "LABELS").items()]
    c.client.request("POST", f"/executions/{seg(execution_id)}/labels", json=body)
    c.out.result(
        {"id": execution_id, "labels": len(body)}, f"Set {len(body)} label(s) on execution '{execution_id}'."
    )


# -- logs ---------------------------------------------------------------------------------------------------------
def _print_log(out: Renderer, record: dict[str, Any]) -> None:
    level = record.get("level") or "INFO"
    stamp = str(record.get("timestamp") or "")
    task = record.get("taskId") or "-"
    out.out.print(f"[dim]{stamp}[/] [{LEVEL_STYLE.get(level, 'white')}]{level:<5}[/] [bold]{task}[/] ", end="",
                  markup=True, highlight=False)  # fmt: skip
    out.out.print(str(record.get("message") or ""), markup=False, highlight=False, soft_wrap=True)


@click.command("logs", cls=executions.command_class)
@click.argument("execution_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new logs until the execution ends.")
@click.option("--level", "min_level", type=click.Choice(LEVELS, case_sensitive=False), help="Minimum level.")
@click.option("--task-id", help="Only the logs of this task.")
@click.option(
    "--interval", type=float, default=0.5, show_default=True, help="With --follow, seconds between polls."
)
def logs(
    execution_id: str, follow: bool, min_level: str | None, task_id: str | None, interval: float
) -> None:
    """Print the logs of an execution (with --follow, until it ends)."""
    c = ctl()
    params: dict[str, Any] = {}
    if min_level:
        params["minLevel"] = min_level.upper()
    if task_id:
        params["taskId"] = task_id
    path = f"/logs/{seg(execution_id)}"
    if not follow:
        records = c.client.get(path, params=params)
        if c.out.json_mode:
            c.out.json(records)
        else:
            for r in records:
                _print_log(c.out, r)
        return
    seen = 0
    while True:
        state = (c.client.execution(execution_id).get("state") or {}).get("current")
        records = c.client.get(path, params=params)
        for r in records[seen:]:
            if c.out.json_mode:
                import json

                sys.stdout.write(json.dumps(r, default=str) + "\n")
                sys.stdout.flush()
            else:
                _print_log(c.out, r)
        seen = max(seen, len(records))
        if state in TERMINAL:
            if not c.out.json_mode:
                c.out.note(f"execution {execution_id} ended: {state}")
            return
        time.sleep(interval)


COMMANDS = [executions, logs]
