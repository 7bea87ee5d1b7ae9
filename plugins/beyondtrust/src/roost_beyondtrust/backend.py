"""The ``beyondtrust`` secret backend: ``secret('KEY')`` reads a managed account's password or a Secrets Safe
secret from BeyondTrust Password Safe, caches it for ``cacheTtl`` and follows rotations.

Which secret a key names (first match wins):

* ``keys:`` in the settings maps a Roost key to ``managedAccount: <system>/<account>`` or
  ``secretsSafe: <folder path>/<title>`` -- flows keep Kestra's plain keys (``secret('DB_PASSWORD')``);
* ``account:<system>/<account>`` -- a managed account (``secret('account:db01/svc_app')``);
* ``safe:<folder path>/<title>`` -- a Secrets Safe secret (``secret('safe:team/app/api-token')``);
* any other key, when ``folder`` is set: the Secrets Safe secret of that title in that folder, where
  ``{namespace}`` stands for the flow's namespace as a path (``roost/{namespace}`` → ``roost/company/team``).

A managed account is read through a release request (``ManagedAccounts`` → ``POST Requests`` with
``ConflictOption: reuse`` → ``GET Credentials/{id}``), kept open while its value is cached and checked in
(``PUT Requests/{id}/Checkin``) when the cache entry goes -- after ``cacheTtl``, on ``invalidate`` (a retried
task run) or when the engine stops -- so Password Safe may rotate the password then. A rotated password is
read at the next fetch; a request Password Safe no longer knows (expired, released) is requested again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, ValidationError, model_validator
from roost import Model, SecretBackendError, SecretConfigError

from roost_beyondtrust.client import PasswordSafe, PasswordSafeError

log = logging.getLogger("roost.beyondtrust")
_REFERENCES = ("apiKey", "runAsPassword", "clientSecret")


class KeyTarget(Model):
    """Where one Roost key lives in Password Safe."""

    managed_account: str | None = None
    """``<system>/<account>`` of a managed account (requestable through the API)."""
    secrets_safe: str | None = None
    """``<folder path>/<title>`` of a Secrets Safe secret."""
    credential: Literal["password", "dsskey", "passphrase"] = "password"
    """For a managed account: the password, the DSS private key, or its passphrase."""

    @model_validator(mode="after")
    def _one(self) -> KeyTarget:
        if (self.managed_account is None) == (self.secrets_safe is None):
            raise ValueError("set one of managedAccount or secretsSafe")
        path = self.managed_account or self.secrets_safe or ""
        if "/" not in path.strip("/"):
            raise ValueError(f"{path!r}: expected <system>/<account> or <folder>/<title>")
        return self


class Settings(Model):
    """The ``beyondtrust`` settings of a ``secret:`` scope."""

    url: str
    """The API's base URL: ``https://<host>/BeyondTrust/api/public/v3``."""
    api_key: str | None = None
    """The API registration key: a reference (``${PS_API_KEY}`` or ``{{ secret('PS_API_KEY') }}``)."""
    run_as: str | None = None
    """The BeyondInsight user the API key acts as (``domain\\user`` for a domain user)."""
    run_as_password: str | None = None
    """That user's password, when the API registration requires it: a reference."""
    client_id: str | None = None
    """OAuth client id of an API access policy (instead of apiKey and runAs)."""
    client_secret: str | None = None
    """OAuth client secret: a reference."""
    keys: dict[str, KeyTarget] = Field(default_factory=dict)
    """Roost keys mapped to managed accounts or Secrets Safe secrets."""
    folder: str | None = None
    """Secrets Safe folder of the keys not mapped (``{namespace}``: the flow's namespace as a path)."""
    cache_ttl: timedelta = timedelta(minutes=1)
    """How long a value read is reused (0: read every time; a managed account's request is checked in at once)."""
    request_duration: timedelta = timedelta(minutes=10)
    """Duration of a managed account's release request (at least ``cacheTtl``)."""
    reason: str = "Roost secret backend"
    """The reason given with release requests and check-ins."""
    verify_ssl: bool = True
    """Verify the server's TLS certificate."""
    connect_timeout: float = Field(default=10, gt=0)
    """Seconds to open a connection."""
    read_timeout: float = Field(default=60, gt=0)
    """Seconds to wait for an answer."""

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        url = urlsplit(self.url)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError(f"url: expected https://<host>/BeyondTrust/api/public/v3, got {self.url!r}")
        if url.scheme == "http" and url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("url: Password Safe's API needs https (http is accepted on loopback only)")
        oauth = bool(self.client_id or self.client_secret)
        if oauth and not (self.client_id and self.client_secret):
            raise ValueError("set clientId and clientSecret together")
        if not oauth and not (self.api_key and self.run_as):
            raise ValueError("set apiKey and runAs (or clientId and clientSecret)")
        if self.cache_ttl < timedelta(0) or self.request_duration < max(self.cache_ttl, timedelta(minutes=1)):
            raise ValueError("requestDuration must be at least cacheTtl and one minute; cacheTtl at least 0")
        return self


@dataclass(frozen=True)
class Target:
    """A resolved place in Password Safe: ``("account", system, account, credential)`` or ``("safe", folder, title)``."""

    kind: str
    where: str
    name: str
    credential: str = "password"

    def __str__(self) -> str:
        return (
            f"managed account {self.where}/{self.name}"
            if self.kind == "account"
            else f"Secrets Safe {self.where}/{self.name}"
        )


@dataclass
class Entry:
    value: str | None
    expires: float
    request_id: int | None = None


class BeyondTrustBackend:
    """The ``beyondtrust`` backend's factory."""

    @staticmethod
    def check(config: Any) -> Settings:
        data = dict(config)
        for name in _REFERENCES:
            value = data.get(name)
            if value is not None and not (isinstance(value, str) and ("{{" in value or "${" in value)):
                raise SecretConfigError(f"{config.path}.{name}: write a reference ({{{{ secret('KEY') }}}} or "
                                        "${ENV_VAR}), never the value: configuration is not a secret store")  # fmt: skip
        try:
            return Settings.model_validate(data)
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err.get("loc", ()))
                msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                if err.get("type") == "extra_forbidden":
                    msg = "unknown property"
                lines.append(f"{config.path}{'.' + where if where else ''}: {msg}")
            raise SecretConfigError("; ".join(lines)) from None

    def __call__(self, config: Any) -> BeyondTrustSecrets:
        return BeyondTrustSecrets(self.check(config), config)


class BeyondTrustSecrets:
    """Secrets from one Password Safe, cached; thread-safe (one fetch at a time per secret)."""

    kind = "beyondtrust"

    def __init__(self, settings: Settings, config: Any) -> None:
        self.settings = settings
        self._config = config  # resolves the references (api key, passwords) when the session starts
        self._api: PasswordSafe | None = None
        self._lock = threading.Lock()
        self._fetching: dict[Target, threading.Lock] = {}
        self._cache: dict[Target, Entry] = {}

    def __repr__(self) -> str:
        return f"BeyondTrustSecrets({self.settings.url})"

    # -- keys ----------------------------------------------------------------------------------------
    def target(self, namespace: str, key: str) -> Target | None:
        mapped = self.settings.keys.get(key)
        if mapped is not None:
            if mapped.managed_account:
                system, _, account = mapped.managed_account.strip("/").partition("/")
                return Target("account", system, account, mapped.credential)
            folder, _, title = (mapped.secrets_safe or "").strip("/").rpartition("/")
            return Target("safe", folder, title)
        if key.startswith("account:"):
            system, _, account = key[len("account:") :].strip("/").partition("/")
            return Target("account", system, account) if system and account else None
        if key.startswith("safe:"):
            folder, _, title = key[len("safe:") :].strip("/").rpartition("/")
            return Target("safe", folder, title) if title else None
        if self.settings.folder:
            folder = self.settings.folder.replace("{namespace}", namespace.replace(".", "/")).strip("/")
            return Target("safe", folder, key)
        return None

    # -- the backend -----------------------------------------------------------------------------------
    def get(self, namespace: str, key: str) -> str | None:
        target = self.target(namespace, key)
        if target is None:
            return None
        with self._lock:
            fetching = self._fetching.setdefault(target, threading.Lock())
        with fetching:  # concurrent readers of one secret share one fetch
            now = time.monotonic()
            entry = self._cache.get(target)
            if entry is not None and now < entry.expires:
                return entry.value
            if entry is not None:
                self._drop(target)
            entry = self._fetch(target)
            if self.settings.cache_ttl.total_seconds() > 0:
                self._cache[target] = entry
            elif entry.request_id is not None:
                self._check_in(target, entry.request_id)
            return entry.value

    def keys(self, namespace: str) -> list[str]:
        """The keys mapped in the settings (Secrets Safe folders are not listed: that would need a call)."""
        return sorted(self.settings.keys)

    def invalidate(self, namespace: str, key: str) -> None:
        """Forget the cached value (and check its request in): the next read is fresh."""
        target = self.target(namespace, key)
        if target is not None:
            with self._lock:
                fetching = self._fetching.setdefault(target, threading.Lock())
            with fetching:
                self._drop(target)

    def close(self) -> None:
        """Check every open request in and sign out."""
        for target in list(self._cache):
            self._drop(target)
        if self._api is not None:
            try:
                self._api.sign_out()
            except PasswordSafeError as exc:
                log.warning("signing out of %s failed: %s", self.settings.url, exc)
            self._api.close()
            self._api = None

    # -- Password Safe -----------------------------------------------------------------------------
    def api(self) -> PasswordSafe:
        with self._lock:
            if self._api is None:
                s = self.settings
                ref = self._config.resolve
                try:
                    self._api = PasswordSafe(
                        s.url, api_key=ref(s.api_key, "apiKey") if s.api_key else None, run_as=s.run_as,
                        run_as_password=ref(s.run_as_password, "runAsPassword") if s.run_as_password else None,
                        client_id=s.client_id, client_secret=ref(s.client_secret, "clientSecret") if s.client_secret else None,
                        verify_ssl=s.verify_ssl, connect_timeout=s.connect_timeout, read_timeout=s.read_timeout,
                    )  # fmt: skip
                except Exception as exc:  # an unresolved reference: named, never a value
                    raise SecretBackendError(f"BeyondTrust Password Safe at {s.url}: {exc}") from None
            return self._api

    def _fail(self, target: Target, exc: Exception) -> SecretBackendError:
        return SecretBackendError(f"BeyondTrust Password Safe could not give {target}: {exc}")

    def _fetch(self, target: Target) -> Entry:
        expires = time.monotonic() + self.settings.cache_ttl.total_seconds()
        try:
            if target.kind == "safe":
                return Entry(self._secrets_safe(target), expires)
            return self._managed_account(target, expires)
        except PasswordSafeError as exc:
            raise self._fail(target, exc) from None

    def _secrets_safe(self, target: Target) -> str | None:
        api = self.api()
        label = "GET Secrets-Safe/Secrets"
        with api.doing(f"reading {target}"):
            found = api.json(api.call("GET", "Secrets-Safe/Secrets", params={"path": target.where,
                                                                             "title": target.name}), label)  # fmt: skip
        if not isinstance(found, list):
            raise api.malformed(label, "expected a list of secrets")
        secret = next((s for s in found if isinstance(s, dict) and s.get("Title") == target.name), None)
        if secret is None:
            return None
        if str(secret.get("SecretType", "")).lower() == "file":
            with api.doing(f"downloading {target}"):
                response = api.call(
                    "GET", f"Secrets-Safe/Secrets/{quote(str(secret.get('Id')), safe='')}/file/download"
                )
            return response.text
        value = (
            secret.get("Text")
            if str(secret.get("SecretType", "")).lower() == "text" and secret.get("Text")
            else secret.get("Password")
        )
        if not isinstance(value, str):
            raise api.malformed(label, f"{target} has no readable value")
        return value

    def _managed_account(self, target: Target, expires: float) -> Entry:
        api = self.api()
        with api.doing(f"finding {target}"):
            try:
                found = api.json(api.call("GET", "ManagedAccounts", params={"systemName": target.where,
                                                                            "accountName": target.name}), "GET ManagedAccounts")  # fmt: skip
            except PasswordSafeError as exc:
                if exc.status == 404:  # no such account, or not requestable by this user through the API
                    return Entry(None, expires)
                raise
        account = found[0] if isinstance(found, list) and found else found
        if not isinstance(account, dict) or "SystemId" not in account or "AccountId" not in account:
            return Entry(None, expires)
        for attempt in (1, 2):
            request_id = self._request(api, target, account)
            with api.doing(f"reading {target}"):
                try:
                    response = api.call(
                        "GET", f"Credentials/{request_id}", params={"type": target.credential}
                    )
                except PasswordSafeError as exc:
                    if exc.status == 404 and attempt == 1:  # the request expired or was released meanwhile
                        continue
                    if exc.status == 403 and "4034" in str(exc):
                        raise PasswordSafeError(f"the release request {request_id} awaits approval: the account "
                                                "needs an access policy that approves API requests") from None  # fmt: skip
                    raise
            return Entry(api.secret_text(response, f"GET Credentials/{request_id}"), expires, request_id)
        raise PasswordSafeError(
            "Password Safe keeps losing the release request"
        )  # not reached: attempt 2 raises

    def _request(self, api: PasswordSafe, target: Target, account: dict[str, Any]) -> int:
        minutes = max(1, int(self.settings.request_duration.total_seconds() // 60))
        body = {"AccessType": "View", "SystemID": account["SystemId"], "AccountID": account["AccountId"],
                "DurationMinutes": minutes, "Reason": self.settings.reason, "ConflictOption": "reuse"}  # fmt: skip
        with api.doing(f"requesting {target}"):
            try:
                answer = api.json(api.call("POST", "Requests", json_body=body), "POST Requests")
            except PasswordSafeError as exc:
                if exc.status == 409:
                    raise PasswordSafeError(
                        f"a conflicting release request exists for {target} (HTTP 409): {exc}"
                    ) from None
                raise
        if isinstance(answer, dict):
            answer = answer.get("RequestID", answer.get("RequestId"))
        try:
            return int(answer)
        except (TypeError, ValueError):
            raise api.malformed("POST Requests", "no request id in the answer") from None

    def _drop(self, target: Target) -> None:
        entry = self._cache.pop(target, None)
        if entry is not None and entry.request_id is not None:
            self._check_in(target, entry.request_id)

    def _check_in(self, target: Target, request_id: int) -> None:
        """Release a request (Password Safe may rotate the password now); a failure is logged, not raised:
        the request expires on its own after ``requestDuration``."""
        try:
            api = self.api()
            with api.doing(f"checking {target} in"):
                api.call("PUT", f"Requests/{request_id}/Checkin", json_body={"Reason": self.settings.reason})
        except (PasswordSafeError, SecretBackendError) as exc:
            if getattr(exc, "status", None) != 404:  # already released or expired
                log.warning("checking in request %s of %s failed: %s", request_id, target, exc)
