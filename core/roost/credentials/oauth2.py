"""OAuth 2.0 credential types: ``client_credentials``, ``jwt_bearer`` and ``private_key_jwt``.

- ``oauth2_client_credentials`` -- RFC 6749 §4.4: the client authenticates with
  its id and secret (``client_secret_basic``, the default, or ``client_secret_post``).
- ``oauth2_jwt_bearer`` -- RFC 7523 §2.1: the grant is a JWT the credential signs
  (issuer, subject, audience), as Google service accounts use.
- ``oauth2_private_key_jwt`` -- ``client_credentials`` where the client
  authenticates with a signed JWT instead of a secret (RFC 7521 §4.2, RFC 7523 §2.2).

A token endpoint's error (RFC 6749 §5.2) is reported with its ``error``,
``error_description`` and ``error_uri``; secrets and assertions never appear in
a message.
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote_plus

import httpx
from pydantic import AliasChoices, Field, field_validator, model_validator

from roost.credentials.base import (
    CredentialConfig,
    CredentialError,
    Settings,
    Token,
    TokenProvider,
    secret_field,
)

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class OAuth2Settings(Settings):
    """Settings of every OAuth 2.0 credential type."""

    token_endpoint: str = Field(validation_alias=AliasChoices("tokenEndpoint", "tokenUrl", "tokenUri"))
    """The authorization server's token endpoint (``tokenUrl`` is accepted too)."""
    scopes: list[str] | None = Field(default=None, validation_alias=AliasChoices("scopes", "scope"))
    """Scopes to ask for: a list, or one space-separated string."""
    audience: str | None = None
    """The ``audience`` parameter of the token request (Auth0, Okta...), when the server needs one."""
    parameters: dict[str, str] | None = None
    """More form parameters of the token request (``resource``...)."""

    @field_validator("scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [s for s in value.replace(",", " ").split() if s]
        return value

    @field_validator("token_endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        if "{{" not in value and "${" not in value and not value.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value


class ClientAuthSettings(OAuth2Settings):
    """Client authentication with an id and a secret."""

    client_id: str | None = None
    """The client identifier."""
    client_secret: str | None = None
    """The client secret: ``{{ secret('KEY') }}`` or ``${ENV_VAR}``, never the value itself."""
    auth_method: Literal["client_secret_basic", "client_secret_post"] = Field(
        default="client_secret_basic",
        validation_alias=AliasChoices("authMethod", "clientAuthMethod", "tokenEndpointAuthMethod"),
    )
    """How the client authenticates: HTTP Basic (``client_secret_basic``) or form fields (``client_secret_post``)."""

    check_client_secret = secret_field("client_secret")

    @field_validator("auth_method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> Any:
        return _lower(value)


class ClientCredentialsSettings(ClientAuthSettings):
    """OAuth 2.0 ``client_credentials`` (RFC 6749 §4.4)."""

    client_id: str  # type: ignore[assignment]
    """The client identifier."""
    client_secret: str  # type: ignore[assignment]
    """The client secret: ``{{ secret('KEY') }}`` or ``${ENV_VAR}``, never the value itself."""


class SigningSettings(Settings):
    """A private key that signs JWT assertions."""

    private_key: str | None = None
    """PEM private key: ``{{ secret('KEY') }}`` or ``${ENV_VAR}``, never the key itself."""
    private_key_file: str | None = None
    """Path of a PEM private key file (a mounted secret), instead of ``privateKey``."""
    key_id: str | None = None
    """``kid`` header of the JWT, so the server picks the right public key."""
    algorithm: str = "RS256"
    """Signature algorithm: RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA."""
    assertion_audience: str | None = None
    """``aud`` claim of the JWT; the token endpoint by default."""
    assertion_lifetime: timedelta = timedelta(minutes=5)
    """How long the JWT is valid (``exp`` - ``iat``)."""
    additional_claims: dict[str, Any] | None = None
    """More claims for the JWT (``scope`` for Google service accounts...)."""

    check_private_key = secret_field("private_key")

    @field_validator("algorithm")
    @classmethod
    def _alg(cls, value: str) -> str:
        for alg in ALGORITHMS:
            if value.upper() == alg.upper():
                return alg
        raise ValueError(f"unsupported algorithm {value!r}: expected one of {', '.join(ALGORITHMS)}")

    @model_validator(mode="after")
    def _one_key(self) -> SigningSettings:
        if not self.private_key and not self.private_key_file:
            raise ValueError("privateKey (a secret reference) or privateKeyFile is required")
        if self.private_key and self.private_key_file:
            raise ValueError("give privateKey or privateKeyFile, not both")
        return self


class JwtBearerSettings(ClientAuthSettings, SigningSettings):
    """OAuth 2.0 JWT Bearer grant (RFC 7523 §2.1)."""

    issuer: str
    """``iss`` of the assertion (a Google service account's ``client_email``)."""
    subject: str | None = None
    """``sub`` of the assertion: the principal the token is for; the issuer by default."""


class PrivateKeyJwtSettings(OAuth2Settings, SigningSettings):
    """``client_credentials`` with ``private_key_jwt`` client authentication (RFC 7523 §2.2)."""

    client_id: str
    """The client identifier (``iss`` and ``sub`` of the client assertion)."""


def sign_jwt(provider: TokenProvider, claims: dict[str, Any], settings: Any, what: str) -> str:
    """``claims`` signed with the credential's private key; the JWT is kept out of every message."""
    import jwt

    pem = load_private_key(provider, settings)
    headers = {"kid": settings.key_id} if settings.key_id else None
    try:
        token = jwt.encode(claims, pem, algorithm=settings.algorithm, headers=headers)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise CredentialError(
            f"credential '{provider.key}': cannot sign the {what} with {settings.algorithm}: "
            f"{type(exc).__name__} (is the private key a PEM key of the right type?)"
        ) from None
    provider.remember_secret(token)
    return token


def load_private_key(provider: TokenProvider, settings: Any) -> str:
    if settings.private_key_file:
        path = Path(str(provider.resolve(settings.private_key_file, "privateKeyFile"))).expanduser()
        try:
            pem = path.read_text()
        except OSError as exc:
            raise CredentialError(
                f"credential '{provider.key}': cannot read privateKeyFile {path}: {exc.strerror}"
            ) from None
        provider.remember_secret(pem)
    else:
        pem = str(provider.resolve(settings.private_key, "privateKey"))
    if "-----BEGIN" in pem and "\n" not in pem.strip() and "\\n" in pem:
        pem = pem.replace("\\n", "\n")  # a PEM stored on one line with escaped newlines (JSON key files)
        provider.remember_secret(pem)
    return pem


class OAuth2Provider(TokenProvider):
    """Token requests to an OAuth 2.0 token endpoint (RFC 6749 §3.2, §5)."""

    settings_model = OAuth2Settings
    secret_fields = ("clientSecret", "privateKey", "privateKeyFile")

    def __init__(self, config: CredentialConfig) -> None:
        super().__init__(config)
        self._endpoint = self.settings.token_endpoint

    def endpoint(self) -> str:
        return self._endpoint

    def form(self) -> tuple[dict[str, str], dict[str, str]]:
        """The form fields and headers of the token request."""
        raise NotImplementedError

    def fetch(self) -> Token:
        url = str(self.resolve(self.settings.token_endpoint, "tokenEndpoint"))
        self._endpoint = url
        form, headers = self.form()
        s = self.settings
        if s.scopes:
            form["scope"] = " ".join(str(self.resolve(x, "scopes")) for x in s.scopes)
        if s.audience:
            form["audience"] = str(self.resolve(s.audience, "audience"))
        for name, value in (s.parameters or {}).items():
            form[name] = str(self.resolve(value, f"parameters.{name}"))
        try:
            with httpx.Client(timeout=s.timeout.total_seconds()) as client:
                response = client.post(url, data=form, headers={"Accept": "application/json", **headers})
        except httpx.HTTPError as exc:
            raise CredentialError(self.masked(
                f"credential '{self.key}': token request to {url} failed: {type(exc).__name__}: {exc}"
            )) from None  # fmt: skip
        return self.token_response(url, response)

    def client_auth(self, form: dict[str, str], headers: dict[str, str]) -> None:
        """Add client-secret authentication (RFC 6749 §2.3.1) when a client id is configured."""
        s = self.settings
        if not s.client_id:
            return
        client_id = str(self.resolve(s.client_id, "clientId"))
        if not s.client_secret:
            form["client_id"] = client_id
            return
        secret = str(self.resolve(s.client_secret, "clientSecret"))
        if s.auth_method == "client_secret_post":
            form["client_id"] = client_id
            form["client_secret"] = secret
        else:  # id and secret are form-encoded before they are joined (RFC 6749 §2.3.1)
            pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
            basic = base64.b64encode(pair).decode()
            self.remember_secret(basic)
            headers["Authorization"] = f"Basic {basic}"

    def token_response(self, url: str, response: httpx.Response) -> Token:
        """The token of a successful answer (RFC 6749 §5.1), or the server's error (§5.2) as a CredentialError."""
        try:
            body = response.json()
        except ValueError:
            body = None
        where = f"credential '{self.key}': token request to {url} failed: HTTP {response.status_code}"
        if response.status_code >= 400 or (isinstance(body, dict) and body.get("error")):
            if isinstance(body, dict) and body.get("error"):
                detail = str(body["error"])
                if body.get("error_description"):
                    detail += f": {body['error_description']}"
                if body.get("error_uri"):
                    detail += f" (see {body['error_uri']})"
            elif isinstance(body, dict) and body.get("message"):
                detail = str(body["message"])
            else:
                detail = " ".join(response.text.split())[:300] or response.reason_phrase
            raise CredentialError(self.masked(f"{where} {detail}"))
        if not isinstance(body, dict):
            raise CredentialError(
                f"{where}: the answer is not a JSON object ({response.headers.get('content-type')})"
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise CredentialError(f"{where}: the answer has no access_token")
        return Token(token, _seconds(body.get("expires_in")))


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


class ClientCredentials(OAuth2Provider):
    """OAuth 2.0 ``client_credentials``: a client id and secret exchanged for an access token."""

    settings_model = ClientCredentialsSettings  # type: ignore[assignment]

    def form(self) -> tuple[dict[str, str], dict[str, str]]:
        form: dict[str, str] = {"grant_type": GRANT_CLIENT_CREDENTIALS}
        headers: dict[str, str] = {}
        self.client_auth(form, headers)
        return form, headers


class JwtBearer(OAuth2Provider):
    """OAuth 2.0 JWT Bearer grant: a JWT signed by the credential is the grant (RFC 7523 §2.1)."""

    settings_model = JwtBearerSettings  # type: ignore[assignment]

    def form(self) -> tuple[dict[str, str], dict[str, str]]:
        s = self.settings
        now = int(time.time())
        issuer = str(self.resolve(s.issuer, "issuer"))
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": str(self.resolve(s.subject, "subject")) if s.subject else issuer,
            "aud": str(self.resolve(s.assertion_audience, "assertionAudience")) if s.assertion_audience else self._endpoint,
            "iat": now,
            "exp": now + int(s.assertion_lifetime.total_seconds()),
            "jti": uuid.uuid4().hex,
            **self.resolve(s.additional_claims or {}, "additionalClaims"),
        }  # fmt: skip
        form = {"grant_type": GRANT_JWT_BEARER, "assertion": sign_jwt(self, claims, s, "assertion")}
        headers: dict[str, str] = {}
        self.client_auth(form, headers)
        return form, headers


class PrivateKeyJwt(OAuth2Provider):
    """``client_credentials`` where the client proves itself with a signed JWT (``private_key_jwt``)."""

    settings_model = PrivateKeyJwtSettings  # type: ignore[assignment]

    def form(self) -> tuple[dict[str, str], dict[str, str]]:
        s = self.settings
        now = int(time.time())
        client_id = str(self.resolve(s.client_id, "clientId"))
        claims: dict[str, Any] = {
            "iss": client_id,
            "sub": client_id,
            "aud": str(self.resolve(s.assertion_audience, "assertionAudience")) if s.assertion_audience else self._endpoint,
            "iat": now,
            "exp": now + int(s.assertion_lifetime.total_seconds()),
            "jti": uuid.uuid4().hex,
            **self.resolve(s.additional_claims or {}, "additionalClaims"),
        }  # fmt: skip
        return {
            "grant_type": GRANT_CLIENT_CREDENTIALS,
            "client_id": client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": sign_jwt(self, claims, s, "client assertion"),
        }, {}
