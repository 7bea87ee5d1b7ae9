"""A fake Cloudflare API v4 served over real HTTP on 127.0.0.1, for the plugin's tests.

It follows the published API reference (developers.cloudflare.com/api, v4):

* every JSON answer is the v4 envelope ``{"success", "errors", "messages", "result"}``,
  with ``result_info`` (``page``, ``per_page``, ``count``, ``total_count``, ``total_pages``)
  on list endpoints, paginated by ``page``/``per_page``;
* errors are ``{"success": false, "errors": [{"code", "message"}], ...}`` with the codes
  Cloudflare uses (6003 invalid headers with an ``error_chain``, 9109 invalid access token,
  9103 unknown global key, 10000 authentication error, 81044 record does not exist,
  81057 identical record, 9005 bad A content, 10009 KV key not found, 971 rate limited...);
* authentication by ``Authorization: Bearer <token>`` or ``X-Auth-Email``/``X-Auth-Key``;
  tokens carry ``read``/``write`` permissions so a read-only token gets 403 on writes;
* endpoints: zones (list with ``name``/``status``/``account.id`` filters, get), DNS records
  (CRUD, ``PUT`` overwrite, filters ``name``/``type``/``content``, ``/batch`` applied as one
  transaction in the order deletes, patches, puts, posts), ``purge_cache`` (one kind of
  target per request, at most 30 items), IP access rules at zone and account level, Workers
  KV (namespaces, ``values/{key}`` raw and multipart writes, ``bulk`` writes, ``bulk/get``).

Faults are injected with :meth:`FakeCloudflare.inject` (status, body, headers, delay, count),
which is how the tests produce 429 with ``Retry-After``, malformed bodies and hangs.
"""

from __future__ import annotations

import copy
import email.parser
import ipaddress
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from roost.testing.http import FakeHttpServer, Reply, Request

PREFIX = "/client/v4"
RECORD_TYPES = {"A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "PTR", "CAA", "SOA", "HTTPS", "SVCB", "URI"}
PROXIABLE = {"A", "AAAA", "CNAME"}
MODES = {"block", "challenge", "whitelist", "js_challenge", "managed_challenge"}
TARGETS = {"ip", "ip6", "ip_range", "asn", "country"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return uuid.uuid4().hex


class ApiError(Exception):
    def __init__(self, status: int, *errors: tuple[int, str], chain: list[tuple[int, str]] | None = None):
        super().__init__(errors)
        self.status = status
        self.errors = [{"code": c, "message": m} for c, m in errors]
        if chain:
            self.errors[0]["error_chain"] = [{"code": c, "message": m} for c, m in chain]


@dataclass
class FakeCloudflare(FakeHttpServer):
    tokens: dict[str, set[str]] = field(
        default_factory=lambda: {"good-token-0123456789": {"read", "write"}, "read-only-token-0123": {"read"}}
    )
    global_keys: dict[tuple[str, str], set[str]] = field(
        default_factory=lambda: {("ops@example.com", "global-key-abcdef0123"): {"read", "write"}}
    )
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    zone_rules: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    account_rules: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    kv: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    purges: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()
        self.account_id = self.add_account("Example Corp")

    # -- set-up helpers ------------------------------------------------------------------------------
    def add_account(self, name: str) -> str:
        account_id = new_id()
        self.accounts[account_id] = {"id": account_id, "name": name}
        self.account_rules[account_id] = {}
        return account_id

    def add_zone(self, name: str, account_id: str | None = None, status: str = "active") -> str:
        zone_id = new_id()
        account = self.accounts[account_id or self.account_id]
        self.zones[zone_id] = {
            "id": zone_id,
            "name": name,
            "status": status,
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "original_name_servers": None,
            "original_registrar": None,
            "account": {"id": account["id"], "name": account["name"]},
            "owner": {"id": None, "type": "user", "email": None},
            "plan": {"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website"},
            "permissions": ["#dns_records:edit", "#dns_records:read", "#zone:read"],
            "meta": {"page_rule_quota": 3, "phishing_detected": False},
            "created_on": now(),
            "modified_on": now(),
            "activated_on": now(),
        }
        self.records[zone_id] = {}
        self.zone_rules[zone_id] = {}
        return zone_id

    def add_record(self, zone_id: str, type: str, name: str, content: str, **extra: Any) -> dict[str, Any]:
        with self.lock:
            body = {"type": type, "name": name, "content": content, **extra}
            rec = self._new_record(self.zones[zone_id], self.records[zone_id], body)
            self.records[zone_id][rec["id"]] = rec
            return rec

    def add_namespace(self, title: str, account_id: str | None = None) -> str:
        ns_id = new_id()
        self.namespaces[ns_id] = {
            "id": ns_id,
            "title": title,
            "supports_url_encoding": True,
            "account_id": account_id or self.account_id,
        }
        self.kv[ns_id] = {}
        return ns_id

    @property
    def base_url(self) -> str:
        return f"{self.url}{PREFIX}"

    # -- request handling -------------------------------------------------------------------------
    def answer(self, req: Request) -> Reply:
        try:
            status, payload, ctype, extra = self.route(req)
        except ApiError as exc:
            status, ctype, extra = exc.status, "application/json", {}
            payload = json.dumps(
                {"success": False, "errors": exc.errors, "messages": [], "result": None}
            ).encode()
        return status, {"Content-Type": ctype, **extra}, payload

    @staticmethod
    def ok(result: Any, result_info: dict[str, Any] | None = None, status: int = 200) -> tuple:
        env: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
        if result_info is not None:
            env["result_info"] = result_info
        return status, json.dumps(env).encode(), "application/json", {}

    def authenticate(self, req: Request) -> set[str]:
        auth = req.headers.get("authorization")
        if auth is not None:
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                raise ApiError(
                    400,
                    (6003, "Invalid request headers"),
                    chain=[(6111, "Invalid format for Authorization header")],
                )
            perms = self.tokens.get(auth[7:].strip())
            if perms is None:
                raise ApiError(401, (9109, "Invalid access token"))
            return perms
        email_, key = req.headers.get("x-auth-email"), req.headers.get("x-auth-key")
        if email_ is None and key is None:
            raise ApiError(
                400, (6003, "Invalid request headers"), chain=[(6103, "Invalid format for X-Auth-Key header")]
            )
        perms = self.global_keys.get((email_ or "", key or ""))
        if perms is None:
            raise ApiError(403, (9103, "Unknown X-Auth-Key or X-Auth-Email"))
        return perms

    def route(self, req: Request) -> tuple:
        if not req.path.startswith(PREFIX + "/"):
            raise ApiError(404, (7000, "No route for that URI"))
        path = req.path[len(PREFIX) :]
        perms = self.authenticate(req)
        need = "read" if req.method == "GET" else "write"
        # bulk/get is a read although it is a POST
        if path.endswith("/bulk/get"):
            need = "read"
        if need not in perms:
            raise ApiError(403, (10000, "Authentication error"))
        with self.lock:
            for pattern, methods in ROUTES:
                m = re.fullmatch(pattern, path)
                if m is None:
                    continue
                handler = methods.get(req.method)
                if handler is None:
                    raise ApiError(405, (10405, f"Method {req.method} not allowed for this path"))
                return handler(self, req, *[unquote(g) for g in m.groups()])
        raise ApiError(400, (7003, f"Could not route to {path}, perhaps your object identifier is invalid?"))

    # -- helpers --------------------------------------------------------------------------------------
    @staticmethod
    def json_body(req: Request) -> Any:
        try:
            return json.loads(req.body or b"null")
        except ValueError:
            raise ApiError(400, (6007, "Malformed JSON in request body")) from None

    @staticmethod
    def q(req: Request, name: str) -> str | None:
        values = req.query.get(name)
        return values[0] if values else None

    def paginate(self, req: Request, items: list[Any], default: int, minimum: int, maximum: int) -> tuple:
        try:
            page = int(self.q(req, "page") or 1)
            per_page = int(self.q(req, "per_page") or default)
        except ValueError:
            raise ApiError(400, (1001, "page and per_page must be integers")) from None
        if page < 1 or per_page < minimum or per_page > maximum:
            raise ApiError(400, (1004, f"per_page must be between {minimum} and {maximum}, page at least 1"))
        start = (page - 1) * per_page
        chunk = items[start : start + per_page]
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": math.ceil(len(items) / per_page),
        }
        return self.ok(chunk, info)

    def zone(self, zone_id: str) -> dict[str, Any]:
        if not re.fullmatch(r"[0-9a-f]{32}", zone_id):
            raise ApiError(
                400,
                (7003, f"Could not route to /zones/{zone_id}, perhaps your object identifier is invalid?"),
            )
        zone = self.zones.get(zone_id)
        if zone is None:
            raise ApiError(404, (1001, "Invalid zone identifier"))
        return zone

    def account(self, account_id: str) -> dict[str, Any]:
        account = self.accounts.get(account_id)
        if account is None:
            raise ApiError(
                404,
                (
                    7003,
                    f"Could not route to /accounts/{account_id}, perhaps your object identifier is invalid?",
                ),
            )
        return account

    # -- zones -------------------------------------------------------------------------------------
    def list_zones(self, req: Request) -> tuple:
        zones = list(self.zones.values())
        name, status, account = self.q(req, "name"), self.q(req, "status"), self.q(req, "account.id")
        if name:
            zones = [z for z in zones if z["name"] == name.lower()]
        if status:
            zones = [z for z in zones if z["status"] == status]
        if account:
            zones = [z for z in zones if z["account"]["id"] == account]
        return self.paginate(req, zones, 20, 5, 50)

    def get_zone(self, req: Request, zone_id: str) -> tuple:
        return self.ok(self.zone(zone_id))

    # -- DNS records -------------------------------------------------------------------------------
    def _check_record(
        self, zone: dict[str, Any], records: dict[str, dict], rec: dict[str, Any], own_id: str | None
    ) -> None:
        rtype = rec.get("type")
        if not rtype:
            raise ApiError(400, (9000, "DNS record type is invalid."))
        if rtype not in RECORD_TYPES:
            raise ApiError(400, (9000, f"DNS record type '{rtype}' is invalid."))
        if not rec.get("name"):
            raise ApiError(400, (81001, "DNS record name is required."))
        if not isinstance(rec.get("content"), str) or not rec["content"]:
            raise ApiError(400, (9007, "Content is required."))
        if rtype == "A":
            try:
                ipaddress.IPv4Address(rec["content"])
            except ValueError:
                raise ApiError(400, (9005, "Content for A record must be a valid IPv4 address.")) from None
        if rtype == "AAAA":
            try:
                ipaddress.IPv6Address(rec["content"])
            except ValueError:
                raise ApiError(400, (9006, "Content for AAAA record must be a valid IPv6 address.")) from None
        if rtype == "MX" and rec.get("priority") is None:
            raise ApiError(400, (9101, "priority is a required field for MX records."))
        ttl = rec.get("ttl", 1)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not (ttl == 1 or 30 <= ttl <= 86400):
            raise ApiError(
                400, (9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
            )
        if rec.get("proxied") and rtype not in PROXIABLE:
            raise ApiError(400, (9004, "This record type cannot be proxied."))
        for other in records.values():
            if other["id"] == own_id or other["name"] != rec["name"]:
                continue
            if other["type"] == rtype and other["content"] == rec["content"]:
                raise ApiError(400, (81057, "An identical record already exists."))
            if "CNAME" in (rtype, other["type"]) and {rtype, other["type"]} & {"A", "AAAA", "CNAME"}:
                raise ApiError(400, (81053, "An A, AAAA, or CNAME record with that host already exists."))

    @staticmethod
    def _fqdn(zone: dict[str, Any], name: str) -> str:
        name = name.strip().rstrip(".").lower()
        if name in ("@", ""):
            return zone["name"]
        if name == zone["name"] or name.endswith("." + zone["name"]):
            return name
        return f"{name}.{zone['name']}"

    def _new_record(
        self, zone: dict[str, Any], records: dict[str, dict], body: Any, rec_id: str | None = None
    ) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, (9207, "Request body is invalid."))
        allowed = {
            "type",
            "name",
            "content",
            "ttl",
            "proxied",
            "priority",
            "comment",
            "tags",
            "data",
            "settings",
            "id",
        }
        unknown = set(body) - allowed
        if unknown:
            raise ApiError(400, (9207, f"Request body has unknown fields: {', '.join(sorted(unknown))}"))
        rec = {
            "id": rec_id or new_id(),
            "zone_id": zone["id"],
            "zone_name": zone["name"],
            "name": self._fqdn(zone, str(body.get("name") or "")) if body.get("name") else None,
            "type": body.get("type"),
            "content": body.get("content"),
            "proxiable": body.get("type") in PROXIABLE,
            "proxied": bool(body.get("proxied", False)),
            "ttl": body.get("ttl", 1),
            "settings": body.get("settings") or {},
            "meta": {},
            "comment": body.get("comment"),
            "tags": body.get("tags") or [],
            "created_on": now(),
            "modified_on": now(),
        }
        if body.get("priority") is not None:
            rec["priority"] = body["priority"]
        self._check_record(zone, records, rec, rec_id)
        return rec

    def _patch_record(self, zone: dict[str, Any], records: dict[str, dict], rec_id: str, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, (9207, "Request body is invalid."))
        current = records.get(rec_id)
        if current is None:
            raise ApiError(404, (81044, "Record does not exist."))
        merged = {
            k: current.get(k)
            for k in ("type", "name", "content", "ttl", "proxied", "priority", "comment", "tags")
        }
        merged = {k: v for k, v in merged.items() if v is not None}
        merged.update({k: v for k, v in body.items() if k != "id"})
        rec = self._new_record(zone, records, merged, rec_id)
        rec["created_on"] = current["created_on"]
        return rec

    def list_records(self, req: Request, zone_id: str) -> tuple:
        self.zone(zone_id)
        items = list(self.records[zone_id].values())
        name, rtype, content = self.q(req, "name"), self.q(req, "type"), self.q(req, "content")
        if name:
            items = [r for r in items if r["name"] == name.lower().rstrip(".")]
        if rtype:
            items = [r for r in items if r["type"] == rtype]
        if content:
            items = [r for r in items if r["content"] == content]
        return self.paginate(req, items, 100, 1, 5_000_000)

    def create_record(self, req: Request, zone_id: str) -> tuple:
        zone = self.zone(zone_id)
        rec = self._new_record(zone, self.records[zone_id], self.json_body(req))
        self.records[zone_id][rec["id"]] = rec
        return self.ok(rec)

    def get_record(self, req: Request, zone_id: str, rec_id: str) -> tuple:
        self.zone(zone_id)
        rec = self.records[zone_id].get(rec_id)
        if rec is None:
            raise ApiError(404, (81044, "Record does not exist."))
        return self.ok(rec)

    def patch_record(self, req: Request, zone_id: str, rec_id: str) -> tuple:
        zone = self.zone(zone_id)
        rec = self._patch_record(zone, self.records[zone_id], rec_id, self.json_body(req))
        self.records[zone_id][rec_id] = rec
        return self.ok(rec)

    def put_record(self, req: Request, zone_id: str, rec_id: str) -> tuple:
        zone = self.zone(zone_id)
        if rec_id not in self.records[zone_id]:
            raise ApiError(404, (81044, "Record does not exist."))
        body = self.json_body(req)
        rec = self._new_record(
            zone, self.records[zone_id], {k: v for k, v in (body or {}).items() if k != "id"}, rec_id
        )
        rec["created_on"] = self.records[zone_id][rec_id]["created_on"]
        self.records[zone_id][rec_id] = rec
        return self.ok(rec)

    def delete_record(self, req: Request, zone_id: str, rec_id: str) -> tuple:
        self.zone(zone_id)
        if self.records[zone_id].pop(rec_id, None) is None:
            raise ApiError(404, (81044, "Record does not exist."))
        return self.ok({"id": rec_id})

    def batch_records(self, req: Request, zone_id: str) -> tuple:
        zone = self.zone(zone_id)
        body = self.json_body(req)
        if not isinstance(body, dict) or not set(body) <= {"deletes", "patches", "puts", "posts"}:
            raise ApiError(400, (9207, "Request body is invalid."))
        records = copy.deepcopy(self.records[zone_id])  # one transaction: commit only if all succeed
        result: dict[str, list] = {"deletes": [], "patches": [], "puts": [], "posts": []}
        for item in body.get("deletes") or []:
            rec = records.pop((item or {}).get("id"), None)
            if rec is None:
                raise ApiError(400, (81044, f"deletes: record {item!r} does not exist."))
            result["deletes"].append(rec)
        for item in body.get("patches") or []:
            rec = self._patch_record(zone, records, (item or {}).get("id"), item)
            records[rec["id"]] = rec
            result["patches"].append(rec)
        for item in body.get("puts") or []:
            rec_id = (item or {}).get("id")
            if rec_id not in records:
                raise ApiError(400, (81044, f"puts: record {rec_id!r} does not exist."))
            rec = self._new_record(zone, records, {k: v for k, v in item.items() if k != "id"}, rec_id)
            records[rec_id] = rec
            result["puts"].append(rec)
        for item in body.get("posts") or []:
            rec = self._new_record(zone, records, item)
            records[rec["id"]] = rec
            result["posts"].append(rec)
        self.records[zone_id] = records
        return self.ok(result)

    # -- cache --------------------------------------------------------------------------------------
    def purge(self, req: Request, zone_id: str) -> tuple:
        self.zone(zone_id)
        body = self.json_body(req)
        kinds = [
            k
            for k in ("purge_everything", "files", "tags", "hosts", "prefixes")
            if isinstance(body, dict) and k in body
        ]
        if len(kinds) != 1:
            raise ApiError(
                400,
                (
                    1012,
                    "Request must contain one of 'purge_everything', 'files', 'tags', 'hosts' or 'prefixes'",
                ),
            )
        kind = kinds[0]
        if kind == "purge_everything":
            if body[kind] is not True:
                raise ApiError(400, (1012, "purge_everything must be true"))
        else:
            items = body[kind]
            if not isinstance(items, list) or not items:
                raise ApiError(400, (1012, f"{kind} must be a non-empty list"))
            if len(items) > 30:
                raise ApiError(400, (1011, f"Too many {kind} in one request (at most 30)"))
        purge_id = new_id()
        self.purges.append({"id": purge_id, "zone_id": zone_id, **body})
        return self.ok({"id": purge_id})

    # -- IP access rules ------------------------------------------------------------------------------
    def _rules(self, scope: str, scope_id: str) -> dict[str, dict]:
        if scope == "zones":
            self.zone(scope_id)
            return self.zone_rules[scope_id]
        self.account(scope_id)
        return self.account_rules[scope_id]

    def list_rules(self, req: Request, scope: str, scope_id: str) -> tuple:
        rules = list(self._rules(scope, scope_id).values())
        mode, target, value, notes = (
            self.q(req, "mode"),
            self.q(req, "configuration.target"),
            self.q(req, "configuration.value"),
            self.q(req, "notes"),
        )
        if mode:
            rules = [r for r in rules if r["mode"] == mode]
        if target:
            rules = [r for r in rules if r["configuration"]["target"] == target]
        if value:
            rules = [r for r in rules if r["configuration"]["value"] == value]
        if notes:
            rules = [r for r in rules if notes in (r.get("notes") or "")]
        return self.paginate(req, rules, 20, 1, 1000)

    def create_rule(self, req: Request, scope: str, scope_id: str) -> tuple:
        rules = self._rules(scope, scope_id)
        body = self.json_body(req)
        if not isinstance(body, dict) or body.get("mode") not in MODES:
            raise ApiError(400, (10010, "firewallaccessrules.api.validation_error:mode is invalid"))
        conf = body.get("configuration")
        if not isinstance(conf, dict) or conf.get("target") not in TARGETS or not conf.get("value"):
            raise ApiError(400, (10010, "firewallaccessrules.api.validation_error:configuration is invalid"))
        target, value = conf["target"], str(conf["value"])
        try:
            if target == "ip":
                ipaddress.IPv4Address(value)
            elif target == "ip6":
                ipaddress.IPv6Address(value)
            elif target == "ip_range":
                ipaddress.ip_network(value, strict=False)
            elif (
                target == "asn"
                and not re.fullmatch(r"AS\d+", value)
                or target == "country"
                and not re.fullmatch(r"[A-Z]{2}|T1|XX", value)
            ):
                raise ValueError
        except ValueError:
            raise ApiError(
                400, (10010, f"firewallaccessrules.api.validation_error:invalid {target} value {value!r}")
            ) from None
        if any(r["configuration"] == {"target": target, "value": value} for r in rules.values()):
            raise ApiError(400, (10009, "firewallaccessrules.api.duplicate_of_existing"))
        rule_id = new_id()
        rule = {
            "id": rule_id,
            "paused": False,
            "mode": body["mode"],
            "allowed_modes": sorted(MODES),
            "configuration": {"target": target, "value": value},
            "notes": body.get("notes", ""),
            "scope": {"id": scope_id, "type": "zone" if scope == "zones" else "account"},
            "created_on": now(),
            "modified_on": now(),
        }
        rules[rule_id] = rule
        return self.ok(rule)

    def delete_rule(self, req: Request, scope: str, scope_id: str, rule_id: str) -> tuple:
        rules = self._rules(scope, scope_id)
        if rules.pop(rule_id, None) is None:
            raise ApiError(404, (10001, "firewallaccessrules.api.not_found"))
        return self.ok({"id": rule_id})

    # -- Workers KV ----------------------------------------------------------------------------------
    def _ns(self, account_id: str, ns_id: str) -> dict[str, dict[str, Any]]:
        self.account(account_id)
        ns = self.namespaces.get(ns_id)
        if ns is None or ns["account_id"] != account_id:
            raise ApiError(404, (10013, "get namespace: 'namespace not found'"))
        return self.kv[ns_id]

    def list_namespaces(self, req: Request, account_id: str) -> tuple:
        self.account(account_id)
        items = [
            {k: v for k, v in ns.items() if k != "account_id"}
            for ns in self.namespaces.values()
            if ns["account_id"] == account_id
        ]
        return self.paginate(req, items, 20, 1, 100)

    def create_namespace(self, req: Request, account_id: str) -> tuple:
        self.account(account_id)
        body = self.json_body(req)
        title = body.get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not title:
            raise ApiError(400, (10019, "create namespace: 'title is required'"))
        if any(ns["title"] == title and ns["account_id"] == account_id for ns in self.namespaces.values()):
            raise ApiError(
                400, (10014, "create namespace: 'a namespace with this account ID and title already exists'")
            )
        ns_id = self.add_namespace(title, account_id)
        return self.ok({k: v for k, v in self.namespaces[ns_id].items() if k != "account_id"})

    @staticmethod
    def _ttl(value: Any) -> int | None:
        if value in (None, ""):
            return None
        try:
            ttl = int(value)
        except (TypeError, ValueError):
            raise ApiError(400, (10033, f"Invalid expiration_ttl of {value}.")) from None
        if ttl < 60:
            raise ApiError(
                400, (10033, f"Invalid expiration_ttl of {ttl}. Expiration TTL must be at least 60.")
            )
        return ttl

    def get_value(self, req: Request, account_id: str, ns_id: str, key: str) -> tuple:
        store = self._ns(account_id, ns_id)
        item = store.get(key)
        if item is None:
            raise ApiError(404, (10009, "get: 'key not found'"))
        return 200, item["value"], "application/octet-stream", {}

    def put_value(self, req: Request, account_id: str, ns_id: str, key: str) -> tuple:
        store = self._ns(account_id, ns_id)
        ttl = self._ttl(self.q(req, "expiration_ttl"))
        expiration = self.q(req, "expiration")
        ctype = req.headers.get("content-type", "")
        metadata = None
        if ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser().parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + req.body)
            parts = {
                p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                for p in msg.get_payload()
            }
            if "value" not in parts:
                raise ApiError(400, (10025, "multipart form has no 'value' part"))
            value = parts["value"]
            if parts.get("metadata") is not None:
                try:
                    metadata = json.loads(parts["metadata"])
                except ValueError:
                    raise ApiError(400, (10026, "metadata is not valid JSON")) from None
        else:
            value = req.body
        store[key] = {"value": value, "metadata": metadata, "expiration_ttl": ttl, "expiration": expiration}
        return self.ok({})

    def delete_value(self, req: Request, account_id: str, ns_id: str, key: str) -> tuple:
        store = self._ns(account_id, ns_id)
        store.pop(key, None)
        return self.ok({})

    def bulk_write(self, req: Request, account_id: str, ns_id: str) -> tuple:
        store = self._ns(account_id, ns_id)
        body = self.json_body(req)
        if not isinstance(body, list):
            raise ApiError(400, (10026, "bulk write body must be an array of key-value pairs"))
        if len(body) > 10_000:
            raise ApiError(400, (10026, "at most 10000 pairs per bulk write"))
        ok, bad = 0, []
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str) or "value" not in item:
                raise ApiError(400, (10026, "each pair needs a 'key' and a 'value'"))
            ttl = self._ttl(item.get("expiration_ttl"))
            if len(item["key"].encode()) > 512 or not isinstance(item["value"], str):
                bad.append(item["key"])
                continue
            store[item["key"]] = {
                "value": item["value"].encode(),
                "metadata": item.get("metadata"),
                "expiration_ttl": ttl,
                "expiration": item.get("expiration"),
            }
            ok += 1
        return self.ok({"successful_key_count": ok, "unsuccessful_keys": bad})

    def bulk_get(self, req: Request, account_id: str, ns_id: str) -> tuple:
        store = self._ns(account_id, ns_id)
        body = self.json_body(req)
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list) or not keys:
            raise ApiError(400, (10026, "keys must be a non-empty array"))
        if len(keys) > 100:
            raise ApiError(400, (10026, "at most 100 keys per bulk get"))
        vtype = body.get("type", "text")
        values: dict[str, Any] = {}
        for key in keys:
            item = store.get(key)
            if item is None:
                values[key] = None
                continue
            text = item["value"].decode("utf-8", errors="replace")
            if vtype == "json":
                try:
                    values[key] = json.loads(text)
                except ValueError:
                    raise ApiError(400, (10026, f"value of {key!r} is not JSON")) from None
            else:
                values[key] = text
        return self.ok({"values": values})


ID = r"([^/]+)"
ROUTES: list[tuple[str, dict[str, Any]]] = [
    (r"/zones", {"GET": FakeCloudflare.list_zones}),
    (rf"/zones/{ID}", {"GET": FakeCloudflare.get_zone}),
    (rf"/zones/{ID}/dns_records", {"GET": FakeCloudflare.list_records, "POST": FakeCloudflare.create_record}),
    (rf"/zones/{ID}/dns_records/batch", {"POST": FakeCloudflare.batch_records}),
    (
        rf"/zones/{ID}/dns_records/{ID}",
        {
            "GET": FakeCloudflare.get_record,
            "PATCH": FakeCloudflare.patch_record,
            "PUT": FakeCloudflare.put_record,
            "DELETE": FakeCloudflare.delete_record,
        },
    ),
    (rf"/zones/{ID}/purge_cache", {"POST": FakeCloudflare.purge}),
    (
        rf"/(zones|accounts)/{ID}/firewall/access_rules/rules",
        {"GET": FakeCloudflare.list_rules, "POST": FakeCloudflare.create_rule},
    ),
    (rf"/(zones|accounts)/{ID}/firewall/access_rules/rules/{ID}", {"DELETE": FakeCloudflare.delete_rule}),
    (
        rf"/accounts/{ID}/storage/kv/namespaces",
        {"GET": FakeCloudflare.list_namespaces, "POST": FakeCloudflare.create_namespace},
    ),
    (rf"/accounts/{ID}/storage/kv/namespaces/{ID}/bulk", {"PUT": FakeCloudflare.bulk_write}),
    (rf"/accounts/{ID}/storage/kv/namespaces/{ID}/bulk/get", {"POST": FakeCloudflare.bulk_get}),
    (
        rf"/accounts/{ID}/storage/kv/namespaces/{ID}/values/{ID}",
        {
            "GET": FakeCloudflare.get_value,
            "PUT": FakeCloudflare.put_value,
            "DELETE": FakeCloudflare.delete_value,
        },
    ),
]
