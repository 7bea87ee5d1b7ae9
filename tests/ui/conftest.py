"""The web UI in real Chromium (Debian's ``chromium``, driven by Playwright) against a real
``roost server local`` with basic auth; screenshots of every page go to ``tests/ui/artifacts/``.

Nothing is downloaded: Playwright drives ``/usr/bin/chromium`` (``tests/ui/setup-system.sh``
installs it), and axe-core is injected from ``tests/ui/vendor``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from roost.server.config import hash_password
from roost.testing.server import ServerProcess

HERE = Path(__file__).parent
ARTIFACTS = Path(os.environ.get("ROOST_UI_ARTIFACTS") or HERE / "artifacts")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]  # fmt: skip
USER, PASSWORD = "admin@example.com", "correct horse battery staple"
AXE = (HERE / "vendor" / "axe.min.js").read_text()

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("roost-ui")
    config = root / "roost.yaml"
    config.write_text(
        f'server:\n  basicAuth:\n    users:\n      - username: "{USER}"\n        passwordHash: "{hash_password(PASSWORD)}"\n'
    )
    env = {"SECRET_WAREHOUSE_PASSWORD": "czNjcjN0", "ROOST_PLUGIN_DEFAULTS": str(root / "no-folder")}
    proc = ServerProcess("local", root / "data", config=config, env=env).wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v1/main", auth=(USER, PASSWORD), timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: run tests/ui/setup-system.sh as root")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) at 1280 px; console errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=server.url)
    pg = context.new_page()
    errors: list[str] = []
    # script errors fail the test (refused requests the test provokes are answers, not errors)
    pg.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
        ),
    )
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(15000)
    yield pg
    context.close()
    assert not errors, f"browser errors: {errors}"


def login(page: Any, user: str = USER, password: str = PASSWORD) -> None:
    page.goto("/ui/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_accessible(page: Any, name: str) -> None:
    """axe-core on the page as it is: no serious or critical violation (WCAG 2 A/AA rules)."""
    page.add_script_tag(content=AXE)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
    }""")
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: accessibility violations: {bad}"
