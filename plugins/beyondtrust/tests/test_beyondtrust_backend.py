"""The beyondtrust backend against a fake Password Safe that follows the documented API: sign-in, managed
accounts through release requests, Secrets Safe, caching, rotation, session expiry, conflicts, faults."""

from __future__ import annotations

import time

import pytest
from bt_support import ENV, build
from roost import SecretBackendError, SecretConfigError
from roost.testing.http import closed_port


def test_a_managed_account_is_read_through_a_release_request(safe, backend):
    assert backend.get("company.team", "account:db01/svc_app") == "Sup3r-Secret-Pw"
    paths = [(r.method, r.path.rsplit("/v3/", 1)[1]) for r in safe.requests]
    assert paths == [
        ("POST", "Auth/SignAppin"),
        ("GET", "ManagedAccounts"),
        ("POST", "Requests"),
        ("GET", "Credentials/101"),
    ]
    sign_in = safe.requests[0].headers["Authorization"]
    assert sign_in == f"PS-Auth key={ENV['PS_API_KEY']}; runas=svc-roost;"
    assert all(
        r.headers.get("Authorization") is None for r in safe.requests[1:]
    )  # the session cookie, not the key
    assert all("ASP.NET_SessionId=" in r.headers.get("Cookie", "") for r in safe.requests[1:])
    import json

    body = json.loads(safe.calls("POST", "Requests")[0].body)
    assert (
        body["ConflictOption"] == "reuse" and body["AccessType"] == "View" and body["DurationMinutes"] == 10
    )
    # cached: the second read costs no call
    assert backend.get("company.team", "account:db01/svc_app") == "Sup3r-Secret-Pw"
    assert len(safe.requests) == 4


def test_a_cached_value_expires_and_a_rotated_password_is_read_again(safe, settings):
    backends = build({**settings, "cacheTtl": "PT0.3S", "requestDuration": "PT1M"})
    backend = backends.backend_for("main", "x")[2]
    assert backend.get("x", "account:db01/svc_app") == "Sup3r-Secret-Pw"
    safe.rotate("db01", "svc_app", "R0tated-Pw")
    assert backend.get("x", "account:db01/svc_app") == "Sup3r-Secret-Pw"  # still within the TTL
    time.sleep(0.4)
    assert backend.get("x", "account:db01/svc_app") == "R0tated-Pw"
    assert len(safe.calls("PUT", "/Checkin")) == 1  # the first request was released before the new one
    backends.close()
    assert len(safe.calls("PUT", "/Checkin")) == 2 and safe.calls("POST", "Auth/Signout")


def test_invalidate_reads_fresh_and_a_release_that_rotates_is_followed(safe, settings):
    safe.add_account("db02", "etl", "first-Pw-1234", rotate_on_release=True)
    backends = build(settings)
    backend = backends.backend_for("main", "x")[2]
    first = backend.get("x", "account:db02/etl")
    assert first == "first-Pw-1234"
    backend.invalidate("x", "account:db02/etl")  # checks the request in: this account rotates on release
    second = backend.get("x", "account:db02/etl")
    assert second not in (None, first) and second == safe._account("db02", "etl").password
    backends.close()


def test_no_cache_checks_the_request_in_at_once(safe, settings):
    backends = build({**settings, "cacheTtl": "PT0S"})
    backend = backends.backend_for("main", "x")[2]
    assert backend.get("x", "account:db01/svc_app") == "Sup3r-Secret-Pw"
    assert len(safe.calls("PUT", "/Checkin")) == 1
    assert backend.get("x", "account:db01/svc_app") == "Sup3r-Secret-Pw"
    assert len(safe.calls("GET", "Credentials")) == 2
    backends.close()


def test_an_expired_session_signs_in_again(safe, backend):
    backend.get("x", "safe:team/app/api-token")
    safe.expire_sessions()
    assert backend.get("x", "account:db01/svc_app") == "Sup3r-Secret-Pw"
    assert len(safe.calls("POST", "Auth/SignAppin")) == 2
    statuses = [r.path.rsplit("/v3/", 1)[1] for r in safe.requests]
    assert statuses.count("ManagedAccounts") == 2  # the call refused with 401 was repeated once signed in


def test_a_lost_request_is_requested_again(safe, backend):
    assert backend.get("x", "account:db01/svc_app")
    backend.invalidate("x", "account:db01/svc_app")
    safe.inject(404, "Could not find the request to release", path=r"/Credentials/")
    assert backend.get("x", "account:db01/svc_app") == "Sup3r-Secret-Pw"
    assert len(safe.calls("POST", "Requests")) == 3


def test_secrets_safe_credentials_texts_files_and_folders(safe, settings):
    safe.add_secret("team/app", "notes", "some text", type="Text")
    safe.add_secret("team/app", "cert.pem", "-----BEGIN CERTIFICATE-----\nMII\n", type="File")
    safe.add_secret("roost/company/payments", "DB_PASSWORD", "payments-pw")
    backends = build({**settings, "folder": "roost/{namespace}",
                      "keys": {"API_TOKEN": {"secretsSafe": "team/app/api-token"},
                               "DB": {"managedAccount": "db01/svc_app"}}})  # fmt: skip
    backend = backends.backend_for("main", "x")[2]
    assert backend.keys("x") == ["API_TOKEN", "DB"]  # what the UI lists: the mapped names, no call made
    assert backend.get("x", "API_TOKEN") == "tok-9f8e7d6c5b4a"
    assert backend.get("x", "DB") == "Sup3r-Secret-Pw"
    assert backend.get("x", "safe:team/app/notes") == "some text"
    assert backend.get("x", "safe:team/app/cert.pem") == "-----BEGIN CERTIFICATE-----\nMII\n"
    assert backend.get("company.payments", "DB_PASSWORD") == "payments-pw"
    assert backend.get("company.other", "DB_PASSWORD") is None  # another namespace's folder
    assert backend.get("x", "safe:team/app/nope") is None
    assert backend.get("x", "account:db01/nobody") is None
    backends.close()


def test_without_a_folder_plain_keys_are_not_there(backend):
    assert backend.get("x", "DB_PASSWORD") is None
    assert backend.get("x", "account:nosystem") is None


def test_oauth_client_credentials(safe):
    backends = build({"url": safe.base, "clientId": "roost-client", "clientSecret": "${PS_CLIENT_SECRET}"})
    assert backends.backend_for("main", "x")[2].get("x", "account:db01/svc_app") == "Sup3r-Secret-Pw"
    token_call, sign_in = safe.requests[0], safe.requests[1]
    assert (
        token_call.path.endswith("/Auth/connect/token")
        and b"grant_type=client_credentials" in token_call.body
    )
    assert sign_in.headers["Authorization"].startswith("Bearer ")
    backends.close()


def test_conflicts_and_approvals_are_explained(safe, settings):
    safe.add_account("db03", "shared", "shared-Pw-77", max_requests=1)
    safe.add_account("db04", "guarded", "guarded-Pw-88", approval=True)
    from fake_password_safe import ReleaseRequest

    held = safe._account("db03", "shared")
    safe.requests_made[1] = ReleaseRequest(1, "someone-else", held, time.monotonic() + 600)
    backends = build(settings)
    backend = backends.backend_for("main", "x")[2]
    with pytest.raises(
        SecretBackendError, match=r"managed account db03/shared: a conflicting release request exists .*409"
    ) as err:
        backend.get("x", "account:db03/shared")
    assert "shared-Pw-77" not in str(err.value)
    with pytest.raises(SecretBackendError, match="awaits approval"):
        backend.get("x", "account:db04/guarded")
    backends.close()


def test_refused_keys_and_unreachable_servers_are_clear_and_leak_nothing(safe, settings):
    bad = build(
        {**settings},
    )
    backend = bad.backend_for("main", "x")[2]
    safe.api_key = "B" * 128  # the registration's key was rotated: ours is refused
    with pytest.raises(SecretBackendError, match=r"POST Auth/SignAppin .*HTTP 401") as err:
        backend.get("x", "account:db01/svc_app")
    assert ENV["PS_API_KEY"] not in str(err.value) and "B" * 20 not in str(err.value)
    down = build(
        {
            **settings,
            "url": f"http://127.0.0.1:{closed_port()}/BeyondTrust/api/public/v3",
            "connectTimeout": 2,
        }
    )
    with pytest.raises(
        SecretBackendError, match="BeyondTrust Password Safe could not give managed account db01/svc_app"
    ):
        down.backend_for("main", "x")[2].get("x", "account:db01/svc_app")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {
                "url": "https://ps.example.com/BeyondTrust/api/public/v3",
                "apiKey": "literal-key",
                "runAs": "u",
            },
            "apiKey: write a reference",
        ),
        (
            {"url": "http://ps.example.com/BeyondTrust/api/public/v3", "apiKey": "${K}", "runAs": "u"},
            "needs https",
        ),
        ({"url": "https://ps.example.com/x", "apiKey": "${K}"}, "set apiKey and runAs"),
        ({"url": "https://ps.example.com/x", "clientId": "c"}, "clientId and clientSecret together"),
        (
            {
                "url": "https://ps.example.com/x",
                "apiKey": "${K}",
                "runAs": "u",
                "keys": {"A": {"managedAccount": "nosystem"}},
            },
            "expected <system>/<account>",
        ),
        (
            {"url": "https://ps.example.com/x", "apiKey": "${K}", "runAs": "u", "cacheTtl": "PT1H"},
            "requestDuration must be",
        ),
        (
            {"url": "https://ps.example.com/x", "apiKey": "${K}", "runAs": "u", "colour": 1},
            "colour: unknown property",
        ),
    ],
)
def test_settings_are_checked_when_the_configuration_is_read(settings, message):
    with pytest.raises(SecretConfigError, match=message):
        build(settings)
