"""A fake Nutanix Prism Central (v4 APIs) served over real HTTP on 127.0.0.1.

It follows the published v4 API references (VMM, data protection, Prism tasks;
the generated SDK docs list the same paths and headers):

* ``/api/vmm/v4.0/ahv/config/vms``: list (``$page`` from 0, ``$limit`` 1-100,
  ``$filter``, ``$orderby``, ``$select``; ``metadata.totalAvailableResults`` and
  ``links``), create (HTTP 202 + ``prism.v4.config.TaskReference``), read (with an
  ``ETag`` header), update ``PUT`` and ``DELETE`` and ``$actions/{power-on,
  power-off, shutdown, guest-shutdown, reboot, guest-reboot, reset, power-cycle,
  clone}`` -- all of those need ``If-Match`` (HTTP 428 without, 412 when stale).
* ``/api/vmm/v4.0/content/templates``: create from a ``TemplateVmReference`` or a
  ``TemplateVersionReference``, read, ``$actions/deploy``.
* ``/api/dataprotection/{v4.0|v4.0.a4|...}/config/recovery-points``: create, list,
  read, delete, ``$actions/restore``.
* ``/api/prism/v4.0/config/tasks/{extId}``: the task (``status`` QUEUED, RUNNING,
  SUCCEEDED, FAILED, CANCELING, CANCELED; ``progressPercentage``;
  ``entitiesAffected``; ``errorMessages``; ``isCancelable``) and
  ``$actions/cancel``.

Mutating calls need an ``NTNX-Request-Id`` (a repeated id returns the first
answer: the idempotence the API documents). Errors are v4 envelopes
``{"data": {"error": [{"message", "code", "severity"...}]}}``. Authentication is
HTTP basic, a bearer token or ``X-ntnx-api-key``; HTTP 401 otherwise, 403 for a
read-only user's changes.

Tasks advance with time (``tick`` seconds a step). ``plan(outcome)`` makes the
next tasks ``FAIL``, ``HANG`` (never completes, cancelable) or ``HANG_NOCANCEL``;
so do VM names containing ``fail`` or ``hang`` at creation.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from roost.testing.http import FakeHttpServer, Reply, Request

CLUSTER = "0005f2a1-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
OTHER_CLUSTER = "0005f2a1-aaaa-bbbb-cccc-ddddeeeeffff"
VMM = "/api/vmm/v4.0"
ACTIONS = {
    "power-on",
    "power-off",
    "shutdown",
    "guest-shutdown",
    "reboot",
    "guest-reboot",
    "reset",
    "power-cycle",
    "clone",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Fail(Exception):
    """Raised by a task effect: the task ends FAILED with this message."""

    def __init__(self, message: str, code: str = "VMM-30100") -> None:
        super().__init__(message)
        self.code = code


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str = "VMM-20000", ns: str = "vmm") -> None:
        self.status = status
        self.payload = envelope(message, code, ns)


def envelope(message: str, code: str, ns: str = "vmm") -> dict[str, Any]:
    return {
        "data": {
            "error": [
                {
                    "message": message,
                    "severity": "ERROR",
                    "code": code,
                    "locale": "en_US",
                    "$objectType": f"{ns}.v4.error.AppMessage",
                }
            ],
            "$objectType": f"{ns}.v4.error.ErrorResponse",
        },
        "$reserved": {"$fv": "v4.r0"},
        "$objectType": f"{ns}.v4.error.ErrorResponse",
    }


@dataclass
class VmRecord:
    vm: dict[str, Any]
    etag: str = field(default_factory=lambda: uuid.uuid4().hex)
    ip_at: float | None = None

    def touch(self) -> None:
        self.etag = uuid.uuid4().hex


@dataclass
class FakeTask:
    ext_id: str
    operation: str
    description: str
    created: float
    outcome: str
    effect: Callable[[], list[dict[str, Any]]]
    steps: int = 2
    cancel_at: float | None = None
    final: str | None = None
    progress: int = 0
    entities: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    completed: str | None = None
    created_iso: str = field(default_factory=now_iso)

    @property
    def cancelable(self) -> bool:
        return self.outcome != "HANG_NOCANCEL"

    def advance(self, now: float, tick: float) -> None:
        if self.final:
            return
        if self.cancel_at is not None:
            if now - self.cancel_at >= tick:
                self.final, self.completed = "CANCELED", now_iso()
            return
        ticks = (now - self.created) / tick
        if ticks < 1:
            self.progress = 0
            return
        if self.outcome.startswith("HANG"):
            self.progress = 50
            return
        if ticks < self.steps:
            self.progress = min(99, int(100 * ticks / self.steps))
            return
        self.progress = 100
        self.completed = now_iso()
        if self.outcome == "FAIL":
            self.final = "FAILED"
            self.errors = [
                {
                    "message": "Operation failed: insufficient resources on the cluster",
                    "code": "VMM-30100",
                    "severity": "ERROR",
                    "locale": "en_US",
                }
            ]
            return
        try:
            self.entities = self.effect()
            self.final = "SUCCEEDED"
        except _Fail as fail:
            self.final = "FAILED"
            self.errors = [{"message": str(fail), "code": fail.code, "severity": "ERROR", "locale": "en_US"}]

    def status(self) -> str:
        if self.final:
            return self.final
        if self.cancel_at is not None:
            return "CANCELING"
        return "QUEUED" if self.progress == 0 else "RUNNING"

    def to_json(self) -> dict[str, Any]:
        return {
            "extId": self.ext_id,
            "operation": self.operation,
            "operationDescription": self.description,
            "createdTime": self.created_iso,
            "startedTime": self.created_iso,
            "completedTime": self.completed,
            "status": self.status(),
            "progressPercentage": self.progress,
            "entitiesAffected": self.entities,
            "isCancelable": self.cancelable and not self.final,
            "errorMessages": self.errors or None,
            "clusterExtIds": [CLUSTER],
            "$objectType": "prism.v4.config.Task",
        }


@dataclass
class Account:
    name: str
    password: str
    token: str
    api_key: str
    admin: bool = True


class FakePrism(FakeHttpServer):
    protocol_version = "HTTP/1.1"

    def __init__(self, tick: float = 0.05) -> None:
        super().__init__()
        self.tick = tick
        self.accounts = [
            Account("admin", "Nutanix/4u-Secret", "eyJ0b2tlbi1hZG1pbiJ9.sig", "apikey-admin-0123456789"),
            Account("viewer", "View-Only-Pass1", "eyJ0b2tlbi12aWV3ZXIifQ.sig", "apikey-viewer-987654"),
        ]
        self.accounts[1].admin = False
        self.vms: dict[str, VmRecord] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.rps: dict[str, dict[str, Any]] = {}
        self.rp_specs: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.request_ids: dict[str, tuple[int, dict[str, str], Any]] = {}
        self.plans: list[str] = []
        self.bump_after_get: dict[str, int] = {}
        self.cancel_calls: list[str] = []
        self._ip = 20
        self.seed()

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def conn(self) -> dict[str, Any]:
        """Connection properties of the admin user."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "scheme": "https" if self.tls else "http",
            "username": "admin",
            "password": self.accounts[0].password,
        }

    # -- state -------------------------------------------------------------------------------------
    def seed(self) -> None:
        self.add_vm("web-01", power="ON", sockets=2, cores=2, memory=4 << 30, ip="10.1.0.11", ngt=True)
        self.add_vm("db-01", power="OFF", sockets=4, cores=1, memory=8 << 30)
        for i in (1, 2, 3):
            self.add_vm(f"app-0{i}", power="OFF", sockets=1, cores=2, memory=2 << 30)
        web = self.vm_by_name("web-01")
        version = str(uuid.uuid4())
        tpl = str(uuid.uuid4())
        self.templates[tpl] = self._template(
            tpl, "ubuntu-golden", "Golden image", version, "v1", copy.deepcopy(web)
        )
        rp = str(uuid.uuid4())
        self.rps[rp] = self._rp(rp, "daily-web-01", web["extId"], "CRASH_CONSISTENT", None)
        self.rp_specs[rp] = copy.deepcopy(web)

    def add_vm(
        self,
        name: str,
        *,
        power: str = "OFF",
        sockets: int = 1,
        cores: int = 1,
        memory: int = 1 << 30,
        ip: str | None = None,
        ngt: bool = False,
        cluster: str = CLUSTER,
    ) -> dict[str, Any]:
        ext_id = str(uuid.uuid4())
        nic = {
            "backingInfo": {
                "model": "VIRTIO",
                "macAddress": "50:6b:8d:00:00:%02x" % (len(self.vms) + 1),
                "isConnected": True,
            },
            "networkInfo": {"nicType": "NORMAL_NIC", "subnet": {"extId": "subnet-1"}},
        }
        if ip:
            nic["networkInfo"]["ipv4Info"] = {"learnedIpAddresses": [{"value": ip, "prefixLength": 24}]}
        vm = {
            "extId": ext_id,
            "name": name,
            "description": f"{name} (seeded)",
            "createTime": now_iso(),
            "numSockets": sockets,
            "numCoresPerSocket": cores,
            "numThreadsPerCore": 1,
            "memorySizeBytes": memory,
            "powerState": power,
            "machineType": "PC",
            "cluster": {"extId": cluster},
            "host": {"extId": "host-1"},
            "nics": [nic],
            "disks": [
                {"diskAddress": {"busType": "SCSI", "index": 0}, "backingInfo": {"diskSizeBytes": 20 << 30}}
            ],
            "guestTools": {"isEnabled": ngt, "isInstalled": ngt},
            "$objectType": "vmm.v4.ahv.config.Vm",
        }
        self.vms[ext_id] = VmRecord(vm)
        return vm

    def vm_by_name(self, name: str) -> dict[str, Any]:
        with self.lock:
            return next(r.vm for r in self.vms.values() if r.vm["name"] == name)

    def plan(self, outcome: str, times: int = 1) -> None:
        self.plans.extend([outcome] * times)

    def _template(
        self,
        ext_id: str,
        name: str,
        description: str | None,
        version: str,
        version_name: str | None,
        spec: dict[str, Any],
        source: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "extId": ext_id,
            "templateName": name,
            "templateDescription": description,
            "createTime": now_iso(),
            "templateVersionSpec": {
                "extId": version,
                "versionName": version_name or "v1",
                "vmSpec": spec,
                "isActiveVersion": True,
                "versionSource": source,
            },
            "$objectType": "vmm.v4.content.Template",
        }

    def _rp(self, ext_id: str, name: str, vm_id: str, kind: str, expiry: str | None) -> dict[str, Any]:
        return {
            "extId": ext_id,
            "name": name,
            "creationTime": now_iso(),
            "expirationTime": expiry,
            "status": "COMPLETE",
            "recoveryPointType": kind,
            "locationReferences": [{"locationExtId": CLUSTER}],
            "vmRecoveryPoints": [{"extId": str(uuid.uuid4()), "vmExtId": vm_id}],
            "$objectType": "dataprotection.v4.config.RecoveryPoint",
        }

    def _task(
        self, operation: str, description: str, effect: Callable[[], list[dict[str, Any]]], name: str = ""
    ) -> dict[str, Any]:
        outcome = self.plans.pop(0) if self.plans else "SUCCEEDED"
        if "hang" in name:
            outcome = "HANG"
        elif "fail" in name:
            outcome = "FAIL"
        ext_id = "ZXJnb24=:" + str(uuid.uuid4())
        self.tasks[ext_id] = FakeTask(ext_id, operation, description, time.monotonic(), outcome, effect)
        return {
            "data": {"extId": ext_id, "$objectType": "prism.v4.config.TaskReference"},
            "metadata": {"flags": [{"name": "hasError", "value": False}]},
            "$objectType": "vmm.v4.ahv.config.TaskReferenceApiResponse",
        }

    def _advance(self) -> None:
        now = time.monotonic()
        for t in list(self.tasks.values()):
            t.advance(now, self.tick)
        for rec in self.vms.values():
            if rec.ip_at is not None and now >= rec.ip_at and rec.vm["powerState"] == "ON":
                rec.ip_at = None
                self._ip += 1
                for nic in rec.vm.get("nics") or []:
                    nic.setdefault("networkInfo", {})["ipv4Info"] = {
                        "learnedIpAddresses": [{"value": f"10.1.0.{self._ip}", "prefixLength": 24}]
                    }
                rec.touch()

    # -- HTTP ----------------------------------------------------------------------------------------
    def authenticate(self, headers: Any) -> Account | None:
        auth = headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
            return next((a for a in self.accounts if a.name == user and a.password == password), None)
        if auth.startswith("Bearer "):
            return next((a for a in self.accounts if a.token == auth[7:]), None)
        key = headers.get("X-ntnx-api-key")
        return next((a for a in self.accounts if key and a.api_key == key), None)

    def record(self, req: Request) -> None:
        self.requests.append(
            {
                "method": req.method,
                "path": unquote(req.path),
                "query": _query(req),
                "headers": dict(req.headers.items()),
                "body": req.body,
            }
        )

    def answer(self, req: Request) -> Reply:
        method, path, query, headers, body = req.method, unquote(req.path), _query(req), req.headers, req.body
        with self.lock:
            account = self.authenticate(headers)
            if account is None:
                return self._json(
                    401, envelope("Authentication failed: invalid credentials", "IAM-10001", "iam")
                )
            request_id = headers.get("NTNX-Request-Id")
            if method != "GET":
                if not account.admin:
                    return self._json(
                        403,
                        envelope(
                            f"User '{account.name}' is not authorized to perform this operation",
                            "IAM-10403",
                            "iam",
                        ),
                    )
                if not request_id:
                    return self._json(
                        400, envelope("Missing the required NTNX-Request-Id header", "VMM-20001")
                    )
                if request_id in self.request_ids:
                    return self.request_ids[request_id]
            self._advance()
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                return self._json(400, envelope("Malformed JSON body", "VMM-20002"))
            try:
                status, out, extra = self.route(method, path, query, payload, headers)
            except _HttpError as err:
                status, out, extra = err.status, err.payload, {}
            reply = self._json(status, out, extra)
            if request_id and method != "GET" and status < 500:
                self.request_ids[request_id] = reply
            return reply

    @staticmethod
    def _json(
        status: int, payload: Any, extra: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json", **(extra or {})}, json.dumps(payload).encode()

    def route(
        self, method: str, path: str, query: dict, body: Any, headers: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if path == f"{VMM}/ahv/config/vms":
            if method == "GET":
                return (
                    200,
                    self.listing(path, [r.vm for r in self.vms.values()], query, "vmm.v4.ahv.config.Vm"),
                    {},
                )
            if method == "POST":
                return 202, self.create_vm(body), {}
        m = re.fullmatch(rf"{VMM}/ahv/config/vms/([^/]+)(?:/\$actions/([a-z-]+))?", path)
        if m:
            rec = self.vms.get(m.group(1))
            if rec is None:
                raise _HttpError(404, f"Failed to find VM with extId {m.group(1)}", "VMM-20005")
            if m.group(2) is None and method == "GET":
                etag = rec.etag
                if self.bump_after_get.get(rec.vm["extId"]):
                    self.bump_after_get[rec.vm["extId"]] -= 1
                    rec.touch()  # someone else changes the VM right after this read
                return (
                    200,
                    {"data": rec.vm, "$objectType": "vmm.v4.ahv.config.GetVmApiResponse"},
                    {"ETag": etag},
                )
            self._check_etag(rec, headers)
            if m.group(2) is None and method == "PUT":
                return 202, self.update_vm(rec, body), {}
            if m.group(2) is None and method == "DELETE":
                vm_id = rec.vm["extId"]
                return 202, self._task("kVmDelete", "Delete VM", lambda: self._delete_vm(vm_id)), {}
            if method == "POST" and m.group(2) in ACTIONS:
                return 202, self.vm_action(rec, m.group(2), body or {}), {}
            raise _HttpError(404, f"Unknown VM operation {method} {m.group(2)}", "VMM-20404")
        if path == f"{VMM}/content/templates":
            if method == "POST":
                return 202, self.create_template(body), {}
            return (
                200,
                self.listing(path, list(self.templates.values()), query, "vmm.v4.content.Template"),
                {},
            )
        m = re.fullmatch(rf"{VMM}/content/templates/([^/]+)(/\$actions/deploy)?", path)
        if m:
            tpl = self.templates.get(m.group(1))
            if tpl is None:
                raise _HttpError(404, f"Template {m.group(1)} not found", "VMM-40404")
            if m.group(2) and method == "POST":
                return 202, self.deploy(tpl, body or {}), {}
            if method == "GET":
                return 200, {"data": tpl}, {}
        m = re.fullmatch(
            r"/api/dataprotection/(v4\.\d(?:\.[ab]\d)?)/config/recovery-points(?:/([^/]+))?(/\$actions/restore)?",
            path,
        )
        if m:
            return self.recovery_points(method, path, m.group(2), bool(m.group(3)), query, body or {})
        m = re.fullmatch(r"/api/prism/v4\.0/config/tasks/([^/]+)(/\$actions/cancel)?", path)
        if m:
            task = self.tasks.get(m.group(1))
            if task is None:
                raise _HttpError(404, f"Task {m.group(1)} not found", "PRISM-10404", "prism")
            if m.group(2) and method == "POST":
                self.cancel_calls.append(task.ext_id)
                if task.final:
                    raise _HttpError(
                        409, f"Task {task.ext_id} is already {task.final}", "PRISM-10409", "prism"
                    )
                if not task.cancelable:
                    raise _HttpError(400, f"Task {task.ext_id} is not cancelable", "PRISM-10400", "prism")
                task.cancel_at = time.monotonic()
                return (
                    200,
                    {
                        "data": {
                            "message": "Cancellation requested",
                            "$objectType": "prism.v4.config.CancelTaskApiResponseData",
                        }
                    },
                    {},
                )
            if method == "GET":
                return 200, {"data": task.to_json(), "$objectType": "prism.v4.config.GetTaskApiResponse"}, {}
        raise _HttpError(404, f"No API at {method} {path}", "GW-404", "gateway")

    def _check_etag(self, rec: VmRecord, headers: Any) -> None:
        given = headers.get("If-Match")
        if not given:
            raise _HttpError(428, "The If-Match header is required for this operation", "VMM-20428")
        if given != rec.etag:
            raise _HttpError(412, "The ETag in If-Match does not match the current VM version", "VMM-20412")

    def listing(self, path: str, items: list[dict[str, Any]], query: dict, kind: str) -> dict[str, Any]:
        try:
            page = int(query.get("$page", 0))
            limit = int(query.get("$limit", 50))
        except ValueError:
            raise _HttpError(400, "$page and $limit must be integers", "VMM-20400") from None
        if not 1 <= limit <= 100 or page < 0:
            raise _HttpError(400, f"Invalid $limit {limit}: it must be between 1 and 100", "VMM-20400")
        items = [i for i in items if _matches(i, query.get("$filter"))]
        if query.get("$orderby"):
            key, _, direction = query["$orderby"].partition(" ")
            items.sort(key=lambda i: str(i.get(key) or ""), reverse=direction.strip().lower() == "desc")
        chunk = items[page * limit : (page + 1) * limit]
        if query.get("$select"):
            fields = {f.strip() for f in query["$select"].split(",")} | {"extId"}
            chunk = [{k: v for k, v in i.items() if k in fields} for i in chunk]
        links = [{"href": f"{path}?$page={page}&$limit={limit}", "rel": "self"}]
        if (page + 1) * limit < len(items):
            links.append({"href": f"{path}?$page={page + 1}&$limit={limit}", "rel": "next"})
        out: dict[str, Any] = {
            "metadata": {
                "totalAvailableResults": len(items),
                "links": links,
                "flags": [{"name": "isPaginated", "value": True}],
            }
        }
        if chunk:
            out["data"] = chunk
        return out

    # -- operations ------------------------------------------------------------------------------------
    def create_vm(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("name"):
            raise _HttpError(400, "Schema validation failed: name is required", "VMM-20100")
        cluster = (body.get("cluster") or {}).get("extId")
        if cluster not in (CLUSTER, OTHER_CLUSTER):
            raise _HttpError(400, f"Cluster {cluster} was not found", "VMM-20007")
        spec = copy.deepcopy(body)

        def effect() -> list[dict[str, Any]]:
            vm = self.add_vm(spec["name"], cluster=cluster)
            vm.update({k: v for k, v in spec.items() if k not in ("extId", "powerState")})
            vm["powerState"] = "OFF"
            return [{"extId": vm["extId"], "rel": "vmm:ahv:config:vm", "name": vm["name"]}]

        return self._task("kVmCreate", "Create VM", effect, name=spec["name"])

    def update_vm(self, rec: VmRecord, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _HttpError(400, "Schema validation failed: a VM object is required", "VMM-20100")
        spec = copy.deepcopy(body)

        def effect() -> list[dict[str, Any]]:
            power = rec.vm["powerState"]
            rec.vm = {**spec, "extId": rec.vm["extId"], "powerState": power}
            rec.touch()
            return [{"extId": rec.vm["extId"], "rel": "vmm:ahv:config:vm", "name": rec.vm.get("name")}]

        rec.touch()
        return self._task("kVmUpdate", "Update VM", effect)

    def _delete_vm(self, vm_id: str) -> list[dict[str, Any]]:
        rec = self.vms.pop(vm_id)
        return [{"extId": vm_id, "rel": "vmm:ahv:config:vm", "name": rec.vm.get("name")}]

    def vm_action(self, rec: VmRecord, action: str, body: dict[str, Any]) -> dict[str, Any]:
        vm = rec.vm
        if action == "clone":
            overrides = copy.deepcopy(body)

            def clone() -> list[dict[str, Any]]:
                new = copy.deepcopy(vm)
                new.update(overrides)
                new["name"] = overrides.get("name") or f"{vm['name']}-clone"
                new["extId"] = str(uuid.uuid4())
                new["powerState"] = "OFF"
                new["createTime"] = now_iso()
                for nic in new.get("nics") or []:
                    (nic.get("networkInfo") or {}).pop("ipv4Info", None)
                self.vms[new["extId"]] = VmRecord(new)
                return [
                    {"extId": vm["extId"], "rel": "vmm:ahv:config:vm", "name": vm["name"]},
                    {"extId": new["extId"], "rel": "vmm:ahv:config:vm", "name": new["name"]},
                ]

            return self._task("kVmClone", "Clone VM", clone)

        def power() -> list[dict[str, Any]]:
            state = vm["powerState"]
            if action.startswith("guest-") and not (vm.get("guestTools") or {}).get("isInstalled"):
                raise _Fail(f"Nutanix Guest Tools are not installed in VM {vm['name']}", "VMM-30205")
            if action == "power-on":
                if state == "ON":
                    raise _Fail(f"VM {vm['name']} is already powered on", "VMM-30201")
                vm["powerState"] = "ON"
                rec.ip_at = time.monotonic() + 2 * self.tick
            elif action in ("power-off", "shutdown", "guest-shutdown"):
                if state == "OFF":
                    raise _Fail(f"VM {vm['name']} is already powered off", "VMM-30202")
                vm["powerState"] = "OFF"
                for nic in vm.get("nics") or []:
                    (nic.get("networkInfo") or {}).pop("ipv4Info", None)
            elif state != "ON":
                raise _Fail(f"Cannot {action} VM {vm['name']}: it is not powered on", "VMM-30203")
            rec.touch()
            return [{"extId": vm["extId"], "rel": "vmm:ahv:config:vm", "name": vm["name"]}]

        return self._task(f"kVm{action.title().replace('-', '')}", f"VM {action}", power)

    def create_template(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("templateName"):
            raise _HttpError(400, "Schema validation failed: templateName is required", "VMM-20100")
        spec = body.get("templateVersionSpec") or {}
        source = spec.get("versionSource") or {}
        kind = source.get("$objectType")
        if kind == "vmm.v4.content.TemplateVmReference":
            rec = self.vms.get(source.get("extId") or "")
            if rec is None:
                raise _HttpError(404, f"Failed to find VM with extId {source.get('extId')}", "VMM-20005")
            vm_spec = copy.deepcopy(rec.vm)
        elif kind == "vmm.v4.content.TemplateVersionReference":
            version = self._version(source.get("versionId"))
            if version is None:
                raise _HttpError(404, f"Template version {source.get('versionId')} not found", "VMM-40405")
            vm_spec = {**copy.deepcopy(version["vmSpec"]), **(source.get("overrideVmConfig") or {})}
        else:
            raise _HttpError(400, f"Unsupported versionSource $objectType {kind!r}", "VMM-20100")

        def effect() -> list[dict[str, Any]]:
            ext_id, version_id = str(uuid.uuid4()), str(uuid.uuid4())
            self.templates[ext_id] = self._template(
                ext_id,
                body["templateName"],
                body.get("templateDescription"),
                version_id,
                spec.get("versionName"),
                vm_spec,
                source,
            )
            return [{"extId": ext_id, "rel": "vmm:content:template", "name": body["templateName"]}]

        return self._task("kCreateTemplate", "Create template", effect)

    def _version(self, version_id: str | None) -> dict[str, Any] | None:
        for tpl in self.templates.values():
            if tpl["templateVersionSpec"]["extId"] == version_id:
                return tpl["templateVersionSpec"]
        return None

    def deploy(self, tpl: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        version = self._version(body.get("versionId") or tpl["templateVersionSpec"]["extId"])
        if version is None:
            raise _HttpError(404, f"Template version {body.get('versionId')} not found", "VMM-40405")
        cluster = body.get("clusterReference")
        if cluster not in (CLUSTER, OTHER_CLUSTER):
            raise _HttpError(400, f"Cluster {cluster} was not found", "VMM-20007")
        count = int(body.get("numberOfVms") or 1)
        overrides = body.get("overrideVmConfigMap") or {}

        def effect() -> list[dict[str, Any]]:
            out = []
            for i in range(count):
                o = overrides.get(str(i)) or {}
                vm = self.add_vm(o.get("name") or f"{tpl['templateName']}-{i + 1}", cluster=cluster)
                vm.update(
                    {
                        k: v
                        for k, v in version["vmSpec"].items()
                        if k in ("numSockets", "numCoresPerSocket", "memorySizeBytes", "disks")
                    }
                )
                vm.update({k: v for k, v in o.items() if k != "guestCustomization"})
                out.append({"extId": vm["extId"], "rel": "vmm:ahv:config:vm", "name": vm["name"]})
            return out

        return self._task("kDeployTemplate", "Deploy template", effect)

    def recovery_points(
        self, method: str, path: str, rp_id: str | None, restore: bool, query: dict, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        if rp_id is None:
            if method == "GET":
                return (
                    200,
                    self.listing(
                        path, list(self.rps.values()), query, "dataprotection.v4.config.RecoveryPoint"
                    ),
                    {},
                )
            if method == "POST":
                vms = [v.get("vmExtId") for v in body.get("vmRecoveryPoints") or []]
                if not body.get("name") or not vms:
                    raise _HttpError(
                        400,
                        "Schema validation failed: name and vmRecoveryPoints are required",
                        "DTP-20100",
                        "dataprotection",
                    )
                if vms[0] not in self.vms:
                    raise _HttpError(404, f"VM {vms[0]} not found", "DTP-20404", "dataprotection")
                spec = copy.deepcopy(self.vms[vms[0]].vm)

                def effect() -> list[dict[str, Any]]:
                    ext_id = str(uuid.uuid4())
                    self.rps[ext_id] = self._rp(
                        ext_id,
                        body["name"],
                        vms[0],
                        body.get("recoveryPointType") or "CRASH_CONSISTENT",
                        body.get("expirationTime"),
                    )
                    self.rp_specs[ext_id] = spec
                    return [
                        {"extId": ext_id, "rel": "dataprotection:config:recovery-point", "name": body["name"]}
                    ]

                return 202, self._task("kCreateRecoveryPoint", "Create recovery point", effect), {}
        rp = self.rps.get(rp_id or "")
        if rp is None:
            raise _HttpError(404, f"Recovery point {rp_id} not found", "DTP-20404", "dataprotection")
        if restore and method == "POST":
            cluster = body.get("clusterExtId")
            if cluster not in (CLUSTER, OTHER_CLUSTER):
                raise _HttpError(400, f"Cluster {cluster} was not found", "DTP-20007", "dataprotection")
            spec = self.rp_specs.get(rp_id, {})

            def restore_effect() -> list[dict[str, Any]]:
                vm = self.add_vm(f"{spec.get('name', 'vm')}-restored", cluster=cluster)
                vm.update(
                    {k: spec[k] for k in ("numSockets", "numCoresPerSocket", "memorySizeBytes") if k in spec}
                )
                return [{"extId": vm["extId"], "rel": "vmm:ahv:config:vm", "name": vm["name"]}]

            return 202, self._task("kRestoreRecoveryPoint", "Restore recovery point", restore_effect), {}
        if method == "GET":
            return 200, {"data": rp}, {}
        if method == "DELETE":

            def delete() -> list[dict[str, Any]]:
                self.rps.pop(rp_id, None)
                return [{"extId": rp_id, "rel": "dataprotection:config:recovery-point", "name": rp["name"]}]

            return 202, self._task("kDeleteRecoveryPoint", "Delete recovery point", delete), {}
        raise _HttpError(404, f"No API at {method} {path}", "GW-404", "gateway")


_CLAUSE = re.compile(
    r"^\s*(?:startswith\((?P<sf>[\w/]+),\s*'(?P<sv>[^']*)'\)"
    r"|(?P<f>[\w/]+)\s+(?P<op>eq|ne)\s+(?:[\w.]+)?'(?P<v>[^']*)')\s*$"
)


def _matches(item: dict[str, Any], expression: str | None) -> bool:
    if not expression:
        return True
    for clause in re.split(r"\s+and\s+", expression.strip()):
        m = _CLAUSE.match(clause)
        if not m:
            raise _HttpError(400, f"Invalid $filter expression: {clause!r}", "VMM-20400")
        field_path = m.group("sf") or m.group("f")
        value: Any = item
        for part in field_path.split("/"):
            value = value.get(part) if isinstance(value, dict) else None
        if m.group("sf"):
            if not str(value or "").startswith(m.group("sv")):
                return False
        elif (str(value) == m.group("v")) != (m.group("op") == "eq"):
            return False
    return True


def _query(req: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(req.target).query).items()}
