"""BeyondTrust Password Safe's public REST API (v3), through :class:`roost.ApiClient`.

A session starts with ``POST Auth/SignAppin`` -- the ``Authorization: PS-Auth key=...; runas=...; pwd=[...];``
header, or ``Authorization: Bearer`` with an OAuth token from ``POST Auth/connect/token`` -- and lives in
the ``ASP.NET_SessionId`` cookie the answer sets (httpx's cookie jar keeps it). A call answered 401 (the
session expired: 20 minutes idle) signs in again and is repeated once. ``POST Auth/Signout`` ends it.
Answers holding secrets (``Credentials``, ``Secrets-Safe``) are decoded here and never appear in a message.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
from roost import ApiClient, ApiError, HttpOptions, HttpTimeout


class PasswordSafeError(ApiError):
    """A Password Safe call failed; the message names the call and never a secret."""


class PasswordSafe(ApiClient):
    service = "BeyondTrust Password Safe"
    user_agent = "roost-beyondtrust"
    error_class = PasswordSafeError
    insecure_setting = "verifySsl: false"

    def __init__(self, url: str, *, api_key: str | None, run_as: str | None, run_as_password: str | None,
                 client_id: str | None, client_secret: str | None, verify_ssl: bool = True,
                 connect_timeout: float = 10, read_timeout: float = 60) -> None:  # fmt: skip
        from datetime import timedelta

        from roost import HttpSsl

        options = HttpOptions(
            timeout=HttpTimeout(
                connect_timeout=timedelta(seconds=connect_timeout),
                read_idle_timeout=timedelta(seconds=read_timeout),
            ),  # fmt: skip
            ssl=HttpSsl(insecure_trust_all_certificates=not verify_ssl),
        )
        super().__init__(url, secrets=[api_key, run_as_password, client_secret], options=options)
        self._api_key = api_key
        self._run_as = run_as
        self._run_as_password = run_as_password
        self._client_id = client_id
        self._client_secret = client_secret
        self._session_lock = threading.RLock()
        self.signed_in = False

    # -- session -----------------------------------------------------------------------------------
    def _authorization(self) -> str:
        if self._client_id and self._client_secret:  # OAuth client credentials (Password Safe 24.1 and later)
            token = self.decode(self.send("POST", "Auth/connect/token", data={
                "grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._client_secret}), "POST Auth/connect/token")  # fmt: skip
            access = token.get("access_token") if isinstance(token, dict) else None
            if not isinstance(access, str) or not access:
                raise self.malformed("POST Auth/connect/token", "no access_token in the answer")
            self._secrets.append(access)
            return f"Bearer {access}"
        header = f"PS-Auth key={self._api_key}; runas={self._run_as};"
        if self._run_as_password:
            header += f" pwd=[{self._run_as_password}];"
        return header

    def sign_in(self) -> None:
        with self._session_lock:
            self._http.cookies.clear()
            self.send("POST", "Auth/SignAppin", headers={"Authorization": self._authorization()})
            if not any(c.name.lower() == "asp.net_sessionid" for c in self._http.cookies.jar):
                raise self.malformed(
                    "POST Auth/SignAppin", "no ASP.NET_SessionId session cookie in the answer"
                )
            self.signed_in = True

    def sign_out(self) -> None:
        with self._session_lock:
            if not self.signed_in:
                return
            self.signed_in = False
            try:
                self.send("POST", "Auth/Signout")
            finally:
                self._http.cookies.clear()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call in the session: signed in first if needed, and once more when the session expired (401)."""
        with self._session_lock:
            if not self.signed_in:
                self.sign_in()
        try:
            return self.send(method, path, **kwargs)
        except PasswordSafeError as exc:
            if exc.status != 401:
                raise
        with self._session_lock:
            self.signed_in = False
            self.sign_in()
        return self.send(method, path, **kwargs)

    # -- answers -------------------------------------------------------------------------------------
    def error_message(self, response: httpx.Response) -> str:
        """Password Safe answers errors with a short text (often a JSON string, ``"4034 - ..."``)."""
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if isinstance(body, dict):
            body = (
                body.get("Message")
                or body.get("message")
                or body.get("error_description")
                or body.get("error")
                or ""
            )
        return self.scrub(str(body).strip()[:300]) or "(no message)"

    def secret_text(self, response: httpx.Response, label: str) -> str:
        """A secret from an answer: a JSON string, else the raw text; a malformed answer is reported without it."""
        try:
            value = response.json()
        except ValueError:
            return response.text
        if not isinstance(value, str):
            raise self.malformed(
                label, f"expected the credential as a string, got a JSON {type(value).__name__}"
            )
        return value

    def json(self, response: httpx.Response, label: str) -> Any:
        """The JSON body of an answer that may hold secrets: a malformed one is reported without its content."""
        try:
            return response.json()
        except ValueError:
            raise self.malformed(label, "the answer is not JSON", response) from None
