"""The Kill Switch page and its banners in Chromium: an administrator stops a namespace at 2 AM."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.ui.conftest import assert_accessible, login, shot

pytestmark = pytest.mark.e2e
LONG = """id: nightly
namespace: ks.payments
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 60"]
"""


def test_kill_switch_page_stops_a_namespace_and_announces_it(page: Any, api: httpx.Client) -> None:
    r = api.post("/flows", content=LONG, headers={"content-type": "application/x-yaml"})
    assert r.status_code in (200, 422), r.text
    ex = api.post("/executions/ks.payments/nightly").json()
    login(page)
    page.goto("/ui/main/flows")
    page.get_by_role("link", name="Kill Switch").click()
    page.get_by_label("Name", exact=True).fill("payments outage")
    page.get_by_label("KILL: kill running and new executions now").check()
    page.get_by_label("Namespace (and its children)").fill("ks.payments")
    page.get_by_label("Reason (shown in the banners)").fill("bad deploy, rollback in progress")
    page.get_by_role("button", name="Create the kill switch").click()
    row = (
        page.locator("section", has=page.get_by_role("heading", name="Active and scheduled"))
        .locator("tbody tr")
        .first
    )
    assert "payments outage" in row.inner_text() and "ACTIVE" in row.inner_text()
    shot(page, "killswitch-page")
    assert_accessible(page, "kill switch page")
    deadline = time.monotonic() + 15
    while api.get(f"/executions/{ex['id']}").json()["state"]["current"] != "KILLED":
        assert time.monotonic() < deadline, "the running execution was not killed"
        time.sleep(0.1)
    page.goto("/ui/main/namespaces/ks.payments")
    banner = page.get_by_role("alert").filter(has_text="payments outage")
    assert "bad deploy" in banner.inner_text()
    shot(page, "killswitch-banner")
    assert_accessible(page, "namespace page with a banner")
    page.goto("/ui/main/flows")
    assert page.get_by_role("alert").filter(has_text="payments outage").count() == 0  # a namespace's only
    page.goto("/ui/main/killswitches")
    page.get_by_role("button", name="Delete").first.click()
    archived = page.locator("section", has=page.get_by_role("heading", name="Archived")).inner_text()
    assert "payments outage" in archived and "ARCHIVED" in archived
