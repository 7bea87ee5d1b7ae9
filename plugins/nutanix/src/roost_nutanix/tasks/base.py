"""What every Nutanix task shares: connection properties, outputs, and the polling of Prism tasks.

Every change is an asynchronous Prism task: the task returns its ``taskExtId`` and, with
``waitForCompletion`` (the default), polls it until SUCCEEDED or FAILED with ``ctx.sleep``,
bounded by the task's ``timeout``. A kill (or the timeout) while waiting cancels the Prism
task when Prism says it is cancelable.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, PrivateAttr
from roost import AssetBundle, Dynamic, Output, RunContext, Task, TaskError

from roost_nutanix.client import KILL_RETRY, VMM, PrismClient, PrismError, base_url

AHV = "io.kestra.plugin.ee.nutanix.ahv."
SNAPSHOT = "io.kestra.plugin.ee.nutanix.snapshot."
DEFAULT_WAIT = timedelta(minutes=30)
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
VMS = f"{VMM}/ahv/config/vms"
TEMPLATES = f"{VMM}/content/templates"


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


FetchType = Annotated[Literal["FETCH", "FETCH_ONE", "STORE", "NONE"], BeforeValidator(_upper)]
Consistency = Annotated[Literal["CRASH_CONSISTENT", "APPLICATION_CONSISTENT"], BeforeValidator(_upper)]


# -- outputs --------------------------------------------------------------------------------------------
class NutanixOutput(Output):
    """Base of this plugin's outputs: attribute docstrings become the output descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


class TaskOutput(NutanixOutput):
    """An asynchronous Prism operation."""

    timestamp: int = Field(default_factory=_now_ms)
    """When the task produced these outputs, in milliseconds since the epoch."""

    task_ext_id: str | None = None
    """extId of the Prism task that carried the operation (none when nothing had to be done)."""
    task_status: str | None = None
    """Final status of the Prism task (SUCCEEDED), or its status when the task did not wait."""


class VmOutput(TaskOutput):
    """An operation on one VM."""

    vm_ext_id: str
    """extId (UUID) of the VM."""
    power_state: str | None = None
    """Power state of the VM after the operation (ON, OFF, PAUSED...)."""
    vm: dict[str, Any] | None = None
    """The VM after the operation (extId, name, description, cluster, ip, powerState, resources)."""


# -- base ------------------------------------------------------------------------------------------------
class NutanixTask(Task):
    """Connection properties shared by every Nutanix task."""

    host: Dynamic[str]
    """Prism Central host name or address (a full https://host:port URL is accepted too)."""
    port: Dynamic[int] = 9440
    """Prism Central API port."""
    scheme: Dynamic[str] = "https"
    """HTTP scheme of the Prism Central API."""
    username: Dynamic[str] | None = None
    """Prism Central user (HTTP basic authentication); pass it with {{ secret(...) }}."""
    password: Dynamic[str] | None = None
    """Password of the user; pass it with {{ secret(...) }}. Never logged."""
    token: Dynamic[str] | None = None
    """Bearer token, used instead of username and password. Never logged."""
    api_key: Dynamic[str] | None = None
    """Prism Central API key (X-ntnx-api-key header), used instead of username and password. Never logged."""
    verify_ssl: Dynamic[bool] = True
    """Verify Prism Central's TLS certificate. Turn off only for trusted test environments."""
    request_timeout: Dynamic[timedelta] = timedelta(seconds=30)
    """Timeout of each HTTP call."""

    def client(self, ctx: RunContext | None = None) -> PrismClient:
        """The client of a task run; without ``ctx``, the client of a kill callback (no run context,
        a short timeout and one short retry, so that the kill is never held up for long)."""
        return PrismClient(
            self.host,
            port=self.port,
            scheme=self.scheme,
            username=self.username,
            password=self.password,
            token=self.token,
            api_key=self.api_key,
            verify_ssl=self.verify_ssl,
            timeout=self.request_timeout.total_seconds() if ctx is not None else 10.0,
            retry=None if ctx is not None else KILL_RETRY,
            ctx=ctx,
        )

    def prism(self) -> str:
        """The Prism Central address, for asset metadata."""
        try:
            return base_url(self.host, self.port, self.scheme)
        except TaskError:
            return self.host


class AsyncTask(NutanixTask):
    """A task whose operation runs as a Prism task."""

    wait_for_completion: Dynamic[bool] = True
    """Poll the Prism task until it SUCCEEDED (or FAILED); when false, return its taskExtId at once."""
    poll_interval: Dynamic[timedelta] = timedelta(seconds=2)
    """Time between two polls of the Prism task."""

    _assets: list[AssetBundle] = PrivateAttr(default_factory=list)

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        return list(self._assets)

    def wait_limit(self) -> timedelta:
        return self.timeout or DEFAULT_WAIT


class PrismTasks:
    """Submits Prism operations, polls their tasks, cancels them on kill or timeout.

    The task being waited on is cancelled once, by whichever comes first: a kill (the
    engine's kill thread, also on the task's timeout) or the wait's own deadline. A wait
    left because of a kill keeps its task so the kill callback, which may run after the
    waiting thread woke up, still cancels it.
    """

    def __init__(self, task: AsyncTask, ctx: RunContext, client: PrismClient) -> None:
        self.task = task
        self.ctx = ctx
        self.client = client
        self._current: str | None = None
        self._lock = threading.Lock()
        ctx.on_kill(self._on_kill)

    def submit(self, what: str, call: Callable[[], str]) -> str:
        ext_id = call()
        self.ctx.logger.info("Prism Central accepted %s as task %s", what, ext_id)
        if self.ctx.killed():
            self._cancel(self.client, ext_id, "execution killed")
        return ext_id

    def run(
        self, what: str, call: Callable[[], str], *, wait: bool | None = None
    ) -> tuple[str, dict[str, Any] | None]:
        """Submit, then wait unless told not to; returns the task id and the final task."""
        ext_id = self.submit(what, call)
        if not (self.task.wait_for_completion if wait is None else wait):
            return ext_id, None
        return ext_id, self.wait(ext_id, what)

    def wait(self, ext_id: str, what: str) -> dict[str, Any]:
        limit = self.task.wait_limit()
        poll = self.task.poll_interval.total_seconds()
        deadline = time.monotonic() + limit.total_seconds()
        last: tuple[Any, Any] | None = None
        with self._lock:
            self._current = ext_id
        try:
            while True:
                task = self.client.get_task(ext_id)
                status, progress = task.get("status"), task.get("progressPercentage")
                if (status, progress) != last:
                    self.ctx.logger.info(
                        "task %s (%s): %s %s%%",
                        ext_id,
                        what,
                        status,
                        progress if progress is not None else "?",
                    )
                    last = (status, progress)
                if status == "SUCCEEDED":
                    return task
                if status in ("FAILED", "CANCELED", "SKIPPED"):
                    raise TaskError(f"{what} failed: Prism task {ext_id} ended {status}: {task_errors(task)}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    cancelled = self._claim() is not None and self._cancel(self.client, ext_id, "timeout")
                    raise TaskError(
                        f"{what} did not complete within {duration(limit)}: Prism task {ext_id} is still {status} "
                        f"at {progress if progress is not None else '?'}%"
                        + ("; it was asked to cancel" if cancelled else "; it could not be cancelled")
                    )
                self.ctx.sleep(min(poll, remaining))
        finally:
            if not self.ctx.killed():  # after a kill, the kill callback claims the task and cancels it
                self._claim()

    def _claim(self) -> str | None:
        """End the wait on the current Prism task; its id for the one caller that ended it."""
        with self._lock:
            ext_id, self._current = self._current, None
            return ext_id

    def _on_kill(self) -> None:
        ext_id = self._claim()
        if ext_id is None:
            return
        try:
            with self.task.client() as client:
                self._cancel(client, ext_id, "execution killed")
        except Exception as exc:  # the kill goes on even when Prism cannot be told
            self.ctx.logger.error("execution killed, but cancelling Prism task %s failed: %s", ext_id, exc)

    def _cancel(self, client: PrismClient, ext_id: str, why: str) -> bool:
        try:
            task = client.get_task(ext_id)
            if task.get("status") in TERMINAL:
                return False
            if task.get("isCancelable") is False:
                self.ctx.logger.warning(
                    "%s: Prism task %s cannot be cancelled (isCancelable is false)", why, ext_id
                )
                return False
            client.cancel_task(ext_id)
        except PrismError as exc:
            self.ctx.logger.error("%s: cancelling Prism task %s failed: %s", why, ext_id, exc)
            return False
        self.ctx.logger.warning("%s: asked Prism Central to cancel task %s", why, ext_id)
        return True


def task_errors(task: dict[str, Any]) -> str:
    messages = []
    for err in task.get("errorMessages") or []:
        if isinstance(err, dict) and err.get("message"):
            messages.append(f"{err['message']} [{err['code']}]" if err.get("code") else err["message"])
    if task.get("legacyErrorMessage"):
        messages.append(str(task["legacyErrorMessage"]))
    return "; ".join(messages) or "no error message"


def affected(task: dict[str, Any] | None, kind: str) -> list[str]:
    """extIds of the entities of a kind ('vm', 'template', 'recovery-point') a task touched."""
    out = []
    for entity in (task or {}).get("entitiesAffected") or []:
        rel = str((entity or {}).get("rel") or "")
        if rel.split(":")[-1] == kind and entity.get("extId"):
            out.append(entity["extId"])
    return out


def duration(value: timedelta) -> str:
    """A wait limit as messages say it: ``0.3 s``, ``30 min``."""
    seconds = value.total_seconds()
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


def fetched(ctx: RunContext, rows: list[dict[str, Any]], fetch_type: str, name: str) -> dict[str, Any]:
    """The output fields of a list as ``fetchType`` asks (STORE writes ``<name>.json`` to storage)."""
    if fetch_type == "FETCH_ONE":
        return {"row": rows[0] if rows else None, "size": len(rows)}
    if fetch_type == "STORE":
        path = ctx.working_dir / f"{name}.json"
        path.write_text(json.dumps(rows, indent=None))
        return {"uri": ctx.put_file(path), "size": len(rows)}
    if fetch_type == "NONE":
        return {"size": len(rows)}
    return {"rows": rows, "size": len(rows)}


class ListOutput(NutanixOutput):
    """Rows as fetchType asks."""

    timestamp: int = Field(default_factory=_now_ms)
    """When the list was fetched, in milliseconds since the epoch."""

    rows: list[dict[str, Any]] | None = None
    """Every row (fetchType FETCH)."""
    row: dict[str, Any] | None = None
    """The first row (fetchType FETCH_ONE)."""
    uri: str | None = None
    """kestra:// URI of a JSON file holding the rows (fetchType STORE)."""
    size: int
    """Number of rows."""
    total: int | None = None
    """Number of matching objects Prism Central reports, across pages."""
