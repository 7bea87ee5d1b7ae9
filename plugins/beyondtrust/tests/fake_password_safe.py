"""A fake BeyondTrust Password Safe public API (v3) over real HTTP, following the vendor's documentation:

* ``POST Auth/SignAppin`` with ``Authorization: PS-Auth key=<key>; runas=<user>; [pwd=[<password>];]`` or
  ``Bearer <token>`` (from ``POST Auth/connect/token``, client credentials) answers the user and sets the
  ``ASP.NET_SessionId`` cookie; every other call needs a live session cookie, else 401 (sessions expire:
  :meth:`FakePasswordSafe.expire_sessions`); ``POST Auth/Signout`` ends the session.
* ``GET ManagedAccounts?systemName=&accountName=`` answers one account (404 when there is none);
  ``POST Requests`` (``ConflictOption``: ``reuse`` returns the caller's active request, ``renew`` replaces it,
  none answers 409 when one exists; an account at its ``MaxConcurrentRequests`` answers 409) answers 201 and
  the request id; ``GET Credentials/{id}?type=`` answers the credential as a JSON string (403 ``4034`` while
  the request awaits approval, 404 once it expired or was checked in); ``PUT Requests/{id}/Checkin`` answers
  204 and rotates the password when the account changes it after any release.
* ``GET Secrets-Safe/Secrets?path=&title=`` answers the matching secrets; ``.../{id}/file/download`` a file's content.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from roost.testing.http import FakeHttpServer, Reply, Request

BASE = "/BeyondTrust/api/public/v3/"


@dataclass
class Account:
    system_id: int
    system: str
    account_id: int
    name: str
    password: str
    approval: bool = False
    rotate_on_release: bool = False
    max_requests: int = 0  # 0: any number of users at once
    key: str = "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----"


@dataclass
class ReleaseRequest:
    id: int
    user: str
    account: Account
    expires: float
    approved: bool = True
    open: bool = True


@dataclass
class Secret:
    id: str
    folder: str
    title: str
    type: str  # Credential, Text, File
    value: str
    username: str = "app"


@dataclass
class FakePasswordSafe(FakeHttpServer):
    api_key: str = "A" * 128
    run_as: str = "svc-roost"
    run_as_password: str | None = None
    client_id: str = "roost-client"
    client_secret: str = "client-s3cret-value"
    accounts: list[Account] = field(default_factory=list)
    secrets_safe: list[Secret] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, str] = {}  # session id → user
        self.tokens: set[str] = set()
        self.requests_made: dict[int, ReleaseRequest] = {}
        self.next_request = 100

    # -- helpers for tests ---------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return self.url + BASE.rstrip("/")

    def add_account(self, system: str, name: str, password: str, **kw: Any) -> Account:
        account = Account(len(self.accounts) + 1, system, 100 + len(self.accounts), name, password, **kw)
        self.accounts.append(account)
        return account

    def add_secret(self, folder: str, title: str, value: str, type: str = "Credential") -> Secret:
        secret = Secret(str(uuid.uuid4()), folder, title, type, value)
        self.secrets_safe.append(secret)
        return secret

    def rotate(self, system: str, name: str, password: str) -> None:
        with self.lock:
            self._account(system, name).password = password  # type: ignore[union-attr]

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def calls(self, method: str | None = None, contains: str = "") -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    # -- the API ------------------------------------------------------------------------------------
    def answer(self, request: Request) -> Reply:
        if not request.path.startswith(BASE):
            return _json(404, "Not found")
        route = request.path[len(BASE) :]
        query = {k.lower(): v[-1] for k, v in request.query.items()}  # .NET query keys are case-insensitive
        lowered = route.lower()
        with self.lock:
            if lowered == "auth/connect/token" and request.method == "POST":
                return self._token(request)
            if lowered == "auth/signappin" and request.method == "POST":
                return self._sign_in(request)
            user = self._session_user(request)
            if user is None:
                return _json(401, "User not authenticated")
            if lowered == "auth/signout" and request.method == "POST":
                self.sessions.pop(self._cookie(request) or "", None)
                return _json(200, None)
            if lowered == "managedaccounts" and request.method == "GET":
                account = self._account(query.get("systemname", ""), query.get("accountname", ""))
                if account is None:
                    return _json(404, "Managed Account not found")
                return _json(200, {"PlatformID": 1, "SystemId": account.system_id, "SystemName": account.system,
                                   "DomainName": None, "AccountId": account.account_id, "AccountName": account.name,
                                   "DefaultReleaseDuration": 120, "MaximumReleaseDuration": 525600,
                                   "IsChanging": False, "IsISAAccess": False})  # fmt: skip
            if lowered == "requests" and request.method == "POST":
                return self._new_request(user, json.loads(request.body or b"{}"))
            parts = route.split("/")
            if len(parts) == 2 and parts[0].lower() == "credentials" and request.method == "GET":
                return self._credentials(user, parts[1], query.get("type", "password"))
            if (
                len(parts) == 3
                and parts[0].lower() == "requests"
                and parts[2].lower() == "checkin"
                and request.method == "PUT"
            ):
                return self._check_in(user, parts[1])
            if lowered == "secrets-safe/secrets" and request.method == "GET":
                found = [s for s in self.secrets_safe
                         if s.folder == query.get("path", s.folder) and s.title == query.get("title", s.title)]  # fmt: skip
                return _json(200, [self._secret_json(s) for s in found])
            if len(parts) == 5 and parts[0].lower() == "secrets-safe" and parts[3:] == ["file", "download"]:
                secret = next((s for s in self.secrets_safe if s.id == parts[2] and s.type == "File"), None)
                if secret is None:
                    return _json(404, "Secret not found")
                return 200, {"Content-Type": "application/octet-stream"}, secret.value.encode()
        return _json(404, "Not found")

    def _token(self, request: Request) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != (
            "client_credentials", self.client_id, self.client_secret):  # fmt: skip
            return _json(400, {"error": "invalid_client"})
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return _json(
            200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer", "scope": "publicapi"}
        )

    def _sign_in(self, request: Request) -> Reply:
        header = request.headers.get("Authorization") or ""
        user = None
        if header.startswith("Bearer ") and header[7:] in self.tokens:
            user = self.client_id
        elif header.startswith("PS-Auth "):
            fields = dict(part.strip().split("=", 1) for part in header[8:].split(";") if "=" in part)
            pwd = fields.get("pwd")
            if fields.get("key") == self.api_key and fields.get("runas") == self.run_as and (
                self.run_as_password is None or pwd == f"[{self.run_as_password}]"):  # fmt: skip
                user = self.run_as
        if user is None:
            return _json(401, "User not authenticated")
        session = secrets.token_hex(12)
        self.sessions[session] = user
        body = {"UserId": 7, "SID": None, "EmailAddress": None, "UserName": user, "Name": user}
        return (
            200,
            {
                "Content-Type": "application/json",
                "Set-Cookie": f"ASP.NET_SessionId={session}; path=/; HttpOnly",
            },
            json.dumps(body).encode(),
        )

    def _cookie(self, request: Request) -> str | None:
        cookie = SimpleCookie(request.headers.get("Cookie") or "")
        morsel = cookie.get("ASP.NET_SessionId")
        return morsel.value if morsel else None

    def _session_user(self, request: Request) -> str | None:
        return self.sessions.get(self._cookie(request) or "")

    def _account(self, system: str, name: str) -> Account | None:
        return next(
            (
                a
                for a in self.accounts
                if a.system.lower() == system.lower() and a.name.lower() == name.lower()
            ),
            None,
        )

    def _active(self, account: Account) -> list[ReleaseRequest]:
        now = time.monotonic()
        return [r for r in self.requests_made.values() if r.account is account and r.open and r.expires > now]

    def _new_request(self, user: str, body: dict[str, Any]) -> Reply:
        account = next((a for a in self.accounts if a.system_id == body.get("SystemID")
                        and a.account_id == body.get("AccountID")), None)  # fmt: skip
        if account is None:
            return _json(403, "4031 - User does not have permission to request the account")
        minutes = body.get("DurationMinutes")
        if not isinstance(minutes, int) or not 1 <= minutes <= 525600:
            return _json(400, "DurationMinutes must be between 1 and 525600")
        active = self._active(account)
        mine = [r for r in active if r.user == user]
        option = str(body.get("ConflictOption") or "").lower()
        if mine and option == "reuse":
            return _json(201, mine[0].id)
        if mine and option == "renew":
            for r in mine:
                r.open = False
        elif mine:
            return _json(409, "Conflicting request exists for this account")
        others = [r for r in active if r.user != user]
        if account.max_requests and len(others) >= account.max_requests:
            return _json(
                409, "Conflicting request exists: the account's maximum concurrent requests is reached"
            )
        self.next_request += 1
        req = ReleaseRequest(
            self.next_request, user, account, time.monotonic() + minutes * 60, approved=not account.approval
        )
        self.requests_made[req.id] = req
        return _json(201, req.id)

    def _credentials(self, user: str, raw_id: str, kind: str) -> Reply:
        req = self.requests_made.get(int(raw_id)) if raw_id.isdigit() else None
        if req is None or req.user != user or not req.open or req.expires <= time.monotonic():
            return _json(404, "Could not find the request to release")
        if not req.approved:
            return _json(403, "4034 - Request is not yet approved")
        value = {"password": req.account.password, "dsskey": req.account.key}.get(kind.lower())
        if value is None:
            return _json(400, f"Unsupported credential type {kind}")
        return _json(200, value)

    def _check_in(self, user: str, raw_id: str) -> Reply:
        req = self.requests_made.get(int(raw_id)) if raw_id.isdigit() else None
        if req is None or req.user != user or not req.open:
            return _json(404, "Could not find the request")
        req.open = False
        if req.account.rotate_on_release:
            req.account.password = secrets.token_urlsafe(16)
        return 204, {}, b""

    @staticmethod
    def _secret_json(s: Secret) -> dict[str, Any]:
        body: dict[str, Any] = {"Id": s.id, "Title": s.title, "Description": "", "Username": s.username,
                                "FolderPath": s.folder, "SecretType": s.type, "OwnerId": 1}  # fmt: skip
        if s.type in ("Credential", "Text"):
            body["Password"] = s.value
        return body


def _json(status: int, body: Any) -> Reply:
    return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()
