"""GitHub App credentials: an installation access token minted with the app's private key.

The app authenticates with a JWT signed RS256 (``iss`` the app id, ``iat`` 60 s
in the past against clock drift, ``exp`` under GitHub's 10-minute limit) and
exchanges it at ``POST {apiUrl}/app/installations/{installationId}/access_tokens``
for an installation token valid one hour (``expires_at``). ``repositories``,
``repositoryIds`` and ``permissions`` narrow what the token may do.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import AliasChoices, Field, field_validator, model_validator

from roost.credentials.base import CredentialError, Settings, Token, TokenProvider, secret_field
from roost.credentials.oauth2 import sign_jwt

API_VERSION = "2022-11-28"


class GitHubAppSettings(Settings):
    """A GitHub App installation."""

    app_id: str = Field(validation_alias=AliasChoices("appId", "clientId"))
    """The app's id (or its client id): ``iss`` of the app JWT."""
    installation_id: str
    """The installation whose token is minted (``/settings/installations/<id>``)."""
    private_key: str | None = None
    """The app's PEM private key: ``{{ secret('KEY') }}`` or ``${ENV_VAR}``, never the key itself."""
    private_key_file: str | None = None
    """Path of the app's PEM private key file, instead of ``privateKey``."""
    api_url: str = Field(default="https://api.github.com", validation_alias=AliasChoices("apiUrl", "baseUrl"))
    """REST API root: ``https://HOST/api/v3`` for GitHub Enterprise Server."""
    repositories: list[str] | None = None
    """Limit the token to these repositories (names)."""
    repository_ids: list[int] | None = None
    """Limit the token to these repositories (ids)."""
    permissions: dict[str, str] | None = None
    """Limit the token to these permissions (``contents: read``...)."""
    jwt_lifetime: timedelta = timedelta(minutes=9)
    """Lifetime of the app JWT; GitHub refuses more than 10 minutes."""

    check_private_key = secret_field("private_key")

    @field_validator("app_id", "installation_id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one_key(self) -> GitHubAppSettings:
        if not self.private_key and not self.private_key_file:
            raise ValueError("privateKey (a secret reference) or privateKeyFile is required")
        if self.private_key and self.private_key_file:
            raise ValueError("give privateKey or privateKeyFile, not both")
        if self.jwt_lifetime > timedelta(minutes=10):
            raise ValueError("jwtLifetime: GitHub refuses app JWTs valid more than 10 minutes")
        return self


class GitHubApp(TokenProvider):
    """A GitHub App's installation access token (``ghs_...``), refreshed before its hour runs out."""

    settings_model = GitHubAppSettings
    secret_fields = ("privateKey", "privateKeyFile")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._endpoint = self._url(self.settings.api_url, self.settings.installation_id)

    @staticmethod
    def _url(api_url: str, installation: str) -> str:
        return f"{api_url.rstrip('/')}/app/installations/{installation}/access_tokens"

    def endpoint(self) -> str:
        return self._endpoint

    def app_jwt(self) -> str:
        s = self.settings
        now = int(time.time())
        claims = {
            "iat": now - 60,
            "exp": now + int(s.jwt_lifetime.total_seconds()),
            "iss": str(self.resolve(s.app_id, "appId")),
        }
        return sign_jwt(self, claims, _RS256(s), "app JWT")

    def fetch(self) -> Token:
        s = self.settings
        url = self._url(
            str(self.resolve(s.api_url, "apiUrl")), str(self.resolve(s.installation_id, "installationId"))
        )
        self._endpoint = url
        body: dict[str, Any] = {}
        if s.repositories:
            body["repositories"] = self.resolve(s.repositories, "repositories")
        if s.repository_ids:
            body["repository_ids"] = s.repository_ids
        if s.permissions:
            body["permissions"] = self.resolve(s.permissions, "permissions")
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.app_jwt()}",
            "X-GitHub-Api-Version": API_VERSION,
        }
        try:
            with httpx.Client(timeout=s.timeout.total_seconds()) as client:
                response = client.post(url, headers=headers, json=body or None)
        except httpx.HTTPError as exc:
            raise CredentialError(self.masked(
                f"credential '{self.key}': token request to {url} failed: {type(exc).__name__}: {exc}"
            )) from None  # fmt: skip
        try:
            data = response.json()
        except ValueError:
            data = None
        where = f"credential '{self.key}': token request to {url} failed: HTTP {response.status_code}"
        if response.status_code >= 400:
            detail = data.get("message") if isinstance(data, dict) else None
            detail = (
                str(detail) if detail else (" ".join(response.text.split())[:300] or response.reason_phrase)
            )
            raise CredentialError(self.masked(f"{where} {detail}"))
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise CredentialError(f"{where}: the answer has no token")
        expires_in = None
        expires_at = data.get("expires_at") if isinstance(data, dict) else None
        if isinstance(expires_at, str):
            try:
                expires_in = (
                    datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp() - time.time()
                )
            except ValueError:
                expires_in = None
        return Token(token, expires_in)


class _RS256:
    """The signing settings of an app JWT: GitHub accepts RS256 only, and no ``kid``."""

    algorithm = "RS256"
    key_id = None

    def __init__(self, settings: GitHubAppSettings) -> None:
        self.private_key = settings.private_key
        self.private_key_file = settings.private_key_file
