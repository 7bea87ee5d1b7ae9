"""The standard type checks, Kestra's documented examples, and flows on the real engine."""

from __future__ import annotations

import base64
import time

from argocd_support import SECRETS, wait_for
from roost.testing.suite import TypeSuite
from roost_argocd import tasks

# Kestra's documented examples for its Argo CD tasks, as written on kestra.io.
KESTRA_SYNC = """
id: argocd_sync
namespace: company.team

tasks:
  - id: sync
    type: io.kestra.plugin.argocd.apps.Sync
    server: "{{ secret('ARGOCD_SERVER') }}"
    token: "{{ secret('ARGOCD_TOKEN') }}"
    application: guestbook
"""

KESTRA_SYNC_REVISION = """
id: argocd_sync_revision
namespace: company.team

tasks:
  - id: sync
    type: io.kestra.plugin.argocd.apps.Sync
    server: "{{ secret('ARGOCD_SERVER') }}"
    token: "{{ secret('ARGOCD_TOKEN') }}"
    application: guestbook
    revision: "723b86e01bea11dcf72316cb172868fcbf05d69e"
    prune: true
"""

KESTRA_SYNC_TLS = """
id: argocd_sync_tls
namespace: company.team

tasks:
  - id: sync
    type: io.kestra.plugin.argocd.apps.Sync
    server: "{{ secret('ARGOCD_SERVER') }}"
    token: "{{ secret('ARGOCD_TOKEN') }}"
    application: my-application
    insecure: false
    serverCert: "{{ secret('ARGOCD_SERVER_CERT') }}"
"""

KESTRA_STATUS = """
id: argocd_status_refresh
namespace: company.team

tasks:
  - id: status
    type: io.kestra.plugin.argocd.apps.Status
    server: "{{ secret('ARGOCD_SERVER') }}"
    token: "{{ secret('ARGOCD_TOKEN') }}"
    application: guestbook
    refresh: true
"""

# The older package Kestra first published the tasks under.
KESTRA_OLD_IDS = """
id: argocd_old_ids
namespace: company.team

tasks:
  - id: sync
    type: io.kestra.plugin.argocd.app.Sync
    server: "{{ secret('ARGOCD_SERVER') }}"
    token: "{{ secret('ARGOCD_TOKEN') }}"
    application: guestbook
    dryRun: true
  - id: status
    type: io.kestra.plugin.argocd.app.Status
    server: "{{ secret('ARGOCD_SERVER') }}"
    token: "{{ secret('ARGOCD_TOKEN') }}"
    application: guestbook
"""

# Deploy a release: sync to the tag, wait until healthy, then announce what runs.
DEPLOY = """
id: deploy_guestbook
namespace: company.team
inputs:
  - id: tag
    type: STRING
    defaults: v1.4.0
tasks:
  - id: sync
    type: io.kestra.plugin.argocd.apps.Sync
    server: "{{ secret('ARGOCD_SERVER') }}"
    token: "{{ secret('ARGOCD_TOKEN') }}"
    application: guestbook
    revision: "{{ inputs.tag }}"
    prune: true
    timeout: PT5M
    pollFrequency: PT0.05S
    assets:
      enableAuto: true
  - id: status
    type: io.kestra.plugin.argocd.apps.Status
    server: "{{ secret('ARGOCD_SERVER') }}"
    token: "{{ secret('ARGOCD_TOKEN') }}"
    application: guestbook
    assets:
      enableAuto: true
  - id: announce
    type: io.kestra.plugin.core.log.Log
    message: "guestbook {{ outputs.sync.revision }} is {{ outputs.status.healthStatus }}"
"""

HANGING = """
id: stuck_sync
namespace: company.team
tasks:
  - id: sync
    type: io.kestra.plugin.argocd.apps.Sync
    server: "{{ secret('ARGOCD_SERVER') }}"
    token: "{{ secret('ARGOCD_TOKEN') }}"
    application: guestbook
    pollFrequency: PT0.05S
    timeout: PT1S
"""


class TestArgoCdTypes(TypeSuite):
    types = tasks.TASKS
    examples = [KESTRA_SYNC, KESTRA_SYNC_REVISION, KESTRA_SYNC_TLS, KESTRA_STATUS, KESTRA_OLD_IDS, DEPLOY]


def _server(monkeypatch, argo) -> None:
    monkeypatch.setenv("SECRET_ARGOCD_SERVER", base64.b64encode(argo.url.encode()).decode())


def test_kestra_examples_run(run_flow, argo, monkeypatch):
    _server(monkeypatch, argo)
    ex = run_flow(KESTRA_SYNC, timeout=30)
    assert ex.state.current == "SUCCESS", ex.task_runs[0].state.current
    assert ex.task_runs[0].outputs["healthStatus"] == "Healthy"
    ex = run_flow(KESTRA_STATUS)
    assert ex.state.current == "SUCCESS"
    assert argo.refreshes == [("guestbook", "normal")]
    ex = run_flow(KESTRA_OLD_IDS)
    assert ex.state.current == "SUCCESS"
    assert argo.syncs[-1]["dryRun"] is True


def test_deploy_flow_syncs_waits_and_records_the_application(run_flow, roost_engine, argo, monkeypatch):
    _server(monkeypatch, argo)
    emitted = []
    store = roost_engine.asset_sink
    roost_engine.asset_sink = lambda job, ctx, bundles: (emitted.extend(bundles), store(job, ctx, bundles))
    ex = run_flow(DEPLOY, {"tag": "v1.4.0"})
    assert ex.state.current == "SUCCESS", [(tr.task_id, tr.state.current) for tr in ex.task_runs]
    runs = {tr.task_id: tr for tr in ex.task_runs}
    assert runs["sync"].outputs["syncStatus"] == "Synced"
    assert argo.syncs[-1]["revision"] == "v1.4.0" and argo.syncs[-1]["prune"] is True
    logs = roost_engine.store.get_logs("main", ex.id)
    revision = runs["sync"].outputs["revision"]
    assert any(f"guestbook {revision} is Healthy" in log["message"] for log in logs)
    assert not any(secret in log["message"] for log in logs for secret in SECRETS)
    host = argo.url.removeprefix("http://")
    app_id = f"argocd:{host}:argocd/guestbook"
    assert [a.id for b in emitted for a in b.outputs] == [app_id]
    assert [a.id for b in emitted for a in b.inputs] == [app_id]
    assert emitted[0].outputs[0].metadata["syncedRevision"] == revision
    stored = roost_engine.assets.search("main")
    assert [a["id"] for a in stored] == [app_id]


def test_engine_timeout_fails_with_the_tasks_own_message_and_terminates(roost_engine, argo, monkeypatch):
    _server(monkeypatch, argo)
    argo.plan("guestbook", outcome="hang")
    flow = roost_engine.deploy(HANGING)
    ex = roost_engine.run(flow, None, timeout=30)
    assert ex.state.current == "FAILED"
    logs = roost_engine.store.get_logs("main", ex.id)
    errors = [log["message"] for log in logs if log["level"] == "ERROR"]
    assert errors[-1] == (
        "application guestbook did not finish syncing within 1 s: operation Running, sync OutOfSync, "
        "health Healthy; its sync operation was terminated"
    )
    assert argo.terminations == ["guestbook"]


def test_killing_the_execution_terminates_the_sync(roost_engine, argo, monkeypatch):
    _server(monkeypatch, argo)
    argo.plan("guestbook", outcome="hang")
    flow = roost_engine.deploy(HANGING.replace("timeout: PT1S", "timeout: PT1M"))
    execution = roost_engine.create_execution(flow, None)
    wait_for(lambda: argo.app("guestbook")["status"].get("operationState", {}).get("phase") == "Running", 10)
    started = time.monotonic()
    roost_engine.kill(execution.id)
    assert roost_engine.wait(execution.id, timeout=10).state.current == "KILLED"
    assert time.monotonic() - started < 5
    wait_for(lambda: argo.terminations == ["guestbook"])
