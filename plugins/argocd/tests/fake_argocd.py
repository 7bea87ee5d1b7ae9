"""A fake Argo CD API server (argocd-server's REST gateway) over real HTTP on 127.0.0.1.

It follows Argo CD's API reference (``/swagger.json`` of argocd-server, v2.x) and what its
application controller does with a sync:

* ``POST /api/v1/session`` trades ``{"username", "password"}`` for ``{"token"}``; every other call
  needs ``Authorization: Bearer <token>`` (401 ``no session information`` / ``invalid session``);
  a read-only token gets 403 ``permission denied: applications, sync, <project>/<app>, sub: ...``;
* errors are the gRPC gateway's ``{"error", "code", "message"}`` with gRPC codes (5 NotFound →
  404, 7 PermissionDenied → 403, 9 FailedPrecondition → 400, 16 Unauthenticated → 401);
* ``GET /api/v1/applications/{name}`` (``appNamespace``, ``refresh=normal|hard``) returns the
  Application (``metadata``, ``spec.source``/``destination``/``project``, ``status.sync``,
  ``status.health``, ``status.resources``, ``status.operationState``, ``reconciledAt``, ``history``...);
* ``POST /api/v1/applications/{name}/sync`` (``revision``, ``prune``, ``dryRun``, ``strategy``,
  ``resources``, ``syncOptions``) sets the application's ``operation`` and answers the
  Application; a second sync while one runs is 400 ``another operation is already in progress``;
* ``DELETE /api/v1/applications/{name}/operation`` terminates the running operation (phase
  ``Terminating``, then ``Failed`` / ``Operation terminated``), 400 when none is in progress.

The controller is simulated one step per read of the application, on a clock that advances one
second a step: the requested operation starts (``Running``), runs ``run_polls`` reads, ends
(``Succeeded``, ``Failed``, ``Error``, or never with ``hang``), the ``operation`` field is cleared,
the next read reconciles (``reconciledAt``), and health walks through the planned sequence
(``Progressing`` then ``Healthy`` by default). Faults are injected with :meth:`inject`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from roost.testing.http import FakeHttpServer, Reply, Request

_APP = re.compile(r"^/api/v1/applications/([^/]+)(/sync|/operation)?$")


class GrpcError(Exception):
    HTTP = {3: 400, 5: 404, 7: 403, 9: 400, 12: 501, 13: 500, 16: 401}

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Plan:
    """What the controller does with the next sync of an application."""

    outcome: str = "Succeeded"
    """Succeeded, Failed, Error or hang (never ends)."""
    run_polls: int = 1
    """Reads of the application while the operation runs."""
    health: list[str] = field(default_factory=lambda: ["Progressing", "Healthy"])
    """Health after a successful sync, one entry per read (the last one stays)."""


class FakeArgoCD(FakeHttpServer):
    protocol_version = "HTTP/1.1"

    def __init__(self, tokens: dict[str, str] | None = None, users: dict[str, str] | None = None) -> None:
        super().__init__()
        self.tokens = dict(tokens or {})
        """token -> account; an account named ``readonly`` may only read."""
        self.users = dict(users or {})
        self.apps: dict[tuple[str, str], dict[str, Any]] = {}
        self.plans: dict[str, Plan] = {}
        self.syncs: list[dict[str, Any]] = []
        self.terminations: list[str] = []
        self.refreshes: list[tuple[str, str]] = []
        self.clock = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
        self._health: dict[tuple[str, str], list[str]] = {}
        self._remaining: dict[tuple[str, str], int] = {}
        self.state_lock = threading.Lock()

    # -- the model ---------------------------------------------------------------------------------------
    def tick(self) -> str:
        self.clock += timedelta(seconds=1)
        return self.clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def add_app(
        self,
        name: str,
        *,
        namespace: str = "argocd",
        project: str = "default",
        repo: str = "https://github.com/argoproj/argocd-example-apps.git",
        path: str = "guestbook",
        target_revision: str = "HEAD",
        dest_server: str = "https://kubernetes.default.svc",
        dest_namespace: str = "default",
        sync: str = "OutOfSync",
        health: str = "Healthy",
    ) -> dict[str, Any]:
        stamp = self.tick()
        resources = [
            {"version": "v1", "kind": "Service", "namespace": dest_namespace, "name": f"{name}-ui"},
            {
                "group": "apps",
                "version": "v1",
                "kind": "Deployment",
                "namespace": dest_namespace,
                "name": f"{name}-ui",
            },
        ]
        app = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": hashlib.md5(f"{namespace}/{name}".encode()).hexdigest(),
                "resourceVersion": "1000",
                "generation": 1,
                "creationTimestamp": stamp,
            },
            "spec": {
                "source": {"repoURL": repo, "path": path, "targetRevision": target_revision},
                "destination": {"server": dest_server, "namespace": dest_namespace},
                "project": project,
            },
            "status": {
                "resources": [{**r, "status": sync, "health": {"status": health}} for r in resources],
                "sync": {
                    "status": sync,
                    "comparedTo": {"source": {"repoURL": repo, "path": path, "targetRevision": target_revision},
                                   "destination": {"server": dest_server, "namespace": dest_namespace}},
                    "revision": sha(target_revision),
                },
                "health": {"status": health},
                "history": [],
                "reconciledAt": stamp,
                "sourceType": "Directory",
                "summary": {"images": ["gcr.io/heptio-images/ks-guestbook-demo:0.2"]},
                "controllerNamespace": "argocd",
            },
        }  # fmt: skip
        self.apps[(namespace, name)] = app
        return app

    def plan(self, name: str, **kw: Any) -> None:
        self.plans[name] = Plan(**kw)

    def app(self, name: str, namespace: str = "argocd") -> dict[str, Any]:
        return self.apps[(namespace, name)]

    def _advance(self, key: tuple[str, str]) -> None:
        """One controller step for the application (called on each read)."""
        app = self.apps[key]
        status = app["status"]
        op_state = status.get("operationState")
        plan = self.plans.get(key[1], Plan())
        if app.get("operation") and (op_state is None or op_state.get("finishedAt")):
            status["operationState"] = {
                "operation": copy.deepcopy(app["operation"]),
                "phase": "Running",
                "message": "one or more tasks are running",
                "startedAt": self.tick(),
            }
            self._remaining[key] = plan.run_polls
            return
        if op_state and not op_state.get("finishedAt"):
            if op_state["phase"] == "Terminating":
                self._finish(key, "Failed", "Operation terminated")
                return
            if plan.outcome == "hang":
                return
            self._remaining[key] = self._remaining.get(key, 1) - 1
            if self._remaining[key] <= 0:
                self._finish(key, plan.outcome, None)
            return
        if op_state and status.get("reconciledAt", "") < op_state["finishedAt"]:
            status["reconciledAt"] = self.tick()
            return
        queue = self._health.get(key)
        if queue and len(queue) > 1:
            queue.pop(0)
            self._set_health(key, queue[0])

    def _set_health(self, key: tuple[str, str], health: str) -> None:
        status = self.apps[key]["status"]
        status["health"] = {"status": health}
        if health == "Degraded":
            status["health"]["message"] = "Deployment has not progressed within its deadline"
        for res in status["resources"]:
            res["health"] = {"status": health}

    def _finish(self, key: tuple[str, str], phase: str, message: str | None) -> None:
        app = self.apps[key]
        status = app["status"]
        op_state = status["operationState"]
        sync = op_state["operation"]["sync"]
        dry = bool(sync.get("dryRun"))
        revision = sync.get("revision") or app["spec"]["source"]["targetRevision"]
        if phase == "Succeeded" and revision == "does-not-exist":
            phase = "Error"
        results = []
        for res in status["resources"]:
            what = f"{res['kind'].lower()}{'.' + res['group'] if res.get('group') else ''}/{res['name']}"
            ok = phase == "Succeeded" or res["kind"] != "Deployment"
            results.append({
                **{k: res[k] for k in ("group", "version", "kind", "namespace", "name") if k in res},
                "status": "Synced" if ok else "SyncFailed",
                "message": f"{what} {'configured (dry run)' if dry else 'configured'}" if ok
                else f'Deployment.apps "{res["name"]}" is invalid: spec.template.spec.containers[0].image: Required value',
                "hookPhase": "Running" if ok else "Failed",
                "syncPhase": "Sync",
            })  # fmt: skip
        if message is None:
            message = {
                "Succeeded": "successfully synced (all tasks run)",
                "Failed": "one or more objects failed to apply, reason: Deployment.apps is invalid",
                "Error": f"ComparisonError: unable to resolve '{revision}' to a commit SHA",
            }[phase]
        op_state.update(
            phase=phase,
            message=message,
            finishedAt=self.tick(),
            syncResult={"resources": [] if phase == "Error" else results, "revision": sha(revision),
                        "source": app["spec"]["source"]},
        )  # fmt: skip
        app.pop("operation", None)
        if phase == "Succeeded" and not dry:
            status["sync"]["status"] = "Synced"
            status["sync"]["revision"] = sha(revision)
            for res in status["resources"]:
                res["status"] = "Synced"
            status["history"].append({
                "id": len(status["history"]), "revision": sha(revision), "deployedAt": op_state["finishedAt"],
                "deployStartedAt": op_state["startedAt"], "source": app["spec"]["source"],
                "initiatedBy": op_state["operation"].get("initiatedBy", {}),
            })  # fmt: skip
            plan = self.plans.get(key[1], Plan())
            self._health[key] = list(plan.health)
            if plan.health:
                self._set_health(key, plan.health[0])

    # -- HTTP --------------------------------------------------------------------------------------------
    def answer(self, request: Request) -> Reply:
        try:
            with self.state_lock:
                return self._route(request)
        except GrpcError as exc:
            body = {"error": exc.message, "code": exc.code, "message": exc.message}
            return exc_reply(GrpcError.HTTP.get(exc.code, 500), body)

    def _account(self, request: Request) -> str:
        auth = request.headers.get("Authorization") or ""
        if not auth:
            raise GrpcError(16, "no session information")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            raise GrpcError(16, "invalid session: token signature is invalid")
        return self.tokens[auth[7:]]

    def _route(self, request: Request) -> Reply:
        if request.path == "/api/v1/session" and request.method == "POST":
            body = json.loads(request.body or b"{}")
            if self.users.get(body.get("username")) != body.get("password") or not body.get("password"):
                raise GrpcError(16, "Invalid username or password")
            token = "session." + secrets.token_hex(16)
            self.tokens[token] = body["username"]
            return exc_reply(200, {"token": token})
        m = _APP.match(request.path)
        if m is None:
            return exc_reply(404, {"error": "Not Found", "code": 5, "message": "Not Found"})
        account = self._account(request)
        name = unquote(m.group(1))
        body = json.loads(request.body or b"{}") if request.method == "POST" else {}
        # appNamespace: a query parameter, or a field of the body for POST (the gateway's body: "*")
        namespace = body.get("appNamespace") or (request.query.get("appNamespace") or ["argocd"])[0]
        key = (namespace, name)
        action = m.group(2)
        if key not in self.apps:
            raise GrpcError(5, f'applications.argoproj.io "{name}" not found')
        app = self.apps[key]
        project = app["spec"]["project"]
        if request.method == "GET" and action is None:
            refresh = (request.query.get("refresh") or [None])[0]
            if refresh not in (None, "normal", "hard"):
                raise GrpcError(3, f"unknown refresh type {refresh!r}")
            self._advance(key)
            if refresh:
                self.refreshes.append((name, refresh))
                app["status"]["reconciledAt"] = max(app["status"]["reconciledAt"], self.tick())
            return exc_reply(200, app)
        if account == "readonly":
            verb = "sync" if action == "/sync" else "sync" if action == "/operation" else "update"
            raise GrpcError(7, f"permission denied: applications, {verb}, {project}/{name}, sub: {account}, iat: 2024-05-01T09:00:00Z")  # fmt: skip
        if request.method == "POST" and action == "/sync":
            self.syncs.append(body)
            op_state = app["status"].get("operationState")
            if app.get("operation") or (op_state and not op_state.get("finishedAt")):
                raise GrpcError(9, "another operation is already in progress")
            sync: dict[str, Any] = {k: body[k] for k in ("revision", "prune", "dryRun", "syncStrategy", "resources",
                                                         "syncOptions") if k in body}  # fmt: skip
            if "strategy" in body:
                sync["syncStrategy"] = body["strategy"]
            if isinstance(sync.get("syncOptions"), dict):
                sync["syncOptions"] = sync["syncOptions"].get("items", [])
            app["operation"] = {"sync": sync, "initiatedBy": {"username": account}, "retry": {}}
            return exc_reply(200, app)
        if request.method == "DELETE" and action == "/operation":
            op_state = app["status"].get("operationState")
            if op_state and not op_state.get("finishedAt"):
                op_state["phase"] = "Terminating"
                self.terminations.append(name)
                return exc_reply(200, {})
            if app.get("operation"):  # requested, never started: dropped
                app.pop("operation")
                self.terminations.append(name)
                return exc_reply(200, {})
            raise GrpcError(9, "Unable to terminate operation. No operation is in progress")
        raise GrpcError(12, "Method Not Allowed")


def sha(revision: str) -> str:
    """A commit SHA for a revision (a SHA stays itself, a branch or tag gets a stable fake one)."""
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    return hashlib.sha1(revision.encode()).hexdigest()


def exc_reply(status: int, body: Any) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
