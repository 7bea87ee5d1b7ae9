"""The webhook-trigger contract: a plugin's WebhookTrigger decides whether a call starts an execution,
is answered without one, or is refused; a delivery id starts at most one execution."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from roost import WebhookAnswer, WebhookReject, WebhookRequest, WebhookStart, WebhookTrigger, hookimpl
from roost.engine.engine import Engine
from roost.server import ServerState, create_app
from roost.store.db import Store
from roost.testing import registered


class EchoHook(WebhookTrigger, type="io.roost.test.EchoHook"):
    """A test trigger: ``?handshake`` is answered, ``X-Refuse`` refused, ``?delivery=`` deduplicated."""

    secret: str = "s3cret"
    """Rendered at each call, as plugins render their signing secrets."""

    def receive(self, request: WebhookRequest, ctx: Any) -> WebhookAnswer | WebhookReject | WebhookStart:
        if request.header("X-Refuse"):
            return WebhookReject(403, f"refused by {ctx.render(self.secret)[:1]}...")
        if "handshake" in request.query:
            return WebhookAnswer(200, "pong", {"X-Hook": "yes"}, "text/plain")
        if "boom" in request.query:
            raise RuntimeError("the trigger broke")
        delivery = request.query.get("delivery", [None])[0]
        return WebhookStart({"raw": request.text(), "method": request.method}, dedup_key=delivery)


class Plugin:
    @hookimpl
    def register_trigger_types(self, register: Any) -> None:
        register(EchoHook)


FLOW = """id: hooked
namespace: company.team
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.raw }}"
triggers:
  - id: echo
    type: io.roost.test.EchoHook
    key: k3y
    secret: "{{ flow.namespace }}"
"""
HOOK = "/api/v1/main/executions/webhook/company.team/hooked/k3y"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with registered(Plugin(), name="echo-hook"):
        engine = Engine(Store.sqlite(tmp_path), tmp_path, workers=2)
        engine.start()
        client = TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)
        r = client.post("/api/v1/main/flows", content=FLOW, headers={"content-type": "application/x-yaml"})
        assert r.status_code == 200, r.text
        yield client
        engine.stop()


def test_start_with_the_raw_body(client: TestClient) -> None:
    r = client.post(HOOK, content=b'{"a": 1}  ', headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["trigger"] == {"id": "echo", "type": "io.roost.test.EchoHook",
                                   "variables": {"raw": '{"a": 1}  ', "method": "POST"}}  # fmt: skip


def test_answer_without_an_execution(client: TestClient) -> None:
    r = client.get(HOOK, params={"handshake": ""})
    assert (r.status_code, r.text, r.headers["x-hook"]) == (200, "pong", "yes")
    assert r.headers["content-type"].startswith("text/plain")
    assert client.get("/api/v1/main/executions/search").json()["total"] == 0


def test_reject_and_trigger_failures(client: TestClient) -> None:
    r = client.post(HOOK, headers={"X-Refuse": "1"})
    assert r.status_code == 403 and r.json()["message"] == "refused by c..."
    broken = client.post(HOOK, params={"boom": ""})
    assert broken.status_code == 422 and broken.json()["message"] == "webhook trigger echo: the trigger broke"
    with pytest.raises(ValueError, match="4xx"):
        WebhookReject(500, "no")


def test_a_delivery_id_starts_one_execution(client: TestClient) -> None:
    first = client.post(HOOK, params={"delivery": "d-1"}, content=b"one").json()
    again = client.post(HOOK, params={"delivery": "d-1"}, content=b"one, redelivered").json()
    other = client.post(HOOK, params={"delivery": "d-2"}, content=b"two").json()
    assert again["id"] == first["id"] and other["id"] != first["id"]
    assert client.get("/api/v1/main/executions/search").json()["total"] == 2
