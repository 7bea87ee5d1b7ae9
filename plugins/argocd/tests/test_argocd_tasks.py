"""Sync and Status against the fake Argo CD: waits, outcomes, request bodies, assets, TLS, login."""

from __future__ import annotations

import json

import pytest
from argocd_support import PASSWORD, assert_no_secret
from fake_argocd import sha
from roost.testing import run_task
from roost.testing.http import self_signed_tls
from roost_argocd.tasks import Status, Sync

AUTO = {"enableAuto": True}
FAST = {"pollFrequency": "PT0.01S"}


def test_sync_waits_for_the_operation_and_health(argo, conn):
    argo.plan("guestbook", run_polls=2, health=["Progressing", "Progressing", "Healthy"])
    result = run_task(Sync, **conn, **FAST)
    out = result.outputs
    assert (
        out["application"] == "guestbook" and out["appNamespace"] == "argocd" and out["project"] == "default"
    )
    assert out["operationPhase"] == "Succeeded"
    assert out["operationMessage"] == "successfully synced (all tasks run)"
    assert out["syncStatus"] == "Synced" and out["healthStatus"] == "Healthy"
    assert out["revision"] == sha("HEAD") and out["targetRevision"] == "HEAD"
    assert out["startedAt"] < out["finishedAt"]
    assert out["dryRun"] is False
    assert [(r["kind"], r["status"], r["health"]["status"]) for r in out["resources"]] == [
        ("Service", "Synced", "Healthy"),
        ("Deployment", "Synced", "Healthy"),
    ]
    assert [r["message"] for r in out["syncResult"]] == [
        "service/guestbook-ui configured",
        "deployment.apps/guestbook-ui configured",
    ]
    assert json.loads(out["rawOutput"])["metadata"]["name"] == "guestbook"
    assert argo.syncs == [
        {"name": "guestbook", "prune": False, "dryRun": False, "strategy": {"hook": {"force": False}}}
    ]
    messages = result.messages
    assert any(
        "syncing application guestbook on 127.0.0.1:" in m and "its target revision" in m for m in messages
    )
    assert any("operation Running, sync OutOfSync, health Healthy" in m for m in messages)
    assert any("operation Succeeded, sync Synced, health Progressing" in m for m in messages)
    assert messages[-1].endswith("operation Succeeded, sync Synced, health Healthy")
    req = argo.requests[0]
    assert req.headers["Authorization"].startswith("Bearer ")
    assert_no_secret(result)


def test_sync_sends_revision_prune_force_resources_and_options(argo, conn):
    rev = "723b86e01bea11dcf72316cb172868fcbf05d69e"
    out = run_task(
        Sync,
        revision=rev,
        prune=True,
        force=True,
        resources=["apps:Deployment:guestbook-ui", ":Service:default/guestbook-ui"],
        syncOptions=["CreateNamespace=true", "ServerSideApply=true"],
        **conn,
        **FAST,
    ).outputs
    assert argo.syncs[-1] == {
        "name": "guestbook",
        "revision": rev,
        "prune": True,
        "dryRun": False,
        "strategy": {"hook": {"force": True}},
        "resources": [
            {"group": "apps", "kind": "Deployment", "name": "guestbook-ui"},
            {"group": "", "kind": "Service", "name": "guestbook-ui", "namespace": "default"},
        ],
        "syncOptions": {"items": ["CreateNamespace=true", "ServerSideApply=true"]},
    }
    assert out["revision"] == rev and out["healthStatus"] == "Healthy"
    assert argo.app("guestbook")["status"]["history"][-1]["revision"] == rev


def test_dry_run_waits_for_the_operation_only_and_changes_nothing(argo, conn):
    argo.plan("guestbook", health=["Degraded"])  # a dry run never waits for health
    result = run_task(Sync, dryRun=True, assets=AUTO, **conn, **FAST)
    out = result.outputs
    assert out["dryRun"] is True and out["operationPhase"] == "Succeeded"
    assert out["syncStatus"] == "OutOfSync"  # nothing applied
    assert out["syncResult"][0]["message"] == "service/guestbook-ui configured (dry run)"
    assert argo.syncs[-1]["dryRun"] is True
    [bundle] = result.assets
    assert bundle.outputs == [] and [a.metadata["name"] for a in bundle.inputs] == ["guestbook"]


def test_wait_false_returns_once_requested(argo, conn):
    out = run_task(Sync, wait=False, **conn).outputs
    assert out["operationPhase"] == "Running" and "finishedAt" not in out and out["syncResult"] == []
    assert argo.app("guestbook").get("operation") is not None  # requested, not started by the controller
    assert [r.method for r in argo.requests] == ["POST"]


def test_failed_operation_fails_the_task_with_argo_cds_words(argo, conn):
    argo.plan("guestbook", outcome="Failed")
    result = run_task(Sync, raise_on_failure=False, **conn, **FAST)
    assert result.state == "FAILED"
    assert result.error == (
        "sync of application guestbook ended Failed: one or more objects failed to apply, reason: "
        'Deployment.apps is invalid [Deployment/guestbook-ui: Deployment.apps "guestbook-ui" is invalid: '
        "spec.template.spec.containers[0].image: Required value]"
    )
    assert_no_secret(result)


def test_unresolvable_revision_ends_in_error(argo, conn):
    result = run_task(Sync, revision="does-not-exist", raise_on_failure=False, **conn, **FAST)
    assert result.error == (
        "sync of application guestbook ended Error: ComparisonError: unable to resolve 'does-not-exist' "
        "to a commit SHA"
    )


def test_unhealthy_application_times_out_naming_the_app_and_its_status(argo, conn):
    argo.plan("guestbook", health=["Progressing", "Degraded"])
    result = run_task(Sync, timeout="PT1.5S", raise_on_failure=False, **conn, **FAST)
    assert result.error == (
        "application guestbook did not become Healthy within 1.5 s: operation Succeeded, sync Synced, "
        "health Degraded (Deployment has not progressed within its deadline)"
    )
    assert argo.terminations == []  # the operation was over: nothing to terminate


def test_hanging_operation_times_out_and_is_terminated(argo, conn):
    argo.plan("guestbook", outcome="hang")
    result = run_task(Sync, timeout="PT0.3S", raise_on_failure=False, **conn, **FAST)
    assert result.error == (
        "application guestbook did not finish syncing within 0.3 s: operation Running, sync OutOfSync, "
        "health Healthy; its sync operation was terminated"
    )
    assert argo.terminations == ["guestbook"]
    assert any("timeout: sync operation of application guestbook terminated" in m for m in result.messages)


def test_status_reads_sync_health_conditions_and_resources(argo, conn):
    app = argo.app("guestbook")
    app["status"]["conditions"] = [
        {"type": "SyncError", "message": "boom", "lastTransitionTime": "2024-05-01T10:00:00Z"}
    ]
    result = run_task(Status, assets=AUTO, **conn)
    out = result.outputs
    assert out["syncStatus"] == "OutOfSync" and out["healthStatus"] == "Healthy"
    assert out["conditions"][0]["type"] == "SyncError"
    assert [r["name"] for r in out["resources"]] == ["guestbook-ui", "guestbook-ui"]
    assert out["images"] == ["gcr.io/heptio-images/ks-guestbook-demo:0.2"]
    assert json.loads(out["rawOutput"])["spec"]["project"] == "default"
    assert argo.refreshes == [] and "refresh" not in argo.requests[-1].query
    [bundle] = result.assets
    assert bundle.outputs == [] and len(bundle.inputs) == 1
    assert any(
        "application guestbook: operation none, sync OutOfSync, health Healthy" in m for m in result.messages
    )


def test_status_refresh(argo, conn):
    run_task(Status, refresh=True, **conn)
    run_task(Status, hardRefresh=True, **conn)
    assert argo.refreshes == [("guestbook", "normal"), ("guestbook", "hard")]


def test_application_in_another_namespace(argo, conn):
    argo.add_app("web", namespace="team-a", project="team-a", path="web")
    out = run_task(Sync, **{**conn, "application": "team-a/web"}, **FAST).outputs
    assert out["application"] == "web" and out["appNamespace"] == "team-a" and out["project"] == "team-a"
    assert argo.syncs[-1]["appNamespace"] == "team-a"
    assert all(r.query.get("appNamespace") == ["team-a"] for r in argo.requests if r.method == "GET")


def test_sync_emits_the_application_as_an_asset(argo, conn):
    host = argo.url.removeprefix("http://")
    result = run_task(Sync, revision="v1.2.0", assets=AUTO, **conn, **FAST)
    [bundle] = result.assets
    assert bundle.inputs == []
    [asset] = bundle.outputs
    assert asset.id == f"argocd:{host}:argocd/guestbook"
    assert asset.type == "io.kestra.core.models.assets.External" and asset.display_name == "guestbook"
    assert asset.metadata == {
        "system": "argocd",
        "kind": "application",
        "server": host,
        "name": "guestbook",
        "namespace": "argocd",
        "project": "default",
        "repoURL": "https://github.com/argoproj/argocd-example-apps.git",
        "path": "guestbook",
        "targetRevision": "HEAD",
        "syncedRevision": sha("v1.2.0"),
        "destinationServer": "https://kubernetes.default.svc",
        "destinationNamespace": "default",
        "syncStatus": "Synced",
        "healthStatus": "Healthy",
    }
    status = run_task(Status, assets=AUTO, **conn)
    assert [a.id for a in status.assets[0].inputs] == [asset.id]
    assert run_task(Status, **conn).assets == []  # nothing without enableAuto


def test_login_with_username_and_password(argo, conn):
    conn = {k: v for k, v in conn.items() if k != "token"}
    result = run_task(Status, username="admin", password="{{ secret('ARGOCD_PASSWORD') }}", **conn)
    assert result.outputs["healthStatus"] == "Healthy"
    login, get = argo.requests
    assert login.path == "/api/v1/session" and json.loads(login.body) == {
        "username": "admin",
        "password": PASSWORD,
    }
    assert "Authorization" not in login.headers and get.headers["Authorization"].startswith("Bearer session.")
    session_token = get.headers["Authorization"][7:]
    assert not any(session_token in m for m in result.messages)
    bad = run_task(Status, username="admin", password="nope", raise_on_failure=False, **conn)
    assert bad.error == (
        "Argo CD error on POST /api/v1/session (HTTP 401): Invalid username or password (Unauthenticated) "
        "(check the token, or the user name and password)"
    )


def test_kestra_cli_properties_are_accepted_and_ignored(argo, conn):
    result = run_task(
        Status,
        containerImage="curlimages/curl:latest",
        argoCDVersion="2.10.0",
        grpcWeb=True,
        env={"A": "b"},
        **conn,
    )
    assert any(
        m.startswith("ignored (they configure Kestra's argocd CLI container") and "argoCDVersion" in m
        for m in result.messages
    )


def test_server_given_as_a_host_uses_https_and_plaintext_uses_http(argo, conn):
    hostport = argo.url.removeprefix("http://")
    out = run_task(Status, **{**conn, "server": hostport, "plaintext": True}).outputs
    assert out["application"] == "guestbook"
    https = run_task(Status, **{**conn, "server": hostport}, raise_on_failure=False)
    assert https.error.startswith(
        f"cannot reach Argo CD at https://{hostport}: ConnectError: [SSL: WRONG_VERSION_NUMBER]"
    )


@pytest.fixture
def tls_argo(tmp_path):
    from argocd_support import READONLY, TOKEN
    from fake_argocd import FakeArgoCD

    server = FakeArgoCD(tokens={TOKEN: "admin", READONLY: "readonly"}).start(self_signed_tls(tmp_path))
    server.add_app("guestbook")
    yield server, (tmp_path / "cert.pem").read_text()
    server.stop()


def test_tls_with_server_cert_or_insecure(tls_argo):
    server, pem = tls_argo
    conn = {"server": server.url, "token": "{{ secret('ARGOCD_TOKEN') }}", "application": "guestbook"}
    refused = run_task(Status, raise_on_failure=False, **conn)
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error
    assert run_task(Status, serverCert=pem, **conn).outputs["healthStatus"] == "Healthy"
    assert run_task(Status, insecure=True, **conn).outputs["healthStatus"] == "Healthy"
    bad = run_task(Status, serverCert="not a pem", raise_on_failure=False, **conn)
    assert bad.error.startswith("serverCert is not a PEM certificate")
