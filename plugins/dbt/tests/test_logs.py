"""dbt's JSON log lines turned into task logs, metrics, warnings and failure messages (no dbt run)."""

from __future__ import annotations

import json

from roost.testing import run_task
from roost_dbt.tasks import DbtCLI


def echo(payload: dict) -> str:
    """A shell command printing ``payload`` as one JSON line (printf: dash's echo expands backslashes)."""
    return "printf '%s\\n' '" + json.dumps(payload) + "'"


def line(level: str, msg: str, **data) -> dict:
    return {"data": data, "info": {"level": level, "msg": msg, "name": "Event", "ts": "2026-01-01T00:00:00Z"}}


def test_levels_stats_and_passthrough():
    result = run_task(
        DbtCLI,
        commands=[
            echo(line("info", "\x1b[32mCompleted successfully\x1b[0m")),
            echo(line("debug", "a debug detail")),
            echo(line("info", "")),
            echo(line("info", "Done. PASS=2 ERROR=0", stats={"pass": 2, "error": 0})),
            "echo plain text line",
            "echo '{not json'",
        ],
    )
    assert result.state == "SUCCESS"
    logs = [(log["level"], log["message"]) for log in result.logs]
    assert ("INFO", "Completed successfully") in logs
    assert ("DEBUG", "a debug detail") in logs
    assert ("INFO", "Done. PASS=2 ERROR=0") in logs
    assert ("INFO", "plain text line") in logs
    assert ("INFO", "{not json") in logs
    assert not any(message == "" for _, message in logs)
    metrics = {m["name"]: m["value"] for m in result.context.metrics}
    assert metrics == {"pass": 2.0, "error": 0.0}


def test_dbt_warning_line_ends_in_warning():
    result = run_task(
        DbtCLI,
        commands=[echo(line("warn", "[WARNING]: Deprecated functionality\nmore detail")), "echo after"],
        raise_on_failure=False,
    )
    assert result.state == "WARNING"
    assert result.error == "dbt logged 1 warning(s), the first: [WARNING]: Deprecated functionality"
    assert ("WARN", "[WARNING]: Deprecated functionality\nmore detail") in [
        (log["level"], log["message"]) for log in result.logs
    ]
    assert result.outputs["exitCode"] == 0


def test_error_lines_make_the_failure_message():
    result = run_task(
        DbtCLI,
        commands=[
            echo(line("info", "Running with dbt=1.11.0")),
            echo(line("error", "Compilation Error in model orders (models/orders.sql)")),
            "exit 2",
        ],
        raise_on_failure=False,
    )
    assert result.state == "FAILED"
    assert (
        result.error == "dbt failed with exit code 2: Compilation Error in model orders (models/orders.sql)"
    )
    assert ("ERROR", "Compilation Error in model orders (models/orders.sql)") in [
        (log["level"], log["message"]) for log in result.logs
    ]


def test_text_log_format_passes_lines_through():
    result = run_task(DbtCLI, logFormat="TEXT", commands=["echo '12:00:00  Running with dbt=1.11.0'"])
    assert "12:00:00  Running with dbt=1.11.0" in result.messages
