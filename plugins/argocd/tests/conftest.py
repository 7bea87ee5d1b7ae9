"""Fixtures: a fake Argo CD server on a free loopback port, with one application, guestbook."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from argocd_support import PASSWORD, READONLY, TOKEN  # noqa: E402
from fake_argocd import FakeArgoCD  # noqa: E402


@pytest.fixture
def argo():
    server = FakeArgoCD(tokens={TOKEN: "admin", READONLY: "readonly"}, users={"admin": PASSWORD}).start()
    server.add_app("guestbook")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def argocd_secrets(monkeypatch):
    for key, value in {
        "ARGOCD_TOKEN": TOKEN,
        "ARGOCD_READONLY": READONLY,
        "ARGOCD_PASSWORD": PASSWORD,
    }.items():
        monkeypatch.setenv(f"SECRET_{key}", base64.b64encode(value.encode()).decode())


@pytest.fixture
def conn(argo):
    return {"server": argo.url, "token": "{{ secret('ARGOCD_TOKEN') }}", "application": "guestbook"}
