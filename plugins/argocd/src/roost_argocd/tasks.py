"""Argo CD tasks: Sync an application (and wait for it), read its Status."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator
from roost import Asset, AssetBundle, Dynamic, HttpSsl, HttpTimeout, RunContext, Task, TaskError
from roost import Output as _Output

from roost_argocd.client import ArgoCdApiError, ArgoCdClient, HttpOptions, app_path, server_url, tls_context

EXTERNAL = "io.kestra.core.models.assets.External"
DEFAULT_WAIT = timedelta(minutes=30)
TERMINAL_PHASES = ("Succeeded", "Failed", "Error")
CLI_ONLY = ("task_runner", "container_image", "env", "argo_cd_version", "grpc_web")
QUICK = HttpTimeout(connect_timeout=timedelta(seconds=5), read_idle_timeout=timedelta(seconds=10))


class Output(_Output):
    """Base of this plugin's outputs: attribute docstrings become field descriptions in the schema."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class ArgoCdTask(Task):
    """Connection properties shared by the Argo CD tasks (not a task type itself)."""

    server: Dynamic[str]
    """Argo CD API server: a host (``argocd.example.com``, HTTPS) or a URL (``https://argocd.example.com``)."""
    token: Dynamic[str] | None = None
    """Argo CD authentication token (``Authorization: Bearer``); use ``{{ secret('ARGOCD_TOKEN') }}``.
    Set either this, or ``username`` and ``password``."""
    username: Dynamic[str] | None = None
    """Local Argo CD user to log in as (``POST /api/v1/session``) when no token is given."""
    password: Dynamic[str] | None = None
    """Password of ``username``; use a secret."""
    application: Dynamic[str]
    """Name of the Argo CD Application; ``namespace/name`` for an application outside Argo CD's namespace."""
    insecure: Dynamic[bool] = False
    """Skip the verification of the server's TLS certificate (the CLI's ``--insecure``)."""
    server_cert: Dynamic[str] | None = None
    """PEM certificate (or CA) to trust for the server, for self-signed or private-CA installations."""
    plaintext: Dynamic[bool] = False
    """Speak plain HTTP to the server (the CLI's ``--plaintext``), for servers run with ``--insecure``."""
    grpc_web: Dynamic[bool] = False
    """Accepted for Kestra compatibility: the REST API this task uses needs no gRPC-web."""
    options: HttpOptions | None = None
    """Advanced HTTP settings: timeouts, redirects, proxy."""
    task_runner: dict[str, Any] | None = None
    """Accepted for Kestra compatibility and ignored: no CLI container runs, the REST API is called directly."""
    container_image: Dynamic[str] | None = None
    """Accepted for Kestra compatibility and ignored (the image of Kestra's CLI container)."""
    env: dict[str, str] | None = None
    """Accepted for Kestra compatibility and ignored (environment of Kestra's CLI container)."""
    argo_cd_version: Dynamic[str] | None = Field(default=None, alias="argoCDVersion")
    """Accepted for Kestra compatibility and ignored (the CLI version Kestra downloads)."""

    _app: dict[str, Any] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _credentials_given(self) -> ArgoCdTask:
        if not self.token and not (self.username and self.password):
            raise ValueError("Argo CD credentials are missing: set token, or username and password")
        return self

    def client(self, ctx: RunContext | None, *, quick: bool = False) -> ArgoCdClient:
        """A client for this task's server; ``quick`` bounds each call to 10 s (used from a kill callback)."""
        if not self.token and not (self.username and self.password):
            raise TaskError("Argo CD credentials are missing: set token, or username and password")
        options = self.options or HttpOptions()
        if self.insecure:
            options = options.model_copy(update={"ssl": HttpSsl(insecure_trust_all_certificates=True)})
        if quick:
            options = options.model_copy(update={"timeout": QUICK})
        return ArgoCdClient(
            server_url(self.server, self.plaintext),
            token=self.token or None,
            username=self.username or None,
            password=self.password or None,
            options=options,
            verify=tls_context(self.server_cert) if self.server_cert and not self.insecure else None,
            ctx=ctx,
        )

    def target(self) -> tuple[str, str | None]:
        return app_path(self.application)

    def warn_cli_only(self, ctx: RunContext) -> None:
        ignored = [type(self).model_fields[f].alias or f for f in CLI_ONLY if getattr(self, f)]
        if ignored:
            ctx.logger.info(
                "ignored (they configure Kestra's argocd CLI container; Roost calls the REST API): %s",
                ", ".join(ignored),
            )

    def auto_assets(self, ctx: RunContext, out: Any) -> list[AssetBundle]:
        if self._app is None:
            return []
        host = server_url(self.server, self.plaintext).split("://", 1)[1]
        asset = application_asset(host, self._app)
        return [AssetBundle(outputs=[asset]) if self.changes_app() else AssetBundle(inputs=[asset])]

    def changes_app(self) -> bool:
        return False


# -- reading an Application ----------------------------------------------------------------------------------
def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def state_of(app: dict[str, Any]) -> dict[str, Any]:
    """The fields of an Application the tasks report (sync, health, operation, revisions...)."""
    meta, spec, status = _obj(app.get("metadata")), _obj(app.get("spec")), _obj(app.get("status"))
    source = _obj(spec.get("source")) or _obj((_list(spec.get("sources")) or [None])[0])
    sync, health = _obj(status.get("sync")), _obj(status.get("health"))
    op = _obj(status.get("operationState"))
    if app.get("operation") and (not op or op.get("finishedAt")):
        op = {"phase": "Running"}  # requested, not yet picked up: the last state is the previous operation's
    return {
        "application": meta.get("name"),
        "app_namespace": meta.get("namespace"),
        "project": spec.get("project"),
        "sync_status": sync.get("status"),
        "health_status": health.get("status"),
        "health_message": health.get("message"),
        "revision": sync.get("revision") or (_list(sync.get("revisions")) or [None])[0],
        "target_revision": source.get("targetRevision"),
        "repo_url": source.get("repoURL"),
        "path": source.get("path") or source.get("chart"),
        "destination_server": _obj(spec.get("destination")).get("server"),
        "destination_name": _obj(spec.get("destination")).get("name"),
        "destination_namespace": _obj(spec.get("destination")).get("namespace"),
        "operation_phase": op.get("phase"),
        "operation_message": op.get("message"),
        "started_at": op.get("startedAt"),
        "finished_at": op.get("finishedAt"),
        "reconciled_at": status.get("reconciledAt"),
        "resources": [r for r in _list(status.get("resources")) if isinstance(r, dict)],
        "conditions": [c for c in _list(status.get("conditions")) if isinstance(c, dict)],
        "sync_result": [r for r in _list(_obj(op.get("syncResult")).get("resources")) if isinstance(r, dict)],
        "images": [str(i) for i in _list(_obj(status.get("summary")).get("images"))],
        "raw_output": json.dumps(app, sort_keys=True),
    }


def application_asset(host: str, app: dict[str, Any]) -> Asset:
    """The asset of an Argo CD Application: id ``argocd:<server>:<namespace>/<name>``."""
    st = state_of(app)
    ref = f"{st['app_namespace']}/{st['application']}" if st["app_namespace"] else str(st["application"])
    metadata = {
        "system": "argocd",
        "kind": "application",
        "server": host,
        "name": st["application"],
        "namespace": st["app_namespace"],
        "project": st["project"],
        "repoURL": st["repo_url"],
        "path": st["path"],
        "targetRevision": st["target_revision"],
        "syncedRevision": st["revision"],
        "destinationServer": st["destination_server"],
        "destinationName": st["destination_name"],
        "destinationNamespace": st["destination_namespace"],
        "syncStatus": st["sync_status"],
        "healthStatus": st["health_status"],
    }
    return Asset(
        id=f"argocd:{host}:{ref}",
        type=EXTERNAL,
        display_name=str(st["application"]),
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def _describe(st: dict[str, Any]) -> str:
    parts = [
        f"operation {st['operation_phase'] or 'none'}",
        f"sync {st['sync_status'] or 'Unknown'}",
        f"health {st['health_status'] or 'Unknown'}",
    ]
    if st["health_message"]:
        parts[-1] += f" ({st['health_message']})"
    return ", ".join(parts)


def _failed_resources(st: dict[str, Any]) -> str:
    failed = [
        f"{r.get('kind')}/{r.get('name')}: {r.get('message') or r.get('status')}"
        for r in st["sync_result"]
        if r.get("status") in ("SyncFailed",) or r.get("hookPhase") in ("Failed", "Error")
    ]
    return "; ".join(failed[:10])


def _resource(spec: str) -> dict[str, str]:
    """A resource as the CLI's ``--resource GROUP:KIND:NAME`` (or ``GROUP:KIND:NAMESPACE/NAME``) names it."""
    parts = spec.split(":")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise TaskError(f"resources: {spec!r} is not GROUP:KIND:NAME (GROUP may be empty: ':Service:web')")
    group, kind, name = parts
    namespace, _, name = name.rpartition("/")
    out = {"group": group, "kind": kind, "name": name}
    if namespace:
        out["namespace"] = namespace
    return out


# -- Sync ----------------------------------------------------------------------------------------------------
class Sync(
    ArgoCdTask, type="io.kestra.plugin.argocd.apps.Sync", aliases=("io.kestra.plugin.argocd.app.Sync",)
):
    """Synchronize an Argo CD application to its Git state, and wait until it is done and healthy.

    ``POST /api/v1/applications/{name}/sync`` with the revision, prune, dry-run and force flags,
    then (``wait: true``, the default, as ``argocd app sync``) polls the application until the sync
    operation ends and, unless a dry run, the application is ``Healthy``. A failed operation, or a
    wait longer than ``timeout``, fails the task with the application's last status; a kill (or the
    timeout) terminates the running operation (``DELETE .../operation``).
    """

    timeout_grace = 5.0  # the wait below enforces `timeout` itself, with a message naming the app

    revision: Dynamic[str] | None = None
    """Git commit, tag or branch (or Helm chart version) to sync to; the application's target revision by default."""
    prune: Dynamic[bool] = False
    """Delete the resources that are no longer defined in Git (``--prune``)."""
    dry_run: Dynamic[bool] = False
    """Preview the sync without changing the cluster (``--dry-run``)."""
    force: Dynamic[bool] = False
    """Force the apply, deleting and re-creating resources when needed (``--force``)."""
    resources: Dynamic[list[str]] | None = None
    """Sync only these resources, each ``GROUP:KIND:NAME`` or ``GROUP:KIND:NAMESPACE/NAME`` (``:Service:web``)."""
    sync_options: Dynamic[list[str]] | None = None
    """Sync options for this sync, such as ``CreateNamespace=true`` or ``ServerSideApply=true``."""
    wait: Dynamic[bool] = True
    """Wait for the sync operation to end and the application to be Healthy; false returns once requested."""
    timeout: Dynamic[timedelta] | None = None
    """Longest wait for the sync and the health (ISO 8601, e.g. ``PT10M``); 30 minutes when not set.
    The task fails past it, naming the application and its last status, and the operation is terminated."""
    poll_frequency: Dynamic[timedelta] = timedelta(seconds=2)
    """Time between two reads of the application while waiting."""

    @field_validator("resources", "sync_options")
    @classmethod
    def _no_blank(cls, value: Any) -> Any:
        if isinstance(value, list) and any(isinstance(v, str) and not v.strip() for v in value):
            raise ValueError("entries must not be empty")
        return value

    class Out(Output):
        application: str
        """Name of the application."""
        app_namespace: str | None = None
        """Namespace of the Application resource (Argo CD's own namespace by default)."""
        project: str | None = None
        """Argo CD project of the application."""
        sync_status: str | None = None
        """Sync status after the sync: Synced, OutOfSync or Unknown."""
        health_status: str | None = None
        """Health after the sync: Healthy, Progressing, Degraded, Suspended, Missing or Unknown."""
        revision: str | None = None
        """Revision (commit SHA) the application is synced to."""
        target_revision: str | None = None
        """Revision the application tracks (``spec.source.targetRevision``)."""
        operation_phase: str | None = None
        """Phase of the sync operation: Running (not waited), Succeeded, Failed, Error or Terminating."""
        operation_message: str | None = None
        """Argo CD's message about the sync operation."""
        started_at: str | None = None
        """When the sync operation started."""
        finished_at: str | None = None
        """When the sync operation finished."""
        dry_run: bool = False
        """Whether this was a dry run."""
        resources: list[dict[str, Any]] = Field(default_factory=list)
        """The application's resources with their sync and health status (``status.resources``)."""
        sync_result: list[dict[str, Any]] = Field(default_factory=list)
        """What the operation did to each resource (status, message, hook and sync phase)."""
        images: list[str] = Field(default_factory=list)
        """Container images the application runs."""
        raw_output: str
        """The application as Argo CD returned it, as JSON (what ``argocd app sync -o json`` prints)."""

    def changes_app(self) -> bool:
        return not self.dry_run

    def run(self, ctx: RunContext) -> Sync.Out:
        self.warn_cli_only(ctx)
        name, namespace = self.target()
        body: dict[str, Any] = {
            "prune": self.prune,
            "dryRun": self.dry_run,
            "strategy": {"hook": {"force": self.force}},
        }
        if self.revision:
            body["revision"] = self.revision
        if self.resources:
            body["resources"] = [_resource(r) for r in self.resources]
        if self.sync_options:
            body["syncOptions"] = {"items": list(self.sync_options)}
        limit = self.timeout or DEFAULT_WAIT
        deadline = time.monotonic() + limit.total_seconds()
        with self.client(ctx) as argo:
            guard = _OperationGuard(self, ctx, name, namespace)
            flags = [
                f for f, on in (("prune", self.prune), ("dry run", self.dry_run), ("force", self.force)) if on
            ]
            ctx.logger.info(
                "syncing application %s on %s to %s%s",
                self.application,
                argo.host,
                self.revision or "its target revision",
                f" ({', '.join(flags)})" if flags else "",
            )
            guard.arm()
            try:
                app = argo.sync(name, namespace, body)
                if self.wait:
                    app = self._wait(ctx, argo, guard, name, namespace, deadline, limit)
                else:
                    ctx.logger.info("sync of %s requested; not waiting (wait: false)", self.application)
            finally:
                if not ctx.killed():  # after a kill, the kill callback claims the operation and terminates it
                    guard.disarm()
        self._app = app
        return self._out(app)

    def _wait(
        self,
        ctx: RunContext,
        argo: ArgoCdClient,
        guard: _OperationGuard,
        name: str,
        namespace: str | None,
        deadline: float,
        limit: timedelta,
    ) -> dict[str, Any]:
        poll = max(self.poll_frequency.total_seconds(), 0.01)
        last = None
        while True:
            app = argo.application(name, namespace)
            st = state_of(app)
            seen = (st["operation_phase"], st["sync_status"], st["health_status"])
            if seen != last:
                ctx.logger.info("application %s: %s", self.application, _describe(st))
                last = seen
            in_progress = _operation_in_progress(app)
            if not in_progress:
                if st["operation_phase"] in ("Failed", "Error"):
                    self._app = app
                    failed = _failed_resources(st)
                    raise TaskError(
                        f"sync of application {self.application} ended {st['operation_phase']}: "
                        f"{st['operation_message'] or 'no message'}" + (f" [{failed}]" if failed else ""),
                        outputs=self._out(app),
                    )
                if self.dry_run or st["health_status"] == "Healthy":
                    if st["sync_status"] not in ("Synced", None) and not self.dry_run:
                        ctx.logger.warning(
                            "application %s is Healthy but %s after the sync",
                            self.application,
                            st["sync_status"],
                        )
                    return app
                guard.disarm()  # the operation is over: nothing left to terminate
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                terminated = in_progress and guard.terminate_now("timeout")
                self._app = app
                raise TaskError(
                    f"application {self.application} did not "
                    f"{'finish syncing' if in_progress else 'become Healthy'} within {_duration(limit)}: "
                    f"{_describe(st)}" + ("; its sync operation was terminated" if terminated else ""),
                    outputs=self._out(app),
                )
            ctx.sleep(min(poll, remaining))

    def _out(self, app: dict[str, Any]) -> Sync.Out:
        st = state_of(app)
        fields = {k: v for k, v in st.items() if k in Sync.Out.model_fields and k != "application"}
        return self.Out(application=st["application"] or self.target()[0], dry_run=self.dry_run, **fields)


def _operation_in_progress(app: dict[str, Any]) -> bool:
    """Whether a sync is still running, as ``argocd app sync`` decides it: an operation is requested,
    or started and not finished, or finished but not yet followed by a reconciliation."""
    if app.get("operation"):
        return True
    op = _obj(_obj(app.get("status")).get("operationState"))
    if not op:
        return False
    if not op.get("finishedAt") or op.get("phase") not in TERMINAL_PHASES:
        return True
    dry = _obj(_obj(op.get("operation")).get("sync")).get("dryRun")
    reconciled = _obj(app.get("status")).get("reconciledAt")
    return not dry and (not reconciled or str(reconciled) < str(op["finishedAt"]))


def _duration(limit: timedelta) -> str:
    seconds = limit.total_seconds()
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


class _OperationGuard:
    """Terminates the sync operation once, by whichever comes first: a kill (also the engine's
    timeout) or the wait's own deadline. Armed just before the sync is requested."""

    def __init__(self, task: Sync, ctx: RunContext, name: str, namespace: str | None) -> None:
        self.task, self.ctx, self.name, self.namespace = task, ctx, name, namespace
        self._armed = False
        self._lock = threading.Lock()
        ctx.on_kill(self._on_kill)

    def arm(self) -> None:
        with self._lock:
            self._armed = True

    def disarm(self) -> bool:
        with self._lock:
            armed, self._armed = self._armed, False
            return armed

    def _on_kill(self) -> None:
        if self.disarm():
            self._terminate("execution killed")

    def terminate_now(self, why: str) -> bool:
        return self.disarm() and self._terminate(why)

    def _terminate(self, why: str) -> bool:
        """``DELETE .../operation`` on a client of its own: the task's client is closed by a kill."""
        try:
            with self.task.client(None, quick=True) as argo:
                argo.terminate(self.name, self.namespace)
        except ArgoCdApiError as exc:
            if exc.code == 9:  # FailedPrecondition: no operation is in progress any more
                self.ctx.logger.info(
                    "%s: no sync operation of %s left to terminate", why, self.task.application
                )
                return False
            self.ctx.logger.error(
                "%s, but terminating the sync of %s failed: %s", why, self.task.application, exc
            )
            return False
        except Exception as exc:  # a kill goes on even when Argo CD cannot be told
            self.ctx.logger.error(
                "%s, but terminating the sync of %s failed: %s", why, self.task.application, exc
            )
            return False
        self.ctx.logger.warning("%s: sync operation of application %s terminated", why, self.task.application)
        return True


# -- Status --------------------------------------------------------------------------------------------------
class Status(
    ArgoCdTask, type="io.kestra.plugin.argocd.apps.Status", aliases=("io.kestra.plugin.argocd.app.Status",)
):
    """Read an Argo CD application's sync and health status, conditions and resources.

    ``GET /api/v1/applications/{name}`` (``?refresh=normal`` with ``refresh: true``, which makes Argo
    CD compare the live cluster with Git before answering, as ``argocd app get --refresh``).
    """

    refresh: Dynamic[bool] = False
    """Refresh the application first (compare Git and the cluster again) instead of reading the cached state."""
    hard_refresh: Dynamic[bool] = False
    """Refresh and also invalidate the manifest cache (``--hard-refresh``)."""

    class Out(Output):
        application: str
        """Name of the application."""
        app_namespace: str | None = None
        """Namespace of the Application resource."""
        project: str | None = None
        """Argo CD project of the application."""
        sync_status: str | None = None
        """Sync status: Synced, OutOfSync or Unknown."""
        health_status: str | None = None
        """Health: Healthy, Progressing, Degraded, Suspended, Missing or Unknown."""
        health_message: str | None = None
        """Argo CD's message about the health, when it gives one."""
        revision: str | None = None
        """Revision (commit SHA) the application is synced to."""
        target_revision: str | None = None
        """Revision the application tracks."""
        operation_phase: str | None = None
        """Phase of the last (or running) operation."""
        operation_message: str | None = None
        """Argo CD's message about the last operation."""
        reconciled_at: str | None = None
        """When Argo CD last compared the application with Git."""
        conditions: list[dict[str, Any]] = Field(default_factory=list)
        """Application conditions (warnings and errors: ComparisonError, SyncError...)."""
        resources: list[dict[str, Any]] = Field(default_factory=list)
        """The application's resources with their sync and health status."""
        images: list[str] = Field(default_factory=list)
        """Container images the application runs."""
        raw_output: str
        """The application as Argo CD returned it, as JSON (what ``argocd app get -o json`` prints)."""

    def run(self, ctx: RunContext) -> Status.Out:
        self.warn_cli_only(ctx)
        name, namespace = self.target()
        refresh = "hard" if self.hard_refresh else "normal" if self.refresh else None
        with self.client(ctx) as argo:
            app = argo.application(name, namespace, refresh=refresh)
        self._app = app
        st = state_of(app)
        ctx.logger.info("application %s: %s", self.application, _describe(st))
        fields = {k: v for k, v in st.items() if k in Status.Out.model_fields and k != "application"}
        return self.Out(application=st["application"] or name, **fields)


TASKS = (Sync, Status)
