"""Constants and helpers shared by the Argo CD tests (a uniquely named module, unlike conftest)."""

from __future__ import annotations

import threading
import time

from roost.testing import Runtime, TaskRunContext

TOKEN = "argocd-admin-token-7c1f0e2b"
READONLY = "argocd-readonly-token-19ab44"
PASSWORD = "s3cr3t-Passw0rd-argo"
SECRETS = (TOKEN, READONLY, PASSWORD)


def assert_no_secret(result) -> None:
    texts = [log["message"] for log in result.logs] + [str(result.outputs), str(result.error or "")]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret leaked in: {text!r}"


def start(task_cls, **props):
    """Run a task on a thread with a run context the test can kill; (ctx, thread, box)."""
    ctx = TaskRunContext(Runtime.in_memory(), {}, namespace="company.team", task_id="t")
    task = task_cls.model_validate({"id": "t", "type": task_cls.type_id, **props})
    box: dict = {}

    def target():
        try:
            box["out"] = task.run(ctx)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return ctx, thread, box


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert predicate(), "condition not met in time"
