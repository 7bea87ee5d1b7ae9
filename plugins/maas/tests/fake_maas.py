"""A fake MAAS region API (2.0) served over real HTTP on 127.0.0.1.

It follows the MAAS API reference and the region's handlers
(maasserver/api/machines.py, nodes.py):

* ``GET /MAAS/api/2.0/machines/`` lists machines (filters ``hostname``, ``id``,
  ``zone``, ``pool``, ``tags``); ``POST`` creates (enlists) one from
  ``architecture`` + ``mac_addresses`` (+ ``power_type``, ``power_parameters_*``,
  ``commission`` defaulting to true for admins), form errors are HTTP 400 with a
  JSON object of field -> messages.
* ``GET /machines/{system_id}/`` reads one (404 ``No Machine matches the given
  query.``); named operations are selected with ``op`` (query string or form):
  ``POST op=commission|deploy|power_on|power_off|abort|set_storage_layout`` and
  ``GET op=query_power_state`` (``{"state": "on"}``). State violations are HTTP
  409 (NodeStateViolation), e.g. deploying a New machine or powering on a
  machine nobody allocated.
* ``POST /tags/`` creates a tag; ``POST /tags/{name}/?op=update_nodes`` adds
  machines to it.
* Every call needs ``Authorization: OAuth ...`` with PLAINTEXT signature
  ``&<token secret>``, a nonce and a timestamp; anything else is HTTP 401
  ``Authorization Error: ...`` (which, like MAAS, names the token key).

Machines move through MAAS statuses over time, one step every ``tick``
seconds: commissioning goes Commissioning -> Testing -> Ready, deployment
Allocated -> Deploying -> Deployed. Behaviour profiles make a machine's
commissioning or deployment hang forever or fail.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from roost.testing.http import FakeHttpServer, Reply, Request

STATUS = {
    "New": 0,
    "Commissioning": 1,
    "Failed commissioning": 2,
    "Ready": 4,
    "Deployed": 6,
    "Broken": 8,
    "Deploying": 9,
    "Allocated": 10,
    "Failed deployment": 11,
    "Testing": 21,
    "Failed testing": 22,
}
NAMES = {v: k for k, v in STATUS.items()}
API = "/MAAS/api/2.0"
MAC = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")
LAYOUTS = {"flat", "lvm", "bcache", "vmfs6", "vmfs7", "blank", "custom"}


@dataclass
class User:
    name: str
    consumer: str
    token: str
    secret: str
    admin: bool = True

    @property
    def api_key(self) -> str:
        return f"{self.consumer}:{self.token}:{self.secret}"


@dataclass
class Machine:
    system_id: str
    hostname: str
    status: int
    macs: list[str]
    profile: str = "normal"  # normal | hang-commission | fail-commission | hang-deploy | fail-deploy
    power_state: str = "off"
    power_type: str = "ipmi"
    power_parameters: dict[str, str] = field(default_factory=dict)
    architecture: str = "amd64/generic"
    domain: str = "maas"
    zone: str = "default"
    pool: str = "default"
    owner: str | None = None
    osystem: str = ""
    distro_series: str = ""
    hwe_kernel: str | None = None
    ips: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    status_message: str = ""
    storage_layout: str | None = None
    user_data: bytes | None = None
    description: str = ""
    # (due time, callable) steps applied when their time has come
    pending: list[tuple[float, Any]] = field(default_factory=list)
    previous_status: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "system_id": self.system_id,
            "hostname": self.hostname,
            "description": self.description,
            "domain": {"name": self.domain, "id": 0, "resource_uri": "/MAAS/api/2.0/domains/0/"},
            "fqdn": f"{self.hostname}.{self.domain}",
            "owner": self.owner,
            "architecture": self.architecture,
            "cpu_count": 8,
            "memory": 16384,
            "status": self.status,
            "status_name": NAMES[self.status],
            "status_message": self.status_message,
            "status_action": "",
            "osystem": self.osystem,
            "distro_series": self.distro_series,
            "hwe_kernel": self.hwe_kernel,
            "netboot": True,
            "power_type": self.power_type,
            "power_state": self.power_state,
            "tag_names": list(self.tags),
            "ip_addresses": list(self.ips),
            "interface_set": [
                {"id": i, "name": f"eno{i + 1}", "type": "physical", "mac_address": mac, "enabled": True}
                for i, mac in enumerate(self.macs)
            ],
            "boot_interface": {"name": "eno1", "mac_address": self.macs[0] if self.macs else None},
            "zone": {"name": self.zone, "id": 1, "description": ""},
            "pool": {"name": self.pool, "id": 0, "description": ""},
            "node_type": 0,
            "node_type_name": "Machine",
            "resource_uri": f"{API}/machines/{self.system_id}/",
        }


class FakeMaas(FakeHttpServer):
    """The server and its state; ``tick`` is the duration of one status step."""

    protocol_version = "HTTP/1.1"
    fault_content_type = "text/plain"

    def __init__(self, tick: float = 0.05) -> None:
        super().__init__()
        self.tick = tick
        self.users = [
            User("admin", "CoNsUmErKeY1", "ToKeNkEy0001", "SeCrEtVaLuE000001"),
            User("viewer", "CoNsUmErKeY2", "ToKeNkEy0002", "SeCrEtVaLuE000002", admin=False),
        ]
        self.machines: dict[str, Machine] = {}
        self.tags: dict[str, str] = {}
        self.nonces: set[str] = set()
        self._ids = itertools.count(1)
        self._ip = itertools.count(10)
        self.seed()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{super().url}/MAAS"

    @property
    def admin_key(self) -> str:
        return self.users[0].api_key

    @property
    def viewer_key(self) -> str:
        return self.users[1].api_key

    # -- state -------------------------------------------------------------------------------
    def seed(self) -> None:
        self.add("ready01", "Ready", profile="normal")
        self.add("ready02", "Ready", profile="fail-deploy")
        self.add("ready03", "Ready", profile="hang-deploy", zone="zone-b", pool="production", tags=["ssd"])
        self.add("new01", "New", profile="normal")
        self.add("hang01", "New", profile="hang-commission")
        self.add("fail01", "New", profile="fail-commission")
        self.add(
            "deployed01",
            "Deployed",
            owner="admin",
            power_state="on",
            osystem="ubuntu",
            distro_series="jammy",
            ips=["10.0.0.5"],
            zone="zone-b",
            pool="production",
            tags=["ssd", "kubernetes-node"],
        )

    def add(self, hostname: str, status: str, **kw: Any) -> Machine:
        n = next(self._ids)
        system_id = f"{hostname[:3]}{n:03d}"
        mac = kw.pop("macs", None) or [f"52:54:00:00:00:{n:02x}"]
        m = Machine(system_id=system_id, hostname=hostname, status=STATUS[status], macs=mac, **kw)
        self.machines[system_id] = m
        return m

    def by_hostname(self, hostname: str) -> Machine:
        with self.lock:
            self._advance()
            return next(m for m in self.machines.values() if m.hostname == hostname)

    def ops(self, system_id: str) -> list[str]:
        return [r["op"] for r in self.requests if r["path"].rstrip("/").endswith(system_id) and r["op"]]

    def _advance(self) -> None:
        now = time.monotonic()
        for m in self.machines.values():
            due = [(t, step) for t, step in m.pending if t <= now]
            m.pending = [(t, step) for t, step in m.pending if t > now]
            for _, step in sorted(due, key=lambda p: p[0]):
                step(m)

    def _schedule(self, m: Machine, *steps: Any) -> None:
        now = time.monotonic()
        m.pending = [(now + self.tick * (i + 1), step) for i, step in enumerate(steps)]

    @staticmethod
    def _set(status: str, power: str | None = None, message: str = "") -> Any:
        def step(m: Machine) -> None:
            m.status = STATUS[status]
            m.status_message = message
            if power is not None:
                m.power_state = power

        return step

    def _commission(self, m: Machine) -> None:
        m.previous_status = m.status
        m.status = STATUS["Commissioning"]
        m.status_message = "Commissioning"
        m.power_state = "on"
        if m.profile == "hang-commission":
            m.pending = []
        elif m.profile == "fail-commission":
            self._schedule(
                m, self._set("Failed commissioning", "off", "Failed commissioning: 00-maas-01-cpuinfo failed")
            )
        else:
            self._schedule(m, self._set("Testing", None, "Running tests"), self._set("Ready", "off", "Ready"))

    def _deploy(self, m: Machine, user: str) -> None:
        m.owner = user
        m.status = STATUS["Deploying"]
        m.status_message = "Deploying"
        m.power_state = "on"
        if m.profile == "hang-deploy":
            m.pending = []
        elif m.profile == "fail-deploy":
            self._schedule(m, self._set("Failed deployment", None, "Installation failed (curtin)"))
        else:
            ip = f"10.0.0.{next(self._ip)}"

            def done(machine: Machine) -> None:
                machine.status = STATUS["Deployed"]
                machine.status_message = "Deployed"
                machine.ips = [ip]

            self._schedule(m, self._set("Deploying", None, "Installing OS"), done)

    # -- HTTP ------------------------------------------------------------------------------------
    def authenticate(self, header: str | None) -> tuple[User | None, str]:
        if not header or not header.startswith("OAuth "):
            return None, "Authorization Error: No authorization provided"
        params = {k: unquote(v) for k, v in re.findall(r'(\w+)="([^"]*)"', header)}
        token = params.get("oauth_token", "")
        user = next(
            (u for u in self.users if u.token == token and u.consumer == params.get("oauth_consumer_key")),
            None,
        )
        if user is None:
            return None, f"Authorization Error: 'Invalid access token: {token}'"
        if (
            params.get("oauth_signature_method") != "PLAINTEXT"
            or params.get("oauth_signature") != "&" + user.secret
        ):
            return None, "Authorization Error: Invalid signature"
        if not params.get("oauth_nonce") or not params.get("oauth_timestamp", "").isdigit():
            return None, "Authorization Error: Missing nonce or timestamp"
        if abs(int(params["oauth_timestamp"]) - time.time()) > 300:
            return None, "Authorization Error: Expired timestamp"
        if params["oauth_nonce"] in self.nonces:  # as MAAS's OAuth store: a nonce is good once
            return None, "Authorization Error: Nonce already used"
        self.nonces.add(params["oauth_nonce"])
        return user, ""

    def record(self, req: Request) -> None:
        query, form, op = _parse(req)
        self.requests.append(
            {
                "method": req.method,
                "path": req.path,
                "op": op,
                "query": query,
                "form": form,
                "auth": req.headers.get("Authorization", ""),
            }
        )

    def answer(self, req: Request) -> Reply:
        query, form, op = _parse(req)
        with self.lock:
            user, why = self.authenticate(req.headers.get("Authorization"))
            if user is None:
                return 401, {"Content-Type": "text/plain"}, why.encode()
            self._advance()
            try:
                status, payload = self.route(req.method, req.path, op, query, form, user)
            except _HttpError as err:
                status, payload = err.status, err.payload
        if isinstance(payload, str):
            return status, {"Content-Type": "text/plain; charset=utf-8"}, payload.encode()
        return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    def route(self, method: str, path: str, op: str, query: dict, form: dict, user: User) -> tuple[int, Any]:
        if not path.startswith(API):
            raise _HttpError(404, "Not Found")
        path = path[len(API) :]
        if path == "/machines/":
            if method == "GET" and not op:
                return 200, [m.to_json() for m in self.machines.values() if _filter(m, query)]
            if method == "POST" and not op:
                return self.create(form, user)
            raise _HttpError(400, f"Unrecognised signature: method={method} op={op}")
        match = re.fullmatch(r"/machines/([^/]+)/", path)
        if match:
            m = self.machines.get(match.group(1))
            if m is None:
                raise _HttpError(404, "No Machine matches the given query.")
            return self.machine(method, op, m, form, user)
        if path == "/tags/" and method == "POST" and not op:
            name = _one(form, "name")
            if not name:
                raise _HttpError(400, {"name": ["This field is required."]})
            _admin(user)
            self.tags[name] = _one(form, "comment") or ""
            return 200, {"name": name, "comment": self.tags[name], "definition": "", "kernel_opts": ""}
        match = re.fullmatch(r"/tags/([^/]+)/", path)
        if match and method == "POST" and op == "update_nodes":
            name = unquote(match.group(1))
            if name not in self.tags:
                raise _HttpError(404, "No Tag matches the given query.")
            _admin(user)
            added = 0
            for sid in form.get("add", []):
                if sid in self.machines and name not in self.machines[sid].tags:
                    self.machines[sid].tags.append(name)
                    added += 1
            return 200, {"added": added, "removed": 0}
        raise _HttpError(404, "Not Found")

    def create(self, form: dict, user: User) -> tuple[int, Any]:
        errors: dict[str, list[str]] = {}
        arch = _one(form, "architecture")
        macs = form.get("mac_addresses", [])
        if not arch:
            errors["architecture"] = ["This field is required."]
        if not macs:
            errors["mac_addresses"] = ["This field is required."]
        for mac in macs:
            if not MAC.match(mac):
                errors["mac_addresses"] = [f"'{mac}' is not a valid MAC address."]
            elif any(mac.lower() in (x.lower() for x in m.macs) for m in self.machines.values()):
                errors["mac_addresses"] = [
                    f"One or more MAC addresses is invalid. ('{mac}' is already in use.)"
                ]
        hostname = _one(form, "hostname") or f"enlisted-{next(self._ids)}"
        if any(m.hostname == hostname for m in self.machines.values()):
            errors["hostname"] = [f'Node with hostname "{hostname}" already exists.']
        if errors:
            raise _HttpError(400, errors)
        power = {
            k[len("power_parameters_") :]: v[0] for k, v in form.items() if k.startswith("power_parameters_")
        }
        m = self.add(
            hostname,
            "New",
            macs=macs,
            architecture=arch,
            domain=_one(form, "domain") or "maas",
            zone=_one(form, "zone") or "default",
            pool=_one(form, "pool") or "default",
            power_type=_one(form, "power_type") or "manual",
            power_parameters=power,
            description=_one(form, "description") or "",
        )
        commission = (_one(form, "commission") or "true").lower() in ("true", "1", "yes", "on")
        if user.admin and commission:
            self._commission(m)
        return 200, m.to_json()

    def machine(self, method: str, op: str, m: Machine, form: dict, user: User) -> tuple[int, Any]:
        if method == "GET" and not op:
            return 200, m.to_json()
        if method == "GET" and op == "query_power_state":
            return 200, {"state": m.power_state}
        if method != "POST":
            raise _HttpError(400, f"Unrecognised signature: method={method} op={op}")
        name = NAMES[m.status]
        if op == "commission":
            _admin(user)
            if m.status not in (
                STATUS["New"],
                STATUS["Ready"],
                STATUS["Failed commissioning"],
                STATUS["Failed testing"],
                STATUS["Broken"],
            ):
                raise _HttpError(409, f"Cannot commission machine in state '{name}'.")
            self._commission(m)
            return 200, m.to_json()
        if op == "set_storage_layout":
            _admin(user)
            if m.status != STATUS["Ready"]:
                raise _HttpError(409, "Cannot change the storage layout on a machine that is not Ready.")
            layout = _one(form, "storage_layout")
            if layout not in LAYOUTS:
                raise _HttpError(
                    400,
                    {
                        "storage_layout": [
                            f"Select a valid choice. {layout} is not one of the available choices."
                        ]
                    },
                )
            m.storage_layout = layout
            return 200, m.to_json()
        if op == "deploy":
            if m.status == STATUS["Ready"]:
                if m.owner not in (None, user.name):
                    raise _HttpError(409, "Can't allocate a machine belonging to another user.")
                m.owner = user.name
                m.status = STATUS["Allocated"]
            if m.status != STATUS["Allocated"]:
                raise _HttpError(409, f"Can't deploy a machine that is in the '{name}' state")
            m.osystem = _one(form, "osystem") or "ubuntu"
            m.distro_series = _one(form, "distro_series") or "jammy"
            m.hwe_kernel = _one(form, "hwe_kernel")
            data = _one(form, "user_data")
            if data:
                try:
                    m.user_data = base64.b64decode(data, validate=True)
                except ValueError:
                    raise _HttpError(400, {"user_data": ["user_data must be base64 encoded."]}) from None
            self._deploy(m, user.name)
            return 200, m.to_json()
        if op == "power_on":
            if m.owner is None:
                raise _HttpError(409, "Can't start node: it hasn't been allocated.")
            self._schedule(m, lambda x: setattr(x, "power_state", "on"))
            return 200, m.to_json()
        if op == "power_off":
            self._schedule(m, lambda x: setattr(x, "power_state", "off"))
            return 200, m.to_json()
        if op == "abort":
            if m.status == STATUS["Commissioning"] or m.status == STATUS["Testing"]:
                m.status = m.previous_status if m.previous_status is not None else STATUS["New"]
            elif m.status == STATUS["Deploying"]:
                m.status = STATUS["Allocated"]
            else:
                raise _HttpError(409, f"Cannot abort in current state: '{name}'")
            m.pending = []
            m.power_state = "off"
            m.status_message = "Aborted: " + (_one(form, "comment") or "")
            return 200, m.to_json()
        raise _HttpError(400, f"Unrecognised signature: method=POST op={op}")


class _HttpError(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        self.status = status
        self.payload = payload


def _admin(user: User) -> None:
    if not user.admin:
        raise _HttpError(403, "You do not have permission to perform this action.")


def _one(form: dict, key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


def _filter(m: Machine, query: dict) -> bool:
    if "hostname" in query and m.hostname not in query["hostname"]:
        return False
    if "id" in query and m.system_id not in query["id"]:
        return False
    if "zone" in query and m.zone not in query["zone"]:
        return False
    if "pool" in query and m.pool not in query["pool"]:
        return False
    return "tags" not in query or set(query["tags"]) <= set(m.tags)


def _parse(req: Request) -> tuple[dict, dict, str]:
    """(query, form, op): MAAS names an operation with ``op`` in the query or the form."""
    query = parse_qs(urlsplit(req.target).query)
    form = parse_qs(req.body.decode(), keep_blank_values=True) if req.body else {}
    return query, form, (query.get("op") or form.get("op") or [""])[0]
