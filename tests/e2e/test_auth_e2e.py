"""Auth end to end: with users and tokens configured, anonymous requests get 401 everywhere but /health."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from roost.server.config import hash_password, hash_token

from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e
TOKEN = "roost_test_token_0123456789"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("roost-auth")
    config = root / "roost.yaml"
    config.write_text(f"""
server:
  basicAuth:
    users:
      - username: admin@example.com
        passwordHash: "{hash_password("correct horse")}"
  apiTokens:
    - name: ci
      tokenHash: "{hash_token(TOKEN)}"
""")
    proc = ServerProcess("local", root / "data", config=config).wait_ready()
    yield proc
    proc.stop()


ROUTES = [
    ("GET", "/api/v1/main/flows/search"), ("POST", "/api/v1/main/flows"), ("GET", "/api/v1/main/executions/search"),
    ("POST", "/api/v1/main/executions/a.b/c"), ("GET", "/api/v1/main/logs/search"), ("GET", "/metrics"),
    ("GET", "/api/v1/main/namespaces/a.b/kv"), ("GET", "/api/v1/plugins"), ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/configs"), ("GET", "/api/v1/main/triggers/search"), ("DELETE", "/api/v1/main/executions/x/kill"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_anonymous_is_refused(secured: ServerProcess, method: str, path: str) -> None:
    r = httpx.request(method, secured.url + path, timeout=10)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Basic")
    assert "message" in r.json()


def test_credentials(secured: ServerProcess, tmp_path: Path) -> None:
    url = secured.url + "/api/v1/main/flows/search"
    assert httpx.get(secured.url + "/health").status_code == 200
    assert httpx.get(url, auth=("admin@example.com", "correct horse")).status_code == 200
    assert httpx.get(url, auth=("admin@example.com", "wrong")).status_code == 401
    assert httpx.get(url, auth=("nobody", "correct horse")).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Basic !!!"}).status_code == 401
    configs = httpx.get(secured.url + "/api/v1/configs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "correct horse" not in configs.text and "scrypt" not in configs.text


def test_webhooks_stay_reachable_with_their_key(secured: ServerProcess) -> None:
    """As in Kestra, a webhook's key is its credential: callers such as GitHub send no basic auth."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    src = ("id: hook\nnamespace: sec.ns\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
           "triggers:\n  - id: w\n    type: io.kestra.plugin.core.trigger.Webhook\n    key: k3y\n")  # fmt: skip
    r = httpx.post(
        secured.url + "/api/v1/main/flows",
        content=src,
        headers={**auth, "content-type": "application/x-yaml"},
    )
    assert r.status_code == 200, r.text
    assert httpx.post(secured.url + "/api/v1/main/executions/webhook/sec.ns/hook/k3y").status_code == 200
    assert httpx.post(secured.url + "/api/v1/main/executions/webhook/sec.ns/hook/bad").status_code == 404
