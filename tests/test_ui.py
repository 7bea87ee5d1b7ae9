"""The web UI in process: sessions (signed, HttpOnly, SameSite, expiring, revoked on logout), CSRF on
every unsafe request, login rate limits without user enumeration, pages behind login, the
register_ui hook, graphs and the packaged static files. The browser tests are in tests/ui."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from roost import UiPage, UiPanel, hookimpl
from roost.engine.engine import Engine
from roost.server import ServerConfig, ServerState, create_app
from roost.server.config import AuthConfig, hash_password
from roost.server.ui.session import LoginLimiter, Sessions
from roost.store.db import Store
from roost.testing import registered

USER, PASSWORD = "ada@example.com", "pa55word!"
FLOW = """id: hello
namespace: company.team
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Store.sqlite(tmp_path), tmp_path, workers=2)
    eng.start()
    yield eng
    eng.stop()


def secured(engine: Engine) -> TestClient:
    config = ServerConfig(auth=AuthConfig(users={USER: hash_password(PASSWORD)}))
    return TestClient(
        create_app(ServerState(engine, config)), raise_server_exceptions=False, base_url="http://testserver"
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def log_in(client: TestClient) -> str:
    page = client.get("/ui/login")
    r = client.post("/ui/login", data={"username": USER, "password": PASSWORD, "csrf_token": csrf_of(page.text),
                                      "next": "/ui/main/flows"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/ui/main/flows"
    return csrf_of(client.get("/ui/main/flows").text)


def test_pages_need_a_session_and_api_stays_401(engine: Engine) -> None:
    client = secured(engine)
    r = client.get("/ui/main/flows?q=x", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=%2Fui%2Fmain%2Fflows%3Fq%3Dx"
    assert (
        client.get("/ui/main/flows", headers={"HX-Request": "true"})
        .headers["hx-redirect"]
        .startswith("/ui/login")
    )
    assert client.get("/api/v1/main/flows/search").status_code == 401
    assert client.get("/ui/static/app.css").status_code == 200  # the login page's own assets
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"


def test_session_cookie_flags_and_logout(engine: Engine) -> None:
    client = secured(engine)
    page = client.get("/ui/login")
    r = client.post("/ui/login", data={"username": USER, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
                    follow_redirects=False)  # fmt: skip
    cookie = r.headers["set-cookie"]
    assert "roost_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; HTTPS requests get Secure
    assert client.get("/ui/main/flows").status_code == 200
    assert client.get("/api/v1/main/flows/search").status_code == 200  # the UI's scripts read the API
    token = csrf_of(client.get("/ui/main/flows").text)
    stolen = client.cookies.get("roost_session")
    out = client.post("/ui/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    replay = TestClient(client.app, base_url="http://testserver")
    replay.cookies.set("roost_session", stolen)
    assert (
        replay.get("/ui/main/flows", follow_redirects=False).status_code == 303
    )  # the logged-out cookie is revoked
    assert client.get("/ui/main/flows", follow_redirects=False).status_code == 303


def test_csrf_is_required_for_unsafe_requests(engine: Engine) -> None:
    client = secured(engine)
    token = log_in(client)
    body = {"content": FLOW, "headers": {"content-type": "application/x-yaml"}}
    assert client.post("/api/v1/main/flows", **body).status_code == 403  # cookie without token
    assert (
        client.post(
            "/api/v1/main/flows", **{**body, "headers": {**body["headers"], "X-CSRF-Token": "forged"}}
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/api/v1/main/flows", **{**body, "headers": {**body["headers"], "X-CSRF-Token": token}}
        ).status_code
        == 200
    )
    # UI form routes: the form field or the header
    assert client.post("/ui/main/flows/company.team/hello/execute", data={}).status_code == 403
    ok = client.post(
        "/ui/main/flows/company.team/hello/execute", data={"csrf_token": token}, follow_redirects=False
    )
    assert ok.status_code == 303 and "/ui/main/executions/company.team/hello/" in ok.headers["location"]
    # basic auth (no cookie) is unaffected
    assert (
        client.post(
            "/api/v1/main/flows/validate", content=FLOW, auth=(USER, PASSWORD), cookies={}
        ).status_code
        == 200
    )


def test_login_failures_do_not_reveal_users_and_are_rate_limited(engine: Engine) -> None:
    client = secured(engine)
    token = csrf_of(client.get("/ui/login").text)
    unknown = client.post("/ui/login", data={"username": "nobody", "password": "x", "csrf_token": token})
    wrong = client.post("/ui/login", data={"username": USER, "password": "x", "csrf_token": token})
    assert unknown.status_code == wrong.status_code == 401
    assert "Invalid user name or password." in unknown.text and "Invalid user name or password." in wrong.text
    for _ in range(4):
        client.post("/ui/login", data={"username": USER, "password": "x", "csrf_token": token})
    limited = client.post("/ui/login", data={"username": USER, "password": PASSWORD, "csrf_token": token})
    assert limited.status_code == 429 and "Too many failed attempts" in limited.text


def test_login_redirects_only_inside_the_ui(engine: Engine) -> None:
    client = secured(engine)
    token = csrf_of(client.get("/ui/login").text)
    for target in ("https://evil.example/", "//evil.example/ui/", "/api/v1/main/flows", "/ui/\\evil"):
        r = client.post("/ui/login", data={"username": USER, "password": PASSWORD, "csrf_token": token, "next": target},
                        follow_redirects=False)  # fmt: skip
        assert r.headers["location"] == "/ui/main/flows"


def test_sessions_expire_and_resist_tampering(monkeypatch: pytest.MonkeyPatch) -> None:
    config = AuthConfig(users={USER: hash_password(PASSWORD)})
    sessions = Sessions(config, b"k" * 32, lifetime=60)
    cookie = sessions.issue(USER)
    assert sessions.read(cookie)["u"] == USER
    body, sig = cookie.split(".")
    assert sessions.read(body + "." + sig[:-2] + "AA") is None
    assert Sessions(config, b"other" * 8).read(cookie) is None
    session = sessions.read(cookie)
    assert sessions.check_csrf(session, sessions.csrf_token(session)) and not sessions.check_csrf(
        session, "x"
    )
    del config.users[USER]
    assert sessions.read(cookie) is None  # a user removed from the configuration loses its sessions
    config.users[USER] = "scrypt$..."
    assert sessions.read(cookie) is not None
    # past the lifetime, without sleeping (a loaded machine must not expire it early)
    later = time.time() + 61
    monkeypatch.setattr("roost.server.ui.session.time.time", lambda: later)
    assert sessions.read(cookie) is None


def test_login_limiter_window() -> None:
    limiter = LoginLimiter(max_failures=2, window=0.2)
    limiter.failed("1.2.3.4", "u")
    assert limiter.retry_after("1.2.3.4", "u") == 0
    limiter.failed("1.2.3.4", "u")
    assert limiter.retry_after("1.2.3.4", "u") > 0 and limiter.retry_after("1.2.3.4", "v") == 0
    time.sleep(0.25)
    assert limiter.retry_after("1.2.3.4", "u") == 0


def test_open_ui_without_auth_uses_double_submit_csrf(engine: Engine) -> None:
    client = TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)
    client.post("/api/v1/main/flows", content=FLOW)
    page = client.get("/ui/main/flows/company.team/hello?tab=execute")
    token = csrf_of(page.text)
    assert client.cookies.get("roost_csrf") == token
    assert (
        client.post("/ui/main/flows/company.team/hello/execute", data={"csrf_token": "nope"}).status_code
        == 403
    )
    assert client.post("/ui/main/flows/company.team/hello/execute", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303  # fmt: skip


class ThrowawayUi:
    @hookimpl
    def register_ui(self, register):  # type: ignore[no-untyped-def]
        register(
            UiPage(
                "audit", "Audit", lambda ctx: f"<p id='audit'>audit of {ctx.tenant} for {ctx.principal}</p>"
            )
        )
        register(
            UiPanel(
                "flow",
                "Ownership",
                lambda ctx: f"<p id='owner'>{ctx.subject['namespace']}.{ctx.subject['id']}</p>",
            )
        )
        register(UiPanel("execution", "Broken", lambda ctx: 1 / 0))


def test_register_ui_hook_adds_pages_and_panels(engine: Engine) -> None:
    client = TestClient(create_app(ServerState(engine)), raise_server_exceptions=False)
    client.post("/api/v1/main/flows", content=FLOW)
    ex = client.post("/api/v1/main/executions/company.team/hello?wait=true").json()
    with registered(ThrowawayUi(), name="throwaway-ui"):
        flows = client.get("/ui/main/flows").text
        assert '<a href="/ui/main/x/audit"' in flows
        assert "<p id='audit'>audit of main for anonymous</p>" in client.get("/ui/main/x/audit").text
        assert "<p id='owner'>company.team.hello</p>" in client.get("/ui/main/flows/company.team/hello").text
        broken = client.get(f"/ui/main/executions/company.team/hello/{ex['id']}")
        assert broken.status_code == 200 and "This panel failed: ZeroDivisionError" in broken.text
    assert client.get("/ui/main/x/audit").status_code == 404


def test_topology_groups_flowables_and_branches(engine: Engine) -> None:
    from roost.server.ui.graphs import flow_tree, outline, topology_svg

    flow = engine.parse("""id: g
namespace: a
tasks:
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {id: x, type: io.kestra.plugin.core.log.Log, message: x}
      - {id: y, type: io.kestra.plugin.core.log.Log, message: y}
  - id: sw
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ 1 }}"
    cases:
      "1": [{id: one, type: io.kestra.plugin.core.log.Log, message: one}]
    defaults: [{id: other, type: io.kestra.plugin.core.log.Log, message: other}]
errors:
  - {id: oops, type: io.kestra.plugin.core.log.Log, message: oops}
finally:
  - {id: bye, type: io.kestra.plugin.core.log.Log, message: bye}
""")
    tree = flow_tree(flow)
    assert [label for label, _ in tree.lanes] == ["tasks", "errors", "finally"]
    par = tree.lanes[0][1][0]
    assert par.parallel and [lane[1][0].id for lane in par.lanes] == ["x", "y"]
    sw = tree.lanes[0][1][1]
    assert [label for label, _ in sw.lanes] == ["cases: 1", "defaults"]
    svg = topology_svg(tree, {"x": "SUCCESS", "oops": "FAILED"})
    assert 'class="node task ok" data-task="x"' in svg and 'class="node task bad" data-task="oops"' in svg
    assert [(d, i.id) for d, i, _l in outline(tree)][:3] == [(0, "par"), (1, "x"), (1, "y")]


def test_wheel_ships_templates_and_static_files(tmp_path: Path) -> None:
    import zipfile

    pytest.importorskip("hatchling")
    from hatchling.builders.wheel import WheelBuilder

    root = Path(__file__).resolve().parents[1]
    wheel = next(iter(WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"])))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("roost/server/ui/templates/base.html", "roost/server/ui/templates/flow.html",
                   "roost/server/ui/static/app.js", "roost/server/ui/static/app.css",
                   "roost/server/ui/static/vendor/htmx/htmx.min.js", "roost/server/ui/static/vendor/codemirror/lib/codemirror.js",
                   "roost/server/ui/static/vendor/codemirror/mode/yaml/yaml.js", "roost/server/ui/static/vendor/README.md"):  # fmt: skip
        assert needed in names, needed
    assert not any("axe" in n for n in names)  # the test-only accessibility engine stays out
