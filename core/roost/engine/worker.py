"""The worker: runs runnable tasks (threads for blocking I/O; scripts spawn their own processes)."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from roost.assets.model import Asset, AssetBundle
from roost.flow.properties import is_truthy


def outputs_dict(out: Any) -> dict[str, Any] | None:
    """A task's return value as the JSON-shaped mapping stored on its task run (None: no outputs)."""
    if out is None:
        return None
    if isinstance(out, BaseModel):
        return out.model_dump(by_alias=True, mode="json", exclude_none=True)
    if isinstance(out, dict):
        return out
    raise TypeError(f"a task must return an Output, a dict or None, not {type(out).__name__}")


def collect_assets(task: Any, ctx: Any, out: Any, outputs: dict[str, Any] | None) -> list[AssetBundle]:
    """Declared assets (rendered with the task's outputs in scope) and, with enableAuto, the plugin's."""
    spec = getattr(task, "assets", None)
    if spec is None:
        return []
    bundles: list[AssetBundle] = []
    scope = {
        "outputs": {**ctx.variables.get("outputs", {}), task.id: outputs or {}},
        "output": outputs or {},
    }
    if spec.inputs or spec.outputs:

        def declared(refs: list[Any] | str) -> list[Asset]:
            if isinstance(refs, str):  # the whole list is an expression
                items = ctx.render(refs, **scope)
                if not isinstance(items, list):
                    raise ValueError(f"assets must render to a list, got {type(items).__name__}")
                return [Asset.model_validate(item) for item in items]
            return [Asset.model_validate(ctx.render(ref.model_dump(by_alias=True, exclude_none=True), **scope))
                    for ref in refs]  # fmt: skip

        bundles.append(AssetBundle(inputs=declared(spec.inputs), outputs=declared(spec.outputs)))
    if is_truthy(ctx.render(spec.enable_auto, **scope)):
        auto = list(task.auto_assets(ctx, out) or [])
        plugins = getattr(getattr(ctx, "runtime", None), "plugins", None)
        if plugins is not None:
            auto.extend(plugins.task_assets(task, ctx, out))
        bundles.extend(b if isinstance(b, AssetBundle) else AssetBundle.model_validate(b) for b in auto)
    return bundles


def assets_in_out(bundles: list[AssetBundle], namespace: str) -> dict[str, list[dict[str, Any]]]:
    """What a run read and wrote across its bundles, once each, in the shape of Kestra's ``TaskRun.assets``."""
    seen: set[tuple[str, str, str, str]] = set()
    out: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    for bundle in bundles:
        for side, items in (("inputs", bundle.inputs), ("outputs", bundle.outputs)):
            for asset in items:
                ns = asset.namespace or namespace
                if (side, ns, asset.id, asset.type) in seen:
                    continue
                seen.add((side, ns, asset.id, asset.type))
                if side == "inputs":
                    out[side].append({"id": asset.id, "type": asset.type, "namespace": ns})
                else:
                    entry = asset.model_dump(
                        by_alias=True, mode="json", exclude_none=True, exclude={"created", "updated"}
                    )
                    out[side].append({**entry, "namespace": ns})
    return out


def _never_started(state: str) -> dict[str, Any]:
    """The attempt of a task run that ended ``state`` without running."""
    from roost.engine.model import iso, now

    return {"state": {"current": state, "histories": [{"state": state, "date": iso(now())}]}}


class Worker:
    """Runs jobs on a thread pool; kill and timeout reach the task through its context."""

    def __init__(self, engine: Any, threads: int = 8) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.engine = engine
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="roost-worker")
        self.running: dict[str, Any] = {}
        self._queued: set[str] = set()  # task runs submitted and not started yet
        self._dropped: set[str] = (
            set()
        )  # queued ones already answered for (killed, cancelled): skipped at their turn
        self._lock = threading.Lock()

    def submit(self, job: Any) -> None:
        with self._lock:
            self._queued.add(job.taskrun_id)
        self.pool.submit(self._run_guarded, job)

    transactional = False  # jobs are submitted once the executor's batch is written

    def write(self, conn: Any, execution_ids: set[str]) -> None:
        raise NotImplementedError("the in-process pool is not transactional")

    def written(self) -> None:
        raise NotImplementedError("the in-process pool is not transactional")

    def kill(self, taskrun_id: str, execution_id: str = "") -> None:
        """Stop a task run: a running one through its context; a queued one never starts and is confirmed
        KILLED at once, as is one this worker does not have (its result was lost, or dropped by an IGNORE
        switch): a kill never waits for a thread to free up."""
        with self._lock:
            ctx = self.running.get(taskrun_id)
            if ctx is None:
                if taskrun_id in self._queued:
                    self._dropped.add(taskrun_id)
                if execution_id:
                    self.engine.report(execution_id, taskrun_id, "KILLED", None, _never_started("KILLED"))
                return
        threading.Thread(target=ctx.fire_kill, name="roost-kill", daemon=True).start()

    def unqueue(self, taskrun_id: str, execution_id: str, state: str) -> None:
        """A queued task run never starts, and is answered ``state`` now; a running one goes on (CANCEL)."""
        with self._lock:
            if taskrun_id not in self._queued or taskrun_id in self._dropped:
                return
            self._dropped.add(taskrun_id)
        self.engine.report(execution_id, taskrun_id, state, None, _never_started(state))

    def shutdown(self) -> None:
        for ctx in list(self.running.values()):
            ctx.kill_event.set()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _run_guarded(self, job: Any) -> None:
        try:
            self.run(job)
        except Exception as exc:  # never lose a result: report the crash as the task's failure
            logging.getLogger("roost.worker").exception("worker crashed on %s", job.taskrun_id)
            self.engine.report(job.execution_id, job.taskrun_id, "FAILED", None,
                               {"state": "FAILED", "startDate": None}, f"worker error: {exc}")  # fmt: skip

    def run(self, job: Any, report: Any = None) -> None:
        """Run one attempt and report its result (to the engine's queue unless ``report`` is given)."""
        from roost.engine.context import Killed, TaskRunContext, render_task
        from roost.engine.model import iso, now
        from roost.flow.task import TaskError, TaskWarning

        started = now()  # before the kill switch check: a job admitted before a switch acts started before it
        refused = self._refusal(job)
        runtime = self.engine.runtime(job.tenant)
        task = job.task
        ctx = TaskRunContext(runtime, job.variables, namespace=job.namespace, flow_id=job.flow_id,
                             execution_id=job.execution_id, task_id=task.id, taskrun_id=job.taskrun_id,
                             log_level=task.log_level, fresh_secrets=job.attempt > 1)  # fmt: skip
        with self._lock:
            self._queued.discard(job.taskrun_id)
            if job.taskrun_id in self._dropped:  # killed or cancelled while it waited: already answered for
                self._dropped.discard(job.taskrun_id)
                return
            if refused is None:
                self.running[job.taskrun_id] = ctx
        if refused is not None:
            if refused in ("KILLED", "CANCELLED"):  # an IGNORE switch drops reports: none is sent
                attempt = {
                    "state": {"current": refused, "histories": [{"state": refused, "date": iso(now())}]}
                }
                (report or self.engine.report)(job.execution_id, job.taskrun_id, refused, None, attempt, None)
            return
        if job.workdir:
            Path(job.workdir).mkdir(parents=True, exist_ok=True)
            ctx.use_working_dir(Path(job.workdir))
            ctx._shared_dir = True  # type: ignore[attr-defined]
        scripts = sys.modules.get("roost.scripts")  # not imported yet: no script task exists
        if scripts is not None and isinstance(task, scripts.ScriptTask):  # Kestra's {{ workingDir }}
            ctx.variables = {**job.variables, "workingDir": str(ctx.working_dir)}
        unreported = threading.Lock()  # held once reported (a timeout and the task may both finish)

        def finish(state: str, outputs: dict[str, Any] | None, error: str | None = None,
                   assets: dict[str, Any] | None = None) -> None:  # fmt: skip
            if not unreported.acquire(blocking=False):
                return
            attempt: dict[str, Any] = {"state": {"current": state, "histories": [
                {"state": "RUNNING", "date": iso(started)}, {"state": state, "date": iso(now())}]}}  # fmt: skip
            if assets:
                attempt["assets"] = assets  # the executor moves it to the task run (Kestra's TaskRun.assets)
            if error:
                error = ctx.secret_values.mask(error)  # the error is stored on the task run: no secret in it
                ctx.logger.error(error)
            (report or self.engine.report)(job.execution_id, job.taskrun_id, state, outputs, attempt, error)

        timer = None
        try:
            rendered = render_task(task, ctx)
            timeout = getattr(rendered, "timeout", None)
            if timeout is not None:
                seconds = timeout.total_seconds()

                def on_timeout() -> None:
                    finish("FAILED", None, f"Timeout after {seconds:g} s: the task was stopped")
                    ctx.fire_kill()

                timer = threading.Timer(seconds + getattr(rendered, "timeout_grace", 0.0), on_timeout)
                timer.daemon = True
                timer.start()
            out = rendered.run(ctx)  # type: ignore[attr-defined]
            outputs = outputs_dict(out)
            finish("SUCCESS", outputs, assets=self._assets(rendered, ctx, out, outputs, job))
        except TaskWarning as warn:
            outputs = outputs_dict(warn.outputs)
            ctx.logger.warning(str(warn))
            finish("WARNING", outputs)
        except Killed:
            finish("KILLED", None)
        except TaskError as exc:
            finish("KILLED" if ctx.killed() and not unreported.locked() else "FAILED", outputs_dict(exc.outputs),
                   None if ctx.killed() else str(exc))  # fmt: skip
        except Exception as exc:
            if ctx.killed():
                finish("KILLED", None)
            else:
                finish("FAILED", None, f"{type(exc).__name__}: {exc}")
        finally:
            if timer is not None:
                timer.cancel()
            self.running.pop(job.taskrun_id, None)
            ctx.cleanup()

    def _refusal(self, job: Any) -> str | None:
        """KILLED, CANCELLED or IGNORED when a kill switch covers the job's execution; None to run it."""
        refusal = getattr(self.engine, "refusal", None)
        return refusal(job) if refusal is not None else None

    def _assets(
        self, task: Any, ctx: Any, out: Any, outputs: dict[str, Any] | None, job: Any
    ) -> dict[str, Any] | None:
        """Record the assets a run declared or emitted; returns them as Kestra's ``{inputs, outputs}``."""
        if getattr(task, "assets", None) is None:
            return None
        try:
            bundles = collect_assets(task, ctx, out, outputs)
        except Exception as exc:  # assets never fail the task; the user sees why none were recorded
            ctx.logger.warning(f"assets could not be recorded: {exc}")
            return None
        sink = getattr(self.engine, "asset_sink", None)
        if bundles and sink is not None:
            sink(job, ctx, bundles)
        return assets_in_out(bundles, job.namespace) if bundles else None
