"""Credentials: each type against a real token endpoint on loopback, caching and refresh, errors, masking.

The authorization server is :class:`roost.credentials.testing.FakeAuthorizationServer`: it checks client
authentication, grant types and the JWT assertions' signatures and claims with the registered public keys
(RFC 6749, RFC 7523) and GitHub's installation-token rules, over real HTTP.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from roost import hookimpl
from roost.credentials import CredentialConfigError, CredentialError, CredentialStore, Settings, TokenProvider
from roost.credentials.base import Token
from roost.credentials.testing import FakeAuthorizationServer
from roost.plugins import Plugins
from support import flow

SECRET = "s3cr:et/+ value&="  # characters that client_secret_basic must form-encode (RFC 6749 §2.3.1)


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def server() -> Any:
    with FakeAuthorizationServer(expires_in=3600) as srv:
        yield srv


@pytest.fixture
def plugins() -> Plugins:
    return Plugins(load_entry_points=False)


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set a secret the way the open-source backend reads it: SECRET_<KEY>, base64."""

    def put(key: str, value: str) -> str:
        monkeypatch.setenv(f"SECRET_{key}", base64.b64encode(value.encode()).decode())
        return f"{{{{ secret('{key}') }}}}"

    return put


def build(config: dict[str, Any], plugins: Plugins) -> CredentialStore:
    return CredentialStore.from_config(config, plugins=plugins)


def provider(config: dict[str, Any], plugins: Plugins, key: str = "my_oauth") -> Any:
    return build({key: config}, plugins).for_tenant("main").lookup(key, "company.team")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- client_credentials ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials(server, plugins, secrets, method):
    server.add_client("roost app", SECRET, auth_method=method, scopes=["read", "write"])
    p = provider({"type": "oauth2_client_credentials", "tokenUrl": server.token_url, "clientId": "roost app",
                  "clientSecret": secrets("OAUTH_SECRET", SECRET), "authMethod": method.upper(),
                  "scopes": ["read", "write"], "audience": "https://api.example.com"}, plugins)  # fmt: skip
    token = p.token()
    assert server.valid(token)["subject"] == "roost app"
    [req] = server.requests
    assert req["client_auth"] == method
    assert req["form"]["grant_type"] == "client_credentials"
    assert req["form"]["scope"] == "read write" and req["form"]["audience"] == "https://api.example.com"
    if method == "client_secret_basic":
        assert "client_secret" not in req["form"] and req["headers"]["Authorization"].startswith("Basic ")
    else:
        assert req["form"]["client_secret"] == SECRET and "Authorization" not in req["headers"]
    assert p.token() == token and len(server.requests) == 1  # cached


def test_client_secret_from_environment(server, plugins, monkeypatch):
    server.add_client("roost", "from-env")
    monkeypatch.setenv("MY_OAUTH_SECRET", "from-env")
    p = provider({"type": "client_credentials", "tokenEndpoint": server.token_url, "clientId": "roost",
                  "clientSecret": "${MY_OAUTH_SECRET}"}, plugins)  # fmt: skip
    assert server.valid(p.token())


def test_wrong_secret_names_credential_endpoint_and_server_error_never_the_secret(server, plugins, secrets):
    server.add_client("roost", "the-right-one")
    p = provider({"type": "oauth2_client_credentials", "tokenUrl": server.token_url, "clientId": "roost",
                  "clientSecret": secrets("WRONG", "a-wrong-secret-value")}, plugins)  # fmt: skip
    with pytest.raises(CredentialError) as err:
        p.token()
    msg = str(err.value)
    assert "credential 'my_oauth'" in msg and server.token_url in msg
    assert "HTTP 401 invalid_client: client authentication failed" in msg
    assert "a-wrong-secret-value" not in msg and "the-right-one" not in msg
    assert base64.b64encode(b"roost:a-wrong-secret-value").decode() not in msg


def test_auth_method_the_client_is_not_registered_for(server, plugins, secrets):
    server.add_client("roost", SECRET, auth_method="client_secret_basic")
    p = provider({"type": "oauth2_client_credentials", "tokenUrl": server.token_url, "clientId": "roost",
                  "clientSecret": secrets("S", SECRET), "authMethod": "client_secret_post"}, plugins)  # fmt: skip
    with pytest.raises(CredentialError, match="must authenticate with client_secret_basic"):
        p.token()


def test_server_errors_are_reported_with_description_and_uri(server, plugins, secrets):
    server.add_client("roost", SECRET, scopes=["read"])
    p = provider({"type": "oauth2_client_credentials", "tokenUrl": server.token_url, "clientId": "roost",
                  "clientSecret": secrets("S", SECRET), "scopes": "read admin", "cache": False}, plugins)  # fmt: skip
    with pytest.raises(CredentialError, match=r"HTTP 400 invalid_scope: scope admin is not allowed"):
        p.token()
    server.fail_next(
        400, {"error": "invalid_request", "error_description": "nope", "error_uri": "https://x/e"}
    )
    with pytest.raises(CredentialError, match=r"invalid_request: nope \(see https://x/e\)"):
        p.token()
    server.fail_next(502, "<html><body>Bad   gateway</body></html>")
    with pytest.raises(CredentialError, match=r"HTTP 502 <html><body>Bad gateway</body></html>"):
        p.token()
    server.fail_next(200, {"token_type": "Bearer"})
    with pytest.raises(CredentialError, match="has no access_token"):
        p.token()


def test_unreachable_token_endpoint(plugins, secrets):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/token"
    p = provider({"type": "oauth2_client_credentials", "tokenUrl": url, "clientId": "roost",
                  "clientSecret": secrets("S", SECRET), "timeout": "PT2S"}, plugins)  # fmt: skip
    with pytest.raises(
        CredentialError, match=rf"credential 'my_oauth': token request to {url} failed: ConnectError"
    ):
        p.token()


def test_missing_secret(server, plugins):
    p = provider({"type": "oauth2_client_credentials", "tokenUrl": server.token_url, "clientId": "roost",
                  "clientSecret": "{{ secret('NOT_THERE_AT_ALL') }}"}, plugins)  # fmt: skip
    with pytest.raises(CredentialError, match="clientSecret: Cannot find secret for key 'NOT_THERE_AT_ALL'"):
        p.token()
    assert server.requests == []


# -- jwt_bearer ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_jwt_bearer(server, plugins, secrets, rsa_key, ec_key, alg):
    key = ec_key if alg.startswith("ES") else rsa_key
    server.add_jwt_issuer("svc@project.iam.example.com", key, subjects=["svc@project.iam.example.com"],
                          scopes=["https://www.googleapis.com/auth/cloud-platform.read-only"])  # fmt: skip
    p = provider({"type": "OAUTH2", "authConfigType": "JWT_BEARER", "tokenEndpoint": server.token_url,
                  "issuer": "svc@project.iam.example.com", "privateKey": secrets("GCP_PRIVATE_KEY", pem(key)),
                  "keyId": "k-1", "algorithm": alg,
                  "additionalClaims": {"scope": "https://www.googleapis.com/auth/cloud-platform.read-only"}},
                 plugins, key="gcp")  # fmt: skip
    token = p.token()
    assert server.valid(token)["subject"] == "svc@project.iam.example.com"
    [req] = server.requests
    assert req["form"]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assertion = req["form"]["assertion"]
    assert jwt.get_unverified_header(assertion) == {"alg": alg, "kid": "k-1", "typ": "JWT"}
    claims = jwt.decode(assertion, key.public_key(), algorithms=[alg], audience=server.token_url)
    assert claims["sub"] == claims["iss"] and claims["exp"] - claims["iat"] == 300 and claims["jti"]


def test_jwt_bearer_signed_with_the_wrong_key(server, plugins, secrets, rsa_key, other_rsa_key):
    server.add_jwt_issuer("svc", rsa_key)
    p = provider({"type": "oauth2_jwt_bearer", "tokenEndpoint": server.token_url, "issuer": "svc",
                  "privateKey": secrets("K", pem(other_rsa_key))}, plugins)  # fmt: skip
    with pytest.raises(CredentialError) as err:
        p.token()
    assert "HTTP 400 invalid_grant: assertion rejected: Signature verification failed" in str(err.value)
    assert server.requests[0]["form"]["assertion"] not in str(err.value)


def test_jwt_bearer_key_with_escaped_newlines_and_subject(server, plugins, secrets, rsa_key):
    server.add_jwt_issuer("svc", rsa_key, subjects=["user@example.com"])
    one_line = pem(rsa_key).replace("\n", "\\n")  # as a JSON key file's private_key pasted into a secret
    p = provider({"type": "jwt_bearer", "tokenEndpoint": server.token_url, "issuer": "svc",
                  "subject": "user@example.com", "privateKey": secrets("K", one_line)}, plugins)  # fmt: skip
    assert server.valid(p.token())["subject"] == "user@example.com"


def test_bad_private_key_is_reported_without_the_key(server, plugins, secrets):
    server.add_jwt_issuer("svc", rsa.generate_private_key(65537, 2048))
    junk = "-----BEGIN PRIVATE KEY-----\nnot a key at all\n-----END PRIVATE KEY-----\n"
    p = provider({"type": "jwt_bearer", "tokenEndpoint": server.token_url, "issuer": "svc",
                  "privateKey": secrets("K", junk)}, plugins)  # fmt: skip
    with pytest.raises(CredentialError, match="cannot sign the assertion with RS256") as err:
        p.token()
    assert "not a key at all" not in str(err.value)


# -- private_key_jwt ---------------------------------------------------------------------------------
def test_private_key_jwt(server, plugins, secrets, rsa_key):
    server.add_client("roost-client", auth_method="private_key_jwt", public_key=rsa_key, scopes=["api"])
    p = provider({"type": "oauth2_private_key_jwt", "tokenEndpoint": server.token_url, "clientId": "roost-client",
                  "privateKey": secrets("CLIENT_KEY", pem(rsa_key)), "keyId": "2024-01", "scopes": "api",
                  "cache": False}, plugins)  # fmt: skip
    first, second = p.token(), p.token()  # no cache: two requests, two assertions (jti used once each)
    assert first != second and server.valid(first) and server.valid(second)
    for req in server.requests:
        form = req["form"]
        assert req["client_auth"] == "private_key_jwt" and form["grant_type"] == "client_credentials"
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        claims = jwt.decode(form["client_assertion"], rsa_key.public_key(), algorithms=["RS256"],
                            audience=server.token_url)  # fmt: skip
        assert claims["iss"] == claims["sub"] == "roost-client"
    jtis = {
        jwt.decode(r["form"]["client_assertion"], options={"verify_signature": False})["jti"]
        for r in server.requests
    }
    assert len(jtis) == 2


def test_private_key_jwt_from_key_file(server, plugins, rsa_key, tmp_path):
    server.add_client("roost-client", auth_method="private_key_jwt", public_key=rsa_key)
    key_file = tmp_path / "client.pem"
    key_file.write_text(pem(rsa_key))
    p = provider({"type": "private_key_jwt", "tokenEndpoint": server.token_url, "clientId": "roost-client",
                  "privateKeyFile": str(key_file)}, plugins)  # fmt: skip
    assert server.valid(p.token())


def test_private_key_jwt_unknown_key_is_invalid_client(server, plugins, secrets, rsa_key, other_rsa_key):
    server.add_client("roost-client", auth_method="private_key_jwt", public_key=rsa_key)
    p = provider({"type": "oauth2_private_key_jwt", "tokenEndpoint": server.token_url, "clientId": "roost-client",
                  "privateKey": secrets("K", pem(other_rsa_key))}, plugins)  # fmt: skip
    with pytest.raises(CredentialError, match="HTTP 401 invalid_client: assertion rejected"):
        p.token()


# -- github_app --------------------------------------------------------------------------------------
def test_github_app(server, plugins, secrets, rsa_key):
    server.add_github_app(12345, rsa_key, installations=[678])
    p = provider({"type": "GITHUB_APP", "appId": 12345, "installationId": 678, "apiUrl": server.url + "/api/v3",
                  "privateKey": secrets("GH_APP_KEY", pem(rsa_key)), "repositories": ["roost"],
                  "permissions": {"contents": "read"}}, plugins, key="gh")  # fmt: skip
    clock = Clock()
    p.clock = clock
    token = p.token()
    assert token.startswith("ghs_") and server.valid(token)
    [req] = server.requests
    assert req["installation"] == "678" and req["body"] == {
        "repositories": ["roost"],
        "permissions": {"contents": "read"},
    }
    assert req["headers"]["Accept"] == "application/vnd.github+json"
    assert req["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    app_jwt = req["headers"]["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(app_jwt, rsa_key.public_key(), algorithms=["RS256"])
    assert claims["iss"] == "12345" and claims["exp"] - claims["iat"] <= 600
    # expires_at (one hour) drives the refresh: still cached 58 minutes later, refreshed after 59
    clock.now += 58 * 60
    assert p.token() == token
    clock.now += 61
    assert p.token() != token and len(server.requests) == 2


def test_github_app_unknown_installation(server, plugins, secrets, rsa_key):
    server.add_github_app(1, rsa_key, installations=[2])
    p = provider({"type": "github_app", "appId": 1, "installationId": 3, "apiUrl": server.url,
                  "privateKey": secrets("K", pem(rsa_key))}, plugins, key="gh")  # fmt: skip
    with pytest.raises(CredentialError) as err:
        p.token()
    assert str(err.value) == (f"credential 'gh': token request to {server.url}/app/installations/3/access_tokens "
                              "failed: HTTP 404 Not Found")  # fmt: skip


# -- cache and refresh -------------------------------------------------------------------------------
def client_credentials(server: Any, secrets: Any, **extra: Any) -> dict[str, Any]:
    server.add_client("roost", SECRET)
    return {"type": "oauth2_client_credentials", "tokenUrl": server.token_url, "clientId": "roost",
            "clientSecret": secrets("S", SECRET), **extra}  # fmt: skip


def test_refreshed_before_expiry(server, plugins, secrets):
    server.expires_in = 120
    p = provider(client_credentials(server, secrets, refreshBeforeExpiry="PT30S"), plugins)
    clock = Clock()
    p.clock = clock
    first = p.token()
    clock.now += 89
    assert p.token() == first and len(server.requests) == 1
    clock.now += 2  # 91 s: within 30 s of expiry
    second = p.token()
    assert second != first and len(server.requests) == 2
    p.invalidate()
    assert p.token() not in (first, second)


def test_margin_is_at_most_half_the_lifetime(server, plugins, secrets):
    server.expires_in = 10  # shorter than the default 60 s margin: refresh at 5 s, not on every call
    p = provider(client_credentials(server, secrets), plugins)
    p.clock = clock = Clock()
    first = p.token()
    clock.now += 4.9
    assert p.token() == first
    clock.now += 0.2
    assert p.token() != first


def test_without_expires_in_and_without_cache(server, plugins, secrets):
    server.expires_in = None
    p = provider(client_credentials(server, secrets, defaultExpiresIn=100, refreshBeforeExpiry=10), plugins)
    p.clock = clock = Clock()
    first = p.token()
    clock.now += 89
    assert p.token() == first
    clock.now += 2
    assert p.token() != first
    no_cache = provider({**client_credentials(server, secrets), "cache": False}, plugins, key="other")
    assert len({no_cache.token() for _ in range(3)}) == 3


def test_failed_refresh_keeps_the_current_token_until_it_expires(server, plugins, secrets, caplog):
    server.expires_in = 100
    p = provider(client_credentials(server, secrets), plugins)
    p.clock = clock = Clock()
    first = p.token()
    clock.now += 60  # due for refresh (margin 50 s), still valid 40 s
    server.fail_next(503, {"error": "temporarily_unavailable"})
    with caplog.at_level(logging.WARNING, logger="roost.credentials"):
        assert p.token() == first
    assert "temporarily_unavailable" in caplog.text and first not in caplog.text
    clock.now += 41  # expired: the failure is the caller's now
    server.fail_next(503, {"error": "temporarily_unavailable"})
    with pytest.raises(CredentialError, match="temporarily_unavailable"):
        p.token()
    assert server.valid(p.token())  # and the next call tries again


def test_concurrent_callers_fetch_once(server, plugins, secrets):
    p = provider(client_credentials(server, secrets), plugins)
    server.delay = 0.3
    barrier = threading.Barrier(16)
    results: list[str] = []

    def call() -> None:
        barrier.wait()
        results.append(p.token())

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16 and len(set(results)) == 1
    assert len(server.requests) == 1 and p.fetches == 1


def test_concurrent_callers_share_one_failure(server, plugins, secrets):
    p = provider(client_credentials(server, secrets), plugins)
    server.delay = 0.3
    server.fail_next(500, {"error": "server_error", "error_description": "down"}, times=16)
    barrier = threading.Barrier(8)
    errors: list[str] = []

    def call() -> None:
        barrier.wait()
        try:
            p.token()
        except CredentialError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8 and all("server_error: down" in e for e in errors)
    assert len(server.requests) == 1


# -- configuration -----------------------------------------------------------------------------------
def test_configuration_errors(plugins):
    base = {
        "type": "oauth2_client_credentials",
        "tokenUrl": "https://auth.example.com/token",
        "clientId": "c",
    }
    with pytest.raises(
        CredentialConfigError, match=r"credentials.x.clientSecret: write a reference to the secret"
    ):
        build({"x": {**base, "clientSecret": "clear-text"}}, plugins)
    with pytest.raises(CredentialConfigError, match=r"credentials.x.clientSecret: Field required"):
        build({"x": base}, plugins)
    with pytest.raises(
        CredentialConfigError, match=r"credentials.x.clientSecrett: unknown property \(known: .*clientSecret"
    ):
        build({"x": {**base, "clientSecret": "${S}", "clientSecrett": "${S}"}}, plugins)
    with pytest.raises(
        CredentialConfigError,
        match=r"credentials.x.type: unknown credential type 'saml' \(known: github_app, ",
    ):
        build({"x": {"type": "saml"}}, plugins)
    with pytest.raises(
        CredentialConfigError, match=r"credentials.x.authConfigType: required with type OAUTH2"
    ):
        build({"x": {"type": "OAUTH2"}}, plugins)
    with pytest.raises(
        CredentialConfigError, match=r"credentials.x.algorithm: unsupported algorithm 'HS256'"
    ):
        build({"x": {"type": "oauth2_jwt_bearer", "tokenUrl": "https://a/t", "issuer": "i", "privateKey": "${K}",
                     "algorithm": "HS256"}}, plugins)  # fmt: skip
    with pytest.raises(
        CredentialConfigError, match=r"credentials.tenants.acme.namespaces.a.b.x: expected a mapping"
    ):
        build({"tenants": {"acme": {"namespaces": {"a.b": {"x": "oops"}}}}}, plugins)
    with pytest.raises(CredentialConfigError, match=r"credentials.gh.privateKey: write a reference"):
        build({"gh": {"type": "github_app", "appId": 1, "installationId": 2,
                      "privateKey": "-----BEGIN PRIVATE KEY-----..."}}, plugins)  # fmt: skip


def test_scopes_most_specific_first(plugins):
    def cred(name: str) -> dict[str, Any]:
        return {"type": "oauth2_client_credentials", "tokenUrl": f"https://auth.example.com/{name}",
                "clientId": name, "clientSecret": "${S}"}  # fmt: skip

    store = build({
        "api": cred("global"),
        "namespaces": {"company": {"api": cred("ns-company")}},
        "tenants": {"acme": {"api": cred("acme"), "namespaces": {"company.team": {"api": cred("acme-team")}}}},
    }, plugins)  # fmt: skip

    def endpoint(tenant: str, namespace: str) -> str:
        return store.for_tenant(tenant).lookup("api", namespace).settings.client_id

    assert endpoint("main", "other") == "global"
    assert (
        endpoint("main", "company.team.sub") == "ns-company"
    )  # a namespace's credentials reach its children
    assert endpoint("acme", "company.team.sub") == "acme-team"
    assert endpoint("acme", "company.data") == "ns-company"  # namespace level beats tenant level
    assert endpoint("acme", "other") == "acme"
    assert store.for_tenant("main")["api"].settings.client_id == "global"
    assert list(store.for_tenant("acme")) == ["api"]
    assert store.for_tenant("acme").lookup("nope", "company") is None


def test_describe_shows_references_only(plugins, secrets):
    store = build({"x": {"type": "oauth2_client_credentials", "tokenUrl": "https://a/t", "clientId": "c",
                         "clientSecret": secrets("S", "the-value")}}, plugins)  # fmt: skip
    described = json.dumps(store.describe())
    assert "secret('S')" in described and "the-value" not in described


def test_roost_credentials_environment_variable(plugins, server, secrets, tmp_path, monkeypatch):
    server.add_client("roost", SECRET)
    ref = secrets("S", SECRET)
    inline = json.dumps({"my_oauth": {"type": "oauth2_client_credentials", "tokenUrl": server.token_url,
                                      "clientId": "roost", "clientSecret": ref}})  # fmt: skip
    monkeypatch.setenv("ROOST_CREDENTIALS", inline)
    assert server.valid(CredentialStore.from_env(plugins=plugins).for_tenant("main")["my_oauth"].token())
    path = tmp_path / "credentials.yaml"
    path.write_text(f"credentials:\n  my_oauth:\n    type: oauth2_client_credentials\n    tokenUrl: {server.token_url}\n"
                    f"    clientId: roost\n    clientSecret: \"{ref}\"\n")  # fmt: skip
    monkeypatch.setenv("ROOST_CREDENTIALS", str(path))
    assert server.valid(CredentialStore.from_env(plugins=plugins).for_tenant("main")["my_oauth"].token())
    monkeypatch.setenv("ROOST_CREDENTIALS", str(tmp_path / "missing.yaml"))
    with pytest.raises(CredentialConfigError, match="ROOST_CREDENTIALS: .*missing.yaml is not a file"):
        CredentialStore.from_env(plugins=plugins)


def test_server_configuration_section(server, secrets, tmp_path):
    from roost.server.config import ConfigError, load_config

    ref = secrets("S", SECRET)
    path = tmp_path / "roost.yaml"
    path.write_text(f"credentials:\n  my_oauth:\n    type: oauth2_client_credentials\n    tokenUrl: {server.token_url}\n"
                    f"    clientId: roost\n    clientSecret: \"{ref}\"\n")  # fmt: skip
    config = load_config(path, env={})
    assert config.credentials["my_oauth"]["clientSecret"] == ref
    path.write_text("credentials:\n  my_oauth:\n    type: oauth2_client_credentials\n    tokenUrl: https://a/t\n"
                    "    clientId: roost\n    clientSecret: plain\n")  # fmt: skip
    with pytest.raises(ConfigError, match="credentials.my_oauth.clientSecret: write a reference"):
        load_config(path, env={})


class StaticSettings(Settings):
    value: str
    """What the token is made of."""


class Static(TokenProvider):
    """A third-party type: the base class brings validated settings, caching and refresh."""

    settings_model = StaticSettings

    def fetch(self) -> Token:
        return Token(f"static-{self.resolve(self.settings.value, 'value')}", 60)


class ThirdParty:
    @staticmethod
    @hookimpl
    def register_credential_types(register):
        register("static_test", Static)


def test_plugins_add_credential_types(plugins):
    plugins.register_module(ThirdParty(), name="third-party")
    p = build({"s": {"type": "static_test", "value": "abc"}}, plugins).for_tenant("main")["s"]
    assert p.token() == "static-abc" and p.token() == "static-abc" and p.fetches == 1
    with pytest.raises(
        CredentialConfigError, match=r"credentials.s.valeu: unknown property \(known: .*value"
    ):
        build({"s": {"type": "static_test", "valeu": "abc"}}, plugins)


# -- in flows ----------------------------------------------------------------------------------------
@pytest.fixture
def engine_with(tmp_path: Path) -> Any:
    from roost.engine.engine import Engine
    from roost.store.db import Store

    engines: list[Any] = []

    def make(credentials: Any) -> Any:
        eng = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=4, credentials=credentials)
        eng.start()
        engines.append(eng)
        return eng

    yield make
    for eng in engines:
        eng.stop()
        eng.store.close()


def test_credential_in_a_flow_is_masked_in_every_log(server, secrets, engine_with):
    server.add_client("roost", SECRET)
    engine = engine_with({"my_oauth": {"type": "oauth2_client_credentials", "tokenUrl": server.token_url,
                                       "clientId": "roost", "clientSecret": secrets("S", SECRET)}})  # fmt: skip
    source = flow(f"""
        tasks:
          - id: leak
            type: io.kestra.plugin.core.log.Log
            message: "token={{{{ credential('my_oauth') }}}} again {{{{ credential('my_oauth') }}}}"
          - id: call
            type: io.kestra.plugin.core.http.Request
            uri: {server.url}/resource
            options:
              auth:
                type: BEARER
                token: "{{{{ credential('my_oauth') }}}}"
          - id: echo
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ outputs.call.body }}}}"
    """)  # fmt: skip
    ex = engine.run(engine.deploy(source), timeout=30)
    assert ex.state.current == "SUCCESS", ex.to_dict()
    [issued] = [r["token"] for r in server.requests]
    assert server.resource_calls == [{"path": "/resource", "authorization": f"Bearer {issued}", "ok": True}]
    logs = engine.store.get_logs("main", ex.id)
    text = "\n".join(r["message"] for r in logs)
    assert "token=****** again ******" in text
    assert issued not in text


def test_unknown_credential_fails_the_task_clearly(engine_with):
    engine = engine_with({})
    source = flow("""
        tasks:
          - id: leak
            type: io.kestra.plugin.core.log.Log
            message: "{{ credential('nope') }}"
    """)
    ex = engine.run(engine.deploy(source), timeout=30)
    assert ex.state.current == "FAILED"
    text = "\n".join(r["message"] for r in engine.store.get_logs("main", ex.id))
    assert "No credential 'nope' is configured for namespace 'company.team' (tenant 'main')" in text


def test_engine_reads_roost_credentials_when_not_given(server, secrets, engine_with, monkeypatch):
    server.add_client("roost", SECRET)
    monkeypatch.setenv("ROOST_CREDENTIALS", json.dumps({"env_oauth": {
        "type": "oauth2_client_credentials", "tokenUrl": server.token_url, "clientId": "roost",
        "clientSecret": secrets("S", SECRET)}}))  # fmt: skip
    engine = engine_with(None)
    assert server.valid(engine.runtime("main").credentials["env_oauth"].token())


def test_references_resolve_once(secrets, monkeypatch):
    """An environment value is never read as an expression, nor a secret's value as ``${VAR}``."""
    from roost.credentials import CredentialConfig

    monkeypatch.setenv("FROM_ENV", "{{ secret('B') }}")
    ref = secrets("B", "x${FROM_ENV}y")
    config = CredentialConfig("k", {}, type="t")
    assert config.resolve("${FROM_ENV}") == "{{ secret('B') }}"
    assert config.resolve(ref) == "x${FROM_ENV}y"
    assert config.resolve(f"a-${{FROM_ENV}}-{ref}") == "a-{{ secret('B') }}-x${FROM_ENV}y"
    assert config.resolve("${UNSET_VARIABLE_X:fallback}") == "fallback"
    with pytest.raises(
        CredentialError, match="refers to the environment variable UNSET_VARIABLE_X, which is not set"
    ):
        config.resolve("${UNSET_VARIABLE_X}", "clientSecret")
